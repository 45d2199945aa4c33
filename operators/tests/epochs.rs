//! Results do not depend on how readings are cut into epochs: the same records through
//! the pipeline's own computation ([`compute`]: decode, windows, analysis), cut into
//! epochs anywhere, give the same latest revision of every window, the same dead letters
//! and the same accounting.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use proptest::prelude::*;
use timely::dataflow::operators::vec::Input as _;
use timely::dataflow::operators::{Inspect, Probe};
use timely::dataflow::{InputHandleVec, ProbeHandle};

use rf_operators::Topic;
use rf_operators::*;
use rf_schemas::framing::frame_header;
use rf_schemas::registry::RegistryError;
use rf_schemas::{Reading, RoomKind, RoomVersion, TenantId};

const T0: i64 = 1_767_603_600_000; // 2026-01-05T09:00:00Z, a Monday
const MIN: i64 = 60_000;

/// The registry: the reading schema is id 1, the room schema id 2.
struct Schemas;

impl SchemaSource for Schemas {
    fn fetch(&self, id: u32) -> Result<String, RegistryError> {
        match id {
            1 => Ok(rf_schemas::OCCUPANCY_READING_AVSC.into()),
            2 => Ok(rf_schemas::ROOM_AVSC.into()),
            _ => Err(RegistryError::UnknownId(id)),
        }
    }
}

fn tenant() -> TenantId {
    TenantId::parse("acme").unwrap()
}

fn room(id: &str, office: &str, tz: chrono_tz::Tz, capacity: u32) -> RoomVersion {
    RoomVersion {
        room_id: id.into(),
        office_id: office.into(),
        office_name: office.into(),
        region: "EMEA".into(),
        country_code: "GB".into(),
        timezone: tz,
        floor: 1,
        name: id.into(),
        kind: RoomKind::Meeting,
        capacity,
        area_m2: None,
        monthly_cost: None,
        effective_from: 0,
    }
}

/// A record the producer stamped `timestamp`.
fn record(
    topic: Topic,
    partition: i32,
    offset: i64,
    timestamp: i64,
    key: String,
    value: Vec<u8>,
) -> Input {
    Input::Record(RawRecord {
        tenant: tenant(),
        topic,
        partition,
        offset,
        timestamp,
        // Read long after every reading was taken: no clock is ahead of the consumer's.
        received: T0 + 30 * 86_400_000,
        key: Some(key.into_bytes()),
        value: Some(value),
    })
}

/// One reading to send: (room index, minute, people, sensor suffix). Its partition is
/// its office's, as the producers' office keys make it.
type Spec = (usize, i64, i32, u8);

/// The records: the rooms first (as every worker reads them), then the readings, each
/// partition's in order of its offsets.
fn records(readings: &[Spec]) -> Vec<Input> {
    let schema = apache_avro::Schema::parse_str(rf_schemas::ROOM_AVSC).unwrap();
    let rooms = [
        room("r0", "lon", chrono_tz::Europe::London, 4),
        room("r1", "lon", chrono_tz::Europe::London, 10),
        room("r2", "kat", chrono_tz::Asia::Kathmandu, 6),
    ];
    let mut out = Vec::new();
    for (offset, v) in rooms.iter().enumerate() {
        let mut value = Vec::new();
        frame_header(2, &mut value);
        value.extend(v.encode(&schema));
        out.push(record(Topic::Rooms, 0, offset as i64, T0, v.key(), value));
    }
    let mut offsets = BTreeMap::new();
    for &(r, minute, people, sensor) in readings {
        let v = &rooms[r];
        let partition = i32::from(v.office_id != "lon");
        let reading = Reading {
            sensor_id: format!("s-{}-{sensor}", v.room_id),
            office_id: v.office_id.clone(),
            room_id: v.room_id.clone(),
            ts: T0 + minute * MIN,
            people_count: people,
            temperature: None,
            humidity: None,
            co2_ppm: None,
            battery_pct: None,
        };
        let mut value = Vec::new();
        frame_header(1, &mut value);
        reading.encode_v1(&mut value);
        let offset = offsets.entry(partition).or_insert(0i64);
        out.push(record(
            Topic::Readings,
            partition,
            *offset,
            reading.ts,
            v.office_id.clone(),
            value,
        ));
        *offset += 1;
    }
    out
}

/// What a run comes to, whatever its epochs: the latest revision of each room and office
/// window (versions left out: they are the wall clock), the dead letters, and the
/// readings counted and replaced.
#[derive(Debug)]
struct Results {
    rooms: BTreeMap<(String, i8, i64), RoomRow>,
    offices: BTreeMap<(String, i8, i64), OfficeRow>,
    letters: Vec<(i32, i64, String)>,
    counted: u64,
    replaced: u64,
    /// Room rows written, every revision counted (not compared).
    written: usize,
    /// The aggregation's view of its partitions' watermarks at the end (not compared).
    watermarks: Vec<(TenantId, i32, i64)>,
}

impl PartialEq for Results {
    fn eq(&self, other: &Self) -> bool {
        (
            &self.rooms,
            &self.offices,
            &self.letters,
            self.counted,
            self.replaced,
        ) == (
            &other.rooms,
            &other.offices,
            &other.letters,
            other.counted,
            other.replaced,
        )
    }
}

/// Runs `records` through [`compute`], starting a new epoch before each index in `cuts`,
/// revisions of open windows held back for `interval_ms` in a backlog (which these
/// records are: read long after they were taken).
fn run(records: Vec<Input>, cuts: &[usize], interval_ms: i64) -> Results {
    let cuts = cuts.to_vec();
    timely::execute_directly(move |worker| {
        // The schemas known before the first record, as after a pipeline's first
        // minutes: a first fetch holds a tenant's records back and merges the epochs.
        let mut decoder = Decoder::new(Schemas);
        for r in records.iter().take(4) {
            if let Input::Record(r) = r {
                let _ = decoder.decode(r.clone());
            }
        }
        let mut input = InputHandleVec::<u64, Input>::new();
        let probe = ProbeHandle::new();
        let seen = Rc::new(RefCell::new(Vec::new()));
        let sink = seen.clone();
        let view = AggregateView::default();
        worker.dataflow::<u64, _, _>(|scope| {
            let parts = Computation {
                decoder,
                paused: Paused::default(),
                aggregator: Aggregator::new(AggregateConfig {
                    revision_interval_ms: interval_ms,
                    ..AggregateConfig::default()
                }),
                view: view.clone(),
                analyzer: Some(Analyzer::new(AnalyzeConfig::default(), Restored::default())),
                bookings: None,
            };
            compute(scope.input_from(&mut input), parts)
                .inspect(move |o| sink.borrow_mut().push(o.clone()))
                .probe_with(&probe);
        });
        for (i, r) in records.into_iter().enumerate() {
            if cuts.contains(&i) {
                let next = *input.time() + 1;
                input.advance_to(next);
            }
            input.send(r);
        }
        drop(input);
        while !probe.done() {
            worker.step();
        }
        let mut results = Results {
            rooms: BTreeMap::new(),
            offices: BTreeMap::new(),
            letters: Vec::new(),
            counted: 0,
            replaced: 0,
            written: 0,
            watermarks: view.watermarks(),
        };
        // The latest revision of each window is the one with the highest version (the
        // outputs of different epochs may arrive in any order).
        for o in seen.take() {
            match o {
                Output::Room(r) => {
                    results.written += 1;
                    let key = (
                        r.room_id.clone(),
                        r.granularity.enum_value(),
                        r.window_start,
                    );
                    if results
                        .rooms
                        .get(&key)
                        .is_none_or(|old| old.version < r.version)
                    {
                        results.rooms.insert(key, r);
                    }
                }
                Output::Office(o) => {
                    let key = (
                        o.office_id.clone(),
                        o.granularity.enum_value(),
                        o.window_start,
                    );
                    if results
                        .offices
                        .get(&key)
                        .is_none_or(|old| old.version < o.version)
                    {
                        results.offices.insert(key, o);
                    }
                }
                Output::DeadLetter(d) => {
                    results
                        .letters
                        .push((d.partition, d.offset, d.reason.as_str().to_owned()))
                }
                Output::Checkpoint(c) => {
                    results.counted += c.counted;
                    results.replaced += c.replaced;
                }
                _ => {}
            }
        }
        results.letters.sort();
        // Versions are the wall clock: they differ between runs by design.
        results.rooms.values_mut().for_each(|r| r.version = 0);
        results.offices.values_mut().for_each(|o| o.version = 0);
        results
    })
}

fn any_reading() -> impl Strategy<Value = Spec> {
    // Six hours, out of order within a partition by up to an hour (some late, some
    // within the allowed lateness), repeated sensors and minutes (revisions).
    (0usize..3, 0i64..360, 0i32..14, 0u8..2)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn results_do_not_depend_on_how_readings_are_cut_into_epochs(
        mut readings in proptest::collection::vec(any_reading(), 1..200),
        cuts in proptest::collection::vec(0usize..210, 0..30),
        jitter in proptest::collection::vec(-60i64..60, 200),
    ) {
        // Mostly in time order, as sensors publish, with some disorder.
        readings.sort_by_key(|&(_, minute, _, _)| minute);
        for (r, j) in readings.iter_mut().zip(&jitter) {
            if j.abs() < 10 {
                r.1 = (r.1 + j).clamp(0, 359);
            }
        }
        let records = records(&readings);
        let one_epoch = run(records.clone(), &[], 0);
        let every_record = run(records.clone(), &(0..records.len()).collect::<Vec<_>>(), 0);
        let cut = run(records.clone(), &cuts, 0);
        // Revisions held back for an hour: only the last of each window is written.
        let deferred = run(records, &cuts, 3_600_000);
        prop_assert!(!one_epoch.rooms.is_empty());
        prop_assert_eq!(&one_epoch, &every_record);
        prop_assert_eq!(&one_epoch, &cut);
        prop_assert_eq!(&one_epoch, &deferred);
    }
}

/// The three runs of the property, on one fixed set: what the property compares is there.
#[test]
fn a_day_of_readings_gives_the_same_rows_in_one_epoch_or_many() {
    let mut readings = Vec::new();
    for minute in 0..(24 * 60) {
        for r in 0..3 {
            readings.push((r, minute, (minute % 7) as i32, 0));
        }
    }
    let records = records(&readings);
    let one = run(records.clone(), &[], 0);
    let cuts: Vec<usize> = (0..records.len()).step_by(7).collect();
    let many = run(records.clone(), &cuts, 0);
    assert_eq!(one, many);
    let held_back = run(records, &cuts, 3_600_000);
    assert_eq!(one, held_back, "revisions held back");
    assert!(
        held_back.written * 2 < many.written,
        "fewer revisions: {} against {}",
        held_back.written,
        many.written
    );
    assert!(one.rooms.values().any(|r| r.is_final));
    assert!(one.offices.len() >= 2 * 96);
    assert_eq!(one.letters, Vec::new());
}

/// A restart: the source hands the partition's resume point to the aggregation in the
/// input, before the partition's records, and the replayed records are not counted or
/// dead-lettered again, nor do windows final before the restart reopen.
#[test]
fn a_resume_in_the_input_restores_its_partition_before_its_records() {
    // Two hours in London; the last reading is late.
    let mut readings: Vec<Spec> = (0..120).map(|m| (0, m, 2, 0)).collect();
    readings.push((0, 1, 9, 0));
    let records = records(&readings);
    let first = run(records.clone(), &[], 0);
    assert_eq!(first.letters, [(0, 120, "late".to_owned())]);
    assert_eq!(first.counted, 105, "the 15m windows final by the end");
    let last = T0 + 119 * MIN;
    assert_eq!(first.watermarks, [(tenant(), 0, last)]);

    // Everything was processed and written before the restart.
    let mut replay = vec![Input::Resume(Resume::Readings {
        tenant: tenant(),
        partition: 0,
        watermark: i64::MIN,
        processed_until: 121,
        final_watermark: last,
    })];
    replay.extend(records);
    let again = run(replay, &[4, 50], 0);
    assert_eq!(again.letters, Vec::new(), "nothing dead-lettered twice");
    assert_eq!(again.counted, 0, "nothing counted twice");
    assert!(
        again
            .rooms
            .values()
            .all(|r| !r.is_final || r.window_end > last - 5 * MIN),
        "no window final before the restart is written again"
    );
    assert_eq!(again.watermarks, [(tenant(), 0, last)]);
}
