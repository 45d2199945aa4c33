//! `GET /v1/insights/changes`: week over week, month over month or year over year, per
//! office, region, country, floor, kind of room or room, from the rooms' final days
//! (`room_days`, each office's local dates), with the top movers up and down.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use chrono::{Datelike, NaiveDate};
use clickhouse::Row;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use rf_schemas::tenant::Role;

use crate::cache::cached;
use crate::insights::{Period, RoomFilter};
use crate::limits::Class;
use crate::portfolio::no_database_is_empty;
use crate::rooms::{metadata, Metadata};
use crate::routes::{answer, caller, ApiError, Caller};
use crate::AppState;

/// What a change compares.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Compare {
    Week,
    Month,
    Year,
}

/// The current period `[from, to)` and the one it is compared with.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Periods {
    current: (NaiveDate, NaiveDate),
    previous: (NaiveDate, NaiveDate),
}

impl Compare {
    fn parse(v: Option<&str>) -> Result<Self, ApiError> {
        match v.unwrap_or("week") {
            "week" => Ok(Self::Week),
            "month" => Ok(Self::Month),
            "year" => Ok(Self::Year),
            _ => Err(ApiError::bad("compare", "must be week, month or year")),
        }
    }

    /// The periods ending at `to` (exclusive), by default the start of this week
    /// (Monday) or month as of `today`: a week and the week before; a month and the
    /// month before; a month and the same month a year before.
    fn periods(self, to: Option<NaiveDate>, today: NaiveDate) -> Periods {
        let months = |d: NaiveDate, n: u32| {
            d.checked_sub_months(chrono::Months::new(n))
                .unwrap_or(NaiveDate::MIN)
        };
        let days = |d: NaiveDate, n: u64| d - chrono::Days::new(n);
        match self {
            Self::Week => {
                let to = to.unwrap_or_else(|| {
                    days(today, u64::from(today.weekday().num_days_from_monday()))
                });
                Periods {
                    current: (days(to, 7), to),
                    previous: (days(to, 14), days(to, 7)),
                }
            }
            Self::Month | Self::Year => {
                let to = to.unwrap_or_else(|| today.with_day(1).unwrap_or(today));
                let current = (months(to, 1), to);
                let previous = match self {
                    Self::Month => (months(to, 2), months(to, 1)),
                    _ => (months(to, 13), months(to, 12)),
                };
                Periods { current, previous }
            }
        }
    }
}

/// Sums of room days, from which the measures follow.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Sums {
    pub(crate) people: f64,
    pub(crate) peak: f64,
    pub(crate) capacity: f64,
    pub(crate) occupied: f64,
    pub(crate) samples: f64,
    pub(crate) days: u64,
}

impl Sums {
    fn add(&mut self, r: &DayRow) {
        self.people += r.people;
        self.peak += r.peak as f64;
        self.capacity += r.capacity as f64;
        self.occupied += r.occupied;
        self.samples += r.samples as f64;
        self.days += r.days;
    }

    /// utilization (people over seats), peak (the days' peaks over seats) and occupied
    /// (share of readings with someone in).
    pub(crate) fn measures(&self) -> [f64; 3] {
        let share = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
        [
            share(self.people, self.capacity),
            share(self.peak, self.capacity),
            share(self.occupied, self.samples),
        ]
    }

    fn json(&self) -> Value {
        let [utilization, peak, occupied] = self.measures();
        json!({ "utilization": utilization, "peak": peak, "occupied": occupied, "room_days": self.days })
    }
}

const MEASURES: [&str; 3] = ["utilization", "peak", "occupied"];

#[derive(Row, Deserialize, Serialize)]
struct DayRow {
    office_id: String,
    room_id: String,
    current: u8,
    people: f64,
    peak: u64,
    capacity: u64,
    occupied: f64,
    samples: u64,
    days: u64,
}

/// `GET /v1/insights/changes?compare=week|month|year[&to_date=][&by=][&metric=][&limit=]`
/// with the under-used rooms' filters (`region`, `country`, `office_id`, `floor`, `kind`).
pub async fn changes(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(p): Query<Period>,
) -> Result<Response, ApiError> {
    let caller = caller(&state, &headers)?;
    Ok(answer(changes_for(&state, &caller, &p).await?))
}

/// The changes, for [`changes`].
pub(crate) async fn changes_for(
    state: &AppState,
    caller: &Caller<'_>,
    p: &Period,
) -> Result<Value, ApiError> {
    caller.allowed(Role::Analyst)?;
    let compare = Compare::parse(p.compare.as_deref())?;
    let by = p.by.as_deref().unwrap_or("office");
    if !["office", "region", "country", "floor", "kind", "room"].contains(&by) {
        return Err(ApiError::bad(
            "by",
            "must be office, region, country, floor, kind or room",
        ));
    }
    let metric = p.metric.as_deref().unwrap_or("utilization");
    let Some(measure) = MEASURES.iter().position(|m| *m == metric) else {
        return Err(ApiError::bad(
            "metric",
            "must be utilization, peak or occupied",
        ));
    };
    let limit = p.limit.unwrap_or(5);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::bad("limit", "must be between 1 and 100"));
    }
    let to = match p.to_date.as_deref() {
        Some(to) => Some(
            NaiveDate::parse_from_str(to, "%Y-%m-%d")
                .map_err(|_| ApiError::bad("to_date", "must be a date like 2026-11-30"))?,
        ),
        None => None,
    };
    let periods = compare.periods(to, chrono::Utc::now().date_naive());
    caller.limit(state, Class::Analytics).await?;
    let metadata = metadata(state, caller).await?;
    let filter = RoomFilter::new(p, &metadata)?;
    let ttl = state.config.cache_ttl_secs;
    let request = format!("changes:{:?}", periods);
    let rows = cached(caller, ttl, &request, read(caller, periods)).await?;
    let rows: Vec<DayRow> = serde_json::from_value(rows)
        .map_err(|_| ApiError::unavailable("a cached answer is unreadable; retry"))?;
    Ok(summarize(
        &metadata,
        &filter,
        by,
        measure,
        limit as usize,
        periods,
        &rows,
    ))
}

/// Each room's sums in both periods, as JSON (cached as such).
async fn read(caller: &Caller<'_>, periods: Periods) -> Result<Value, ApiError> {
    let Periods { current, previous } = periods;
    let sql = format!(
        "SELECT office_id, room_id, toUInt8(day >= toDate(?)) AS current, sum(avg_people), \
         toUInt64(sum(peak_people)), toUInt64(sum(capacity)), sum(occupied_ratio * samples), \
         toUInt64(sum(samples)), count() \
         FROM {}.room_days FINAL \
         WHERE (day >= toDate(?) AND day < toDate(?)) OR (day >= toDate(?) AND day < toDate(?)) \
         GROUP BY office_id, room_id, current",
        caller.tenant.clickhouse_db()
    );
    let rows: Vec<DayRow> = no_database_is_empty(
        caller
            .clickhouse()
            .query(&sql)
            .bind(current.0.to_string())
            .bind(current.0.to_string())
            .bind(current.1.to_string())
            .bind(previous.0.to_string())
            .bind(previous.1.to_string())
            .fetch_all()
            .await,
    )?;
    Ok(json!(rows))
}

/// The groups' measures in both periods, their changes and the movers.
fn summarize(
    metadata: &Metadata,
    filter: &RoomFilter,
    by: &str,
    measure: usize,
    limit: usize,
    periods: Periods,
    rows: &[DayRow],
) -> Value {
    // (id, name) → (current, previous).
    let mut groups: BTreeMap<(String, String), [Sums; 2]> = BTreeMap::new();
    let mut total = [Sums::default(); 2];
    let office_name = |office: &str| {
        metadata
            .office(office)
            .first()
            .map_or_else(|| office.to_owned(), |v| v.office_name.clone())
    };
    let rooms: std::collections::HashMap<&str, &crate::rooms::Version> = metadata
        .current()
        .map(|v| (v.room_id.as_str(), v))
        .collect();
    for row in rows {
        // Rooms in effect now, as the filter sees them.
        let Some(version) = rooms.get(row.room_id.as_str()).filter(|v| filter.admits(v)) else {
            continue;
        };
        let key = match by {
            "office" => (row.office_id.clone(), office_name(&row.office_id)),
            "region" => (version.region.clone(), version.region.clone()),
            "country" => (version.country_code.clone(), version.country_code.clone()),
            "floor" => (
                format!("{}/{}", version.office_id, version.floor),
                format!("{}, floor {}", version.office_name, version.floor),
            ),
            "kind" => (version.kind.clone(), version.kind.clone()),
            _ => (row.room_id.clone(), version.name.clone()),
        };
        let i = usize::from(row.current == 0);
        groups.entry(key).or_default()[i].add(row);
        total[i].add(row);
    }
    let change = |[now, before]: &[Sums; 2]| -> Value {
        let (a, b) = (now.measures(), before.measures());
        let mut out = serde_json::Map::new();
        for (i, m) in MEASURES.iter().enumerate() {
            let relative =
                (before.days > 0 && now.days > 0 && b[i] > 0.0).then(|| a[i] / b[i] - 1.0);
            out.insert(
                (*m).to_owned(),
                json!({ "points": (before.days > 0 && now.days > 0).then(|| a[i] - b[i]), "relative": relative }),
            );
        }
        Value::Object(out)
    };
    let listed: Vec<Value> = groups
        .iter()
        .map(|((id, name), sums)| {
            json!({
                "id": id,
                "name": name,
                "current": sums[0].json(),
                "previous": sums[1].json(),
                "change": change(sums),
            })
        })
        .collect();
    let moved = |sums: &[Sums; 2]| -> Option<f64> {
        let (a, b) = (sums[0].measures()[measure], sums[1].measures()[measure]);
        (sums[0].days > 0 && sums[1].days > 0 && b > 0.0).then(|| a / b - 1.0)
    };
    let mut movers: Vec<(f64, &Value)> = groups
        .values()
        .zip(&listed)
        .filter_map(|(sums, g)| Some((moved(sums)?, g)))
        .collect();
    movers.sort_by(|a, b| b.0.total_cmp(&a.0));
    let up: Vec<&Value> = movers
        .iter()
        .filter(|m| m.0 > 0.0)
        .take(limit)
        .map(|m| m.1)
        .collect();
    let down: Vec<&Value> = movers
        .iter()
        .rev()
        .filter(|m| m.0 < 0.0)
        .take(limit)
        .map(|m| m.1)
        .collect();
    let period = |(from, to): (NaiveDate, NaiveDate)| json!({ "from_date": from.to_string(), "to_date": to.to_string() });
    json!({
        "by": by,
        "metric": MEASURES[measure],
        "current": period(periods.current),
        "previous": period(periods.previous),
        "total": { "current": total[0].json(), "previous": total[1].json(), "change": change(&total) },
        "groups": listed,
        "up": up,
        "down": down,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    #[test]
    fn periods_are_whole_weeks_and_months() {
        // Monday 2026-12-07.
        let today = date(2026, 12, 9);
        assert_eq!(
            Compare::Week.periods(None, today),
            Periods {
                current: (date(2026, 11, 30), date(2026, 12, 7)),
                previous: (date(2026, 11, 23), date(2026, 11, 30)),
            }
        );
        assert_eq!(
            Compare::Month.periods(None, today),
            Periods {
                current: (date(2026, 11, 1), date(2026, 12, 1)),
                previous: (date(2026, 10, 1), date(2026, 11, 1)),
            }
        );
        assert_eq!(
            Compare::Year.periods(Some(date(2026, 3, 1)), today),
            Periods {
                current: (date(2026, 2, 1), date(2026, 3, 1)),
                previous: (date(2025, 2, 1), date(2025, 3, 1)),
            }
        );
    }
}
