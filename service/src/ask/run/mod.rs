//! Runs a checked plan through the service's own query operations and words the answer.
//! Each operation is called by the request that reproduces it (its endpoint and
//! parameters), which the answer lists as its references; the numbers it says are
//! computed from those results, and are what [`super::check`] finds in the result.

mod lists;
mod signals;
mod usage;

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use serde::Serialize;
use serde_json::Value;

use super::catalog::Catalog;
use super::plan::{Op, Plan, WEEKDAYS};
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
pub(super) const DEFAULT_ROWS: u32 = 5;

pub(super) fn pct(x: f64) -> String {
    format!("{:.0}%", x * 100.0)
}

pub(super) fn thousands(x: f64) -> String {
    let n = x.round() as i64;
    let digits = n.abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
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

pub(super) fn join_and(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

pub(super) fn iso(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

pub(super) fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// The time of an ISO string of a result.
pub(super) fn at(v: &Value) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(v.as_str()?)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

pub(super) const DAY_NAMES: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];

/// "on Tuesdays", "on Mondays and Fridays", "on weekdays".
pub(super) fn weekdays_phrase(days: &[String]) -> String {
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

/// A string field of a result row ("" when absent).
pub(super) fn field<'v>(row: &'v Value, key: &str) -> &'v str {
    row[key].as_str().unwrap_or("")
}

/// A share field of a result row as a percentage ("0%" when absent).
pub(super) fn pct_at(row: &Value, key: &str) -> String {
    pct(row[key].as_f64().unwrap_or(0.0))
}

impl Table {
    /// A table of these column names and rows.
    pub(super) fn new(columns: &[&str], rows: Vec<Vec<String>>) -> Self {
        Self {
            columns: columns.iter().map(|c| (*c).to_owned()).collect(),
            rows,
        }
    }
}

/// " on Tuesdays between 12:00 and 17:00": the plan's weekdays and hours, or nothing.
pub(super) fn filters_phrase(when: &super::plan::When) -> String {
    let said: Vec<String> = [weekdays_phrase(&when.weekdays), hours_phrase(when.hours)]
        .into_iter()
        .filter(|f| !f.is_empty())
        .collect();
    match said.is_empty() {
        true => String::new(),
        false => format!(" {}", said.join(" ")),
    }
}

/// `k=v&…` of the pairs that have a value (ids, dates and numbers: nothing to escape).
pub(super) fn query(pairs: &[(&str, Option<String>)]) -> String {
    pairs
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={v}")))
        .collect::<Vec<_>>()
        .join("&")
}

pub(super) fn hours_phrase(hours: Option<[u8; 2]>) -> String {
    hours.map_or(String::new(), |[a, b]| {
        format!("between {a:02}:00 and {b:02}:00")
    })
}

impl Run<'_> {
    pub(super) fn catalog(&self) -> &Catalog {
        self.metadata.catalog()
    }

    pub(super) fn office_name(&self, id: &str) -> String {
        self.catalog()
            .office(id)
            .map_or(id.to_owned(), |o| o.name.clone())
    }

    pub(super) fn room_name(&self, id: &str) -> String {
        self.catalog()
            .room(id)
            .map_or(id.to_owned(), |r| r.name.clone())
    }

    pub(super) fn zone(&self, office: &str) -> Tz {
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
    pub(super) async fn fetch(&mut self, endpoint: String, gives: &str) -> Result<Value, ApiError> {
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

    pub(super) fn answer(&mut self, text: String, table: Option<Table>, result: Value) -> Answer {
        Answer {
            text,
            table: table.filter(|t| !t.rows.is_empty()),
            result,
            references: std::mem::take(&mut self.references),
        }
    }
}

pub(super) fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map_or(String::new(), |f| f.to_uppercase().chain(c).collect())
}
