//! Analytics: an office's hour-of-week heatmap, under-used rooms with what giving them up
//! would save, and the offices of the portfolio ranked by utilization. Each counts against
//! the tenant's analytics limit.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use chrono::{DateTime, Utc};
use clickhouse::Row;
use serde::Deserialize;
use serde_json::json;

use crate::cache::cached;
use crate::limits::Class;
use crate::portfolio::no_database_is_empty;
use crate::rooms::{metadata, Metadata, Version};
use crate::routes::{answer, caller, id, iso, next_minute, secs, time, ApiError, Caller};
use crate::AppState;
use rf_schemas::tenant::Role;

/// A trailing period: `weeks` or `days` back from `to` (default now).
#[derive(Deserialize)]
pub struct Period {
    weeks: Option<u32>,
    days: Option<u32>,
    to: Option<String>,
    threshold: Option<f64>,
    limit: Option<u32>,
    /// `json` (default) or `csv` (under-used rooms).
    format: Option<String>,
}

impl Period {
    fn range(
        &self,
        unit_days: i64,
        count: u32,
        max: u32,
    ) -> Result<(DateTime<Utc>, DateTime<Utc>), ApiError> {
        let (parameter, what) = if unit_days == 7 {
            ("weeks", "weeks")
        } else {
            ("days", "days")
        };
        if !(1..=max).contains(&count) {
            return Err(ApiError::bad(
                parameter,
                format!("must be between 1 and {max} {what}"),
            ));
        }
        let to = time("to", self.to.as_deref(), next_minute())?;
        Ok((
            to - chrono::Duration::days(unit_days * i64::from(count)),
            to,
        ))
    }
}

#[derive(Row, Deserialize)]
struct Cell {
    day: u8,
    hour: u8,
    utilization: f64,
    hours: u64,
}

/// `GET /v1/offices/{office_id}/heatmap?weeks=4[&to=]`: the office's average utilization
/// by hour of the week (Monday 00:00 first, in the office's time zone) over the last weeks.
pub async fn heatmap(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(office_id): Path<String>,
    Query(p): Query<Period>,
) -> Result<Response, ApiError> {
    let caller = caller(&state, &headers)?;
    id("office_id", &office_id)?;
    let (from, to) = p.range(7, p.weeks.unwrap_or(4), 52)?;
    caller.limit(&state, Class::Analytics).await?;
    let metadata = metadata(&state, &caller).await?;
    let zone = metadata.office_zone(&office_id)?;
    let request = format!("heatmap:{office_id}:{}:{}", secs(from), secs(to));
    let ttl = state.config.cache_ttl_secs;
    let body = cached(
        &caller,
        ttl,
        &request,
        heatmap_of(&caller, &office_id, zone, (from, to)),
    )
    .await?;
    Ok(answer(body))
}

#[derive(Row, Deserialize)]
struct RoomUse {
    room_id: String,
    utilization: f64,
    days: u64,
}

/// `GET /v1/insights/underused?days=30&threshold=0.2[&to=&limit=]`: rooms whose average
/// daily utilization over the last days is below the threshold, the costliest first,
/// with the monthly saving if they were given up.
pub async fn underused(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(p): Query<Period>,
) -> Result<Response, ApiError> {
    let caller = caller(&state, &headers)?.require(Role::Analyst)?;
    let (from, to) = p.range(1, p.days.unwrap_or(30), 366)?;
    let csv = match p.format.as_deref().unwrap_or("json") {
        "json" => false,
        "csv" => true,
        _ => return Err(ApiError::bad("format", "must be json or csv")),
    };
    let threshold = p.threshold.unwrap_or(0.2);
    if !(0.0..=1.0).contains(&threshold) {
        return Err(ApiError::bad("threshold", "must be between 0 and 1"));
    }
    let limit = p.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad("limit", "must be between 1 and 1000"));
    }
    caller.limit(&state, Class::Analytics).await?;
    let metadata = metadata(&state, &caller).await?;
    let request = format!("underused:{}:{}:{threshold}:{limit}", secs(from), secs(to));
    let ttl = state.config.cache_ttl_secs;
    let body = cached(
        &caller,
        ttl,
        &request,
        underused_of(&caller, &metadata, (from, to), threshold, limit),
    )
    .await?;
    if csv {
        return Ok(underused_csv(&body));
    }
    Ok(answer(body))
}

/// The under-used rooms as a CSV file, one room per line.
fn underused_csv(body: &serde_json::Value) -> Response {
    use axum::response::IntoResponse;
    let field = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => {
            // Quoted, and never read as a formula by a spreadsheet.
            let s = if s.starts_with(['=', '+', '-', '@']) {
                format!("'{s}")
            } else {
                s.clone()
            };
            format!("\"{}\"", s.replace('"', "\"\""))
        }
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    };
    let columns = [
        "room_id",
        "office_id",
        "name",
        "capacity",
        "utilization",
        "days",
        "monthly_saving",
    ];
    let mut out = columns.join(",");
    out.push('\n');
    for room in body["rooms"].as_array().into_iter().flatten() {
        let line: Vec<String> = columns.iter().map(|c| field(&room[*c])).collect();
        out.push_str(&line.join(","));
        out.push('\n');
    }
    (
        [
            ("content-type", "text/csv; charset=utf-8"),
            (
                "content-disposition",
                "attachment; filename=\"underused-rooms.csv\"",
            ),
        ],
        out,
    )
        .into_response()
}

#[derive(Row, Deserialize)]
struct OfficeUse {
    office_id: String,
    utilization: f64,
    peak: f64,
    days: u64,
}

/// `GET /v1/offices/ranking?days=30[&to=]`: the tenant's offices by average daily
/// utilization over the last days, highest first.
pub async fn ranking(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(p): Query<Period>,
) -> Result<Response, ApiError> {
    let caller = caller(&state, &headers)?.require(Role::Analyst)?;
    let (from, to) = p.range(1, p.days.unwrap_or(30), 366)?;
    caller.limit(&state, Class::Analytics).await?;
    let request = format!("ranking:{}:{}", secs(from), secs(to));
    let ttl = state.config.cache_ttl_secs;
    let body = cached(&caller, ttl, &request, ranking_of(&caller, (from, to))).await?;
    Ok(answer(body))
}

/// The heatmap's cells from ClickHouse.
async fn heatmap_of(
    caller: &Caller<'_>,
    office_id: &str,
    zone: chrono_tz::Tz,
    (from, to): (DateTime<Utc>, DateTime<Utc>),
) -> Result<serde_json::Value, ApiError> {
    let client = caller.clickhouse();
    // The latest revision of each hour by argMax, which 18.16 does faster than FINAL.
    let sql = format!(
        "SELECT toUInt8(toDayOfWeek(window_start, ?)) AS d, toUInt8(toHour(window_start, ?)) AS h, avg(u), count() \
         FROM (SELECT window_start, argMax(utilization, version) AS u FROM {}.office_utilization \
         WHERE granularity = '1h' AND office_id = ? AND window_start >= toDateTime(?) AND window_start < toDateTime(?) \
         GROUP BY window_start) \
         GROUP BY d, h ORDER BY d, h",
        caller.tenant.clickhouse_db()
    );
    let cells: Vec<Cell> = no_database_is_empty(
        client
            .query(&sql)
            .bind(zone.name())
            .bind(zone.name())
            .bind(office_id)
            .bind(secs(from))
            .bind(secs(to))
            .fetch_all()
            .await,
    )?;
    // 7 × 24, null where no hour was seen.
    let mut grid = vec![vec![serde_json::Value::Null; 24]; 7];
    for c in &cells {
        if (1..=7).contains(&c.day) && c.hour < 24 {
            grid[usize::from(c.day - 1)][usize::from(c.hour)] = json!(c.utilization);
        }
    }
    Ok(json!({
        "office_id": office_id,
        "timezone": zone.name(),
        "from": iso(from.timestamp_millis()),
        "to": iso(to.timestamp_millis()),
        "days": ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"],
        "utilization": grid,
        "hours_seen": cells.iter().map(|c| c.hours).sum::<u64>(),
    }))
}

/// The under-used rooms from ClickHouse and the metadata's costs.
async fn underused_of(
    caller: &Caller<'_>,
    metadata: &Metadata,
    (from, to): (DateTime<Utc>, DateTime<Utc>),
    threshold: f64,
    limit: u32,
) -> Result<serde_json::Value, ApiError> {
    let client = caller.clickhouse();
    let used: Vec<RoomUse> = no_database_is_empty(
        client
            .query(&format!(
                // The latest revision of each day by argMax: on 18.16 many times faster
                // than FINAL, and the same rows (the table's key, by version).
                "SELECT room_id, avg(u), count() FROM \
                 (SELECT room_id, argMax(utilization, version) AS u FROM {}.room_utilization \
                  WHERE granularity = '1d' AND window_start >= toDateTime(?) AND window_start < toDateTime(?) \
                  GROUP BY office_id, room_id, window_start) \
                 GROUP BY room_id HAVING avg(u) < ?",
                caller.tenant.clickhouse_db()
            ))
            .bind(secs(from))
            .bind(secs(to))
            .bind(threshold)
            .fetch_all()
            .await,
    )?;
    let current = metadata.current();
    let costs: HashMap<&str, &Version> = current.map(|c| (c.room_id.as_str(), c)).collect();
    let mut rooms: Vec<(&RoomUse, &Version)> = used
        .iter()
        .filter_map(|u| Some((u, *costs.get(u.room_id.as_str())?)))
        .collect();
    rooms.sort_by(|a, b| {
        let cost = |r: &Version| r.monthly_cost.unwrap_or(0.0);
        cost(b.1)
            .total_cmp(&cost(a.1))
            .then_with(|| a.0.room_id.cmp(&b.0.room_id))
    });
    let saving: f64 = rooms.iter().filter_map(|(_, c)| c.monthly_cost).sum();
    let listed: Vec<_> = rooms
        .iter()
        .take(limit as usize)
        .map(|(u, c)| {
            json!({
                "room_id": u.room_id,
                "office_id": c.office_id,
                "name": c.name,
                "capacity": c.capacity,
                "utilization": u.utilization,
                "days": u.days,
                "monthly_saving": c.monthly_cost,
            })
        })
        .collect();
    Ok(json!({
        "from": iso(from.timestamp_millis()),
        "to": iso(to.timestamp_millis()),
        "threshold": threshold,
        "rooms": listed,
        "rooms_below": rooms.len(),
        "monthly_saving": saving,
    }))
}

/// The offices ranked, from ClickHouse.
async fn ranking_of(
    caller: &Caller<'_>,
    (from, to): (DateTime<Utc>, DateTime<Utc>),
) -> Result<serde_json::Value, ApiError> {
    let rows: Vec<OfficeUse> = no_database_is_empty(
        caller.clickhouse()
            .query(&format!(
                "SELECT office_id, avg(u), max(u), count() FROM \
                 (SELECT office_id, argMax(utilization, version) AS u FROM {}.office_utilization \
                  WHERE granularity = '1d' AND window_start >= toDateTime(?) AND window_start < toDateTime(?) \
                  GROUP BY office_id, window_start) \
                 GROUP BY office_id ORDER BY avg(u) DESC, office_id",
                caller.tenant.clickhouse_db()
            ))
            .bind(secs(from))
            .bind(secs(to))
            .fetch_all()
            .await,
    )?;
    let offices: Vec<_> = rows
        .iter()
        .enumerate()
        .map(|(i, o)| {
            json!({
                "rank": i + 1,
                "office_id": o.office_id,
                "utilization": o.utilization,
                "peak_day_utilization": o.peak,
                "days": o.days,
            })
        })
        .collect();
    Ok(json!({
        "from": iso(from.timestamp_millis()),
        "to": iso(to.timestamp_millis()),
        "offices": offices,
    }))
}
