//! Data residency: the platform's regions, each with its own broker, ClickHouse and Redis,
//! and which of them a deployment serves.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use rf_schemas::tenant::valid_region;
use rf_sinks::config::{ClickHouseConfig, RedisConfig};

use crate::config::InvalidSetting;
use crate::run::Settings;

/// The platform's regions. The top-level `kafka`, `clickhouse` and `redis` settings are
/// the home region's; every other region names its own stores.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RegionsConfig {
    /// The home region's name: tenants without a registry entry live here.
    pub home: String,
    /// The regions this deployment's pipeline and service serve; empty: every region
    /// configured. They must share one broker (one deployment per broker).
    pub serve: Vec<String>,
    /// The other regions, by name.
    pub remote: BTreeMap<String, RegionStores>,
}

impl Default for RegionsConfig {
    fn default() -> Self {
        Self {
            home: "default".into(),
            serve: Vec::new(),
            remote: BTreeMap::new(),
        }
    }
}

/// Where one region keeps its data.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RegionStores {
    /// The region's brokers (`host:port,…`); empty: the same as `kafka.brokers`.
    pub brokers: String,
    /// The region's ClickHouse.
    pub clickhouse: ClickHouseConfig,
    /// The region's Redis.
    pub redis: RedisConfig,
}

/// One region, resolved: its name and its stores.
#[derive(Clone, Debug)]
pub struct Region {
    /// The region's name.
    pub name: String,
    /// Its brokers.
    pub brokers: String,
    /// Its ClickHouse.
    pub clickhouse: ClickHouseConfig,
    /// Its Redis.
    pub redis: RedisConfig,
}

impl Settings {
    /// Every configured region, the home region first.
    pub fn regions(&self) -> Vec<Region> {
        let home = Region {
            name: self.regions.home.clone(),
            brokers: self.kafka.brokers.clone(),
            clickhouse: self.clickhouse.clone(),
            redis: self.redis.clone(),
        };
        let remote = self.regions.remote.iter().map(|(name, r)| Region {
            name: name.clone(),
            brokers: if r.brokers.is_empty() {
                self.kafka.brokers.clone()
            } else {
                r.brokers.clone()
            },
            clickhouse: r.clickhouse.clone(),
            redis: r.redis.clone(),
        });
        std::iter::once(home).chain(remote).collect()
    }

    /// The regions this deployment serves, the home region first if it is one.
    pub fn served_regions(&self) -> Vec<Region> {
        let serve = &self.regions.serve;
        self.regions()
            .into_iter()
            .filter(|r| serve.is_empty() || serve.contains(&r.name))
            .collect()
    }

    /// The region named `name`, if it is configured.
    pub fn region(&self, name: &str) -> Option<Region> {
        self.regions().into_iter().find(|r| r.name == name)
    }
}

impl RegionsConfig {
    /// Checks names and that the served regions share the deployment's broker.
    pub fn validate(&self, brokers: &str) -> Result<(), InvalidSetting> {
        let bad = |field, problem: String| Err(InvalidSetting { field, problem });
        let name_problem = |n: &str| {
            format!("{n:?} is not a region name (2 to 20 characters of a-z, 0-9 and '-')")
        };
        if !valid_region(&self.home) {
            return bad("regions.home", name_problem(&self.home));
        }
        for (name, stores) in &self.remote {
            if !valid_region(name) {
                return bad("regions.remote", name_problem(name));
            }
            if *name == self.home {
                return bad(
                    "regions.remote",
                    format!(
                        "{name} is the home region; its stores are kafka, clickhouse and redis"
                    ),
                );
            }
            if !stores.clickhouse.url.starts_with("http://")
                && !stores.clickhouse.url.starts_with("https://")
            {
                return bad(
                    "regions.remote.clickhouse.url",
                    format!(
                        "{name}: {:?} must start with http:// or https://",
                        stores.clickhouse.url
                    ),
                );
            }
            if let Some(field) = stores.redis.bad_scheme() {
                let field = match field {
                    "service_url" => "regions.remote.redis.service_url",
                    "jobs_url" => "regions.remote.redis.jobs_url",
                    _ => "regions.remote.redis.url",
                };
                return bad(
                    field,
                    format!("{name}: must start with redis:// or rediss://"),
                );
            }
        }
        for name in &self.serve {
            let Some(stores) = (*name != self.home).then(|| self.remote.get(name)) else {
                continue;
            };
            let Some(stores) = stores else {
                return bad(
                    "regions.serve",
                    format!("{name:?} is not a configured region (regions.home or regions.remote)"),
                );
            };
            if !stores.brokers.is_empty() && stores.brokers != brokers {
                return bad(
                    "regions.serve",
                    format!(
                        "{name}'s brokers {} are not kafka.brokers {brokers}; run one deployment per broker",
                        stores.brokers
                    ),
                );
            }
        }
        if self.serve.is_empty() {
            if let Some((name, r)) = self
                .remote
                .iter()
                .find(|(_, r)| !r.brokers.is_empty() && r.brokers != brokers)
            {
                return bad(
                    "regions.serve",
                    format!(
                        "empty (every region), but {name}'s brokers {} are not kafka.brokers {brokers}; list the regions this deployment serves",
                        r.brokers
                    ),
                );
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eu() -> RegionStores {
        RegionStores {
            clickhouse: ClickHouseConfig {
                url: "http://127.0.0.1:18124".into(),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn served_regions_resolve_their_stores() {
        let mut s = Settings::default();
        s.regions.home = "us".into();
        s.regions.remote.insert("eu".into(), eu());
        s.regions.validate(&s.kafka.brokers).unwrap();
        let names: Vec<_> = s.served_regions().into_iter().map(|r| r.name).collect();
        assert_eq!(names, ["us", "eu"]);
        let eu = s.region("eu").unwrap();
        assert_eq!(eu.clickhouse.url, "http://127.0.0.1:18124");
        assert_eq!(eu.brokers, s.kafka.brokers);
        s.regions.serve = vec!["eu".into()];
        assert_eq!(s.served_regions().len(), 1);
    }

    #[test]
    fn bad_regions_name_the_field() {
        let r = RegionsConfig {
            serve: vec!["mars".into()],
            ..Default::default()
        };
        assert_eq!(r.validate("b:1").unwrap_err().field, "regions.serve");
        let mut r = RegionsConfig::default();
        r.remote.insert("EU".into(), eu());
        assert_eq!(r.validate("b:1").unwrap_err().field, "regions.remote");
        let mut r = RegionsConfig::default();
        let mut far = eu();
        far.brokers = "other:9092".into();
        r.remote.insert("eu".into(), far);
        assert_eq!(r.validate("b:1").unwrap_err().field, "regions.serve");
        r.serve = vec!["default".into()];
        r.validate("b:1").unwrap();
    }
}
