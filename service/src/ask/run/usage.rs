//! Utilization of one place, and places compared: the series endpoints, their windows
//! filtered to the period's local days, weekdays and hours.

use chrono::{Datelike, Duration, Timelike};
use chrono_tz::Tz;
use serde_json::{json, Value};

use super::*;
use crate::ask::dates::{midnight, today, Period};
use crate::ask::plan::{Plan, WEEKDAYS};
use crate::routes::ApiError;

impl Run<'_> {
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
        let query = query(&[
            ("granularity", Some(granularity.to_owned())),
            ("from", Some(iso(from))),
            ("to", Some(iso(to))),
            (
                "floor",
                match &place {
                    Place::Office(_, floor) => floor.map(|f| f.to_string()),
                    _ => None,
                },
            ),
            (
                "region",
                match &place {
                    Place::Region(r) => Some(r.clone()),
                    _ => None,
                },
            ),
        ]);
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

    pub(super) async fn utilization(&mut self, plan: &Plan) -> Result<Answer, ApiError> {
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
        let filters = filters_phrase(&plan.when);
        let n = r["windows"].as_u64().unwrap_or(0) as usize;
        let text = if n > 0 && r["peak_utilization"].as_f64() == Some(0.0) {
            format!(
                "Nobody was seen in {}{filters} {}, over {}.",
                field(&r, "place"),
                field(&r, "period"),
                if r["unit"] == "hours" {
                    plural(n, "hour", "hours")
                } else {
                    plural(n, "day", "days")
                },
            )
        } else if n == 0 {
            format!(
                "There is no data for {}{filters} {}.",
                field(&r, "place"),
                field(&r, "period")
            )
        } else {
            let (unit, every) = if r["unit"] == "hours" {
                (("hour", "hours"), "hourly")
            } else {
                (("day", "days"), "daily")
            };
            format!(
                "{}'s average {every} utilization{filters} {} was {}, over {}; its busiest {} reached {} of capacity, on {}.",
                capitalize(field(&r, "place")),
                field(&r, "period"),
                pct_at(&r, "mean_utilization"),
                plural(n, unit.0, unit.1),
                if r["unit"] == "hours" { "hour" } else { "moment" },
                pct_at(&r, "peak_utilization"),
                field(&r, "peak_at"),
            )
        };
        Ok(self.answer(text, None, r))
    }

    pub(super) async fn compare(&mut self, plan: &Plan) -> Result<Answer, ApiError> {
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
        let said = |r: &Value| format!("{} {}", field(r, "place"), pct_at(r, "mean_utilization"));
        let period = rows
            .first()
            .and_then(|r| r["period"].as_str())
            .unwrap_or("")
            .to_owned();
        let filters = filters_phrase(&plan.when);
        let missing: Vec<String> = rows
            .iter()
            .filter(|r| r["windows"].as_u64() == Some(0))
            .map(|r| field(r, "place").to_owned())
            .collect();
        let mut text =
            match ranked.as_slice() {
                [] => format!("None of them has data{filters} {period}."),
                [only] => format!("Only {} has data{filters} {period}.", said(only)),
                [first, rest @ ..] => {
                    format!(
                "{} was the busiest{filters} {period}, at {} average {} utilization; then {}.",
                field(first, "place"),
                pct_at(first, "mean_utilization"),
                if plan.when.hours.is_some() { "hourly" } else { "daily" },
                join_and(&rest.iter().map(|r| said(r)).collect::<Vec<_>>()),
            )
                }
            };
        if !missing.is_empty() && ranked.len() > 1 {
            text.push_str(&format!(" No data for {}.", join_and(&missing)));
        }
        let table = Table::new(
            &["place", "average utilization", "peak", "peak on", "windows"],
            ranked
                .iter()
                .map(|r| {
                    vec![
                        field(r, "place").to_owned(),
                        pct_at(r, "mean_utilization"),
                        pct_at(r, "peak_utilization"),
                        field(r, "peak_at").to_owned(),
                        r["windows"].to_string(),
                    ]
                })
                .collect(),
        );
        Ok(self.answer(
            text,
            Some(table),
            json!({ "places": rows, "period": period, "filters": filters.trim() }),
        ))
    }
}

/// Whose utilization.
enum Place {
    Room(String),
    Office(String, Option<i32>),
    Region(String),
    Portfolio,
}
