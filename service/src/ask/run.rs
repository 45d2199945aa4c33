//! Runs a checked plan through the service's own query operations and words the answer.
//! Each operation is called by the request that reproduces it (its endpoint and
//! parameters), which the answer lists as its references; the numbers it says are
//! computed from those results, and are what [`super::check`] finds in the result.

use chrono::{DateTime, Datelike, Duration, NaiveDate, Timelike, Utc};
use chrono_tz::Tz;
use serde::Serialize;
use serde_json::{json, Value};

use super::catalog::Catalog;
use super::dates::{midnight, today, Period};
use super::plan::{Op, Order, Plan, WEEKDAYS};
use crate::rooms::Metadata;
use crate::routes::{ApiError, Caller};
use crate::AppState;

/// One request of the service's whose answer the plan used.
#[derive(Clone, Debug, Serialize)]
pub struct Reference {
    /// Path and query: `GET` it with the same credentials to see the same numbers.
    pub endpoint: String,
    /// What the answer took from it.
    pub gives: String,
}

/// A short table.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Table {
    /// Column names.
    pub columns: Vec<String>,
    /// Rows of cells, as shown.
    pub rows: Vec<Vec<String>>,
}

/// What a plan's execution says.
#[derive(Clone, Debug, Serialize)]
pub struct Answer {
    /// The sentence.
    pub text: String,
    /// The rows behind it, when there are several.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub table: Option<Table>,
    /// The numbers and names the answer was made of.
    pub result: Value,
    /// The requests that reproduce them.
    pub references: Vec<Reference>,
}

/// A plan's context: the caller, the tenant's names and rooms, the time asked.
pub(crate) struct Run<'a> {
    pub state: &'a AppState,
    pub caller: &'a Caller<'a>,
    pub metadata: &'a Metadata,
    pub now: DateTime<Utc>,
    pub references: Vec<Reference>,
}

/// Rows a list shows unless the question says.
const DEFAULT_ROWS: u32 = 5;

fn pct(x: f64) -> String {
    format!("{:.0}%", x * 100.0)
}

fn thousands(x: f64) -> String {
    let n = x.round() as i64;
    let digits = n.abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 {
        format!("-{out}")
    } else {
        out
    }
}

fn join_and(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

fn iso(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// The time of an ISO string of a result.
fn at(v: &Value) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(v.as_str()?)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

const DAY_NAMES: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];

/// "on Tuesdays", "on Mondays and Fridays", "on weekdays".
fn weekdays_phrase(days: &[String]) -> String {
    if days.is_empty() {
        return String::new();
    }
    let mut sorted: Vec<usize> = days
        .iter()
        .filter_map(|d| WEEKDAYS.iter().position(|w| w == d))
        .collect();
    sorted.sort_unstable();
    if sorted == [0, 1, 2, 3, 4] {
        return "on weekdays".into();
    }
    if sorted == [5, 6] {
        return "at weekends".into();
    }
    let names: Vec<String> = sorted
        .iter()
        .map(|&d| format!("{}s", DAY_NAMES[d]))
        .collect();
    format!("on {}", join_and(&names))
}

fn hours_phrase(hours: Option<[u8; 2]>) -> String {
    hours.map_or(String::new(), |[a, b]| {
        format!("between {a:02}:00 and {b:02}:00")
    })
}

impl Run<'_> {
    fn catalog(&self) -> &Catalog {
        self.metadata.catalog()
    }

    fn office_name(&self, id: &str) -> String {
        self.catalog()
            .office(id)
            .map_or(id.to_owned(), |o| o.name.clone())
    }

    fn room_name(&self, id: &str) -> String {
        self.catalog()
            .room(id)
            .map_or(id.to_owned(), |r| r.name.clone())
    }

    fn zone(&self, office: &str) -> Tz {
        self.catalog()
            .office(office)
            .and_then(|o| o.timezone.parse().ok())
            .unwrap_or(Tz::UTC)
    }

    /// The one zone of these offices, or UTC when they have several.
    fn common_zone<'o>(&self, offices: impl Iterator<Item = &'o str>) -> Tz {
        let zones: std::collections::BTreeSet<String> =
            offices.map(|o| self.zone(o).name().to_owned()).collect();
        match zones.len() {
            1 => zones
                .first()
                .and_then(|z| z.parse().ok())
                .unwrap_or(Tz::UTC),
            _ => Tz::UTC,
        }
    }

    /// Runs `endpoint` (path and query) as the caller and keeps it as a reference.
    async fn fetch(&mut self, endpoint: String, gives: &str) -> Result<Value, ApiError> {
        let body = super::fetch(self.state, self.caller, &endpoint).await?;
        self.references.push(Reference {
            endpoint,
            gives: gives.to_owned(),
        });
        Ok(body)
    }

    /// Runs the plan.
    pub(crate) async fn plan(&mut self, plan: &Plan) -> Result<Answer, ApiError> {
        match plan.op {
            Op::Utilization => self.utilization(plan).await,
            Op::Compare => self.compare(plan).await,
            Op::Ranking => self.ranking(plan).await,
            Op::Underused => self.underused(plan).await,
            Op::Heatmap => self.heatmap(plan).await,
            Op::Forecast => self.forecast(plan).await,
            Op::Anomalies => self.anomalies(plan).await,
            Op::Ghosts => self.ghosts(plan).await,
            Op::Seats => self.seats(plan).await,
        }
    }

    /// One place's utilization over the plan's period and filters.
    async fn usage(&mut self, plan: &Plan, place: Place) -> Result<Value, ApiError> {
        let period = plan.period.unwrap_or(Period::Days(30));
        let hours = plan.when.hours;
        let granularity = if hours.is_some() { "1h" } else { "1d" };
        let (name, zone, endpoint) = match &place {
            Place::Room(room) => {
                let office = self
                    .catalog()
                    .room(room)
                    .map(|r| r.office.clone())
                    .unwrap_or_default();
                (
                    self.room_name(room),
                    Some(self.zone(&office)),
                    format!("/v1/rooms/{room}/utilization"),
                )
            }
            Place::Office(office, floor) => {
                let name = match floor {
                    Some(f) => format!("floor {f} of {}", self.office_name(office)),
                    None => self.office_name(office),
                };
                (
                    name,
                    Some(self.zone(office)),
                    format!("/v1/offices/{office}/utilization"),
                )
            }
            Place::Region(region) => (region.clone(), None, "/v1/portfolio/utilization".to_owned()),
            Place::Portfolio => (
                "the portfolio".to_owned(),
                None,
                "/v1/portfolio/utilization".to_owned(),
            ),
        };
        // One zone: its own days. Several: each office's own days, by the windows' dates.
        let dates_zone = zone.unwrap_or(Tz::UTC);
        let (d1, d2) = period.dates(today(&dates_zone, self.now));
        let (from, to) = match zone {
            Some(z) => (midnight(&z, d1), midnight(&z, d2)),
            None => (
                midnight(&Tz::UTC, d1) - Duration::hours(14),
                midnight(&Tz::UTC, d2) + Duration::hours(14),
            ),
        };
        let mut query = format!(
            "granularity={granularity}&from={}&to={}",
            iso(from),
            iso(to)
        );
        if let Place::Office(_, Some(f)) = &place {
            query.push_str(&format!("&floor={f}"));
        }
        if let Place::Region(r) = &place {
            query.push_str(&format!("&region={r}"));
        }
        let body = match self
            .fetch(
                format!("{endpoint}?{query}"),
                &format!("{name}'s {granularity} windows"),
            )
            .await
        {
            Ok(body) => body,
            // An office or room with no windows in the period.
            Err(e) if e.is_not_found() => json!({ "windows": [] }),
            Err(e) => return Err(e),
        };
        let mut used = Vec::new();
        for w in body["windows"].as_array().into_iter().flatten() {
            let Some(start) = at(&w["start"]) else {
                continue;
            };
            let (date, hour) = match zone {
                Some(z) => {
                    let local = start.with_timezone(&z);
                    (local.date_naive(), local.hour())
                }
                None => ((start + Duration::hours(12)).date_naive(), 0),
            };
            if date < d1 || date >= d2 {
                continue;
            }
            let day = WEEKDAYS[date.weekday().num_days_from_monday() as usize];
            if !plan.when.weekdays.is_empty() && !plan.when.weekdays.iter().any(|d| d == day) {
                continue;
            }
            if let Some([a, b]) = hours {
                if hour < u32::from(a) || hour >= u32::from(b) {
                    continue;
                }
            }
            let utilization = w["utilization"].as_f64().unwrap_or(0.0);
            let capacity = w["capacity"].as_f64().unwrap_or(0.0);
            let peak = match w["peak_people"].as_f64() {
                Some(p) if capacity > 0.0 => p / capacity,
                _ => utilization,
            };
            let label = if granularity == "1h" {
                format!("{} {:02}:00", date.format("%a %-d %b %Y"), hour)
            } else {
                date.format("%a %-d %b %Y").to_string()
            };
            used.push((utilization, peak, label));
        }
        let n = used.len();
        let mean = if n > 0 {
            used.iter().map(|u| u.0).sum::<f64>() / n as f64
        } else {
            0.0
        };
        let peak = used.iter().max_by(|a, b| a.1.total_cmp(&b.1));
        let unit = if granularity == "1h" { "hours" } else { "days" };
        Ok(json!({
            "place": name,
            "period": period.describe((d1, d2)),
            "weekdays": weekdays_phrase(&plan.when.weekdays),
            "hours": hours_phrase(hours),
            "unit": unit,
            "windows": n,
            "mean_utilization": mean,
            "peak_utilization": peak.map(|p| p.1),
            "peak_at": peak.map(|p| p.2.clone()),
        }))
    }

    async fn utilization(&mut self, plan: &Plan) -> Result<Answer, ApiError> {
        let s = &plan.scope;
        let place = if let Some(room) = &s.room {
            Place::Room(room.clone())
        } else if let [office] = s.offices.as_slice() {
            Place::Office(office.clone(), s.floor)
        } else if let [region] = s.regions.as_slice() {
            Place::Region(region.clone())
        } else {
            Place::Portfolio
        };
        let r = self.usage(plan, place).await?;
        let filters = [r["weekdays"].as_str(), r["hours"].as_str()]
            .into_iter()
            .flatten()
            .filter(|f| !f.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        let filters = if filters.is_empty() {
            String::new()
        } else {
            format!(" {filters}")
        };
        let n = r["windows"].as_u64().unwrap_or(0) as usize;
        let text = if n > 0 && r["peak_utilization"].as_f64() == Some(0.0) {
            format!(
                "Nobody was seen in {}{filters} {}, over {}.",
                r["place"].as_str().unwrap_or(""),
                r["period"].as_str().unwrap_or(""),
                if r["unit"] == "hours" {
                    plural(n, "hour", "hours")
                } else {
                    plural(n, "day", "days")
                },
            )
        } else if n == 0 {
            format!(
                "There is no data for {}{filters} {}.",
                r["place"].as_str().unwrap_or(""),
                r["period"].as_str().unwrap_or("")
            )
        } else {
            let (unit, every) = if r["unit"] == "hours" {
                (("hour", "hours"), "hourly")
            } else {
                (("day", "days"), "daily")
            };
            format!(
                "{}'s average {every} utilization{filters} {} was {}, over {}; its busiest {} reached {} of capacity, on {}.",
                capitalize(r["place"].as_str().unwrap_or("")),
                r["period"].as_str().unwrap_or(""),
                pct(r["mean_utilization"].as_f64().unwrap_or(0.0)),
                plural(n, unit.0, unit.1),
                if r["unit"] == "hours" { "hour" } else { "moment" },
                pct(r["peak_utilization"].as_f64().unwrap_or(0.0)),
                r["peak_at"].as_str().unwrap_or(""),
            )
        };
        Ok(self.answer(text, None, r))
    }

    async fn compare(&mut self, plan: &Plan) -> Result<Answer, ApiError> {
        let places: Vec<Place> = if plan.scope.offices.is_empty() {
            plan.scope
                .regions
                .iter()
                .map(|r| Place::Region(r.clone()))
                .collect()
        } else {
            plan.scope
                .offices
                .iter()
                .map(|o| Place::Office(o.clone(), None))
                .collect()
        };
        let mut rows = Vec::new();
        for place in places {
            rows.push(self.usage(plan, place).await?);
        }
        let mut ranked: Vec<&Value> = rows
            .iter()
            .filter(|r| r["windows"].as_u64() > Some(0))
            .collect();
        ranked.sort_by(|a, b| {
            b["mean_utilization"]
                .as_f64()
                .unwrap_or(0.0)
                .total_cmp(&a["mean_utilization"].as_f64().unwrap_or(0.0))
        });
        let said = |r: &Value| {
            format!(
                "{} {}",
                r["place"].as_str().unwrap_or(""),
                pct(r["mean_utilization"].as_f64().unwrap_or(0.0))
            )
        };
        let period = rows
            .first()
            .and_then(|r| r["period"].as_str())
            .unwrap_or("")
            .to_owned();
        let filters = [
            plan.when
                .weekdays
                .is_empty()
                .then(String::new)
                .unwrap_or_else(|| weekdays_phrase(&plan.when.weekdays)),
            hours_phrase(plan.when.hours),
        ]
        .into_iter()
        .filter(|f| !f.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
        let filters = if filters.is_empty() {
            String::new()
        } else {
            format!(" {filters}")
        };
        let missing: Vec<String> = rows
            .iter()
            .filter(|r| r["windows"].as_u64() == Some(0))
            .map(|r| r["place"].as_str().unwrap_or("").to_owned())
            .collect();
        let mut text =
            match ranked.as_slice() {
                [] => format!("None of them has data{filters} {period}."),
                [only] => format!("Only {} has data{filters} {period}.", said(only)),
                [first, rest @ ..] => {
                    format!(
                "{} was the busiest{filters} {period}, at {} average {} utilization; then {}.",
                first["place"].as_str().unwrap_or(""),
                pct(first["mean_utilization"].as_f64().unwrap_or(0.0)),
                if plan.when.hours.is_some() { "hourly" } else { "daily" },
                join_and(&rest.iter().map(|r| said(r)).collect::<Vec<_>>()),
            )
                }
            };
        if !missing.is_empty() && ranked.len() > 1 {
            text.push_str(&format!(" No data for {}.", join_and(&missing)));
        }
        let table = Table {
            columns: vec![
                "place".into(),
                "average utilization".into(),
                "peak".into(),
                "peak on".into(),
                "windows".into(),
            ],
            rows: ranked
                .iter()
                .map(|r| {
                    vec![
                        r["place"].as_str().unwrap_or("").to_owned(),
                        pct(r["mean_utilization"].as_f64().unwrap_or(0.0)),
                        pct(r["peak_utilization"].as_f64().unwrap_or(0.0)),
                        r["peak_at"].as_str().unwrap_or("").to_owned(),
                        r["windows"].to_string(),
                    ]
                })
                .collect(),
        };
        Ok(self.answer(
            text,
            Some(table),
            json!({ "places": rows, "period": period, "filters": filters.trim() }),
        ))
    }

    /// Local dates of the period for offices in `regions` and `country`: their zone if
    /// they share one, else UTC's today.
    fn local_dates(&self, plan: &Plan, offices: &[String]) -> (NaiveDate, NaiveDate, String) {
        let period = plan.period.unwrap_or(Period::Days(30));
        let zone = if offices.is_empty() {
            let c = self.catalog();
            self.common_zone(
                c.offices_in(&plan.scope.regions, plan.scope.country.as_deref())
                    .map(|o| o.id.as_str()),
            )
        } else {
            self.common_zone(offices.iter().map(String::as_str))
        };
        let (d1, d2) = period.dates(today(&zone, self.now));
        (d1, d2, period.describe((d1, d2)))
    }

    fn place_phrase(&self, plan: &Plan) -> String {
        let s = &plan.scope;
        let mut parts = Vec::new();
        if let Some(floor) = s.floor {
            parts.push(format!("on floor {floor}"));
        }
        if let [office] = s.offices.as_slice() {
            parts.push(format!("in {}", self.office_name(office)));
        }
        if let [region] = s.regions.as_slice() {
            parts.push(format!("in {region}"));
        }
        if let Some(country) = &s.country {
            parts.push(format!("in {country}"));
        }
        parts.join(" ")
    }

    async fn ranking(&mut self, plan: &Plan) -> Result<Answer, ApiError> {
        let (d1, d2, period) = self.local_dates(plan, &[]);
        let mut query = format!("from_date={d1}&to_date={d2}");
        if let [region] = plan.scope.regions.as_slice() {
            query.push_str(&format!("&region={region}"));
        }
        if let Some(country) = &plan.scope.country {
            query.push_str(&format!("&country={country}"));
        }
        let body = self
            .fetch(
                format!("/v1/offices/ranking?{query}"),
                "each office's average daily utilization",
            )
            .await?;
        let mut offices: Vec<Value> = body["offices"].as_array().cloned().unwrap_or_default();
        let least = plan.order == Some(Order::Least);
        if least {
            offices.reverse();
        }
        let limit = plan.limit.unwrap_or(DEFAULT_ROWS) as usize;
        offices.truncate(limit);
        for o in &mut offices {
            o["name"] = json!(self.office_name(o["office_id"].as_str().unwrap_or("")));
        }
        let place = self.place_phrase(plan);
        let place = if place.is_empty() {
            String::new()
        } else {
            format!(" {place}")
        };
        let which = if least { "quietest" } else { "busiest" };
        let listed: Vec<String> = offices
            .iter()
            .map(|o| {
                format!(
                    "{} {}",
                    o["name"].as_str().unwrap_or(""),
                    pct(o["utilization"].as_f64().unwrap_or(0.0))
                )
            })
            .collect();
        let text = if listed.is_empty() {
            format!("No office{place} has data {period}.")
        } else if listed.len() == 1 {
            format!(
                "The {which} office{place} {period} was {}, by average daily utilization.",
                listed[0]
            )
        } else {
            format!(
                "The {which} offices{place} {period}, by average daily utilization: {}.",
                join_and(&listed)
            )
        };
        let table = Table {
            columns: vec![
                "office".into(),
                "average daily utilization".into(),
                "busiest day".into(),
                "days".into(),
            ],
            rows: offices
                .iter()
                .map(|o| {
                    vec![
                        o["name"].as_str().unwrap_or("").to_owned(),
                        pct(o["utilization"].as_f64().unwrap_or(0.0)),
                        pct(o["peak_day_utilization"].as_f64().unwrap_or(0.0)),
                        o["days"].to_string(),
                    ]
                })
                .collect(),
        };
        Ok(self.answer(
            text,
            Some(table),
            json!({ "period": period, "offices": offices, "place": place.trim() }),
        ))
    }

    async fn underused(&mut self, plan: &Plan) -> Result<Answer, ApiError> {
        let s = &plan.scope;
        let (d1, d2, period) = self.local_dates(plan, &s.offices);
        let threshold = plan.threshold.unwrap_or(0.2);
        let limit = plan.limit.unwrap_or(10);
        let mut query = format!("from_date={d1}&to_date={d2}&threshold={threshold}&limit={limit}");
        if let [region] = s.regions.as_slice() {
            query.push_str(&format!("&region={region}"));
        }
        if let Some(country) = &s.country {
            query.push_str(&format!("&country={country}"));
        }
        if let [office] = s.offices.as_slice() {
            query.push_str(&format!("&office_id={office}"));
        }
        if let Some(floor) = s.floor {
            query.push_str(&format!("&floor={floor}"));
        }
        if let Some(kind) = &s.kind {
            query.push_str(&format!("&kind={kind}"));
        }
        let body = self
            .fetch(
                format!("/v1/insights/underused?{query}"),
                "the rooms under the threshold and their costs",
            )
            .await?;
        let below = body["rooms_below"].as_u64().unwrap_or(0) as usize;
        let saving = body["monthly_saving"].as_f64().unwrap_or(0.0);
        let mut rooms: Vec<Value> = body["rooms"].as_array().cloned().unwrap_or_default();
        for r in &mut rooms {
            r["office"] = json!(self.office_name(r["office_id"].as_str().unwrap_or("")));
        }
        let what = match s.kind.as_deref() {
            Some("MEETING") => ("meeting room", "meeting rooms"),
            Some("FOCUS") => ("focus room", "focus rooms"),
            Some("DESK") => ("desk", "desks"),
            Some("OPEN_SPACE") => ("open space", "open spaces"),
            Some("COLLAB") => ("collaboration space", "collaboration spaces"),
            _ => ("room", "rooms"),
        };
        let place = self.place_phrase(plan);
        let place = if place.is_empty() {
            String::new()
        } else {
            format!(" {place}")
        };
        let mut text = if below == 0 {
            format!(
                "No {}{place} averaged under {} utilization {period}.",
                what.1,
                pct(threshold)
            )
        } else {
            format!(
                "{}{place} averaged under {} utilization {period}",
                capitalize(&plural(below, what.0, what.1)),
                pct(threshold)
            )
        };
        if below > 0 {
            if saving > 0.0 {
                text.push_str(&format!(
                    "; giving them up would save {} a month",
                    thousands(saving)
                ));
            }
            let mut lowest: Vec<&Value> = rooms.iter().collect();
            lowest.sort_by(|a, b| {
                a["utilization"]
                    .as_f64()
                    .unwrap_or(0.0)
                    .total_cmp(&b["utilization"].as_f64().unwrap_or(0.0))
            });
            let named: Vec<String> = lowest
                .iter()
                .take(3)
                .map(|r| {
                    format!(
                        "{} ({}) {}",
                        r["name"].as_str().unwrap_or(""),
                        r["office"].as_str().unwrap_or(""),
                        pct(r["utilization"].as_f64().unwrap_or(0.0))
                    )
                })
                .collect();
            text.push_str(&format!(". The lowest listed: {}.", join_and(&named)));
        }
        let table = Table {
            columns: vec![
                "room".into(),
                "office".into(),
                "average utilization".into(),
                "days".into(),
                "monthly cost".into(),
            ],
            rows: rooms
                .iter()
                .map(|r| {
                    vec![
                        r["name"].as_str().unwrap_or("").to_owned(),
                        r["office"].as_str().unwrap_or("").to_owned(),
                        pct(r["utilization"].as_f64().unwrap_or(0.0)),
                        r["days"].to_string(),
                        r["monthly_saving"]
                            .as_f64()
                            .map_or(String::new(), thousands),
                    ]
                })
                .collect(),
        };
        let result = json!({
            "period": period, "threshold": threshold, "rooms_below": below, "monthly_saving": saving,
            "rooms": rooms, "place": place.trim(),
        });
        Ok(self.answer(text, Some(table), result))
    }

    async fn heatmap(&mut self, plan: &Plan) -> Result<Answer, ApiError> {
        let office = plan.scope.offices[0].clone();
        let zone = self.zone(&office);
        let period = plan.period.unwrap_or(Period::Weeks(4));
        let (d1, d2) = period.dates(today(&zone, self.now));
        let described = period.describe((d1, d2));
        let endpoint = format!(
            "/v1/offices/{office}/heatmap?from={}&to={}",
            iso(midnight(&zone, d1)),
            iso(midnight(&zone, d2))
        );
        let body = self
            .fetch(endpoint, "the average utilization of each hour of the week")
            .await?;
        let days: Vec<usize> = if plan.when.weekdays.is_empty() {
            (0..7).collect()
        } else {
            plan.when
                .weekdays
                .iter()
                .filter_map(|d| WEEKDAYS.iter().position(|w| w == d))
                .collect()
        };
        let least = plan.order == Some(Order::Least);
        // Quiet hours are looked for in the working day: every office is empty at night.
        let (first, last) = (7usize, 20usize);
        let mut cells = Vec::new();
        for &d in &days {
            for h in 0..24 {
                if let Some(u) = body["utilization"][d][h].as_f64() {
                    if !least
                        || (first..last).contains(&h) && (d < 5 || !plan.when.weekdays.is_empty())
                    {
                        cells.push((u, d, h));
                    }
                }
            }
        }
        cells.sort_by(|a, b| {
            if least {
                a.0.total_cmp(&b.0)
            } else {
                b.0.total_cmp(&a.0)
            }
        });
        let name = self.office_name(&office);
        let top: Vec<Value> = cells
            .iter()
            .take(3)
            .map(|&(u, d, h)| json!({ "when": format!("{}s at {h:02}:00", DAY_NAMES[d]), "utilization": u }))
            .collect();
        let mut by_day: Vec<Value> = days
            .iter()
            .filter_map(|&d| {
                let hours: Vec<f64> = (first..last).filter_map(|h| body["utilization"][d][h].as_f64()).collect();
                (!hours.is_empty()).then(|| json!({ "day": DAY_NAMES[d], "utilization": hours.iter().sum::<f64>() / hours.len() as f64 }))
            })
            .collect();
        by_day.sort_by(|a, b| {
            let (x, y) = (
                a["utilization"].as_f64().unwrap_or(0.0),
                b["utilization"].as_f64().unwrap_or(0.0),
            );
            if least {
                x.total_cmp(&y)
            } else {
                y.total_cmp(&x)
            }
        });
        let working = format!("{first:02}:00 to {last:02}:00");
        let which = if least { "quietest" } else { "busiest" };
        let text = match top.as_slice() {
            [] => format!("There is no data for {name} {described}."),
            [best, ..] if !least && best["utilization"].as_f64() == Some(0.0) => {
                format!("Nobody was seen in {name} {described}.")
            }
            [best, rest @ ..] => {
                let mut t = format!(
                    "{name} is {which} on {}: {} average utilization {described}",
                    best["when"].as_str().unwrap_or(""),
                    pct(best["utilization"].as_f64().unwrap_or(0.0))
                );
                if !rest.is_empty() {
                    let then: Vec<String> = rest
                        .iter()
                        .map(|c| {
                            format!(
                                "{} ({})",
                                c["when"].as_str().unwrap_or(""),
                                pct(c["utilization"].as_f64().unwrap_or(0.0))
                            )
                        })
                        .collect();
                    t.push_str(&format!("; then {}", join_and(&then)));
                }
                t.push('.');
                if let Some(day) = by_day.first().filter(|_| days.len() > 1) {
                    t.push_str(&format!(
                        " Its {which} day is {}, at {} from {working}.",
                        day["day"].as_str().unwrap_or(""),
                        pct(day["utilization"].as_f64().unwrap_or(0.0))
                    ));
                }
                t
            }
        };
        let table = Table {
            columns: vec!["day".into(), format!("average utilization, {working}")],
            rows: by_day
                .iter()
                .map(|d| {
                    vec![
                        d["day"].as_str().unwrap_or("").to_owned(),
                        pct(d["utilization"].as_f64().unwrap_or(0.0)),
                    ]
                })
                .collect(),
        };
        let result = json!({ "office": name, "period": described, "hours": top, "days": by_day, "working_hours": working });
        Ok(self.answer(text, Some(table), result))
    }

    async fn forecast(&mut self, plan: &Plan) -> Result<Answer, ApiError> {
        let (kind, id, name, capacity) = match &plan.scope.room {
            Some(room) => (
                "rooms",
                room.clone(),
                self.room_name(room),
                self.metadata.room_capacity(room),
            ),
            None => {
                let office = plan.scope.offices[0].clone();
                let name = self.office_name(&office);
                let capacity = self.metadata.office_capacity(&office);
                ("offices", office, name, capacity)
            }
        };
        let from = self.now - Duration::seconds(i64::from(self.now.second()));
        let endpoint = format!("/v1/{kind}/{id}/forecast?granularity=1d&from={}", iso(from));
        let body = match self
            .fetch(endpoint, "the forecast daily peaks, people")
            .await
        {
            Ok(b) => b,
            Err(e) if e.is_not_found() => json!({ "forecast": [] }),
            Err(e) => return Err(e),
        };
        let zone = match &plan.scope.room {
            Some(room) => self.zone(
                &self
                    .catalog()
                    .room(room)
                    .map(|r| r.office.clone())
                    .unwrap_or_default(),
            ),
            None => self.zone(&plan.scope.offices[0]),
        };
        let cap = capacity as f64;
        let points: Vec<Value> = body["forecast"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| {
                let day = at(&p["from"])?.with_timezone(&zone).date_naive();
                let expected = p["expected"].as_f64()?;
                Some(json!({
                    "day": day.format("%a %-d %b %Y").to_string(),
                    "expected_peak": expected,
                    "low": p["low"].as_f64(),
                    "high": p["high"].as_f64(),
                    "share": if cap > 0.0 { expected / cap } else { 0.0 },
                    "high_share": if cap > 0.0 { p["high"].as_f64().unwrap_or(0.0) / cap } else { 0.0 },
                }))
            })
            .collect();
        let days = points.len();
        let share = |p: &Value, f: &str| p[f].as_f64().unwrap_or(0.0);
        let text = if days == 0 || cap == 0.0 {
            format!("There is no forecast for {name} yet: forecasts need a few weeks of history.")
        } else {
            let busiest = points
                .iter()
                .max_by(|a, b| share(a, "share").total_cmp(&share(b, "share")))
                .expect("not empty");
            match plan.threshold {
                Some(t) => match points.iter().find(|p| share(p, "share") >= t) {
                    Some(p) => format!(
                        "{name} is forecast to pass {} of its {} seats first on {}: an expected peak of {} people ({}), 95% interval {} to {}.",
                        pct(t),
                        capacity,
                        p["day"].as_str().unwrap_or(""),
                        p["expected_peak"].as_f64().unwrap_or(0.0).round(),
                        pct(share(p, "share")),
                        p["low"].as_f64().unwrap_or(0.0).round(),
                        p["high"].as_f64().unwrap_or(0.0).round(),
                    ),
                    None => {
                        let mut t_ = format!(
                            "{name} is not forecast to reach {} of its {} seats in the next {} days; its highest expected peak is {} people ({}) on {}.",
                            pct(t),
                            capacity,
                            days,
                            busiest["expected_peak"].as_f64().unwrap_or(0.0).round(),
                            pct(share(busiest, "share")),
                            busiest["day"].as_str().unwrap_or(""),
                        );
                        if let Some(p) = points.iter().find(|p| share(p, "high_share") >= t) {
                            t_.push_str(&format!(
                                " The upper end of the 95% interval reaches it on {} ({}).",
                                p["day"].as_str().unwrap_or(""),
                                pct(share(p, "high_share"))
                            ));
                        }
                        t_
                    }
                },
                None => format!(
                    "{name}'s busiest forecast day in the next {} days is {}, with an expected peak of {} people ({} of {} seats).",
                    days,
                    busiest["day"].as_str().unwrap_or(""),
                    busiest["expected_peak"].as_f64().unwrap_or(0.0).round(),
                    pct(share(busiest, "share")),
                    capacity,
                ),
            }
        };
        let table = Table {
            columns: vec![
                "day".into(),
                "expected peak, people".into(),
                "share of seats".into(),
                "95% interval".into(),
            ],
            rows: points
                .iter()
                .take(7)
                .map(|p| {
                    vec![
                        p["day"].as_str().unwrap_or("").to_owned(),
                        format!("{}", p["expected_peak"].as_f64().unwrap_or(0.0).round()),
                        pct(share(p, "share")),
                        format!(
                            "{} to {}",
                            p["low"].as_f64().unwrap_or(0.0).round(),
                            p["high"].as_f64().unwrap_or(0.0).round()
                        ),
                    ]
                })
                .collect(),
        };
        let result = json!({
            "place": name, "seats": capacity, "threshold": plan.threshold, "days": days,
            "interval": 95, "forecast": points,
        });
        Ok(self.answer(text, Some(table), result))
    }

    async fn anomalies(&mut self, plan: &Plan) -> Result<Answer, ApiError> {
        let s = &plan.scope;
        let office = s.offices.first().cloned().or_else(|| {
            s.room
                .as_ref()
                .and_then(|r| self.catalog().room(r).map(|r| r.office.clone()))
        });
        let zone = office.as_deref().map_or(Tz::UTC, |o| self.zone(o));
        let period = plan.period.unwrap_or(Period::Days(7));
        let (d1, d2) = period.dates(today(&zone, self.now));
        let described = period.describe((d1, d2));
        let limit = plan.limit.unwrap_or(20);
        let mut query = format!(
            "from={}&to={}&limit={limit}",
            iso(midnight(&zone, d1)),
            iso(midnight(&zone, d2))
        );
        match (&s.room, s.offices.first()) {
            (Some(room), _) => query.push_str(&format!("&room_id={room}")),
            (None, Some(office)) => query.push_str(&format!("&office_id={office}")),
            _ => {}
        }
        let body = self
            .fetch(
                format!("/v1/anomalies?{query}"),
                "the anomalies in the period, newest first",
            )
            .await?;
        let mut listed: Vec<Value> = body["anomalies"].as_array().cloned().unwrap_or_default();
        for a in &mut listed {
            let place = match a["room_id"].as_str() {
                Some(room) => format!(
                    "{} ({})",
                    self.room_name(room),
                    self.office_name(a["office_id"].as_str().unwrap_or(""))
                ),
                None => self.office_name(a["office_id"].as_str().unwrap_or("")),
            };
            a["place"] = json!(place);
            a["kind_label"] = json!(kind_label(a["kind"].as_str().unwrap_or("")).0);
            let zone_of = self.zone(a["office_id"].as_str().unwrap_or(""));
            a["since"] = json!(at(&a["from"]).map(|t| t
                .with_timezone(&zone_of)
                .format("%a %-d %b %H:%M")
                .to_string()));
        }
        let place = match (&s.room, s.offices.first()) {
            (Some(room), _) => format!(" in {}", self.room_name(room)),
            (None, Some(o)) => format!(" in {}", self.office_name(o)),
            _ => String::new(),
        };
        let n = listed.len();
        let mut kinds: std::collections::BTreeMap<String, usize> = Default::default();
        for a in &listed {
            *kinds
                .entry(a["kind"].as_str().unwrap_or("").to_owned())
                .or_default() += 1;
        }
        let counted: Vec<Value> = kinds
            .iter()
            .map(|(k, c)| json!({ "kind": kind_label(k).0, "kinds": kind_label(k).1, "count": c }))
            .collect();
        let text = if n == 0 {
            format!("No anomalies{place} {described}.")
        } else {
            let at_least = if n as u32 >= limit { "At least " } else { "" };
            let by_kind: Vec<String> = kinds
                .iter()
                .map(|(k, &c)| plural(c, kind_label(k).0, kind_label(k).1))
                .collect();
            let latest = &listed[0];
            format!(
                "{at_least}{}{place} {described}: {}. The latest: {} in {}, from {}{}.",
                plural(n, "anomaly", "anomalies"),
                join_and(&by_kind),
                latest["kind_label"].as_str().unwrap_or(""),
                latest["place"].as_str().unwrap_or(""),
                latest["since"].as_str().unwrap_or(""),
                if latest["ongoing"] == json!(true) {
                    ", still ongoing"
                } else {
                    ""
                },
            )
        };
        let text = capitalize(&text);
        let table = Table {
            columns: vec![
                "kind".into(),
                "where".into(),
                "from".into(),
                "severity".into(),
            ],
            rows: listed
                .iter()
                .take(10)
                .map(|a| {
                    vec![
                        a["kind_label"].as_str().unwrap_or("").to_owned(),
                        a["place"].as_str().unwrap_or("").to_owned(),
                        a["since"].as_str().unwrap_or("").to_owned(),
                        a["severity"].as_str().unwrap_or("").to_owned(),
                    ]
                })
                .collect(),
        };
        let result = json!({ "period": described, "anomalies": listed, "count": n, "by_kind": counted, "limit": limit });
        Ok(self.answer(text, Some(table), result))
    }

    async fn ghosts(&mut self, plan: &Plan) -> Result<Answer, ApiError> {
        let s = &plan.scope;
        let (d1, d2, period) = self.local_dates(plan, &s.offices);
        let limit = plan.limit.unwrap_or(DEFAULT_ROWS);
        let mut query = format!("from_date={d1}&to_date={d2}&limit={limit}");
        if let Some(office) = s.offices.first() {
            query.push_str(&format!("&office_id={office}"));
        }
        let body = self
            .fetch(
                format!("/v1/insights/ghost-bookings?{query}"),
                "booked rooms by the share of their booked time that sat empty",
            )
            .await?;
        let mut rooms: Vec<Value> = body["rooms"].as_array().cloned().unwrap_or_default();
        for r in &mut rooms {
            r["office"] = json!(self.office_name(r["office_id"].as_str().unwrap_or("")));
        }
        let place = self.place_phrase(plan);
        let place = if place.is_empty() {
            String::new()
        } else {
            format!(" {place}")
        };
        let described: Vec<String> = rooms
            .iter()
            .filter(|r| r["ghost_share"].as_f64() > Some(0.0))
            .take(3)
            .map(|r| {
                let mut t = format!(
                    "{} ({}) {} of its booked time",
                    r["name"].as_str().unwrap_or(""),
                    r["office"].as_str().unwrap_or(""),
                    pct(r["ghost_share"].as_f64().unwrap_or(0.0))
                );
                if r["meetings"].as_u64() > Some(0) {
                    t.push_str(&format!(
                        ", {} of {} meetings no-shows",
                        r["no_shows"], r["meetings"]
                    ));
                }
                t
            })
            .collect();
        let text = if described.is_empty() {
            format!("No booked room{place} sat empty {period}.")
        } else {
            format!(
                "Booked but empty most often{place} {period}: {}.",
                described.join("; ")
            )
        };
        let table = Table {
            columns: vec![
                "room".into(),
                "office".into(),
                "booked but empty".into(),
                "no-shows".into(),
                "meetings".into(),
            ],
            rows: rooms
                .iter()
                .map(|r| {
                    vec![
                        r["name"].as_str().unwrap_or("").to_owned(),
                        r["office"].as_str().unwrap_or("").to_owned(),
                        pct(r["ghost_share"].as_f64().unwrap_or(0.0)),
                        r["no_shows"].to_string(),
                        r["meetings"].to_string(),
                    ]
                })
                .collect(),
        };
        Ok(self.answer(
            text,
            Some(table),
            json!({ "period": period, "rooms": rooms, "rooms_booked": body["rooms_booked"] }),
        ))
    }

    async fn seats(&mut self, plan: &Plan) -> Result<Answer, ApiError> {
        let mut query = "days=30".to_owned();
        if let Some(office) = plan.scope.offices.first() {
            query.push_str(&format!("&office_id={office}"));
        }
        let body = self
            .fetch(
                format!("/v1/insights/seats?{query}"),
                "headcount, seats and the busiest day's peak per office",
            )
            .await?;
        let mut offices: Vec<Value> = body["offices"].as_array().cloned().unwrap_or_default();
        offices.sort_by(|a, b| {
            b["seats_releasable"]
                .as_f64()
                .unwrap_or(0.0)
                .total_cmp(&a["seats_releasable"].as_f64().unwrap_or(0.0))
        });
        for o in &mut offices {
            o["name"] = json!(self.office_name(o["office_id"].as_str().unwrap_or("")));
        }
        let said: Vec<String> = offices
            .iter()
            .take(3)
            .filter_map(|o| o["recommendation"].as_str().map(str::to_owned))
            .collect();
        let text = if said.is_empty() {
            let place = plan
                .scope
                .offices
                .first()
                .map_or("any office".to_owned(), |o| self.office_name(o));
            format!("There is no headcount for {place}: import it with roomflow headcount import or sync.")
        } else {
            said.iter()
                .map(|s| {
                    if s.ends_with('.') {
                        s.clone()
                    } else {
                        format!("{s}.")
                    }
                })
                .collect::<Vec<_>>()
                .join(" ")
        };
        let table = Table {
            columns: vec![
                "office".into(),
                "headcount".into(),
                "seats".into(),
                "busiest day's peak".into(),
                "seats that could go".into(),
            ],
            rows: offices
                .iter()
                .map(|o| {
                    vec![
                        o["name"].as_str().unwrap_or("").to_owned(),
                        o["headcount"].to_string(),
                        o["seats"].as_u64().map_or(String::new(), |s| s.to_string()),
                        o["peak_present"]
                            .as_f64()
                            .map_or(String::new(), |p| format!("{}", p.round())),
                        o["seats_releasable"]
                            .as_f64()
                            .map_or(String::new(), |p| format!("{}", p.round())),
                    ]
                })
                .collect(),
        };
        Ok(self.answer(
            text,
            Some(table),
            json!({ "offices": offices, "from": body["from"], "to": body["to"] }),
        ))
    }

    fn answer(&mut self, text: String, table: Option<Table>, result: Value) -> Answer {
        Answer {
            text,
            table: table.filter(|t| !t.rows.is_empty()),
            result,
            references: std::mem::take(&mut self.references),
        }
    }
}

/// Whose utilization.
enum Place {
    Room(String),
    Office(String, Option<i32>),
    Region(String),
    Portfolio,
}

/// An anomaly kind as people say it: (one, many).
fn kind_label(kind: &str) -> (&'static str, &'static str) {
    match kind {
        "occupancy" => ("unusual occupancy", "spells of unusual occupancy"),
        "capacity_breach" => ("capacity breach", "capacity breaches"),
        "stuck_sensor" => ("stuck sensor", "stuck sensors"),
        "silent_sensor" => ("silent sensor", "silent sensors"),
        _ => ("anomaly", "anomalies"),
    }
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map_or(String::new(), |f| f.to_uppercase().chain(c).collect())
}
