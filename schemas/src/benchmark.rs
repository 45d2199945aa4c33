//! Cross-tenant benchmarks: how a tenant's rooms compare with other tenants' of the same
//! industry, region and kind of room, without revealing any one tenant's figures.
//!
//! Only tenants that opted in contribute, each with **one** figure per cohort (its own
//! average over its rooms' final days), and a cohort is published only when
//!
//! - at least [`MIN_TENANTS`] tenants contribute to it, and
//! - no tenant holds more than [`MAX_SHARE`] of the cohort's rooms;
//!
//! its quartiles then carry noise scaled to how far one tenant could move them (the gap
//! to the neighbouring quartile positions), drawn from a seed of the cohort and the
//! period, and are rounded to [`STEP`]. The same period computed again gives the same
//! figures, so two runs cannot be compared to subtract the noise, and a tenant leaving
//! a five-tenant cohort suppresses it instead of revealing itself by difference.

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{Hash, Hasher};

/// Tenants a cohort needs.
pub const MIN_TENANTS: usize = 5;
/// The largest share of a cohort's rooms one tenant may hold.
pub const MAX_SHARE: f64 = 0.5;
/// Figures are rounded to this (one percentage point).
pub const STEP: f64 = 0.01;
/// Every industry, region or kind.
pub const ALL: &str = "all";

/// What a cohort's figures measure.
pub const METRICS: [&str; 3] = ["utilization", "peak_utilization", "ghost_booking_rate"];

/// A tenant's final room days of one region and kind of room over the period: sums, so
/// that slices add up.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Slice {
    /// The rooms' region.
    pub region: String,
    /// The kind of room (`MEETING`, …).
    pub kind: String,
    /// Rooms with at least one final day.
    pub rooms: u64,
    /// Room days.
    pub days: u64,
    /// Sum of the days' utilizations.
    pub utilization: f64,
    /// Sum of the days' peak utilizations (peak people over capacity).
    pub peak: f64,
    /// Booked minutes nobody used.
    pub ghost_minutes: u64,
    /// Booked minutes.
    pub booked_minutes: u64,
}

/// A tenant's own figures in one cohort.
#[derive(Clone, Debug, PartialEq)]
pub struct Figures {
    /// Its rooms in the cohort.
    pub rooms: u64,
    /// `utilization`, `peak_utilization`, `ghost_booking_rate` (`None`: no bookings).
    pub values: [Option<f64>; 3],
}

/// A tenant's figures over the slices of `region` and `kind` (either may be [`ALL`]).
pub fn figures(slices: &[Slice], region: &str, kind: &str) -> Option<Figures> {
    let mut sum = Slice::default();
    for s in slices
        .iter()
        .filter(|s| (region == ALL || s.region == region) && (kind == ALL || s.kind == kind))
    {
        sum.rooms += s.rooms;
        sum.days += s.days;
        sum.utilization += s.utilization;
        sum.peak += s.peak;
        sum.ghost_minutes += s.ghost_minutes;
        sum.booked_minutes += s.booked_minutes;
    }
    (sum.days > 0).then(|| Figures {
        rooms: sum.rooms,
        values: [
            Some(sum.utilization / sum.days as f64),
            Some(sum.peak / sum.days as f64),
            (sum.booked_minutes > 0).then(|| sum.ghost_minutes as f64 / sum.booked_minutes as f64),
        ],
    })
}

/// The industry as cohorts name it: trimmed, lower case; `None` when not given.
pub fn industry(name: &str) -> Option<String> {
    let name = name.trim().to_lowercase();
    (!name.is_empty()).then_some(name)
}

/// One contributing tenant: its industry and slices, and nothing that names it.
#[derive(Clone, Debug, PartialEq)]
pub struct Member {
    /// As [`industry`] gives it.
    pub industry: Option<String>,
    /// Its slices.
    pub slices: Vec<Slice>,
}

/// A cohort: which tenants' rooms, and for each metric with enough contributors its
/// quartiles across them.
#[derive(Clone, Debug, PartialEq)]
pub struct Cohort {
    /// The industry, or [`ALL`].
    pub industry: String,
    /// The rooms' region, or [`ALL`].
    pub region: String,
    /// The kind of room, or [`ALL`].
    pub kind: String,
    /// One of [`METRICS`].
    pub metric: &'static str,
    /// Tenants contributing.
    pub tenants: u32,
    /// Quartiles across the tenants' figures, noised and rounded.
    pub p25: f64,
    /// The median.
    pub p50: f64,
    /// The upper quartile.
    pub p75: f64,
}

/// What a computation published and held back.
#[derive(Debug, Default, PartialEq)]
pub struct Published {
    /// The cohorts' figures that may be shown.
    pub cohorts: Vec<Cohort>,
    /// (cohort, metric) pairs held back: too few tenants, or one too large.
    pub suppressed: usize,
}

/// The cohorts of `members`, by the disclosure rule; `period` seeds the noise (the
/// period's first and last day, say), so computing the same period again gives the same
/// figures.
pub fn cohorts(members: &[Member], period: &str) -> Published {
    let mut keys: BTreeSet<(String, String, String)> = BTreeSet::new();
    for m in members {
        let industries = [m.industry.clone(), Some(ALL.to_owned())];
        for industry in industries.into_iter().flatten() {
            for s in &m.slices {
                for region in [s.region.as_str(), ALL] {
                    for kind in [s.kind.as_str(), ALL] {
                        keys.insert((industry.clone(), region.to_owned(), kind.to_owned()));
                    }
                }
            }
        }
    }
    let mut published = Published::default();
    for (industry, region, kind) in keys {
        let figures: Vec<Figures> = members
            .iter()
            .filter(|m| industry == ALL || m.industry.as_deref() == Some(&industry))
            .filter_map(|m| self::figures(&m.slices, &region, &kind))
            .collect();
        for (i, metric) in METRICS.iter().enumerate() {
            let with: Vec<(u64, f64)> = figures
                .iter()
                .filter_map(|f| Some((f.rooms, f.values[i]?)))
                .collect();
            if with.is_empty() {
                continue;
            }
            let rooms: u64 = with.iter().map(|(r, _)| r).sum();
            let largest = with.iter().map(|(r, _)| *r).max().unwrap_or(0);
            if with.len() < MIN_TENANTS || largest as f64 > MAX_SHARE * rooms as f64 {
                published.suppressed += 1;
                continue;
            }
            let mut values: Vec<f64> = with.iter().map(|(_, v)| *v).collect();
            values.sort_by(f64::total_cmp);
            let seed = (period, &industry, &region, &kind, metric);
            let [p25, p50, p75] =
                [0.25, 0.5, 0.75].map(|q| disclosed(&values, q, &(seed, q.to_bits())));
            published.cohorts.push(Cohort {
                industry: industry.clone(),
                region: region.clone(),
                kind: kind.clone(),
                metric,
                tenants: with.len() as u32,
                p25,
                p50: p50.max(p25),
                p75: p75.max(p50.max(p25)),
            });
        }
    }
    published
}

/// The `q` quantile of sorted `values` (linear between ranks).
pub fn quantile(values: &[f64], q: f64) -> f64 {
    at(values, q * (values.len() - 1) as f64)
}

fn at(values: &[f64], rank: f64) -> f64 {
    let rank = rank.clamp(0.0, (values.len() - 1) as f64);
    let (lo, hi) = (rank.floor() as usize, rank.ceil() as usize);
    values[lo] + (values[hi] - values[lo]) * (rank - lo as f64)
}

/// The `q` quantile as published: with Laplace noise of scale the most one tenant could
/// move it (it moves the quantile at most one rank either way), from a generator seeded
/// by `seed`, then rounded to [`STEP`] and kept at or above 0.
fn disclosed(values: &[f64], q: f64, seed: &impl Hash) -> f64 {
    let rank = q * (values.len() - 1) as f64;
    let value = at(values, rank);
    let reach = (at(values, rank + 1.0) - value).max(value - at(values, rank - 1.0));
    let mut hasher = std::hash::DefaultHasher::new();
    seed.hash(&mut hasher);
    // Uniform in (-0.5, 0.5), then the Laplace inverse CDF.
    let u = ((hasher.finish() >> 11) as f64 + 0.5) / (1u64 << 53) as f64 - 0.5;
    let noise = -reach * u.signum() * (1.0 - 2.0 * u.abs()).ln();
    ((value + noise) / STEP).round().max(0.0) * STEP
}

/// A tenant's slices over local days `[?, ?)` (dates bound as `YYYY-MM-DD`), from its
/// final room days and each room's latest metadata: `region, kind, rooms, days,
/// utilization, peak`. `db` is the validated tenant's database.
pub fn slices_sql(db: &str) -> String {
    format!(
        "SELECT region, kind, toUInt64(uniqExact(room_id)), toUInt64(count()), sum(u), sum(p) \
         FROM (SELECT room_id, utilization AS u, if(capacity = 0, 0., peak_people / capacity) AS p \
               FROM {db}.room_days FINAL WHERE day >= toDate(?) AND day < toDate(?)) \
         ANY INNER JOIN {rooms} USING room_id \
         GROUP BY region, kind ORDER BY region, kind",
        rooms = rooms_sql(db),
    )
}

/// A tenant's booked and ghost minutes over the day windows of `booking_usage` starting
/// in `[?, ?)` (seconds), per time zone (each room's office's), window start, region and
/// kind: `tz, start, region, kind, ghost_minutes, booked_minutes`. A day window starts at
/// its local midnight: [`local_day`] gives its date.
pub fn ghosts_sql(db: &str) -> String {
    format!(
        "SELECT tz, toUInt32(window_start), region, kind, toUInt64(sum(g)), toUInt64(sum(b)) \
         FROM (SELECT room_id, window_start, argMax(ghost_minutes, version) AS g, argMax(booked_minutes, version) AS b \
               FROM {db}.booking_usage WHERE granularity = '1d' AND room_id != '' \
               AND window_start >= toDateTime(?) AND window_start < toDateTime(?) \
               GROUP BY office_id, room_id, window_start) \
         ANY INNER JOIN {rooms} USING room_id \
         GROUP BY tz, window_start, region, kind ORDER BY region, kind",
        rooms = rooms_sql(db),
    )
}

/// The local date of a day window starting at `start` (seconds) in zone `tz`: the date
/// of its start there. A zone that does not parse falls back to UTC 12 hours on, which
/// is right within ±12 hours of UTC.
pub fn local_day(start: i64, tz: &str) -> chrono::NaiveDate {
    let at = chrono::DateTime::from_timestamp(start, 0).unwrap_or_default();
    match tz.parse::<chrono_tz::Tz>() {
        Ok(zone) => at.with_timezone(&zone).date_naive(),
        Err(_) => (at + chrono::Duration::hours(12)).date_naive(),
    }
}

/// Each room's latest region, kind and time zone.
fn rooms_sql(db: &str) -> String {
    format!(
        "(SELECT room_id, argMax(region, version) AS region, toString(argMax(kind, version)) AS kind, \
         argMax(timezone, version) AS tz FROM {db}.rooms GROUP BY room_id)"
    )
}

/// Where a tenant's figure lies against a cohort's quartiles.
pub fn position(value: f64, c: &Cohort) -> &'static str {
    match value {
        v if v < c.p25 => "below the lower quartile",
        v if v < c.p50 => "between the lower quartile and the median",
        v if v < c.p75 => "between the median and the upper quartile",
        _ => "above the upper quartile",
    }
}

/// Cohort rows by their key, for lookups.
pub fn by_key(cohorts: &[Cohort]) -> BTreeMap<(&str, &str, &str, &str), &Cohort> {
    cohorts
        .iter()
        .map(|c| ((&*c.industry, &*c.region, &*c.kind, c.metric), c))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(industry: &str, rooms: u64, utilization: f64) -> Member {
        Member {
            industry: self::industry(industry),
            slices: vec![Slice {
                region: "EMEA".into(),
                kind: "MEETING".into(),
                rooms,
                days: rooms * 20,
                utilization: utilization * (rooms * 20) as f64,
                peak: 2.0 * utilization * (rooms * 20) as f64,
                ..Slice::default()
            }],
        }
    }

    fn finance(n: usize) -> Vec<Member> {
        (0..n)
            .map(|i| member(" Finance ", 100 + i as u64, 0.2 + 0.05 * i as f64))
            .collect()
    }

    fn published(members: &[Member]) -> Vec<(String, String, String, &'static str)> {
        cohorts(members, "2026-11-01/2026-12-01")
            .cohorts
            .into_iter()
            .map(|c| (c.industry, c.region, c.kind, c.metric))
            .collect()
    }

    #[test]
    fn four_tenants_publish_nothing() {
        let four = cohorts(&finance(4), "p");
        assert!(four.cohorts.is_empty());
        // Utilization and peak for each of 8 keys (industry or all × region or all ×
        // kind or all); no bookings, so no ghost rate.
        assert_eq!(four.suppressed, 16);
    }

    #[test]
    fn five_tenants_publish_and_one_leaving_suppresses_rather_than_reveals() {
        let five = finance(5);
        let all = published(&five);
        assert_eq!(all.len(), 16);
        assert!(all.contains(&(
            "finance".into(),
            "EMEA".into(),
            "MEETING".into(),
            "utilization"
        )));
        let four = &five[1..];
        assert!(published(four).is_empty(), "no cohort of the four remains");
    }

    #[test]
    fn a_dominant_tenant_suppresses_the_cohort() {
        let mut members = finance(5);
        // 600 of 1,010 rooms: 59%.
        members[0] = member("finance", 600, 0.3);
        assert!(published(&members).is_empty());
        // At most half is allowed: 410 of 820.
        members[0] = member("finance", 410, 0.3);
        assert_eq!(published(&members).len(), 16);
    }

    #[test]
    fn figures_are_rounded_noised_within_one_rank_and_repeatable() {
        let members = finance(7);
        let a = cohorts(&members, "2026-11");
        assert_eq!(
            a,
            cohorts(&members, "2026-11"),
            "the same period, the same figures"
        );
        let values: Vec<f64> = (0..7).map(|i| 0.2 + 0.05 * i as f64).collect();
        for c in a.cohorts.iter().filter(|c| c.metric == "utilization") {
            assert_eq!(c.tenants, 7);
            for (p, q) in [(c.p25, 0.25), (c.p50, 0.5), (c.p75, 0.75)] {
                assert_eq!(p, (p / STEP).round() * STEP, "rounded");
                let exact = quantile(&values, q);
                // The noise is Laplace with scale 0.05 (one rank): within 0.5 nearly always.
                assert!((p - exact).abs() < 0.5, "{p} against {exact}");
            }
            assert!(c.p25 <= c.p50 && c.p50 <= c.p75);
        }
        let noised = a
            .cohorts
            .iter()
            .any(|c| c.metric == "utilization" && (c.p50 - 0.35).abs() > STEP / 2.0);
        let b = cohorts(&members, "2026-12");
        assert!(noised || a != b, "noise moves some figure");
    }

    #[test]
    fn a_day_window_is_dated_by_its_own_zone_even_beyond_twelve_hours() {
        let date = |y, m, d| chrono::NaiveDate::from_ymd_opt(y, m, d).unwrap();
        // Kiritimati (UTC+14): 2 January starts at 10:00 UTC on the 1st.
        assert_eq!(
            local_day(1_767_261_600, "Pacific/Kiritimati"),
            date(2026, 1, 2)
        );
        // Pago Pago (UTC-11): 1 January starts at 11:00 UTC that day.
        assert_eq!(
            local_day(1_767_265_200, "Pacific/Pago_Pago"),
            date(2026, 1, 1)
        );
        // Auckland in summer (UTC+13).
        assert_eq!(
            local_day(1_767_178_800, "Pacific/Auckland"),
            date(2026, 1, 1)
        );
        assert_eq!(local_day(1_767_225_600, "Europe/London"), date(2026, 1, 1));
        // The old rule (UTC date 12 hours on) was wrong for Kiritimati.
        assert_eq!(local_day(1_767_261_600, "Mars/Olympus"), date(2026, 1, 1));
    }

    #[test]
    fn ghost_rates_need_bookings() {
        let mut members = finance(5);
        for (i, m) in members.iter_mut().enumerate() {
            m.slices[0].booked_minutes = 1000;
            m.slices[0].ghost_minutes = 100 * i as u64;
        }
        let ghost = cohorts(&members, "p")
            .cohorts
            .into_iter()
            .filter(|c| c.metric == "ghost_booking_rate")
            .count();
        assert_eq!(ghost, 8);
        assert_eq!(industry("  "), None);
        assert_eq!(industry("Real Estate"), Some("real estate".into()));
    }

    #[test]
    fn a_position_against_the_quartiles() {
        let c = Cohort {
            industry: ALL.into(),
            region: ALL.into(),
            kind: ALL.into(),
            metric: "utilization",
            tenants: 5,
            p25: 0.2,
            p50: 0.3,
            p75: 0.4,
        };
        assert_eq!(position(0.1, &c), "below the lower quartile");
        assert_eq!(
            position(0.35, &c),
            "between the median and the upper quartile"
        );
        assert_eq!(position(0.5, &c), "above the upper quartile");
    }
}
