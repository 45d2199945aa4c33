//! Who is who: the tenants' regions and states and the active API keys, read from the
//! platform's ClickHouse tables (`rf_platform.tenants`, `rf_platform.api_keys`) and
//! refreshed every few seconds; and each served region's stores.

use std::collections::HashMap;
use std::sync::RwLock;

use clickhouse::Row;
use serde::Deserialize;

use rf_schemas::TenantId;
use rf_sinks::config::{ClickHouseConfig, RedisConfig};

/// One region this service reads from.
#[derive(Clone, Debug)]
pub struct RegionStores {
    /// The region's name.
    pub name: String,
    /// Its ClickHouse.
    pub clickhouse: ClickHouseConfig,
    /// Its Redis.
    pub redis: RedisConfig,
}

/// What the service reads from.
#[derive(Clone, Debug)]
pub struct Stores {
    /// The home region's name: it holds the platform's tables.
    pub home: String,
    /// The ClickHouse holding `rf_platform` (the home region's).
    pub platform: ClickHouseConfig,
    /// The regions this service serves.
    pub regions: Vec<RegionStores>,
}

impl Stores {
    /// The stores of the `served` regions `(name, ClickHouse, Redis)`, the home region
    /// named `home` with its ClickHouse holding the platform's tables.
    pub fn new(
        home: &str,
        platform: &ClickHouseConfig,
        served: impl IntoIterator<Item = (String, ClickHouseConfig, RedisConfig)>,
    ) -> Self {
        Self {
            home: home.to_owned(),
            platform: platform.clone(),
            regions: served
                .into_iter()
                .map(|(name, clickhouse, redis)| RegionStores {
                    name,
                    clickhouse,
                    redis,
                })
                .collect(),
        }
    }
}

/// Why a tenant's data cannot be served here.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The platform has no such tenant: never created, or erased.
    Unknown,
    /// The tenant was deleted.
    Deleted,
    /// Its data lives in a region this service does not serve.
    Elsewhere(String),
}

#[derive(Row, Deserialize)]
struct TenantRow {
    tenant: String,
    display_name: String,
    region: String,
    tier: String,
    deleted: u8,
}

#[derive(Row, Deserialize)]
struct RevocationRow {
    tenant: String,
    not_before: u32,
}

#[derive(Row, Deserialize)]
struct RoleRow {
    tenant: String,
    principal: String,
    role: String,
}

#[derive(Row, Deserialize)]
struct KeyRow {
    sha256: String,
    tenant: String,
    key_id: String,
    offices: Vec<String>,
}

/// A tenant as the service knows it.
#[derive(Clone, Debug)]
pub struct Known {
    /// The name people see.
    pub name: String,
    /// Its region.
    pub region: String,
    /// Its tier.
    pub tier: String,
    /// Whether it was deleted.
    pub deleted: bool,
}

/// The tenants and keys, as of the last refresh.
pub struct Directory {
    regions: Vec<String>,
    tenants: RwLock<HashMap<String, Known>>,
    /// Active keys: SHA-256 → (tenant, key id).
    keys: RwLock<HashMap<String, (TenantId, String)>>,
    /// The offices each ingest key limited to sites sends readings of, by key id.
    sites: RwLock<HashMap<String, std::sync::Arc<[String]>>>,
    /// Per tenant, the time (s) before which its bearer tokens were revoked.
    revoked_before: RwLock<HashMap<String, u64>>,
    /// The roles the tenants' admins set: (tenant, principal) → role or `none`.
    assigned: RwLock<HashMap<(String, String), String>>,
}

impl Directory {
    /// An empty directory for `stores`' regions.
    pub fn new(stores: &Stores) -> Self {
        Self {
            regions: stores.regions.iter().map(|r| r.name.clone()).collect(),
            tenants: RwLock::default(),
            keys: RwLock::default(),
            sites: RwLock::default(),
            revoked_before: RwLock::default(),
            assigned: RwLock::default(),
        }
    }

    /// Reads both tables again. Absent tables (no tenant registered yet) are empty.
    pub async fn refresh(
        &self,
        platform: &clickhouse::Client,
    ) -> Result<(), clickhouse::error::Error> {
        let tenants: Vec<TenantRow> = absent_is_empty(
            platform
                .query("SELECT tenant, display_name, region, tier, deleted FROM rf_platform.tenants FINAL")
                .fetch_all()
                .await,
        )?;
        let keys: Vec<KeyRow> = absent_is_empty(
            platform
                .query("SELECT sha256, tenant, key_id, offices FROM rf_platform.api_keys FINAL WHERE revoked = 0")
                .fetch_all()
                .await,
        )?;
        let revocations: Vec<RevocationRow> = absent_is_empty(
            platform
                .query("SELECT tenant, max(not_before) AS not_before FROM rf_platform.token_revocations GROUP BY tenant")
                .fetch_all()
                .await,
        )?;
        let assigned: Vec<RoleRow> = absent_is_empty(
            platform
                .query(
                    "SELECT tenant, principal, role FROM rf_platform.roles FINAL WHERE role != ''",
                )
                .fetch_all()
                .await,
        )?;
        let assigned = assigned
            .into_iter()
            .map(|r| ((r.tenant, r.principal), r.role))
            .collect();
        let revoked_before = revocations
            .into_iter()
            .map(|r| (r.tenant, u64::from(r.not_before)))
            .collect();
        let tenants = tenants
            .into_iter()
            .map(|t| {
                let known = Known {
                    name: t.display_name,
                    region: t.region,
                    tier: t.tier,
                    deleted: t.deleted == 1,
                };
                (t.tenant, known)
            })
            .collect();
        let sites = keys
            .iter()
            .filter(|k| !k.offices.is_empty())
            .map(|k| (k.key_id.clone(), k.offices.clone().into()))
            .collect();
        let keys = keys
            .into_iter()
            .filter_map(|k| Some((k.sha256, (TenantId::parse(&k.tenant).ok()?, k.key_id))))
            .collect();
        *self.tenants.write().unwrap_or_else(|e| e.into_inner()) = tenants;
        *self.keys.write().unwrap_or_else(|e| e.into_inner()) = keys;
        *self.sites.write().unwrap_or_else(|e| e.into_inner()) = sites;
        *self.assigned.write().unwrap_or_else(|e| e.into_inner()) = assigned;
        *self
            .revoked_before
            .write()
            .unwrap_or_else(|e| e.into_inner()) = revoked_before;
        Ok(())
    }

    /// The served regions' names, in order.
    pub fn region_names(&self) -> &[String] {
        &self.regions
    }

    /// The tenant and key id of an active API key.
    pub fn key(&self, key: &str) -> Option<(TenantId, String)> {
        let hash = rf_schemas::tenant::api_key_hash(key);
        self.keys
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&hash)
            .cloned()
    }

    /// The only offices the ingest key `key_id` sends readings of, when it is limited to
    /// sites.
    pub fn sites(&self, key_id: &str) -> Option<std::sync::Arc<[String]>> {
        self.sites
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(key_id)
            .cloned()
    }

    /// The role `tenant`'s admin set for `principal` (`none`: no access), if any.
    pub fn assigned(&self, tenant: &TenantId, principal: &str) -> Option<String> {
        self.assigned
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&(tenant.to_string(), principal.to_owned()))
            .cloned()
    }

    /// What the directory knows of `tenant`, if the platform has it.
    pub fn known(&self, tenant: &TenantId) -> Option<Known> {
        self.tenants
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(tenant.as_str())
            .cloned()
    }

    /// Whether `tenant`'s bearer tokens issued at `issued_at` (s) were revoked since.
    pub fn revoked(&self, tenant: &TenantId, issued_at: u64) -> bool {
        self.revoked_before
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(tenant.as_str())
            .is_some_and(|before| issued_at < *before)
    }

    /// The index of `tenant`'s region among the served ones, and its tier.
    pub fn region_of(&self, tenant: &TenantId) -> Result<(usize, String), Refusal> {
        let known = self.known(tenant).ok_or(Refusal::Unknown)?;
        if known.deleted {
            return Err(Refusal::Deleted);
        }
        match self.regions.iter().position(|r| *r == known.region) {
            Some(region) => Ok((region, known.tier)),
            None => Err(Refusal::Elsewhere(known.region)),
        }
    }
}

/// A query over a database or table that does not exist (yet) answers nothing.
pub(crate) fn absent_is_empty<T>(
    result: Result<Vec<T>, clickhouse::error::Error>,
) -> Result<Vec<T>, clickhouse::error::Error> {
    match result {
        // 60: no such table, 81: no such database.
        Err(clickhouse::error::Error::BadResponse(m))
            if m.contains("Code: 60") || m.contains("Code: 81") =>
        {
            Ok(Vec::new())
        }
        other => other,
    }
}
