//! Utilization reports of a tenant over a range of days: every office's days as CSV, and
//! a one-page HTML report with SVG charts (the weekly trend, an hour-of-week heatmap,
//! the least-used rooms with what releasing them would save).

pub mod render;

use std::collections::BTreeMap;

use chrono::{Datelike, TimeZone, Timelike};
use clickhouse::Row;
use serde::Deserialize;

use rf_schemas::TenantId;
use rf_sinks::config::ClickHouseConfig;

use crate::JobError;

/// Rooms used less than this (people over capacity, all hours) count as under-used.
pub const UNDER_USED: f64 = 0.05;
/// Rooms the report lists by name.
pub const LISTED_ROOMS: usize = 15;

/// One office's day.
#[derive(Clone, Debug, PartialEq, Row, Deserialize)]
pub struct OfficeDay {
    /// The office.
    pub office_id: String,
    /// The day's start, ms (the office's midnight).
    pub day: i64,
    /// Rooms that reported.
    pub rooms_reporting: u32,
    /// Their capacity.
    pub capacity: u32,
    /// Mean people.
    pub avg_people: f64,
    /// Peak people.
    pub peak_people: f64,
    /// `avg_people / capacity`.
    pub utilization: f64,
}

/// One room over the range.
#[derive(Clone, Debug, PartialEq)]
pub struct RoomUse {
    /// The room.
    pub room_id: String,
    /// Its name.
    pub name: String,
    /// Its office.
    pub office_id: String,
    /// Its capacity (latest version).
    pub capacity: u32,
    /// People over capacity over its days, all hours.
    pub utilization: f64,
    /// What it costs a month, if known.
    pub monthly_cost: Option<f64>,
}

/// Everything a report shows.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Report {
    /// The tenant.
    pub tenant: String,
    /// Its name.
    pub display_name: String,
    /// The first day, ms.
    pub from: i64,
    /// The end (exclusive), ms.
    pub to: i64,
    /// Office id → name.
    pub offices: BTreeMap<String, String>,
    /// Every office's days, by office then day.
    pub days: Vec<OfficeDay>,
    /// Mean utilization by weekday (Monday first) and hour, office time.
    pub heatmap: [[Option<f64>; 24]; 7],
    /// Every room, least used first.
    pub rooms: Vec<RoomUse>,
}

impl Report {
    /// The office's name, or its id.
    pub fn office_name<'a>(&'a self, id: &'a str) -> &'a str {
        self.offices.get(id).map_or(id, String::as_str)
    }

    /// People over capacity over every office's days.
    pub fn mean_utilization(&self) -> f64 {
        let (people, capacity) = self.days.iter().fold((0.0, 0.0), |(p, c), d| {
            (p + d.avg_people, c + d.capacity as f64)
        });
        if capacity > 0.0 {
            people / capacity
        } else {
            0.0
        }
    }

    /// (Monday of the week, ms; people over capacity that week), in order.
    pub fn weeks(&self) -> Vec<(i64, f64)> {
        const DAY: i64 = 86_400_000;
        let mut weeks: BTreeMap<i64, (f64, f64)> = BTreeMap::new();
        for d in &self.days {
            // Noon of the day, so an office's midnight east of UTC stays on its day.
            let days = (d.day + DAY / 2).div_euclid(DAY);
            let monday = (days - (days + 3).rem_euclid(7)) * DAY;
            let w = weeks.entry(monday).or_default();
            w.0 += d.avg_people;
            w.1 += d.capacity as f64;
        }
        weeks
            .into_iter()
            .filter(|(_, (_, c))| *c > 0.0)
            .map(|(w, (p, c))| (w, p / c))
            .collect()
    }

    /// Rooms under [`UNDER_USED`], and what they cost a month together.
    pub fn under_used(&self) -> (usize, f64) {
        let under = self.rooms.iter().filter(|r| r.utilization < UNDER_USED);
        under.fold((0, 0.0), |(n, cost), r| {
            (n + 1, cost + r.monthly_cost.unwrap_or(0.0))
        })
    }
}

#[derive(Row, Deserialize)]
struct OfficeMeta {
    office_id: String,
    office_name: String,
    timezone: String,
}

#[derive(Row, Deserialize)]
struct HourCell {
    office_id: String,
    hour_start: u32,
    people: f64,
    capacity: f64,
}

#[derive(Row, Deserialize)]
struct RoomRange {
    room_id: String,
    office_id: String,
    people: f64,
    capacity: f64,
    name: String,
    last_capacity: u32,
    monthly_cost: Option<f64>,
}

/// Reads what the report of `tenant` over `[from, to)` (ms, whole days) shows from its
/// database.
pub async fn gather(
    clickhouse: &ClickHouseConfig,
    tenant: &TenantId,
    display_name: &str,
    (from, to): (i64, i64),
) -> Result<Report, JobError> {
    let client = rf_sinks::clickhouse::client(clickhouse).with_database(tenant.clickhouse_db());
    let ch = |e: clickhouse::error::Error| JobError::from(e);
    let secs = |ms: i64| (ms / 1000).clamp(0, u32::MAX as i64) as u32;
    let offices: Vec<OfficeMeta> = client
        .query(
            "SELECT office_id, any(office_name), any(timezone) FROM rooms GROUP BY office_id ORDER BY office_id",
        )
        .fetch_all()
        .await
        .map_err(ch)?;
    let days: Vec<OfficeDay> = client
        .query(
            "SELECT office_id, toInt64(toUInt32(window_start)) * 1000, argMax(rooms_reporting, version), \
                    argMax(capacity, version), argMax(avg_people, version), argMax(peak_people, version), \
                    argMax(utilization, version) \
             FROM office_utilization WHERE granularity = '1d' AND window_start >= toDateTime(?) AND window_start < toDateTime(?) \
             GROUP BY office_id, window_start ORDER BY office_id, window_start",
        )
        .bind(secs(from))
        .bind(secs(to))
        .fetch_all()
        .await
        .map_err(ch)?;
    // Hours by office and UTC hour of the week; placed in office time below.
    let hours: Vec<HourCell> = client
        .query(
            "SELECT office_id, toUInt32(window_start) AS hour_start, sum(hour_people), sum(hour_capacity) FROM ( \
               SELECT office_id, window_start, argMax(avg_people, version) AS hour_people, \
                      toFloat64(argMax(capacity, version)) AS hour_capacity \
               FROM office_utilization WHERE granularity = '1h' AND window_start >= toDateTime(?) AND window_start < toDateTime(?) \
               GROUP BY office_id, window_start) \
             GROUP BY office_id, hour_start ORDER BY office_id, hour_start",
        )
        .bind(secs(from))
        .bind(secs(to))
        .fetch_all()
        .await
        .map_err(ch)?;
    let rooms: Vec<RoomRange> = client
        .query(
            "SELECT r.room_id, r.office_id, r.room_people, r.room_capacity, m.room_name, m.last_capacity, m.cost FROM ( \
               SELECT room_id, any(office_id) AS office_id, sum(day_people) AS room_people, sum(day_capacity) AS room_capacity FROM ( \
                 SELECT room_id, office_id, window_start, argMax(avg_people, version) AS day_people, \
                        toFloat64(argMax(capacity, version)) AS day_capacity \
                 FROM room_utilization WHERE granularity = '1d' AND window_start >= toDateTime(?) AND window_start < toDateTime(?) \
                 GROUP BY room_id, office_id, window_start) \
               GROUP BY room_id) AS r \
             ANY LEFT JOIN ( \
               SELECT room_id, argMax(name, version) AS room_name, argMax(capacity, version) AS last_capacity, \
                      argMax(monthly_cost, version) AS cost \
               FROM rooms GROUP BY room_id) AS m USING room_id",
        )
        .bind(secs(from))
        .bind(secs(to))
        .fetch_all()
        .await
        .map_err(ch)?;

    let zones: BTreeMap<&str, chrono_tz::Tz> = offices
        .iter()
        .map(|o| {
            (
                o.office_id.as_str(),
                o.timezone.parse().unwrap_or(chrono_tz::UTC),
            )
        })
        .collect();
    let mut cells = [[(0.0, 0.0); 24]; 7];
    for h in &hours {
        let tz = zones
            .get(h.office_id.as_str())
            .copied()
            .unwrap_or(chrono_tz::UTC);
        let Some(local) = tz.timestamp_opt(h.hour_start as i64, 0).single() else {
            continue;
        };
        let cell =
            &mut cells[local.weekday().num_days_from_monday() as usize][local.hour() as usize];
        cell.0 += h.people;
        cell.1 += h.capacity;
    }
    let heatmap = cells.map(|day| day.map(|(p, c)| (c > 0.0).then(|| p / c)));
    let mut rooms: Vec<RoomUse> = rooms
        .into_iter()
        .filter(|r| r.capacity > 0.0)
        .map(|r| RoomUse {
            name: if r.name.is_empty() {
                r.room_id.clone()
            } else {
                r.name
            },
            room_id: r.room_id,
            office_id: r.office_id,
            capacity: r.last_capacity,
            utilization: r.people / r.capacity,
            monthly_cost: r.monthly_cost,
        })
        .collect();
    rooms.sort_by(|a, b| {
        a.utilization
            .total_cmp(&b.utilization)
            .then_with(|| a.room_id.cmp(&b.room_id))
    });
    Ok(Report {
        tenant: tenant.to_string(),
        display_name: display_name.to_string(),
        from,
        to,
        offices: offices
            .into_iter()
            .map(|o| (o.office_id, o.office_name))
            .collect(),
        days,
        heatmap,
        rooms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400_000;
    const MONDAY: i64 = 1_767_571_200_000; // 2026-01-05

    fn report() -> Report {
        let office = |id: &str, day: i64, people: f64| OfficeDay {
            office_id: id.into(),
            day,
            rooms_reporting: 2,
            capacity: 10,
            avg_people: people,
            peak_people: people * 3.0,
            utilization: people / 10.0,
        };
        let mut heatmap = [[None; 24]; 7];
        heatmap[0][10] = Some(0.6);
        heatmap[6][3] = Some(0.0);
        Report {
            tenant: "acme".into(),
            display_name: "Acme <Corp>".into(),
            from: MONDAY,
            to: MONDAY + 14 * DAY,
            offices: [("lon".to_string(), "London, UK".to_string())].into(),
            days: vec![
                office("lon", MONDAY, 1.0),
                office("lon", MONDAY + DAY, 3.0),
                office("lon", MONDAY + 7 * DAY, 2.0),
            ],
            heatmap,
            rooms: vec![
                RoomUse {
                    room_id: "r9".into(),
                    name: "Board room".into(),
                    office_id: "lon".into(),
                    capacity: 12,
                    utilization: 0.01,
                    monthly_cost: Some(2500.0),
                },
                RoomUse {
                    room_id: "r1".into(),
                    name: "Focus 1".into(),
                    office_id: "lon".into(),
                    capacity: 2,
                    utilization: 0.4,
                    monthly_cost: Some(300.0),
                },
            ],
        }
    }

    #[test]
    fn weeks_and_totals_weigh_days_by_capacity() {
        let r = report();
        assert_eq!(r.weeks(), [(MONDAY, 0.2), (MONDAY + 7 * DAY, 0.2)]);
        assert!((r.mean_utilization() - 0.2).abs() < 1e-12);
        assert_eq!(r.under_used(), (1, 2500.0));
    }

    #[test]
    fn the_csv_has_a_row_per_office_day_with_quoted_names() {
        let csv = render::csv(&report());
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(
            lines[0],
            "date,office_id,office_name,rooms_reporting,capacity,avg_people,peak_people,utilization"
        );
        assert_eq!(
            lines[1],
            "2026-01-05,lon,\"London, UK\",2,10,1.000,3.000,0.1000"
        );
        assert_eq!(lines.len(), 4);
    }

    #[test]
    fn the_html_is_one_escaped_page_with_two_charts_and_a_table() {
        let html = render::html(&report());
        assert!(html.contains("Space utilization: Acme &lt;Corp&gt;"));
        assert!(!html.contains("<script"));
        assert_eq!(html.matches("<svg").count(), 2, "the trend and the heatmap");
        assert_eq!(html.matches("<rect").count(), 7 * 24);
        assert!(html.contains("<title>Mon 10:00 60%</title>"));
        assert!(html.contains("<td>Board room</td><td>lon</td><td>12</td><td>1%</td><td>2500</td>"));
        assert!(html.contains("save about <b>2500</b> a month"));
        assert!(html.contains("2026-01-05 to 2026-01-18"));
    }
}
