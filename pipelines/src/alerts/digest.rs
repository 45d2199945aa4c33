//! The weekly digest's numbers: each office's last local week (Monday to Sunday in its
//! own time zone) from the tenant's day windows, and the week before.

use clickhouse::Row;
use serde::Deserialize;

use rf_schemas::TenantId;
use rf_sinks::config::ClickHouseConfig;
use rf_sinks::webhook::{BookingWeek, OfficeWeek};

const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;
/// A week, ms.
pub const WEEK: i64 = 7 * DAY;

/// The week whose digest is the latest due at `now`, as its Monday's 00:00 UTC (ms): a
/// week's digest is due from the next Monday at `hour` UTC, and each office's part of it
/// is that Monday to Sunday in the office's own zone (see [`office_weeks`]).
pub fn digest_week(now: i64, hour: u32) -> i64 {
    let days = now.div_euclid(DAY);
    // 1970-01-01 was a Thursday: three days after a Monday.
    let monday = (days - (days + 3).rem_euclid(7)) * DAY;
    let due = monday + hour as i64 * HOUR;
    let end = if now >= due { monday } else { monday - WEEK };
    end - WEEK
}

/// When the local week from `monday` ends in `zone` (its next Monday's midnight there),
/// ms; a zone that does not parse is taken as the latest, UTC−12.
pub fn local_week_end(monday: chrono::NaiveDate, zone: &str) -> i64 {
    use chrono::TimeZone;
    let next = (monday + chrono::Days::new(7)).and_time(chrono::NaiveTime::MIN);
    let utc = next.and_utc().timestamp_millis();
    match zone.parse::<chrono_tz::Tz>() {
        // A midnight that a change of clocks skips: the first instant after it.
        Ok(tz) => tz
            .from_local_datetime(&next)
            .earliest()
            .map_or(utc + HOUR, |t| t.timestamp_millis()),
        Err(_) => utc + 12 * HOUR,
    }
}

/// When every office of `tenant` has ended the local week from `week_start` (ms, a UTC
/// Monday): the digest waits for the office whose Sunday ends last (Honolulu's ends ten
/// hours after UTC's).
pub async fn week_ends(
    clickhouse: &ClickHouseConfig,
    tenant: &TenantId,
    week_start: i64,
) -> Result<i64, clickhouse::error::Error> {
    let (_, zones) = office_zones(clickhouse, tenant).await?;
    Ok(zones
        .iter()
        .map(|z| local_week_end(monday_of(week_start), &z.timezone))
        .max()
        .unwrap_or(week_start + WEEK))
}

/// The UTC date of `week_start` (ms).
fn monday_of(week_start: i64) -> chrono::NaiveDate {
    chrono::DateTime::from_timestamp_millis(week_start)
        .unwrap_or_default()
        .date_naive()
}

/// A client of the tenant's database, and each office's time zone as its rooms' latest
/// metadata says.
async fn office_zones(
    clickhouse: &ClickHouseConfig,
    tenant: &TenantId,
) -> Result<(clickhouse::Client, Vec<Zone>), clickhouse::error::Error> {
    let client = rf_sinks::clickhouse::client(clickhouse).with_database(tenant.clickhouse_db());
    let zones = client
        .query("SELECT office_id, argMax(timezone, version) FROM rooms GROUP BY office_id")
        .fetch_all()
        .await?;
    Ok((client, zones))
}

#[derive(Row, Deserialize)]
struct Week {
    office_id: String,
    utilization: f64,
    peak: f64,
}

#[derive(Row, Deserialize)]
struct Booked {
    office_id: String,
    seen: u64,
    ghost: u64,
    meetings: u64,
    no_shows: u64,
}

#[derive(Row, Deserialize)]
struct Zone {
    office_id: String,
    timezone: String,
}

/// The day windows of the offices `IN (?)` whose local date, in zone `?`, is in
/// `[?, ?)`: a SQL condition on `office_id` and `window_start`, bound by [`bind_week`].
const LOCAL_WEEK: &str =
    "has(?, office_id) AND window_start >= toDateTime(?) AND window_start < toDateTime(?) \
     AND toDate(window_start, ?) >= toDate(?) AND toDate(window_start, ?) < toDate(?)";

/// Binds [`LOCAL_WEEK`]: `offices` in `zone`, local dates from `monday` for 7 days.
fn bind_week(
    query: clickhouse::query::Query,
    offices: &[&str],
    zone: &str,
    monday: chrono::NaiveDate,
) -> clickhouse::query::Query {
    let sunday_end = monday + chrono::Days::new(7);
    let utc = |d: chrono::NaiveDate| d.and_time(chrono::NaiveTime::MIN).and_utc().timestamp();
    // Every zone's midnights lie within 14 hours of UTC's.
    query
        .bind(offices)
        .bind(utc(monday) - 14 * 3600)
        .bind(utc(sunday_end) + 14 * 3600)
        .bind(zone)
        .bind(monday.to_string())
        .bind(zone)
        .bind(sunday_end.to_string())
}

/// Each office's week from the Monday of `week_start` (ms, a UTC midnight): the day
/// windows of its own local Monday to Sunday (the latest revision of each),
/// utilization = their people over their capacity, peak = the largest day's peak over
/// its capacity, its booked rooms' days if it has bookings, and its utilization the
/// week before. Offices without capacity are left out.
pub async fn office_weeks(
    clickhouse: &ClickHouseConfig,
    tenant: &TenantId,
    week_start: i64,
) -> Result<Vec<OfficeWeek>, clickhouse::error::Error> {
    let monday = monday_of(week_start);
    let (client, zones) = office_zones(clickhouse, tenant).await?;
    let mut by_zone: std::collections::BTreeMap<&str, Vec<&str>> = Default::default();
    for z in &zones {
        by_zone.entry(&z.timezone).or_default().push(&z.office_id);
    }
    let (mut rows, mut before, mut booked) = (Vec::new(), Vec::new(), Vec::new());
    for (zone, offices) in &by_zone {
        for (week, into) in [
            (monday, &mut rows),
            (monday - chrono::Days::new(7), &mut before),
        ] {
            let query = client.query(&format!(
                "SELECT office_id, sum(day_people) / sum(day_capacity) AS used, max(day_peak / day_capacity) AS top \
                 FROM (SELECT office_id, window_start, argMax(avg_people, version) AS day_people, \
                              argMax(peak_people, version) AS day_peak, argMax(capacity, version) AS day_capacity \
                       FROM office_utilization WHERE granularity = '1d' AND {LOCAL_WEEK} \
                       GROUP BY office_id, window_start) \
                 WHERE day_capacity > 0 GROUP BY office_id ORDER BY office_id"
            ));
            into.extend(
                bind_week(query, offices, zone, week)
                    .fetch_all::<Week>()
                    .await?,
            );
        }
        // The booked rooms' days (offices' rows, the latest revision of each).
        let query = client.query(&format!(
            "SELECT office_id, sum(b - u), sum(g), sum(m), sum(n) \
             FROM (SELECT office_id, window_start, argMax(booked_minutes, version) AS b, \
                          argMax(booked_unreported_minutes, version) AS u, argMax(ghost_minutes, version) AS g, \
                          argMax(meetings, version) AS m, argMax(no_shows, version) AS n \
                   FROM booking_usage \
                   WHERE granularity = '1d' AND room_id = '' AND {LOCAL_WEEK} \
                   GROUP BY office_id, window_start) \
             GROUP BY office_id"
        ));
        booked.extend(
            bind_week(query, offices, zone, monday)
                .fetch_all::<Booked>()
                .await?,
        );
    }
    let booked: std::collections::HashMap<String, BookingWeek> = booked
        .into_iter()
        .map(|b| {
            let week = BookingWeek {
                seen_booked_minutes: b.seen,
                ghost_minutes: b.ghost,
                meetings: b.meetings,
                no_shows: b.no_shows,
            };
            (b.office_id, week)
        })
        .collect();
    let before: std::collections::HashMap<String, f64> = before
        .into_iter()
        .map(|w| (w.office_id, w.utilization))
        .collect();
    rows.sort_by(|a, b| a.office_id.cmp(&b.office_id));
    Ok(rows
        .into_iter()
        .map(|w| OfficeWeek {
            bookings: booked.get(&w.office_id).copied(),
            week_before: before.get(&w.office_id).copied(),
            office_id: w.office_id,
            utilization: w.utilization,
            peak: w.peak,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_week_ends_at_the_next_local_monday() {
        let monday = chrono::NaiveDate::from_ymd_opt(2026, 11, 30).unwrap();
        let utc = 1_796_601_600_000; // 2026-12-07T00:00:00Z
        assert_eq!(local_week_end(monday, "UTC"), utc);
        assert_eq!(local_week_end(monday, "Pacific/Honolulu"), utc + 10 * HOUR);
        assert_eq!(local_week_end(monday, "Pacific/Auckland"), utc - 13 * HOUR);
        assert_eq!(
            local_week_end(monday, "America/Los_Angeles"),
            utc + 8 * HOUR
        );
        assert_eq!(local_week_end(monday, "Nowhere/Else"), utc + 12 * HOUR);
    }

    #[test]
    fn the_digest_is_due_the_monday_after_its_week() {
        let monday = 1_767_571_200_000; // 2026-01-05T00:00:00Z
        assert_eq!(digest_week(monday + 8 * HOUR, 8), monday - WEEK);
        assert_eq!(digest_week(monday + 8 * HOUR - 1, 8), monday - 2 * WEEK);
        assert_eq!(digest_week(monday + 6 * DAY, 8), monday - WEEK);
        assert_eq!(digest_week(monday + WEEK, 0), monday);
    }
}

#[derive(Row, Deserialize)]
struct NoShows {
    office_id: String,
    room_id: String,
    meetings: u64,
    no_shows: u64,
}

/// The booked rooms whose meetings in the 7 days before `day_end` (ms, the day windows
/// starting then) were no-shows at least `rate` of the time, with at least
/// `min_meetings` meetings: (office, room, meetings, no-shows).
pub async fn frequent_no_shows(
    clickhouse: &ClickHouseConfig,
    tenant: &TenantId,
    day_end: i64,
    rate: f64,
    min_meetings: u32,
) -> Result<Vec<(String, String, u64, u64)>, clickhouse::error::Error> {
    let client = rf_sinks::clickhouse::client(clickhouse).with_database(tenant.clickhouse_db());
    let rows: Vec<NoShows> = client
        .query(
            "SELECT office_id, room_id, sum(m) AS meetings, sum(n) AS no_shows \
             FROM (SELECT office_id, room_id, window_start, argMax(meetings, version) AS m, \
                          argMax(no_shows, version) AS n \
                   FROM booking_usage \
                   WHERE granularity = '1d' AND room_id != '' AND window_start >= toDateTime(?) AND window_start < toDateTime(?) \
                   GROUP BY office_id, room_id, window_start) \
             GROUP BY office_id, room_id \
             HAVING meetings >= ? AND no_shows >= ? * meetings ORDER BY office_id, room_id",
        )
        .bind((day_end - WEEK) / 1000)
        .bind(day_end / 1000)
        .bind(min_meetings)
        .bind(rate)
        .fetch_all()
        .await?;
    Ok(rows
        .into_iter()
        .map(|r| (r.office_id, r.room_id, r.meetings, r.no_shows))
        .collect())
}
