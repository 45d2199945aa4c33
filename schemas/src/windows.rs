//! Window assignment: tumbling `15m` and `1h` windows aligned to UTC, `1d` windows from
//! one local midnight of the office to the next.

use chrono::{DateTime, Days, NaiveTime, TimeZone};
use chrono_tz::Tz;

/// Minutes, hours and days, in the order their windows close.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Granularity {
    /// 15 minutes, aligned to UTC.
    M15,
    /// One hour, aligned to UTC.
    H1,
    /// One local day of the office.
    D1,
}

impl Granularity {
    /// Every granularity.
    pub const ALL: [Self; 3] = [Self::M15, Self::H1, Self::D1];

    /// The contract's label (`15m`, `1h`, `1d`).
    pub fn label(self) -> &'static str {
        match self {
            Self::M15 => "15m",
            Self::H1 => "1h",
            Self::D1 => "1d",
        }
    }

    /// The value of ClickHouse's `granularity` Enum8.
    pub fn enum_value(self) -> i8 {
        match self {
            Self::M15 => 1,
            Self::H1 => 2,
            Self::D1 => 3,
        }
    }

    /// Parses a label.
    pub fn from_label(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|g| g.label() == s)
    }

    /// The window `[start, end)` in ms that holds `ts`, for an office in `tz`.
    pub fn window(self, ts: i64, tz: Tz) -> (i64, i64) {
        // Validation keeps `ts` within a few years of now; the clamp keeps a timestamp
        // that slipped through anyway inside the calendar instead of panicking a worker.
        let ts = ts.clamp(-CALENDAR_MS, CALENDAR_MS);
        match self {
            Self::M15 => fixed(ts, 15 * 60_000),
            Self::H1 => fixed(ts, 60 * 60_000),
            Self::D1 => local_day(ts, tz),
        }
    }
}

fn fixed(ts: i64, len: i64) -> (i64, i64) {
    let start = ts.div_euclid(len) * len;
    (start, start + len)
}

/// A bound well inside chrono's range (about ±262,000 years), ms: about 100,000 years.
const CALENDAR_MS: i64 = 100_000 * 366 * 86_400_000;

/// The local day of `tz` that holds `ts`, from its midnight to the next one. Where a
/// zone skips midnight (a daylight-saving change at 00:00), the day starts at the first
/// instant that exists.
fn local_day(ts: i64, tz: Tz) -> (i64, i64) {
    let utc = DateTime::from_timestamp_millis(ts).expect("windows clamp into chrono's range");
    let date = utc.with_timezone(&tz).date_naive();
    let start_of = |d: chrono::NaiveDate| -> i64 {
        let midnight = d.and_time(NaiveTime::MIN);
        (0..=180)
            .step_by(15)
            .find_map(|m| {
                tz.from_local_datetime(&(midnight + chrono::Duration::minutes(m)))
                    .earliest()
            })
            .expect("a day has a first instant")
            .timestamp_millis()
    };
    let next = date
        .checked_add_days(Days::new(1))
        .expect("dates are in range");
    (start_of(date), start_of(next))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    fn ms(s: &str) -> i64 {
        s.parse::<DateTime<Utc>>().unwrap().timestamp_millis()
    }

    #[test]
    fn any_timestamp_has_windows() {
        for ts in [
            i64::MIN,
            -9_000_000_000_000_000,
            0,
            9_000_000_000_000_000,
            i64::MAX,
        ] {
            for g in Granularity::ALL {
                let (start, end) = g.window(ts, chrono_tz::Europe::London);
                assert!(start < end, "{g:?} at {ts}");
            }
        }
    }

    #[test]
    fn fixed_windows_align_to_utc() {
        let t = ms("2026-03-08T10:37:12.345Z");
        let tz = chrono_tz::Asia::Kolkata; // +05:30 must not shift 15m or 1h windows
        assert_eq!(
            Granularity::M15.window(t, tz),
            (ms("2026-03-08T10:30:00Z"), ms("2026-03-08T10:45:00Z"))
        );
        assert_eq!(
            Granularity::H1.window(t, tz),
            (ms("2026-03-08T10:00:00Z"), ms("2026-03-08T11:00:00Z"))
        );
        // The end is exclusive.
        let edge = ms("2026-03-08T10:45:00Z");
        assert_eq!(Granularity::M15.window(edge, tz).0, edge);
        assert_eq!(Granularity::M15.window(edge - 1, tz).1, edge);
    }

    #[test]
    fn new_york_spring_forward_day_has_23_hours() {
        let tz = chrono_tz::America::New_York;
        // 2026-03-08: clocks jump from 02:00 EST to 03:00 EDT.
        let (start, end) = Granularity::D1.window(ms("2026-03-08T15:00:00Z"), tz);
        assert_eq!(start, ms("2026-03-08T05:00:00Z")); // midnight EST
        assert_eq!(end, ms("2026-03-09T04:00:00Z")); // midnight EDT
        assert_eq!(end - start, 23 * 3_600_000);
        // 23:30 local on the 7th is still the 7th.
        assert_eq!(
            Granularity::D1.window(ms("2026-03-08T04:30:00Z"), tz).1,
            start
        );
    }

    #[test]
    fn new_york_fall_back_day_has_25_hours() {
        let tz = chrono_tz::America::New_York;
        let (start, end) = Granularity::D1.window(ms("2026-11-01T12:00:00Z"), tz);
        assert_eq!(start, ms("2026-11-01T04:00:00Z"));
        assert_eq!(end, ms("2026-11-02T05:00:00Z"));
        assert_eq!(end - start, 25 * 3_600_000);
    }

    #[test]
    fn london_daylight_saving_days() {
        let tz = chrono_tz::Europe::London;
        // 2026-03-29: 01:00 GMT becomes 02:00 BST.
        let (start, end) = Granularity::D1.window(ms("2026-03-29T12:00:00Z"), tz);
        assert_eq!(
            (start, end),
            (ms("2026-03-29T00:00:00Z"), ms("2026-03-29T23:00:00Z"))
        );
        // 2026-10-25: 02:00 BST becomes 01:00 GMT.
        let (start, end) = Granularity::D1.window(ms("2026-10-25T12:00:00Z"), tz);
        assert_eq!(
            (start, end),
            (ms("2026-10-24T23:00:00Z"), ms("2026-10-26T00:00:00Z"))
        );
        // 23:30 UTC on the 28th of March is 23:30 GMT: still the 28th.
        assert_eq!(
            Granularity::D1.window(ms("2026-03-28T23:30:00Z"), tz).1,
            ms("2026-03-29T00:00:00Z")
        );
    }

    #[test]
    fn a_zone_that_skips_midnight_starts_its_day_at_one() {
        // Santiago springs forward at 00:00 local (2026-09-06): that day starts at 01:00.
        let tz = chrono_tz::America::Santiago;
        let (start, end) = Granularity::D1.window(ms("2026-09-06T15:00:00Z"), tz);
        assert_eq!(start, ms("2026-09-06T04:00:00Z")); // 01:00 -03 == 00:00 -04 skipped
        assert_eq!(end - start, 23 * 3_600_000);
    }

    #[test]
    fn labels_round_trip() {
        for g in Granularity::ALL {
            assert_eq!(Granularity::from_label(g.label()), Some(g));
        }
        assert_eq!(Granularity::from_label("2h"), None);
    }
}
