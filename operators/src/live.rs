//! Live occupancy: each room's latest reading and each office's current total.

use std::collections::BTreeSet;

use rf_schemas::TenantId;

use crate::HashMap;
use crate::{LiveOffice, LiveRoom, Output};

/// Rooms whose latest reading is older than this, relative to the office's newest, no
/// longer count towards the office's live total.
pub const OFFICE_HORIZON_MS: i64 = 10 * 60_000;

#[derive(Debug)]
struct Latest {
    office_id: String,
    people: i32,
    ts: i64,
    capacity: u32,
    /// Changed since the last flush (and listed in `dirty_rooms`).
    dirty: bool,
}

#[derive(Debug, Default)]
struct Office {
    rooms: BTreeSet<String>,
    /// Changed since the last flush (and listed in `dirty_offices`).
    dirty: bool,
}

/// One tenant's live state: one entry per room, so it is bounded by the fleet's size.
#[derive(Default, Debug)]
pub struct LiveState {
    rooms: HashMap<String, Latest>,
    offices: HashMap<String, Office>,
    dirty_rooms: Vec<String>,
    dirty_offices: Vec<String>,
}

impl LiveState {
    /// Records a reading of a known room; older readings than the latest are ignored.
    /// A room's second reading before a flush costs one lookup and allocates nothing
    /// (its office is marked changed already).
    pub fn observe(&mut self, room_id: &str, office_id: &str, people: i32, ts: i64, capacity: u32) {
        match self.rooms.get_mut(room_id) {
            Some(l) if l.ts > ts => return,
            Some(l) if l.office_id == office_id => {
                (l.people, l.ts, l.capacity) = (people, ts, capacity);
                if l.dirty {
                    return;
                }
                l.dirty = true;
                self.dirty_rooms.push(room_id.to_owned());
            }
            moved => {
                let was_dirty = moved.as_ref().is_some_and(|l| l.dirty);
                if let Some(old) = moved {
                    let old_office = old.office_id.clone();
                    if let Some(office) = self.offices.get_mut(&old_office) {
                        office.rooms.remove(room_id);
                    }
                    self.mark_office(&old_office);
                }
                let latest = Latest {
                    office_id: office_id.to_owned(),
                    people,
                    ts,
                    capacity,
                    dirty: true,
                };
                self.rooms.insert(room_id.to_owned(), latest);
                if !was_dirty {
                    self.dirty_rooms.push(room_id.to_owned());
                }
                self.offices
                    .entry(office_id.to_owned())
                    .or_default()
                    .rooms
                    .insert(room_id.to_owned());
            }
        }
        self.mark_office(office_id);
    }

    fn mark_office(&mut self, office_id: &str) {
        if let Some(office) = self.offices.get_mut(office_id) {
            if !office.dirty {
                office.dirty = true;
                self.dirty_offices.push(office_id.to_owned());
            }
        }
    }

    /// The capacity of a room's version changed: its live utilization changes too.
    pub fn recapacity(&mut self, room_id: &str, capacity: u32) {
        let Some(l) = self.rooms.get_mut(room_id) else {
            return;
        };
        if l.capacity == capacity {
            return;
        }
        l.capacity = capacity;
        if !l.dirty {
            l.dirty = true;
            self.dirty_rooms.push(room_id.to_owned());
        }
        let office = l.office_id.clone();
        self.mark_office(&office);
    }

    /// The ts of a room's latest reading.
    pub fn latest_ts(&self, room_id: &str) -> Option<i64> {
        self.rooms.get(room_id).map(|l| l.ts)
    }

    /// Emits the rooms and offices that changed since the last flush.
    pub fn flush(&mut self, tenant: &TenantId, out: &mut Vec<Output>) {
        for room_id in self.dirty_rooms.drain(..) {
            let l = self.rooms.get_mut(&room_id).expect("listed rooms exist");
            l.dirty = false;
            out.push(Output::LiveRoom(LiveRoom {
                tenant: tenant.clone(),
                office_id: l.office_id.clone(),
                people: l.people,
                ts: l.ts,
                capacity: l.capacity,
                utilization: f64::from(l.people) / f64::from(l.capacity),
                room_id,
            }));
        }
        for office_id in self.dirty_offices.drain(..) {
            let office = self
                .offices
                .get_mut(&office_id)
                .expect("listed offices exist");
            office.dirty = false;
            let rooms: Vec<&Latest> = office.rooms.iter().map(|r| &self.rooms[r]).collect();
            let newest = rooms.iter().map(|l| l.ts).max().unwrap_or(0);
            let fresh = rooms.iter().filter(|l| l.ts >= newest - OFFICE_HORIZON_MS);
            let (mut people, mut capacity, mut reporting) = (0i64, 0u64, 0u32);
            for l in fresh {
                people += i64::from(l.people);
                capacity += u64::from(l.capacity);
                reporting += 1;
            }
            out.push(Output::LiveOffice(LiveOffice {
                tenant: tenant.clone(),
                office_id,
                people,
                capacity,
                rooms_reporting: reporting,
                utilization: if capacity == 0 {
                    0.0
                } else {
                    people as f64 / capacity as f64
                },
                ts: newest,
            }));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flush(live: &mut LiveState) -> Vec<Output> {
        let mut out = Vec::new();
        live.flush(&TenantId::parse("acme").unwrap(), &mut out);
        out
    }

    #[test]
    fn office_counts_only_rooms_fresh_within_ten_minutes_of_its_newest() {
        let mut live = LiveState::default();
        live.observe("a", "o", 3, 1_000_000, 4);
        live.observe("b", "o", 5, 1_000_000 - OFFICE_HORIZON_MS, 10);
        live.observe("c", "o", 7, 1_000_000 - OFFICE_HORIZON_MS - 1, 10);
        live.observe("a", "o", 9, 999_999, 4); // older than the latest: ignored
        let out = flush(&mut live);
        let office = out.iter().find_map(|o| match o {
            Output::LiveOffice(o) => Some(o),
            _ => None,
        });
        let office = office.unwrap();
        assert_eq!(
            (office.people, office.capacity, office.rooms_reporting),
            (8, 14, 2)
        );
        assert_eq!(office.ts, 1_000_000);
        let a = out.iter().find_map(|o| match o {
            Output::LiveRoom(r) if r.room_id == "a" => Some(r),
            _ => None,
        });
        assert_eq!(a.unwrap().people, 3);
        assert!(flush(&mut live).is_empty(), "nothing changed since");
    }
}
