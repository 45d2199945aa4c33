//! Analytics: an office's hour-of-week heatmap, under-used rooms with what giving them up
//! would save, and the offices of the portfolio ranked by utilization. Each counts against
//! the tenant's analytics limit.

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

/// A trailing period: `weeks` or `days` back from `to` (default now), or `from` to `to`;
/// for the daily insights also whole local days, `from_date` to `to_date` (each office's
/// own days); and the filters of the under-used rooms and the ranking.
#[derive(Deserialize, Default)]
pub struct Period {
    weeks: Option<u32>,
    pub(crate) days: Option<u32>,
    from: Option<String>,
    to: Option<String>,
    /// The first local day (`YYYY-MM-DD`), in each office's time zone.
    pub(crate) from_date: Option<String>,
    /// The local day after the last (exclusive).
    pub(crate) to_date: Option<String>,
    pub(crate) threshold: Option<f64>,
    pub(crate) limit: Option<u32>,
    /// `json` (default) or `csv` (under-used rooms).
    format: Option<String>,
    /// Offices of this region only (rankings, under-used rooms).
    pub(crate) region: Option<String>,
    /// Offices of this country (ISO 3166 alpha-2) only.
    pub(crate) country: Option<String>,
    /// This office's rooms only (under-used rooms).
    pub(crate) office_id: Option<String>,
    /// The office's floor only (under-used rooms, with `office_id`).
    pub(crate) floor: Option<i32>,
    /// Rooms of this kind only (under-used rooms): DESK, MEETING, FOCUS, OPEN_SPACE,
    /// COLLAB or OTHER.
    pub(crate) kind: Option<String>,
    /// Changes: `week`, `month` or `year` over the one before.
    pub(crate) compare: Option<String>,
    /// Changes: per `office` (default), `region`, `country`, `floor`, `kind` or `room`.
    pub(crate) by: Option<String>,
    /// Changes: the movers' measure, `utilization` (default), `peak` or `occupied`.
    pub(crate) metric: Option<String>,
    /// Forecast flags: `over` (default) or `under` the threshold.
    pub(crate) direction: Option<String>,
}

/// The daily windows asked for: a range of instants, or whole local days of each
/// office's zone (1d windows start at their office's local midnight, so the UTC date 12
/// hours after a window's start is its local date for offsets from -12 to +12 hours).
#[derive(Clone, Copy, Debug)]
pub(crate) enum Days {
    /// Windows starting in `[from, to)`.
    Instants(DateTime<Utc>, DateTime<Utc>),
    /// Windows of the local dates `[from, to)`.
    Dates(chrono::NaiveDate, chrono::NaiveDate),
}

/// Binds a [`Days`] condition's parameters in a query's order.
pub(crate) trait BindDays {
    /// The query with `days`' parameters bound.
    fn bind_days(self, days: Days) -> Self;
}

impl BindDays for clickhouse::query::Query {
    fn bind_days(self, days: Days) -> Self {
        days.bind(self)
    }
}

impl Days {
    /// The SQL condition on `window_start`, with [`Days::bind`]'s parameters.
    pub(crate) fn sql(&self) -> &'static str {
        match self {
            Days::Instants(..) => "window_start >= toDateTime(?) AND window_start < toDateTime(?)",
            Days::Dates(..) => {
                "window_start >= toDateTime(?) AND window_start < toDateTime(?) \
                 AND toDate(window_start + 43200) >= toDate(?) AND toDate(window_start + 43200) < toDate(?)"
            }
        }
    }

    /// Binds the parameters of [`Days::sql`].
    pub(crate) fn bind(&self, query: clickhouse::query::Query) -> clickhouse::query::Query {
        match *self {
            Days::Instants(from, to) => query.bind(secs(from)).bind(secs(to)),
            Days::Dates(from, to) => {
                // Every zone's midnights lie within 14 hours of UTC's.
                let utc = |d: chrono::NaiveDate| d.and_time(chrono::NaiveTime::MIN).and_utc();
                query
                    .bind(secs(utc(from) - chrono::Duration::hours(14)))
                    .bind(secs(utc(to) + chrono::Duration::hours(14)))
                    .bind(from.to_string())
                    .bind(to.to_string())
            }
        }
    }

    /// A cache key's part.
    pub(crate) fn key(&self) -> String {
        match self {
            Days::Instants(from, to) => format!("{}:{}", secs(*from), secs(*to)),
            Days::Dates(from, to) => format!("{from}/{to}"),
        }
    }

    /// Whether a day window of local date `date` starting at `start` (seconds) is in.
    pub(crate) fn admits(&self, date: chrono::NaiveDate, start: i64) -> bool {
        match *self {
            Days::Instants(from, to) => {
                (i64::from(secs(from))..i64::from(secs(to))).contains(&start)
            }
            Days::Dates(from, to) => (from..to).contains(&date),
        }
    }

    /// The first and last local dates a window in the range can have.
    pub(crate) fn local_span(&self) -> (chrono::NaiveDate, chrono::NaiveDate) {
        match *self {
            // Every zone's midnights lie within 14 hours of UTC's.
            Days::Instants(from, to) => (
                (from - chrono::Duration::hours(14)).date_naive(),
                (to + chrono::Duration::hours(14)).date_naive(),
            ),
            Days::Dates(from, to) => (from, to.pred_opt().unwrap_or(to)),
        }
    }

    /// The answer's fields naming the range.
    pub(crate) fn fields(&self, body: &mut serde_json::Value) {
        match self {
            Days::Instants(from, to) => {
                body["from"] = json!(iso(from.timestamp_millis()));
                body["to"] = json!(iso(to.timestamp_millis()));
            }
            Days::Dates(from, to) => {
                body["from_date"] = json!(from.to_string());
                body["to_date"] = json!(to.to_string());
            }
        }
    }
}

/// `from_date` and `to_date`, both or neither, at most `max` days apart.
pub(crate) fn local_dates(
    from_date: Option<&str>,
    to_date: Option<&str>,
    max: u32,
) -> Result<Option<Days>, ApiError> {
    let date = |parameter: &'static str, v: &str| {
        chrono::NaiveDate::parse_from_str(v, "%Y-%m-%d")
            .map_err(|_| ApiError::bad(parameter, "must be a date like 2026-11-01"))
    };
    match (from_date, to_date) {
        (None, None) => Ok(None),
        (Some(_), None) => Err(ApiError::bad(
            "to_date",
            "from_date needs to_date (the day after the last)",
        )),
        (None, Some(_)) => Err(ApiError::bad("from_date", "to_date needs from_date")),
        (Some(f), Some(t)) => {
            let (from, to) = (date("from_date", f)?, date("to_date", t)?);
            let days = (to - from).num_days();
            if days < 1 || days > i64::from(max) {
                return Err(ApiError::bad(
                    "to_date",
                    format!("must be 1 to {max} days after from_date"),
                ));
            }
            Ok(Some(Days::Dates(from, to)))
        }
    }
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
        if let Some(from) = self.from.as_deref() {
            let from = time("from", Some(from), to)?;
            if from >= to || to - from > chrono::Duration::days(unit_days * i64::from(max)) {
                return Err(ApiError::bad(
                    "from",
                    format!("must be before to, at most {max} {what} earlier"),
                ));
            }
            return Ok((from, to));
        }
        Ok((
            to - chrono::Duration::days(unit_days * i64::from(count)),
            to,
        ))
    }

    /// Local days (`from_date`, `to_date`), else `days` back from `to`.
    fn days(&self, default: u32) -> Result<Days, ApiError> {
        let dates = local_dates(self.from_date.as_deref(), self.to_date.as_deref(), 366)?;
        if dates.is_some() && (self.days.is_some() || self.to.is_some() || self.from.is_some()) {
            return Err(ApiError::bad(
                "from_date",
                "give either from_date and to_date, or days, from and to",
            ));
        }
        match dates {
            Some(d) => Ok(d),
            None => {
                let (from, to) = self.range(1, self.days.unwrap_or(default), 366)?;
                Ok(Days::Instants(from, to))
            }
        }
    }

    /// The offices of the region and country filters (`None`: no filter), each checked.
    fn offices(
        &self,
        metadata: &Metadata,
    ) -> Result<Option<std::collections::HashSet<String>>, ApiError> {
        if self.region.is_none() && self.country.is_none() && self.office_id.is_none() {
            return Ok(None);
        }
        for (parameter, value) in [
            ("region", &self.region),
            ("country", &self.country),
            ("office_id", &self.office_id),
        ] {
            if let Some(v) = value {
                id(parameter, v)?;
            }
        }
        Ok(Some(
            metadata
                .current()
                .filter(|v| {
                    self.region.as_ref().is_none_or(|r| v.region == *r)
                        && self.country.as_ref().is_none_or(|c| v.country_code == *c)
                        && self.office_id.as_ref().is_none_or(|o| v.office_id == *o)
                })
                .map(|v| v.office_id.clone())
                .collect(),
        ))
    }
}

/// The filters of the under-used rooms and the changes, checked.
pub(crate) struct RoomFilter {
    offices: Option<std::collections::HashSet<String>>,
    floor: Option<i32>,
    kind: Option<String>,
}

impl RoomFilter {
    pub(crate) fn new(p: &Period, metadata: &Metadata) -> Result<Self, ApiError> {
        if p.floor.is_some() && p.office_id.is_none() {
            return Err(ApiError::bad("floor", "a floor needs its office_id"));
        }
        if let Some(kind) = &p.kind {
            if !crate::ask::plan::KINDS.contains(&kind.as_str()) {
                return Err(ApiError::bad(
                    "kind",
                    format!("must be one of {}", crate::ask::plan::KINDS.join(", ")),
                ));
            }
        }
        Ok(Self {
            offices: p.offices(metadata)?,
            floor: p.floor,
            kind: p.kind.clone(),
        })
    }

    pub(crate) fn admits(&self, v: &Version) -> bool {
        self.offices
            .as_ref()
            .is_none_or(|o| o.contains(&v.office_id))
            && self.floor.is_none_or(|f| v.floor == f)
            && self.kind.as_ref().is_none_or(|k| v.kind == *k)
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
    Ok(answer(heatmap_for(&state, &caller, &office_id, &p).await?))
}

/// The heatmap of `office_id`, for [`heatmap`] and questions.
pub(crate) async fn heatmap_for(
    state: &AppState,
    caller: &Caller<'_>,
    office_id: &str,
    p: &Period,
) -> Result<serde_json::Value, ApiError> {
    id("office_id", office_id)?;
    let (from, to) = p.range(7, p.weeks.unwrap_or(4), 52)?;
    caller.limit(state, Class::Analytics).await?;
    let metadata = metadata(state, caller).await?;
    let zone = metadata.office_zone(office_id)?;
    // A floor or kind of room: those rooms in effect now, summed up hour by hour.
    let rooms = match (p.floor, p.kind.as_deref()) {
        (None, None) => None,
        (floor, kind) => {
            if let Some(kind) = kind.filter(|k| !crate::ask::plan::KINDS.contains(k)) {
                return Err(ApiError::bad(
                    "kind",
                    format!(
                        "{kind:?}: must be one of {}",
                        crate::ask::plan::KINDS.join(", ")
                    ),
                ));
            }
            let rooms: Vec<String> = metadata
                .office(office_id)
                .iter()
                .filter(|v| floor.is_none_or(|f| v.floor == f) && kind.is_none_or(|k| v.kind == k))
                .map(|v| v.room_id.clone())
                .collect();
            Some(rooms)
        }
    };
    let request = format!(
        "heatmap:{office_id}:{}:{}:{:?}:{:?}",
        secs(from),
        secs(to),
        p.floor,
        p.kind
    );
    let ttl = state.config.cache_ttl_secs;
    let mut body = cached(
        caller,
        ttl,
        &request,
        heatmap_of(caller, office_id, zone, (from, to), rooms.as_deref()),
    )
    .await?;
    body["floor"] = json!(p.floor);
    body["kind"] = json!(p.kind);
    Ok(body)
}

struct RoomUse {
    utilization: f64,
    days: u64,
}

/// `GET /v1/insights/underused?days=30&threshold=0.2[&to=&limit=]` (or
/// `from_date=&to_date=`, local days; filters `region`, `country`, `office_id`, `floor`,
/// `kind`): rooms whose average daily utilization over the period is below the
/// threshold, the costliest first, with the monthly saving if they were given up.
pub async fn underused(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(p): Query<Period>,
) -> Result<Response, ApiError> {
    let caller = caller(&state, &headers)?;
    let csv = match p.format.as_deref().unwrap_or("json") {
        "json" => false,
        "csv" => true,
        _ => return Err(ApiError::bad("format", "must be json or csv")),
    };
    let body = underused_for(&state, &caller, &p).await?;
    if csv {
        return Ok(underused_csv(&body));
    }
    Ok(answer(body))
}

/// The under-used rooms, for [`underused`] and questions.
pub(crate) async fn underused_for(
    state: &AppState,
    caller: &Caller<'_>,
    p: &Period,
) -> Result<serde_json::Value, ApiError> {
    caller.allowed(Role::Analyst)?;
    let days = p.days(30)?;
    let threshold = p.threshold.unwrap_or(0.2);
    if !(0.0..=1.0).contains(&threshold) {
        return Err(ApiError::bad("threshold", "must be between 0 and 1"));
    }
    let limit = p.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad("limit", "must be between 1 and 1000"));
    }
    caller.limit(state, Class::Analytics).await?;
    let metadata = metadata(state, caller).await?;
    let filter = RoomFilter::new(p, &metadata)?;
    // From the room days in memory: no answer cache needed (nor wanted: it would hold
    // a ClickHouse slot while the months are read).
    underused_of(state, caller, &metadata, days, threshold, limit, &filter).await
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

/// `GET /v1/offices/ranking?days=30[&to=]` (or `from_date=&to_date=`, local days;
/// filters `region`, `country`, and `kind`: then by that kind of room's utilization, from
/// the daily table, over whole local days): the tenant's offices by average daily
/// utilization over the period, highest first.
pub async fn ranking(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(p): Query<Period>,
) -> Result<Response, ApiError> {
    let caller = caller(&state, &headers)?;
    Ok(answer(ranking_for(&state, &caller, &p).await?))
}

/// The ranking, for [`ranking`] and questions.
pub(crate) async fn ranking_for(
    state: &AppState,
    caller: &Caller<'_>,
    p: &Period,
) -> Result<serde_json::Value, ApiError> {
    caller.allowed(Role::Analyst)?;
    let days = p.days(30)?;
    if p.kind.is_some() {
        // One kind of room: from the daily table, over whole local days.
        let slice = crate::slices::Slice::new(p)?;
        let dates = match days {
            Days::Dates(from, to) => (from, to),
            Days::Instants(from, to) => (from.date_naive(), to.date_naive()),
        };
        caller.limit(state, Class::Analytics).await?;
        let request = format!(
            "ranking-slice:{dates:?}:{:?}:{:?}:{:?}",
            p.region, p.country, p.kind
        );
        let ttl = state.config.cache_ttl_secs;
        let mut body = cached(
            caller,
            ttl,
            &request,
            crate::slices::ranking(caller, &slice, dates),
        )
        .await?;
        body["region"] = json!(p.region);
        body["country"] = json!(p.country);
        body["kind"] = json!(p.kind);
        return Ok(body);
    }
    caller.limit(state, Class::Analytics).await?;
    let offices = match p.region.is_some() || p.country.is_some() {
        true => p.offices(&*metadata(state, caller).await?)?,
        false => None,
    };
    let request = format!("ranking:{}:{:?}:{:?}", days.key(), p.region, p.country);
    let ttl = state.config.cache_ttl_secs;
    let mut body = cached(caller, ttl, &request, ranking_of(caller, days)).await?;
    if let Some(offices) = offices {
        let listed = body["offices"].as_array().cloned().unwrap_or_default();
        let kept: Vec<serde_json::Value> = listed
            .into_iter()
            .filter(|o| {
                o["office_id"]
                    .as_str()
                    .is_some_and(|id| offices.contains(id))
            })
            .enumerate()
            .map(|(i, mut o)| {
                o["rank"] = json!(i + 1);
                o
            })
            .collect();
        body["offices"] = json!(kept);
        body["region"] = json!(p.region);
        body["country"] = json!(p.country);
    }
    Ok(body)
}

/// The heatmap's cells from ClickHouse.
async fn heatmap_of(
    caller: &Caller<'_>,
    office_id: &str,
    zone: chrono_tz::Tz,
    (from, to): (DateTime<Utc>, DateTime<Utc>),
    rooms: Option<&[String]>,
) -> Result<serde_json::Value, ApiError> {
    let client = caller.clickhouse();
    let db = caller.tenant.clickhouse_db();
    // The latest revision of each hour by argMax, which 18.16 does faster than FINAL;
    // some rooms: their people over their seats, each hour.
    let hours = match rooms {
        None => format!(
            "SELECT window_start, argMax(utilization, version) AS u FROM {db}.office_utilization \
             WHERE granularity = '1h' AND office_id = ? AND window_start >= toDateTime(?) AND window_start < toDateTime(?) \
             GROUP BY window_start"
        ),
        Some(_) => format!(
            "SELECT window_start, sum(p) / sum(c) AS u FROM \
             (SELECT window_start, room_id, argMax(avg_people, version) AS p, argMax(capacity, version) AS c \
              FROM {db}.room_utilization \
              WHERE granularity = '1h' AND office_id = ? AND window_start >= toDateTime(?) AND window_start < toDateTime(?) \
              AND has(?, room_id) GROUP BY room_id, window_start) \
             GROUP BY window_start HAVING sum(c) > 0"
        ),
    };
    let sql = format!(
        "SELECT toUInt8(toDayOfWeek(window_start, ?)) AS d, toUInt8(toHour(window_start, ?)) AS h, avg(u), count() \
         FROM ({hours}) GROUP BY d, h ORDER BY d, h"
    );
    let mut query = client
        .query(&sql)
        .bind(zone.name())
        .bind(zone.name())
        .bind(office_id)
        .bind(secs(from))
        .bind(secs(to));
    if let Some(rooms) = rooms {
        query = query.bind(rooms);
    }
    // No such rooms in the office: no hours (and no empty array for ClickHouse to type).
    let cells: Vec<Cell> = match rooms {
        Some([]) => Vec::new(),
        _ => no_database_is_empty(query.fetch_all().await)?,
    };
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

/// The under-used rooms from the room days and the metadata's costs.
async fn underused_of(
    state: &AppState,
    caller: &Caller<'_>,
    metadata: &Metadata,
    days: Days,
    threshold: f64,
    limit: u32,
    filter: &RoomFilter,
) -> Result<serde_json::Value, ApiError> {
    let sums =
        crate::days::room_sums(state, caller, metadata, &days, filter.offices.as_ref()).await?;
    // The rooms in effect that the filter admits, below the threshold: their monthly cost
    // and place by room id, which order them without reading their metadata again.
    let mut rooms: Vec<(f64, usize, RoomUse)> = Vec::new();
    for (place, (v, &(sum, days))) in metadata.current_by_room().zip(&sums).enumerate() {
        let utilization = sum / days as f64;
        if days > 0 && utilization < threshold && filter.admits(v) {
            let cost = v.monthly_cost.unwrap_or(0.0);
            rooms.push((cost, place, RoomUse { utilization, days }));
        }
    }
    // The costliest first (then by room id): only the listed ones need sorting.
    let order = |a: &(f64, usize, RoomUse), b: &(f64, usize, RoomUse)| {
        b.0.total_cmp(&a.0).then(a.1.cmp(&b.1))
    };
    let listed = (limit as usize).min(rooms.len());
    if listed < rooms.len() {
        rooms.select_nth_unstable_by(listed, order);
    }
    rooms[..listed].sort_unstable_by(order);
    let saving: f64 = rooms.iter().map(|(cost, ..)| cost).sum();
    let listed: Vec<_> = rooms
        .iter()
        .take(listed)
        .map(|(_, place, u)| {
            let c = metadata.room_at(*place);
            json!({
                "room_id": c.room_id,
                "office_id": c.office_id,
                "name": c.name,
                "capacity": c.capacity,
                "utilization": u.utilization,
                "days": u.days,
                "monthly_saving": c.monthly_cost,
            })
        })
        .collect();
    let mut body = json!({
        "threshold": threshold,
        "rooms": listed,
        "rooms_below": rooms.len(),
        "monthly_saving": saving,
    });
    days.fields(&mut body);
    Ok(body)
}

/// The offices ranked, from ClickHouse.
async fn ranking_of(caller: &Caller<'_>, days: Days) -> Result<serde_json::Value, ApiError> {
    let rows: Vec<OfficeUse> = no_database_is_empty(
        caller
            .clickhouse()
            .query(&format!(
                "SELECT office_id, avg(u), max(u), count() FROM \
                 (SELECT office_id, argMax(utilization, version) AS u FROM {}.office_utilization \
                  WHERE granularity = '1d' AND {} \
                  GROUP BY office_id, window_start) \
                 GROUP BY office_id ORDER BY avg(u) DESC, office_id",
                caller.tenant.clickhouse_db(),
                days.sql(),
            ))
            .bind_days(days)
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
    let mut body = json!({ "offices": offices });
    days.fields(&mut body);
    Ok(body)
}
