//! `POST /v1/ingest` on the real stack: readings sent over HTTPS with an ingest key are
//! checked, produced to the tenant's topic once the broker acknowledged them, and
//! counted by the pipeline; rejected items are answered with their reason and land in
//! the dead-letter topic; the key reads nothing; the tenant's ingest limit answers 429.

mod common;

use std::time::Duration;

use apache_avro::types::Value as Avro;
use rdkafka::producer::FutureProducer;
use serde_json::{json, Value};

use common::*;
use rf_schemas::tenant::Role;
use rf_service::limits::{Limit, TierLimits};
use rf_service::ServiceConfig;

/// A service with the ingest endpoint's broker, for `s`'s stores; its base URL.
async fn serve_ingest(config: &ServiceConfig, s: &rf_pipelines::Settings) -> String {
    let gateway = rf_service::ingest::Gateway::connect(
        s.kafka.client_config(),
        rf_schemas::registry::RegistryClient::new(&s.registry.url, Duration::from_secs(10)),
        Duration::from_secs(30),
    )
    .unwrap();
    let backends = rf_service::Backends {
        admin: None,
        gateway: Some(gateway),
    };
    let router = rf_service::app_with(config, &service_stores(s), backends)
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    base
}

/// (status, headers, body) of a request with an API key, off the async runtime.
async fn call(
    method: &'static str,
    url: String,
    key: String,
    content_type: &'static str,
    body: Vec<u8>,
) -> (u16, Vec<(String, String)>, Value) {
    tokio::task::spawn_blocking(move || {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .new_agent();
        let mut response = match method {
            "GET" => agent.get(&url).header(rf_service::API_KEY, &key).call(),
            _ => agent
                .post(&url)
                .header(rf_service::API_KEY, &key)
                .header("content-type", content_type)
                .send(&body[..]),
        }
        .unwrap();
        let headers = response
            .headers()
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_str().unwrap_or_default().to_owned()))
            .collect();
        let text = response.body_mut().read_to_string().unwrap_or_default();
        (
            response.status().as_u16(),
            headers,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    })
    .await
    .unwrap()
}

/// An Avro object container file of `readings`, written with the v1 schema.
fn avro_file(readings: &[(&str, i64, i32)]) -> Vec<u8> {
    let schema = apache_avro::Schema::parse_str(rf_schemas::OCCUPANCY_READING_AVSC).unwrap();
    let mut writer = apache_avro::Writer::new(&schema, Vec::new()).unwrap();
    for &(room, ts, people) in readings {
        let record = Avro::Record(vec![
            ("sensor_id".into(), Avro::String(format!("s-{room}"))),
            ("office_id".into(), Avro::String("lon".into())),
            ("room_id".into(), Avro::String(room.into())),
            ("ts".into(), Avro::TimestampMillis(ts)),
            ("people_count".into(), Avro::Int(people)),
            (
                "temperature".into(),
                Avro::Union(1, Box::new(Avro::Float(21.0))),
            ),
            ("humidity".into(), Avro::Union(0, Box::new(Avro::Null))),
        ]);
        writer.append_value(record).unwrap();
    }
    writer.into_inner().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sensors_send_readings_over_https_with_an_ingest_key() {
    let tenant = fresh_tenant("ingest");
    let s = settings(&tenant);
    stack_is_up(&s);
    let (_, room_id) = create_tenant(&tenant).await;
    let producer: FutureProducer = s.kafka.client_config().create().unwrap();
    let rooms = ["lon-a", "lon-b"].map(|id| london_room(id, 6));
    let versions = room_records(&rooms, room_id, 1_704_067_200_000);
    produce_all(&producer, &tenant.rooms_topic(), &versions).await;
    let (ingest_key, _) = rf_jobs::apikey::create(&s.clickhouse, &tenant, "gateway", Role::Ingest)
        .await
        .unwrap();
    let (viewer_key, _) = rf_jobs::apikey::create(&s.clickhouse, &tenant, "wall", Role::Viewer)
        .await
        .unwrap();

    // Three ingest requests a minute for the tenant's tier.
    let mut config = ServiceConfig::default();
    for limits in config.rate_limits.values_mut() {
        *limits = TierLimits {
            ingest: Limit {
                requests: 3,
                window_secs: 60,
            },
            ..*limits
        };
    }
    let base = serve_ingest(&config, &s).await;
    let url = format!("{base}/v1/ingest");
    // A JSON post of `body` to `url` with `key`.
    let post = |url: &String, key: &String, body: Vec<u8>| {
        call("POST", url.clone(), key.clone(), "application/json", body)
    };
    let now = chrono::Utc::now().timestamp_millis();
    let minute = |m: i64| (now / 60_000 - m) * 60_000;

    // A JSON batch: two good readings (one with an RFC 3339 time), and three that the
    // contract refuses.
    let rfc3339 = chrono::DateTime::from_timestamp_millis(minute(9))
        .unwrap()
        .to_rfc3339();
    let batch = json!({"readings": [
        {"sensor_id": "s-lon-a", "office_id": "lon", "room_id": "lon-a", "ts": minute(10), "people_count": 2},
        {"sensor_id": "s-lon-b", "office_id": "lon", "room_id": "lon-b", "ts": rfc3339, "people_count": 3, "co2_ppm": 650},
        {"sensor_id": "s-lon-a", "office_id": "lon", "room_id": "lon-a", "ts": minute(8), "people_count": -3},
        {"sensor_id": "s-lon-a", "office_id": "lon", "ts": minute(8), "people_count": 1},
        {"sensor_id": "s-lon-b", "office_id": "lon", "room_id": "lon-b", "ts": now + 3_600_000, "people_count": 1},
    ]});
    let (status, _, body) = post(&url, &ingest_key, batch.to_string().into_bytes()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["received"], 5);
    assert_eq!(body["accepted"], 2);
    let rejected: Vec<(u64, String)> = body["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["index"].as_u64().unwrap(),
                r["reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        rejected,
        [
            (2, "out_of_range".into()),
            (3, "malformed".into()),
            (4, "future_timestamp".into())
        ]
    );
    assert!(body["rejected"][1]["detail"]
        .as_str()
        .unwrap()
        .contains("room_id"));

    // An Avro file written with the v1 schema: both readings accepted.
    let file = avro_file(&[("lon-a", minute(7), 4), ("lon-b", minute(7), 0)]);
    let (status, _, body) = call(
        "POST",
        url.clone(),
        ingest_key.clone(),
        "application/avro",
        file,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["received"].as_u64(), body["accepted"].as_u64()),
        (Some(2), Some(2))
    );

    // The ingest key reads nothing; a reading key cannot ingest.
    let (status, _, _) = call(
        "GET",
        format!("{base}/v1/offices"),
        ingest_key.clone(),
        "",
        vec![],
    )
    .await;
    assert_eq!(status, 403);
    let (status, _, body) = post(&url, &viewer_key, batch.to_string().into_bytes()).await;
    assert_eq!(status, 403, "{body}");

    // Neither JSON nor Avro: 415 (the third request of the window); the fourth is over
    // the tenant's limit.
    let (status, _, _) = call(
        "POST",
        url.clone(),
        ingest_key.clone(),
        "text/csv",
        b"a,b".to_vec(),
    )
    .await;
    assert_eq!(status, 415);
    let (status, headers, body) = post(&url, &ingest_key, batch.to_string().into_bytes()).await;
    assert_eq!(status, 429, "{body}");
    let retry: u64 = headers
        .iter()
        .find(|(n, _)| n == "retry-after")
        .map(|(_, v)| v.parse().unwrap())
        .expect("Retry-After");
    assert!((1..=60).contains(&retry), "{retry}");

    // A body over the size cap, and a batch over the count cap.
    let small = ServiceConfig {
        ingest: rf_service::IngestConfig {
            max_body_bytes: 2_000,
            max_readings: 3,
            ..Default::default()
        },
        ..ServiceConfig::default()
    };
    let small_url = format!("{}/v1/ingest", serve_ingest(&small, &s).await);
    let (status, _, _) = post(&small_url, &ingest_key, vec![b' '; 5_000]).await;
    assert_eq!(status, 413);
    let (status, _, body) = post(&small_url, &ingest_key, batch.to_string().into_bytes()).await;
    assert_eq!(status, 413, "{body}");
    let (status, _, body) = post(&small_url, &ingest_key, b"{\"readings\": 7}".to_vec()).await;
    assert_eq!(
        (status, body["parameter"].as_str()),
        (400, Some("readings"))
    );

    // What was accepted is on the tenant's topic, keyed by office and framed with the
    // v2 schema; the pipeline takes every one (the minutes are still open: counted in
    // their windows' revisions), and the refused items are dead letters with their
    // reasons, from the gateway.
    let v2 = reading_v2_id(&s, &tenant);
    let schema = apache_avro::Schema::parse_str(rf_schemas::OCCUPANCY_READING_V2_AVSC).unwrap();
    let decoder = rf_schemas::reading::ReadingDecoder::new(&schema).unwrap();
    let mut sent: Vec<(i64, String, i32, Option<i32>)> =
        read_topic(&s.kafka, &tenant.readings_topic(), 4)
            .into_iter()
            .map(|(key, value, _)| {
                assert_eq!(key.as_deref(), Some(&b"lon"[..]));
                let (id, body) = rf_schemas::framing::unframe(value.as_deref().unwrap()).unwrap();
                assert_eq!(id, v2);
                let r = decoder.decode(body).unwrap();
                (r.ts, r.room_id, r.people_count, r.co2_ppm)
            })
            .collect();
    sent.sort();
    assert_eq!(
        sent,
        [
            (minute(10), "lon-a".into(), 2, None),
            (minute(9), "lon-b".into(), 3, Some(650)),
            (minute(7), "lon-a".into(), 4, None),
            (minute(7), "lon-b".into(), 0, None)
        ]
    );
    let report = run_until_caught_up(&s).await;
    assert_accounts(&report);
    assert_eq!((report.stats.consumed, report.stats.dead_letters), (4, 0));
    let db = tenant.clickhouse_db();
    let samples = clickhouse_lines(&format!(
        "SELECT sum(samples) FROM {db}.room_utilization FINAL WHERE granularity = '15m'"
    ));
    assert_eq!(samples, ["4"]);
    let letters = read_topic(&s.kafka, &tenant.deadletter_topic(), 3);
    let mut reasons: Vec<(String, String)> = letters
        .iter()
        .map(|(_, _, h)| (h["rf-reason"].clone(), h["rf-source-topic"].clone()))
        .collect();
    reasons.sort();
    assert_eq!(
        reasons,
        [
            ("future_timestamp".into(), "gateway".into()),
            ("malformed".into(), "gateway".into()),
            ("out_of_range".into(), "gateway".into())
        ]
    );
    let malformed = letters
        .iter()
        .find(|(_, _, h)| h["rf-reason"] == "malformed")
        .unwrap();
    let item: Value = serde_json::from_slice(malformed.1.as_deref().unwrap()).unwrap();
    assert_eq!(item["sensor_id"], "s-lon-a", "the item's own bytes");

    // Counted per tenant and outcome.
    let metrics = metrics_text(base).await;
    let line = format!("rf_ingest_readings_total{{outcome=\"accepted\",tenant=\"{tenant}\"}} 4");
    assert!(metrics.contains(&line), "{line} in\n{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_site_key_sends_only_its_offices_readings() {
    let tenant = fresh_tenant("site");
    let s = settings(&tenant);
    stack_is_up(&s);
    create_tenant(&tenant).await;
    let offices = ["lon".to_string()];
    let (key, listed) = rf_jobs::apikey::create_for_sites(
        &s.clickhouse,
        &tenant,
        "lon gateway",
        Role::Ingest,
        &offices,
    )
    .await
    .unwrap();
    assert_eq!(listed.offices, offices);
    let listed = rf_jobs::apikey::list(&s.clickhouse, &tenant).await.unwrap();
    assert_eq!(listed[0].offices, offices);
    // Only an ingest key is limited to sites.
    let refused =
        rf_jobs::apikey::create_for_sites(&s.clickhouse, &tenant, "wall", Role::Viewer, &offices)
            .await
            .unwrap_err()
            .to_string();
    assert!(refused.starts_with("--office:"), "{refused}");

    let base = serve_ingest(&ServiceConfig::default(), &s).await;
    let now = chrono::Utc::now().timestamp_millis();
    let batch = json!({"readings": [
        {"sensor_id": "s-lon-a", "office_id": "lon", "room_id": "lon-a", "ts": now - 60_000, "people_count": 2},
        {"sensor_id": "s-par-a", "office_id": "par", "room_id": "par-a", "ts": now - 60_000, "people_count": 1},
    ]});
    let (status, _, body) = call(
        "POST",
        format!("{base}/v1/ingest"),
        key,
        "application/json",
        batch.to_string().into_bytes(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["accepted"], 1);
    assert_eq!(body["rejected"][0]["index"], 1);
    assert_eq!(body["rejected"][0]["reason"], "office_mismatch");
    let detail = body["rejected"][0]["detail"].as_str().unwrap();
    assert!(
        detail.contains("lon only") && detail.contains("\"par\""),
        "{detail}"
    );
    let letters = read_topic(&s.kafka, &tenant.deadletter_topic(), 1);
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].2["rf-reason"], "office_mismatch");
    let sent = read_topic(&s.kafka, &tenant.readings_topic(), 1);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].0.as_deref(), Some(&b"lon"[..]));
}
