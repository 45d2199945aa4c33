//! What a facilities manager watches: an office's live occupancy, room by room, pushed as
//! server-sent events, and today's busiest and emptiest rooms.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use chrono::{TimeZone, Utc};
use clickhouse::Row;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::cache::queried;
use crate::limits::Class;
use crate::portfolio::no_database_is_empty;
use crate::rooms::metadata;
use crate::routes::{answer, caller, id, iso, ApiError};
use crate::AppState;

/// How often a stream reads Redis: a reading is on screen within this and the
/// pipeline's own delay.
const POLL: Duration = Duration::from_millis(500);

/// Streams one tenant may hold open in this process; more answer 429.
pub(crate) const STREAMS_PER_TENANT: usize = 20;

/// Open streams per tenant.
#[derive(Default)]
pub(crate) struct Streams(std::sync::Mutex<HashMap<String, Arc<AtomicUsize>>>);

/// One open stream, counted until dropped.
struct Open(Arc<AtomicUsize>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Streams {
    fn open(&self, tenant: &str) -> Option<Open> {
        let counter = self
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(tenant.to_owned())
            .or_default()
            .clone();
        if counter.fetch_add(1, Ordering::Relaxed) >= STREAMS_PER_TENANT {
            counter.fetch_sub(1, Ordering::Relaxed);
            return None;
        }
        Some(Open(counter))
    }
}

/// A room as the stream shows it.
#[derive(Clone)]
struct Room {
    room_id: String,
    name: String,
    floor: i32,
    capacity: u32,
}

/// `GET /v1/offices/{office_id}/live`: server-sent events, each (`event: occupancy`) the
/// office's and every room's latest occupancy from Redis, sent at once and then whenever
/// it changes (read every half second).
pub async fn office_live(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(office_id): Path<String>,
) -> Result<Response, ApiError> {
    let caller = caller(&state, &headers)?;
    id("office_id", &office_id)?;
    caller.limit(&state, Class::General).await?;
    let metadata = metadata(&state, &caller).await?;
    let rooms: Vec<Room> = metadata
        .office(&office_id)
        .iter()
        .map(|v| Room {
            room_id: v.room_id.clone(),
            name: v.name.clone(),
            floor: v.floor,
            capacity: v.capacity,
        })
        .collect();
    if rooms.is_empty() {
        return Err(ApiError::not_found(format!("no office {office_id}")));
    }
    let Some(open) = state.streams.open(caller.tenant.as_str()) else {
        return Err(ApiError::status(
            StatusCode::TOO_MANY_REQUESTS,
            format!("at most {STREAMS_PER_TENANT} live streams per tenant at once; close one"),
        ));
    };
    let redis = caller.stores.redis.clone();
    let office = Arc::new((office_id, rooms, caller.tenant.clone()));
    let stream = futures_util::stream::unfold(
        (redis, office, String::new(), open, true),
        |(mut redis, office, last, open, first)| async move {
            if !first {
                tokio::time::sleep(POLL).await;
            }
            loop {
                let (office_id, rooms, tenant) = &*office;
                let text = match read(&mut redis, tenant, office_id, rooms).await {
                    Ok(snapshot) => snapshot.to_string(),
                    Err(e) => {
                        tracing::warn!(error = %e, "a live stream's read failed");
                        let event = Event::default()
                            .event("unavailable")
                            .data("the live store did not answer; retrying");
                        let next = (redis, office, last, open, false);
                        return Some((Ok::<_, Infallible>(event), next));
                    }
                };
                if text != last {
                    let event = Event::default().event("occupancy").data(text.clone());
                    return Some((Ok(event), (redis, office, text, open, false)));
                }
                // Nothing new; a client that left dropped the stream, which ends this.
                tokio::time::sleep(POLL).await;
            }
        },
    );
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response())
}

/// The office's and its rooms' hashes, in one round trip.
async fn read(
    redis: &mut redis::aio::ConnectionManager,
    tenant: &rf_schemas::TenantId,
    office_id: &str,
    rooms: &[Room],
) -> redis::RedisResult<Value> {
    use rf_sinks::redis::{office_key, room_key};
    let mut pipe = redis::pipe();
    pipe.cmd("HGETALL").arg(office_key(tenant, office_id));
    for r in rooms {
        pipe.cmd("HGETALL").arg(room_key(tenant, &r.room_id));
    }
    let hashes: Vec<HashMap<String, String>> = pipe.query_async(redis).await?;
    let num = crate::routes::field;
    let office = &hashes[0];
    let listed: Vec<Value> = rooms
        .iter()
        .zip(&hashes[1..])
        .map(|(r, h)| {
            let reporting = !h.is_empty();
            json!({
                "room_id": r.room_id,
                "name": r.name,
                "floor": r.floor,
                "capacity": r.capacity,
                "people": reporting.then(|| num(h, "people") as i64),
                "utilization": reporting.then(|| num(h, "utilization")),
                "as_of": reporting.then(|| iso(num(h, "ts") as i64)),
            })
        })
        .collect();
    Ok(json!({
        "office_id": office_id,
        "people": num(office, "people") as i64,
        "capacity": num(office, "capacity") as u64,
        "rooms_reporting": num(office, "rooms_reporting") as u64,
        "utilization": num(office, "utilization"),
        "as_of": (!office.is_empty()).then(|| iso(num(office, "ts") as i64)),
        "rooms": listed,
    }))
}

#[derive(Row, Deserialize)]
struct Today {
    room_id: String,
    utilization: f64,
    occupied_ratio: f64,
    peak_people: u32,
}

/// `GET /v1/offices/{office_id}/today`: every room's utilization so far in the office's
/// local day (its `1d` window), busiest first.
pub async fn office_today(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(office_id): Path<String>,
) -> Result<Response, ApiError> {
    let caller = caller(&state, &headers)?;
    id("office_id", &office_id)?;
    caller.limit(&state, Class::General).await?;
    let metadata = metadata(&state, &caller).await?;
    let zone = metadata.office_zone(&office_id)?;
    let rooms = metadata.office(&office_id);
    let local = Utc::now().with_timezone(&zone).date_naive();
    let midnight = zone
        .from_local_datetime(&local.and_hms_opt(0, 0, 0).expect("midnight"))
        .earliest()
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(Utc::now);
    let sql = format!(
        "SELECT room_id, argMax(utilization, version), argMax(occupied_ratio, version), argMax(peak_people, version) \
         FROM {}.room_utilization WHERE granularity = '1d' AND office_id = ? AND window_start = toDateTime(?) \
         GROUP BY room_id",
        caller.tenant.clickhouse_db()
    );
    let query = caller
        .clickhouse()
        .query(&sql)
        .bind(&office_id)
        .bind(crate::routes::secs(midnight));
    let rows: Vec<Today> = queried(&caller, async {
        no_database_is_empty(query.fetch_all().await)
    })
    .await?;
    let by_id: HashMap<&str, &Today> = rows.iter().map(|r| (r.room_id.as_str(), r)).collect();
    let mut listed: Vec<Value> = rooms
        .iter()
        .filter_map(|r| {
            let t = by_id.get(r.room_id.as_str())?;
            Some(json!({
                "room_id": r.room_id,
                "name": r.name,
                "floor": r.floor,
                "kind": r.kind,
                "capacity": r.capacity,
                "utilization": t.utilization,
                "occupied_ratio": t.occupied_ratio,
                "peak_people": t.peak_people,
            }))
        })
        .collect();
    listed.sort_by(|a, b| {
        let u = |v: &Value| v["utilization"].as_f64().unwrap_or(0.0);
        u(b).total_cmp(&u(a))
            .then_with(|| a["room_id"].as_str().cmp(&b["room_id"].as_str()))
    });
    Ok(answer(json!({
        "office_id": office_id,
        "timezone": zone.name(),
        "day_start": iso(midnight.timestamp_millis()),
        "rooms": listed,
        "rooms_without_readings": rooms.len() - listed.len(),
    })))
}
