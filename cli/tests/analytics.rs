//! Anomalies and forecasts on the real local stack: a pipeline learns a week of an
//! office, stops, and a second pipeline (a restart) restores the learnt models from
//! ClickHouse, finds a bad day's anomalies and issues forecasts that the query service
//! serves.

mod common;

use std::time::Duration;

use clickhouse::Row;
use rdkafka::producer::FutureProducer;
use serde::Deserialize;

use common::*;
use rf_service::ServiceConfig;

const T0: i64 = 1_767_571_200_000; // 2026-01-05T00:00:00Z, a Monday; London is on UTC
const MIN: i64 = 60_000;
const HOUR: i64 = 60 * MIN;
const DAY: i64 = 24 * HOUR;
/// Tuesday of the second week: r2 over capacity at 14:00, r1's sensor stuck on 3 from
/// 8:00 and silent from 12:00.
const BAD_DAY: i64 = T0 + 8 * DAY;

/// Busy on weekdays from 9 to 17 (give or take one), empty otherwise; `None`: no
/// reading.
fn people(room: &str, ts: i64) -> Option<i32> {
    let at = |h: i64| BAD_DAY + h * HOUR;
    if room == "r1" && ts >= at(12) {
        return None;
    }
    if room == "r1" && ts >= at(8) {
        return Some(3);
    }
    if room == "r2" && (at(14)..at(14) + 25 * MIN).contains(&ts) {
        return Some(7);
    }
    let (day, hour) = (((ts - T0) / DAY) % 7, (ts % DAY) / HOUR);
    let busy = day < 5 && (9..17).contains(&hour);
    // People come and go: a count that never changes for hours is a stuck sensor.
    let noise = ((ts / MIN) * 2_654_435_761 % 3) as i32 - 1;
    Some(match (room, busy) {
        ("r1", true) => 6 + noise,
        ("r2", true) => 2 + noise,
        _ => 0,
    })
}

#[derive(Row, Deserialize, Debug)]
struct Found {
    kind: String,
    entity_id: String,
    window_start: u32,
    window_end: u32,
    severity: String,
    ongoing: u8,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn models_survive_a_restart_and_a_bad_day_is_found_and_forecast() {
    let tenant = fresh_tenant("analytics");
    let mut s = settings(&tenant);
    stack_is_up(&s);
    // Only the bad day's windows are recent enough to be forecast.
    let now = chrono::Utc::now().timestamp_millis();
    s.analytics.forecast_within_secs = ((now - BAD_DAY) / 1000) as u64;
    let (reading_id, room_id) = create_tenant(&tenant).await;
    let producer: FutureProducer = s.kafka.client_config().create().unwrap();
    let rooms = [london_room("r1", 10), london_room("r2", 4)];
    produce_all(
        &producer,
        &tenant.rooms_topic(),
        &room_records(&rooms, room_id, T0),
    )
    .await;

    // A week and a day of usual readings, then the pipeline stops.
    let week = minute_readings(reading_id, (T0, BAD_DAY), &["r1", "r2"], people);
    produce_all(&producer, &tenant.readings_topic(), &week).await;
    let first = run_until_caught_up(&s).await;
    assert_accounts(&first);
    let db = tenant.clickhouse_db();
    let states = clickhouse_lines(&format!(
        "SELECT entity_kind, entity_id FROM {db}.model_state GROUP BY entity_kind, entity_id ORDER BY entity_kind, entity_id"
    ));
    assert_eq!(states, ["room\tr1", "room\tr2", "office\tlon"]);
    let early = clickhouse_lines(&format!(
        "SELECT kind FROM {db}.anomalies WHERE kind != 'occupancy'"
    ));
    assert!(early.is_empty(), "a usual week has no fault: {early:?}");
    assert_eq!(
        clickhouse_lines(&format!("SELECT count() FROM {db}.forecasts")),
        ["0"],
        "nothing recent enough to forecast yet"
    );

    // The bad day and the next, read by a new pipeline: only a week of hours learnt
    // before can make r1's morning with 3 people unusual.
    let bad = minute_readings(
        reading_id,
        (BAD_DAY, BAD_DAY + DAY + 2 * HOUR),
        &["r1", "r2"],
        people,
    );
    produce_all(&producer, &tenant.readings_topic(), &bad).await;
    // (It replays the readings of windows the first left open, so its own counts do not
    // balance; the first's did.)
    let second = run_until_caught_up(&s).await;
    assert!(second.stats.counted > 0);

    let client = rf_sinks::clickhouse::client(&s.clickhouse).with_database(&db);
    let found: Vec<Found> = client
        .query(
            "SELECT toString(kind), entity_id, toUInt32(window_start), toUInt32(argMax(window_end, version)), \
             toString(argMax(severity, version)), argMax(ongoing, version) FROM anomalies \
             WHERE window_start >= toDateTime(?) \
             GROUP BY kind, entity_kind, entity_id, window_start ORDER BY window_start, kind",
        )
        .bind((BAD_DAY / 1000) as u32)
        .fetch_all()
        .await
        .unwrap();
    let one = |kind: &str, id: &str| -> &Found {
        let matching: Vec<&Found> = found
            .iter()
            .filter(|f| f.kind == kind && f.entity_id == id)
            .collect();
        assert_eq!(matching.len(), 1, "one {kind} of {id} in {found:#?}");
        matching[0]
    };
    let secs = |ms: i64| (ms / 1000) as u32;
    let stuck = one("stuck_sensor", "s-r1");
    assert_eq!(stuck.window_start, secs(BAD_DAY + 8 * HOUR));
    assert_eq!(stuck.window_end, secs(BAD_DAY + 12 * HOUR));
    assert_eq!(stuck.ongoing, 0);
    let silent = one("silent_sensor", "r1");
    assert_eq!(silent.window_start, secs(BAD_DAY + 12 * HOUR));
    assert_eq!(silent.ongoing, 1);
    let breach = one("capacity_breach", "r2");
    assert_eq!(breach.window_start, secs(BAD_DAY + 14 * HOUR));
    assert_eq!(breach.window_end, secs(BAD_DAY + 14 * HOUR + 25 * MIN));
    assert_eq!(breach.severity, "high");
    // The restored model judges at once (a new one would still be warming up): r1
    // reading 3 from 8:00, when it is empty at 8 and has 6 from 9, is unusual within
    // those morning hours.
    assert!(
        found.iter().any(|f| f.kind == "occupancy"
            && f.entity_id == "r1"
            && (secs(BAD_DAY + 8 * HOUR)..=secs(BAD_DAY + 10 * HOUR)).contains(&f.window_start)),
        "r1's morning judged by the restored model: {found:#?}"
    );

    // The query service serves both.
    let config = ServiceConfig::default();
    let router = rf_service::app(&config, &service_stores(&s)).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    let token = rf_service::mint(&config.jwt_secret, &tenant, "analytics", 300);
    // ureq blocks: the requests run off the async runtime that serves them.
    tokio::task::spawn_blocking(move || {
        let get = |path: &str| {
            let agent = ureq::Agent::config_builder()
                .http_status_as_error(false)
                .timeout_global(Some(Duration::from_secs(30)))
                .build()
                .new_agent();
            let mut response = agent
                .get(format!("{base}{path}"))
                .header("Authorization", format!("Bearer {token}"))
                .call()
                .unwrap();
            let status = response.status().as_u16();
            let body = response.body_mut().read_json::<serde_json::Value>();
            (status, body.unwrap_or_default())
        };
        let (status, body) = get(
            "/v1/anomalies?from=2026-01-13T00:00:00Z&to=2026-01-15T00:00:00Z&kind=capacity_breach",
        );
        assert_eq!(status, 200, "{body}");
        let listed = body["anomalies"].as_array().unwrap();
        assert_eq!(listed.len(), 1, "{body}");
        assert_eq!(listed[0]["entity_id"], "r2");
        assert_eq!(listed[0]["severity"], "high");
        assert_eq!(listed[0]["details"]["capacity"], 4.0);

        let (status, body) = get("/v1/rooms/r1/forecast?granularity=1h&from=2026-01-14T02:00:00Z");
        assert_eq!(status, 200, "{body}");
        let hours = body["forecast"].as_array().unwrap();
        assert!(hours.len() >= 300, "two weeks of hours: {}", hours.len());

        let (status, body) =
            get("/v1/offices/lon/forecast?granularity=1d&from=2026-01-14T00:00:00Z");
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["forecast"].as_array().unwrap().len(), 91, "{body}");

        assert_eq!(get("/v1/offices/nowhere/forecast").0, 404);
        assert_eq!(get("/v1/anomalies?severity=urgent").0, 400);
    })
    .await
    .unwrap();
}
