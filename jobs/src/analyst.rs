//! Analyst access: per tenant, a read-only ClickHouse user that sees the tenant's database
//! only, logs in from the configured networks only and runs within limits (time, memory,
//! result rows, concurrent queries, queries an hour: `clickhouse.analyst`), and a Redis
//! ACL user that reads `rf:<tenant>:*` keys only. Passwords are generated, shown once, and
//! stored as SHA-256 hashes only.

use std::time::Duration;

use rand::RngCore;

use rf_schemas::tenant::api_key_hash as sha256_hex;
use rf_schemas::TenantId;
use rf_sinks::config::{AnalystLimits, ClickHouseConfig, RedisConfig};

use crate::JobError;

/// What `provision` made; the passwords are not kept anywhere.
#[derive(Debug)]
pub struct AnalystAccess {
    /// The ClickHouse user.
    pub clickhouse_user: String,
    /// Its password, or `None` when the user existed already or was not made.
    pub clickhouse_password: Option<String>,
    /// Why the ClickHouse user was not made, if it was not.
    pub clickhouse_missing: Option<String>,
    /// The Redis ACL user.
    pub redis_user: String,
    /// Its password, or `None` when the user existed already.
    pub redis_password: Option<String>,
}

/// `tenant`'s analyst user names: `rf_<tenant>_analyst` in ClickHouse,
/// `rf-<tenant>-analyst` in Redis.
pub fn user_names(tenant: &TenantId) -> (String, String) {
    (
        format!("{}_analyst", tenant.clickhouse_db()),
        format!("rf-{tenant}-analyst"),
    )
}

/// Creates `tenant`'s analyst users where they are missing (an existing one keeps its
/// password).
pub async fn provision(
    clickhouse: &ClickHouseConfig,
    redis: &RedisConfig,
    tenant: &TenantId,
) -> Result<AnalystAccess, JobError> {
    let (ch_user, redis_user) = user_names(tenant);
    let (clickhouse_password, clickhouse_missing) =
        match provision_clickhouse(clickhouse, tenant, &ch_user).await {
            Ok(password) => (password, None),
            Err(Unsupported(why)) => (None, Some(why)),
        };
    let redis_password = provision_redis(redis, tenant, &redis_user).await?;
    Ok(AnalystAccess {
        clickhouse_user: ch_user,
        clickhouse_password,
        clickhouse_missing,
        redis_user,
        redis_password,
    })
}

/// Removes `tenant`'s Redis analyst user, if there is one (for throwaway tenants; the
/// erasure job of a real tenant removes every user of it).
pub async fn remove_redis_user(redis: &RedisConfig, tenant: &TenantId) -> Result<(), JobError> {
    let (_, user) = user_names(tenant);
    let rerr = |e: redis::RedisError| JobError::Invalid(format!("redis ACL for {user}: {e}"));
    let client = redis::Client::open(redis.jobs_connection()).map_err(rerr)?;
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .map_err(rerr)?;
    redis::cmd("ACL")
        .arg("DELUSER")
        .arg(&user)
        .query_async::<()>(&mut conn)
        .await
        .map_err(rerr)
}

/// The users.d file of `tenant`'s analyst `user` (ClickHouse before 20.x): its profile
/// (read-only and the limits), its hourly quota, its networks and its one database.
fn users_xml(tenant: &TenantId, user: &str, hash: &str, limits: &AnalystLimits) -> String {
    let db = tenant.clickhouse_db();
    let networks: String = limits
        .networks
        .iter()
        .map(|n| format!("<ip>{n}</ip>"))
        .collect();
    format!(
        "<?xml version=\"1.0\"?>\n<!-- Tenant {tenant}'s analysts: read-only, database {db} only. Written by roomflow tenant create. -->\n\
         <yandex>\n  <profiles>\n    <{user}>\n      <readonly>1</readonly>\n      <max_execution_time>{}</max_execution_time>\n\
         <max_memory_usage>{}</max_memory_usage>\n      <max_result_rows>{}</max_result_rows>\n      <result_overflow_mode>throw</result_overflow_mode>\n\
         <max_concurrent_queries_for_user>{}</max_concurrent_queries_for_user>\n    </{user}>\n  </profiles>\n\
         <quotas>\n    <{user}>\n      <interval>\n        <duration>3600</duration>\n        <queries>{}</queries>\n        <errors>0</errors>\n\
         <result_rows>0</result_rows>\n        <read_rows>0</read_rows>\n        <execution_time>0</execution_time>\n      </interval>\n    </{user}>\n  </quotas>\n\
         <users>\n    <{user}>\n      <password_sha256_hex>{hash}</password_sha256_hex>\n      <networks>{networks}</networks>\n      <profile>{user}</profile>\n      <quota>{user}</quota>\n\
         <allow_databases><database>{db}</database></allow_databases>\n    </{user}>\n  </users>\n</yandex>\n",
        limits.max_execution_secs,
        limits.max_memory_bytes,
        limits.max_result_rows,
        limits.max_concurrent_queries,
        limits.queries_per_hour,
    )
}

/// The text between `open` and `close` in `s`.
fn between(s: &str, open: &str, close: &str) -> Option<String> {
    let start = s.find(open)? + open.len();
    let len = s[start..].find(close)?;
    Some(s[start..start + len].to_owned())
}

pub(crate) fn password() -> String {
    let mut bytes = [0u8; 18];
    rand::rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Why a ClickHouse analyst user could not be made.
struct Unsupported(String);

async fn provision_clickhouse(
    config: &ClickHouseConfig,
    tenant: &TenantId,
    user: &str,
) -> Result<Option<String>, Unsupported> {
    let failed = |e: &dyn std::fmt::Display| Unsupported(e.to_string());
    let db = tenant.clickhouse_db();
    let limits = &config.analyst;
    if !config.analyst_users_dir.is_empty() {
        // A users.d file, read by the server within seconds of being written. An existing
        // user keeps its password and gets the limits configured now.
        let dir = std::path::Path::new(&config.analyst_users_dir);
        let file = dir.join(format!("{user}.xml"));
        let kept = std::fs::read_to_string(&file)
            .ok()
            .and_then(|xml| between(&xml, "<password_sha256_hex>", "</password_sha256_hex>"));
        let secret = kept.is_none().then(password);
        let hash = kept.unwrap_or_else(|| sha256_hex(secret.as_deref().unwrap_or_default()));
        std::fs::create_dir_all(dir).map_err(|e| {
            failed(&format!(
                "clickhouse.analyst_users_dir {}: {e}",
                dir.display()
            ))
        })?;
        let xml = users_xml(tenant, user, &hash, limits);
        if std::fs::read_to_string(&file).is_ok_and(|old| old == xml) {
            return Ok(None);
        }
        // Written whole, then renamed: the server never reads half a file.
        let partial = dir.join(format!(".{user}.xml.partial"));
        std::fs::write(&partial, xml)
            .and_then(|()| std::fs::rename(&partial, &file))
            .map_err(|e| failed(&format!("cannot write {}: {e}", file.display())))?;
        return Ok(secret);
    }
    let client = rf_sinks::clickhouse::client(config);
    let exists: u64 = client
        .query("SELECT count() FROM system.users WHERE name = ?")
        .bind(user)
        .fetch_one()
        .await
        .map_err(|e| {
            failed(&format!(
                "the server has no SQL user management ({e}); set clickhouse.analyst_users_dir to its users.d folder"
            ))
        })?;
    if exists > 0 {
        return Ok(None);
    }
    let secret = password();
    let hosts = limits
        .networks
        .iter()
        .map(|n| format!("IP '{n}'"))
        .collect::<Vec<_>>()
        .join(", ");
    for statement in [
        format!(
            "CREATE USER IF NOT EXISTS {user} IDENTIFIED WITH sha256_hash BY '{}' HOST {hosts} \
             SETTINGS readonly = 1, max_execution_time = {}, max_memory_usage = {}, \
             max_result_rows = {}, result_overflow_mode = 'throw', \
             max_concurrent_queries_for_user = {}",
            sha256_hex(&secret),
            limits.max_execution_secs,
            limits.max_memory_bytes,
            limits.max_result_rows,
            limits.max_concurrent_queries
        ),
        format!("GRANT SELECT ON {db}.* TO {user}"),
        format!(
            "CREATE QUOTA IF NOT EXISTS {user} FOR INTERVAL 1 hour MAX queries = {} TO {user}",
            limits.queries_per_hour
        ),
    ] {
        client
            .query(&statement)
            .execute()
            .await
            .map_err(|e| failed(&e))?;
    }
    Ok(Some(secret))
}

async fn provision_redis(
    config: &RedisConfig,
    tenant: &TenantId,
    user: &str,
) -> Result<Option<String>, JobError> {
    let rerr = |e: redis::RedisError| JobError::Invalid(format!("redis ACL for {user}: {e}"));
    let client = redis::Client::open(config.jobs_connection()).map_err(rerr)?;
    let mut conn = tokio::time::timeout(
        Duration::from_secs(config.timeout_secs),
        client.get_multiplexed_async_connection(),
    )
    .await
    .map_err(|_| JobError::Invalid(format!("redis ACL for {user}: timed out")))?
    .map_err(rerr)?;
    let users: Vec<String> = redis::cmd("ACL")
        .arg("USERS")
        .query_async(&mut conn)
        .await
        .map_err(rerr)?;
    if users.iter().any(|u| u == user) {
        return Ok(None);
    }
    let secret = password();
    // Reads of the tenant's keys by name only: no KEYS or SCAN (they would show other
    // tenants' key names), no writes, nothing else.
    redis::cmd("ACL")
        .arg("SETUSER")
        .arg(user)
        .arg("reset")
        .arg("on")
        .arg(format!("#{}", sha256_hex(&secret)))
        .arg(format!("~{}*", tenant.redis_prefix()))
        .arg("resetchannels")
        .arg("-@all")
        .arg("+ping")
        .arg("+hget")
        .arg("+hgetall")
        .arg("+hmget")
        .arg("+hexists")
        .arg("+hlen")
        .arg("+get")
        .arg("+mget")
        .arg("+exists")
        .arg("+type")
        .arg("+ttl")
        .query_async::<()>(&mut conn)
        .await
        .map_err(rerr)?;
    Ok(Some(secret))
}
