//! Readings nobody should trust, through the real decoder and the aggregator: a sensor's
//! clock far ahead of the pipeline's cannot close its partition's windows, and no
//! reading that passes validation can panic a worker or escape the accounting.

use std::sync::Arc;

use proptest::prelude::*;
use rf_operators::Topic;
use rf_operators::*;
use rf_schemas::framing::frame_header;
use rf_schemas::registry::RegistryError;
use rf_schemas::{DeadLetterReason, Reading, RoomKind, RoomVersion, TenantId};

const T0: i64 = 1_767_603_600_000; // 2026-01-05T09:00:00Z
const MIN: i64 = 60_000;

/// A registry that knows the v1 reading schema as id 1.
struct OneSchema;

impl SchemaSource for OneSchema {
    fn fetch(&self, id: u32) -> Result<String, RegistryError> {
        match id {
            1 => Ok(rf_schemas::OCCUPANCY_READING_AVSC.into()),
            _ => Err(RegistryError::UnknownId(id)),
        }
    }
}

fn room(id: &str, office: &str, tz: chrono_tz::Tz) -> Arc<RoomVersion> {
    Arc::new(RoomVersion {
        room_id: id.into(),
        office_id: office.into(),
        office_name: office.into(),
        region: "EMEA".into(),
        country_code: "GB".into(),
        timezone: tz,
        floor: 1,
        name: id.into(),
        kind: RoomKind::Meeting,
        capacity: 6,
        area_m2: None,
        monthly_cost: None,
        effective_from: 0,
    })
}

/// Decodes records as the pipeline does and feeds what passes to one aggregator,
/// counting where every record went.
struct Pipeline {
    decoder: Decoder<OneSchema>,
    aggregator: Aggregator,
    offset: i64,
    accepted: u64,
    rejected: Vec<DeadLetterReason>,
    out: Vec<Output>,
}

impl Pipeline {
    fn new(rooms: &[Arc<RoomVersion>]) -> Self {
        let mut p = Self {
            decoder: Decoder::new(OneSchema),
            aggregator: Aggregator::new(AggregateConfig::default()),
            offset: 0,
            accepted: 0,
            rejected: Vec::new(),
            out: Vec::new(),
        };
        for (i, v) in rooms.iter().enumerate() {
            let event = RoomEvent {
                tenant: tenant(),
                partition: 0,
                offset: i as i64,
                room_id: v.room_id.clone(),
                effective_from: v.effective_from,
                version: Some(v.clone()),
            };
            p.aggregator
                .apply(Decoded::Room(Box::new(event)), &mut p.out);
        }
        p
    }

    /// One reading as a record with this record timestamp, read at `received` by the
    /// consumer's clock.
    fn send(&mut self, r: &Reading, record_ts: i64, received: i64) {
        let mut value = Vec::new();
        frame_header(1, &mut value);
        r.encode_v1(&mut value);
        let record = RawRecord {
            tenant: tenant(),
            topic: Topic::Readings,
            partition: 0,
            offset: self.offset,
            timestamp: record_ts,
            received,
            key: Some(r.office_id.as_bytes().to_vec()),
            value: Some(value),
        };
        self.offset += 1;
        match self.decoder.decode(record) {
            Ok(event) => {
                self.accepted += 1;
                self.aggregator.apply(event, &mut self.out);
            }
            Err(letter) => self.rejected.push(letter.reason),
        }
    }

    /// Flushes, and returns (counted, replaced, dead letters) of the aggregator so far.
    fn settle(&mut self) -> (u64, u64, Vec<DeadLetterReason>) {
        self.aggregator.flush(&mut self.out);
        let (mut counted, mut replaced, mut letters) = (0, 0, Vec::new());
        for o in &self.out {
            match o {
                Output::Checkpoint(c) => {
                    counted += c.counted;
                    replaced += c.replaced;
                }
                Output::DeadLetter(d) => letters.push(d.reason),
                _ => {}
            }
        }
        (counted, replaced, letters)
    }
}

fn tenant() -> TenantId {
    TenantId::parse("acme").unwrap()
}

fn reading(room_id: &str, office: &str, ts: i64, people: i32) -> Reading {
    Reading {
        sensor_id: format!("s-{room_id}"),
        office_id: office.into(),
        room_id: room_id.into(),
        ts,
        people_count: people,
        temperature: None,
        humidity: None,
        co2_ppm: None,
        battery_pct: None,
    }
}

/// The measurement: one reading whose `ts` and record timestamp are both 50
/// minutes ahead of the wall clock, among 180 honest ones. Before, it moved the
/// partition's watermark and 149 honest readings were dead-lettered as late.
#[test]
fn a_sensor_clock_far_ahead_cannot_close_honest_windows() {
    let rooms: Vec<_> = (0..3)
        .map(|i| room(&format!("r{i}"), "lon", chrono_tz::Europe::London))
        .collect();
    let mut p = Pipeline::new(&rooms);
    let (mut honest, mut wall) = (0, T0);
    for minute in 0..60 {
        wall = T0 + minute * MIN;
        for r in &rooms {
            // Honest readings reach the pipeline two seconds after they are taken.
            p.send(&reading(&r.room_id, "lon", wall, 2), wall, wall + 2_000);
            honest += 1;
        }
        if minute == 5 {
            let ahead = wall + 50 * MIN;
            p.send(&reading("r0", "lon", ahead, 9), ahead, wall + 2_000);
        }
    }
    let (counted, replaced, letters) = p.settle();
    assert_eq!(p.rejected, vec![DeadLetterReason::FutureTimestamp]);
    assert!(
        letters.is_empty(),
        "no honest reading is dead-lettered: {letters:?}"
    );
    assert_eq!(replaced, 0);
    // Windows still open hold the rest, which are neither counted nor lost.
    let pending = p.aggregator.size().pending as u64;
    assert_eq!(counted + pending, honest);
    let watermark = p.aggregator.watermark(&tenant(), 0).unwrap();
    assert_eq!(watermark, wall, "event time follows the honest readings");
}

/// The watermark cap on its own: even a reading the decoder did not judge (its skew
/// allowance raised for a simulation) moves event time no further than the consumer's
/// clock plus the aggregator's allowance.
#[test]
fn no_watermark_passes_the_consumers_clock_plus_the_skew() {
    let rooms = [room("r0", "lon", chrono_tz::UTC)];
    let mut p = Pipeline::new(&rooms);
    p.decoder = Decoder::new(OneSchema).with_clock_skew(i64::MAX / 4);
    let ahead = T0 + 50 * MIN;
    p.send(&reading("r0", "lon", ahead, 1), ahead, T0);
    assert_eq!(p.accepted, 1);
    let skew = AggregateConfig::default().clock_skew_ms;
    assert_eq!(p.aggregator.watermark(&tenant(), 0), Some(T0 + skew));
}

fn any_reading() -> impl Strategy<Value = (Reading, i64, i64)> {
    // Timestamps from anywhere in i64, and from around the consumer's clock (mostly a
    // little behind it, as honest readings are).
    let near = || prop_oneof![Just(None), (-2 * 86_400_000i64..10 * MIN).prop_map(Some)];
    (
        (any::<i64>(), near()),
        (any::<i64>(), near()),
        0i64..(3 * 86_400_000),
        0usize..4,
        prop_oneof![Just("lon"), Just("nyc")],
        prop_oneof![any::<i32>(), 0..20],
        proptest::option::of(any::<f32>()),
        proptest::option::of(any::<f32>()),
    )
        .prop_map(|(ts, record_ts, after, room, office, people, t, h)| {
            let received = T0 + after;
            let pick = |(any, near): (i64, Option<i64>)| near.map_or(any, |d| received + d);
            let mut r = reading(&format!("r{room}"), office, pick(ts), people);
            r.temperature = t;
            r.humidity = h;
            (r, pick(record_ts), received)
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Whatever readings arrive, in whatever order and with whatever clocks, the worker
    /// does not panic, and every reading the decoder passed is counted, replaced, dead-
    /// lettered by the aggregator, or still waiting in an open window.
    #[test]
    fn any_valid_reading_is_accounted_for_and_panics_nothing(
        batch in proptest::collection::vec(any_reading(), 1..200),
    ) {
        // r3 has no room metadata; nyc rooms do not exist: unknown rooms and mismatches.
        let rooms = [
            room("r0", "lon", chrono_tz::Europe::London),
            room("r1", "lon", chrono_tz::America::St_Johns),
            room("r2", "lon", chrono_tz::Asia::Kathmandu),
        ];
        let mut p = Pipeline::new(&rooms);
        let mut clock = i64::MIN;
        let mut sorted = batch;
        sorted.sort_by_key(|(_, _, received)| *received);
        for (i, (r, record_ts, received)) in sorted.iter().enumerate() {
            clock = clock.max(*received);
            p.send(r, *record_ts, clock);
            if i % 50 == 49 {
                p.aggregator.flush(&mut p.out);
            }
        }
        let (counted, replaced, letters) = p.settle();
        let pending = p.aggregator.size().pending as u64;
        prop_assert_eq!(counted + replaced + letters.len() as u64 + pending, p.accepted);
        prop_assert_eq!(p.accepted + p.rejected.len() as u64, sorted.len() as u64);
    }
}
