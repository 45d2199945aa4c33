//! OpenTelemetry traces, received by a stand-in OTLP/HTTP collector: a span per
//! query-service request carrying its correlation id, per pipeline epoch with a span per
//! store it is written to, and per job.

mod common;

use std::sync::{Arc, Mutex};

use axum::routing::post;
use rdkafka::producer::FutureProducer;
use serde_json::Value;

use common::*;
use rf_pipelines::telemetry::TelemetryConfig;

/// A span as the collector got it: name, span id, parent id, string attributes.
#[derive(Debug)]
struct Span {
    name: String,
    id: String,
    parent: String,
    attributes: Vec<(String, String)>,
}

impl Span {
    fn attribute(&self, key: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Every span of every OTLP/JSON export in `bodies`.
fn spans(bodies: &[Value]) -> Vec<Span> {
    let mut out = Vec::new();
    for body in bodies {
        let resources = body["resourceSpans"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for scope in resources
            .iter()
            .flat_map(|r| r["scopeSpans"].as_array().cloned().unwrap_or_default())
        {
            for span in scope["spans"].as_array().cloned().unwrap_or_default() {
                let attributes = span["attributes"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .iter()
                    .map(|a| {
                        let v = &a["value"];
                        let value = v["stringValue"]
                            .as_str()
                            .map(str::to_owned)
                            .or_else(|| v["intValue"].as_str().map(str::to_owned))
                            .or_else(|| v["intValue"].as_i64().map(|i| i.to_string()))
                            .unwrap_or_else(|| v.to_string());
                        (a["key"].as_str().unwrap_or_default().to_owned(), value)
                    })
                    .collect();
                out.push(Span {
                    name: span["name"].as_str().unwrap_or_default().to_owned(),
                    id: span["spanId"].as_str().unwrap_or_default().to_owned(),
                    parent: span["parentSpanId"].as_str().unwrap_or_default().to_owned(),
                    attributes,
                });
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_epochs_and_jobs_are_traced_to_an_otlp_collector() {
    // The stand-in collector: OTLP/HTTP with JSON bodies at /v1/traces.
    let received: Arc<Mutex<Vec<Value>>> = Arc::default();
    let kept = received.clone();
    let collector = axum::Router::new().route(
        "/v1/traces",
        post(move |body: axum::body::Bytes| {
            let kept = kept.clone();
            async move {
                kept.lock()
                    .unwrap()
                    .push(serde_json::from_slice(&body).unwrap_or(Value::Null));
                "{}"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, collector).await });
    let config = TelemetryConfig {
        otlp_endpoint: endpoint,
        ..Default::default()
    };
    let telemetry = rf_pipelines::telemetry::init(false, "info,rdkafka=warn", &config, "test")
        .unwrap()
        .expect("traces on");

    let tenant = fresh_tenant("traces");
    let s = settings(&tenant);
    stack_is_up(&s);
    let (reading_id, room_id) = create_tenant(&tenant).await;
    let producer: FutureProducer = s.kafka.client_config().create().unwrap();
    let rooms = [london_room("lon-a", 6)];
    produce_all(
        &producer,
        &tenant.rooms_topic(),
        &room_records(&rooms, room_id, 1_704_067_200_000),
    )
    .await;
    let t0 = (chrono::Utc::now().timestamp_millis() / 3_600_000 - 2) * 3_600_000;
    let readings = minute_readings(reading_id, (t0, t0 + 30 * 60_000), &["lon-a"], |_, _| {
        Some(2)
    });
    produce_all(&producer, &tenant.readings_topic(), &readings).await;
    run_until_caught_up(&s).await;

    let service = rf_service::ServiceConfig::default();
    let base = serve(&service, &s).await;
    let token = rf_service::mint(&service.jwt_secret, &tenant, "tracer", 300);
    let status = tokio::task::spawn_blocking(move || {
        ureq::get(&format!("{base}/v1/offices"))
            .header("Authorization", format!("Bearer {token}"))
            .header("X-Request-Id", "trace-check-1")
            .call()
            .unwrap()
            .status()
            .as_u16()
    })
    .await
    .unwrap();
    assert_eq!(status, 200);
    let job = run_job(
        &s,
        &tenant,
        rf_jobs::queue::JobKind::Retention { dry_run: true },
    )
    .await;
    let job_id = job.spec.id.clone();

    // Dropping the exporter sends what is left.
    tokio::task::spawn_blocking(move || drop(telemetry))
        .await
        .unwrap();
    let spans = spans(&received.lock().unwrap());
    let tenant = tenant.to_string();

    let request = spans
        .iter()
        .find(|s| s.name == "request" && s.attribute("request_id") == Some("trace-check-1"))
        .unwrap_or_else(|| panic!("no request span with its correlation id in {spans:#?}"));
    assert_eq!(request.attribute("tenant"), Some(tenant.as_str()));
    assert_eq!(request.attribute("route"), Some("/v1/offices"));

    let epochs: Vec<&Span> = spans
        .iter()
        .filter(|s| s.name == "epoch" && s.attribute("tenant") == Some(tenant.as_str()))
        .collect();
    assert!(!epochs.is_empty(), "no epoch span of the tenant");
    let stores: std::collections::BTreeSet<&str> = spans
        .iter()
        .filter(|s| s.name == "sink" && epochs.iter().any(|e| e.id == s.parent))
        .filter_map(|s| s.attribute("sink"))
        .collect();
    assert!(
        stores.contains("clickhouse") && stores.contains("redis"),
        "{stores:?}"
    );

    // Each epoch's reading and computing, under the epoch.
    for phase in ["poll", "compute"] {
        assert!(
            spans
                .iter()
                .any(|s| s.name == phase && epochs.iter().any(|e| e.id == s.parent)),
            "no {phase} span under an epoch of the tenant"
        );
    }

    let job = spans
        .iter()
        .find(|s| s.name == "job" && s.attribute("job") == Some(job_id.as_str()))
        .expect("a span of the job");
    assert_eq!(job.attribute("kind"), Some("retention"));
    assert_eq!(job.attribute("tenant"), Some(tenant.as_str()));
    // Its steps, each saying what it did.
    let steps: Vec<&Span> = spans
        .iter()
        .filter(|s| s.name == "step" && s.parent == job.id)
        .collect();
    assert!(!steps.is_empty(), "no step span under the job");
    assert!(
        steps
            .iter()
            .all(|s| s.attribute("did").is_some_and(|d| !d.is_empty())),
        "{steps:?}"
    );
}
