//! Room metadata with its history: which version of a room is in effect when.

use std::collections::BTreeMap;
use std::sync::Arc;

use rf_schemas::RoomVersion;

use crate::HashMap;

/// A lookup of [`RoomCatalog::at_within`], to keep while the room's versions stay.
#[derive(Clone, Debug)]
pub struct Cached {
    from: i64,
    until: i64,
    version: Option<Arc<RoomVersion>>,
}

impl Cached {
    /// The version in effect at `ts`, if `ts` is within the span looked up.
    pub fn at(&self, ts: i64) -> Option<Option<&Arc<RoomVersion>>> {
        (self.from <= ts && ts < self.until).then_some(self.version.as_ref())
    }
}

/// Every known version of every room of one tenant.
#[derive(Default, Debug)]
pub struct RoomCatalog {
    rooms: HashMap<String, BTreeMap<i64, Arc<RoomVersion>>>,
}

impl RoomCatalog {
    /// Adds (or replaces) the version starting at `room.effective_from`.
    pub fn insert(&mut self, room: Arc<RoomVersion>) {
        self.rooms
            .entry(room.room_id.clone())
            .or_default()
            .insert(room.effective_from, room);
    }

    /// Withdraws the version of `room_id` starting at `effective_from`; true if it existed.
    pub fn withdraw(&mut self, room_id: &str, effective_from: i64) -> bool {
        self.rooms
            .get_mut(room_id)
            .is_some_and(|versions| versions.remove(&effective_from).is_some())
    }

    /// The version of `room_id` in effect at `ts`: the latest `effective_from <= ts`.
    pub fn at(&self, room_id: &str, ts: i64) -> Option<&Arc<RoomVersion>> {
        self.rooms
            .get(room_id)?
            .range(..=ts)
            .next_back()
            .map(|(_, v)| v)
    }

    /// The version of `room_id` in effect at `ts` (if any), and the span `[from, until)`
    /// around `ts` over which the answer stays the same while the catalog does.
    pub fn at_within(&self, room_id: &str, ts: i64) -> Cached {
        let Some(versions) = self.rooms.get(room_id) else {
            return Cached {
                from: i64::MIN,
                until: i64::MAX,
                version: None,
            };
        };
        let before = versions.range(..=ts).next_back();
        let after = versions.range(ts.saturating_add(1)..).next();
        Cached {
            from: before.map_or(i64::MIN, |(from, _)| *from),
            until: after.map_or(i64::MAX, |(from, _)| *from),
            version: before.map(|(_, v)| v.clone()),
        }
    }

    /// Where the version of `room_id` in effect at `ts` ends: the next version's start.
    pub fn next_after(&self, room_id: &str, ts: i64) -> Option<i64> {
        let versions = self.rooms.get(room_id)?;
        versions.range(ts + 1..).next().map(|(from, _)| *from)
    }

    /// Number of rooms with at least one version.
    pub fn len(&self) -> usize {
        self.rooms.values().filter(|v| !v.is_empty()).count()
    }

    /// Whether no room has a version.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use rf_schemas::RoomKind;

    pub(crate) fn room(id: &str, office: &str, capacity: u32, from: i64) -> Arc<RoomVersion> {
        Arc::new(RoomVersion {
            room_id: id.into(),
            office_id: office.into(),
            office_name: office.to_uppercase(),
            region: "EMEA".into(),
            country_code: "GB".into(),
            timezone: chrono_tz::Europe::London,
            floor: 1,
            name: id.into(),
            kind: RoomKind::Meeting,
            capacity,
            area_m2: None,
            monthly_cost: None,
            effective_from: from,
        })
    }

    #[test]
    fn the_latest_version_not_after_ts_is_in_effect() {
        let mut c = RoomCatalog::default();
        c.insert(room("r", "o", 4, 100));
        c.insert(room("r", "o", 8, 200));
        assert!(c.at("r", 99).is_none());
        assert_eq!(c.at("r", 100).unwrap().capacity, 4);
        assert_eq!(c.at("r", 199).unwrap().capacity, 4);
        assert_eq!(c.at("r", 200).unwrap().capacity, 8);
        assert_eq!(c.next_after("r", 100), Some(200));
        assert_eq!(c.next_after("r", 200), None);
        let cached = c.at_within("r", 150);
        assert_eq!(cached.at(100).flatten().unwrap().capacity, 4);
        assert_eq!(cached.at(199).flatten().unwrap().capacity, 4);
        assert!(
            cached.at(99).is_none() && cached.at(200).is_none(),
            "outside its span"
        );
        assert!(
            c.at_within("r", 50).at(99).unwrap().is_none(),
            "before the first"
        );
        assert!(c
            .at_within("unknown", 5)
            .at(i64::MAX - 1)
            .unwrap()
            .is_none());
        assert!(c.withdraw("r", 200));
        assert!(!c.withdraw("r", 200));
        assert_eq!(c.at("r", 500).unwrap().capacity, 4);
        assert_eq!(c.len(), 1);
    }
}
