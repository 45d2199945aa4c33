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
    let num = |f: &str| {
        hash.get(f)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    Ok(answer(json!({
        "room_id": room_id,
        "office_id": hash.get("office_id"),
        "people": num("people") as i64,
        "capacity": num("capacity") as u64,
        "utilization": num("utilization"),
        "as_of": iso(num("ts") as i64),
    })))
}
