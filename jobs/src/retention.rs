//! Retention and downsampling of a tenant's tables, with what ClickHouse 18.16 has as well
//! as modern servers (no TTL): whole monthly partitions past every rule are dropped, and
//! the rows past a shorter rule (15-minute windows after 30 days, hours after a year) are
//! deleted with a mutation. Kafka's readings follow the topics' own retention.
//!
//! With a cold tier (`jobs.cold`), the tables kept for the tenant's whole retention go
//! to it a month at a time, once all of the month is past the retention: each month is
//! exported and checked ([`crate::cold`]) before its partition is dropped, a month
//! restored from it stays until its hold ends, and cold months past
//! `jobs.cold.keep_days` are deleted.

use std::time::Duration;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use rf_schemas::TenantId;
use rf_sinks::config::ClickHouseConfig;

use crate::cold::{ColdStore, Manifest};
use crate::JobError;

const DAY: i64 = 86_400_000;

/// How long rows of each size are kept; a tenant's `retention_days` bounds them all.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionConfig {
    /// 15-minute windows and raw counted readings, days.
    pub keep_15m_days: u32,
    /// Hourly windows and forecasts, days.
    pub keep_1h_days: u32,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self {
            keep_15m_days: 30,
            keep_1h_days: 365,
        }
    }
}

impl RetentionConfig {
    /// Checks the ranges; the message names the field.
    pub fn validate(&self) -> Result<(), String> {
        if self.keep_15m_days == 0 {
            return Err("retention.keep_15m_days: must be at least 1".into());
        }
        if self.keep_1h_days < self.keep_15m_days {
            return Err("retention.keep_1h_days: must be at least retention.keep_15m_days".into());
        }
        Ok(())
    }
}

/// The tables a cold tier keeps: those kept for the tenant's whole retention. Readings
/// and forecasts go earlier, by design, and are not kept.
pub(crate) const COLD_TABLES: [&str; 6] = [
    "room_utilization",
    "office_utilization",
    "room_days",
    "anomalies",
    "audit",
    "booking_usage",
];

/// The tables the service reads series and days from: each closed month of theirs is
/// merged into one part, its revisions collapsed, so a read opens one part per month.
const COMPACTED: [&str; 4] = [
    "room_utilization",
    "office_utilization",
    "room_days",
    "booking_usage",
];

/// One rule: the rows of `table` matching `only` (or all) older than `days` go.
struct Rule {
    table: &'static str,
    column: &'static str,
    only: Option<&'static str>,
    days: u32,
}

fn rules(config: &RetentionConfig, retention_days: u32) -> Vec<Rule> {
    let short = config.keep_15m_days.min(retention_days);
    let hours = config.keep_1h_days.min(retention_days);
    let rule = |table, column, only, days| Rule {
        table,
        column,
        only,
        days,
    };
    let mut rules = Vec::new();
    for table in ["room_utilization", "office_utilization"] {
        rules.push(rule(table, "window_start", None, retention_days));
        rules.push(rule(
            table,
            "window_start",
            Some("granularity = '1h'"),
            hours,
        ));
        rules.push(rule(
            table,
            "window_start",
            Some("granularity = '15m'"),
            short,
        ));
    }
    // The daily table lives the whole retention, like the day windows it copies.
    rules.push(rule("room_days", "window_start", None, retention_days));
    rules.push(rule("readings", "ts", None, short));
    rules.push(rule("forecasts", "window_start", None, hours));
    rules.push(rule("anomalies", "window_start", None, retention_days));
    rules.push(rule("audit", "ts", None, retention_days));
    rules.push(rule("booking_usage", "window_start", None, retention_days));
    rules.push(rule(
        "booking_usage",
        "window_start",
        Some("granularity = '15m'"),
        short,
    ));
    rules
}

/// A monthly partition that goes.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Partition {
    /// The table.
    pub table: String,
    /// Its column the partitions are months of.
    pub column: String,
    /// The month, `YYYYMM`.
    pub month: u32,
    /// Its rows.
    pub rows: u64,
    /// Whether it goes to the cold tier before it is dropped.
    pub cold: bool,
}

/// What goes: partitions to drop (some to the cold tier first), rows to delete, and cold
/// months past the cold tier's keep.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Plan {
    /// Whole partitions.
    pub drops: Vec<Partition>,
    /// (table, condition, rows), each a mutation.
    pub deletes: Vec<(String, String, u64)>,
    /// Cold months deleted from the cold tier.
    pub cold_expired: Vec<u32>,
    /// Months restored from the cold tier and kept until their hold ends: (month, ms).
    pub held: Vec<(u32, i64)>,
    /// Closed months of more than one part, merged into one: (table, month, parts).
    pub compactions: Vec<(String, u32, u64)>,
}

impl Plan {
    /// Rows that go.
    pub fn rows(&self) -> u64 {
        self.drops.iter().map(|d| d.rows).sum::<u64>()
            + self.deletes.iter().map(|d| d.2).sum::<u64>()
    }

    /// One line per step, for logs and dry runs.
    pub fn lines(&self) -> Vec<String> {
        let drops = self.drops.iter().map(|d| {
            let (p, t, n) = (d.month, &d.table, d.rows);
            if d.cold {
                format!("export partition {p} of {t} to cold storage, then drop it ({n} rows)")
            } else {
                format!("drop partition {p} of {t} ({n} rows)")
            }
        });
        let deletes = self
            .deletes
            .iter()
            .map(|(t, c, n)| format!("delete from {t} where {c} ({n} rows)"));
        let compactions = self
            .compactions
            .iter()
            .map(|(t, m, n)| format!("compact partition {m} of {t} ({n} parts into one)"));
        let expired = self
            .cold_expired
            .iter()
            .map(|m| format!("delete cold month {m}, past jobs.cold.keep_days"));
        drops
            .chain(deletes)
            .chain(compactions)
            .chain(expired)
            .collect()
    }
}

/// The first instant after the month of partition `yyyymm`, ms.
fn month_end(yyyymm: u32) -> i64 {
    let (y, m) = ((yyyymm / 100) as i32, yyyymm % 100);
    let (y, m) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
    NaiveDate::from_ymd_opt(y, m, 1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map_or(i64::MIN, |t| t.and_utc().timestamp_millis())
}

/// What retention removes from `tenant`'s tables at `now` (ms): whole partitions that
/// end before the cutoff of every row in them, then per rule the older rows left. With a
/// cold tier, the [`COLD_TABLES`] go only as whole months, through it.
pub async fn plan(
    clickhouse: &ClickHouseConfig,
    tenant: &TenantId,
    retention_days: u32,
    config: &RetentionConfig,
    cold: Option<(&ColdStore, u32)>,
    now: i64,
) -> Result<Plan, JobError> {
    let client = rf_sinks::clickhouse::client(clickhouse);
    let ch = |e: clickhouse::error::Error| JobError::from(e);
    let db = tenant.clickhouse_db();
    let rules = rules(config, retention_days);
    let mut plan = Plan::default();
    let mut tables: Vec<&str> = rules.iter().map(|r| r.table).collect();
    tables.dedup();
    for table in tables {
        let mine: Vec<&Rule> = rules.iter().filter(|r| r.table == table).collect();
        // A partition goes whole once it ended before the longest rule's cutoff.
        let whole = mine
            .iter()
            .filter(|r| r.only.is_none())
            .map(|r| r.days)
            .max();
        let parts: Vec<(String, u64, u64)> = client
            .query(
                "SELECT partition, sum(rows), count() FROM system.parts WHERE database = ? AND table = ? AND active \
                 GROUP BY partition ORDER BY partition",
            )
            .bind(&db)
            .bind(table)
            .fetch_all()
            .await
            .map_err(ch)?;
        let to_cold = cold.is_some() && COLD_TABLES.contains(&table);
        let mut held = Vec::new();
        let months = parts.iter().filter_map(|(partition, rows, count)| {
            let month = partition.trim_matches('\'').parse::<u32>().ok()?;
            Some((month, *rows, *count))
        });
        if let Some(days) = whole {
            let cutoff = now - days as i64 * DAY;
            for (month, rows, _) in months {
                if month_end(month) > cutoff {
                    continue;
                }
                if let (true, Some((store, _))) = (to_cold, cold) {
                    let until = store
                        .manifest(tenant, month)
                        .await?
                        .and_then(|m| m.restored_until_ms);
                    if let Some(until) = until.filter(|u| *u > now) {
                        held.push(month.to_string());
                        if !plan.held.iter().any(|h| h.0 == month) {
                            plan.held.push((month, until));
                        }
                        continue;
                    }
                }
                plan.drops.push(Partition {
                    table: table.to_string(),
                    column: mine[0].column.to_string(),
                    month,
                    rows,
                    cold: to_cold,
                });
            }
        }
        for rule in mine {
            // Kept whole for the cold tier: no rows of a month go before the month does.
            if to_cold && rule.only.is_none() {
                continue;
            }
            let cutoff = (now - rule.days as i64 * DAY) / 1000;
            let condition = match rule.only {
                Some(only) => format!("{only} AND {} < toDateTime({cutoff})", rule.column),
                None => format!("{} < toDateTime({cutoff})", rule.column),
            };
            // Rows in partitions that are dropped anyway are not counted twice, and a
            // month restored from the cold tier stays whole while it is held.
            let dropped: Vec<String> = plan
                .drops
                .iter()
                .filter(|d| d.table == table)
                .map(|d| d.month.to_string())
                .chain(held.iter().cloned())
                .collect();
            let kept = if dropped.is_empty() {
                String::new()
            } else {
                format!(
                    " AND toYYYYMM({}) NOT IN ({})",
                    rule.column,
                    dropped.join(", ")
                )
            };
            let rows: u64 = client
                .query(&format!(
                    "SELECT count() FROM {db}.{table} WHERE {condition}{kept}"
                ))
                .fetch_one()
                .await
                .map_err(ch)?;
            if rows > 0 {
                plan.deletes.push((table.to_string(), condition, rows));
            }
        }
    }
    let held: Vec<u32> = plan.held.iter().map(|h| h.0).collect();
    plan.compactions = compactions(&client, tenant, now)
        .await?
        .into_iter()
        .filter(|(t, m, _)| {
            !held.contains(m) && !plan.drops.iter().any(|d| d.table == *t && d.month == *m)
        })
        .collect();
    if let Some((store, keep_days)) = cold {
        let cutoff = now - keep_days as i64 * DAY;
        plan.cold_expired = store
            .months(tenant)
            .await?
            .into_iter()
            .filter(|m| month_end(*m) <= cutoff)
            .collect();
    }
    Ok(plan)
}

/// The closed months (ended a day ago or more) of the [`COMPACTED`] tables that have
/// more than one part: (table, month, parts).
pub async fn compactions(
    client: &clickhouse::Client,
    tenant: &TenantId,
    now: i64,
) -> Result<Vec<(String, u32, u64)>, JobError> {
    let tables = COMPACTED.map(|t| format!("'{t}'")).join(", ");
    let parts: Vec<(String, String, u64)> = client
        .query(&format!(
            "SELECT table, partition, count() FROM system.parts WHERE database = ? AND active \
             AND table IN ({tables}) GROUP BY table, partition HAVING count() > 1 ORDER BY table, partition"
        ))
        .bind(tenant.clickhouse_db())
        .fetch_all()
        .await?;
    Ok(parts
        .into_iter()
        .filter_map(|(table, partition, n)| {
            let month = partition.trim_matches('\'').parse::<u32>().ok()?;
            (month_end(month) + DAY <= now).then_some((table, month, n))
        })
        .collect())
}

/// Merges a month of `table` into one part, its revisions collapsed (waits for it).
pub async fn compact(
    client: &clickhouse::Client,
    tenant: &TenantId,
    table: &str,
    month: u32,
) -> Result<(), JobError> {
    let db = tenant.clickhouse_db();
    client
        .query(&format!(
            "OPTIMIZE TABLE {db}.{table} PARTITION {month} FINAL"
        ))
        .execute()
        .await
        .map_err(|e| JobError::clickhouse(format!("compacting {table} {month}"), e))
}

/// Carries out step `index` of the plan (its drops, its deletes, then its expired cold
/// months, as [`Plan::lines`] lists them) and returns its line. A partition going cold
/// is exported, checked and named in its month's manifest before it is dropped; a
/// mutation is waited for.
pub async fn apply_step(
    clickhouse: &ClickHouseConfig,
    tenant: &TenantId,
    cold: Option<&ColdStore>,
    plan: &Plan,
    index: usize,
) -> Result<String, JobError> {
    let client = rf_sinks::clickhouse::client(clickhouse);
    let ch = |e: clickhouse::error::Error| JobError::from(e);
    let db = tenant.clickhouse_db();
    let line = plan.lines().swap_remove(index);
    let no_store = || JobError::Cold("the plan exports, but no cold store is configured".into());
    if let Some(d) = plan.drops.get(index) {
        let mut line = line;
        if d.cold {
            let store = cold.ok_or_else(no_store)?;
            let file = store
                .export(&client, tenant, &d.table, &d.column, d.month)
                .await?;
            let mut manifest = store.manifest(tenant, d.month).await?.unwrap_or(Manifest {
                tenant: tenant.to_string(),
                month: d.month,
                ..Default::default()
            });
            line = format!(
                "exported partition {} of {} to {} ({} rows, {} bytes, SHA-256 {}), then dropped it",
                d.month, d.table, store.location, file.rows, file.bytes, file.sha256
            );
            manifest.files.retain(|f| f.table != d.table);
            manifest.files.push(file);
            manifest.restored_until_ms = None;
            store.put_manifest(&manifest).await?;
        }
        client
            .query(&format!(
                "ALTER TABLE {db}.{} DROP PARTITION {}",
                d.table, d.month
            ))
            .execute()
            .await
            .map_err(ch)?;
        return Ok(line);
    }
    let index = index - plan.drops.len();
    if let Some((table, condition, _)) = plan.deletes.get(index) {
        mutate(&client, &db, table, condition).await?;
        return Ok(line);
    }
    let index = index - plan.deletes.len();
    if let Some((table, month, _)) = plan.compactions.get(index) {
        compact(&client, tenant, table, *month).await?;
        return Ok(line);
    }
    let month = plan.cold_expired[index - plan.compactions.len()];
    let files = cold
        .ok_or_else(no_store)?
        .delete(tenant, Some(month))
        .await?;
    Ok(format!("{line}: {files} files"))
}

/// Deletes the rows of `db.table` matching `condition` and waits for the mutation (and
/// any other of the table's) to be done.
pub(crate) async fn mutate(
    client: &clickhouse::Client,
    db: &str,
    table: &str,
    condition: &str,
) -> Result<(), JobError> {
    let ch = |e: clickhouse::error::Error| JobError::from(e);
    client
        .query(&format!(
            "ALTER TABLE {db}.{table} DELETE WHERE {condition}"
        ))
        .execute()
        .await
        .map_err(ch)?;
    // Mutations run in the background: the delete is done when none of the table's is.
    loop {
        let running: u64 = client
            .query("SELECT count() FROM system.mutations WHERE database = ? AND table = ? AND is_done = 0")
            .bind(db)
            .bind(table)
            .fetch_one()
            .await
            .map_err(ch)?;
        if running == 0 {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_end_where_the_next_begins() {
        assert_eq!(month_end(202601), 1_769_904_000_000); // 2026-02-01
        assert_eq!(month_end(202512), 1_767_225_600_000); // 2026-01-01
    }

    #[test]
    fn rules_never_keep_longer_than_the_tenant_retention() {
        let r = rules(&RetentionConfig::default(), 14);
        assert!(r.iter().all(|r| r.days <= 14));
        let r = rules(&RetentionConfig::default(), 730);
        let days = |t: &str, only: Option<&str>| {
            r.iter()
                .find(|r| r.table == t && r.only == only)
                .unwrap()
                .days
        };
        assert_eq!(days("room_utilization", Some("granularity = '15m'")), 30);
        assert_eq!(days("office_utilization", Some("granularity = '1h'")), 365);
        assert_eq!(days("office_utilization", None), 730);
        assert_eq!(days("readings", None), 30);
        assert!(RetentionConfig {
            keep_15m_days: 40,
            keep_1h_days: 30
        }
        .validate()
        .is_err());
    }
}
