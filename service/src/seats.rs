//! Seats against headcount: how many of an office's people come on its busiest day, and
//! how many seats that leaves unused, with the evidence.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use chrono::{DateTime, Utc};
use clickhouse::Row;
use serde::Deserialize;
use serde_json::json;

use crate::cache::cached;
use crate::limits::Class;
use crate::portfolio::no_database_is_empty;
use crate::rooms::metadata;
use crate::routes::{answer, caller, id, iso, next_minute, secs, time, ApiError, Caller};
use crate::AppState;
use rf_schemas::tenant::Role;

/// The query.
#[derive(Deserialize, Default)]
pub struct Params {
    days: Option<u32>,
    to: Option<String>,
    office_id: Option<String>,
    /// Seats kept above the busiest day's peak, as a share of it (default 0.1).
    buffer: Option<f64>,
}

#[derive(Row, Deserialize)]
struct HeadRow {
    office_id: String,
    heads: u64,
    day: u16,
}

#[derive(Row, Deserialize)]
struct PeakRow {
    office_id: String,
    start: u32,
    peak: f64,
    capacity: u32,
}

/// `GET /v1/insights/seats?days=30[&to=&office_id=&buffer=0.1]`: per office, its
/// latest headcount, the peak and average share of it present on a final day (the
/// day's peak minute), seats per head,
/// and how many seats could go with the busiest day's peak plus the buffer kept.
/// Analysts and admins.
pub async fn seats(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(p): Query<Params>,
) -> Result<Response, ApiError> {
    let caller = caller(&state, &headers)?;
    Ok(answer(seats_for(&state, &caller, &p).await?))
}

/// Seats against headcount, for [`seats`] and questions.
pub(crate) async fn seats_for(
    state: &AppState,
    caller: &Caller<'_>,
    p: &Params,
) -> Result<serde_json::Value, ApiError> {
    caller.allowed(Role::Analyst)?;
    let days = p.days.unwrap_or(30);
    if !(1..=366).contains(&days) {
        return Err(ApiError::bad("days", "must be between 1 and 366 days"));
    }
    let buffer = p.buffer.unwrap_or(0.1);
    if !(0.0..=1.0).contains(&buffer) {
        return Err(ApiError::bad("buffer", "must be between 0 and 1"));
    }
    if let Some(o) = &p.office_id {
        id("office_id", o)?;
    }
    let to = time("to", p.to.as_deref(), next_minute())?;
    let from = to - chrono::Duration::days(i64::from(days));
    caller.limit(state, Class::Analytics).await?;
    let office = p.office_id.clone().unwrap_or_default();
    let metadata = metadata(state, caller).await?;
    let names: BTreeMap<&str, &str> = metadata
        .current()
        .map(|v| (v.office_id.as_str(), v.office_name.as_str()))
        .collect();
    let request = format!("seats:{}:{}:{office}:{buffer}", secs(from), secs(to));
    let ttl = state.config.cache_ttl_secs;
    let seats = seats_of(caller, (from, to), &office, buffer, &names);
    cached(caller, ttl, &request, seats).await
}

async fn seats_of(
    caller: &Caller<'_>,
    (from, to): (DateTime<Utc>, DateTime<Utc>),
    office: &str,
    buffer: f64,
    names: &BTreeMap<&str, &str>,
) -> Result<serde_json::Value, ApiError> {
    let db = caller.tenant.clickhouse_db();
    // Each office's latest day of headcount up to `to`: the latest import of each
    // (day, office, department), summed over departments.
    let heads: Vec<HeadRow> = no_database_is_empty(
        caller
            .clickhouse()
            .query(&format!(
                "SELECT office_id, argMax(h, day), toUInt16(max(day)) FROM \
                 (SELECT day, office_id, sum(n) AS h FROM \
                  (SELECT day, office_id, department, argMax(heads, version) AS n FROM {db}.headcount \
                   WHERE day <= toDate(toDateTime(?)) AND (? = '' OR office_id = ?) \
                   GROUP BY day, office_id, department) \
                  GROUP BY day, office_id) \
                 GROUP BY office_id ORDER BY office_id"
            ))
            .bind(secs(to))
            .bind(office)
            .bind(office)
            .fetch_all()
            .await,
    )?;
    let peaks: Vec<PeakRow> = no_database_is_empty(
        caller
            .clickhouse()
            .query(&format!(
                "SELECT office_id, toUInt32(window_start), argMax(peak_people, version), \
                        argMax(capacity, version) FROM {db}.office_utilization \
                 WHERE granularity = '1d' AND window_start >= toDateTime(?) AND window_start < toDateTime(?) \
                   AND (? = '' OR office_id = ?) \
                 GROUP BY office_id, window_start HAVING argMax(final, version) = 1 \
                 ORDER BY office_id, window_start"
            ))
            .bind(secs(from))
            .bind(secs(to))
            .bind(office)
            .bind(office)
            .fetch_all()
            .await,
    )?;
    let mut days: BTreeMap<&str, Vec<&PeakRow>> = BTreeMap::new();
    for p in &peaks {
        days.entry(p.office_id.as_str()).or_default().push(p);
    }
    let offices: Vec<_> = heads
        .iter()
        .filter(|h| h.heads > 0)
        .map(|h| {
            let name = names.get(h.office_id.as_str()).copied().unwrap_or(&h.office_id);
            let seen = days.get(h.office_id.as_str()).map_or(&[][..], Vec::as_slice);
            let busiest = seen.iter().max_by(|a, b| a.peak.total_cmp(&b.peak));
            let heads = h.heads as f64;
            // The office's seats: its largest capacity on a final day of the period.
            let capacity = seen.iter().map(|p| p.capacity).max().unwrap_or(0);
            let headcount_day = chrono::NaiveDate::default() + chrono::Days::new(u64::from(h.day));
            let Some(busiest) = busiest else {
                return json!({
                    "office_id": h.office_id,
                    "headcount": h.heads,
                    "headcount_day": headcount_day.to_string(),
                    "days": 0,
                    "recommendation": format!("{name} has {} people but no day of occupancy in the period yet", h.heads),
                });
            };
            let peak = busiest.peak.round();
            let average = seen.iter().map(|p| p.peak).sum::<f64>() / seen.len() as f64;
            let needed = (peak * (1.0 + buffer)).ceil();
            let spare = (f64::from(capacity) - needed).max(0.0);
            let share = if capacity > 0 { spare / f64::from(capacity) } else { 0.0 };
            let peak_day = iso(i64::from(busiest.start) * 1000);
            let recommendation = if spare > 0.0 {
                format!(
                    "{name} has {} people and {} seats but uses at most {} on its busiest day ({}): {:.0}% of seats could go, keeping {:.0}% above that peak",
                    h.heads, capacity, peak, &peak_day[..10], share * 100.0, buffer * 100.0
                )
            } else {
                format!(
                    "{name} has {} people and uses up to {} of its {} seats: keep them",
                    h.heads, peak, capacity
                )
            };
            json!({
                "office_id": h.office_id,
                "headcount": h.heads,
                "headcount_day": headcount_day.to_string(),
                "seats": capacity,
                "seats_per_head": f64::from(capacity) / heads,
                "peak_present": peak,
                "peak_day": peak_day,
                "peak_share_of_headcount": peak / heads,
                "average_daily_peak": average,
                "average_share_of_headcount": average / heads,
                "days": seen.len(),
                "seats_needed": needed,
                "seats_releasable": spare,
                "releasable_share": share,
                "recommendation": recommendation,
            })
        })
        .collect();
    Ok(json!({
        "from": iso(from.timestamp_millis()),
        "to": iso(to.timestamp_millis()),
        "buffer": buffer,
        "offices": offices,
    }))
}
