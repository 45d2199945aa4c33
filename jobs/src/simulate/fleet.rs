//! A deterministic model of a sensor fleet: offices in their time zones, rooms of every
//! kind, and how many people each room holds at any minute.
//!
//! Every count is a pure function of (seed, room, time), so any range can be generated
//! on its own, in any order, and live mode continues history seamlessly.

use chrono::{Datelike, TimeZone, Timelike, Weekday};
use chrono_tz::Tz;

use rf_schemas::{Booking, Reading, RoomKind, RoomVersion, TenantId};

/// Cities offices are placed in: (id, name, region, country, time zone).
const CITIES: [(&str, &str, &str, &str, Tz); 12] = [
    ("lon", "London", "EMEA", "GB", chrono_tz::Europe::London),
    (
        "nyc",
        "New York",
        "AMER",
        "US",
        chrono_tz::America::New_York,
    ),
    ("sin", "Singapore", "APAC", "SG", chrono_tz::Asia::Singapore),
    ("ber", "Berlin", "EMEA", "DE", chrono_tz::Europe::Berlin),
    (
        "sfo",
        "San Francisco",
        "AMER",
        "US",
        chrono_tz::America::Los_Angeles,
    ),
    ("syd", "Sydney", "APAC", "AU", chrono_tz::Australia::Sydney),
    ("par", "Paris", "EMEA", "FR", chrono_tz::Europe::Paris),
    ("tor", "Toronto", "AMER", "CA", chrono_tz::America::Toronto),
    ("blr", "Bangalore", "APAC", "IN", chrono_tz::Asia::Kolkata),
    ("dub", "Dublin", "EMEA", "IE", chrono_tz::Europe::Dublin),
    (
        "sao",
        "São Paulo",
        "AMER",
        "BR",
        chrono_tz::America::Sao_Paulo,
    ),
    ("tyo", "Tokyo", "APAC", "JP", chrono_tz::Asia::Tokyo),
];

/// When the simulated room versions take effect (2024-01-01T00:00:00Z).
pub const METADATA_EFFECTIVE_FROM: i64 = 1_704_067_200_000;

/// The shape of a fleet.
#[derive(Clone, Debug)]
pub struct FleetSpec {
    /// Tenants, each with the same shape.
    pub tenants: Vec<TenantId>,
    /// Offices per tenant.
    pub offices: usize,
    /// Rooms per tenant, spread over its offices.
    pub rooms: usize,
    /// Seed of every random choice.
    pub seed: u64,
}

/// One simulated room.
#[derive(Clone, Debug)]
pub struct SimRoom {
    /// Its metadata.
    pub version: RoomVersion,
    /// The sensor counting it.
    pub sensor_id: String,
    /// How busy it is relative to its office (0 = never used).
    usage: f64,
    /// Second of the minute the sensor reads at.
    phase_ms: i64,
    /// Whether the sensor measures temperature and humidity.
    climate: bool,
    /// Whether the sensor was upgraded to `OccupancyReading` v2 (CO2 and battery).
    pub v2: bool,
    key: u64,
}

/// The whole fleet.
#[derive(Clone, Debug)]
pub struct Fleet {
    /// Per tenant, its rooms.
    pub tenants: Vec<(TenantId, Vec<SimRoom>)>,
    seed: u64,
}

fn mix(mut x: u64) -> u64 {
    // SplitMix64's finaliser: a good 64-bit hash.
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn hash(parts: &[u64]) -> u64 {
    parts.iter().fold(0x5eed, |h, p| mix(h ^ mix(*p)))
}

fn unit(h: u64) -> f64 {
    (h >> 11) as f64 / (1u64 << 53) as f64
}

impl Fleet {
    /// Lays out the fleet `spec` describes.
    pub fn new(spec: &FleetSpec) -> Self {
        let tenants = spec
            .tenants
            .iter()
            .enumerate()
            .map(|(t, tenant)| (tenant.clone(), rooms_of(spec, t as u64)))
            .collect();
        Self {
            tenants,
            seed: spec.seed,
        }
    }

    /// Rooms over all tenants.
    pub fn room_count(&self) -> usize {
        self.tenants.iter().map(|(_, r)| r.len()).sum()
    }

    /// The reading `room`'s sensor takes in the minute starting at `minute_ms`.
    pub fn reading(&self, room: &SimRoom, minute_ms: i64) -> Reading {
        let ts = minute_ms + room.phase_ms;
        let people = self.people(room, ts);
        let h = hash(&[self.seed, room.key, ts as u64, 7]);
        let (temperature, humidity) = if room.climate {
            let t = 20.5 + 0.12 * people as f64 + (unit(h) - 0.5);
            let rh = 38.0 + 0.4 * people as f64 + 4.0 * (unit(mix(h)) - 0.5);
            (
                Some(((t * 10.0).round() / 10.0) as f32),
                Some(rh.round() as f32),
            )
        } else {
            (None, None)
        };
        // Upgraded sensors: CO2 rises with the people in the room; the battery drains
        // over a month and is swapped.
        let (co2_ppm, battery_pct) = if room.v2 {
            let co2 = 420.0 + 38.0 * people as f64 + 30.0 * (unit(mix(mix(h))) - 0.5);
            let hours = (ts.div_euclid(3_600_000) as u64).wrapping_add(room.key) % 720;
            (
                Some(co2.round() as i32),
                Some((100.0 - hours as f32 / 12.0).round()),
            )
        } else {
            (None, None)
        };
        Reading {
            sensor_id: room.sensor_id.clone(),
            office_id: room.version.office_id.clone(),
            room_id: room.version.room_id.clone(),
            ts,
            people_count: people,
            temperature,
            humidity,
            co2_ppm,
            battery_pct,
        }
    }

    /// People in `room` at `ts`: office hours in the office's zone, hybrid weeks that
    /// peak Tuesday to Thursday, a lunch dip, meetings in booked half hours, noise.
    pub fn people(&self, room: &SimRoom, ts: i64) -> i32 {
        if room.usage == 0.0 {
            return 0;
        }
        let v = &room.version;
        let local = v
            .timezone
            .timestamp_millis_opt(ts)
            .single()
            .expect("UTC instants map to one local time");
        let hour = local.hour() as f64 + local.minute() as f64 / 60.0;
        let day = local.num_days_from_ce() as u64;
        let level = attendance(local.weekday()) * day_curve(hour) * room.usage;
        let capacity = v.capacity as i32;
        let minute_of_day = (local.hour() * 60 + local.minute()) as u64;
        let base = match v.kind {
            RoomKind::Meeting | RoomKind::Focus => {
                // Booked in half hours (focus rooms in hours): the same people for the block.
                let block = if v.kind == RoomKind::Meeting {
                    minute_of_day / 30
                } else {
                    minute_of_day / 60
                };
                let h = hash(&[self.seed, room.key, day, block]);
                if unit(h) < (level * 1.1).min(0.95) {
                    let size = 1 + (unit(mix(h)) * capacity as f64 * 0.8) as i32;
                    size.min(capacity)
                } else {
                    0
                }
            }
            _ => {
                // Desks and open areas fill gradually: a fresh draw every 15 minutes.
                let block = minute_of_day / 15;
                let h = hash(&[self.seed, room.key, day, block, 1]);
                let expected = level * capacity as f64;
                let spread = (unit(h) - 0.5) * 2.0 * expected.sqrt();
                (expected + spread).round().clamp(0.0, capacity as f64) as i32
            }
        };
        let n = hash(&[self.seed, room.key, ts as u64, 3]);
        match unit(n) {
            u if u < 0.015 && base > 0 => base - 1,
            u if u > 0.985 && base > 0 => base + 1,
            _ => base,
        }
    }
}

impl Fleet {
    /// Each tenant's headcount per office, as an HR system would count it: a little
    /// under one person per seat (hybrid offices seat fewer than they employ elsewhere,
    /// these have room to spare), the same every day.
    pub fn headcount(&self) -> Vec<(TenantId, std::collections::BTreeMap<String, u32>)> {
        self.tenants
            .iter()
            .map(|(tenant, rooms)| {
                let mut seats = std::collections::BTreeMap::new();
                for r in rooms {
                    *seats.entry(r.version.office_id.clone()).or_insert(0u32) += r.version.capacity;
                }
                for (i, heads) in seats.values_mut().enumerate() {
                    let share = 0.7 + 0.05 * (hash(&[self.seed, i as u64, 11]) % 5) as f64;
                    *heads = (*heads as f64 * share).round() as u32;
                }
                (tenant.clone(), seats)
            })
            .collect()
    }

    /// The bookings of `room` (meeting rooms in half hours, focus booths in hours) whose
    /// blocks start in `[from, to)`: most blocks people use were booked, some are used
    /// without a booking, and some booked blocks nobody comes to (ghost bookings and
    /// no-shows), more of them on busy days.
    pub fn bookings(&self, room: &SimRoom, from: i64, to: i64) -> Vec<Booking> {
        let v = &room.version;
        if room.usage == 0.0 || !matches!(v.kind, RoomKind::Meeting | RoomKind::Focus) {
            return Vec::new();
        }
        let step = 30 * 60_000;
        let block_len = if v.kind == RoomKind::Meeting { 30 } else { 60 };
        let mut out = Vec::new();
        let mut start = from.div_euclid(step) * step;
        if start < from {
            start += step;
        }
        while start < to {
            let local = v
                .timezone
                .timestamp_millis_opt(start)
                .single()
                .expect("UTC instants map to one local time");
            let minute_of_day = u64::from(local.hour() * 60 + local.minute());
            if minute_of_day % block_len == 0 {
                let hour = local.hour() as f64 + local.minute() as f64 / 60.0;
                let day = local.num_days_from_ce() as u64;
                let level = attendance(local.weekday()) * day_curve(hour) * room.usage;
                let block = minute_of_day / block_len;
                let used = unit(hash(&[self.seed, room.key, day, block])) < (level * 1.1).min(0.95);
                let b = hash(&[self.seed, room.key, day, block, 9]);
                let booked = if used {
                    unit(b) < 0.85
                } else {
                    unit(b) < level * 0.3
                };
                if booked {
                    out.push(Booking {
                        booking_id: format!("sim-{:016x}", hash(&[room.key, day, block])),
                        version: 1,
                        office_id: v.office_id.clone(),
                        room_id: v.room_id.clone(),
                        start_ts: start,
                        end_ts: start + block_len as i64 * 60_000,
                        cancelled: false,
                        source: "simulator".into(),
                    });
                }
            }
            start += step;
        }
        out
    }
}

fn attendance(day: Weekday) -> f64 {
    match day {
        Weekday::Mon => 0.5,
        Weekday::Tue => 0.85,
        Weekday::Wed => 0.9,
        Weekday::Thu => 0.8,
        Weekday::Fri => 0.35,
        Weekday::Sat => 0.03,
        Weekday::Sun => 0.02,
    }
}

fn day_curve(hour: f64) -> f64 {
    match hour {
        h if h < 7.0 => 0.0,
        h if h < 9.5 => (h - 7.0) / 2.5,
        h if h < 12.0 => 1.0,
        h if h < 13.5 => 0.65, // lunch
        h if h < 16.5 => 0.95,
        h if h < 19.0 => (19.0 - h) / 2.5 * 0.95,
        _ => 0.0,
    }
}

fn rooms_of(spec: &FleetSpec, tenant: u64) -> Vec<SimRoom> {
    let offices = spec.offices.max(1);
    (0..spec.rooms)
        .map(|i| {
            let office = i % offices;
            let (city, name, region, country, tz) = CITIES[office % CITIES.len()];
            let round = office / CITIES.len();
            let office_id = if round == 0 {
                city.to_owned()
            } else {
                format!("{city}-{}", round + 1)
            };
            let key = hash(&[spec.seed, tenant, i as u64]);
            let k = unit(mix(key));
            let (kind, capacity, area) = match k {
                k if k < 0.40 => (RoomKind::Desk, 4 + (key % 5) as u32, 6.0),
                k if k < 0.65 => (RoomKind::Meeting, 4 + (key % 9) as u32, 2.5),
                k if k < 0.80 => (RoomKind::Focus, 1 + (key % 2) as u32, 4.0),
                k if k < 0.90 => (RoomKind::OpenSpace, 20 + (key % 21) as u32, 5.0),
                _ => (RoomKind::Collab, 6 + (key % 11) as u32, 3.5),
            };
            let n = i / offices;
            let area_m2 = (capacity as f32 * area as f32).round();
            let usage = match unit(mix(mix(key))) {
                u if u < 0.05 => 0.0, // never used
                u => 0.5 + u * 0.7,
            };
            SimRoom {
                version: RoomVersion {
                    room_id: format!("{office_id}-r{n:04}"),
                    office_id: office_id.clone(),
                    office_name: if round == 0 {
                        name.to_owned()
                    } else {
                        format!("{name} {}", round + 1)
                    },
                    region: region.into(),
                    country_code: country.into(),
                    timezone: tz,
                    floor: (n / 25) as i32 + 1,
                    name: format!(
                        "{} {}",
                        kind.symbol().to_lowercase().replace('_', " "),
                        n + 1
                    ),
                    kind,
                    capacity,
                    area_m2: Some(area_m2),
                    monthly_cost: Some((area_m2 as f64 * 45.0).round()),
                    effective_from: METADATA_EFFECTIVE_FROM,
                },
                sensor_id: format!("s-{:016x}", key),
                usage,
                phase_ms: (key % 60) as i64 * 1000,
                climate: key % 10 < 7,
                v2: key.is_multiple_of(3),
                key,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fleet(seed: u64) -> Fleet {
        Fleet::new(&FleetSpec {
            tenants: vec![TenantId::parse("acme").unwrap()],
            offices: 3,
            rooms: 300,
            seed,
        })
    }

    fn ms(s: &str) -> i64 {
        s.parse::<chrono::DateTime<chrono::Utc>>()
            .unwrap()
            .timestamp_millis()
    }

    fn office_total(f: &Fleet, office: &str, ts: i64) -> i64 {
        f.tenants[0]
            .1
            .iter()
            .filter(|r| r.version.office_id == office)
            .map(|r| i64::from(f.reading(r, ts).people_count))
            .sum()
    }

    #[test]
    fn deterministic_for_a_seed() {
        let (a, b, c) = (fleet(1), fleet(1), fleet(2));
        let t = ms("2026-11-24T14:00:00Z");
        let r = &a.tenants[0].1[7];
        assert_eq!(a.reading(r, t), b.reading(&b.tenants[0].1[7], t));
        let totals = |f: &Fleet| {
            (0..60)
                .map(|m| office_total(f, "lon", t + m * 60_000))
                .collect::<Vec<_>>()
        };
        assert_ne!(totals(&a), totals(&c));
    }

    #[test]
    fn office_hours_weekdays_and_lunch_in_local_time() {
        let f = fleet(7);
        // 2026-11-24 is a Tuesday. London is on UTC in November, New York 5 hours behind.
        let tue_lon_11 = office_total(&f, "lon", ms("2026-11-24T11:00:00Z"));
        let tue_lon_3am = office_total(&f, "lon", ms("2026-11-24T03:00:00Z"));
        let tue_lon_lunch = office_total(&f, "lon", ms("2026-11-24T12:45:00Z"));
        let sat_lon_11 = office_total(&f, "lon", ms("2026-11-28T11:00:00Z"));
        let tue_nyc_11_utc = office_total(&f, "nyc", ms("2026-11-24T11:00:00Z")); // 06:00 local
        let tue_nyc_16_utc = office_total(&f, "nyc", ms("2026-11-24T16:00:00Z")); // 11:00 local
        assert!(tue_lon_11 > 100, "a busy Tuesday morning: {tue_lon_11}");
        assert!(tue_lon_3am <= 3, "night: {tue_lon_3am}");
        assert!(
            tue_lon_lunch < tue_lon_11,
            "lunch dip: {tue_lon_lunch} vs {tue_lon_11}"
        );
        assert!(
            sat_lon_11 * 5 < tue_lon_11,
            "weekend: {sat_lon_11} vs {tue_lon_11}"
        );
        assert!(
            tue_nyc_11_utc <= 3 && tue_nyc_16_utc > 100,
            "{tue_nyc_11_utc} {tue_nyc_16_utc}"
        );
        let fri = office_total(&f, "lon", ms("2026-11-27T11:00:00Z"));
        assert!(
            fri < tue_lon_11,
            "hybrid: Friday {fri} below Tuesday {tue_lon_11}"
        );
    }

    #[test]
    fn rooms_are_valid_and_some_are_never_used() {
        let f = fleet(3);
        let rooms = &f.tenants[0].1;
        assert!(rooms.iter().all(|r| r.version.capacity >= 1));
        let unused = rooms.iter().filter(|r| r.usage == 0.0).count();
        assert!(unused > 0 && unused < 40, "{unused}");
        let t = ms("2026-11-24T10:00:00Z");
        for r in rooms {
            let reading = f.reading(r, t);
            assert!(
                reading.people_count >= 0 && reading.people_count <= r.version.capacity as i32 + 1
            );
            assert_eq!(
                reading.validate(reading.ts, Some(r.version.office_id.as_bytes())),
                Ok(())
            );
        }
    }
}
