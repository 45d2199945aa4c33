//! What the pipeline found and foresees: a tenant's anomalies, and a room's or office's
//! forecast. Both read the latest revision of each row (`argMax` by version).

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use chrono::{DateTime, Utc};
use clickhouse::Row;
use serde::Deserialize;
use serde_json::json;

use rf_schemas::rows::{AnomalyKind, Severity};

use crate::cache::cached;
use crate::limits::Class;
use crate::portfolio::no_database_is_empty;
use crate::routes::{answer, caller, id, iso, next_minute, secs, time, ApiError, Caller};
use crate::AppState;

/// The query of `GET /v1/anomalies`.
#[derive(Deserialize, Default)]
pub struct AnomalyQuery {
    from: Option<String>,
    to: Option<String>,
    kind: Option<String>,
    severity: Option<String>,
    office_id: Option<String>,
    /// One room's anomalies (its sensor's and its own).
    room_id: Option<String>,
    limit: Option<u32>,
}

#[derive(Row, Deserialize)]
struct AnomalyRow {
    kind: String,
    entity_kind: String,
    entity_id: String,
    office_id: String,
    room_id: String,
    window_start: u32,
    window_end: u32,
    score: f64,
    severity: String,
    details: String,
    ongoing: u8,
}

/// `GET /v1/anomalies?from=&to=&kind=&severity=&office_id=&limit=`: anomalies that
/// overlap `[from, to)` (default the last 7 days), newest first; `severity` is the least
/// severity shown.
pub async fn anomalies(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(q): Query<AnomalyQuery>,
) -> Result<Response, ApiError> {
    let caller = caller(&state, &headers)?;
    Ok(answer(anomalies_for(&state, &caller, &q).await?))
}

/// The anomalies, for [`anomalies`] and questions.
pub(crate) async fn anomalies_for(
    state: &AppState,
    caller: &Caller<'_>,
    q: &AnomalyQuery,
) -> Result<serde_json::Value, ApiError> {
    let to = time("to", q.to.as_deref(), next_minute())?;
    let from = time("from", q.from.as_deref(), to - chrono::Duration::days(7))?;
    if from >= to || to - from > chrono::Duration::days(366) {
        return Err(ApiError::bad(
            "from",
            "must be before `to`, at most 366 days",
        ));
    }
    let labels = AnomalyKind::ALL.map(AnomalyKind::label);
    if let Some(kind) = q.kind.as_deref().filter(|k| !labels.contains(k)) {
        return Err(ApiError::bad(
            "kind",
            format!("{kind:?} is not one of {}", labels.join(", ")),
        ));
    }
    let least = match q.severity.as_deref() {
        None => Severity::Low,
        Some(s) => Severity::from_label(s)
            .ok_or_else(|| ApiError::bad("severity", "must be low, medium or high"))?,
    };
    if let Some(office) = q.office_id.as_deref() {
        id("office_id", office)?;
    }
    if let Some(room) = q.room_id.as_deref() {
        id("room_id", room)?;
    }
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad("limit", "must be between 1 and 1000"));
    }
    // Like a series, a range over seven days counts as analytics.
    let class = if to - from > chrono::Duration::days(7) {
        Class::Analytics
    } else {
        Class::General
    };
    caller.limit(state, class).await?;
    let filter = Filter {
        range: (from, to),
        kind: q.kind.clone(),
        least_severity: least.enum_value(),
        office_id: q.office_id.clone(),
        room_id: q.room_id.clone(),
        limit,
    };
    let request = format!(
        "anomalies:{}:{}:{:?}:{}:{:?}:{:?}:{limit}",
        secs(from),
        secs(to),
        filter.kind,
        least.label(),
        filter.office_id,
        filter.room_id
    );
    let ttl = state.config.cache_ttl_secs;
    cached(caller, ttl, &request, anomalies_of(caller, &filter)).await
}

struct Filter {
    range: (DateTime<Utc>, DateTime<Utc>),
    kind: Option<String>,
    least_severity: i8,
    office_id: Option<String>,
    room_id: Option<String>,
    limit: u32,
}

async fn anomalies_of(caller: &Caller<'_>, f: &Filter) -> Result<serde_json::Value, ApiError> {
    let (from, to) = f.range;
    // Each episode's latest revision, then the filters that revisions may change.
    let sql = format!(
        "SELECT toString(kind) AS k, toString(entity_kind) AS ek, entity_id, oid, rid, \
         toUInt32(window_start) AS ws, toUInt32(we) AS we32, s, toString(sev) AS sv, d, o \
         FROM (SELECT kind, entity_kind, entity_id, window_start, \
                 argMax(office_id, version) AS oid, argMax(room_id, version) AS rid, \
                 argMax(window_end, version) AS we, argMax(score, version) AS s, \
                 argMax(severity, version) AS sev, argMax(details, version) AS d, \
                 argMax(ongoing, version) AS o \
               FROM {}.anomalies \
               WHERE window_start < toDateTime(?) AND window_start >= toDateTime(?) - 86400 * 31 \
               {} GROUP BY kind, entity_kind, entity_id, window_start) \
         WHERE we > toDateTime(?) AND CAST(sev AS Int8) >= ? {} {} \
         ORDER BY window_start DESC, k, entity_id LIMIT ?",
        caller.tenant.clickhouse_db(),
        if f.kind.is_some() { "AND kind = ?" } else { "" },
        if f.office_id.is_some() {
            "AND oid = ?"
        } else {
            ""
        },
        if f.room_id.is_some() {
            "AND (rid = ? OR (entity_kind = 'room' AND entity_id = ?))"
        } else {
            ""
        },
    );
    let mut query = caller
        .clickhouse()
        .query(&sql)
        .bind(secs(to))
        .bind(secs(from));
    if let Some(kind) = &f.kind {
        query = query.bind(kind.as_str());
    }
    query = query.bind(secs(from)).bind(f.least_severity);
    if let Some(office) = &f.office_id {
        query = query.bind(office.as_str());
    }
    if let Some(room) = &f.room_id {
        query = query.bind(room.as_str()).bind(room.as_str());
    }
    let rows: Vec<AnomalyRow> = no_database_is_empty(query.bind(f.limit).fetch_all().await)?;
    let anomalies: Vec<_> = rows
        .into_iter()
        .map(|r| {
            let details: serde_json::Value =
                serde_json::from_str(&r.details).unwrap_or(serde_json::Value::Null);
            json!({
                "kind": r.kind,
                "entity_kind": r.entity_kind,
                "entity_id": r.entity_id,
                "office_id": r.office_id,
                "room_id": (!r.room_id.is_empty()).then_some(r.room_id),
                "from": iso(i64::from(r.window_start) * 1000),
                "to": iso(i64::from(r.window_end) * 1000),
                "score": r.score,
                "severity": r.severity,
                "ongoing": r.ongoing == 1,
                "details": details,
            })
        })
        .collect();
    Ok(json!({
        "from": iso(from.timestamp_millis()),
        "to": iso(to.timestamp_millis()),
        "anomalies": anomalies,
    }))
}

/// The query of the forecast routes.
#[derive(Deserialize, Default)]
pub struct ForecastQuery {
    granularity: Option<String>,
    from: Option<String>,
}

#[derive(Row, Deserialize)]
struct Point {
    window_start: u32,
    window_end: u32,
    expected: f64,
    low: f64,
    high: f64,
    issued_at: u32,
}

/// `GET /v1/offices/{office_id}/forecast?granularity=1h|1d[&from=]`: the office's latest
/// forecast from `from` (default now): 14 days of hourly mean occupancy, or 13 weeks of
/// daily peaks.
pub async fn office_forecast(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(office_id): Path<String>,
    Query(q): Query<ForecastQuery>,
) -> Result<Response, ApiError> {
    forecast(&state, &headers, ("office", "office_id", office_id), q).await
}

/// `GET /v1/rooms/{room_id}/forecast?granularity=1h|1d[&from=]`: the same for a room.
pub async fn room_forecast(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(room_id): Path<String>,
    Query(q): Query<ForecastQuery>,
) -> Result<Response, ApiError> {
    forecast(&state, &headers, ("room", "room_id", room_id), q).await
}

async fn forecast(
    state: &AppState,
    headers: &HeaderMap,
    (kind, parameter, entity): (&'static str, &'static str, String),
    q: ForecastQuery,
) -> Result<Response, ApiError> {
    let caller = caller(state, headers)?;
    Ok(answer(
        forecast_for(state, &caller, (kind, parameter, &entity), &q).await?,
    ))
}

/// An office's (`kind` "office") or room's forecast, for the routes and questions.
pub(crate) async fn forecast_for(
    state: &AppState,
    caller: &Caller<'_>,
    (kind, parameter, entity): (&'static str, &'static str, &str),
    q: &ForecastQuery,
) -> Result<serde_json::Value, ApiError> {
    id(parameter, entity)?;
    let granularity = q.granularity.as_deref().unwrap_or("1h");
    if !["1h", "1d"].contains(&granularity) {
        return Err(ApiError::bad("granularity", "must be 1h or 1d"));
    }
    let from = time("from", q.from.as_deref(), next_minute())?;
    caller.limit(state, Class::General).await?;
    let request = format!("forecast:{kind}:{entity}:{granularity}:{}", secs(from));
    let ttl = state.config.cache_ttl_secs;
    let compute = forecast_of(caller, kind, entity, granularity, from);
    let body = cached(caller, ttl, &request, compute).await?;
    if body["forecast"].as_array().is_some_and(|f| f.is_empty()) {
        // A room or office the tenant has, not forecast yet, is an empty forecast; one it
        // does not have is not found.
        let metadata = crate::rooms::metadata(state, caller).await?;
        let known = match kind {
            "office" => !metadata.office(entity).is_empty(),
            _ => !metadata.offices_of(entity).is_empty(),
        };
        if !known {
            return Err(ApiError::not_found(format!(
                "no {granularity} forecast of {kind} {entity} from {}",
                iso(from.timestamp_millis())
            )));
        }
    }
    Ok(body)
}

async fn forecast_of(
    caller: &Caller<'_>,
    kind: &str,
    entity: &str,
    granularity: &str,
    from: DateTime<Utc>,
) -> Result<serde_json::Value, ApiError> {
    let sql = format!(
        "SELECT toUInt32(window_start) AS ws, toUInt32(any(window_end)) AS we, \
         argMax(expected, version) AS e, argMax(low, version) AS l, argMax(high, version) AS h, \
         toUInt32(max(issued_at)) AS i \
         FROM {}.forecasts \
         WHERE granularity = ? AND entity_kind = ? AND entity_id = ? \
           AND window_end > toDateTime(?) AND window_start < toDateTime(?) + 86400 * 92 \
         GROUP BY window_start ORDER BY window_start LIMIT 400",
        caller.tenant.clickhouse_db()
    );
    let points: Vec<Point> = no_database_is_empty(
        caller
            .clickhouse()
            .query(&sql)
            .bind(granularity)
            .bind(kind)
            .bind(entity)
            .bind(secs(from))
            .bind(secs(from))
            .fetch_all()
            .await,
    )?;
    let issued = points.iter().map(|p| p.issued_at).max().unwrap_or(0);
    let measure = if granularity == "1h" {
        "mean people in the hour"
    } else {
        "peak people in the local day"
    };
    Ok(json!({
        "entity_kind": kind,
        "entity_id": entity,
        "granularity": granularity,
        "measure": measure,
        "issued_at": (issued > 0).then(|| iso(i64::from(issued) * 1000)),
        "forecast": points.iter().map(|p| json!({
            "from": iso(i64::from(p.window_start) * 1000),
            "to": iso(i64::from(p.window_end) * 1000),
            "expected": p.expected,
            "low": p.low,
            "high": p.high,
        })).collect::<Vec<_>>(),
    }))
}
