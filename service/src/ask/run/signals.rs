//! An office's busiest hours, forecasts and anomalies.

use chrono::{Duration, Timelike};
use chrono_tz::Tz;
use serde_json::{json, Value};

use super::*;
use crate::ask::dates::{midnight, today, Period};
use crate::ask::plan::{Order, Plan, WEEKDAYS};
use crate::routes::ApiError;

impl Run<'_> {
    pub(super) async fn heatmap(&mut self, plan: &Plan) -> Result<Answer, ApiError> {
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
                    field(best, "when"),
                    pct_at(best, "utilization")
                );
                if !rest.is_empty() {
                    let then: Vec<String> = rest
                        .iter()
                        .map(|c| format!("{} ({})", field(c, "when"), pct_at(c, "utilization")))
                        .collect();
                    t.push_str(&format!("; then {}", join_and(&then)));
                }
                t.push('.');
                if let Some(day) = by_day.first().filter(|_| days.len() > 1) {
                    t.push_str(&format!(
                        " Its {which} day is {}, at {} from {working}.",
                        field(day, "day"),
                        pct_at(day, "utilization")
                    ));
                }
                t
            }
        };
        let table = Table {
            columns: vec!["day".into(), format!("average utilization, {working}")],
            rows: by_day
                .iter()
                .map(|d| vec![field(d, "day").to_owned(), pct_at(d, "utilization")])
                .collect(),
        };
        let result = json!({ "office": name, "period": described, "hours": top, "days": by_day, "working_hours": working });
        Ok(self.answer(text, Some(table), result))
    }

    pub(super) async fn forecast(&mut self, plan: &Plan) -> Result<Answer, ApiError> {
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
                        field(p, "day"),
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
                            field(busiest, "day"),
                        );
                        if let Some(p) = points.iter().find(|p| share(p, "high_share") >= t) {
                            t_.push_str(&format!(
                                " The upper end of the 95% interval reaches it on {} ({}).",
                                field(p, "day"),
                                pct(share(p, "high_share"))
                            ));
                        }
                        t_
                    }
                },
                None => format!(
                    "{name}'s busiest forecast day in the next {} days is {}, with an expected peak of {} people ({} of {} seats).",
                    days,
                    field(busiest, "day"),
                    busiest["expected_peak"].as_f64().unwrap_or(0.0).round(),
                    pct(share(busiest, "share")),
                    capacity,
                ),
            }
        };
        let table = Table::new(
            &[
                "day",
                "expected peak, people",
                "share of seats",
                "95% interval",
            ],
            points
                .iter()
                .take(7)
                .map(|p| {
                    vec![
                        field(p, "day").to_owned(),
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
        );
        let result = json!({
            "place": name, "seats": capacity, "threshold": plan.threshold, "days": days,
            "interval": 95, "forecast": points,
        });
        Ok(self.answer(text, Some(table), result))
    }

    pub(super) async fn anomalies(&mut self, plan: &Plan) -> Result<Answer, ApiError> {
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
        let query = query(&[
            ("from", Some(iso(midnight(&zone, d1)))),
            ("to", Some(iso(midnight(&zone, d2)))),
            ("limit", Some(limit.to_string())),
            ("room_id", s.room.clone()),
            (
                "office_id",
                s.offices.first().filter(|_| s.room.is_none()).cloned(),
            ),
        ]);
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
                    self.office_name(field(a, "office_id"))
                ),
                None => self.office_name(field(a, "office_id")),
            };
            a["place"] = json!(place);
            a["kind_label"] = json!(kind_label(field(a, "kind")).0);
            let zone_of = self.zone(field(a, "office_id"));
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
            *kinds.entry(field(a, "kind").to_owned()).or_default() += 1;
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
                field(latest, "kind_label"),
                field(latest, "place"),
                field(latest, "since"),
                if latest["ongoing"] == json!(true) {
                    ", still ongoing"
                } else {
                    ""
                },
            )
        };
        let text = capitalize(&text);
        let table = Table::new(
            &["kind", "where", "from", "severity"],
            listed
                .iter()
                .take(10)
                .map(|a| {
                    vec![
                        field(a, "kind_label").to_owned(),
                        field(a, "place").to_owned(),
                        field(a, "since").to_owned(),
                        field(a, "severity").to_owned(),
                    ]
                })
                .collect(),
        );
        let result = json!({ "period": described, "anomalies": listed, "count": n, "by_kind": counted, "limit": limit });
        Ok(self.answer(text, Some(table), result))
    }
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
