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
        }
    }
}

/// Where to reach Redis.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RedisConfig {
    /// `redis://host:port/db`.
    pub url: String,
    /// Per-command timeout, seconds.
    pub timeout_secs: u64,
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self {
            url: "redis://127.0.0.1:16379/0".into(),
            timeout_secs: 5,
        }
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
    }
}
