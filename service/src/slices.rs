//! Slices of the portfolio from the daily table: the rooms of a region, country, office,
//! floor or kind (by their latest metadata), day by day (`GET
//! /v1/portfolio/days`) or office by office (the ranking of one kind of room).

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use chrono::NaiveDate;
use clickhouse::Row;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use rf_schemas::tenant::Role;

use crate::cache::cached;
use crate::insights::{local_dates, Days, Period};
use crate::limits::Class;
use crate::portfolio::no_database_is_empty;
use crate::routes::{answer, caller, id, ApiError, Caller};
use crate::AppState;

/// The slice's filters, checked: SQL conditions on the joined rooms' latest metadata
/// (`region`, `country`, `office`, `floor`, `kind`) and their bound values, in order.
pub(crate) struct Slice {
    conditions: Vec<&'static str>,
    values: Vec<String>,
    key: String,
}

impl Slice {
    pub(crate) fn new(p: &Period) -> Result<Self, ApiError> {
        let mut slice = Slice {
            conditions: Vec::new(),
            values: Vec::new(),
            key: String::new(),
        };
        for (parameter, value, condition) in [
            ("region", &p.region, "region = ?"),
            ("country", &p.country, "country = ?"),
            ("office_id", &p.office_id, "office = ?"),
            ("kind", &p.kind, "kind = ?"),
        ] {
            if let Some(v) = value {
                id(parameter, v)?;
                slice.conditions.push(condition);
                slice.values.push(v.clone());
            }
        }
        if let Some(kind) = &p.kind {
            if !crate::ask::plan::KINDS.contains(&kind.as_str()) {
                return Err(ApiError::bad(
                    "kind",
                    format!("must be one of {}", crate::ask::plan::KINDS.join(", ")),
                ));
            }
        }
        if let Some(floor) = p.floor {
            if p.office_id.is_none() {
                return Err(ApiError::bad("floor", "a floor needs its office_id"));
            }
            slice.conditions.push("floor = ?");
            slice.values.push(floor.to_string());
        }
        slice.key = format!("{:?}", slice.values);
        Ok(slice)
    }

    /// `FROM room_days FINAL` joined with each room's latest metadata, with the slice's
    /// and the days' conditions (bind the days' dates, then [`Slice::bind`]).
    fn from(&self, db: &str) -> String {
        let mut conditions = vec!["day >= toDate(?) AND day < toDate(?)"];
        conditions.extend(&self.conditions);
        format!(
            "FROM {db}.room_days FINAL \
             ANY INNER JOIN (SELECT room_id, argMax(region, version) AS region, \
                    argMax(country_code, version) AS country, argMax(office_id, version) AS office, \
                    toString(argMax(floor, version)) AS floor, toString(argMax(kind, version)) AS kind \
                    FROM {db}.rooms GROUP BY room_id) USING room_id \
             WHERE {}",
            conditions.join(" AND ")
        )
    }

    fn bind(&self, query: clickhouse::query::Query) -> clickhouse::query::Query {
        self.values.iter().fold(query, |q, v| q.bind(v))
    }
}

#[derive(Row, Deserialize, Serialize)]
struct DayRow {
    day: u16,
    people: f64,
    peak: u64,
    capacity: u64,
    occupied: f64,
    samples: u64,
    rooms: u64,
}

/// `GET /v1/portfolio/days?from_date=&to_date=` with `region`, `country`,
/// `office_id`, `floor` (with `office_id`) and `kind`: the slice's days.
pub async fn utilization(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(p): Query<Period>,
) -> Result<Response, ApiError> {
    let caller = caller(&state, &headers)?;
    Ok(answer(utilization_for(&state, &caller, &p).await?))
}

/// The slice's days, for [`utilization`].
pub(crate) async fn utilization_for(
    state: &AppState,
    caller: &Caller<'_>,
    p: &Period,
) -> Result<Value, ApiError> {
    caller.allowed(Role::Analyst)?;
    let Some(Days::Dates(from, to)) =
        local_dates(p.from_date.as_deref(), p.to_date.as_deref(), 366)?
    else {
        return Err(ApiError::bad(
            "from_date",
            "from_date and to_date (the day after the last) are needed, at most 366 days apart",
        ));
    };
    let slice = Slice::new(p)?;
    caller.limit(state, Class::Analytics).await?;
    let request = format!("slice-days:{from}:{to}:{}", slice.key);
    let ttl = state.config.cache_ttl_secs;
    let rows = cached(caller, ttl, &request, read_days(caller, &slice, (from, to))).await?;
    let rows: Vec<DayRow> = serde_json::from_value(rows)
        .map_err(|_| ApiError::unavailable("a cached answer is unreadable; retry"))?;
    let epoch = NaiveDate::default();
    let days: Vec<Value> = rows
        .iter()
        .map(|r| {
            let sums = crate::changes::Sums {
                people: r.people,
                peak: r.peak as f64,
                capacity: r.capacity as f64,
                occupied: r.occupied,
                samples: r.samples as f64,
                days: r.rooms,
            };
            let [utilization, peak, occupied] = sums.measures();
            json!({
                "date": (epoch + chrono::Days::new(u64::from(r.day))).to_string(),
                "utilization": utilization,
                "peak": peak,
                "occupied": occupied,
                "rooms": r.rooms,
            })
        })
        .collect();
    Ok(json!({
        "from_date": from.to_string(),
        "to_date": to.to_string(),
        "region": p.region,
        "country": p.country,
        "office_id": p.office_id,
        "floor": p.floor,
        "kind": p.kind,
        "days": days,
    }))
}

async fn read_days(
    caller: &Caller<'_>,
    slice: &Slice,
    (from, to): (NaiveDate, NaiveDate),
) -> Result<Value, ApiError> {
    let sql = format!(
        "SELECT toUInt16(day) AS d, sum(avg_people), toUInt64(sum(peak_people)), \
         toUInt64(sum(capacity)), sum(occupied_ratio * samples), toUInt64(sum(samples)), count() \
         {} GROUP BY d ORDER BY d",
        slice.from(&caller.tenant.clickhouse_db())
    );
    let query = caller
        .clickhouse()
        .query(&sql)
        .bind(from.to_string())
        .bind(to.to_string());
    let rows: Vec<DayRow> = no_database_is_empty(slice.bind(query).fetch_all().await)?;
    Ok(json!(rows))
}

#[derive(Row, Deserialize, Serialize)]
struct OfficeRow {
    office_id: String,
    utilization: f64,
    peak: f64,
    days: u64,
}

/// The offices ranked by the utilization of the slice's rooms (a kind, say) over local
/// days `[from, to)`: each day's people over seats, averaged over the days, and the
/// busiest day; for the ranking's `kind` filter.
pub(crate) async fn ranking(
    caller: &Caller<'_>,
    slice: &Slice,
    (from, to): (NaiveDate, NaiveDate),
) -> Result<Value, ApiError> {
    let sql = format!(
        "SELECT office, avg(u), max(u), count() FROM \
         (SELECT office, day, sum(avg_people) / sum(capacity) AS u {} \
          GROUP BY office, day HAVING sum(capacity) > 0) \
         GROUP BY office ORDER BY avg(u) DESC, office",
        slice.from(&caller.tenant.clickhouse_db())
    );
    let query = caller
        .clickhouse()
        .query(&sql)
        .bind(from.to_string())
        .bind(to.to_string());
    let rows: Vec<OfficeRow> = no_database_is_empty(slice.bind(query).fetch_all().await)?;
    let offices: Vec<Value> = rows
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
    Ok(json!({ "offices": offices, "from_date": from.to_string(), "to_date": to.to_string() }))
}
