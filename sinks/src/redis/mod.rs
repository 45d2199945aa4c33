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
        Ok(Err(e)) => Err(SinkError::transient("redis", e)),
        Err(_) => Err(SinkError::transient("redis", "connection timed out")),
    }
}

/// Writes live room and office state.
pub struct RedisSink {
    config: RedisConfig,
    conn: Option<ConnectionManager>,
}

impl RedisSink {
    /// A sink for `config`; it connects on first use and reconnects after failures.
    pub fn new(config: &RedisConfig) -> Self {
        Self {
            config: config.clone(),
            conn: None,
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

impl RedisSink {
    async fn run(&mut self, pipe: redis::Pipeline) -> Result<(), SinkError> {
        let conn = match &mut self.conn {
            Some(conn) => conn,
            None => self.conn.insert(connect(&self.config).await?),
        };
        let timeout = Duration::from_secs(self.config.timeout_secs);
        let result = match tokio::time::timeout(timeout, pipe.query_async::<()>(conn)).await {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(e)) => SinkError::transient("redis", e),
            Err(_) => SinkError::transient("redis", "write timed out"),
        };
        self.conn = None;
        Err(result)
    }
}

/// Bumps the generation of every tenant whose rows a batch wrote to ClickHouse; written
/// once ClickHouse acknowledged the batch, so that nothing cached before can be read after.
pub struct Generations<'a>(pub &'a mut RedisSink);

impl Sink for Generations<'_> {
    fn name(&self) -> &'static str {
        "redis"
    }

    async fn write(&mut self, batch: &Batch) -> Result<(), SinkError> {
        let tenants: std::collections::BTreeSet<&rf_schemas::TenantId> = batch
            .rooms
            .iter()
            .map(|r| &r.tenant)
            .chain(batch.offices.iter().map(|o| &o.tenant))
            .chain(batch.restates.iter().map(|r| &r.tenant))
            .chain(batch.room_versions.iter().map(|(t, _)| t))
            .chain(batch.withdrawn_rooms.iter().map(|(t, _, _)| t))
            .collect();
        if tenants.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for tenant in tenants {
            pipe.incr(generation_key(tenant), 1).ignore();
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
