//! The aggregation state machine against hand-computed rows.

use std::sync::Arc;

use rf_operators::Topic;
use rf_operators::*;
use rf_schemas::{DeadLetterReason, Reading, RoomKind, RoomVersion, TenantId};

const T0: i64 = 1_767_603_600_000; // 2026-01-05T09:00:00Z, a Monday; London is on UTC
const MIN: i64 = 60_000;

fn tenant() -> TenantId {
    TenantId::parse("acme").unwrap()
}

fn room(id: &str, capacity: u32, from: i64) -> Arc<RoomVersion> {
    Arc::new(RoomVersion {
        room_id: id.into(),
        office_id: "lon".into(),
        office_name: "London".into(),
        region: "EMEA".into(),
        country_code: "GB".into(),
        timezone: chrono_tz::Europe::London,
        floor: 2,
        name: id.into(),
        kind: RoomKind::Meeting,
        capacity,
        area_m2: None,
        monthly_cost: None,
        effective_from: from,
    })
}

struct Feed {
    aggregator: Aggregator,
    offset: i64,
    rooms_offset: i64,
    out: Vec<Output>,
}

impl Feed {
    fn new() -> Self {
        Self {
            aggregator: Aggregator::new(AggregateConfig::default()),
            offset: 0,
            rooms_offset: 0,
            out: Vec::new(),
        }
    }

    fn room(&mut self, version: Arc<RoomVersion>) {
        let (room_id, from) = (version.room_id.clone(), version.effective_from);
        self.room_event(room_id, from, Some(version));
    }

    fn withdraw(&mut self, room_id: &str, from: i64) {
        self.room_event(room_id.into(), from, None);
    }

    fn room_event(&mut self, room_id: String, from: i64, version: Option<Arc<RoomVersion>>) {
        let event = RoomEvent {
            tenant: tenant(),
            partition: 0,
            offset: self.rooms_offset,
            room_id,
            effective_from: from,
            version,
        };
        self.rooms_offset += 1;
        self.aggregator
            .apply(Decoded::Room(Box::new(event)), &mut self.out);
    }

    fn reading(&mut self, room_id: &str, office: &str, ts: i64, people: i32) {
        self.reading_on(0, room_id, office, ts, people);
    }

    fn reading_on(&mut self, partition: i32, room_id: &str, office: &str, ts: i64, people: i32) {
        let reading = Reading {
            sensor_id: format!("s-{room_id}"),
            office_id: office.into(),
            room_id: room_id.into(),
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
            partition,
            offset: self.offset,
            timestamp: ts,
            received: ts,
            key: Some(office.as_bytes().to_vec()),
            value: Some(vec![self.offset as u8]),
        };
        self.offset += 1;
        let event = Decoded::Reading(Box::new(DecodedReading {
            reading,
            record,
            schema_id: 1,
        }));
        self.aggregator.apply(event, &mut self.out);
    }

    fn flush(&mut self) -> Vec<Output> {
        self.aggregator.flush(&mut self.out);
        std::mem::take(&mut self.out)
    }
}

fn rooms(out: &[Output], g: Granularity, is_final: bool) -> Vec<&RoomRow> {
    let mut rows: Vec<&RoomRow> = out
        .iter()
        .filter_map(|o| match o {
            Output::Room(r) if r.granularity == g && r.is_final == is_final => Some(r),
            _ => None,
        })
        .collect();
    rows.sort_by(|a, b| (&a.room_id, a.window_start).cmp(&(&b.room_id, b.window_start)));
    rows
}

fn offices(out: &[Output], g: Granularity, is_final: bool) -> Vec<&OfficeRow> {
    out.iter()
        .filter_map(|o| match o {
            Output::Office(r) if r.granularity == g && r.is_final == is_final => Some(r),
            _ => None,
        })
        .collect()
}

fn letters(out: &[Output]) -> Vec<(DeadLetterReason, i64)> {
    out.iter()
        .filter_map(|o| match o {
            Output::DeadLetter(d) => Some((d.reason, d.offset)),
            _ => None,
        })
        .collect()
}

fn checkpoint(out: &[Output]) -> &Checkpoint {
    out.iter()
        .find_map(|o| match o {
            Output::Checkpoint(c) => Some(c),
            _ => None,
        })
        .expect("a checkpoint")
}

#[test]
fn rows_duplicates_lateness_and_unknown_rooms() {
    let mut f = Feed::new();
    f.room(room("r1", 4, 0));
    f.room(room("r2", 10, 0));
    f.reading("r1", "lon", T0, 2); // offset 0
    f.reading("r1", "lon", T0 + MIN, 4); // 1, replaced by 3
    f.reading("r1", "lon", T0 + 2 * MIN, 0); // 2
    f.reading("r1", "lon", T0 + MIN, 3); // 3: same key, later offset wins
    f.reading("r2", "lon", T0, 5); // 4
    f.reading("r2", "lon", T0 + MIN, 5); // 5
    f.reading("r9", "lon", T0 + 3 * MIN, 1); // 6: no metadata yet
    f.reading("r2", "nyc", T0 + 4 * MIN, 1); // 7: wrong office

    let out = f.flush();
    let open = rooms(&out, Granularity::M15, false);
    assert_eq!(open.len(), 2, "a revision per room; r9 waits for metadata");
    assert!(rooms(&out, Granularity::M15, true).is_empty());
    assert_eq!(letters(&out), vec![(DeadLetterReason::OfficeMismatch, 7)]);
    let c = checkpoint(&out);
    assert_eq!((c.commit_offset, c.processed_until, c.replaced), (0, 8, 1));

    // 09:20 closes [09:00, 09:15) with 5 minutes of lateness.
    f.reading("r1", "lon", T0 + 20 * MIN, 1); // 8
    f.reading("r1", "lon", T0 + 5 * MIN, 9); // 9: its window is final
    let out = f.flush();
    let fin = rooms(&out, Granularity::M15, true);
    assert_eq!(fin.len(), 2);
    let r1 = fin[0];
    assert_eq!(
        (r1.room_id.as_str(), r1.window_start, r1.window_end),
        ("r1", T0, T0 + 15 * MIN)
    );
    assert_eq!((r1.samples, r1.peak_people, r1.capacity), (3, 3, 4));
    assert!((r1.avg_people - 5.0 / 3.0).abs() < 1e-12);
    assert!((r1.occupied_ratio - 2.0 / 3.0).abs() < 1e-12);
    assert!((r1.utilization - 5.0 / 12.0).abs() < 1e-12);
    let r2 = fin[1];
    assert_eq!(
        (r2.samples, r2.peak_people, r2.avg_people, r2.utilization),
        (2, 5, 5.0, 0.5)
    );
    assert!(
        r1.version > open[0].version,
        "the final revision supersedes"
    );

    let office = offices(&out, Granularity::M15, true);
    assert_eq!(office.len(), 1);
    let o = office[0];
    assert_eq!((o.rooms_reporting, o.capacity), (2, 14));
    assert!((o.avg_people - (5.0 / 3.0 + 5.0)).abs() < 1e-12);
    assert_eq!(o.peak_people, 8.0, "09:01 had 3 + 5");
    assert!((o.utilization - (5.0 / 3.0 + 5.0) / 14.0).abs() < 1e-12);

    assert_eq!(
        letters(&out),
        vec![
            (DeadLetterReason::UnknownRoom, 6),
            (DeadLetterReason::Late, 9)
        ]
    );
    let c = checkpoint(&out);
    assert_eq!(c.counted, 5, "r1's three and r2's two readings");
    // 10 consumed = 5 counted + 1 replaced + 3 dead letters + 1 pending (offset 8).
    assert_eq!(f.aggregator.size().pending, 1);
    assert_eq!(c.commit_offset, 0, "the day windows still hold offset 0");
    // Hour and day windows are still open, with the same readings.
    let hours = rooms(&out, Granularity::H1, false);
    assert_eq!(hours.iter().map(|r| r.samples).collect::<Vec<_>>(), vec![4]);
}

#[test]
fn metadata_arriving_late_counts_the_waiting_readings() {
    let mut f = Feed::new();
    f.reading("r1", "lon", T0, 2);
    f.reading("r1", "lon", T0 + MIN, 4);
    assert!(rooms(&f.flush(), Granularity::M15, false).is_empty());
    f.room(room("r1", 8, T0 - 3_600_000));
    let out = f.flush();
    let rows = rooms(&out, Granularity::D1, false);
    assert_eq!(rows.len(), 1);
    assert_eq!((rows[0].samples, rows[0].capacity), (2, 8));
    f.reading("r1", "lon", T0 + 30 * MIN, 0);
    let out = f.flush();
    assert!(letters(&out).is_empty());
    assert_eq!(checkpoint(&out).counted, 2);
}

#[test]
fn a_capacity_change_in_the_past_revises_open_windows() {
    let mut f = Feed::new();
    f.room(room("r1", 4, 0));
    f.reading("r1", "lon", T0, 2);
    f.flush();
    f.room(room("r1", 8, T0 - MIN));
    let out = f.flush();
    let rows = rooms(&out, Granularity::M15, false);
    assert_eq!((rows[0].capacity, rows[0].utilization), (8, 0.25));
}

#[test]
fn day_windows_close_and_free_their_readings() {
    let mut f = Feed::new();
    f.room(room("r1", 4, 0));
    for m in 0..60 {
        f.reading("r1", "lon", T0 + m * MIN, 1);
    }
    f.flush();
    // Three final 15m windows summed up; the last one (not final) reading by reading.
    let size = f.aggregator.size();
    assert_eq!((size.chunks, size.readings), (3, 15));
    // A reading the next day, past midnight + lateness, closes the 5th of January.
    f.reading("r1", "lon", T0 + 15 * 3_600_000 + 10 * MIN, 1);
    let out = f.flush();
    let days = rooms(&out, Granularity::D1, true);
    assert_eq!(days.len(), 1);
    assert_eq!(days[0].samples, 60);
    let size = f.aggregator.size();
    assert_eq!(
        (size.chunks, size.readings),
        (0, 1),
        "only the new day's reading is held"
    );
    assert_eq!(checkpoint(&out).commit_offset, 60);
}

fn restates(out: &[Output]) -> Vec<&Restate> {
    out.iter()
        .filter_map(|o| match o {
            Output::Restate(r) => Some(r),
            _ => None,
        })
        .collect()
}

#[test]
fn a_capacity_change_after_windows_are_final_restates_them() {
    let mut f = Feed::new();
    f.room(room("r1", 4, 0));
    f.reading("r1", "lon", T0, 2);
    f.reading("r1", "lon", T0 + 30 * MIN, 2); // 09:00–09:15 is final
    let out = f.flush();
    assert_eq!(rooms(&out, Granularity::M15, true).len(), 1);
    assert_eq!(checkpoint(&out).rooms, vec![(0, 1)]);

    f.room(room("r1", 8, T0 - MIN));
    let out = f.flush();
    let version = restates(&out)[0].version;
    assert_eq!(
        restates(&out),
        [&Restate {
            tenant: tenant(),
            room_id: "r1".into(),
            office_id: "lon".into(),
            from: T0 - MIN,
            until: i64::MAX,
            capacity: 8,
            version,
        }]
    );
    let open = rooms(&out, Granularity::M15, false);
    assert_eq!((open[0].window_start, open[0].capacity), (T0 + 30 * MIN, 8));
    assert!(rooms(&out, Granularity::M15, true).is_empty());

    // The same version again changes nothing that is final.
    f.room(room("r1", 8, T0 - MIN));
    assert!(restates(&f.flush()).is_empty());

    // A version after it bounds the range; withdrawing the change restores capacity 4.
    f.room(room("r1", 6, T0 + 3_600_000));
    f.flush();
    f.withdraw("r1", T0 - MIN);
    let out = f.flush();
    let r = restates(&out);
    assert_eq!(
        (r[0].from, r[0].until, r[0].capacity),
        (T0 - MIN, T0 + 3_600_000, 4)
    );
    assert!(r[0].version > version);
    assert!(out.iter().any(|o| matches!(
        o,
        Output::RoomWithdrawn(_, room, from) if room == "r1" && *from == T0 - MIN
    )));

    // Withdrawing a room's only version in effect leaves counted readings counted.
    f.withdraw("r1", 0);
    assert!(restates(&f.flush()).is_empty());
}

#[test]
fn versions_applied_before_a_restart_only_rebuild_the_catalog() {
    let mut f = Feed::new();
    f.aggregator.restate_from(&tenant(), 0, 2);
    f.room(room("r1", 4, 0)); // offset 0
    f.room(room("r1", 8, T0)); // offset 1: applied before the restart
    assert!(restates(&f.flush()).is_empty());
    f.room(room("r1", 6, T0 + 3_600_000)); // offset 2: maybe not
    let out = f.flush();
    assert_eq!(
        restates(&out)
            .iter()
            .map(|r| (r.from, r.capacity))
            .collect::<Vec<_>>(),
        [(T0 + 3_600_000, 6)]
    );
}

#[test]
fn an_idle_partition_follows_its_tenants_event_time() {
    let mut f = Feed::new();
    let mut nyc = room("n1", 6, 0);
    Arc::make_mut(&mut nyc).office_id = "nyc".into();
    f.room(room("r1", 4, 0));
    f.room(nyc);
    f.reading_on(1, "n1", "nyc", T0, 3);
    for m in 0..120 {
        f.reading_on(0, "r1", "lon", T0 + m * MIN, 1);
    }
    let out = f.flush();
    assert!(
        !rooms(&out, Granularity::M15, true)
            .iter()
            .any(|r| r.room_id == "n1"),
        "partition 1 has not moved"
    );

    // Partition 1 goes idle: it moves to the tenant's watermark, T0 + 119 min.
    f.aggregator.apply(
        Decoded::Idle {
            tenant: tenant(),
            partition: 1,
        },
        &mut f.out,
    );
    let out = f.flush();
    let n1: Vec<_> = rooms(&out, Granularity::H1, true)
        .into_iter()
        .filter(|r| r.room_id == "n1")
        .collect();
    assert_eq!((n1.len(), n1[0].samples, n1[0].capacity), (1, 1, 6));
    let c = out
        .iter()
        .find_map(|o| match o {
            Output::Checkpoint(c) if c.partition == 1 => Some(c),
            _ => None,
        })
        .unwrap();
    assert_eq!((c.counted, c.current_watermark), (1, T0 + 119 * MIN));

    // A reading for the closed window is now late; one for an open window is not.
    f.reading_on(1, "n1", "nyc", T0 + MIN, 1);
    f.reading_on(1, "n1", "nyc", T0 + 118 * MIN, 1);
    let late = letters(&f.flush());
    assert_eq!(late, [(DeadLetterReason::Late, f.offset - 2)]);
}

#[test]
fn a_checkpoint_during_a_replay_does_not_fall_behind_the_restored_one() {
    let mut f = Feed::new();
    f.aggregator
        .restore(&tenant(), 0, i64::MIN, 50, T0 + 3_600_000);
    f.room(room("r1", 4, 0));
    f.reading("r1", "lon", T0, 1); // offset 0, replayed
    let c = checkpoint(&f.flush()).clone();
    assert_eq!(
        (c.processed_until, c.current_watermark),
        (50, T0 + 3_600_000)
    );
    assert_eq!(c.commit_offset, 0);
}

#[test]
fn final_15m_windows_hand_over_their_readings_unless_told_not_to() {
    let stored = |store_readings: bool| {
        let mut f = Feed::new();
        f.aggregator = Aggregator::new(AggregateConfig {
            store_readings,
            ..AggregateConfig::default()
        });
        f.room(room("r1", 4, 0));
        f.reading("r1", "lon", T0, 1);
        f.reading("r1", "lon", T0 + MIN, 2);
        f.reading("r1", "lon", T0 + MIN, 3); // replaces the one before
        f.reading("r1", "lon", T0 + 25 * MIN, 0); // closes [T0, T0 + 15 min)
        f.flush()
            .iter()
            .filter_map(|o| match o {
                Output::Readings(r) => Some(
                    r.readings
                        .iter()
                        .map(|x| (x.ts, x.people_count, x.offset))
                        .collect::<Vec<_>>(),
                ),
                _ => None,
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(stored(true), vec![vec![(T0, 1, 0), (T0 + MIN, 3, 2)]]);
    assert!(stored(false).is_empty());
}
