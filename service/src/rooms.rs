//! A tenant's room metadata, every version, read from its `rooms` mirror and kept in this
//! process under the tenant's history generation, which the pipeline bumps once it has
//! mirrored or withdrawn a version, and under the fingerprint of the mirror's parts (see
//! [`crate::parts`]), checked every `service.cache_ttl_secs`. The
//! portfolio endpoints, the floors and offices of series and the costs of insights read
//! it, not ClickHouse.

use std::sync::Arc;

use chrono::Utc;
use clickhouse::Row;
use serde::Deserialize;

use rf_schemas::TenantId;

use crate::audit;
use crate::cache::queried;
use crate::parts::fingerprint;
use crate::portfolio::no_database_is_empty;
use crate::routes::{ApiError, Caller};
use crate::AppState;

/// One version of a room, in effect from `effective_from` until the room's next.
#[derive(Row, Deserialize, Debug)]
pub(crate) struct Version {
    pub room_id: String,
    pub office_id: String,
    pub office_name: String,
    pub region: String,
    pub country_code: String,
    pub timezone: String,
    pub floor: i32,
    pub name: String,
    pub kind: String,
    pub capacity: u32,
    pub area_m2: Option<f32>,
    pub monthly_cost: Option<f64>,
    pub effective_from: u32,
}

/// Every version of a tenant's rooms, and those in effect when it was read.
#[derive(Debug, Default)]
pub(crate) struct Metadata {
    /// By room, then time.
    versions: Vec<Version>,
    /// Indices of the versions in effect, by office and room.
    current: Vec<usize>,
    /// The same, by room.
    by_room: Vec<usize>,
    /// Which read of metadata this is: months of room days link their rows to it once.
    pub(crate) id: u64,
    /// The offices in effect: a version of the office, rooms, capacity; by id.
    offices: Vec<(usize, u64, u64)>,
    /// When the next version takes effect (seconds; `i64::MAX`: none known).
    until: i64,
    /// The memory it holds, roughly.
    bytes: u64,
    /// The names questions are matched against, made when first asked for.
    catalog: std::sync::OnceLock<crate::ask::Catalog>,
}

/// The id of the next [`Metadata`] read.
static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

impl Metadata {
    /// `versions` (by room, then time) as in effect at `now`, seconds.
    fn new(versions: Vec<Version>, now: i64) -> Self {
        let mut current: Vec<usize> = Vec::new();
        let mut first = 0;
        for group in versions.chunk_by(|a, b| a.room_id == b.room_id) {
            if let Some(i) = group
                .iter()
                .rposition(|v| i64::from(v.effective_from) <= now)
            {
                current.push(first + i);
            }
            first += group.len();
        }
        let by_room = current.clone();
        let key = |&i: &usize| (&versions[i].office_id, &versions[i].room_id);
        current.sort_by(|a, b| key(a).cmp(&key(b)));
        let mut offices: Vec<(usize, u64, u64)> = Vec::new();
        for &i in &current {
            let v = &versions[i];
            match offices.last_mut() {
                Some(o) if versions[o.0].office_id == v.office_id => {
                    o.1 += 1;
                    o.2 += u64::from(v.capacity);
                }
                _ => offices.push((i, 1, u64::from(v.capacity))),
            }
        }
        let until = versions
            .iter()
            .map(|v| i64::from(v.effective_from))
            .filter(|&t| t > now)
            .min()
            .unwrap_or(i64::MAX);
        let strings: usize = versions
            .iter()
            .map(|v| {
                v.room_id.len()
                    + v.office_id.len()
                    + v.office_name.len()
                    + v.region.len()
                    + v.timezone.len()
                    + v.name.len()
                    + v.kind.len()
            })
            .sum();
        let bytes = versions.len() * (std::mem::size_of::<Version>() + 16) + strings + 128;
        Self {
            versions,
            current,
            by_room,
            id: NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            offices,
            until,
            bytes: bytes as u64,
            catalog: std::sync::OnceLock::new(),
        }
    }

    /// Whether a version has taken effect since this was read.
    fn outdated(&self, now: i64) -> bool {
        now >= self.until
    }

    /// The tenant's names as questions use them: offices with their floors, rooms.
    pub(crate) fn catalog(&self) -> &crate::ask::Catalog {
        self.catalog.get_or_init(|| {
            use crate::ask::catalog::{Office, Room};
            let mut offices: Vec<Office> = Vec::new();
            let mut rooms = Vec::new();
            for v in self.current() {
                match offices.last_mut() {
                    Some(o) if o.id == v.office_id => {
                        if !o.floors.contains(&v.floor) {
                            o.floors.push(v.floor);
                        }
                    }
                    _ => offices.push(Office {
                        id: v.office_id.clone(),
                        name: v.office_name.clone(),
                        region: v.region.clone(),
                        country: v.country_code.clone(),
                        timezone: v.timezone.clone(),
                        floors: vec![v.floor],
                    }),
                }
                rooms.push(Room {
                    id: v.room_id.clone(),
                    office: v.office_id.clone(),
                    name: v.name.clone(),
                    kind: v.kind.clone(),
                });
            }
            for o in &mut offices {
                o.floors.sort_unstable();
            }
            crate::ask::Catalog::new(offices, rooms)
        })
    }

    /// The seats of an office's rooms in effect (0: no such office).
    pub(crate) fn office_capacity(&self, office_id: &str) -> u64 {
        self.office(office_id)
            .iter()
            .map(|v| u64::from(v.capacity))
            .sum()
    }

    /// A room's seats in effect (0: no such room).
    pub(crate) fn room_capacity(&self, room_id: &str) -> u64 {
        self.current()
            .find(|v| v.room_id == room_id)
            .map_or(0, |v| u64::from(v.capacity))
    }

    /// The version of every room in effect, by office and room.
    pub(crate) fn current(&self) -> impl Iterator<Item = &Version> {
        self.current.iter().map(|&i| &self.versions[i])
    }

    /// The versions in effect, by room id.
    pub(crate) fn current_by_room(&self) -> impl Iterator<Item = &Version> {
        self.by_room.iter().map(|&i| &self.versions[i])
    }

    /// The room in effect at `place` in [`Metadata::current_by_room`].
    pub(crate) fn room_at(&self, place: usize) -> &Version {
        &self.versions[self.by_room[place]]
    }

    /// The rooms in effect in `office_id`, by room.
    /// The time zone of `office_id`: 404 if the tenant has no such office, 503 if its
    /// metadata names a zone that does not exist (checked again before it is used).
    pub(crate) fn office_zone(&self, office_id: &str) -> Result<chrono_tz::Tz, ApiError> {
        let office = self.office(office_id);
        let zone = office
            .first()
            .ok_or_else(|| ApiError::not_found(format!("no office {office_id}")))?;
        zone.timezone.parse().map_err(|_| {
            ApiError::unavailable(format!("office {office_id} has an unknown time zone"))
        })
    }

    pub(crate) fn office(&self, office_id: &str) -> Vec<&Version> {
        let first = self
            .current
            .partition_point(|&i| self.versions[i].office_id.as_str() < office_id);
        self.current[first..]
            .iter()
            .map(|&i| &self.versions[i])
            .take_while(|v| v.office_id == office_id)
            .collect()
    }

    /// Every office the room has been (or will be) in.
    pub(crate) fn offices_of(&self, room_id: &str) -> Vec<&str> {
        let first = self
            .versions
            .partition_point(|v| v.room_id.as_str() < room_id);
        let mut offices: Vec<&str> = self.versions[first..]
            .iter()
            .take_while(|v| v.room_id == room_id)
            .map(|v| v.office_id.as_str())
            .collect();
        offices.sort_unstable();
        offices.dedup();
        offices
    }

    /// The offices in effect after `cursor`, by id: (a room's version naming the office,
    /// its rooms, its capacity).
    pub(crate) fn offices_after(&self, cursor: &str) -> impl Iterator<Item = (&Version, u64, u64)> {
        let first = self
            .offices
            .partition_point(|o| self.versions[o.0].office_id.as_str() <= cursor);
        self.offices[first..]
            .iter()
            .map(|&(i, rooms, capacity)| (&self.versions[i], rooms, capacity))
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct MetadataKey {
    tenant: TenantId,
    history: u64,
    /// The fingerprint of the `rooms` table's parts (see [`crate::parts`]).
    parts: u64,
}

#[derive(Clone)]
pub(crate) struct MetadataWeight;

impl quick_cache::Weighter<MetadataKey, Arc<Metadata>> for MetadataWeight {
    fn weight(&self, _: &MetadataKey, m: &Arc<Metadata>) -> u64 {
        m.bytes
    }
}

/// The process's tenants' metadata.
pub(crate) type MetadataCache =
    quick_cache::sync::Cache<MetadataKey, Arc<Metadata>, MetadataWeight>;

/// A cache of `mib` MiB (none when 0).
pub(crate) fn cache(mib: u64) -> Option<MetadataCache> {
    (mib > 0).then(|| {
        let bytes = mib << 20;
        // 50,000 rooms take about 15 MiB; counted as such (see [`crate::days::months`]),
        // the shards are few enough for one tenant's to fit one.
        MetadataCache::with_weighter((bytes >> 24).max(1) as usize, bytes, MetadataWeight)
    })
}

/// The caller's tenant's metadata, from this process's cache when still valid.
pub(crate) async fn metadata(
    state: &AppState,
    caller: &Caller<'_>,
) -> Result<Arc<Metadata>, ApiError> {
    let ttl = state.config.cache_ttl_secs;
    let kept = match (&state.metadata, ttl) {
        (Some(_), 1..) => {
            let parts = fingerprint(&state.fingerprints, caller, "rooms", None, ttl);
            match tokio::join!(history(caller), parts) {
                (Some(h), Some(p)) => Some((h, p)),
                _ => None,
            }
        }
        _ => None,
    };
    let (Some(cache), Some((history, parts))) = (&state.metadata, kept) else {
        audit::remember_cache(false);
        return read(caller).await.map(Arc::new);
    };
    let now = Utc::now().timestamp() as u64;
    let key = MetadataKey {
        tenant: caller.tenant.clone(),
        history,
        parts,
    };
    let mut found = cache.get_value_or_guard_async(&key).await;
    if let Ok(metadata) = &found {
        if metadata.outdated(now as i64) {
            // A version took effect since: read again.
            cache.remove(&key);
            found = cache.get_value_or_guard_async(&key).await;
        }
    }
    match found {
        Ok(metadata) => {
            audit::remember_cache(true);
            Ok(metadata)
        }
        Err(guard) => {
            audit::remember_cache(false);
            let metadata = Arc::new(read(caller).await?);
            let _ = guard.insert(metadata.clone());
            Ok(metadata)
        }
    }
}

/// The tenant's history generation, or `None` when Redis cannot say.
async fn history(caller: &Caller<'_>) -> Option<u64> {
    let mut redis = caller.stores.redis.clone();
    let key = rf_sinks::redis::history_generation_key(&caller.tenant);
    match redis::cmd("GET")
        .arg(key)
        .query_async::<Option<u64>>(&mut redis)
        .await
    {
        Ok(g) => Some(g.unwrap_or_default()),
        Err(error) => {
            tracing::warn!(%error, "the metadata cache is unavailable");
            None
        }
    }
}

async fn read(caller: &Caller<'_>) -> Result<Metadata, ApiError> {
    let sql = format!(
        "SELECT room_id, office_id, office_name, region, country_code, timezone, floor, name, \
         toString(kind), capacity, area_m2, monthly_cost, toUInt32(effective_from) \
         FROM {}.rooms FINAL ORDER BY room_id, effective_from",
        caller.tenant.clickhouse_db()
    );
    let query = caller.clickhouse().query(&sql);
    // A tenant that has no database yet has no rooms.
    let versions = queried(caller, async {
        no_database_is_empty(query.fetch_all().await)
    })
    .await?;
    Ok(Metadata::new(versions, Utc::now().timestamp()))
}

#[cfg(test)]
mod tests {
    use super::{Metadata, Version};

    const NOW: i64 = 1_000;

    fn version(room: &str, office: &str, floor: i32, from: u32) -> Version {
        Version {
            room_id: room.into(),
            office_id: office.into(),
            office_name: format!("Office {office}"),
            region: "emea".into(),
            country_code: "GB".into(),
            timezone: "Europe/London".into(),
            floor,
            name: room.into(),
            kind: "DESK".into(),
            capacity: 4,
            area_m2: None,
            monthly_cost: Some(100.0),
            effective_from: from,
        }
    }

    #[test]
    fn a_room_is_where_its_latest_version_in_effect_puts_it() {
        let future = 5_000;
        let metadata = Metadata::new(
            vec![
                // Moved from lon to par; a move back is planned for the future.
                version("a", "lon", 1, 100),
                version("a", "par", 2, 200),
                version("a", "lon", 3, future),
                version("b", "lon", 1, 100),
                // Not in effect yet.
                version("c", "par", 1, future),
            ],
            NOW,
        );
        let current: Vec<(&str, &str, i32)> = metadata
            .current()
            .map(|v| (v.room_id.as_str(), v.office_id.as_str(), v.floor))
            .collect();
        assert_eq!(current, vec![("b", "lon", 1), ("a", "par", 2)]);
        assert_eq!(metadata.offices_of("a"), vec!["lon", "par"]);
        assert_eq!(metadata.offices_of("c"), vec!["par"]);
        assert!(metadata.offices_of("z").is_empty());
        let offices: Vec<(&str, u64, u64)> = metadata
            .offices_after("")
            .map(|(v, rooms, capacity)| (v.office_id.as_str(), rooms, capacity))
            .collect();
        assert_eq!(offices, vec![("lon", 1, 4), ("par", 1, 4)]);
        assert_eq!(metadata.offices_after("lon").count(), 1);
        assert_eq!(metadata.office("lon")[0].room_id, "b");
        assert!(metadata.office("ber").is_empty());
        assert!(!metadata.outdated(4_999));
        assert!(metadata.outdated(5_000), "room c takes effect");
    }
}
