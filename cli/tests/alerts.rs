//! Alerts end to end on the real local stack: a day with a flapping capacity breach and a
//! faulty sensor goes through the pipeline into the outbox (`roomflow.alerts`), and the
//! dispatcher delivers it to local receivers that acknowledge, throttle (429), hang and
//! fail. Time is the dispatcher's argument, so cooldowns and the 24-hour give-up are
//! passed without waiting for them.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use axum::Router;
use rdkafka::producer::FutureProducer;
use serde_json::Value;

use common::*;
use rf_jobs::tenant::TenantSpec;
use rf_pipelines::alerts::{Dispatcher, Round};
use rf_pipelines::{Metrics, Settings};
use rf_schemas::tenant::AlertKind;
use rf_schemas::{TenantConfig, TenantId};
use rf_sinks::webhook::deliver::{IDEMPOTENCY_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER};
use rf_sinks::webhook::outbox;

const T0: i64 = 1_767_571_200_000; // 2026-01-05T00:00:00Z, a Monday
const MIN: i64 = 60_000;
const HOUR: i64 = 60 * MIN;
const DAY: i64 = 24 * HOUR;
/// The dispatcher's "now": the Monday after, 09:00, when the week's digest is due.
const NOW: i64 = T0 + 7 * DAY + 9 * HOUR;

/// Monday: r1's sensor stuck on 3 from 8:00 and silent from 12:00; r2 (capacity 4) holds
/// 7 people for 20 minutes at 14:00, 15:00 and 16:00, a flapping breach.
fn people(room: &str, ts: i64) -> Option<i32> {
    let at = |h: i64| T0 + h * HOUR;
    if room == "r1" && ts >= at(12) {
        return None;
    }
    if room == "r1" && ts >= at(8) {
        return Some(3);
    }
    if room == "r2"
        && [14, 15, 16]
            .iter()
            .any(|h| (at(*h)..at(*h) + 20 * MIN).contains(&ts))
    {
        return Some(7);
    }
    let hour = (ts % DAY) / HOUR;
    let busy = (9..17).contains(&hour);
    let noise = ((ts / MIN) * 2_654_435_761 % 3) as i32 - 1;
    Some(match (room, busy) {
        ("r1", true) => 6 + noise,
        ("r2", true) => 2 + noise,
        _ => 0,
    })
}

/// What a receiver got: (headers, body) per request.
type Seen = Arc<Mutex<Vec<(HeaderMap, String)>>>;

/// Receivers on a free port, each recording every request: `/ok` acknowledges,
/// `/throttled` answers its first request 429 with `Retry-After: 1`, then acknowledges,
/// `/hang` answers after 30 s, `/broken` answers 500.
fn receivers() -> (String, BTreeMap<&'static str, Seen>) {
    let seen: BTreeMap<&'static str, Seen> = ["ok", "throttled", "hang", "broken"]
        .into_iter()
        .map(|k| (k, Seen::default()))
        .collect();
    let record = |name: &str| {
        let s = seen[name].clone();
        move |headers: HeaderMap, body: String| s.lock().unwrap().push((headers, body))
    };
    let (ok, throttled, hang, broken) = (
        record("ok"),
        record("throttled"),
        record("hang"),
        record("broken"),
    );
    let throttled_calls = Arc::new(AtomicUsize::new(0));
    let app = Router::new()
        .route(
            "/ok",
            post(move |h: HeaderMap, b: String| async move {
                ok(h, b);
                "ok"
            }),
        )
        .route(
            "/throttled",
            post(move |h: HeaderMap, b: String| async move {
                throttled(h, b);
                if throttled_calls.fetch_add(1, Ordering::SeqCst) == 0 {
                    (StatusCode::TOO_MANY_REQUESTS, [("retry-after", "1")]).into_response()
                } else {
                    "ok".into_response()
                }
            }),
        )
        .route(
            "/hang",
            post(move |h: HeaderMap, b: String| async move {
                hang(h, b);
                tokio::time::sleep(Duration::from_secs(30)).await;
                "late"
            }),
        )
        .route(
            "/broken",
            post(move |h: HeaderMap, b: String| async move {
                broken(h, b);
                StatusCode::INTERNAL_SERVER_ERROR
            }),
        );
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            axum::serve(listener, app).await.unwrap();
        });
    });
    (base, seen)
}

/// The idempotency keys a receiver got, in order (repeats included).
fn keys(seen: &Seen) -> Vec<String> {
    seen.lock()
        .unwrap()
        .iter()
        .map(|(h, _)| h[IDEMPOTENCY_HEADER].to_str().unwrap().to_string())
        .collect()
}

/// Runs rounds at `now` until `done` holds and a round finds nothing to read and
/// nothing in flight (a real minute at most).
fn rounds_until(d: &mut Dispatcher, now: i64, done: impl Fn() -> bool) -> Round {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let round = d.round(now).expect("a round runs");
        if done() && round.read == 0 && round.in_flight == 0 {
            return round;
        }
        assert!(Instant::now() < deadline, "no quiet round within a minute");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The registry entry as stored: its URLs and secrets sealed.
fn entry(s: &Settings, tenant: &TenantId) -> TenantConfig {
    rf_pipelines::tenants::load(&s.kafka)
        .unwrap()
        .remove(tenant)
        .expect("registered")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_reach_slack_teams_and_webhooks_once_grouped_retried_and_disabled() {
    let tenant = fresh_tenant("alerts");
    let mut s = settings(&tenant);
    stack_is_up(&s);
    s.alerts.timeout_secs = 2;
    // The receivers listen on this machine, which alerts reach only when allowed.
    s.alerts.allowed_networks = vec!["127.0.0.1".into()];
    s.alerts.give_up_after_secs = 2 * 3600;
    s.alerts.max_age_secs = 3650 * 86_400;
    s.alerts.service_url = "https://rooms.example.com".into();
    let (base, seen) = receivers();
    let target = |spec: &str| spec.replace("BASE", &base).parse().unwrap();
    let spec = TenantSpec {
        alert_targets: Some(vec![
            target("webhook=BASE/ok"),
            target("slack=BASE/throttled"),
            target("teams=BASE/hang"),
            target("webhook=BASE/broken"),
        ]),
        alert_rules: Some(
            [
                "capacity_breach/60",
                "sensor_fault/60",
                "weekly_digest:0.2-0.9",
            ]
            .iter()
            .map(|r| r.parse().unwrap())
            .collect(),
        ),
        ..Default::default()
    };
    let (reading_id, room_id) = create_tenant_with(&s, &tenant, &spec).await;
    let stored = entry(&s, &tenant).alert_targets[0].secret.clone().unwrap();
    assert!(stored.starts_with("sealed:v1:"), "sealed at rest: {stored}");
    let secret = rf_jobs::tenant::opened(&s, &tenant)
        .await
        .unwrap()
        .alert_targets[0]
        .secret
        .clone()
        .expect("a webhook gets a signing secret");
    let producer: FutureProducer = s.kafka.client_config().create().unwrap();
    let rooms = [london_room("r1", 10), london_room("r2", 4)];
    produce_all(
        &producer,
        &tenant.rooms_topic(),
        &room_records(&rooms, room_id, T0),
    )
    .await;
    produce_all(
        &producer,
        &tenant.readings_topic(),
        &minute_readings(reading_id, (T0, T0 + DAY + 2 * HOUR), &["r1", "r2"], people),
    )
    .await;
    let report = run_until_caught_up(&s).await;
    assert_accounts(&report);

    let (s2, t2) = (s.clone(), tenant.clone());
    tokio::task::spawn_blocking(move || dispatch(&s2, &t2, &seen, &secret))
        .await
        .unwrap();
}

fn dispatch(s: &Settings, tenant: &TenantId, seen: &BTreeMap<&str, Seen>, secret: &str) {
    let metrics = Metrics::new();
    let mut d = Dispatcher::new(s, metrics.clone()).unwrap();
    let ok = &seen["ok"];
    let throttled = &seen["throttled"];
    let breach = format!("{tenant}/capacity_breach/room/r2/{}", T0 + 14 * HOUR);
    let expected = [
        breach.clone(),
        format!("{tenant}/sensor_fault/room/r1/{}", T0 + 12 * HOUR),
        format!("{tenant}/sensor_fault/sensor/s-r1/{}", T0 + 8 * HOUR),
        format!("{tenant}/weekly_digest/tenant/{tenant}/{T0}"),
    ];
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v.dedup();
        v
    };
    let mut want = expected.to_vec();
    want.sort();

    // The breach at 14:00, the stuck and the silent sensor and the digest, once each,
    // though the silent sensor was revised hourly; the breaches at 15:00 and 16:00 are
    // held by the breach rule's cooldown.
    rounds_until(&mut d, NOW, || ok.lock().unwrap().len() >= 4);
    assert_eq!(sorted(keys(ok)), want, "{:?}", keys(ok));
    assert_eq!(keys(ok).len(), 4, "each once: {:?}", keys(ok));
    for (headers, body) in ok.lock().unwrap().iter() {
        let ts: i64 = headers[TIMESTAMP_HEADER].to_str().unwrap().parse().unwrap();
        assert_eq!(
            headers[SIGNATURE_HEADER].to_str().unwrap(),
            rf_sinks::webhook::signature(secret, ts, body.as_bytes()),
            "signed with the tenant's secret"
        );
        let json: Value = serde_json::from_str(body).unwrap();
        assert_eq!(json["id"], headers[IDEMPOTENCY_HEADER].to_str().unwrap());
        assert!(json["link"]
            .as_str()
            .unwrap()
            .starts_with("https://rooms.example.com/v1/"));
    }
    let digest = ok
        .lock()
        .unwrap()
        .iter()
        .map(|(_, b)| serde_json::from_str::<Value>(b).unwrap())
        .find(|j| j["rule"] == "weekly_digest")
        .unwrap();
    assert_eq!(digest["under_used"], serde_json::json!(["lon"]), "{digest}");

    // Slack was throttled once: the alert it refused waits for its Retry-After, the rest
    // went on.
    let first = keys(throttled);
    assert_eq!(first.len(), 4, "{first:?}");
    assert_eq!(sorted(first.clone()).len(), 4);
    rounds_until(&mut d, NOW + 3_000, || keys(throttled).len() >= 5);
    assert_eq!(sorted(keys(throttled)), want);
    assert_eq!(keys(throttled)[4], first[0], "the refused one, again");
    let slack: Value = serde_json::from_str(&throttled.lock().unwrap()[1].1).unwrap();
    assert!(slack["blocks"].is_array(), "Slack gets blocks: {slack}");
    assert!(seen["hang"].lock().unwrap()[0].1.contains("AdaptiveCard"));

    // When the cooldown ends, the held breaches go as one message: the latest (16:00),
    // standing for one more.
    rounds_until(&mut d, NOW + 61 * MIN, || ok.lock().unwrap().len() >= 5);
    let (headers, body) = ok.lock().unwrap()[4].clone();
    let grouped: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        headers[IDEMPOTENCY_HEADER].to_str().unwrap(),
        format!("{tenant}/capacity_breach/room/r2/{}", T0 + 16 * HOUR)
    );
    assert_eq!(grouped["grouped"], 1, "{grouped}");
    assert!(grouped["summary"]
        .as_str()
        .unwrap()
        .contains("1 more alert"));

    // Past the give-up period, the hanging and the failing targets are disabled, in the
    // registry too; the healthy ones are not.
    rounds_until(&mut d, NOW + 3 * HOUR, || true);
    let config = entry(s, tenant);
    let disabled: Vec<(AlertKind, bool)> = config
        .alert_targets
        .iter()
        .map(|t| (t.kind, t.disabled.is_some()))
        .collect();
    assert_eq!(
        disabled,
        [
            (AlertKind::Webhook, false),
            (AlertKind::Slack, false),
            (AlertKind::Teams, true),
            (AlertKind::Webhook, true)
        ]
    );
    let reason = &config.alert_targets[3].disabled.as_ref().unwrap().reason;
    assert_eq!(reason, "HTTP 500");
    assert_eq!(
        metrics
            .alert_targets_disabled
            .with_label_values(&[tenant.as_str()])
            .get(),
        2
    );
    let broken_calls = seen["broken"].lock().unwrap().len();
    assert!(broken_calls >= 2, "retried before it was disabled");

    // A restart, and the pipeline writing the same anomalies to the outbox again (a
    // replayed epoch): nothing is sent twice, nothing to the disabled targets.
    drop(d);
    let wall = chrono::Utc::now().timestamp_millis();
    let mine: Vec<(String, Vec<u8>, i64)> = read_topic(&s.kafka, outbox::TOPIC, 1)
        .into_iter()
        .filter_map(|(k, v, _)| {
            let key = String::from_utf8(k?).ok()?;
            (key == tenant.as_str()).then(|| (key, v.unwrap(), wall))
        })
        .collect();
    assert!(mine.len() >= 5, "the anomalies and their revisions");
    let producer: FutureProducer = s.kafka.client_config().create().unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(produce_all(&producer, outbox::TOPIC, &mine));
    let mut d = Dispatcher::new(s, Metrics::new()).unwrap();
    let before = (keys(ok).len(), keys(throttled).len(), broken_calls);
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut read = 0;
    while read < mine.len() {
        assert!(Instant::now() < deadline, "the replayed records are read");
        read += d.round(NOW + 4 * HOUR).unwrap().read;
    }
    rounds_until(&mut d, NOW + 5 * HOUR, || true);
    let after = (
        keys(ok).len(),
        keys(throttled).len(),
        seen["broken"].lock().unwrap().len(),
    );
    assert_eq!(after, before, "nothing sent again after a restart");

    // An operator checks the targets: what each answered, and a failing exit status.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_roomflow"))
        .args(["tenant", "test-alerts", tenant.as_str()])
        .env("ROOMFLOW_ALERTS__TIMEOUT_SECS", "1")
        .env("ROOMFLOW_ALERTS__ALLOWED_NETWORKS", "[\"127.0.0.1\"]")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout
        .lines()
        .map(|l| l.split_once(' ').unwrap().1)
        .collect();
    assert!(!out.status.success());
    assert_eq!(lines.len(), 4, "{stdout}");
    assert!(lines[0].ends_with(": delivered"), "{stdout}");
    assert!(lines[1].ends_with(": delivered"), "{stdout}");
    assert!(
        lines[2].ends_with("(disabled): failed, would be retried: no answer within the timeout"),
        "{stdout}"
    );
    assert!(
        lines[3].ends_with("(disabled): failed, would be retried: HTTP 500"),
        "{stdout}"
    );
    assert_eq!(keys(ok).len(), before.0 + 1, "the test message");
}
