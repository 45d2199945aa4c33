//! The tenant's portfolio: offices and rooms with their current metadata, a room's live
//! occupancy, and an office's (or one of its floors') utilization series.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use redis::AsyncCommands;
use serde::Deserialize;
use serde_json::json;

use crate::directory::absent_is_empty;
use crate::limits::Class;
use crate::rooms::metadata;
use crate::routes::{answer, caller, id, iso, ApiError};
use crate::AppState;

/// Pagination: `limit` (1 to 1000, default 100) items after `cursor` (the last id of the
/// previous page).
#[derive(Deserialize)]
pub struct Page {
    limit: Option<u32>,
    cursor: Option<String>,
}

impl Page {
    fn parse(&self) -> Result<(u32, String), ApiError> {
        let limit = self.limit.unwrap_or(100);
        if !(1..=1000).contains(&limit) {
            return Err(ApiError::bad("limit", "must be between 1 and 1000"));
        }
        let cursor = self.cursor.clone().unwrap_or_default();
        if !cursor.is_empty() {
            id("cursor", &cursor)?;
        }
        Ok((limit, cursor))
    }
}

/// A query over a tenant database that may not exist yet answers nothing.
pub(crate) fn no_database_is_empty<T>(
    result: clickhouse::error::Result<Vec<T>>,
) -> Result<Vec<T>, ApiError> {
    absent_is_empty(result).map_err(ApiError::unavailable)
}

/// `GET /v1/offices?limit=&cursor=`: the tenant's offices, by id.
pub async fn offices(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(page): Query<Page>,
) -> Result<Response, ApiError> {
    let caller = caller(&state, &headers)?;
    let (limit, cursor) = page.parse()?;
    caller.limit(&state, Class::General).await?;
    let metadata = metadata(&state, &caller).await?;
    let listed: Vec<_> = metadata
        .offices_after(&cursor)
        .take(limit as usize)
        .map(|(v, rooms, capacity)| {
            json!({
                "office_id": v.office_id,
                "name": v.office_name,
                "region": v.region,
                "country_code": v.country_code,
                "timezone": v.timezone,
                "rooms": rooms,
                "capacity": capacity,
            })
        })
        .collect();
    let next =
        (listed.len() == limit as usize).then(|| listed[listed.len() - 1]["office_id"].clone());
    Ok(answer(json!({ "offices": listed, "next_cursor": next })))
}

/// `GET /v1/offices/{office_id}/rooms?limit=&cursor=`: an office's rooms, by id.
pub async fn rooms(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(office_id): Path<String>,
    Query(page): Query<Page>,
) -> Result<Response, ApiError> {
    let caller = caller(&state, &headers)?;
    id("office_id", &office_id)?;
    let (limit, cursor) = page.parse()?;
    caller.limit(&state, Class::General).await?;
    let metadata = metadata(&state, &caller).await?;
    let office = metadata.office(&office_id);
    if office.is_empty() {
        return Err(ApiError::not_found(format!("no office {office_id}")));
    }
    let rooms: Vec<_> = office
        .iter()
        .filter(|r| r.room_id > cursor)
        .take(limit as usize)
        .map(|r| {
            json!({
                "room_id": r.room_id,
                "floor": r.floor,
                "name": r.name,
                "kind": r.kind,
                "capacity": r.capacity,
                "area_m2": r.area_m2,
                "monthly_cost": r.monthly_cost,
            })
        })
        .collect();
    let next = (rooms.len() == limit as usize).then(|| rooms[rooms.len() - 1]["room_id"].clone());
    Ok(answer(
        json!({ "office_id": office_id, "rooms": rooms, "next_cursor": next }),
    ))
}

/// `GET /v1/rooms/{room_id}/occupancy`: the room's latest reading (Redis).
pub async fn room_occupancy(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(room_id): Path<String>,
) -> Result<Response, ApiError> {
    let caller = caller(&state, &headers)?;
    id("room_id", &room_id)?;
    caller.limit(&state, Class::General).await?;
    let key = format!("{}room:{room_id}", caller.tenant.redis_prefix());
    let mut redis = caller.stores.redis.clone();
    let hash: HashMap<String, String> = redis.hgetall(&key).await.map_err(ApiError::unavailable)?;
    if hash.is_empty() {
        return Err(ApiError::not_found(format!("no room {room_id}")));
    }
    let num = |f: &str| crate::routes::field(&hash, f);
    Ok(answer(json!({
        "room_id": room_id,
        "office_id": hash.get("office_id"),
        "people": num("people") as i64,
        "capacity": num("capacity") as u64,
        "utilization": num("utilization"),
        "as_of": iso(num("ts") as i64),
    })))
}

#[derive(clickhouse::Row, Deserialize)]
struct PortfolioWindow {
    start: u32,
    end: u32,
    rooms_reporting: u64,
    avg_people: f64,
    capacity: u64,
}

/// `GET /v1/portfolio/utilization?granularity=&from=&to=[&region=]`: the portfolio's (or
/// one region's) utilization per window, Σ avg_people / Σ capacity over its offices'
/// latest revisions; `1d` windows are the offices' local days, told apart by their date.
pub async fn portfolio_utilization(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(q): Query<crate::routes::SeriesQuery>,
) -> Result<Response, ApiError> {
    let caller = caller(&state, &headers)?;
    Ok(answer(portfolio_series(&state, &caller, &q).await?))
}

/// The portfolio's (or a region's) series, for [`portfolio_utilization`] and questions.
pub(crate) async fn portfolio_series(
    state: &AppState,
    caller: &crate::routes::Caller<'_>,
    q: &crate::routes::SeriesQuery,
) -> Result<serde_json::Value, ApiError> {
    let series = q.parse(state.config.max_range_days)?;
    let region = q.region.clone().unwrap_or_default();
    if !region.is_empty() {
        id("region", &region)?;
    }
    caller.limit(state, q.class(series.from, series.to)).await?;
    let offices: Vec<String> = if region.is_empty() {
        Vec::new()
    } else {
        let metadata = metadata(state, caller).await?;
        let offices: Vec<String> = metadata
            .offices_after("")
            .filter(|(v, ..)| v.region == region)
            .map(|(v, ..)| v.office_id.clone())
            .collect();
        if offices.is_empty() {
            return Err(ApiError::not_found(format!("no office in region {region}")));
        }
        offices
    };
    let request = format!(
        "portfolio:{}:{}:{}:{region}",
        series.label,
        crate::routes::secs(series.from),
        crate::routes::secs(series.to)
    );
    let ttl = state.config.cache_ttl_secs;
    crate::cache::cached(caller, ttl, &request, async {
        // 1d windows start at each office's local midnight: the UTC date 12 hours later
        // is the local date for every offset from -12 to +12 hours.
        let bucket = if series.label == "1d" {
            "toDateTime(toDate(ws + 43200))"
        } else {
            "ws"
        };
        let sql = format!(
            "SELECT toUInt32(min(ws)) AS start, toUInt32(max(we)) AS end, sum(rr) AS rooms_reporting, \
                    sum(ap) AS avg_people, sum(cap) AS capacity \
             FROM (SELECT office_id, window_start AS ws, argMax(window_end, version) AS we, \
                          toUInt64(argMax(rooms_reporting, version)) AS rr, argMax(avg_people, version) AS ap, \
                          toUInt64(argMax(capacity, version)) AS cap \
                   FROM {}.office_utilization \
                   WHERE granularity = ? AND window_start >= toDateTime(?) AND window_start < toDateTime(?) {} \
                   GROUP BY office_id, window_start) \
             GROUP BY {bucket} AS b ORDER BY b",
            caller.tenant.clickhouse_db(),
            if offices.is_empty() { "" } else { "AND has(?, office_id)" },
        );
        let mut query = caller
            .clickhouse()
            .query(&sql)
            .bind(series.label)
            .bind(crate::routes::secs(series.from))
            .bind(crate::routes::secs(series.to));
        if !offices.is_empty() {
            query = query.bind(&offices);
        }
        let rows: Vec<PortfolioWindow> = no_database_is_empty(query.fetch_all().await)?;
        let windows: Vec<serde_json::Value> = rows
            .iter()
            .map(|w| {
                json!({
                    "start": iso(i64::from(w.start) * 1000),
                    "end": iso(i64::from(w.end) * 1000),
                    "rooms_reporting": w.rooms_reporting,
                    "avg_people": w.avg_people,
                    "capacity": w.capacity,
                    "utilization": if w.capacity > 0 { w.avg_people / w.capacity as f64 } else { 0.0 },
                })
            })
            .collect();
        Ok(json!({
            "region": (!region.is_empty()).then_some(&region),
            "granularity": series.label,
            "from": iso(series.from.timestamp_millis()),
            "to": iso(series.to.timestamp_millis()),
            "windows": windows,
        }))
    })
    .await
}
