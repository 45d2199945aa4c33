//! Utilization series of a room, an office or one of its floors, assembled from chunks:
//! a UTC day of `15m` windows, a UTC month of `1h` or `1d` windows.
//!
//! A chunk is read from ClickHouse once and kept in this process under the tenant's
//! generations of its month and of its history (see
//! [`rf_sinks::redis::month_generation_key`]). The pipeline bumps them once ClickHouse has
//! its rows, so a write to that month, a room metadata change or a restatement makes the
//! chunk unreachable, while chunks of other months stay: a series over past months keeps
//! being served from memory however much the pipeline writes to today. Requests for a
//! chunk being read wait for that one read. A chunk is also keyed by the fingerprint of
//! its month's parts (see [`crate::parts`]), checked every `service.cache_ttl_secs`, so
//! a write without a bump reaches it too; the least used go first when
//! `service.memory_cache_mib` is full.
//!
//! Rooms are many and their chunks rarely shared, so a room's chunks are mostly read:
//! reads of the same granularity and range that wait for the tenant's ClickHouse slot
//! are made one query by whichever of them gets the slot ([`RoomReads`]), which costs
//! ClickHouse about half as much per room as a query each.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Datelike, TimeZone, Utc};
use clickhouse::Row;
use serde::{Deserialize, Serialize};

use rf_schemas::TenantId;

use crate::audit;
use crate::cache::{queried, timed};
use crate::parts::fingerprint;
use crate::portfolio::no_database_is_empty;
use crate::rooms::metadata;
use crate::routes::{caller, id, iso, ApiError, Caller, Series, SeriesQuery};
use crate::AppState;

/// Windows a response carries at most.
const MAX_WINDOWS: i64 = 10_000;

/// Whose windows.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Subject {
    Room(String),
    Office(String),
    /// An office's floor: the rooms on it now, summed up per window.
    Floor(String, i32),
}

/// One window, the latest revision. `count` is a room's samples or an office's (floor's)
/// rooms reporting; `occupied_ratio` is a room's only.
#[derive(Row, Deserialize, Clone, Debug)]
struct WindowRow {
    office_id: String,
    start: u32,
    end: u32,
    count: u32,
    avg_people: f64,
    peak_people: f64,
    occupied_ratio: f64,
    capacity: u64,
    utilization: f64,
    is_final: u8,
}

/// The windows of one chunk, and the bytes they hold (roughly).
#[derive(Debug)]
pub(crate) struct Chunk(Vec<WindowRow>, u64);

impl Chunk {
    fn new(rows: Vec<WindowRow>) -> Self {
        let bytes: usize = rows
            .iter()
            .map(|r| std::mem::size_of::<WindowRow>() + r.office_id.len())
            .sum();
        Self(rows, bytes as u64 + 128)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct ChunkKey {
    tenant: TenantId,
    subject: Subject,
    granularity: &'static str,
    start: i64,
    month: u64,
    history: u64,
    /// The fingerprint of its month's parts (and, for a floor, of the rooms').
    parts: u64,
}

/// Bytes a chunk holds, roughly.
#[derive(Clone)]
pub(crate) struct ChunkWeight;

impl quick_cache::Weighter<ChunkKey, Arc<Chunk>> for ChunkWeight {
    fn weight(&self, _: &ChunkKey, chunk: &Arc<Chunk>) -> u64 {
        chunk.1
    }
}

/// The process's chunks, three quarters of `service.memory_cache_mib` at most.
pub(crate) type Chunks = quick_cache::sync::Cache<ChunkKey, Arc<Chunk>, ChunkWeight>;

/// A cache of `mib` MiB (none when 0).
pub(crate) fn chunks(mib: u64) -> Option<Chunks> {
    (mib > 0).then(|| {
        let bytes = mib << 20;
        // A month of an office's hours is about 50 KiB.
        Chunks::with_weighter((bytes / 50_000).max(16) as usize, bytes, ChunkWeight)
    })
}

impl Subject {
    /// The query of the subject's windows that start in `[?, ?)`, latest revision each
    /// by argMax, which 18.16 does faster than FINAL. `ids` are the room's offices or
    /// the floor's rooms, from the metadata; with the office they narrow the primary key
    /// to the subject's rows. The database name comes from the validated tenant id;
    /// values are bound (see [`Subject::bind`]).
    fn sql(&self, db: &str, ids: usize) -> String {
        let ids = one_of(ids);
        match self {
            Subject::Room(_) => format!(
                "SELECT any(office_id), toUInt32(window_start) AS start, toUInt32(argMax(window_end, version)), \
                 argMax(samples, version), argMax(avg_people, version), toFloat64(argMax(peak_people, version)), \
                 argMax(occupied_ratio, version), toUInt64(argMax(capacity, version)), \
                 argMax(utilization, version), argMax(final, version) \
                 FROM {db}.room_utilization \
                 WHERE granularity = ? AND office_id {ids} \
                 AND room_id = ? AND window_start >= toDateTime(?) AND window_start < toDateTime(?) \
                 GROUP BY start ORDER BY start"
            ),
            Subject::Office(_) => format!(
                "SELECT any(office_id), toUInt32(window_start) AS start, toUInt32(argMax(window_end, version)), \
                 argMax(rooms_reporting, version), argMax(avg_people, version), argMax(peak_people, version), \
                 toFloat64(0), toUInt64(argMax(capacity, version)), argMax(utilization, version), \
                 argMax(final, version) \
                 FROM {db}.office_utilization \
                 WHERE granularity = ? AND office_id = ? AND window_start >= toDateTime(?) AND window_start < toDateTime(?) \
                 GROUP BY start ORDER BY start"
            ),
            Subject::Floor(..) => format!(
                "SELECT any(office_id), toUInt32(window_start) AS start, toUInt32(any(e)), toUInt32(count()), \
                 sum(a), toFloat64(sum(p)), toFloat64(0), sum(toUInt64(c)), \
                 if(sum(c) = 0, 0., sum(a) / sum(c)), min(f) \
                 FROM (SELECT office_id, window_start, argMax(window_end, version) AS e, \
                 argMax(avg_people, version) AS a, argMax(peak_people, version) AS p, \
                 argMax(capacity, version) AS c, argMax(final, version) AS f \
                 FROM {db}.room_utilization \
                 WHERE granularity = ? AND office_id = ? AND window_start >= toDateTime(?) AND window_start < toDateTime(?) \
                 AND room_id {ids} \
                 GROUP BY office_id, room_id, window_start) \
                 GROUP BY start ORDER BY start"
            ),
        }
    }

    fn bind(
        &self,
        query: clickhouse::query::Query,
        label: &str,
        (from, to): (i64, i64),
        ids: &[String],
    ) -> clickhouse::query::Query {
        let ids = |q: clickhouse::query::Query| ids.iter().fold(q, |q, id| q.bind(id));
        match self {
            Subject::Room(room) => ids(query.bind(label)).bind(room).bind(from).bind(to),
            Subject::Office(office) => query.bind(label).bind(office).bind(from).bind(to),
            Subject::Floor(office, _) => ids(query.bind(label).bind(office).bind(from).bind(to)),
        }
    }

    /// Whether the subject's windows depend on room metadata beyond its own rows.
    fn reads_metadata(&self) -> bool {
        !matches!(self, Subject::Office(_))
    }
}

/// The chunks covering `[from, to)`: (start, end, UTC month `yyyymm`), seconds.
fn spans(label: &str, from: i64, to: i64) -> Vec<(i64, i64, u32)> {
    let mut spans = Vec::new();
    let mut start = match label {
        "15m" => from - from.rem_euclid(86_400),
        _ => month_start(from),
    };
    while start < to {
        let end = match label {
            "15m" => start + 86_400,
            _ => month_start(start + 32 * 86_400),
        };
        spans.push((start, end, rf_sinks::redis::month_of(start * 1000)));
        start = end;
    }
    spans
}

/// The first second of the UTC month of `t`.
fn month_start(t: i64) -> i64 {
    let d = DateTime::from_timestamp(t, 0).unwrap_or_default();
    Utc.with_ymd_and_hms(d.year(), d.month(), 1, 0, 0, 0)
        .single()
        .map_or(t, |m| m.timestamp())
}

/// Room reads of one tenant, granularity and range that wait for a ClickHouse slot.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct ReadKey {
    tenant: TenantId,
    label: &'static str,
    range: (i64, i64),
}

/// A room whose windows are waited for, and where its answer goes.
struct Waiting {
    room: String,
    offices: Vec<String>,
    answer: tokio::sync::oneshot::Sender<Result<Vec<WindowRow>, ApiError>>,
}

/// The rooms waiting, per [`ReadKey`].
#[derive(Default)]
pub(crate) struct RoomReads(std::sync::Mutex<std::collections::HashMap<ReadKey, Vec<Waiting>>>);

/// Rooms read by one query at most.
const ROOMS_PER_READ: usize = 64;

/// A room's windows of `range`: the room waits beside the others of the same range for
/// a slot; whoever gets it first reads them all, each request taking its own rows. A
/// request whose reader went away (its client left) reads on its own.
async fn read_room(
    state: &AppState,
    caller: &Caller<'_>,
    (room, offices): (&str, &[String]),
    label: &'static str,
    range: (i64, i64),
) -> Result<Vec<WindowRow>, ApiError> {
    let key = ReadKey {
        tenant: caller.tenant.clone(),
        label,
        range,
    };
    let (answer, mut answered) = tokio::sync::oneshot::channel();
    let waiting = Waiting {
        room: room.to_owned(),
        offices: offices.to_vec(),
        answer,
    };
    let lock = || state.room_reads.0.lock().unwrap_or_else(|e| e.into_inner());
    lock().entry(key.clone()).or_default().push(waiting);
    let slot = caller.stores.queries.take(&caller.tenant, caller.class());
    tokio::select! {
        biased;
        answer = &mut answered => {
            if let Ok(answer) = answer {
                return answer;
            }
        }
        slot = slot => {
            let batch = lock().remove(&key).unwrap_or_default();
            read_rooms(caller, batch, label, range).await;
            drop(slot);
        }
    }
    match answered.await {
        Ok(answer) => answer,
        Err(_) => {
            let subject = Subject::Room(room.to_owned());
            read_one(caller, (&subject, offices), label, range).await
        }
    }
}

/// Reads `batch`'s windows, [`ROOMS_PER_READ`] rooms a query, and answers each.
async fn read_rooms(
    caller: &Caller<'_>,
    mut batch: Vec<Waiting>,
    label: &'static str,
    range: (i64, i64),
) {
    while !batch.is_empty() {
        let rest = batch.split_off(batch.len().min(ROOMS_PER_READ));
        let rooms: Vec<String> = batch.iter().map(|w| w.room.clone()).collect();
        let mut offices: Vec<String> = batch.iter().flat_map(|w| w.offices.clone()).collect();
        offices.sort_unstable();
        offices.dedup();
        let read = timed(caller, fetch_rooms(caller, &rooms, &offices, label, range)).await;
        for waiting in batch {
            let answer = read.as_ref().map_err(Clone::clone).map(|rows| {
                rows.iter()
                    .filter(|(_, room)| *room == waiting.room)
                    .map(|(row, _)| row.clone())
                    .collect()
            });
            // A request that went away takes no answer.
            let _ = waiting.answer.send(answer);
        }
        batch = rest;
    }
}

/// The windows of `rooms` (with the offices they were in) starting in `range`, latest
/// revision each, by room.
async fn fetch_rooms(
    caller: &Caller<'_>,
    rooms: &[String],
    offices: &[String],
    label: &str,
    (from, to): (i64, i64),
) -> Result<Vec<(WindowRow, String)>, ApiError> {
    if rooms.is_empty() || offices.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT any(office_id), toUInt32(window_start) AS start, toUInt32(argMax(window_end, version)), \
         argMax(samples, version), argMax(avg_people, version), toFloat64(argMax(peak_people, version)), \
         argMax(occupied_ratio, version), toUInt64(argMax(capacity, version)), \
         argMax(utilization, version), argMax(final, version), room_id \
         FROM {}.room_utilization \
         WHERE granularity = ? AND office_id {} AND room_id {} \
         AND window_start >= toDateTime(?) AND window_start < toDateTime(?) \
         GROUP BY room_id, start ORDER BY room_id, start",
        caller.tenant.clickhouse_db(),
        one_of(offices.len()),
        one_of(rooms.len()),
    );
    let mut query = caller.clickhouse().query(&sql).bind(label);
    for id in offices.iter().chain(rooms) {
        query = query.bind(id);
    }
    no_database_is_empty(query.bind(from).bind(to).fetch_all().await)
}

/// `= ?` or `IN (?, …)` for `n` values: ClickHouse 18.16 spends about a millisecond
/// more on a set than on one value.
fn one_of(n: usize) -> String {
    match n {
        1 => "= ?".into(),
        n => format!("IN ({})", vec!["?"; n].join(", ")),
    }
}

/// The subject's windows starting in `[from, to)` (at most [`MAX_WINDOWS`]); `ids` as
/// for [`Subject::sql`].
async fn windows(
    state: &AppState,
    caller: &Caller<'_>,
    (subject, ids): (&Subject, &[String]),
    label: &'static str,
    from: i64,
    to: i64,
) -> Result<Vec<WindowRow>, ApiError> {
    let step = match label {
        "15m" => 900,
        "1h" => 3600,
        _ => 86_400,
    };
    let to = to.min(from + MAX_WINDOWS * step);
    let spans = spans(label, from, to);
    let ttl = state.config.cache_ttl_secs;
    let kept = match (&state.chunks, ttl) {
        (Some(_), 1..) => {
            let parts = fingerprints(state, caller, subject, &spans);
            match tokio::join!(generations(caller, subject, &spans), parts) {
                (Some(g), Some(p)) => Some((g, p)),
                _ => None,
            }
        }
        _ => None,
    };
    let (Some(cache), Some(((history, months), parts))) = (&state.chunks, kept) else {
        audit::remember_cache(false);
        return read(state, caller, (subject, ids), label, (from, to)).await;
    };
    let mut found = Vec::with_capacity(spans.len());
    let mut missing = Vec::new();
    // Guards are taken in the order of time, by every request, so two requests never
    // wait for each other's.
    let chunks = spans.iter().zip(months.iter().zip(&parts));
    for (i, (&(start, _, _), (&month, &parts))) in chunks.enumerate() {
        let key = ChunkKey {
            tenant: caller.tenant.clone(),
            subject: subject.clone(),
            granularity: label,
            start,
            month,
            history,
            parts,
        };
        match cache.get_value_or_guard_async(&key).await {
            Ok(chunk) => found.push(Some(chunk)),
            Err(guard) => {
                found.push(None);
                missing.push((i, guard));
            }
        }
    }
    audit::remember_cache(missing.is_empty());
    if let (Some((first, _)), Some((last, _))) = (missing.first(), missing.last()) {
        let range = (spans[*first].0, spans[*last].1);
        let rows = read(state, caller, (subject, ids), label, range).await?;
        for (i, guard) in missing {
            let (start, end, _) = spans[i];
            let chunk = Arc::new(Chunk::new(
                rows.iter()
                    .filter(|r| (start..end).contains(&i64::from(r.start)))
                    .cloned()
                    .collect(),
            ));
            // Another loader cannot have filled the placeholder this guard holds.
            let _ = guard.insert(chunk.clone());
            found[i] = Some(chunk);
        }
    }
    Ok(found
        .iter()
        .flatten()
        .flat_map(|c| c.0.iter())
        .filter(|r| (from..to).contains(&i64::from(r.start)))
        .cloned()
        .collect())
}

/// The fingerprint of each span's month's parts (see [`crate::parts`]), or `None` when
/// ClickHouse cannot say.
async fn fingerprints(
    state: &AppState,
    caller: &Caller<'_>,
    subject: &Subject,
    spans: &[(i64, i64, u32)],
) -> Option<Vec<u64>> {
    let ttl = state.config.cache_ttl_secs;
    let (table, rooms) = match subject {
        Subject::Office(_) => ("office_utilization", 0),
        Subject::Room(_) => ("room_utilization", 0),
        // Its rooms are those on the floor now.
        Subject::Floor(..) => (
            "room_utilization",
            fingerprint(&state.fingerprints, caller, "rooms", None, ttl).await?,
        ),
    };
    let mut parts = Vec::with_capacity(spans.len());
    for &(_, _, month) in spans {
        let hash = fingerprint(&state.fingerprints, caller, table, Some(month), ttl).await?;
        parts.push(hash ^ rooms);
    }
    Some(parts)
}

/// The tenant's history generation and the generation of each span's month, or `None`
/// when Redis cannot say (then nothing is cached).
async fn generations(
    caller: &Caller<'_>,
    subject: &Subject,
    spans: &[(i64, i64, u32)],
) -> Option<(u64, Vec<u64>)> {
    let mut keys: Vec<String> = spans
        .iter()
        .map(|&(_, _, m)| rf_sinks::redis::month_generation_key(&caller.tenant, m))
        .collect();
    keys.push(rf_sinks::redis::history_generation_key(&caller.tenant));
    let mut redis = caller.stores.redis.clone();
    let values: Vec<Option<u64>> = match redis::cmd("MGET").arg(&keys).query_async(&mut redis).await
    {
        Ok(v) => v,
        Err(error) => {
            tracing::warn!(%error, "the series cache is unavailable");
            return None;
        }
    };
    let mut values: Vec<u64> = values.into_iter().map(Option::unwrap_or_default).collect();
    let history = values.pop().unwrap_or_default();
    // An office's own rows do not change with room metadata.
    let history = if subject.reads_metadata() { history } else { 0 };
    Some((history, values))
}

/// The subject's windows starting in `[from, to)`, from ClickHouse.
async fn read(
    state: &AppState,
    caller: &Caller<'_>,
    (subject, ids): (&Subject, &[String]),
    label: &'static str,
    range: (i64, i64),
) -> Result<Vec<WindowRow>, ApiError> {
    if ids.is_empty() && subject.reads_metadata() {
        return Ok(Vec::new());
    }
    if let Subject::Room(room) = subject {
        return read_room(state, caller, (room, ids), label, range).await;
    }
    read_one(caller, (subject, ids), label, range).await
}

/// The subject's windows starting in `[from, to)`, from ClickHouse, by a query of its
/// own.
async fn read_one(
    caller: &Caller<'_>,
    (subject, ids): (&Subject, &[String]),
    label: &str,
    range: (i64, i64),
) -> Result<Vec<WindowRow>, ApiError> {
    let sql = subject.sql(&caller.tenant.clickhouse_db(), ids.len());
    let query = subject.bind(caller.clickhouse().query(&sql), label, range, ids);
    // A valid credential of a tenant that has no database yet: nothing to find.
    queried(caller, async {
        no_database_is_empty(query.fetch_all().await)
    })
    .await
}

#[derive(Serialize)]
struct RoomWindow {
    start: String,
    end: String,
    samples: u32,
    avg_people: f64,
    peak_people: u32,
    occupied_ratio: f64,
    capacity: u64,
    utilization: f64,
    #[serde(rename = "final")]
    is_final: bool,
}

#[derive(Serialize)]
struct RoomSeries<'a> {
    room_id: &'a str,
    office_id: &'a str,
    granularity: &'a str,
    from: String,
    to: String,
    windows: Vec<RoomWindow>,
}

#[derive(Serialize)]
struct OfficeWindow {
    start: String,
    end: String,
    rooms_reporting: u32,
    avg_people: f64,
    peak_people: f64,
    capacity: u64,
    utilization: f64,
    #[serde(rename = "final")]
    is_final: bool,
}

#[derive(Serialize)]
struct OfficeSeries<'a> {
    office_id: &'a str,
    floor: Option<i32>,
    granularity: &'a str,
    from: String,
    to: String,
    windows: Vec<OfficeWindow>,
}

fn at(secs: u32) -> String {
    iso(i64::from(secs) * 1000)
}

/// `GET /v1/rooms/{room_id}/utilization?granularity=1h&from=…&to=…`: the room's windows
/// that start in `[from, to)`, latest revision of each.
pub async fn room_utilization(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(room_id): Path<String>,
    Query(q): Query<SeriesQuery>,
) -> Result<Response, ApiError> {
    let caller = caller(&state, &headers)?;
    Ok(Json(room_series(&state, &caller, &room_id, &q).await?).into_response())
}

/// A room's series, for [`room_utilization`] and questions.
pub(crate) async fn room_series(
    state: &AppState,
    caller: &Caller<'_>,
    room_id: &str,
    q: &SeriesQuery,
) -> Result<serde_json::Value, ApiError> {
    id("room_id", room_id)?;
    let Series { label, from, to } = q.parse(state.config.max_range_days)?;
    caller.limit(state, q.class(from, to)).await?;
    let subject = Subject::Room(room_id.to_owned());
    let offices: Vec<String> = metadata(state, caller)
        .await?
        .offices_of(room_id)
        .into_iter()
        .map(str::to_owned)
        .collect();
    let (from_secs, to_secs) = (from.timestamp(), to.timestamp());
    let rows = windows(
        state,
        caller,
        (&subject, &offices),
        label,
        from_secs,
        to_secs,
    )
    .await?;
    let Some(office_id) = rows.first().map(|r| r.office_id.as_str()) else {
        return Err(ApiError::not_found(format!(
            "no windows for room {room_id} in that range"
        )));
    };
    let body = RoomSeries {
        room_id,
        office_id,
        granularity: label,
        from: iso(from.timestamp_millis()),
        to: iso(to.timestamp_millis()),
        windows: rows
            .iter()
            .map(|r| RoomWindow {
                start: at(r.start),
                end: at(r.end),
                samples: r.count,
                avg_people: r.avg_people,
                peak_people: r.peak_people as u32,
                occupied_ratio: r.occupied_ratio,
                capacity: r.capacity,
                utilization: r.utilization,
                is_final: r.is_final == 1,
            })
            .collect(),
    };
    serde_json::to_value(body).map_err(ApiError::unavailable)
}

/// `GET /v1/offices/{office_id}/utilization?granularity=&from=&to=[&floor=N]`: the
/// office's windows starting in `[from, to)`, latest revision each; with `floor`, the
/// floor's rooms (those on it now) summed up per window.
pub async fn office_utilization(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(office_id): Path<String>,
    Query(q): Query<SeriesQuery>,
) -> Result<Response, ApiError> {
    let caller = caller(&state, &headers)?;
    Ok(Json(office_series(&state, &caller, &office_id, &q).await?).into_response())
}

/// An office's (or its floor's) series, for [`office_utilization`] and questions.
pub(crate) async fn office_series(
    state: &AppState,
    caller: &Caller<'_>,
    office_id: &str,
    q: &SeriesQuery,
) -> Result<serde_json::Value, ApiError> {
    id("office_id", office_id)?;
    let Series { label, from, to } = q.parse(state.config.max_range_days)?;
    if q.floor.is_some_and(|f| !(-50..=500).contains(&f)) {
        return Err(ApiError::bad("floor", "must be between -50 and 500"));
    }
    caller.limit(state, q.class(from, to)).await?;
    let (subject, rooms) = match q.floor {
        Some(floor) => {
            let rooms = metadata(state, caller)
                .await?
                .office(office_id)
                .iter()
                .filter(|r| r.floor == floor)
                .map(|r| r.room_id.clone())
                .collect();
            (Subject::Floor(office_id.to_owned(), floor), rooms)
        }
        None => (Subject::Office(office_id.to_owned()), Vec::new()),
    };
    let (from_secs, to_secs) = (from.timestamp(), to.timestamp());
    let rows = windows(state, caller, (&subject, &rooms), label, from_secs, to_secs).await?;
    if rows.is_empty() {
        return Err(ApiError::not_found(format!(
            "no windows for office {office_id} in that range"
        )));
    }
    let body = OfficeSeries {
        office_id,
        floor: q.floor,
        granularity: label,
        from: iso(from.timestamp_millis()),
        to: iso(to.timestamp_millis()),
        windows: rows
            .iter()
            .map(|r| OfficeWindow {
                start: at(r.start),
                end: at(r.end),
                rooms_reporting: r.count,
                avg_people: r.avg_people,
                peak_people: r.peak_people,
                capacity: r.capacity,
                utilization: r.utilization,
                is_final: r.is_final == 1,
            })
            .collect(),
    };
    serde_json::to_value(body).map_err(ApiError::unavailable)
}

#[cfg(test)]
mod tests {
    use super::spans;

    #[test]
    fn hours_and_days_are_read_by_utc_month_and_quarter_hours_by_day() {
        // 2026-01-20T12:00:00Z to 2026-03-02T00:00:00Z.
        let (from, to) = (1_768_910_400, 1_772_409_600);
        let months = spans("1h", from, to);
        let starts: Vec<i64> = months.iter().map(|s| s.0).collect();
        // January, February (28 days) and March 2026.
        assert_eq!(starts, vec![1_767_225_600, 1_769_904_000, 1_772_323_200]);
        assert_eq!(months[1].1, 1_772_323_200);
        assert_eq!(
            months.iter().map(|s| s.2).collect::<Vec<_>>(),
            vec![202601, 202602, 202603]
        );
        assert_eq!(spans("1d", from, to), months);
        let days = spans("15m", from, from + 86_400);
        assert_eq!(days.len(), 2);
        assert_eq!(days[0], (1_768_867_200, 1_768_953_600, 202601));
        // A range that ends where a chunk starts does not read that chunk.
        assert_eq!(spans("15m", 1_768_867_200, 1_768_953_600).len(), 1);
    }
}
