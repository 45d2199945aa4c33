//! Rate limits per tenant, counted in the tenant's region's Redis so that every `serve`
//! process of the region shares them: a fixed window per tenant and class of request,
//! counted atomically (one MULTI of SET NX PX, INCR, PTTL).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use rf_schemas::TenantId;

/// The kinds of requests, limited apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// Everything but analytics.
    General,
    /// Ranges over seven days, heatmaps, rankings, insights.
    Analytics,
    /// Batches of readings (`POST /v1/ingest`).
    Ingest,
}

impl Class {
    fn as_str(self) -> &'static str {
        match self {
            Self::General => "general",
            Self::Analytics => "analytics",
            Self::Ingest => "ingest",
        }
    }
}

/// A number of requests per window.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Limit {
    /// Requests allowed per window.
    pub requests: u32,
    /// The window, seconds.
    pub window_secs: u32,
}

/// One tier's limits.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TierLimits {
    /// Of general requests.
    pub general: Limit,
    /// Of analytics requests.
    pub analytics: Limit,
    /// Of ingest requests (batches of readings): 1,000 a minute unless set.
    #[serde(default = "ingest_limit")]
    pub ingest: Limit,
}

fn ingest_limit() -> Limit {
    Limit {
        requests: 1_000,
        window_secs: 60,
    }
}

impl TierLimits {
    fn of(&self, class: Class) -> Limit {
        match class {
            Class::General => self.general,
            Class::Analytics => self.analytics,
            Class::Ingest => self.ingest,
        }
    }
}

/// The limits of every tier: `free`, `standard` and `enterprise`.
pub fn default_limits() -> BTreeMap<String, TierLimits> {
    let tier = |general, analytics| TierLimits {
        general: Limit {
            requests: general,
            window_secs: 900,
        },
        analytics: Limit {
            requests: analytics,
            window_secs: 60,
        },
        ingest: ingest_limit(),
    };
    BTreeMap::from([
        ("free".to_owned(), tier(100, 10)),
        ("standard".to_owned(), tier(100, 10)),
        ("enterprise".to_owned(), tier(1_000, 100)),
    ])
}

/// Where a tenant stands after one more request.
#[derive(Clone, Copy, Debug)]
pub struct Quota {
    /// The limit of the window.
    pub limit: u32,
    /// Requests left in it.
    pub remaining: u32,
    /// Seconds until the window ends.
    pub reset_secs: u64,
    /// Whether this request was over the limit.
    pub exceeded: bool,
}

impl Quota {
    /// The `RateLimit-*` headers (IETF draft), and `Retry-After` when exceeded.
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        let mut headers = vec![
            ("ratelimit-limit", self.limit.to_string()),
            ("ratelimit-remaining", self.remaining.to_string()),
            ("ratelimit-reset", self.reset_secs.to_string()),
        ];
        if self.exceeded {
            headers.push(("retry-after", self.reset_secs.to_string()));
        }
        headers
    }
}

/// Counts one request of `tenant` in `class` against `limits`.
pub async fn count(
    redis: &mut redis::aio::ConnectionManager,
    tenant: &TenantId,
    class: Class,
    limits: &TierLimits,
) -> redis::RedisResult<Quota> {
    count_for(redis, tenant, None, class, limits).await
}

/// [`count`], for one `user` of the tenant (web sessions: each user has its own budget).
pub async fn count_for(
    redis: &mut redis::aio::ConnectionManager,
    tenant: &TenantId,
    user: Option<&str>,
    class: Class,
    limits: &TierLimits,
) -> redis::RedisResult<Quota> {
    let limit = limits.of(class);
    let key = match user {
        None => format!("{}ratelimit:{}", tenant.redis_prefix(), class.as_str()),
        // Hashed: a subject may hold any character.
        Some(user) => format!(
            "{}ratelimit:{}:user:{}",
            tenant.redis_prefix(),
            class.as_str(),
            &rf_schemas::tenant::api_key_hash(user)[..16]
        ),
    };
    let window_ms = u64::from(limit.window_secs) * 1000;
    let (used, ttl_ms): (u64, i64) = redis::pipe()
        .atomic()
        .cmd("SET")
        .arg(&key)
        .arg(0)
        .arg("PX")
        .arg(window_ms)
        .arg("NX")
        .ignore()
        .cmd("INCR")
        .arg(&key)
        .cmd("PTTL")
        .arg(&key)
        .query_async(redis)
        .await?;
    let ttl_ms = if ttl_ms > 0 { ttl_ms as u64 } else { window_ms };
    Ok(Quota {
        limit: limit.requests,
        remaining: u64::from(limit.requests).saturating_sub(used) as u32,
        reset_secs: ttl_ms.div_ceil(1000),
        exceeded: used > u64::from(limit.requests),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_say_what_is_left_and_when_to_retry() {
        let q = Quota {
            limit: 10,
            remaining: 0,
            reset_secs: 42,
            exceeded: true,
        };
        let h = q.headers();
        assert!(h.contains(&("retry-after", "42".into())));
        assert!(h.contains(&("ratelimit-remaining", "0".into())));
        let ok = Quota {
            exceeded: false,
            ..q
        };
        assert!(!ok.headers().iter().any(|(n, _)| *n == "retry-after"));
    }

    #[test]
    fn every_tier_has_limits() {
        let limits = default_limits();
        for tier in ["free", "standard", "enterprise"] {
            assert!(limits[tier].general.requests > 0, "{tier}");
        }
        assert_eq!(
            limits["standard"].general,
            Limit {
                requests: 100,
                window_secs: 900
            }
        );
        assert_eq!(
            limits["standard"].analytics,
            Limit {
                requests: 10,
                window_secs: 60
            }
        );
    }
}
