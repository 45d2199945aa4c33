//! Sink settings, part of roomflow's one config tree.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A secret value: never printed, in `Debug` or in logs.
#[derive(Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    /// The secret itself, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Why this secret cannot guard anything reachable from other machines, if it
    /// cannot: empty, shorter than `min_len`, or a value shipped as an example.
    pub fn weakness(&self, min_len: usize) -> Option<String> {
        let lower = self.0.to_ascii_lowercase();
        if self.0.is_empty() {
            Some("is empty".into())
        } else if PLACEHOLDERS.iter().any(|p| lower.contains(p)) {
            Some("is a placeholder from an example; set a random one".into())
        } else if self.0.chars().count() < min_len {
            Some(format!("is shorter than {min_len} characters"))
        } else {
            None
        }
    }
}

/// Parts of the values shipped in examples, manifests and the local stack.
const PLACEHOLDERS: [&str; 7] = [
    "change-me",
    "changeme",
    "change_me",
    "placeholder",
    "local-development",
    "example",
    "password",
];

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() { "\"\"" } else { "\"***\"" })
    }
}

/// Where and how to reach ClickHouse.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClickHouseConfig {
    /// HTTP endpoint, e.g. `http://127.0.0.1:18123`.
    pub url: String,
    /// User the pipeline and the jobs write as.
    pub user: String,
    /// That user's password.
    pub password: Secret,
    /// Check row types against the server's schema before inserting. Modern servers
    /// support it; ClickHouse 18.16 (the local stack) does not.
    pub validation: bool,
    /// Per-request timeout, seconds.
    pub timeout_secs: u64,
    /// Servers without SQL user management (before 20.x, e.g. the local stack's 18.16):
    /// the server's `users.d` folder, where `tenant create` writes each tenant's analyst
    /// user. Empty: analyst users are created with SQL (`CREATE USER`, `GRANT`).
    pub analyst_users_dir: String,
    /// What each tenant's analyst user may do.
    pub analyst: AnalystLimits,
}

/// What a tenant's analyst user may do in ClickHouse: read its tenant's database only
/// (always read-only), from these networks, within these limits, so one tenant's
/// analysts cannot starve the server that other tenants' pipelines write to.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct AnalystLimits {
    /// The longest a query runs, seconds.
    pub max_execution_secs: u32,
    /// Memory one query may use, bytes.
    pub max_memory_bytes: u64,
    /// Rows one result may hold: a larger result fails instead of streaming on.
    pub max_result_rows: u64,
    /// Queries the user may run at once.
    pub max_concurrent_queries: u32,
    /// Queries the user may run in an hour.
    pub queries_per_hour: u32,
    /// Networks the user may log in from (`10.0.0.0/8`, `::1`): the analysts' VPN or
    /// BI hosts. The default is this machine only.
    pub networks: Vec<String>,
}

impl Default for AnalystLimits {
    fn default() -> Self {
        Self {
            max_execution_secs: 30,
            max_memory_bytes: 2 << 30,
            max_result_rows: 1_000_000,
            max_concurrent_queries: 4,
            queries_per_hour: 3_600,
            networks: vec!["127.0.0.1/32".into(), "::1/128".into()],
        }
    }
}

impl AnalystLimits {
    /// Checks the ranges, naming the field.
    pub fn validate(&self) -> Result<(), String> {
        let bad =
            |field: &str, problem: &str| Err(format!("clickhouse.analyst.{field}: {problem}"));
        if !(1..=3600).contains(&self.max_execution_secs) {
            return bad("max_execution_secs", "must be between 1 and 3600");
        }
        if self.max_memory_bytes < 1 << 20 {
            return bad("max_memory_bytes", "must be at least 1048576 (1 MiB)");
        }
        if self.max_result_rows == 0
            || self.max_concurrent_queries == 0
            || self.queries_per_hour == 0
        {
            return bad(
                "max_result_rows, max_concurrent_queries and queries_per_hour",
                "must be at least 1",
            );
        }
        if self.networks.is_empty() {
            return bad("networks", "must name at least one network");
        }
        for n in &self.networks {
            n.parse::<crate::endpoint::Network>()
                .map_err(|problem| format!("clickhouse.analyst.networks: {problem}"))?;
        }
        Ok(())
    }
}

impl Default for ClickHouseConfig {
    fn default() -> Self {
        Self {
            url: "http://127.0.0.1:18123".into(),
            user: "default".into(),
            password: Secret::default(),
            validation: false,
            timeout_secs: 30,
            analyst_users_dir: String::new(),
            analyst: AnalystLimits::default(),
        }
    }
}

/// The local stack's Redis as its administrator (every command, every key): for the
/// operator's inspection and tests, never a component's own connection. Its password,
/// like the components' below, is refused for any Redis beyond loopback.
pub const LOCAL_REDIS_URL: &str =
    "redis://roomflow:roomflow-local-development-only@127.0.0.1:16379/0";

/// Where to reach Redis. Each component connects as its own user with the least rights
/// it needs (the local stack's, compose's and docs/security.md's ACLs):
/// - the pipeline (`url`): writes the live keys and generation counters, reads nothing;
/// - the query service (`service_url`): reads `rf:*`, writes only its caches and rate
///   limits;
/// - the jobs (`jobs_url`): erasure and retention deletes, backfills' generation counters,
///   and the analysts' ACL users.
#[derive(Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RedisConfig {
    /// The pipeline's connection: `redis://[user:password@]host:port/db` (or `rediss://`
    /// for TLS); a Redis beyond loopback needs a user and a real password. Never printed
    /// with its password.
    pub url: String,
    /// The query service's connection to the same Redis; empty: `url`.
    pub service_url: String,
    /// The jobs' connection to the same Redis; empty: `url`.
    pub jobs_url: String,
    /// Per-command timeout, seconds.
    pub timeout_secs: u64,
}

fn or_url<'a>(given: &'a str, url: &'a str) -> &'a str {
    if given.is_empty() {
        url
    } else {
        given
    }
}

impl fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use crate::endpoint::redact;
        f.debug_struct("RedisConfig")
            .field("url", &redact(&self.url))
            .field("service_url", &redact(&self.service_url))
            .field("jobs_url", &redact(&self.jobs_url))
            .field("timeout_secs", &self.timeout_secs)
            .finish()
    }
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self::local(16379)
    }
}

impl RedisConfig {
    /// A Redis of the local stack on `port`, each component as its own user.
    pub fn local(port: u16) -> Self {
        let url = |user: &str| {
            format!("redis://{user}:roomflow-local-development-only@127.0.0.1:{port}/0")
        };
        Self {
            url: url("rf-pipeline"),
            service_url: url("rf-service"),
            jobs_url: url("rf-jobs"),
            timeout_secs: 5,
        }
    }

    /// The same Redis as the query service connects to it.
    pub fn as_service(&self) -> Self {
        Self {
            url: self.service_connection().to_owned(),
            ..self.clone()
        }
    }

    /// The query service's URL: `service_url`, or `url` if that is empty.
    pub fn service_connection(&self) -> &str {
        or_url(&self.service_url, &self.url)
    }

    /// The jobs' URL: `jobs_url`, or `url` if that is empty.
    pub fn jobs_connection(&self) -> &str {
        or_url(&self.jobs_url, &self.url)
    }

    /// Each connection's setting name and URL, for checks; unset ones left out.
    pub fn urls(&self) -> Vec<(&'static str, &str)> {
        [
            ("url", self.url.as_str()),
            ("service_url", &self.service_url),
            ("jobs_url", &self.jobs_url),
        ]
        .into_iter()
        .filter(|(name, url)| *name == "url" || !url.is_empty())
        .collect()
    }

    /// The field of the first URL that is not `redis://` or `rediss://`, if one is not.
    pub fn bad_scheme(&self) -> Option<&'static str> {
        self.urls()
            .into_iter()
            .find(|(_, url)| !(url.starts_with("redis://") || url.starts_with("rediss://")))
            .map(|(field, _)| field)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?}"), "\"***\"");
        assert_eq!(s.expose(), "hunter2");
        let c = ClickHouseConfig {
            password: s,
            ..Default::default()
        };
        assert!(!format!("{c:?}").contains("hunter2"));
        let r = RedisConfig {
            url: "redis://roomflow:hunter2@10.0.0.5:6379/0".into(),
            ..Default::default()
        };
        assert!(!format!("{r:?}").contains("hunter2"), "{r:?}");
    }

    #[test]
    fn analyst_limits_name_the_bad_field() {
        assert_eq!(AnalystLimits::default().validate(), Ok(()));
        let networks = AnalystLimits {
            networks: vec!["10.0.0.0/8".into(), "nowhere".into()],
            ..Default::default()
        };
        assert!(networks
            .validate()
            .unwrap_err()
            .starts_with("clickhouse.analyst.networks"));
        let slow = AnalystLimits {
            max_execution_secs: 0,
            ..Default::default()
        };
        assert!(slow.validate().unwrap_err().contains("max_execution_secs"));
    }
}
