//! What an alert says, and how each kind of target wants it: Slack blocks, a Microsoft
//! Teams Adaptive Card (Workflows webhook), or signed JSON for generic webhooks.

use chrono::DateTime;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

use rf_schemas::rows::{Anomaly, AnomalyKind, EntityKind, Severity};
use rf_schemas::TenantId;

/// One alert, ready to render for any target.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Alert {
    /// Idempotency key: tenant, rule, entity and window start; a receiver seeing it twice
    /// has seen the same alert.
    pub key: String,
    /// How serious (a digest is low).
    pub severity: Severity,
    /// One line: what happened, where.
    pub title: String,
    /// What a facilities manager should know: the numbers behind it.
    pub summary: String,
    /// One line under the summary: severity, kind, when.
    pub context: String,
    /// Label and value pairs for cards.
    pub facts: Vec<(String, String)>,
    /// The query service's view of it.
    pub link: String,
    /// What a generic webhook gets besides the texts: the anomaly's or the digest's fields.
    pub data: Value,
}

/// One office's last week, for the weekly digest.
#[derive(Clone, Debug, PartialEq)]
pub struct OfficeWeek {
    /// The office.
    pub office_id: String,
    /// Mean people over capacity, all hours of the week.
    pub utilization: f64,
    /// The week's peak people over capacity.
    pub peak: f64,
    /// Its booked rooms' week, when it has bookings.
    pub bookings: Option<BookingWeek>,
    /// Its utilization the week before, when it had days then.
    pub week_before: Option<f64>,
}

impl OfficeWeek {
    /// The change of utilization from the week before, relative (`-0.15`: 15% lower).
    pub fn change(&self) -> Option<f64> {
        self.week_before
            .filter(|b| *b > 0.0)
            .map(|b| self.utilization / b - 1.0)
    }
}

/// An office's booked rooms over a week, for the weekly digest.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct BookingWeek {
    /// Booked minutes a sensor reported.
    pub seen_booked_minutes: u64,
    /// Of those, the empty ones.
    pub ghost_minutes: u64,
    /// Meetings.
    pub meetings: u64,
    /// No-shows.
    pub no_shows: u64,
}

impl BookingWeek {
    /// The share of the seen booked minutes that sat empty.
    pub fn ghost_share(&self) -> Option<f64> {
        (self.seen_booked_minutes > 0)
            .then(|| self.ghost_minutes as f64 / self.seen_booked_minutes as f64)
    }
}

/// Offices a digest lists by name; the rest are counted.
const DIGEST_NAMED: usize = 10;

fn hhmm(ms: i64) -> String {
    DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_default()
}

fn minutes(a: &Anomaly) -> i64 {
    (a.window_end - a.window_start) / 60_000
}

fn what(a: &Anomaly) -> String {
    match a.entity_kind {
        EntityKind::Room => format!("room {} in office {}", a.entity_id, a.office_id),
        EntityKind::Office => format!("office {}", a.office_id),
        EntityKind::Sensor => format!("sensor {} in room {}", a.entity_id, a.room_id),
    }
}

impl Alert {
    /// The alert for `anomaly` under `rule`, linking to the query service at `service`.
    pub fn of(rule: &str, anomaly: &Anomaly, service: &str) -> Self {
        let a = anomaly;
        let details: Value = serde_json::from_str(&a.details).unwrap_or(Value::Null);
        let number = |k: &str| details[k].as_f64().unwrap_or(0.0);
        let since = hhmm(a.window_start);
        let (title, summary) = match a.kind {
            AnomalyKind::CapacityBreach => (
                format!("Over capacity: {}", what(a)),
                format!(
                    "Up to {:.0} people for {} min from {since}; capacity {:.0}.",
                    number("peak_people"),
                    minutes(a),
                    number("capacity")
                ),
            ),
            AnomalyKind::Occupancy => {
                let (actual, expected) = (number("actual"), number("expected"));
                let how = if actual < expected { "empty" } else { "busy" };
                (
                    format!("Unusually {how}: {}", what(a)),
                    format!(
                        "{actual:.1} people on average in the hour from {since}; usually {expected:.1} (between {:.1} and {:.1}).",
                        number("low"),
                        number("high")
                    ),
                )
            }
            AnomalyKind::StuckSensor => (
                format!("Sensor stuck: {}", what(a)),
                format!(
                    "It has reported {:.0} people for {} min since {since} while the office was in use. Check the sensor.",
                    number("people_count"),
                    minutes(a)
                ),
            ),
            AnomalyKind::SilentSensor => (
                format!("No readings: {}", what(a)),
                format!(
                    "Silent for {} min since {since} while the rest of the office reports. Check its sensor and network.",
                    minutes(a)
                ),
            ),
            AnomalyKind::ImplausibleValue => (
                format!("Implausible counts: {}", what(a)),
                format!(
                    "Up to {:.1} people on average, over 1.5 times its capacity of {:.0}, for {} min since {since}. Check the sensor.",
                    number("peak_mean_people"),
                    number("capacity"),
                    minutes(a)
                ),
            ),
        };
        let from = hhmm(a.window_start)
            .replace(' ', "T")
            .replace("TUTC", ":00Z");
        let link = format!(
            "{}/v1/anomalies?office_id={}&kind={}&from={from}",
            service.trim_end_matches('/'),
            a.office_id,
            a.kind.label()
        );
        let state = if a.ongoing { "ongoing" } else { "ended" };
        let context = format!(
            "{} severity · {} · {} to {} · {state}",
            a.severity.label(),
            a.kind.label(),
            hhmm(a.window_start),
            hhmm(a.window_end)
        );
        Self {
            key: format!(
                "{}/{rule}/{}/{}/{}",
                a.tenant,
                a.entity_kind.label(),
                a.entity_id,
                a.window_start
            ),
            severity: a.severity,
            title,
            summary,
            context,
            facts: vec![
                ("Office".into(), a.office_id.clone()),
                ("Severity".into(), a.severity.label().into()),
                ("From".into(), hhmm(a.window_start)),
                ("To".into(), hhmm(a.window_end)),
            ],
            link,
            data: json!({
                "tenant": a.tenant.as_str(),
                "rule": rule,
                "kind": a.kind.label(),
                "entity_kind": a.entity_kind.label(),
                "entity_id": a.entity_id,
                "office_id": a.office_id,
                "room_id": (!a.room_id.is_empty()).then_some(&a.room_id),
                "severity": a.severity.label(),
                "score": a.score,
                "from": a.window_start,
                "to": a.window_end,
                "ongoing": a.ongoing,
                "details": serde_json::from_str::<Value>(&a.details).unwrap_or(Value::Null),
            }),
        }
    }

    /// A message that only checks a target works (`roomflow tenant test-alerts`).
    pub fn test(tenant: &TenantId, service: &str) -> Self {
        let now = rf_schemas::unix_ms();
        Self {
            key: format!("{tenant}/test/tenant/{tenant}/{now}"),
            severity: Severity::Low,
            title: format!("roomflow test alert for {tenant}"),
            summary: "Alerts of this tenant reach this channel. Nothing needs doing.".into(),
            context: format!("sent at {}", hhmm(now)),
            facts: vec![("Tenant".into(), tenant.to_string())],
            link: format!("{}/v1/anomalies", service.trim_end_matches('/')),
            data: json!({"tenant": tenant.as_str(), "rule": "test"}),
        }
    }

    /// The same alert standing for `more` later ones of its entity and rule, held back
    /// by the cooldown since `since` (ms).
    pub fn grouped(mut self, more: u32, since: i64) -> Self {
        if more > 0 {
            let s = if more == 1 { "" } else { "s" };
            self.summary = format!(
                "{} {more} more alert{s} like this since {} were grouped into this one.",
                self.summary,
                hhmm(since)
            );
            self.data["grouped"] = json!(more);
        }
        self
    }

    /// The weekly digest of `tenant` for the week from `week_start` (ms): offices whose
    /// utilization was under `below`, and offices whose peak went over `above`; `None`
    /// when no office is either.
    pub fn digest(
        tenant: &TenantId,
        week_start: i64,
        offices: &[OfficeWeek],
        (below, above): (f64, f64),
        service: &str,
    ) -> Option<Self> {
        let mut low: Vec<&OfficeWeek> = offices.iter().filter(|o| o.utilization < below).collect();
        let mut high: Vec<&OfficeWeek> = offices.iter().filter(|o| o.peak > above).collect();
        let mut booked: Vec<(&OfficeWeek, f64)> = offices
            .iter()
            .filter_map(|o| Some((o, o.bookings?.ghost_share()?)))
            .collect();
        // The week-over-week movers, the largest first, by at least a percentage point.
        let mut moved: Vec<(&OfficeWeek, f64)> = offices
            .iter()
            .filter_map(|o| Some((o, o.change().filter(|c| c.abs() >= 0.01)?)))
            .collect();
        moved.sort_by(|a, b| {
            b.1.abs()
                .total_cmp(&a.1.abs())
                .then_with(|| a.0.office_id.cmp(&b.0.office_id))
        });
        if low.is_empty() && high.is_empty() && booked.is_empty() && moved.is_empty() {
            return None;
        }
        booked.sort_by(|a, b| {
            b.1.total_cmp(&a.1)
                .then_with(|| a.0.office_id.cmp(&b.0.office_id))
        });
        low.sort_by(|a, b| a.utilization.total_cmp(&b.utilization));
        high.sort_by(|a, b| b.peak.total_cmp(&a.peak));
        let pct = |v: f64| format!("{:.0}%", v * 100.0);
        let list = |offices: &[&OfficeWeek], value: fn(&OfficeWeek) -> f64| {
            let mut s: Vec<String> = offices
                .iter()
                .take(DIGEST_NAMED)
                .map(|o| format!("{} {}", o.office_id, pct(value(o))))
                .collect();
            if offices.len() > DIGEST_NAMED {
                s.push(format!("and {} more", offices.len() - DIGEST_NAMED));
            }
            s.join(", ")
        };
        let week = DateTime::from_timestamp_millis(week_start)
            .map(|t| t.format("%Y-%m-%d").to_string())
            .unwrap_or_default();
        let mut lines = Vec::new();
        if !low.is_empty() {
            lines.push(format!(
                "Under {} utilized: {}.",
                pct(below),
                list(&low, |o| o.utilization)
            ));
        }
        if !high.is_empty() {
            lines.push(format!(
                "Peak over {} of capacity: {}.",
                pct(above),
                list(&high, |o| o.peak)
            ));
        }
        if !moved.is_empty() {
            let mut named: Vec<String> = moved
                .iter()
                .take(DIGEST_NAMED)
                .map(|(o, change)| {
                    let verb = if *change < 0.0 { "dropped" } else { "rose" };
                    format!(
                        "{} utilization {verb} {:.0}%",
                        o.office_id,
                        change.abs() * 100.0
                    )
                })
                .collect();
            if moved.len() > DIGEST_NAMED {
                named.push(format!("and {} more", moved.len() - DIGEST_NAMED));
            }
            lines.push(format!("On the week before: {}.", named.join(", ")));
        }
        if !booked.is_empty() {
            let (meetings, no_shows) = booked.iter().fold((0, 0), |(m, n), (o, _)| {
                let b = o.bookings.unwrap_or_default();
                (m + b.meetings, n + b.no_shows)
            });
            let mut named: Vec<String> = booked
                .iter()
                .take(DIGEST_NAMED)
                .map(|(o, share)| format!("{} {}", o.office_id, pct(*share)))
                .collect();
            if booked.len() > DIGEST_NAMED {
                named.push(format!("and {} more", booked.len() - DIGEST_NAMED));
            }
            lines.push(format!(
                "Booked rooms sat empty: {} of their booked time; {no_shows} of {meetings} meetings were no-shows.",
                named.join(", ")
            ));
        }
        let ids = |v: &[&OfficeWeek]| v.iter().map(|o| o.office_id.clone()).collect::<Vec<_>>();
        Some(Self {
            key: format!("{tenant}/weekly_digest/tenant/{tenant}/{week_start}"),
            severity: Severity::Low,
            title: format!("Weekly utilization, week of {week}"),
            summary: lines.join(" "),
            context: format!(
                "{} offices reported · {} under-used · {} crowded",
                offices.len(),
                low.len(),
                high.len()
            ),
            facts: vec![
                ("Week of".into(), week.clone()),
                ("Offices".into(), offices.len().to_string()),
                ("Under-used".into(), low.len().to_string()),
                ("Crowded".into(), high.len().to_string()),
            ],
            link: format!(
                "{}/v1/offices/ranking?days=7&to={}",
                service.trim_end_matches('/'),
                DateTime::from_timestamp_millis(week_start + 7 * 86_400_000)
                    .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
                    .unwrap_or_default()
            ),
            data: json!({
                "tenant": tenant.as_str(),
                "rule": "weekly_digest",
                "week_start": week_start,
                "below": below,
                "above": above,
                "under_used": ids(&low),
                "crowded": ids(&high),
                "booked_but_empty": booked.iter().map(|(o, share)| json!({"office_id": o.office_id, "ghost_share": share})).collect::<Vec<_>>(),
                "week_over_week": moved.iter().map(|(o, change)| json!({"office_id": o.office_id, "utilization": o.utilization, "week_before": o.week_before, "change": change})).collect::<Vec<_>>(),
            }),
        })
    }

    /// A room whose meetings of the 7 days before `day_end` (ms) were no-shows at least
    /// `rule_rate` of the time.
    #[allow(clippy::too_many_arguments)]
    pub fn no_shows(
        tenant: &TenantId,
        office_id: &str,
        room_id: &str,
        (meetings, no_shows): (u64, u64),
        rule_rate: f64,
        day_end: i64,
        service: &str,
    ) -> Self {
        let rate = no_shows as f64 / meetings.max(1) as f64;
        let until = DateTime::from_timestamp_millis(day_end)
            .map(|t| t.format("%Y-%m-%d").to_string())
            .unwrap_or_default();
        Self {
            key: format!("{tenant}/no_show_rate/room/{room_id}/{day_end}"),
            severity: Severity::Low,
            title: format!("Frequent no-shows: room {room_id} in office {office_id}"),
            summary: format!(
                "{no_shows} of {meetings} meetings in the 7 days to {until} had nobody in their first 15 minutes ({:.0}%, the rule alerts from {:.0}%). Releasing unattended bookings would free the room.",
                rate * 100.0,
                rule_rate * 100.0
            ),
            context: format!("no-show rate · office {office_id} · 7 days to {until}"),
            facts: vec![
                ("Room".into(), room_id.to_owned()),
                ("Office".into(), office_id.to_owned()),
                ("Meetings".into(), meetings.to_string()),
                ("No-shows".into(), no_shows.to_string()),
            ],
            link: format!(
                "{}/v1/insights/ghost-bookings?days=7&office_id={office_id}",
                service.trim_end_matches('/')
            ),
            data: json!({
                "tenant": tenant.as_str(),
                "rule": "no_show_rate",
                "office_id": office_id,
                "room_id": room_id,
                "meetings": meetings,
                "no_shows": no_shows,
                "rate": rate,
                "threshold": rule_rate,
                "until": day_end,
            }),
        }
    }

    /// A Slack incoming-webhook message with blocks (and a plain-text fallback).
    pub fn slack(&self) -> Value {
        json!({
            "text": format!("{}: {}", self.title, self.summary),
            "blocks": [
                {"type": "header", "text": {"type": "plain_text", "text": self.title}},
                {"type": "section", "text": {"type": "mrkdwn", "text": self.summary}},
                {"type": "context", "elements": [{"type": "mrkdwn", "text": self.context}]},
                {"type": "actions", "elements": [{
                    "type": "button",
                    "text": {"type": "plain_text", "text": "Open in roomflow"},
                    "url": self.link,
                }]},
            ],
        })
    }

    /// A Microsoft Teams Workflows webhook message holding an Adaptive Card (1.4).
    pub fn teams(&self) -> Value {
        let color = match self.severity {
            Severity::High => "Attention",
            Severity::Medium => "Warning",
            Severity::Low => "Default",
        };
        let facts: Vec<Value> = self
            .facts
            .iter()
            .map(|(title, value)| json!({"title": title, "value": value}))
            .collect();
        let card = json!({
            "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
            "type": "AdaptiveCard",
            "version": "1.4",
            "body": [
                {"type": "TextBlock", "text": self.title, "weight": "Bolder", "size": "Medium", "color": color, "wrap": true},
                {"type": "TextBlock", "text": self.summary, "wrap": true},
                {"type": "FactSet", "facts": facts},
            ],
            "actions": [{"type": "Action.OpenUrl", "title": "Open in roomflow", "url": self.link}],
        });
        json!({
            "type": "message",
            "attachments": [{
                "contentType": "application/vnd.microsoft.card.adaptive",
                "contentUrl": null,
                "content": card,
            }],
        })
    }

    /// The generic webhook's JSON body: the texts, and the anomaly's or digest's fields.
    pub fn webhook(&self) -> Value {
        let mut body = self.data.clone();
        for (k, v) in [
            ("id", &self.key),
            ("title", &self.title),
            ("summary", &self.summary),
            ("link", &self.link),
        ] {
            body[k] = json!(v);
        }
        body
    }
}

/// The signature header's value for `body` sent at `timestamp` (Unix seconds):
/// `v1=` and the hex HMAC-SHA256, keyed by the target's secret, of `"{timestamp}.{body}"`.
/// Receivers recompute it and reject timestamps more than 5 minutes old (replays).
pub fn signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any size");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("v1={hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breach() -> Anomaly {
        Anomaly {
            tenant: TenantId::parse("acme").unwrap(),
            kind: AnomalyKind::CapacityBreach,
            entity_kind: EntityKind::Room,
            entity_id: "r2".into(),
            office_id: "lon".into(),
            room_id: "r2".into(),
            window_start: 1_768_312_800_000,
            window_end: 1_768_314_300_000,
            score: 1.0,
            severity: Severity::High,
            details: r#"{"capacity":4.0,"minutes":25,"peak_people":7.0}"#.into(),
            ongoing: false,
        }
    }

    #[test]
    fn a_breach_reads_well_everywhere() {
        let alert = Alert::of("breaches", &breach(), "https://rooms.example.com/");
        assert_eq!(alert.key, "acme/breaches/room/r2/1768312800000");
        assert_eq!(alert.title, "Over capacity: room r2 in office lon");
        assert_eq!(
            alert.summary,
            "Up to 7 people for 25 min from 2026-01-13 14:00 UTC; capacity 4."
        );
        assert_eq!(
            alert.link,
            "https://rooms.example.com/v1/anomalies?office_id=lon&kind=capacity_breach&from=2026-01-13T14:00:00Z"
        );
        let slack = alert.slack();
        assert_eq!(slack["blocks"][0]["text"]["text"], alert.title);
        assert_eq!(slack["blocks"][3]["elements"][0]["url"], alert.link);
        let teams = alert.teams();
        let card = &teams["attachments"][0]["content"];
        assert_eq!(card["type"], "AdaptiveCard");
        assert_eq!(card["body"][0]["color"], "Attention");
        assert_eq!(card["actions"][0]["url"], alert.link);
        let hook = alert.webhook();
        assert_eq!(hook["id"], alert.key);
        assert_eq!(hook["details"]["peak_people"], 7.0);
    }

    #[test]
    fn grouped_alerts_and_digests_say_what_they_stand_for() {
        let alert = Alert::of("breaches", &breach(), "https://rooms.example.com")
            .grouped(3, 1_768_316_400_000);
        assert!(
            alert.summary.ends_with(
                "3 more alerts like this since 2026-01-13 15:00 UTC were grouped into this one."
            ),
            "{}",
            alert.summary
        );
        assert_eq!(alert.webhook()["grouped"], 3);
        let tenant = TenantId::parse("acme").unwrap();
        let week = |id: &str, utilization: f64, peak: f64| OfficeWeek {
            office_id: id.into(),
            utilization,
            peak,
            bookings: None,
            week_before: None,
        };
        let offices = [
            week("lon", 0.05, 0.4),
            week("par", 0.3, 0.95),
            week("ber", 0.02, 0.2),
            week("nyc", 0.3, 0.6),
        ];
        let monday = 1_767_571_200_000;
        let digest = Alert::digest(
            &tenant,
            monday,
            &offices,
            (0.1, 0.9),
            "https://r.example.com",
        )
        .unwrap();
        assert_eq!(
            digest.key,
            format!("acme/weekly_digest/tenant/acme/{monday}")
        );
        assert_eq!(digest.title, "Weekly utilization, week of 2026-01-05");
        assert_eq!(
            digest.summary,
            "Under 10% utilized: ber 2%, lon 5%. Peak over 90% of capacity: par 95%."
        );
        assert_eq!(
            digest.link,
            "https://r.example.com/v1/offices/ranking?days=7&to=2026-01-12T00:00:00Z"
        );
        assert_eq!(digest.webhook()["crowded"], json!(["par"]));
        assert!(
            Alert::digest(&tenant, monday, &offices[3..], (0.1, 0.9), "x").is_none(),
            "nothing to report: no message"
        );
        // Booked rooms alone make a digest, emptiest first.
        let booked = |id: &str, seen: u64, ghost: u64, meetings: u64, no_shows: u64| OfficeWeek {
            bookings: Some(BookingWeek {
                seen_booked_minutes: seen,
                ghost_minutes: ghost,
                meetings,
                no_shows,
            }),
            ..week(id, 0.5, 0.5)
        };
        let offices = [
            booked("nyc", 1000, 200, 30, 3),
            booked("sin", 600, 240, 10, 4),
            booked("tor", 0, 0, 0, 0),
        ];
        let digest = Alert::digest(&tenant, monday, &offices, (0.1, 0.9), "x").unwrap();
        assert_eq!(
            digest.summary,
            "Booked rooms sat empty: sin 40%, nyc 20% of their booked time; 7 of 40 meetings were no-shows."
        );
        assert_eq!(digest.webhook()["booked_but_empty"][0]["office_id"], "sin");

        // The week before: the largest changes first; under a point is no change.
        let moved = |id: &str, now: f64, before: f64| OfficeWeek {
            week_before: Some(before),
            ..week(id, now, 0.5)
        };
        let offices = [
            moved("nyc", 0.34, 0.4),
            moved("lon", 0.44, 0.4),
            moved("par", 0.402, 0.4),
        ];
        let digest = Alert::digest(&tenant, monday, &offices, (0.1, 0.9), "x").unwrap();
        assert_eq!(
            digest.summary,
            "On the week before: nyc utilization dropped 15%, lon utilization rose 10%."
        );
        assert_eq!(digest.webhook()["week_over_week"][0]["office_id"], "nyc");
        assert_eq!(
            digest.webhook()["week_over_week"].as_array().unwrap().len(),
            2
        );

        let day = monday + 86_400_000;
        let alert = Alert::no_shows(
            &tenant,
            "lon",
            "lon-7",
            (10, 6),
            0.3,
            day,
            "https://r.example.com",
        );
        assert_eq!(alert.key, format!("acme/no_show_rate/room/lon-7/{day}"));
        assert_eq!(alert.title, "Frequent no-shows: room lon-7 in office lon");
        assert!(alert.summary.starts_with("6 of 10 meetings in the 7 days to 2026-01-06 had nobody in their first 15 minutes (60%, the rule alerts from 30%)"), "{}", alert.summary);
        assert_eq!(alert.webhook()["rule"], "no_show_rate");
        assert_eq!(
            alert.link,
            "https://r.example.com/v1/insights/ghost-bookings?days=7&office_id=lon"
        );
    }

    #[test]
    fn signatures_are_the_hmac_of_timestamp_dot_body() {
        // printf '1700000000.{}' | openssl dgst -sha256 -hmac key
        assert_eq!(
            signature("key", 1_700_000_000, b"{}"),
            "v1=9d713ed406bb7076d4123f0dc2c39d2df5c654ed4b0cd56b52c8b4c940bd63ae"
        );
    }
}
