//! Tenant ids and the names of everything a tenant owns.

use std::fmt;
use std::sync::Arc;

/// Prefix of a tenant's readings topic.
pub const READINGS_PREFIX: &str = "occupancy.";
/// Prefix of a tenant's compacted room metadata topic.
pub const ROOMS_PREFIX: &str = "rooms.";
/// Prefix of a tenant's dead-letter topic.
pub const DEADLETTER_PREFIX: &str = "deadletter.";

/// A validated tenant id (`^[a-z][a-z0-9-]{1,39}$`); cheap to clone.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TenantId(Arc<str>);

/// Why a string is not a tenant id.
#[derive(Debug, thiserror::Error)]
#[error("invalid tenant id {0:?}: expected 2 to 40 characters of a-z, 0-9 and '-', starting with a letter")]
pub struct InvalidTenant(pub String);

impl TenantId {
    /// Checks `s` against the contract's pattern.
    pub fn parse(s: &str) -> Result<Self, InvalidTenant> {
        let mut chars = s.chars();
        let first_ok = chars.next().is_some_and(|c| c.is_ascii_lowercase());
        let rest_ok = chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if first_ok && rest_ok && (2..=40).contains(&s.len()) {
            Ok(Self(s.into()))
        } else {
            Err(InvalidTenant(s.to_owned()))
        }
    }

    /// The id itself.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `occupancy.<tenant>`: readings, keyed by office id.
    pub fn readings_topic(&self) -> String {
        format!("{READINGS_PREFIX}{self}")
    }

    /// `rooms.<tenant>`: room versions, compacted, keyed by `<room_id>@<effective_from>`.
    pub fn rooms_topic(&self) -> String {
        format!("{ROOMS_PREFIX}{self}")
    }

    /// `deadletter.<tenant>`: rejected readings with their reasons.
    pub fn deadletter_topic(&self) -> String {
        format!("{DEADLETTER_PREFIX}{self}")
    }

    /// `rf_<tenant with - replaced by _>`: the tenant's ClickHouse database.
    pub fn clickhouse_db(&self) -> String {
        format!("rf_{}", self.0.replace('-', "_"))
    }

    /// `rf:<tenant>:`: the prefix of every Redis key of the tenant.
    pub fn redis_prefix(&self) -> String {
        format!("rf:{self}:")
    }

    /// The tenant whose readings or rooms topic is `topic`, if it is one.
    pub fn from_topic(topic: &str) -> Option<Self> {
        let rest = topic
            .strip_prefix(READINGS_PREFIX)
            .or_else(|| topic.strip_prefix(ROOMS_PREFIX))?;
        Self::parse(rest).ok()
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", &*self.0)
    }
}

impl std::str::FromStr for TenantId {
    type Err = InvalidTenant;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_only_the_contract_pattern() {
        for ok in ["ab", "acme", "acme-eu-2", &"a".repeat(40)] {
            assert!(TenantId::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "a",
            "1acme",
            "Acme",
            "ac_me",
            "ac.me",
            "-acme",
            &"a".repeat(41),
        ] {
            assert!(TenantId::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn names_are_derived_one_to_one() {
        let t = TenantId::parse("acme-eu").unwrap();
        assert_eq!(t.readings_topic(), "occupancy.acme-eu");
        assert_eq!(t.rooms_topic(), "rooms.acme-eu");
        assert_eq!(t.deadletter_topic(), "deadletter.acme-eu");
        assert_eq!(t.clickhouse_db(), "rf_acme_eu");
        assert_eq!(t.redis_prefix(), "rf:acme-eu:");
        assert_eq!(TenantId::from_topic("rooms.acme-eu"), Some(t));
        assert_eq!(TenantId::from_topic("deadletter.acme-eu"), None);
    }
}
