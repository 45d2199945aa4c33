//! Property tests of framing, decoding and validation: whatever bytes arrive, nothing
//! panics, and what was encoded decodes to itself.

use apache_avro::Schema;
use proptest::prelude::*;

use rf_schemas::framing::{frame_header, unframe};
use rf_schemas::reading::ReadingDecoder;
use rf_schemas::{Reading, OCCUPANCY_READING_AVSC, OCCUPANCY_READING_V2_AVSC};

fn decoders() -> [ReadingDecoder; 2] {
    [OCCUPANCY_READING_AVSC, OCCUPANCY_READING_V2_AVSC]
        .map(|s| ReadingDecoder::new(&Schema::parse_str(s).unwrap()).unwrap())
}

fn any_reading() -> impl Strategy<Value = Reading> {
    (
        (".{0,12}", ".{0,12}", ".{0,12}", any::<i64>(), any::<i32>()),
        (
            proptest::option::of(any::<f32>()),
            proptest::option::of(any::<f32>()),
            proptest::option::of(any::<i32>()),
            proptest::option::of(any::<f32>()),
        ),
    )
        .prop_map(
            |((sensor_id, office_id, room_id, ts, people_count), (t, h, c, b))| Reading {
                sensor_id,
                office_id,
                room_id,
                ts,
                people_count,
                temperature: t,
                humidity: h,
                co2_ppm: c,
                battery_pct: b,
            },
        )
}

/// Equality that treats a NaN as equal to the same NaN.
fn same(a: &Reading, b: &Reading) -> bool {
    let bits = |f: Option<f32>| f.map(f32::to_bits);
    (
        &a.sensor_id,
        &a.office_id,
        &a.room_id,
        a.ts,
        a.people_count,
        a.co2_ppm,
    ) == (
        &b.sensor_id,
        &b.office_id,
        &b.room_id,
        b.ts,
        b.people_count,
        b.co2_ppm,
    ) && (bits(a.temperature), bits(a.humidity), bits(a.battery_pct))
        == (bits(b.temperature), bits(b.humidity), bits(b.battery_pct))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn framing_round_trips_and_never_panics(id in any::<u32>(), body in proptest::collection::vec(any::<u8>(), 0..64), noise in proptest::collection::vec(any::<u8>(), 0..16)) {
        let mut framed = Vec::new();
        frame_header(id, &mut framed);
        framed.extend_from_slice(&body);
        prop_assert_eq!(unframe(&framed), Ok((id, body.as_slice())));
        let _ = unframe(&noise);
    }

    #[test]
    fn arbitrary_bytes_never_panic_a_decoder(body in proptest::collection::vec(any::<u8>(), 0..256)) {
        for d in decoders() {
            let _ = d.decode(&body);
        }
    }

    #[test]
    fn encoded_readings_decode_to_themselves(r in any_reading()) {
        let [v1, v2] = decoders();
        let mut body = Vec::new();
        r.encode_v2(&mut body);
        let back = v2.decode(&body).unwrap();
        prop_assert!(same(&back, &r), "{back:?} != {r:?}");
        body.clear();
        r.encode_v1(&mut body);
        let back = v1.decode(&body).unwrap();
        let v1_fields = Reading { co2_ppm: None, battery_pct: None, ..r.clone() };
        prop_assert!(same(&back, &v1_fields));
    }

    #[test]
    fn damaged_readings_are_errors_not_panics(r in any_reading(), cut in any::<prop::sample::Index>(), flip in any::<prop::sample::Index>(), bit in 0u8..8) {
        let [_, v2] = decoders();
        let mut body = Vec::new();
        r.encode_v2(&mut body);
        // Any strict prefix is an error: decoding follows the same path and runs out.
        let prefix = &body[..cut.index(body.len())];
        prop_assert!(v2.decode(prefix).is_err());
        let mut flipped = body.clone();
        let i = flip.index(flipped.len());
        flipped[i] ^= 1 << bit;
        let _ = v2.decode(&flipped);
    }

    #[test]
    fn any_timestamps_are_judged_without_overflow(ts in any::<i64>(), record_ts in any::<i64>()) {
        let r = Reading {
            sensor_id: "s".into(),
            office_id: "lon".into(),
            room_id: "r".into(),
            ts,
            people_count: 1,
            temperature: None,
            humidity: None,
            co2_ppm: None,
            battery_pct: None,
        };
        let _ = r.validate(record_ts, Some(b"lon"));
    }

    #[test]
    fn validation_never_panics(r in any_reading(), record_ts in any::<i64>(), key in proptest::option::of(".{0,12}")) {
        let _ = r.validate(record_ts, key.as_deref().map(str::as_bytes));
    }
}
