//! End to end on the real local stack (deploy/local/stack.sh start): a fixed set of Avro
//! readings and room metadata through the broker, the pipeline, ClickHouse, Redis and
//! the dead-letter topic, with every row, key and letter checked exactly.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use clickhouse::Row;
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde::Deserialize;

use common::{
    create_tenant, framed, framed_v2, produce_all, read_topic, room_records, run_until_caught_up,
    service_stores, settings, stack_is_up,
};
use rf_pipelines::Settings;
use rf_schemas::{Reading, RoomKind, RoomVersion, TenantId};

const T0: i64 = 1_767_603_600_000; // 2026-01-05T09:00:00Z, a Monday; London is on UTC
const MIN: i64 = 60_000;
const DAY_START: u32 = 1_767_571_200; // 2026-01-05T00:00:00Z, London midnight
const CLOSER_TS: i64 = T0 + 25 * 3_600_000; // 2026-01-06T10:00:00Z

fn room(id: &str, capacity: u32) -> RoomVersion {
    RoomVersion {
        room_id: id.into(),
        office_id: "lon".into(),
        office_name: "London".into(),
        region: "EMEA".into(),
        country_code: "GB".into(),
        timezone: chrono_tz::Europe::London,
        floor: 3,
        name: id.into(),
        kind: RoomKind::Meeting,
        capacity,
        area_m2: Some(20.0),
        monthly_cost: Some(900.0),
        effective_from: 1_704_067_200_000,
    }
}

fn reading(room_id: &str, ts: i64, people: i32) -> Reading {
    Reading {
        sensor_id: format!("s-{room_id}"),
        office_id: "lon".into(),
        room_id: room_id.into(),
        ts,
        people_count: people,
        temperature: Some(21.0),
        humidity: None,
        co2_ppm: None,
        battery_pct: None,
    }
}

async fn produce(producer: &FutureProducer, topic: &str, key: &str, value: &[u8], ts: i64) {
    producer
        .send(
            FutureRecord::to(topic)
                .key(key)
                .payload(value)
                .timestamp(ts),
            Duration::from_secs(10),
        )
        .await
        .unwrap_or_else(|(e, _)| panic!("producing to {topic}: {e}"));
}

#[derive(Row, Deserialize, Debug, PartialEq)]
struct RoomRowOut {
    granularity: String,
    room_id: String,
    window_start: u32,
    window_end: u32,
    samples: u32,
    avg_people: f64,
    peak_people: u32,
    occupied_ratio: f64,
    capacity: u32,
    utilization: f64,
}

#[derive(Row, Deserialize, Debug, PartialEq)]
struct OfficeRowOut {
    granularity: String,
    window_start: u32,
    window_end: u32,
    rooms_reporting: u32,
    avg_people: f64,
    peak_people: f64,
    capacity: u32,
    utilization: f64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fixed_readings_end_to_end() {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let tenant = TenantId::parse(&format!(
        "e2e-{}-{}",
        std::process::id(),
        nanos % 1_000_000_000
    ))
    .unwrap();
    let s = settings(&tenant);
    stack_is_up(&s);
    let (reading_id, room_id) = create_tenant(&tenant).await;
    let v2_id = common::reading_v2_id(&s, &tenant);
    assert_ne!(v2_id, reading_id);
    let upgraded = Reading {
        co2_ppm: Some(912),
        battery_pct: Some(55.5),
        ..reading("lon-b", T0 + MIN, 5)
    };

    let producer: FutureProducer = s.kafka.client_config().create().unwrap();
    let rooms = room_records(&[room("lon-a", 4), room("lon-b", 10)], room_id, T0);
    produce_all(&producer, &tenant.rooms_topic(), &rooms).await;
    let topic = tenant.readings_topic();
    let fixture: Vec<(Vec<u8>, i64)> = vec![
        (framed(reading_id, &reading("lon-a", T0, 2)), T0), // 0
        (
            framed(reading_id, &reading("lon-a", T0 + 2 * MIN, 0)),
            T0 + 2 * MIN,
        ), // 1: out of order
        (framed(reading_id, &reading("lon-a", T0 + MIN, 4)), T0 + MIN), // 2: replaced by 5
        (framed(reading_id, &reading("lon-b", T0, 5)), T0), // 3
        (framed_v2(v2_id, &upgraded), T0 + MIN),            // 4: v2, beside v1
        (framed(reading_id, &reading("lon-a", T0 + MIN, 3)), T0 + MIN), // 5: duplicate key
        (b"not avro at all".to_vec(), T0 + MIN),            // 6: malformed
        (
            framed(reading_id, &reading("lon-z", T0 + 3 * MIN, 1)),
            T0 + 3 * MIN,
        ), // 7: unknown room
        (
            framed(reading_id, &reading("lon-a", CLOSER_TS, 1)),
            CLOSER_TS,
        ), // 8: closes Jan 5
        (
            framed(reading_id, &reading("lon-b", T0 + 5 * MIN, 7)),
            CLOSER_TS,
        ), // 9: late
        (vec![0, 0, 0, 0], CLOSER_TS), // 10: malformed, the partition's last record
    ];
    for (value, ts) in &fixture {
        produce(&producer, &topic, "lon", value, ts + 1_000).await;
    }

    let report = run_until_caught_up(&s).await;
    let st = &report.stats;
    // Accounting: 11 consumed = 5 counted + 1 replaced + 4 dead letters + 1 still open.
    assert_eq!(
        (
            st.consumed,
            st.counted,
            st.replaced,
            st.dead_letters,
            st.pending
        ),
        (11, 5, 1, 4, 1),
        "{st:?}"
    );

    let ch = rf_sinks::clickhouse::client(&s.clickhouse).with_database(tenant.clickhouse_db());
    check_final_readings(&ch, reading_id, v2_id).await;
    let rooms: Vec<RoomRowOut> = ch
        .query(
            "SELECT toString(granularity), room_id, toUInt32(window_start), toUInt32(window_end), samples, \
             avg_people, peak_people, occupied_ratio, capacity, utilization \
             FROM room_utilization FINAL WHERE final = 1 ORDER BY granularity, room_id",
        )
        .fetch_all()
        .await
        .unwrap();
    let t0 = (T0 / 1000) as u32;
    let a = |g: &str, start: u32, end: u32| RoomRowOut {
        granularity: g.into(),
        room_id: "lon-a".into(),
        window_start: start,
        window_end: end,
        samples: 3,
        avg_people: 5.0 / 3.0,
        peak_people: 3,
        occupied_ratio: 2.0 / 3.0,
        capacity: 4,
        utilization: 5.0 / 12.0,
    };
    let b = |g: &str, start: u32, end: u32| RoomRowOut {
        granularity: g.into(),
        room_id: "lon-b".into(),
        window_start: start,
        window_end: end,
        samples: 2,
        avg_people: 5.0,
        peak_people: 5,
        occupied_ratio: 1.0,
        capacity: 10,
        utilization: 0.5,
    };
    let expected = vec![
        a("15m", t0, t0 + 900),
        b("15m", t0, t0 + 900),
        a("1h", t0, t0 + 3600),
        b("1h", t0, t0 + 3600),
        a("1d", DAY_START, DAY_START + 86_400),
        b("1d", DAY_START, DAY_START + 86_400),
    ];
    assert_eq!(rooms.len(), expected.len(), "{rooms:#?}");
    for (got, want) in rooms.iter().zip(&expected) {
        assert_eq!(
            (
                &got.granularity,
                &got.room_id,
                got.window_start,
                got.window_end,
                got.samples,
                got.peak_people,
                got.capacity
            ),
            (
                &want.granularity,
                &want.room_id,
                want.window_start,
                want.window_end,
                want.samples,
                want.peak_people,
                want.capacity
            )
        );
        for (x, y) in [
            (got.avg_people, want.avg_people),
            (got.occupied_ratio, want.occupied_ratio),
            (got.utilization, want.utilization),
        ] {
            assert!((x - y).abs() < 1e-9, "{got:?} vs {want:?}");
        }
    }

    let offices: Vec<OfficeRowOut> = ch
        .query(
            "SELECT toString(granularity), toUInt32(window_start), toUInt32(window_end), rooms_reporting, \
             avg_people, peak_people, capacity, utilization \
             FROM office_utilization FINAL WHERE final = 1 AND office_id = 'lon' ORDER BY granularity",
        )
        .fetch_all()
        .await
        .unwrap();
    let windows = [
        ("15m", t0, t0 + 900),
        ("1h", t0, t0 + 3600),
        ("1d", DAY_START, DAY_START + 86_400),
    ];
    assert_eq!(offices.len(), 3, "{offices:#?}");
    for (o, (g, start, end)) in offices.iter().zip(windows) {
        assert_eq!(
            (o.granularity.as_str(), o.window_start, o.window_end),
            (g, start, end)
        );
        assert_eq!((o.rooms_reporting, o.capacity), (2, 14));
        assert!((o.avg_people - 20.0 / 3.0).abs() < 1e-9);
        assert!((o.peak_people - 8.0).abs() < 1e-9, "09:01 had 3 + 5 people");
        assert!((o.utilization - 20.0 / 3.0 / 14.0).abs() < 1e-9);
    }
    // The closing reading's windows are open: revisions, not final.
    let open: u64 = ch
        .query("SELECT count() FROM room_utilization FINAL WHERE final = 0 AND room_id = 'lon-a'")
        .fetch_one()
        .await
        .unwrap();
    assert_eq!(open, 3);

    let redis = redis::Client::open(common::admin(&s.redis.url)).unwrap();
    let mut conn = redis.get_multiplexed_async_connection().await.unwrap();
    let hash = |key: String| {
        let mut conn = conn.clone();
        async move {
            redis::cmd("HGETALL")
                .arg(key)
                .query_async::<HashMap<String, String>>(&mut conn)
                .await
                .unwrap()
        }
    };
    let a = hash(format!("rf:{tenant}:room:lon-a")).await;
    assert_eq!(a["people"], "1");
    assert_eq!(a["ts"], CLOSER_TS.to_string());
    assert_eq!(
        (
            a["capacity"].as_str(),
            a["utilization"].as_str(),
            a["office_id"].as_str()
        ),
        ("4", "0.25", "lon")
    );
    let b = hash(format!("rf:{tenant}:room:lon-b")).await;
    assert_eq!(
        (b["people"].as_str(), b["ts"].clone()),
        ("5", (T0 + MIN).to_string())
    );
    let office = hash(format!("rf:{tenant}:office:lon")).await;
    // lon-b's latest reading is a day older than the office's newest: not counted.
    assert_eq!(
        (
            office["people"].as_str(),
            office["capacity"].as_str(),
            office["rooms_reporting"].as_str()
        ),
        ("1", "4", "1")
    );
    assert!(hash(format!("rf:{tenant}:room:lon-z")).await.is_empty());
    let _: () = redis::cmd("PING").query_async(&mut conn).await.unwrap();
    check_query_service(&s, &tenant).await;
    // Dead letters: original bytes, reason and provenance headers.
    let letters = read_topic(&s.kafka, &tenant.deadletter_topic(), 4);
    let mut by_reason: Vec<(String, i64, Vec<u8>, String)> = letters
        .iter()
        .map(|(key, value, headers)| {
            assert_eq!(key.as_deref(), Some(&b"lon"[..]));
            assert_eq!(headers["rf-source-topic"], topic);
            assert!(!headers["rf-detail"].is_empty());
            let offset: i64 = headers["rf-source-offset"].parse().unwrap();
            (
                headers["rf-reason"].clone(),
                offset,
                value.clone().unwrap(),
                headers["rf-source-partition"].clone(),
            )
        })
        .collect();
    by_reason.sort();
    let partition = &by_reason[0].3;
    assert!(
        by_reason.iter().all(|l| &l.3 == partition),
        "all from the office's partition"
    );
    let reasons: Vec<(&str, i64)> = by_reason.iter().map(|l| (l.0.as_str(), l.1)).collect();
    assert_eq!(
        reasons,
        vec![
            ("late", 9),
            ("malformed", 6),
            ("malformed", 10),
            ("unknown_room", 7)
        ]
    );
    for (reason, offset, value, _) in &by_reason {
        assert_eq!(
            value, &fixture[*offset as usize].0,
            "{reason} carries the original value"
        );
    }
    // A second run resumes from the committed checkpoint: it replays only what is still
    // held (the closing reading), writes no dead letter twice and changes no final row.
    let again = run_until_caught_up(&s).await;
    let st = &again.stats;
    assert_eq!(
        (st.consumed, st.dead_letters, st.counted, st.pending),
        (3, 0, 0, 1),
        "replays offsets 8 to 10: {st:?}"
    );
    assert_eq!(read_topic(&s.kafka, &tenant.deadletter_topic(), 4).len(), 4);
    let finals: u64 = ch
        .query("SELECT count() FROM room_utilization FINAL WHERE final = 1")
        .fetch_one()
        .await
        .unwrap();
    assert_eq!(finals, 6);

    ch.query(&format!("DROP DATABASE {}", tenant.clickhouse_db()))
        .execute()
        .await
        .unwrap();
}

/// The query service answers from the same stores, for the token's tenant only.
#[derive(Row, Deserialize, Debug, PartialEq)]
struct ReadingOut {
    room_id: String,
    ts_ms: i64,
    people_count: i32,
    co2_ppm: Option<i32>,
    battery_pct: Option<f32>,
    schema_id: u32,
    version: u64,
}

/// Every counted reading of a final 15m window is in `readings`, with its v2 fields; of
/// the duplicate, the later revision (offset 5).
async fn check_final_readings(ch: &clickhouse::Client, v1: u32, v2: u32) {
    let rows: Vec<ReadingOut> = ch
        .query(
            "SELECT room_id, ts_ms, people_count, co2_ppm, battery_pct, schema_id, version \
             FROM readings FINAL ORDER BY room_id, ts_ms",
        )
        .fetch_all()
        .await
        .unwrap();
    let row = |room: &str, ts, people, co2, battery, schema_id, version| ReadingOut {
        room_id: room.into(),
        ts_ms: ts,
        people_count: people,
        co2_ppm: co2,
        battery_pct: battery,
        schema_id,
        version,
    };
    assert_eq!(
        rows,
        vec![
            row("lon-a", T0, 2, None, None, v1, 0),
            row("lon-a", T0 + MIN, 3, None, None, v1, 5),
            row("lon-a", T0 + 2 * MIN, 0, None, None, v1, 1),
            row("lon-b", T0, 5, None, None, v1, 3),
            row("lon-b", T0 + MIN, 5, Some(912), Some(55.5), v2, 4),
        ]
    );
}

async fn check_query_service(s: &Settings, tenant: &TenantId) {
    let config = rf_service::ServiceConfig::default();
    let router = rf_service::app(&config, &service_stores(s)).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    let token = rf_service::mint(&config.jwt_secret, tenant, "e2e", 300);
    let stranger = rf_service::mint(
        &config.jwt_secret,
        &TenantId::parse("someone-else").unwrap(),
        "e2e",
        300,
    );
    tokio::task::spawn_blocking(move || {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .new_agent();
        let get = |path: &str, token: Option<&str>| {
            let mut request = agent.get(format!("{base}{path}"));
            if let Some(t) = token {
                request = request.header("Authorization", format!("Bearer {t}"));
            }
            let response = request.call().unwrap();
            let status = response.status().as_u16();
            let body: serde_json::Value = response.into_body().read_json().unwrap_or_default();
            (status, body)
        };
        // Correlation ids: the caller's is echoed, else one is made up.
        let echoed = |id: Option<&str>| {
            let mut request = agent.get(format!("{base}/v1/offices/lon/occupancy"));
            request = request.header("Authorization", format!("Bearer {token}"));
            if let Some(id) = id {
                request = request.header(rf_service::REQUEST_ID, id);
            }
            let response = request.call().unwrap();
            let header = response.headers().get(rf_service::REQUEST_ID).cloned();
            header.unwrap().to_str().unwrap().to_owned()
        };
        assert_eq!(echoed(Some("trace-42.a")), "trace-42.a");
        assert!(echoed(None).starts_with("rf-"));
        assert!(echoed(Some("bad id with spaces")).starts_with("rf-"));
        let (status, office) = get("/v1/offices/lon/occupancy", Some(&token));
        assert_eq!(status, 200, "{office}");
        assert_eq!(
            (
                office["people"].as_i64(),
                office["rooms_reporting"].as_i64()
            ),
            (Some(1), Some(1))
        );
        assert_eq!(office["as_of"], "2026-01-06T10:00:00Z");
        assert_eq!(
            get("/v1/offices/lon/occupancy", Some(&stranger)).0,
            401,
            "a tenant the platform does not have is refused"
        );
        assert_eq!(get("/v1/offices/lon/occupancy", None).0, 401);
        assert_eq!(get("/v1/offices/lon/occupancy", Some("not.a.jwt")).0, 401);

        let range = "from=2026-01-05T09:00:00Z&to=2026-01-05T10:00:00%2B00:00";
        let (status, series) = get(
            &format!("/v1/rooms/lon-a/utilization?granularity=15m&{range}"),
            Some(&token),
        );
        assert_eq!(status, 200, "{series}");
        let windows = series["windows"].as_array().unwrap();
        assert_eq!(windows.len(), 1);
        assert_eq!(windows[0]["start"], "2026-01-05T09:00:00Z");
        assert_eq!(
            (
                windows[0]["samples"].as_u64(),
                windows[0]["final"].as_bool()
            ),
            (Some(3), Some(true))
        );
        assert_eq!(series["office_id"], "lon");
        let (status, err) = get(
            &format!("/v1/rooms/lon-a/utilization?granularity=2h&{range}"),
            Some(&token),
        );
        assert_eq!(
            (status, err["parameter"].as_str()),
            (400, Some("granularity"))
        );
        let (status, err) = get("/v1/rooms/lon-a/utilization?from=yesterday", Some(&token));
        assert_eq!((status, err["parameter"].as_str()), (400, Some("from")));
        let (status, err) = get("/v1/rooms/lon-a'%20OR%201=1/utilization", Some(&token));
        assert_eq!((status, err["parameter"].as_str()), (400, Some("room_id")));
        let (status, _) = get(
            &format!("/v1/rooms/lon-a/utilization?granularity=15m&{range}"),
            Some(&stranger),
        );
        assert_eq!(status, 401);
    })
    .await
    .unwrap();
}
