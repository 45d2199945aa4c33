//! The lists: offices ranked, under-used rooms, rooms booked but empty, seats against
//! headcount, over whole local days.

use serde_json::{json, Value};

use super::*;
use crate::ask::dates::{today, Period};
use crate::ask::plan::{Order, Plan};
use crate::routes::ApiError;

impl Run<'_> {
    /// Local dates of the period for offices in `regions` and `country`: their zone if
    /// they share one, else UTC's today.
    pub(super) fn local_dates(
        &self,
        plan: &Plan,
        offices: &[String],
    ) -> (NaiveDate, NaiveDate, String) {
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

    /// " on floor 2 in London": where the plan looks, with a leading space; or nothing.
    pub(super) fn place_phrase(&self, plan: &Plan) -> String {
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
        parts.iter().map(|p| format!(" {p}")).collect()
    }

    pub(super) async fn ranking(&mut self, plan: &Plan) -> Result<Answer, ApiError> {
        let (d1, d2, period) = self.local_dates(plan, &[]);
        let query = query(&[
            ("from_date", Some(d1.to_string())),
            ("to_date", Some(d2.to_string())),
            ("region", plan.scope.regions.first().cloned()),
            ("country", plan.scope.country.clone()),
        ]);
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
            o["name"] = json!(self.office_name(field(o, "office_id")));
        }
        let place = self.place_phrase(plan);
        let which = if least { "quietest" } else { "busiest" };
        let listed: Vec<String> = offices
            .iter()
            .map(|o| format!("{} {}", field(o, "name"), pct_at(o, "utilization")))
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
        let table = Table::new(
            &["office", "average daily utilization", "busiest day", "days"],
            offices
                .iter()
                .map(|o| {
                    vec![
                        field(o, "name").to_owned(),
                        pct_at(o, "utilization"),
                        pct_at(o, "peak_day_utilization"),
                        o["days"].to_string(),
                    ]
                })
                .collect(),
        );
        Ok(self.answer(
            text,
            Some(table),
            json!({ "period": period, "offices": offices, "place": place.trim() }),
        ))
    }

    pub(super) async fn underused(&mut self, plan: &Plan) -> Result<Answer, ApiError> {
        let s = &plan.scope;
        let (d1, d2, period) = self.local_dates(plan, &s.offices);
        let threshold = plan.threshold.unwrap_or(0.2);
        let limit = plan.limit.unwrap_or(10);
        let query = query(&[
            ("from_date", Some(d1.to_string())),
            ("to_date", Some(d2.to_string())),
            ("threshold", Some(threshold.to_string())),
            ("limit", Some(limit.to_string())),
            ("region", s.regions.first().cloned()),
            ("country", s.country.clone()),
            ("office_id", s.offices.first().cloned()),
            ("floor", s.floor.map(|f| f.to_string())),
            ("kind", s.kind.clone()),
        ]);
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
            r["office"] = json!(self.office_name(field(r, "office_id")));
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
                        field(r, "name"),
                        field(r, "office"),
                        pct_at(r, "utilization")
                    )
                })
                .collect();
            text.push_str(&format!(". The lowest listed: {}.", join_and(&named)));
        }
        let table = Table::new(
            &[
                "room",
                "office",
                "average utilization",
                "days",
                "monthly cost",
            ],
            rooms
                .iter()
                .map(|r| {
                    vec![
                        field(r, "name").to_owned(),
                        field(r, "office").to_owned(),
                        pct_at(r, "utilization"),
                        r["days"].to_string(),
                        r["monthly_saving"]
                            .as_f64()
                            .map_or(String::new(), thousands),
                    ]
                })
                .collect(),
        );
        let result = json!({
            "period": period, "threshold": threshold, "rooms_below": below, "monthly_saving": saving,
            "rooms": rooms, "place": place.trim(),
        });
        Ok(self.answer(text, Some(table), result))
    }

    pub(super) async fn ghosts(&mut self, plan: &Plan) -> Result<Answer, ApiError> {
        let s = &plan.scope;
        let (d1, d2, period) = self.local_dates(plan, &s.offices);
        let limit = plan.limit.unwrap_or(DEFAULT_ROWS);
        let query = query(&[
            ("from_date", Some(d1.to_string())),
            ("to_date", Some(d2.to_string())),
            ("limit", Some(limit.to_string())),
            ("office_id", s.offices.first().cloned()),
        ]);
        let body = self
            .fetch(
                format!("/v1/insights/ghost-bookings?{query}"),
                "booked rooms by the share of their booked time that sat empty",
            )
            .await?;
        let mut rooms: Vec<Value> = body["rooms"].as_array().cloned().unwrap_or_default();
        for r in &mut rooms {
            r["office"] = json!(self.office_name(field(r, "office_id")));
        }
        let place = self.place_phrase(plan);
        let described: Vec<String> = rooms
            .iter()
            .filter(|r| r["ghost_share"].as_f64() > Some(0.0))
            .take(3)
            .map(|r| {
                let mut t = format!(
                    "{} ({}) {} of its booked time",
                    field(r, "name"),
                    field(r, "office"),
                    pct_at(r, "ghost_share")
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
        let table = Table::new(
            &["room", "office", "booked but empty", "no-shows", "meetings"],
            rooms
                .iter()
                .map(|r| {
                    vec![
                        field(r, "name").to_owned(),
                        field(r, "office").to_owned(),
                        pct_at(r, "ghost_share"),
                        r["no_shows"].to_string(),
                        r["meetings"].to_string(),
                    ]
                })
                .collect(),
        );
        Ok(self.answer(
            text,
            Some(table),
            json!({ "period": period, "rooms": rooms, "rooms_booked": body["rooms_booked"] }),
        ))
    }

    pub(super) async fn seats(&mut self, plan: &Plan) -> Result<Answer, ApiError> {
        let query = query(&[
            ("days", Some("30".to_owned())),
            ("office_id", plan.scope.offices.first().cloned()),
        ]);
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
            o["name"] = json!(self.office_name(field(o, "office_id")));
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
        let table = Table::new(
            &[
                "office",
                "headcount",
                "seats",
                "busiest day's peak",
                "seats that could go",
            ],
            offices
                .iter()
                .map(|o| {
                    vec![
                        field(o, "name").to_owned(),
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
        );
        Ok(self.answer(
            text,
            Some(table),
            json!({ "offices": offices, "from": body["from"], "to": body["to"] }),
        ))
    }
}
