//! Tenant ids and the names of everything a tenant owns.

use std::fmt;
use std::sync::Arc;

pub use crate::alerts::{AlertKind, AlertRule, AlertTarget};

/// Prefix of a tenant's readings topic.
pub const READINGS_PREFIX: &str = "occupancy.";
/// Prefix of a tenant's compacted room metadata topic.
pub const ROOMS_PREFIX: &str = "rooms.";
/// Prefix of a tenant's calendar bookings topic.
pub const BOOKINGS_PREFIX: &str = "bookings.";
/// Prefix of a tenant's dead-letter topic.
pub const DEADLETTER_PREFIX: &str = "deadletter.";

/// Ids held by the platform: `platform` names its database (`rf_platform`); the rest
/// name its topics, service users and the servers' own databases and users, now or
/// later.
const RESERVED_IDS: [&str; 8] = [
    "platform", "roomflow", "system", "default", "admin", "internal", "pipeline", "service",
];

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

    /// Why `self` cannot be a new tenant, if it cannot: ids whose derived names are the
    /// platform's own (its database `rf_platform`, its topics `roomflow.*`, its service
    /// users) or a server's built-in ones. Distinct valid ids never share a derived name
    /// with each other: only `-` is rewritten (to `_`, which no id holds).
    pub fn reserved(&self) -> Option<String> {
        let db = self.clickhouse_db();
        RESERVED_IDS.contains(&self.as_str()).then(|| {
            format!(
                "tenant id {self} is reserved: its names (database {db}, Redis prefix {}) are the platform's",
                self.redis_prefix()
            )
        })
    }

    /// The same id in an allocation of its own. Clones share one reference count: a
    /// worker that clones an id per record takes its own copy first, so that workers do
    /// not contend for that count's cache line across cores.
    pub fn unshared(&self) -> Self {
        Self(Arc::from(&*self.0))
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

    /// `bookings.<tenant>`: booking versions from calendars, keyed by office id.
    pub fn bookings_topic(&self) -> String {
        format!("{BOOKINGS_PREFIX}{self}")
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

/// The compacted topic holding the tenant registry: key the tenant id, value a
/// [`TenantConfig`] as JSON, a tombstone once the tenant is erased.
pub const TENANTS_TOPIC: &str = "roomflow.tenants";

/// Retention when a tenant does not say: two years.
pub const DEFAULT_RETENTION_DAYS: u32 = 730;

/// A tenant's entry in the tenant registry.
///
/// Readers ignore fields they do not know, so newer writers may add some.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TenantConfig {
    /// The tenant id.
    pub tenant: String,
    /// The name people see.
    pub display_name: String,
    /// The customer's industry, free text.
    #[serde(default)]
    pub industry: String,
    /// The service tier: rate limits and quotas follow it.
    pub tier: Tier,
    /// Where the tenant's data lives: one of the platform's regions. It never changes.
    pub region: String,
    /// How long the tenant's rows are kept.
    pub retention_days: u32,
    /// Where the tenant's alerts go.
    #[serde(default)]
    pub alert_targets: Vec<AlertTarget>,
    /// What the tenant is alerted about; every target gets every rule's alerts.
    #[serde(default = "AlertRule::defaults")]
    pub alert_rules: Vec<AlertRule>,
    /// When the tenant was created, ms since the Unix epoch.
    pub created_ms: i64,
    /// When the entry last changed, ms since the Unix epoch; it orders revisions.
    pub updated_ms: i64,
    /// When the tenant was deleted (its data is erased after a grace period), if it was.
    #[serde(default)]
    pub deleted_ms: Option<i64>,
    /// When the tenant agreed to contribute to cross-tenant benchmarks (ms), while it
    /// does: revoking clears it, and the next computation leaves the tenant out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub benchmarks_opt_in_ms: Option<i64>,
    /// The share of capacity above which a room or office is in breach (the
    /// `capacity_breach` anomalies and alerts); absent: 1, over capacity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity_breach_at: Option<f64>,
}

/// A tenant's service tier.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    /// Trials and pilots.
    Free,
    /// The default.
    Standard,
    /// Large portfolios.
    Enterprise,
}

impl Tier {
    /// The tier's name in configs and tables.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Free => "free",
            Self::Standard => "standard",
            Self::Enterprise => "enterprise",
        }
    }
}

impl std::str::FromStr for Tier {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "free" => Ok(Self::Free),
            "standard" => Ok(Self::Standard),
            "enterprise" => Ok(Self::Enterprise),
            _ => Err(format!(
                "unknown tier {s:?}: expected free, standard or enterprise"
            )),
        }
    }
}

/// What a caller may do in its tenant; each reading role includes the ones before it.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Only sends readings (`POST /v1/ingest`): an API key of a sensor or gateway, which
    /// reads nothing. No person holds it.
    Ingest,
    /// Reads: occupancy, series, heatmaps, anomalies, forecasts.
    Viewer,
    /// Also the analytics endpoints (rankings, under-used rooms) and exports.
    Analyst,
    /// Also manages the tenant: users, API keys, alert targets and rules, settings.
    Admin,
}

impl Role {
    /// The roles a person may hold, weakest first.
    pub const ALL: [Role; 3] = [Role::Viewer, Role::Analyst, Role::Admin];

    /// The role's name in configs, claims and tables.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ingest => "ingest",
            Self::Viewer => "viewer",
            Self::Analyst => "analyst",
            Self::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "ingest" => Ok(Self::Ingest),
            "viewer" => Ok(Self::Viewer),
            "analyst" => Ok(Self::Analyst),
            "admin" => Ok(Self::Admin),
            _ => Err(format!(
                "unknown role {s:?}: expected viewer, analyst, admin or ingest"
            )),
        }
    }
}

/// The SHA-256 of an API key, hex: all that is stored of it, and what a verifier looks up.
pub fn api_key_hash(key: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(key.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Whether `name` can name a region: 2 to 20 characters of a-z, 0-9 and '-'.
pub fn valid_region(name: &str) -> bool {
    (2..=20).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

impl TenantConfig {
    /// The id, checked.
    pub fn id(&self) -> Result<TenantId, InvalidTenant> {
        TenantId::parse(&self.tenant)
    }

    /// Whether the tenant was deleted.
    pub fn is_deleted(&self) -> bool {
        self.deleted_ms.is_some()
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

    #[test]
    fn reserved_ids_are_refused_and_other_ids_never_share_a_name() {
        let platform = TenantId::parse("platform").unwrap();
        assert_eq!(platform.clickhouse_db(), "rf_platform");
        let why = platform.reserved().expect("reserved");
        assert!(why.contains("rf_platform"), "{why}");
        assert!(TenantId::parse("platform-eu").unwrap().reserved().is_none());
        let ids = [
            "a-b", "ab", "a-b-c", "a-bc", "ab-c", "abc", "acme", "acme-eu",
        ];
        let mut names = std::collections::HashSet::new();
        for id in ids.map(|s| TenantId::parse(s).unwrap()) {
            assert!(id.reserved().is_none());
            for name in [
                id.clickhouse_db(),
                id.redis_prefix(),
                id.readings_topic(),
                id.rooms_topic(),
                id.deadletter_topic(),
            ] {
                assert!(names.insert(name.clone()), "{name} is shared");
            }
        }
    }

    #[test]
    fn tenant_config_round_trips_and_ignores_unknown_fields() {
        let config = TenantConfig {
            tenant: "acme".into(),
            display_name: "Acme Corp".into(),
            industry: "finance".into(),
            tier: Tier::Enterprise,
            region: "eu".into(),
            retention_days: 365,
            alert_targets: vec!["slack=https://hooks.slack.com/services/T/B/secret"
                .parse()
                .unwrap()],
            alert_rules: AlertRule::defaults(),
            created_ms: 1,
            updated_ms: 2,
            deleted_ms: None,
            benchmarks_opt_in_ms: None,
            capacity_breach_at: None,
        };
        let mut json: serde_json::Value = serde_json::to_value(&config).unwrap();
        json["added_later"] = serde_json::json!(true);
        let back: TenantConfig = serde_json::from_value(json).unwrap();
        assert_eq!(back, config);
        assert_eq!(
            config.alert_targets[0].masked_url(),
            "https://hooks.slack.com/***"
        );
    }

    #[test]
    fn bad_regions_and_tiers_are_refused() {
        assert!(valid_region("eu") && valid_region("us-east-1"));
        assert!(!valid_region("E") && !valid_region("eu_1") && !valid_region("1eu"));
        assert!("gold".parse::<Tier>().is_err());
    }

    #[test]
    fn api_keys_hash_to_sha256_hex() {
        assert_eq!(
            api_key_hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
