//! The tenant's portfolio: offices and rooms with their current metadata, a room's live
//! occupancy, and an office's (or one of its floors') utilization series.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use clickhouse::Row;
use redis::AsyncCommands;
use serde::Deserialize;
use serde_json::json;

use crate::cache::cached;
use crate::directory::absent_is_empty;
use crate::limits::Class;
use crate::routes::{answer, caller, id, iso, ApiError, Caller};
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

/// The current version of every room (the latest `effective_from` not in the future),
/// as a subquery over the tenant's `rooms` mirror. Runs on ClickHouse 18.16.
pub(crate) fn current_rooms(caller: &Caller<'_>, office_filter: &str) -> String {
    format!(
        "SELECT office_id, room_id, argMax(office_name, effective_from) AS c_office_name, \
         argMax(region, effective_from) AS c_region, argMax(country_code, effective_from) AS c_country, \
         argMax(timezone, effective_from) AS c_timezone, argMax(floor, effective_from) AS c_floor, \
         argMax(name, effective_from) AS c_name, toString(argMax(kind, effective_from)) AS c_kind, \
         argMax(capacity, effective_from) AS c_capacity, argMax(area_m2, effective_from) AS c_area, \
         argMax(monthly_cost, effective_from) AS c_cost \
         FROM {}.rooms FINAL WHERE effective_from <= now() {office_filter} GROUP BY office_id, room_id",
        caller.tenant.clickhouse_db()
    )
}

/// A query over a tenant database that may not exist yet answers nothing.
pub(crate) fn no_database_is_empty<T>(
    result: clickhouse::error::Result<Vec<T>>,
) -> Result<Vec<T>, ApiError> {
    absent_is_empty(result).map_err(ApiError::unavailable)
}

#[derive(Row, Deserialize)]
struct OfficeRow {
    office_id: String,
    office_name: String,
    region: String,
    country_code: String,
    timezone: String,
    rooms: u64,
    capacity: u64,
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
    let request = format!("offices:{limit}:{cursor}");
    let ttl = state.config.cache_ttl_secs;
    let body = cached(&caller, ttl, &request, async {
        let sql = format!(
        "SELECT office_id, any(c_office_name), any(c_region), any(c_country), any(c_timezone), \
         count(), sum(c_capacity) FROM ({}) WHERE office_id > ? \
         GROUP BY office_id ORDER BY office_id LIMIT ?",
        current_rooms(&caller, "")
    );
        let rows: Vec<OfficeRow> = no_database_is_empty(
            caller
                .stores
                .clickhouse
                .query(&sql)
                .bind(cursor.as_str())
                .bind(limit)
                .fetch_all()
                .await,
        )?;
        let next = (rows.len() == limit as usize).then(|| rows[rows.len() - 1].office_id.clone());
        let offices: Vec<_> = rows
            .iter()
            .map(|o| {
                json!({
                    "office_id": o.office_id,
                    "name": o.office_name,
                    "region": o.region,
                    "country_code": o.country_code,
                    "timezone": o.timezone,
                    "rooms": o.rooms,
                    "capacity": o.capacity,
                })
            })
            .collect();
        Ok(json!({ "offices": offices, "next_cursor": next }))
    })
    .await?;
    Ok(answer(body))
}

#[derive(Row, Deserialize)]
struct RoomRow {
    room_id: String,
    floor: i32,
    name: String,
    kind: String,
    capacity: u32,
    area_m2: Option<f32>,
    monthly_cost: Option<f64>,
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
    let request = format!("rooms:{office_id}:{limit}:{cursor}");
    let ttl = state.config.cache_ttl_secs;
    let body = cached(&caller, ttl, &request, async {
        let sql = format!(
            "SELECT room_id, c_floor, c_name, c_kind, c_capacity, c_area, c_cost FROM ({}) \
         WHERE room_id > ? ORDER BY room_id LIMIT ?",
            current_rooms(&caller, "AND office_id = ?")
        );
        let rows: Vec<RoomRow> = no_database_is_empty(
            caller
                .stores
                .clickhouse
                .query(&sql)
                .bind(office_id.as_str())
                .bind(cursor.as_str())
                .bind(limit)
                .fetch_all()
                .await,
        )?;
        if rows.is_empty() && cursor.is_empty() {
            return Err(ApiError::not_found(format!("no office {office_id}")));
        }
        let next = (rows.len() == limit as usize).then(|| rows[rows.len() - 1].room_id.clone());
        let rooms: Vec<_> = rows
            .iter()
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
        Ok(json!({ "office_id": office_id, "rooms": rooms, "next_cursor": next }))
    })
    .await?;
    Ok(answer(body))
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
