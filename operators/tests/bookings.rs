//! Bookings against occupancy, through the aggregation and the bookings operator as the
//! pipeline runs them, against a plain model that counts minute by minute.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use proptest::prelude::*;
use rf_operators::*;
use rf_schemas::rows::BookingEvent;
use rf_schemas::{Booking, Reading, RoomKind, RoomVersion, TenantId};

// 2026-03-27T00:00:00Z: London moves to summer time two days later, so days differ.
const T0: i64 = 1_774_569_600_000;
const MIN: i64 = 60_000;
const HOUR: i64 = 60 * MIN;
const ROOMS: [&str; 3] = ["r1", "r2", "r3"];

fn tenant() -> TenantId {
    TenantId::parse("acme").unwrap()
}

fn room(id: &str) -> Arc<RoomVersion> {
    Arc::new(RoomVersion {
        room_id: id.into(),
        office_id: "lon".into(),
        office_name: "London".into(),
        region: "EMEA".into(),
        country_code: "GB".into(),
        timezone: chrono_tz::Europe::London,
        floor: 1,
        name: id.into(),
        kind: RoomKind::Meeting,
        capacity: 8,
        area_m2: None,
        monthly_cost: None,
        effective_from: 0,
    })
}

/// One booking version as a test writes it: (id, version, room, start, end, cancelled).
type Version = (u8, i64, usize, i64, i64, bool);

struct Run {
    aggregator: Aggregator,
    usage: BookingUsage,
    /// Every booking version published, to replay after a restart.
    published: Vec<Version>,
    offset: i64,
    rows: BTreeMap<(Granularity, String, i64), BookingUsageRow>,
    rejected: usize,
}

impl Run {
    fn new() -> Self {
        let mut run = Self {
            aggregator: Aggregator::new(AggregateConfig {
                allowed_lateness_ms: 5 * MIN,
                clock_skew_ms: i64::MAX / 4,
                ..AggregateConfig::default()
            }),
            usage: BookingUsage::new(BookingsConfig {
                allowed_lateness_ms: 5 * MIN,
                horizon_ms: 3 * 24 * HOUR,
            }),
            published: Vec::new(),
            offset: 0,
            rows: BTreeMap::new(),
            rejected: 0,
        };
        let mut out = Vec::new();
        for (offset, id) in ROOMS.iter().enumerate() {
            let event = RoomEvent {
                tenant: tenant(),
                partition: 0,
                offset: offset as i64,
                room_id: (*id).into(),
                effective_from: 0,
                version: Some(room(id)),
            };
            run.aggregator
                .apply(Decoded::Room(Box::new(event)), &mut out);
        }
        run.epoch(out);
        run
    }

    fn reading(&mut self, room: usize, ts: i64, people: i32) {
        let reading = Reading {
            sensor_id: format!("s-{room}"),
            office_id: "lon".into(),
            room_id: ROOMS[room].into(),
            ts,
            people_count: people,
            temperature: None,
            humidity: None,
            co2_ppm: None,
            battery_pct: None,
        };
        let record = RawRecord {
            tenant: tenant(),
            topic: Topic::Readings,
            partition: 0,
            offset: self.offset,
            timestamp: ts,
            received: ts,
            key: Some(b"lon".to_vec()),
            value: Some(vec![0]),
        };
        self.offset += 1;
        let mut out = Vec::new();
        let event = Decoded::Reading(Box::new(DecodedReading {
            reading,
            record,
            schema_id: 1,
        }));
        self.aggregator.apply(event, &mut out);
        self.epoch(out);
    }

    fn booking(&mut self, v: Version) {
        self.published.push(v);
        let mut out = vec![Self::event(v)];
        self.aggregator.flush(&mut out);
        self.take(out);
    }

    fn event((id, version, room, start, end, cancelled): Version) -> Output {
        let booking = Booking {
            booking_id: format!("b{id}"),
            version,
            office_id: "lon".into(),
            room_id: ROOMS[room].into(),
            start_ts: start,
            end_ts: end,
            cancelled,
            source: "test".into(),
        };
        Output::Booking(BookingEvent {
            tenant: tenant(),
            partition: 0,
            offset: version,
            booking: Arc::new(booking),
        })
    }

    /// The bookings operator restarts: it has only what its rows wrote (the rooms'
    /// minutes of 15m windows), and reads the room versions and every booking again.
    fn restart(&mut self) {
        let mut restored = RestoredMinutes::default();
        for ((g, room, _), row) in &self.rows {
            if *g == Granularity::M15 && !room.is_empty() {
                restored.insert(&tenant(), "lon", RestoredQuarter::of(row));
            }
        }
        self.usage = BookingUsage::restoring(
            BookingsConfig {
                allowed_lateness_ms: 5 * MIN,
                horizon_ms: 3 * 24 * HOUR,
            },
            Arc::new(restored),
        );
        let mut replay: Vec<Output> = ROOMS
            .iter()
            .map(|id| Output::RoomVersion(tenant(), room(id)))
            .collect();
        replay.extend(self.published.iter().map(|v| Self::event(*v)));
        self.take(replay);
    }

    /// One epoch: the aggregation flushes, the bookings operator takes it all.
    fn epoch(&mut self, mut out: Vec<Output>) {
        self.aggregator.flush(&mut out);
        self.take(out);
    }

    fn take(&mut self, out: Vec<Output>) {
        let mut booked = Vec::new();
        for o in out {
            self.usage.apply(o, &mut booked);
        }
        self.usage.flush(&mut booked);
        for o in booked {
            match o {
                Output::BookingUsage(row) => {
                    let key = (row.granularity, row.room_id.clone(), row.window_start);
                    let newer = self
                        .rows
                        .get(&key)
                        .is_none_or(|old| old.version < row.version);
                    assert!(newer, "versions grow: {row:?}");
                    self.rows.insert(key, row);
                }
                Output::BookingRejected(_) => self.rejected += 1,
                _ => {}
            }
        }
    }
}

/// The plain model: minute by minute, from the readings and the latest versions.
#[derive(Default)]
struct Model {
    /// (room, minute) → (reported, used).
    minutes: BTreeMap<(usize, i64), (bool, bool)>,
    latest: BTreeMap<u8, Version>,
}

#[derive(Debug, Default, PartialEq, Eq, Clone, Copy)]
struct Counts([u32; 7]);

impl Model {
    fn booked(&self, room: usize, minute: i64) -> bool {
        let at = minute * MIN;
        self.latest
            .values()
            .any(|&(_, _, r, s, e, c)| !c && r == room && s <= at && at < e)
    }

    fn counts(&self, room: usize, start: i64, end: i64) -> Counts {
        let mut c = [0u32; 7];
        for minute in start / MIN..end / MIN {
            let booked = self.booked(room, minute);
            let (reported, used) = self
                .minutes
                .get(&(room, minute))
                .copied()
                .unwrap_or_default();
            c[0] += u32::from(booked);
            c[1] += u32::from(booked && used);
            c[2] += u32::from(booked && reported && !used);
            c[3] += u32::from(booked && !reported);
            c[4] += u32::from(used && !booked);
        }
        for &(_, _, r, s, e, cancelled) in self.latest.values() {
            if cancelled || r != room || s < start || s >= end {
                continue;
            }
            c[5] += 1;
            let first = (s + MIN - 1).div_euclid(MIN);
            let seen: Vec<(bool, bool)> = (first..first + 15)
                .map(|m| self.minutes.get(&(room, m)).copied().unwrap_or_default())
                .collect();
            let no_show = e - s >= 15 * MIN
                && seen.iter().any(|(reported, _)| *reported)
                && !seen.iter().any(|(_, used)| *used);
            c[6] += u32::from(no_show);
        }
        Counts(c)
    }
}

fn counts_of(row: &BookingUsageRow) -> Counts {
    Counts(RestoredQuarter::of(row).counts)
}

/// Two days of readings (a gap per room, people by a seed), bookings published before
/// their day, then moves and cancellations published after their windows were final.
fn scenario(
    seed: u64,
    early: Vec<Version>,
    mut late: Vec<(i64, Version)>,
    restart_at: Option<i64>,
) {
    late.sort_by_key(|(published, _)| *published);
    let mut run = Run::new();
    let mut model = Model::default();
    for v in &early {
        run.booking(*v);
        model.latest.insert(v.0, *v);
    }
    let end = T0 + 48 * HOUR;
    let mut ts = T0;
    let mut late = late.into_iter().peekable();
    while ts < end {
        if restart_at == Some(ts) {
            run.restart();
        }
        for room in 0..ROOMS.len() {
            let minute = ts / MIN;
            // Each room's sensor is silent for an hour at a room-specific time.
            let silent = ((minute / 60) + room as i64 * 7) % 23 == 0;
            if silent {
                continue;
            }
            let people = ((minute.wrapping_mul(2_654_435_761) as u64 ^ seed) % 5) as i32 - 2;
            let people = people.max(0) * i32::from((minute / 37 + room as i64) % 3 != 0);
            // Readings come 20 s into the minute; a few minutes have two.
            run.reading(room, ts + 20_000, people);
            let entry = model.minutes.entry((room, minute)).or_default();
            *entry = (true, entry.1 || people > 0);
            if (minute + room as i64) % 41 == 0 {
                run.reading(room, ts + 50_000, 0);
            }
        }
        while let Some((_, v)) = late.next_if(|(published, _)| *published <= ts) {
            if model.latest.get(&v.0).is_none_or(|old| old.1 < v.1) {
                model.latest.insert(v.0, v);
            }
            run.booking(v);
        }
        ts += MIN;
    }
    // The office's event time moves on: every window is final.
    run.reading(0, end + 2 * HOUR, 0);
    assert_eq!(run.rejected, 0);

    let zone = chrono_tz::Europe::London;
    let mut expected = BTreeMap::new();
    for g in Granularity::ALL {
        let mut t = T0;
        while t < end {
            let (s, e) = g.window(t, zone);
            let mut office = Counts::default();
            for (room, id) in ROOMS.iter().enumerate() {
                let c = model.counts(room, s.max(T0), e.min(end));
                for (o, x) in office.0.iter_mut().zip(c.0) {
                    *o += x;
                }
                expected.insert((g, id.to_string(), s), c);
            }
            expected.insert((g, String::new(), s), office);
            t = e;
        }
    }
    let mut compared = BTreeSet::new();
    for ((g, room, s), row) in &run.rows {
        if *s < T0 || row.window_end > end {
            continue;
        }
        let want = expected.get(&(*g, room.clone(), *s)).copied();
        assert_eq!(Some(counts_of(row)), want, "{g:?} {room:?} {s}: {row:?}");
        compared.insert((*g, room.clone(), *s));
    }
    for (key, want) in &expected {
        let (_, _, s) = key;
        let (_, e) = key.0.window(*s, zone);
        if *want != Counts::default() && e <= end && *s >= T0 {
            assert!(compared.contains(key), "no row for {key:?}: {want:?}");
        }
    }
}

/// Bookings published before the readings, and revisions (moves, cancellations) each
/// published at its time, mostly after the windows it touches were final.
fn bookings() -> impl Strategy<Value = (Vec<Version>, Vec<(i64, Version)>)> {
    let one = (0..3usize, 0..(40 * 60i64), 1..(4 * 60i64), 0..60_000i64);
    (
        prop::collection::vec(one.clone(), 1..25),
        prop::collection::vec((0..25u8, one, any::<bool>()), 0..10),
    )
        .prop_map(|(early, late)| {
            let at = |m: i64, jitter: i64| T0 + m * MIN + jitter;
            let early: Vec<Version> = early
                .into_iter()
                .enumerate()
                .map(|(i, (room, m, len, jitter))| {
                    (i as u8, 1, room, at(m, jitter), at(m + len, jitter), false)
                })
                .collect();
            let late = late
                .into_iter()
                .filter(|(id, ..)| usize::from(*id) < early.len())
                .enumerate()
                .map(|(i, (id, (room, m, len, jitter), cancel))| {
                    let moved = (
                        id,
                        2 + i as i64,
                        room,
                        at(m, jitter),
                        at(m + len, jitter),
                        cancel,
                    );
                    let published = early[usize::from(id)].4.max(moved.4) + HOUR;
                    (published, moved)
                })
                .collect();
            (early, late)
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    #[test]
    fn rows_equal_the_plain_model(seed in any::<u64>(), (early, late) in bookings(), restart in 0..3i64) {
        // Once in three, the bookings operator restarts at hour 20 or 30.
        let restart_at = (restart > 0).then(|| T0 + (10 + 10 * restart) * HOUR);
        scenario(seed, early, late, restart_at);
    }
}

#[test]
fn a_meeting_nobody_came_to_is_a_no_show_and_a_cancelled_one_leaves_no_minutes() {
    let nine = T0 + 9 * HOUR;
    scenario(
        7,
        vec![
            (0, 1, 0, nine, nine + 30 * MIN, false),
            (1, 1, 1, nine + 7 * MIN + 30_000, nine + 67 * MIN, false),
            (2, 1, 2, nine, nine + 10 * MIN, false),
        ],
        vec![
            (
                nine + 4 * HOUR,
                (0, 2, 0, nine + 2 * HOUR, nine + 3 * HOUR, false),
            ),
            (
                nine + 4 * HOUR,
                (1, 2, 1, nine + 7 * MIN, nine + 67 * MIN, true),
            ),
        ],
        None,
    );
}

#[test]
fn a_meeting_moved_after_a_restart_rewrites_windows_final_before_it() {
    let nine = T0 + 9 * HOUR;
    scenario(
        11,
        vec![
            (0, 1, 0, nine, nine + HOUR, false),
            (1, 1, 2, nine, nine + HOUR, false),
        ],
        vec![
            (
                T0 + 26 * HOUR,
                (0, 2, 1, nine + 3 * HOUR, nine + 4 * HOUR, false),
            ),
            (T0 + 26 * HOUR, (1, 2, 2, nine, nine + HOUR, true)),
        ],
        Some(T0 + 25 * HOUR),
    );
}

#[test]
fn a_meeting_moved_before_the_office_reads_again_after_a_restart_rewrites_both_places() {
    // Restarted at hour 30; the move is read a minute later, before the office's first
    // quarter is final again (so before the operator serves it): the rows written before
    // the restart, of the old place and the new, are rewritten all the same.
    scenario(
        31_734,
        vec![(0, 1, 2, T0 + 27 * HOUR, T0 + 29 * HOUR, false)],
        vec![(
            T0 + 30 * HOUR + MIN,
            (0, 2, 1, T0 + 13 * HOUR + 38 * MIN, T0 + 17 * HOUR, false),
        )],
        Some(T0 + 30 * HOUR),
    );
}
