//! The calendar connectors against local fakes of Microsoft Graph and Google Calendar
//! that serve the providers' documented shapes: pages and delta links / sync tokens,
//! 429 with `Retry-After`, a token revoked mid-sync, an expired cursor (410), and
//! events moved and cancelled after a first sync. Events carry subjects, organizers and
//! attendees; no booking may.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use rf_jobs::calendar::google::{Google, GoogleConfig, ServiceAccount};
use rf_jobs::calendar::graph::{Graph, GraphConfig};
use rf_jobs::calendar::http::Http;
use rf_jobs::calendar::{booking_id, sync, Provider, RoomCalendar, SyncState};
use rf_schemas::Booking;

const H: i64 = 3_600_000;
const T0: i64 = 1_796_601_600_000; // 2026-12-07T00:00:00Z
const PAGE: usize = 2;

#[derive(Clone, Debug)]
struct Ev {
    start: i64,
    end: i64,
    /// The change sequence number of its last change.
    seq: u64,
    removed: bool,
}

#[derive(Default)]
struct Fake {
    events: BTreeMap<String, Ev>,
    seq: u64,
    /// Cursors from before this sequence number are expired (410).
    expired_before: u64,
    tokens: u32,
    /// The only token accepted.
    valid: Option<String>,
    /// Answer the next page request with 429.
    throttle: bool,
    throttled: u32,
    unauthorized: u32,
    gone: u32,
}

type Shared = Arc<Mutex<Fake>>;

impl Fake {
    fn put(&mut self, id: &str, start: i64, end: i64) {
        self.seq += 1;
        let seq = self.seq;
        self.events.insert(
            id.into(),
            Ev {
                start,
                end,
                seq,
                removed: false,
            },
        );
    }

    fn remove(&mut self, id: &str) {
        self.seq += 1;
        let seq = self.seq;
        if let Some(e) = self.events.get_mut(id) {
            e.seq = seq;
            e.removed = true;
        }
    }

    fn issue(&mut self) -> String {
        self.tokens += 1;
        let token = format!("tok-{}", self.tokens);
        self.valid = Some(token.clone());
        token
    }

    /// Checks the bearer token and the throttle; `Some` is the answer to give instead.
    fn gate(&mut self, headers: &HeaderMap) -> Option<Response> {
        let bearer = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if bearer.is_none() || bearer != self.valid.as_deref() {
            self.unauthorized += 1;
            return Some(StatusCode::UNAUTHORIZED.into_response());
        }
        if std::mem::take(&mut self.throttle) {
            self.throttled += 1;
            return Some((StatusCode::TOO_MANY_REQUESTS, [("retry-after", "1")]).into_response());
        }
        None
    }

    /// The events of a listing: all live ones (full), or those changed after `since`.
    fn listing(&self, since: Option<u64>) -> Vec<(String, Ev)> {
        self.events
            .iter()
            .filter(|(_, e)| match since {
                None => !e.removed,
                Some(s) => e.seq > s,
            })
            .map(|(id, e)| (id.clone(), e.clone()))
            .collect()
    }
}

fn iso(ms: i64, utc_suffix: bool) -> String {
    let t = chrono::DateTime::from_timestamp_millis(ms).unwrap();
    if utc_suffix {
        t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
    } else {
        format!("{}0", t.format("%Y-%m-%dT%H:%M:%S%.6f"))
    }
}

/// What every fake event carries besides its times: nothing of it may be kept.
fn personal() -> Value {
    json!({
        "subject": "Layoffs: confidential",
        "organizer": {"emailAddress": {"name": "Jane Roe", "address": "jane.roe@acme.example"}},
        "attendees": [{"emailAddress": {"name": "John Doe", "address": "john.doe@acme.example"}}],
        "body": {"content": "Salary review for John"},
    })
}

async fn graph_token(State(fake): State<Shared>, body: String) -> Response {
    let ok = body.contains("grant_type=client_credentials")
        && body.contains("client_secret=s3cret")
        && body.contains("scope=https%3A%2F%2Fgraph.microsoft.com%2F.default");
    if !ok {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "invalid_client"})),
        )
            .into_response();
    }
    let token = fake.lock().unwrap().issue();
    Json(json!({"token_type": "Bearer", "expires_in": 3599, "access_token": token})).into_response()
}

async fn graph_delta(
    State(fake): State<Shared>,
    Path(mailbox): Path<String>,
    Query(q): Query<BTreeMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let mut f = fake.lock().unwrap();
    if let Some(answer) = f.gate(&headers) {
        return answer;
    }
    assert!(headers
        .get("prefer")
        .is_some_and(|p| p.to_str().unwrap().contains("outlook.timezone")));
    let since = q.get("$deltatoken").map(|t| t.parse::<u64>().unwrap());
    if since.is_some_and(|s| s < f.expired_before) {
        f.gone += 1;
        return (
            StatusCode::GONE,
            Json(json!({"error": {"code": "SyncStateNotFound"}})),
        )
            .into_response();
    }
    if since.is_none() {
        assert!(
            q.contains_key("startDateTime") || q.contains_key("$skiptoken"),
            "{q:?}"
        );
    }
    let skip: usize = q.get("$skiptoken").map_or(0, |s| s.parse().unwrap());
    let all = f.listing(since);
    let value: Vec<Value> = all
        .iter()
        .skip(skip)
        .take(PAGE)
        .map(|(id, e)| {
            if e.removed {
                return json!({"id": id, "@removed": {"reason": "deleted"}});
            }
            let mut v = personal();
            v["id"] = json!(id);
            v["start"] = json!({"dateTime": iso(e.start, false), "timeZone": "UTC"});
            v["end"] = json!({"dateTime": iso(e.end, false), "timeZone": "UTC"});
            v["lastModifiedDateTime"] = json!(iso(T0 + e.seq as i64 * 1000, true));
            v["isCancelled"] = json!(false);
            v
        })
        .collect();
    let host = headers.get("host").unwrap().to_str().unwrap().to_owned();
    let link = format!("http://{host}/v1.0/users/{mailbox}/calendarView/delta");
    let mut page = json!({"value": value});
    if skip + PAGE < all.len() {
        let mut next = format!("{link}?$skiptoken={}", skip + PAGE);
        if let Some(s) = since {
            next.push_str(&format!("&$deltatoken={s}"));
        }
        page["@odata.nextLink"] = json!(next);
    } else {
        page["@odata.deltaLink"] = json!(format!("{link}?$deltatoken={}", f.seq));
    }
    Json(page).into_response()
}

async fn google_token(State(fake): State<Shared>, body: String) -> Response {
    let assertion = body
        .split('&')
        .find_map(|p| p.strip_prefix("assertion="))
        .unwrap_or("");
    let public = include_bytes!("fixtures/google-test-key.pub.pem");
    let key = jsonwebtoken::DecodingKey::from_rsa_pem(public).unwrap();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.validate_aud = false;
    let claims = jsonwebtoken::decode::<Value>(assertion, &key, &validation);
    let ok = body.contains("grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer")
        && claims.as_ref().is_ok_and(|c| {
            c.claims["iss"] == "rooms@acme.iam.gserviceaccount.com"
                && c.claims["scope"] == rf_jobs::calendar::google::SCOPE
        });
    if !ok {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "invalid_grant"})),
        )
            .into_response();
    }
    let token = fake.lock().unwrap().issue();
    Json(json!({"access_token": token, "expires_in": 3599, "token_type": "Bearer"})).into_response()
}

async fn google_events(
    State(fake): State<Shared>,
    Path(_calendar): Path<String>,
    Query(q): Query<BTreeMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let mut f = fake.lock().unwrap();
    if let Some(answer) = f.gate(&headers) {
        return answer;
    }
    assert_eq!(q.get("singleEvents").map(String::as_str), Some("true"));
    assert!(q
        .get("fields")
        .is_some_and(|f| !f.contains("attendees") && !f.contains("summary")));
    let since = q.get("syncToken").map(|t| t.parse::<u64>().unwrap());
    if since.is_some() {
        assert!(
            !q.contains_key("timeMin"),
            "timeMin cannot go with syncToken"
        );
    }
    if since.is_some_and(|s| s < f.expired_before) {
        f.gone += 1;
        return (
            StatusCode::GONE,
            Json(json!({"error": {"errors": [{"reason": "fullSyncRequired"}]}})),
        )
            .into_response();
    }
    let skip: usize = q.get("pageToken").map_or(0, |s| s.parse().unwrap());
    let all = f.listing(since);
    let items: Vec<Value> = all
        .iter()
        .skip(skip)
        .take(PAGE)
        .map(|(id, e)| {
            // Google answers the fields asked for; a careless proxy might not.
            let mut v = personal();
            v["summary"] = json!("Layoffs: confidential");
            v["id"] = json!(id);
            if e.removed {
                v["status"] = json!("cancelled");
                return v;
            }
            v["status"] = json!("confirmed");
            v["start"] = json!({"dateTime": iso(e.start, true)});
            v["end"] = json!({"dateTime": iso(e.end, true)});
            v["updated"] = json!(iso(T0 + e.seq as i64 * 1000, true));
            v
        })
        .collect();
    let mut page = json!({"items": items});
    if skip + PAGE < all.len() {
        page["nextPageToken"] = json!((skip + PAGE).to_string());
    } else {
        page["nextSyncToken"] = json!(f.seq.to_string());
    }
    Json(page).into_response()
}

/// Serves the fakes on a loopback port; returns its base URL.
fn serve(fake: Shared) -> String {
    let app = Router::new()
        .route("/{directory}/oauth2/v2.0/token", post(graph_token))
        .route("/v1.0/users/{mailbox}/calendarView/delta", get(graph_delta))
        .route("/token", post(google_token))
        .route(
            "/calendar/v3/calendars/{calendar}/events",
            get(google_events),
        )
        .with_state(fake);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            axum::serve(listener, app).await.unwrap();
        });
    });
    format!("http://{addr}")
}

fn rooms() -> Vec<RoomCalendar> {
    vec![RoomCalendar {
        room_id: "lon-101".into(),
        office_id: "lon".into(),
        calendar: "thames@acme.example".into(),
    }]
}

fn http() -> Http {
    let mut http = Http::new("acme", "test");
    http.max_retry_after = Duration::from_millis(50);
    http
}

/// The latest version of each booking published so far.
fn latest(published: &[Booking]) -> BTreeMap<String, Booking> {
    let mut out: BTreeMap<String, Booking> = BTreeMap::new();
    for b in published {
        if out.get(&b.booking_id).is_none_or(|o| o.version < b.version) {
            out.insert(b.booking_id.clone(), b.clone());
        }
    }
    out
}

/// The scenario both providers go through.
fn scenario(fake: &Shared, provider: &mut dyn Provider) {
    let cal = "thames@acme.example";
    {
        let mut f = fake.lock().unwrap();
        for i in 0..5 {
            let start = T0 + (9 + i) * H;
            f.put(&format!("ev{i}"), start, start + H / 2);
        }
        // An all-week hold: not a meeting.
        f.put("hold", T0, T0 + 7 * 24 * H);
        f.throttle = true;
    }
    let window = (T0 - 24 * H, T0 + 28 * 24 * H);
    let mut state = SyncState::default();
    let mut published = Vec::new();
    let mut publish = |b: Booking| {
        published.push(b);
        Ok(())
    };
    let first = sync(provider, &rooms(), &mut state, window, &mut publish).unwrap();
    assert_eq!((first.published, first.skipped), (5, 1), "{first:?}");
    assert!(first.pages >= 3, "paged: {first:?}");
    assert_eq!(fake.lock().unwrap().throttled, 1);

    // Changes: one meeting moved, one cancelled, one new; the token is revoked.
    {
        let mut f = fake.lock().unwrap();
        f.put("ev1", T0 + 15 * H, T0 + 16 * H);
        f.remove("ev2");
        f.put("ev9", T0 + 30 * H, T0 + 31 * H);
        f.valid = Some("revoked-elsewhere".into());
    }
    let second = sync(provider, &rooms(), &mut state, window, &mut publish).unwrap();
    assert_eq!((second.published, second.refreshed), (3, 1), "{second:?}");

    // The cursor expires; meanwhile ev3 is deleted: the full listing cancels it.
    {
        let mut f = fake.lock().unwrap();
        f.remove("ev3");
        f.expired_before = f.seq + 1;
    }
    let third = sync(provider, &rooms(), &mut state, window, &mut publish).unwrap();
    assert_eq!(third.resyncs, 1, "{third:?}");
    assert_eq!(fake.lock().unwrap().gone, 1);
    // Nothing changed since: an incremental sync publishes nothing.
    let fourth = sync(provider, &rooms(), &mut state, window, &mut publish).unwrap();
    assert_eq!(fourth.published, 0, "{fourth:?}");

    let now = latest(&published);
    let id = |e: &str| booking_id(cal, e);
    assert_eq!(now.len(), 6);
    assert_eq!(
        (now[&id("ev1")].start_ts, now[&id("ev1")].cancelled),
        (T0 + 15 * H, false)
    );
    assert!(now[&id("ev2")].cancelled);
    assert!(now[&id("ev3")].cancelled);
    assert!(!now[&id("ev0")].cancelled && !now[&id("ev4")].cancelled);
    assert_eq!(now[&id("ev9")].end_ts, T0 + 31 * H);
    assert!(now
        .values()
        .all(|b| b.room_id == "lon-101" && b.office_id == "lon"));
    // Versions of one booking grow.
    for b in &published {
        assert!(b.version <= now[&b.booking_id].version);
    }
    // Nothing personal, nor the provider's ids, in anything published or kept.
    let text = format!("{published:?} {state:?}");
    for word in ["Layoffs", "jane", "john", "Salary", "ev1", "ev9"] {
        assert!(
            !text.to_lowercase().contains(&word.to_lowercase()),
            "{word} leaked"
        );
    }
}

#[test]
fn graph_syncs_pages_deltas_throttling_a_revoked_token_and_an_expired_delta_link() {
    let fake = Shared::default();
    let base = serve(fake.clone());
    let mut graph = Graph::new(
        GraphConfig {
            directory: "contoso".into(),
            client_id: "app".into(),
            client_secret: "s3cret".into(),
            authority: base.clone(),
            api: format!("{base}/v1.0"),
        },
        http(),
    );
    scenario(&fake, &mut graph);
}

#[test]
fn graph_refuses_a_wrong_secret_with_a_clear_error() {
    let fake = Shared::default();
    let base = serve(fake);
    let mut graph = Graph::new(
        GraphConfig {
            directory: "contoso".into(),
            client_id: "app".into(),
            client_secret: "wrong".into(),
            authority: base.clone(),
            api: format!("{base}/v1.0"),
        },
        http(),
    );
    let err = graph.token(false).unwrap_err().to_string();
    assert!(err.contains("graph token"), "{err}");
}

#[test]
fn google_syncs_pages_sync_tokens_throttling_a_revoked_token_and_full_sync_required() {
    let fake = Shared::default();
    let base = serve(fake.clone());
    let mut google = Google::new(
        GoogleConfig {
            account: ServiceAccount {
                client_email: "rooms@acme.iam.gserviceaccount.com".into(),
                private_key: include_str!("fixtures/google-test-key.pem").into(),
                token_uri: format!("{base}/token"),
            },
            subject: None,
            api: format!("{base}/calendar/v3"),
        },
        http(),
    );
    scenario(&fake, &mut google);
}
