//! The Redis sink: each room's and office's latest state as hashes under `rf:<tenant>:`.

use std::time::Duration;

use redis::aio::ConnectionManager;

use crate::config::RedisConfig;
use crate::{Batch, Sink, SinkError};

/// Connects to Redis, failing after `timeout` instead of retrying forever.
pub async fn connect(config: &RedisConfig) -> Result<ConnectionManager, SinkError> {
    let client = redis::Client::open(config.url.as_str()).map_err(|e| SinkError {
        sink: "redis",
        message: format!("invalid url: {e}"),
        retryable: false,
    })?;
    let timeout = Duration::from_secs(config.timeout_secs);
    let manager_config = redis::aio::ConnectionManagerConfig::new()
        .set_connection_timeout(Some(timeout))
        .set_response_timeout(Some(timeout))
        .set_number_of_retries(1);
    match tokio::time::timeout(
        timeout * 2,
        ConnectionManager::new_with_config(client, manager_config),
    )
    .await
    {
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(e)) => Err(classify(e)),
        Err(_) => Err(SinkError::transient("redis", "connection timed out")),
    }
}

/// A Redis error as the sink reports it: a refused login or a command the user may not
/// run fails at once (retrying cannot help); the rest are retried.
fn classify(e: redis::RedisError) -> SinkError {
    let permanent = e.kind() == redis::ErrorKind::AuthenticationFailed
        || matches!(
            e.code(),
            Some("NOPERM" | "WRONGPASS" | "NOAUTH" | "WRONGTYPE")
        );
    SinkError {
        sink: "redis",
        message: if permanent {
            format!("{e} (a permanent error: retrying cannot help)")
        } else {
            e.to_string()
        },
        retryable: !permanent,
    }
}

/// Writes live room and office state.
#[derive(Clone)]
pub struct RedisSink {
    config: RedisConfig,
    /// One connection, multiplexed by every clone (each tenant's writes use one).
    conn: std::sync::Arc<tokio::sync::Mutex<Option<ConnectionManager>>>,
}

impl RedisSink {
    /// A sink for `config`; it connects on first use and reconnects after failures.
    pub fn new(config: &RedisConfig) -> Self {
        Self {
            config: config.clone(),
            conn: Default::default(),
        }
    }
}

/// The key of a room's live hash.
pub fn room_key(tenant: &rf_schemas::TenantId, room_id: &str) -> String {
    format!("{}room:{room_id}", tenant.redis_prefix())
}

/// The key of an office's live hash.
pub fn office_key(tenant: &rf_schemas::TenantId, office_id: &str) -> String {
    format!("{}office:{office_id}", tenant.redis_prefix())
}

/// The key counting a tenant's ClickHouse writes. The query service caches responses
/// under the current count, so a write leaves no cached response of the tenant reachable.
pub fn generation_key(tenant: &rf_schemas::TenantId) -> String {
    format!("{}generation", tenant.redis_prefix())
}

/// The key counting a tenant's writes of windows that start in one UTC month
/// (`yyyymm`, as ClickHouse partitions them). The query service keeps the parts of a
/// series under the counts of their months.
pub fn month_generation_key(tenant: &rf_schemas::TenantId, yyyymm: u32) -> String {
    format!("{}generation:{yyyymm}", tenant.redis_prefix())
}

/// The key counting a tenant's changes of the past beyond new windows: room metadata
/// (which rooms make a floor, a room's office) and restated rows.
pub fn history_generation_key(tenant: &rf_schemas::TenantId) -> String {
    format!("{}generation:history", tenant.redis_prefix())
}

/// Every key of `tenant` (`rf:<tenant>:*`), found by SCAN, so Redis is never blocked.
pub async fn tenant_keys<C: redis::aio::ConnectionLike>(
    conn: &mut C,
    tenant: &rf_schemas::TenantId,
) -> redis::RedisResult<Vec<String>> {
    let pattern = format!("{}*", tenant.redis_prefix());
    let mut cursor = 0u64;
    let mut keys = Vec::new();
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(1000)
            .query_async(conn)
            .await?;
        keys.extend(batch);
        if next == 0 {
            return Ok(keys);
        }
        cursor = next;
    }
}

/// The UTC month (`yyyymm`) of an instant in epoch milliseconds.
pub fn month_of(ms: i64) -> u32 {
    use chrono::Datelike;
    let t = chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default();
    t.year() as u32 * 100 + t.month()
}

impl RedisSink {
    async fn run(&mut self, pipe: redis::Pipeline) -> Result<(), SinkError> {
        let mut conn = {
            let mut shared = self.conn.lock().await;
            match &*shared {
                Some(conn) => conn.clone(),
                None => shared.insert(connect(&self.config).await?).clone(),
            }
        };
        let timeout = Duration::from_secs(self.config.timeout_secs);
        let result = match tokio::time::timeout(timeout, pipe.query_async::<()>(&mut conn)).await {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(e)) => classify(e),
            Err(_) => SinkError::transient("redis", "write timed out"),
        };
        if result.retryable {
            // The next write connects anew; a refusal (rights, a bad command) keeps it.
            *self.conn.lock().await = None;
        }
        Err(result)
    }
}

/// Bumps the generation of every tenant whose rows a batch wrote to ClickHouse, of every
/// month the batch wrote windows to, and of the tenant's history when the batch changed
/// room metadata or restated rows; written once ClickHouse acknowledged the batch, so
/// that nothing cached before can be read after.
pub struct Generations<'a>(pub &'a mut RedisSink);

impl Sink for Generations<'_> {
    fn name(&self) -> &'static str {
        "redis"
    }

    async fn write(&mut self, batch: &Batch) -> Result<(), SinkError> {
        let touched = crate::clickhouse::touched(batch);
        if touched.tenants.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for tenant in &touched.tenants {
            pipe.incr(generation_key(tenant), 1).ignore();
        }
        for (tenant, month) in &touched.months {
            pipe.incr(month_generation_key(tenant, *month), 1).ignore();
        }
        for tenant in &touched.history {
            pipe.incr(history_generation_key(tenant), 1).ignore();
        }
        self.0.run(pipe).await
    }
}

impl Sink for RedisSink {
    fn name(&self) -> &'static str {
        "redis"
    }

    async fn write(&mut self, batch: &Batch) -> Result<(), SinkError> {
        if batch.live_rooms.is_empty() && batch.live_offices.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for r in &batch.live_rooms {
            pipe.hset_multiple(
                room_key(&r.tenant, &r.room_id),
                &[
                    ("office_id", r.office_id.clone()),
                    ("people", r.people.to_string()),
                    ("ts", r.ts.to_string()),
                    ("capacity", r.capacity.to_string()),
                    ("utilization", r.utilization.to_string()),
                ],
            )
            .ignore();
        }
        for o in &batch.live_offices {
            pipe.hset_multiple(
                office_key(&o.tenant, &o.office_id),
                &[
                    ("people", o.people.to_string()),
                    ("capacity", o.capacity.to_string()),
                    ("rooms_reporting", o.rooms_reporting.to_string()),
                    ("utilization", o.utilization.to_string()),
                    ("ts", o.ts.to_string()),
                ],
            )
            .ignore();
        }
        self.run(pipe).await
    }
}

#[cfg(test)]
mod tests {
    use super::month_of;

    #[test]
    fn a_window_belongs_to_the_utc_month_it_starts_in() {
        assert_eq!(month_of(0), 197001);
        // 2026-02-28T23:59:59.999Z and the next millisecond.
        assert_eq!(month_of(1_772_323_199_999), 202602);
        assert_eq!(month_of(1_772_323_200_000), 202603);
        // 2024-12-31T23:00:00Z, a New York evening.
        assert_eq!(month_of(1_735_686_000_000), 202412);
    }
}
