//! Fingerprints of the active parts of a tenant's table (or of one month's partition):
//! the check under the generations for what this process keeps in memory (series
//! chunks, months of room days, room metadata).
//!
//! The pipeline bumps a generation once ClickHouse has its write, so a kept entry is
//! unreachable at once; but a job, an operator's SQL or a write whose bump was lost
//! change rows without one. ClickHouse writes a new part for every insert, and a merge,
//! a mutation, a dropped or attached partition replace parts, so the same names mean
//! the same rows. Each fingerprint is read again once `cache_ttl_secs` have passed, by
//! one request while the others go on with the one they have: an entry keyed by it
//! outlives a change of its rows by at most that plus one query, and is never read
//! again only because time passed (a month of 50,000 rooms' days costs a second of
//! CPU to read).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use rf_schemas::TenantId;

use crate::routes::Caller;

/// A table of the tenant's, and one `toYYYYMM` partition of it (or all).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct PartsKey {
    tenant: TenantId,
    table: &'static str,
    month: Option<u32>,
}

/// The latest fingerprint and when it was read (seconds).
#[derive(Debug)]
pub(crate) struct Fingerprint {
    hash: AtomicU64,
    read_at: AtomicU64,
}

/// The process's fingerprints: a few dozen bytes per tenant, table and month asked.
pub(crate) type Fingerprints = quick_cache::sync::Cache<PartsKey, Arc<Fingerprint>>;

pub(crate) fn fingerprints() -> Fingerprints {
    Fingerprints::new(100_000)
}

/// The fingerprint of `table`'s parts (of the partition `month`, `YYYYMM`, when given),
/// read again when older than `ttl_secs`; `None` when ClickHouse cannot say (then
/// nothing is kept).
pub(crate) async fn fingerprint(
    fingerprints: &Fingerprints,
    caller: &Caller<'_>,
    table: &'static str,
    month: Option<u32>,
    ttl_secs: u64,
) -> Option<u64> {
    let key = PartsKey {
        tenant: caller.tenant.clone(),
        table,
        month,
    };
    let now = chrono::Utc::now().timestamp() as u64;
    let read = || async {
        match read(caller, table, month).await {
            Ok(hash) => Some(hash),
            Err(error) => {
                tracing::warn!(%error, table, "cannot read the table's parts; not caching");
                None
            }
        }
    };
    let found = fingerprints
        .get_or_insert_async(&key, async {
            read()
                .await
                .map(|hash| {
                    Arc::new(Fingerprint {
                        hash: AtomicU64::new(hash),
                        read_at: AtomicU64::new(now),
                    })
                })
                .ok_or(())
        })
        .await
        .ok()?;
    let read_at = found.read_at.load(Ordering::Acquire);
    // One request reads it again; the others go on with the one they have meanwhile.
    if now.saturating_sub(read_at) >= ttl_secs
        && found
            .read_at
            .compare_exchange(read_at, now, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    {
        match read().await {
            Some(hash) => found.hash.store(hash, Ordering::Release),
            None => {
                // Read again by the next request.
                found.read_at.store(0, Ordering::Release);
                return None;
            }
        }
    }
    Some(found.hash.load(Ordering::Acquire))
}

/// A hash of the active parts' names (0 when there are none).
async fn read(caller: &Caller<'_>, table: &'static str, month: Option<u32>) -> Result<u64, String> {
    let partition = match month {
        Some(_) => " AND partition_id = ?",
        None => "",
    };
    let sql = format!(
        "SELECT sum(cityHash64(name)) FROM system.parts \
         WHERE database = ? AND table = ? AND active{partition}"
    );
    let mut query = caller
        .stores
        .clickhouse
        .query(&sql)
        .bind(caller.tenant.clickhouse_db())
        .bind(table);
    if let Some(month) = month {
        query = query.bind(month.to_string());
    }
    let limit = std::time::Duration::from_secs(caller.query_timeout_secs);
    match tokio::time::timeout(limit, query.fetch_one::<u64>()).await {
        Ok(read) => read.map_err(|e| e.to_string()),
        Err(_) => Err(format!("no answer within {} s", caller.query_timeout_secs)),
    }
}
