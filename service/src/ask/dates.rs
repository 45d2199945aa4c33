//! Periods as people say them ("last month", "this quarter", "yesterday"), kept symbolic
//! in the plan and turned into local dates in each office's own time zone when the plan
//! runs: "last month" in Tokyo starts before it does in New York.

use std::fmt;

use chrono::{DateTime, Datelike, Duration, Months, NaiveDate, TimeZone, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::plan::Invalid;

/// A period relative to today, or one named month.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Period {
    /// Today, so far.
    Today,
    /// Yesterday.
    Yesterday,
    /// Monday to today.
    ThisWeek,
    /// Last Monday to Sunday.
    LastWeek,
    /// The 1st to today.
    ThisMonth,
    /// Last calendar month.
    LastMonth,
    /// The quarter so far.
    ThisQuarter,
    /// Last calendar quarter.
    LastQuarter,
    /// The year so far.
    ThisYear,
    /// Last calendar year.
    LastYear,
    /// The whole days before today.
    Days(u32),
    /// The whole weeks of days before today.
    Weeks(u32),
    /// The months of days before today.
    Months(u32),
    /// One calendar month.
    Month(i32, u32),
}

const NAMED: [(&str, Period); 10] = [
    ("today", Period::Today),
    ("yesterday", Period::Yesterday),
    ("this_week", Period::ThisWeek),
    ("last_week", Period::LastWeek),
    ("this_month", Period::ThisMonth),
    ("last_month", Period::LastMonth),
    ("this_quarter", Period::ThisQuarter),
    ("last_quarter", Period::LastQuarter),
    ("this_year", Period::ThisYear),
    ("last_year", Period::LastYear),
];

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some((name, _)) = NAMED.iter().find(|(_, p)| p == self) {
            return f.write_str(name);
        }
        match self {
            Period::Days(n) => write!(f, "days:{n}"),
            Period::Weeks(n) => write!(f, "weeks:{n}"),
            Period::Months(n) => write!(f, "months:{n}"),
            Period::Month(y, m) => write!(f, "{y:04}-{m:02}"),
            _ => unreachable!("named above"),
        }
    }
}

impl std::str::FromStr for Period {
    type Err = Invalid;

    fn from_str(s: &str) -> Result<Self, Invalid> {
        if let Some((_, p)) = NAMED.iter().find(|(name, _)| *name == s) {
            return Ok(*p);
        }
        let bad = || {
            Invalid(format!(
                "{s:?} is not a period (today, yesterday, this_week, last_week, this_month, last_month, \
                 this_quarter, last_quarter, this_year, last_year, days:N, weeks:N, months:N or YYYY-MM)"
            ))
        };
        let period = if let Some((unit, n)) = s.split_once(':') {
            let n: u32 = n.parse().map_err(|_| bad())?;
            match unit {
                "days" => Period::Days(n),
                "weeks" => Period::Weeks(n),
                "months" => Period::Months(n),
                _ => return Err(bad()),
            }
        } else {
            let (y, m) = s.split_once('-').ok_or_else(bad)?;
            Period::Month(y.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?)
        };
        period.validate()?;
        Ok(period)
    }
}

impl Serialize for Period {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Period {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The longest period a question may span: a year.
const MAX_DAYS: u32 = 366;

impl Period {
    /// Checks its bounds: at most a year back.
    pub fn validate(&self) -> Result<(), Invalid> {
        let ok = match *self {
            Period::Days(n) => (1..=MAX_DAYS).contains(&n),
            Period::Weeks(n) => (1..=52).contains(&n),
            Period::Months(n) => (1..=12).contains(&n),
            Period::Month(y, m) => (2000..=2100).contains(&y) && (1..=12).contains(&m),
            _ => true,
        };
        if ok {
            Ok(())
        } else {
            Err(Invalid(format!(
                "{self} reaches too far: a question spans at most a year"
            )))
        }
    }

    /// The local dates `[from, to)` it spans when `today` is the local date.
    pub fn dates(&self, today: NaiveDate) -> (NaiveDate, NaiveDate) {
        let tomorrow = today + Duration::days(1);
        let monday = today - Duration::days(i64::from(today.weekday().num_days_from_monday()));
        let month = today.with_day(1).expect("every month has a 1st");
        let quarter = NaiveDate::from_ymd_opt(today.year(), (today.month0() / 3) * 3 + 1, 1)
            .expect("a quarter's first day");
        let year = NaiveDate::from_ymd_opt(today.year(), 1, 1).expect("1 January");
        let back = |m: u32, d: NaiveDate| d - Months::new(m);
        match *self {
            Period::Today => (today, tomorrow),
            Period::Yesterday => (today - Duration::days(1), today),
            Period::ThisWeek => (monday, tomorrow),
            Period::LastWeek => (monday - Duration::days(7), monday),
            Period::ThisMonth => (month, tomorrow),
            Period::LastMonth => (back(1, month), month),
            Period::ThisQuarter => (quarter, tomorrow),
            Period::LastQuarter => (back(3, quarter), quarter),
            Period::ThisYear => (year, tomorrow),
            Period::LastYear => (back(12, year), year),
            Period::Days(n) => (today - Duration::days(i64::from(n)), today),
            Period::Weeks(n) => (today - Duration::days(7 * i64::from(n)), today),
            Period::Months(n) => (back(n, today), today),
            Period::Month(y, m) => {
                let first = NaiveDate::from_ymd_opt(y, m, 1).expect("validated");
                (first, first + Months::new(1))
            }
        }
    }

    /// How an answer names it: "last month (November 2026)".
    pub fn describe(&self, (from, to): (NaiveDate, NaiveDate)) -> String {
        let last = to - Duration::days(1);
        let span = if from == last {
            from.format("%a %-d %b %Y").to_string()
        } else {
            format!("{} to {}", from.format("%-d %b"), last.format("%-d %b %Y"))
        };
        let name = match *self {
            Period::Today => "today".to_owned(),
            Period::Yesterday => "yesterday".to_owned(),
            Period::ThisWeek => "this week".to_owned(),
            Period::LastWeek => "last week".to_owned(),
            Period::ThisMonth => "this month".to_owned(),
            Period::LastMonth => "last month".to_owned(),
            Period::ThisQuarter => "this quarter".to_owned(),
            Period::LastQuarter => "last quarter".to_owned(),
            Period::ThisYear => "this year".to_owned(),
            Period::LastYear => "last year".to_owned(),
            Period::Days(n) => format!("over the last {n} days"),
            Period::Weeks(n) => format!("over the last {n} weeks"),
            Period::Months(n) => format!("over the last {n} months"),
            Period::Month(..) => return format!("in {}", from.format("%B %Y")),
        };
        format!("{name} ({span})")
    }
}

/// Local midnight of `date` in `zone`, as UTC (the first moment of the day where a
/// clock change skips midnight).
pub fn midnight<Z: TimeZone>(zone: &Z, date: NaiveDate) -> DateTime<Utc> {
    let start = date.and_hms_opt(0, 0, 0).expect("midnight");
    (0..4)
        .find_map(|h| {
            zone.from_local_datetime(&(start + Duration::hours(h)))
                .earliest()
        })
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(|| Utc.from_utc_datetime(&start))
}

/// Today's date in `zone` at `now`.
pub fn today<Z: TimeZone>(zone: &Z, now: DateTime<Utc>) -> NaiveDate {
    now.with_timezone(zone).date_naive()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    #[test]
    fn periods_are_whole_local_days() {
        let today = d(2026, 12, 3); // a Thursday
        assert_eq!(Period::Today.dates(today), (today, d(2026, 12, 4)));
        assert_eq!(
            Period::ThisWeek.dates(today),
            (d(2026, 11, 30), d(2026, 12, 4))
        );
        assert_eq!(
            Period::LastWeek.dates(today),
            (d(2026, 11, 23), d(2026, 11, 30))
        );
        assert_eq!(
            Period::LastMonth.dates(today),
            (d(2026, 11, 1), d(2026, 12, 1))
        );
        assert_eq!(
            Period::ThisQuarter.dates(today),
            (d(2026, 10, 1), d(2026, 12, 4))
        );
        assert_eq!(
            Period::LastQuarter.dates(today),
            (d(2026, 7, 1), d(2026, 10, 1))
        );
        assert_eq!(
            Period::LastYear.dates(today),
            (d(2025, 1, 1), d(2026, 1, 1))
        );
        assert_eq!(Period::Days(30).dates(today), (d(2026, 11, 3), today));
        assert_eq!(Period::Months(3).dates(today), (d(2026, 9, 3), today));
        assert_eq!(
            Period::Month(2026, 2).dates(today),
            (d(2026, 2, 1), d(2026, 3, 1))
        );
        assert_eq!(
            Period::LastMonth.dates(d(2026, 1, 15)),
            (d(2025, 12, 1), d(2026, 1, 1))
        );
    }

    #[test]
    fn periods_read_back_what_they_write_and_refuse_the_rest() {
        for p in [
            Period::LastMonth,
            Period::Days(30),
            Period::Weeks(4),
            Period::Month(2026, 10),
        ] {
            assert_eq!(p.to_string().parse::<Period>().unwrap(), p);
        }
        for bad in [
            "lastmonth",
            "days:0",
            "days:400",
            "weeks:x",
            "2026-13",
            "months:13",
        ] {
            assert!(bad.parse::<Period>().is_err(), "{bad}");
        }
    }

    #[test]
    fn midnight_is_local_and_survives_a_clock_change() {
        let london: chrono_tz::Tz = "Europe/London".parse().unwrap();
        // Summer time: midnight is 23:00 UTC the day before.
        assert_eq!(
            midnight(&london, d(2026, 10, 1)).to_rfc3339(),
            "2026-09-30T23:00:00+00:00"
        );
        assert_eq!(
            midnight(&london, d(2026, 11, 1)).to_rfc3339(),
            "2026-11-01T00:00:00+00:00"
        );
        // Santiago skips midnight when summer time starts (2026-09-06).
        let santiago: chrono_tz::Tz = "America/Santiago".parse().unwrap();
        assert_eq!(
            midnight(&santiago, d(2026, 9, 6)).to_rfc3339(),
            "2026-09-06T04:00:00+00:00"
        );
        let last = Period::LastMonth.describe(Period::LastMonth.dates(d(2026, 12, 3)));
        assert_eq!(last, "last month (1 Nov to 30 Nov 2026)");
    }
}
