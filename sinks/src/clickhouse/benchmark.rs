//! A tenant's figures for the cross-tenant benchmarks, read from its daily tables: the
//! computation and the query service's comparison read them alike.

use chrono::NaiveDate;
use clickhouse::{Client, Row};
use serde::Deserialize;

use rf_schemas::benchmark::{self, Slice};
use rf_schemas::TenantId;

#[derive(Row, Deserialize)]
struct SliceRow {
    region: String,
    kind: String,
    rooms: u64,
    days: u64,
    utilization: f64,
    peak: f64,
}

#[derive(Row, Deserialize)]
struct GhostRow {
    tz: String,
    start: u32,
    region: String,
    kind: String,
    ghost_minutes: u64,
    booked_minutes: u64,
}

/// A tenant's slices over local days `[from, to)` from its region's ClickHouse.
pub async fn slices(
    client: &Client,
    tenant: &TenantId,
    (from, to): (NaiveDate, NaiveDate),
) -> Result<Vec<Slice>, clickhouse::error::Error> {
    let db = tenant.clickhouse_db();
    let rows: Vec<SliceRow> = client
        .query(&benchmark::slices_sql(&db))
        .bind(from.to_string())
        .bind(to.to_string())
        .fetch_all()
        .await?;
    // Every zone's midnights lie within 14 hours of UTC's.
    let secs = |d: NaiveDate, hours: i64| {
        (d.and_time(chrono::NaiveTime::MIN).and_utc() + chrono::Duration::hours(hours))
            .timestamp()
            .clamp(0, i64::from(u32::MAX)) as u32
    };
    let mut ghosts: Vec<GhostRow> = client
        .query(&benchmark::ghosts_sql(&db))
        .bind(secs(from, -14))
        .bind(secs(to, 14))
        .fetch_all()
        .await?;
    // Only the days whose local date is in the period.
    ghosts.retain(|g| (from..to).contains(&benchmark::local_day(i64::from(g.start), &g.tz)));
    Ok(rows
        .into_iter()
        .map(|r| {
            let mine = || {
                ghosts
                    .iter()
                    .filter(|g| g.region == r.region && g.kind == r.kind)
            };
            Slice {
                ghost_minutes: mine().map(|g| g.ghost_minutes).sum(),
                booked_minutes: mine().map(|g| g.booked_minutes).sum(),
                region: r.region,
                kind: r.kind,
                rooms: r.rooms,
                days: r.days,
                utilization: r.utilization,
                peak: r.peak,
            }
        })
        .collect())
}
