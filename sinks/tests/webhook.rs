//! Alert delivery against local receivers that acknowledge, fail, hang, throttle and
//! reject.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use axum::Router;

use rf_schemas::rows::{Anomaly, AnomalyKind, EntityKind, Severity};
use rf_schemas::tenant::AlertKind;
use rf_schemas::TenantId;
use rf_sinks::config::Secret;
use rf_sinks::webhook::deliver::{IDEMPOTENCY_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER};
use rf_sinks::webhook::{signature, Alert, Delivery, Outcome, Target};

type Seen = Arc<Mutex<Vec<(HeaderMap, String)>>>;

/// A receiver on a free port: `/ok` records and acknowledges, `/fail` answers 500,
/// `/busy` 429 with Retry-After 7, `/gone` 404, `/hang` never answers in time.
fn receiver() -> (String, Seen) {
    let seen: Seen = Arc::default();
    let record = seen.clone();
    let app = Router::new()
        .route(
            "/ok",
            post(move |headers: HeaderMap, body: String| {
                let record = record.clone();
                async move {
                    record.lock().unwrap().push((headers, body));
                    "ok"
                }
            }),
        )
        .route(
            "/fail",
            post(|| async { StatusCode::INTERNAL_SERVER_ERROR }),
        )
        .route(
            "/busy",
            post(|| async {
                (StatusCode::TOO_MANY_REQUESTS, [("retry-after", "7")]).into_response()
            }),
        )
        .route("/gone", post(|| async { StatusCode::NOT_FOUND }))
        .route(
            "/moved",
            post(|| async { (StatusCode::FOUND, [("location", "/ok")]).into_response() }),
        )
        .route(
            "/hang",
            post(|| async {
                tokio::time::sleep(Duration::from_secs(30)).await;
                "late"
            }),
        );
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
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

fn alert() -> Alert {
    let anomaly = Anomaly {
        tenant: TenantId::parse("acme").unwrap(),
        kind: AnomalyKind::SilentSensor,
        entity_kind: EntityKind::Room,
        entity_id: "r1".into(),
        office_id: "lon".into(),
        room_id: "r1".into(),
        window_start: 1_768_305_600_000,
        window_end: 1_768_309_200_000,
        score: 0.8,
        severity: Severity::Medium,
        details: r#"{"minutes":60}"#.into(),
        ongoing: true,
    };
    Alert::of("faults", &anomaly, "http://127.0.0.1:18080")
}

fn target(kind: AlertKind, url: String) -> Target {
    Target {
        kind,
        url: Secret::new(url),
        secret: Secret::new("s3cret"),
    }
}

#[test]
fn each_receiver_gets_an_answer_it_can_act_on() {
    let (base, seen) = receiver();
    let delivery = Delivery::new(Duration::from_secs(1), vec!["127.0.0.1".parse().unwrap()]);
    let alert = alert();
    let now = 1_768_309_300;

    let hook = target(AlertKind::Webhook, format!("{base}/ok"));
    assert_eq!(delivery.send(&hook, &alert, now), Outcome::Delivered);
    for kind in [AlertKind::Slack, AlertKind::Teams] {
        let t = target(kind, format!("{base}/ok"));
        assert_eq!(delivery.send(&t, &alert, now), Outcome::Delivered);
    }
    let received = seen.clone();
    let seen = received.lock().unwrap().clone();
    let (headers, body) = &seen[0];
    let header = |name: &str| headers.get(name).unwrap().to_str().unwrap().to_string();
    assert_eq!(
        header(IDEMPOTENCY_HEADER),
        "acme/faults/room/r1/1768305600000"
    );
    assert_eq!(header(TIMESTAMP_HEADER), now.to_string());
    assert_eq!(
        header(SIGNATURE_HEADER),
        signature("s3cret", now, body.as_bytes()),
        "the receiver can check the signature over what it received"
    );
    let json: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(json["kind"], "silent_sensor");
    assert!(seen[1].1.contains("\"blocks\""));
    assert!(seen[2].1.contains("AdaptiveCard"));
    assert!(
        seen[1].0.get(SIGNATURE_HEADER).is_none(),
        "only webhooks are signed"
    );

    let outcome = |path: &str| {
        let t = target(AlertKind::Webhook, format!("{base}{path}"));
        delivery.send(&t, &alert, now)
    };
    let retry = |after: Option<u64>, reason: &str| Outcome::Retry {
        after: after.map(Duration::from_secs),
        reason: reason.into(),
    };
    assert_eq!(outcome("/fail"), retry(None, "HTTP 500"));
    assert_eq!(outcome("/busy"), retry(Some(7), "HTTP 429"));
    assert_eq!(
        outcome("/gone"),
        Outcome::Rejected {
            reason: "HTTP 404".into()
        }
    );
    assert_eq!(
        outcome("/hang"),
        retry(None, "no answer within the timeout")
    );
    // A redirect is the target's answer, not a second request somewhere else.
    let before = received.lock().unwrap().len();
    assert_eq!(
        outcome("/moved"),
        Outcome::Rejected {
            reason: "HTTP 302".into()
        }
    );
    assert_eq!(received.lock().unwrap().len(), before, "not followed");
    let closed = Target {
        url: Secret::new("http://127.0.0.1:9/hook"),
        ..hook
    };
    let refused = delivery.send(&closed, &alert, now);
    assert!(
        matches!(refused, Outcome::Retry { after: None, .. }),
        "{refused:?}"
    );
}

/// Without an allowlist nothing internal is reached: not this machine under its address
/// or its name, and a closed port answers exactly like an open one, so the check is no
/// port scanner.
#[test]
fn internal_targets_are_refused_alike_unless_allowed() {
    let (base, seen) = receiver();
    let delivery = Delivery::new(Duration::from_secs(1), Vec::new());
    let alert = alert();
    let port = base.rsplit(':').next().unwrap();
    let mut reasons = Vec::new();
    for url in [
        format!("{base}/ok"),
        format!("http://localhost:{port}/ok"),
        "http://127.0.0.1:9/hook".to_owned(),
        "http://169.254.169.254/latest/meta-data".to_owned(),
        "http://10.0.0.5/hook".to_owned(),
    ] {
        match delivery.send(&target(AlertKind::Webhook, url.clone()), &alert, 0) {
            Outcome::Rejected { reason } => reasons.push(reason),
            other => panic!("{url}: {other:?}"),
        }
    }
    assert!(seen.lock().unwrap().is_empty(), "nothing arrived");
    assert_eq!(reasons[0], reasons[1]);
    assert_eq!(reasons[0], reasons[2], "open and closed ports look alike");
    assert!(reasons[3].contains("link-local"), "{}", reasons[3]);
    assert!(reasons[4].contains("private"), "{}", reasons[4]);
}
