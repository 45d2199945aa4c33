//! Bookings against occupancy: the rooms whose bookings sit empty (ghost bookings and
//! no-shows), and an office's booked-versus-used minutes over time.

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
use crate::insights::{local_dates, BindDays, Days};
use crate::limits::Class;
use crate::portfolio::no_database_is_empty;
use crate::rooms::{metadata, Version};
use crate::routes::{answer, caller, id, iso, next_minute, secs, time, ApiError, Caller};
use crate::AppState;
use rf_schemas::tenant::Role;

/// The query of both endpoints.
#[derive(Deserialize, Default)]
pub struct Params {
    days: Option<u32>,
    to: Option<String>,
    /// The ghost ranking only: whole local days from this date (each office's zone)…
    from_date: Option<String>,
    /// …to this one (exclusive).
    to_date: Option<String>,
    office_id: Option<String>,
    limit: Option<u32>,
    granularity: Option<String>,
}

fn period(p: &Params) -> Result<(DateTime<Utc>, DateTime<Utc>), ApiError> {
    let days = p.days.unwrap_or(30);
    if !(1..=366).contains(&days) {
        return Err(ApiError::bad("days", "must be between 1 and 366 days"));
    }
    let to = time("to", p.to.as_deref(), next_minute())?;
    Ok((to - chrono::Duration::days(i64::from(days)), to))
}

#[derive(Row, Deserialize)]
struct RoomBookings {
    office_id: String,
    room_id: String,
    booked: u64,
    booked_used: u64,
    ghost: u64,
    unreported: u64,
    meetings: u64,
    no_shows: u64,
}

/// `GET /v1/insights/ghost-bookings?days=30[&to=][&office_id=][&limit=20]`: booked rooms
/// by the share of their booked minutes (those a sensor reported) that sat empty, most
/// first, with their no-show rate. Analysts and admins.
pub async fn ghosts(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(p): Query<Params>,
) -> Result<Response, ApiError> {
    let caller = caller(&state, &headers)?;
    Ok(answer(ghosts_for(&state, &caller, &p).await?))
}

/// The ghost ranking, for [`ghosts`] and questions.
pub(crate) async fn ghosts_for(
    state: &AppState,
    caller: &Caller<'_>,
    p: &Params,
) -> Result<serde_json::Value, ApiError> {
    caller.allowed(Role::Analyst)?;
    let days = match local_dates(p.from_date.as_deref(), p.to_date.as_deref(), 366)? {
        Some(_) if p.days.is_some() || p.to.is_some() => {
            return Err(ApiError::bad(
                "from_date",
                "give either from_date and to_date, or days and to",
            ));
        }
        Some(days) => days,
        None => {
            let (from, to) = period(p)?;
            Days::Instants(from, to)
        }
    };
    let limit = p.limit.unwrap_or(20);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad("limit", "must be between 1 and 1000"));
    }
    let office = p.office_id.as_deref();
    if let Some(o) = office {
        id("office_id", o)?;
    }
    caller.limit(state, Class::Analytics).await?;
    let metadata = metadata(state, caller).await?;
    let request = format!("ghosts:{}:{}:{limit}", days.key(), office.unwrap_or(""));
    let ttl = state.config.cache_ttl_secs;
    let rooms: HashMap<&str, &Version> = metadata
        .current()
        .map(|v| (v.room_id.as_str(), v))
        .collect();
    cached(caller, ttl, &request, async {
        let rows = ghosts_of(caller, days, office).await?;
        let mut listed: Vec<_> = rows
            .iter()
            .filter(|r| r.booked > r.unreported)
            .map(|r| {
                let seen = (r.booked - r.unreported) as f64;
                let share = r.ghost as f64 / seen;
                let name = rooms.get(r.room_id.as_str()).map_or(r.room_id.as_str(), |v| v.name.as_str());
                let no_show_rate = (r.meetings > 0).then(|| r.no_shows as f64 / r.meetings as f64);
                (share, json!({
                    "room_id": r.room_id,
                    "office_id": r.office_id,
                    "name": name,
                    "booked_minutes": r.booked,
                    "booked_used_minutes": r.booked_used,
                    "ghost_minutes": r.ghost,
                    "booked_unreported_minutes": r.unreported,
                    "ghost_share": share,
                    "meetings": r.meetings,
                    "no_shows": r.no_shows,
                    "no_show_rate": no_show_rate,
                    "summary": format!("{name} was booked but empty {:.0}% of the time", share * 100.0),
                }))
            })
            .collect();
        listed.sort_by(|a, b| b.0.total_cmp(&a.0));
        let total = listed.len();
        let mut body = json!({
            "rooms": listed.into_iter().take(limit as usize).map(|(_, r)| r).collect::<Vec<_>>(),
            "rooms_booked": total,
        });
        days.fields(&mut body);
        Ok(body)
    })
    .await
}

async fn ghosts_of(
    caller: &Caller<'_>,
    days: Days,
    office: Option<&str>,
) -> Result<Vec<RoomBookings>, ApiError> {
    // Each day's latest revision (argMax by version), summed per room.
    no_database_is_empty(
        caller
            .clickhouse()
            .query(&format!(
                "SELECT office_id, room_id, sum(b), sum(bu), sum(g), sum(un), sum(m), sum(n) FROM \
                 (SELECT office_id, room_id, argMax(booked_minutes, version) AS b, \
                         argMax(booked_used_minutes, version) AS bu, argMax(ghost_minutes, version) AS g, \
                         argMax(booked_unreported_minutes, version) AS un, argMax(meetings, version) AS m, \
                         argMax(no_shows, version) AS n \
                  FROM {}.booking_usage \
                  WHERE granularity = '1d' AND room_id != '' AND {} AND (? = '' OR office_id = ?) \
                  GROUP BY office_id, room_id, window_start) \
                 GROUP BY office_id, room_id",
                caller.tenant.clickhouse_db(),
                days.sql(),
            ))
            .bind_days(days)
            .bind(office.unwrap_or(""))
            .bind(office.unwrap_or(""))
            .fetch_all()
            .await,
    )
}

#[derive(Row, Deserialize)]
struct Window {
    start: u32,
    booked: u32,
    booked_used: u32,
    ghost: u32,
    unreported: u32,
    unbooked_used: u32,
    meetings: u32,
    no_shows: u32,
}

/// `GET /v1/offices/{office_id}/bookings?days=7[&to=][&granularity=1h]`: the office's
/// booked rooms' minutes per window: booked, booked and used, ghost, unreported, used
/// without a booking; meetings and no-shows. Every role.
pub async fn office(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(office_id): Path<String>,
    Query(p): Query<Params>,
) -> Result<Response, ApiError> {
    let caller = caller(&state, &headers)?;
    id("office_id", &office_id)?;
    let (from, to) = period(&p)?;
    let granularity = p.granularity.as_deref().unwrap_or("1h");
    if rf_schemas::Granularity::from_label(granularity).is_none() {
        return Err(ApiError::bad("granularity", "must be 15m, 1h or 1d"));
    }
    caller.limit(&state, Class::Analytics).await?;
    let request = format!(
        "bookings:{office_id}:{granularity}:{}:{}",
        secs(from),
        secs(to)
    );
    let ttl = state.config.cache_ttl_secs;
    let body = cached(&caller, ttl, &request, async {
        let rows: Vec<Window> = no_database_is_empty(
            caller
                .clickhouse()
                .query(&format!(
                    "SELECT toUInt32(window_start), argMax(booked_minutes, version), \
                            argMax(booked_used_minutes, version), argMax(ghost_minutes, version), \
                            argMax(booked_unreported_minutes, version), argMax(unbooked_used_minutes, version), \
                            argMax(meetings, version), argMax(no_shows, version) \
                     FROM {}.booking_usage \
                     WHERE granularity = ? AND office_id = ? AND room_id = '' \
                       AND window_start >= toDateTime(?) AND window_start < toDateTime(?) \
                     GROUP BY window_start ORDER BY window_start",
                    caller.tenant.clickhouse_db()
                ))
                .bind(granularity)
                .bind(&office_id)
                .bind(secs(from))
                .bind(secs(to))
                .fetch_all()
                .await,
        )?;
        let windows: Vec<_> = rows
            .iter()
            .map(|w| {
                json!({
                    "window_start": iso(i64::from(w.start) * 1000),
                    "booked_minutes": w.booked,
                    "booked_used_minutes": w.booked_used,
                    "ghost_minutes": w.ghost,
                    "booked_unreported_minutes": w.unreported,
                    "unbooked_used_minutes": w.unbooked_used,
                    "meetings": w.meetings,
                    "no_shows": w.no_shows,
                })
            })
            .collect();
        Ok(json!({
            "office_id": office_id,
            "granularity": granularity,
            "from": iso(from.timestamp_millis()),
            "to": iso(to.timestamp_millis()),
            "windows": windows,
        }))
    })
    .await?;
    Ok(answer(body))
}
