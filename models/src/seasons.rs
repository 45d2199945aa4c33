//! The seasons a series can have, from its step and its length: a day and a week of
//! steps shorter than a day, a week and a year of days, a year of weeks, months or
//! quarters. A season is kept only when the series holds at least two of it.

const MINUTE: i64 = 60;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;
const WEEK: i64 = 7 * DAY;

/// The seasons (in steps), shortest first, of a series of `len` steps of `step_secs`.
///
/// Steps that do not divide a day (7 minutes, say) have no daily season; a step of 28
/// to 31 days is a month, of 89 to 92 days a quarter.
pub fn periods(step_secs: i64, len: usize) -> Vec<usize> {
    let mut periods: Vec<usize> = match step_secs {
        s if s <= 0 => Vec::new(),
        s if s < DAY && DAY % s == 0 => vec![(DAY / s) as usize, (WEEK / s) as usize],
        s if s < DAY => Vec::new(),
        DAY => vec![7, 365],
        WEEK => vec![52],
        s if (28 * DAY..=31 * DAY).contains(&s) => vec![12],
        s if (89 * DAY..=92 * DAY).contains(&s) => vec![4],
        _ => Vec::new(),
    };
    periods.retain(|&p| p >= 2 && len >= 2 * p);
    periods
}

/// The seasons `given` (those the series holds two of), or when none are given, those
/// of [`periods`].
pub fn given_or_found(given: &[usize], step_secs: i64, len: usize) -> Vec<usize> {
    if given.is_empty() {
        return periods(step_secs, len);
    }
    given.iter().copied().filter(|&p| len >= 2 * p).collect()
}

/// The step of a series with timestamps `secs` (in order): the most common difference
/// between neighbours, so that a few gaps do not change it. Months and quarters, whose
/// lengths vary, come out as their most common length (31 and 92 days).
pub fn step(secs: &[i64]) -> Option<i64> {
    let mut gaps: Vec<i64> = secs
        .windows(2)
        .map(|w| w[1] - w[0])
        .filter(|&d| d > 0)
        .collect();
    gaps.sort_unstable();
    let mut best = None;
    let mut run = (0, 0usize);
    for g in gaps {
        run = if g == run.0 { (g, run.1 + 1) } else { (g, 1) };
        if best.is_none_or(|(_, n)| run.1 > n) {
            best = Some(run);
        }
    }
    best.map(|(g, _)| g)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seasons_follow_the_step_and_need_two_of_them() {
        assert_eq!(periods(HOUR, 1000), vec![24, 168]);
        assert_eq!(periods(HOUR, 300), vec![24]);
        assert_eq!(periods(15 * MINUTE, 10_000), vec![96, 672]);
        assert_eq!(periods(5 * MINUTE, 4032), vec![288, 2016]);
        assert_eq!(periods(MINUTE, 3000), vec![1440]);
        assert_eq!(periods(DAY, 1461), vec![7, 365]);
        assert_eq!(periods(DAY, 100), vec![7]);
        assert_eq!(periods(31 * DAY, 144), vec![12]);
        assert_eq!(periods(92 * DAY, 100), vec![4]);
        assert_eq!(periods(7 * MINUTE, 10_000), Vec::<usize>::new());
        assert_eq!(periods(0, 10_000), Vec::<usize>::new());
    }

    #[test]
    fn the_step_is_the_commonest_gap() {
        assert_eq!(step(&[0, 3600, 7200, 14_400, 18_000]), Some(3600));
        let months = [0, 31, 59, 90, 120, 151, 181, 212].map(|d| d * DAY);
        assert_eq!(step(&months), Some(31 * DAY));
        assert_eq!(step(&[5]), None);
    }
}
