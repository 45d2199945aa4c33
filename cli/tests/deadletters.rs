//! Every dead-letter reason of the contract, produced on the real stack: each bad
//! reading lands in the tenant's dead-letter topic with its reason, a detail, where it
//! came from and its original bytes, and the pipeline goes on.

mod common;

use rdkafka::producer::FutureProducer;

use common::{
    assert_accounts, create_tenant, framed as v1, framed_v2 as v2, produce_all, read_topic,
    reading_v2_id, room_records, run_until_caught_up, settings, stack_is_up,
};
use rf_schemas::{Reading, RoomKind, RoomVersion, TenantId};

const T0: i64 = 1_767_603_600_000; // 2026-01-05T09:00:00Z
const MIN: i64 = 60_000;

fn room(id: &str) -> RoomVersion {
    RoomVersion {
        room_id: id.into(),
        office_id: "lon".into(),
        office_name: "London".into(),
        region: "EMEA".into(),
        country_code: "GB".into(),
        timezone: chrono_tz::Europe::London,
        floor: 1,
        name: id.into(),
        kind: RoomKind::Focus,
        capacity: 2,
        area_m2: None,
        monthly_cost: None,
        effective_from: T0 - 86_400_000,
    }
}

fn reading(room_id: &str, ts: i64, people: i32) -> Reading {
    Reading {
        sensor_id: format!("s-{room_id}"),
        office_id: "lon".into(),
        room_id: room_id.into(),
        ts,
        people_count: people,
        temperature: None,
        humidity: None,
        co2_ppm: None,
        battery_pct: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_reason_is_dead_lettered_with_its_record() {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let tenant = TenantId::parse(&format!("dlq-{}", nanos % 1_000_000_000)).unwrap();
    let s = settings(&tenant);
    stack_is_up(&s);
    let (reading_id, room_id) = create_tenant(&tenant).await;
    let v2_id = reading_v2_id(&s, &tenant);
    let producer: FutureProducer = s.kafka.client_config().create().unwrap();
    produce_all(
        &producer,
        &tenant.rooms_topic(),
        &room_records(&[room("lon-a")], room_id, T0),
    )
    .await;

    let ok = |ts, people| v1(reading_id, &reading("lon-a", ts, people));
    let at = |ts: i64| ts + 1_000; // the record timestamp: a second after the count
                                   // (value, record timestamp, expected reason); all keyed `lon`, so one partition and
                                   // offsets in this order.
    let records: Vec<(Vec<u8>, i64, Option<&str>)> = vec![
        (ok(T0, 1), at(T0), None),
        (b"not avro at all".to_vec(), at(T0), Some("malformed")),
        (
            v1(999_999, &reading("lon-a", T0, 1)),
            at(T0),
            Some("unknown_schema"),
        ),
        // The room schema's id around a reading: known, but not an OccupancyReading.
        (
            v1(room_id, &reading("lon-a", T0, 1)),
            at(T0),
            Some("incompatible_schema"),
        ),
        (ok(T0 + MIN, 20_000), at(T0 + MIN), Some("out_of_range")),
        (
            v2(
                v2_id,
                &Reading {
                    co2_ppm: Some(50_000),
                    ..reading("lon-a", T0 + MIN, 1)
                },
            ),
            at(T0 + MIN),
            Some("out_of_range"),
        ),
        (ok(T0 + 12 * MIN, 1), at(T0 + MIN), Some("future_timestamp")),
        (
            v1(
                reading_id,
                &Reading {
                    office_id: "par".into(),
                    ..reading("lon-a", T0 + 2 * MIN, 1)
                },
            ),
            at(T0 + 2 * MIN),
            Some("office_mismatch"),
        ),
        (
            v1(reading_id, &reading("lon-zz", T0 + 3 * MIN, 1)),
            at(T0 + 3 * MIN),
            Some("unknown_room"),
        ),
        // Closes the first 15m window (end + 5 min lateness), then a reading for it.
        (ok(T0 + 30 * MIN, 0), at(T0 + 30 * MIN), None),
        (ok(T0 + 4 * MIN, 1), at(T0 + 30 * MIN), Some("late")),
    ];
    let to_produce: Vec<(String, Vec<u8>, i64)> = records
        .iter()
        .map(|(v, ts, _)| ("lon".to_owned(), v.clone(), *ts))
        .collect();
    produce_all(&producer, &tenant.readings_topic(), &to_produce).await;

    let report = run_until_caught_up(&s).await;
    assert_accounts(&report);
    let expected: Vec<(i64, &str)> = records
        .iter()
        .enumerate()
        .filter_map(|(offset, (_, _, reason))| reason.map(|r| (offset as i64, r)))
        .collect();
    assert_eq!(report.stats.dead_letters, expected.len() as u64);

    let letters = read_topic(&s.kafka, &tenant.deadletter_topic(), expected.len());
    let mut got: Vec<(i64, String)> = Vec::new();
    for (key, value, headers) in &letters {
        let offset: i64 = headers["rf-source-offset"].parse().unwrap();
        assert_eq!(key.as_deref(), Some(&b"lon"[..]), "the original key");
        assert_eq!(
            value.as_deref(),
            Some(records[offset as usize].0.as_slice()),
            "the original bytes of offset {offset}"
        );
        assert_eq!(headers["rf-source-topic"], tenant.readings_topic());
        assert!(
            !headers["rf-detail"].is_empty(),
            "offset {offset} explains itself"
        );
        got.push((offset, headers["rf-reason"].clone()));
    }
    got.sort();
    let expected: Vec<(i64, String)> = expected
        .into_iter()
        .map(|(o, r)| (o, r.to_owned()))
        .collect();
    assert_eq!(got, expected);
    let reasons: std::collections::BTreeSet<&str> = got.iter().map(|(_, r)| r.as_str()).collect();
    assert_eq!(
        reasons.len(),
        rf_schemas::DeadLetterReason::ALL.len(),
        "every reason of the contract"
    );

    // `roomflow deadletter inspect` counts them and decodes what decodes.
    let found =
        rf_jobs::deadletter::inspect(&s.kafka, &s.registry, &tenant, None, 5, false).unwrap();
    assert_eq!(found.total, got.len() as u64);
    assert_eq!(found.reasons["out_of_range"].0, 2);
    assert_eq!(
        found.hours.values().flat_map(|h| h.values()).sum::<u64>(),
        found.total
    );
    let shown = |reason: &str| &found.examples[reason];
    let late = shown("late")[0]
        .reading
        .as_ref()
        .expect("a late reading decodes");
    assert_eq!((late.room_id.as_str(), late.ts), ("lon-a", T0 + 4 * MIN));
    let co2 = shown("out_of_range")[1]
        .reading
        .as_ref()
        .expect("v2 decodes too");
    assert_eq!(co2.co2_ppm, Some(50_000));
    assert!(shown("malformed")[0].reading.is_none());
    assert!(shown("unknown_schema")[0].reading.is_none());
    assert_eq!(shown("unknown_room")[0].source.1, 8);
    // Since a moment after they were written: nothing.
    let later = chrono::Utc::now().timestamp_millis() + 1_000;
    let none = rf_jobs::deadletter::inspect(&s.kafka, &s.registry, &tenant, Some(later), 5, false)
        .unwrap();
    assert_eq!(none.total, 0);
}
