//! Responses cached in the tenant's region's Redis, under the tenant's write generation:
//! the pipeline bumps the generation once ClickHouse has a write of the tenant's, so a
//! cached response is never served after the numbers behind it changed. Entries expire
//! after `service.cache_ttl_secs`.

use std::future::Future;

use redis::AsyncCommands;

use crate::audit;
use crate::routes::{ApiError, Caller};

/// The response for `request` (a description of the route and its checked parameters):
/// from the cache when there, else from `compute` (once a ClickHouse permit of the
/// region is free), then cached for `ttl_secs` (0: never). A failing Redis only costs
/// the cache.
pub async fn cached<F>(
    caller: &Caller<'_>,
    ttl_secs: u64,
    request: &str,
    compute: F,
) -> Result<serde_json::Value, ApiError>
where
    F: Future<Output = Result<serde_json::Value, ApiError>>,
{
    if ttl_secs == 0 {
        return queried(caller, compute).await;
    }
    let mut redis = caller.stores.redis.clone();
    let generation_key = rf_sinks::redis::generation_key(&caller.tenant);
    let generation: Option<u64> = match redis.get(&generation_key).await {
        Ok(g) => g,
        Err(error) => {
            tracing::warn!(%error, "the response cache is unavailable");
            return queried(caller, compute).await;
        }
    };
    let key = format!(
        "{}cache:{}:{}",
        caller.tenant.redis_prefix(),
        generation.unwrap_or(0),
        rf_schemas::tenant::api_key_hash(request)
    );
    if let Ok(Some(body)) = redis.get::<_, Option<String>>(&key).await {
        if let Ok(value) = serde_json::from_str(&body) {
            audit::remember_cache(true);
            return Ok(value);
        }
    }
    let value = queried(caller, compute).await?;
    audit::remember_cache(false);
    if let Err(error) = redis
        .set_ex::<_, _, ()>(&key, value.to_string(), ttl_secs)
        .await
    {
        tracing::warn!(%error, "cannot cache a response");
    }
    Ok(value)
}

/// `compute`, holding one of the tenant's and one of the region's ClickHouse slots, for
/// at most the query timeout (a moment more than the server's own limit).
pub(crate) async fn queried<T, F>(caller: &Caller<'_>, compute: F) -> Result<T, ApiError>
where
    F: Future<Output = Result<T, ApiError>>,
{
    let _slot = caller
        .stores
        .queries
        .take(&caller.tenant, caller.class())
        .await;
    timed(caller, compute).await
}

/// `compute`, for at most the query timeout; the caller holds its slots.
pub(crate) async fn timed<T, F>(caller: &Caller<'_>, compute: F) -> Result<T, ApiError>
where
    F: Future<Output = Result<T, ApiError>>,
{
    let limit = std::time::Duration::from_secs(caller.query_timeout_secs) + GRACE;
    match tokio::time::timeout(limit, compute).await {
        Ok(answer) => answer,
        Err(_) => Err(ApiError::status(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "the query took longer than {} s; narrow the range or retry later",
                caller.query_timeout_secs
            ),
        )),
    }
}

/// How long past the server's own `max_execution_time` the service still waits.
const GRACE: std::time::Duration = std::time::Duration::from_secs(2);
