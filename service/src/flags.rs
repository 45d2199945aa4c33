//! `GET /v1/insights/forecast-flags`: the offices and floors forecast to pass a share of
//! their seats at their peak (or to stay under it) within the forecast horizon, each
//! with its forecast and 95% interval.
//!
//! An office's flag reads its daily peak forecasts (peak people of its local day). A
//! floor has no forecast of its own: its rooms' hourly forecasts (mean people) are summed
//! per hour, and the busiest hour of each local day is the floor's peak; the interval
//! sums the rooms' bounds, wider than the floor's own would be (the rooms' errors are not
//! all alike).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use chrono::{DateTime, NaiveDate, Utc};
use clickhouse::Row;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use rf_schemas::tenant::Role;

use crate::cache::cached;
use crate::insights::{Period, RoomFilter};
use crate::limits::Class;
use crate::portfolio::no_database_is_empty;
use crate::rooms::metadata;
use crate::routes::{answer, caller, secs, ApiError, Caller};
use crate::AppState;

/// Offices whose floors are summed up, at most: each floor reads its rooms' hours.
const FLOOR_OFFICES: usize = 20;

#[derive(Row, Deserialize, Serialize, Clone)]
struct Point {
    office_id: String,
    entity_id: String,
    start: u32,
    expected: f64,
    low: f64,
    high: f64,
}

/// A forecast day of an office or floor: people, and its seats.
#[derive(Clone, Copy, Debug, Default)]
struct Day {
    expected: f64,
    low: f64,
    high: f64,
}

/// `GET /v1/insights/forecast-flags?threshold=0.8[&direction=over|under&days=14]` with
/// the filters `region`, `country`, `office_id`.
pub async fn flags(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(p): Query<Period>,
) -> Result<Response, ApiError> {
    let caller = caller(&state, &headers)?;
    Ok(answer(flags_for(&state, &caller, &p).await?))
}

/// The flags, for [`flags`].
pub(crate) async fn flags_for(
    state: &AppState,
    caller: &Caller<'_>,
    p: &Period,
) -> Result<Value, ApiError> {
    caller.allowed(Role::Analyst)?;
    let threshold = p.threshold.unwrap_or(0.8);
    if !(0.05..=2.0).contains(&threshold) {
        return Err(ApiError::bad(
            "threshold",
            "must be a share of seats between 0.05 and 2",
        ));
    }
    let over = match p.direction.as_deref().unwrap_or("over") {
        "over" => true,
        "under" => false,
        _ => return Err(ApiError::bad("direction", "must be over or under")),
    };
    let days = p.days.unwrap_or(14);
    if !(1..=91).contains(&days) {
        return Err(ApiError::bad("days", "must be between 1 and 91"));
    }
    if p.floor.is_some() || p.kind.is_some() {
        let parameter = if p.floor.is_some() { "floor" } else { "kind" };
        return Err(ApiError::bad(
            parameter,
            "flags are per office and floor; filter by region, country or office_id",
        ));
    }
    caller.limit(state, Class::Analytics).await?;
    let metadata = metadata(state, caller).await?;
    let filter = RoomFilter::new(p, &metadata)?;
    let mut offices: Vec<String> = metadata
        .current()
        .filter(|v| filter.admits(v))
        .map(|v| v.office_id.clone())
        .collect();
    offices.dedup();
    let now = Utc::now();
    let until = now + chrono::Duration::days(i64::from(days));
    // The answer moves with the forecasts; cached for the hour they are issued in.
    let hour = secs(now) / 3600;
    let ttl = state.config.cache_ttl_secs;
    // No office in the slice: nothing to read (nor an empty list for ClickHouse to type).
    let office_points = match offices.is_empty() {
        true => json!([]),
        false => {
            let request = format!("flags:offices:{hour}:{days}");
            let horizon = (now, until);
            cached(
                caller,
                ttl,
                &request,
                read(caller, "1d", "office", None, horizon),
            )
            .await?
        }
    };
    let with_floors = offices.len() <= FLOOR_OFFICES;
    let room_points = match with_floors && !offices.is_empty() {
        true => {
            let request = format!("flags:floors:{hour}:{}:{offices:?}", days.min(14));
            let horizon = (now, until.min(now + chrono::Duration::days(14)));
            cached(
                caller,
                ttl,
                &request,
                read(caller, "1h", "room", Some(&offices), horizon),
            )
            .await?
        }
        false => json!([]),
    };
    let parse = |v: Value| -> Result<Vec<Point>, ApiError> {
        serde_json::from_value(v)
            .map_err(|_| ApiError::unavailable("a cached answer is unreadable; retry"))
    };
    let (office_points, room_points) = (parse(office_points)?, parse(room_points)?);
    let mut flagged = Vec::new();
    for office in &offices {
        let Ok(zone) = metadata.office_zone(office) else {
            continue;
        };
        let seats = metadata.office_capacity(office) as f64;
        let days: BTreeMap<NaiveDate, Day> = office_points
            .iter()
            .filter(|pt| pt.entity_id == *office)
            .map(|pt| {
                let day = Day {
                    expected: pt.expected,
                    low: pt.low,
                    high: pt.high,
                };
                (local_date(pt.start, zone), day)
            })
            .collect();
        let name = metadata
            .office(office)
            .first()
            .map(|v| v.office_name.clone())
            .unwrap_or_default();
        if let Some(flag) = flag(&days, seats, threshold, over) {
            flagged.push(json!({ "kind": "office", "office_id": office, "name": name, "seats": seats, "flag": flag }));
        }
        if !with_floors {
            continue;
        }
        // Per floor, the sum of its rooms per hour, then each local day's busiest hour.
        let mut floors: BTreeMap<i32, (f64, BTreeMap<u32, Day>)> = BTreeMap::new();
        for v in metadata.office(office) {
            floors.entry(v.floor).or_default().0 += f64::from(v.capacity);
        }
        let floor_of: std::collections::HashMap<&str, i32> = metadata
            .office(office)
            .iter()
            .map(|v| (v.room_id.as_str(), v.floor))
            .collect();
        for pt in room_points.iter().filter(|pt| pt.office_id == *office) {
            let Some(floor) = floor_of.get(pt.entity_id.as_str()) else {
                continue;
            };
            let hour = floors
                .entry(*floor)
                .or_default()
                .1
                .entry(pt.start)
                .or_default();
            hour.expected += pt.expected;
            hour.low += pt.low;
            hour.high += pt.high;
        }
        for (floor, (seats, hours)) in &floors {
            let mut days: BTreeMap<NaiveDate, Day> = BTreeMap::new();
            for (start, h) in hours {
                let day = days.entry(local_date(*start, zone)).or_default();
                if h.expected >= day.expected {
                    *day = *h;
                }
            }
            if let Some(flag) = flag(&days, *seats, threshold, over) {
                flagged.push(json!({
                    "kind": "floor",
                    "office_id": office,
                    "floor": floor,
                    "name": format!("{name}, floor {floor}"),
                    "seats": seats,
                    "flag": flag,
                }));
            }
        }
    }
    Ok(json!({
        "threshold": threshold,
        "direction": if over { "over" } else { "under" },
        "days": days,
        "floors": if with_floors { "included" } else { "omitted: more than 20 offices; filter by region, country or office_id" },
        "flags": flagged,
    }))
}

/// The local date of a window starting at `start` (seconds) in `zone`.
fn local_date(start: u32, zone: chrono_tz::Tz) -> NaiveDate {
    DateTime::from_timestamp(i64::from(start), 0)
        .unwrap_or_default()
        .with_timezone(&zone)
        .date_naive()
}

/// The flag of a forecast over `days` against `threshold` of `seats`: over, the days
/// whose expected peak passes it (`likely` when even the low bound does); under, the
/// busiest day when every day stays under it. `None`: no flag, or no forecast.
fn flag(days: &BTreeMap<NaiveDate, Day>, seats: f64, threshold: f64, over: bool) -> Option<Value> {
    if days.is_empty() || seats <= 0.0 {
        return None;
    }
    let share = |people: f64| people / seats;
    let point = |(date, d): (&NaiveDate, &Day)| {
        json!({
            "date": date.to_string(),
            "expected": d.expected,
            "low": d.low,
            "high": d.high,
            "share": share(d.expected),
            "interval": [share(d.low), share(d.high)],
            "likely": share(d.low) >= threshold,
        })
    };
    if over {
        let passing: Vec<Value> = days
            .iter()
            .filter(|(_, d)| share(d.expected) >= threshold)
            .map(point)
            .collect();
        return (!passing.is_empty()).then(|| json!({ "passes_on": passing }));
    }
    let busiest = days
        .iter()
        .max_by(|a, b| a.1.expected.total_cmp(&b.1.expected))?;
    (share(busiest.1.expected) < threshold)
        .then(|| json!({ "stays_under": { "days": days.len(), "busiest": point(busiest) } }))
}

/// The latest forecast points of `kind` at `granularity` in `(from, until)`, of the
/// offices listed (all without a list), as JSON (cached as such).
async fn read(
    caller: &Caller<'_>,
    granularity: &str,
    kind: &str,
    offices: Option<&[String]>,
    (from, until): (DateTime<Utc>, DateTime<Utc>),
) -> Result<Value, ApiError> {
    let sql = format!(
        "SELECT office_id, entity_id, toUInt32(window_start), argMax(expected, version), \
         argMax(low, version), argMax(high, version) FROM {}.forecasts \
         WHERE granularity = ? AND entity_kind = ? {} \
         AND window_end > toDateTime(?) AND window_start < toDateTime(?) \
         GROUP BY office_id, entity_id, window_start",
        caller.tenant.clickhouse_db(),
        if offices.is_some() {
            "AND has(?, office_id)"
        } else {
            ""
        },
    );
    let mut query = caller.clickhouse().query(&sql).bind(granularity).bind(kind);
    if let Some(offices) = offices {
        query = query.bind(offices);
    }
    let points: Vec<Point> =
        no_database_is_empty(query.bind(secs(from)).bind(secs(until)).fetch_all().await)?;
    Ok(json!(points))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn days(peaks: &[(f64, f64, f64)]) -> BTreeMap<NaiveDate, Day> {
        let first = NaiveDate::from_ymd_opt(2026, 12, 7).unwrap();
        peaks
            .iter()
            .enumerate()
            .map(|(i, &(expected, low, high))| {
                (
                    first + chrono::Days::new(i as u64),
                    Day {
                        expected,
                        low,
                        high,
                    },
                )
            })
            .collect()
    }

    #[test]
    fn flags_name_the_days_over_or_the_busiest_under() {
        let week = days(&[(50.0, 40.0, 60.0), (85.0, 82.0, 95.0), (81.0, 70.0, 90.0)]);
        let over = flag(&week, 100.0, 0.8, true).unwrap();
        let passing = over["passes_on"].as_array().unwrap();
        assert_eq!(passing.len(), 2);
        assert_eq!(passing[0]["date"], "2026-12-08");
        assert_eq!(passing[0]["likely"], true, "even the low bound passes");
        assert_eq!(passing[1]["likely"], false);
        assert_eq!(passing[1]["interval"], json!([0.7, 0.9]));
        assert!(flag(&week, 100.0, 0.9, true).is_none());
        let under = flag(&week, 100.0, 0.9, false).unwrap();
        assert_eq!(under["stays_under"]["busiest"]["date"], "2026-12-08");
        assert_eq!(under["stays_under"]["days"], 3);
        assert!(flag(&week, 100.0, 0.8, false).is_none(), "one day passes");
        assert!(flag(&BTreeMap::new(), 100.0, 0.8, true).is_none());
    }
}
