//! Judging a value against an entity's own pattern for that slot of the season: the
//! forecaster's one-step forecast is the baseline, its smoothed error the spread.

use serde::Serialize;

use crate::Severity;
use rf_models::online::Forecaster;

/// A value judged against its baseline.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Judgement {
    /// The value seen.
    pub actual: f64,
    /// The baseline's expectation.
    pub expected: f64,
    /// Its 95% interval.
    pub low: f64,
    /// Its 95% interval.
    pub high: f64,
    /// Standard deviations away, the spread at least the floor.
    pub z: f64,
    /// How unusual, in [0, 1].
    pub score: f64,
    /// `None`: not an anomaly.
    #[serde(skip)]
    pub severity: Option<Severity>,
}

/// The score of a value `z` standard deviations away, `z² / (z² + 9)`: 0.5 at 3σ (where
/// anomalies start), 0.74 at 5σ, 0.88 at 8σ, approaching 1.
pub fn score(z: f64) -> f64 {
    let z2 = z * z;
    z2 / (z2 + 9.0)
}

/// The severity of a score: low from 3σ, medium from 5σ, high from 8σ.
pub fn severity(score: f64) -> Option<Severity> {
    match score {
        s if s >= 64.0 / 73.0 => Some(Severity::High),
        s if s >= 25.0 / 34.0 => Some(Severity::Medium),
        s if s >= 0.5 => Some(Severity::Low),
        _ => None,
    }
}

/// Judges `value` at `slot` against `model`, the spread at least `floor` (so that a
/// quiet slot, learnt as nearly constant, does not make one person an anomaly). `None`
/// during the cold start: until the model saw a whole season, nothing is judged.
pub fn judge(model: &Forecaster, slot: i64, value: f64, floor: f64) -> Option<Judgement> {
    if !model.ready() {
        return None;
    }
    let f = model.at(slot)?;
    let z = (value - f.mean).abs() / f.sd.max(floor);
    let score = score(z);
    Some(Judgement {
        actual: value,
        expected: f.mean,
        low: f.low,
        high: f.high,
        z,
        score,
        severity: severity(score),
    })
}

/// Judges `value`, then learns from it robustly (an outlier does not teach the baseline):
/// what the pipeline and `roomflow detect` both do for each closed slot.
pub fn judge_and_learn(
    model: &mut Forecaster,
    slot: i64,
    value: f64,
    floor: f64,
) -> Option<Judgement> {
    let judgement = judge(model, slot, value, floor);
    model.observe_robust(slot, value, floor);
    judgement
}

/// The smallest spread a room or office is judged with: half a person, plus 2% of its
/// capacity.
pub fn floor(capacity: u32) -> f64 {
    0.5 + 0.02 * f64::from(capacity)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_and_severities_follow_the_deviation() {
        assert_eq!(score(0.0), 0.0);
        assert!((score(3.0) - 0.5).abs() < 1e-12);
        assert_eq!(severity(score(2.9)), None);
        assert_eq!(severity(score(3.0)), Some(Severity::Low));
        assert_eq!(severity(score(5.0)), Some(Severity::Medium));
        assert_eq!(severity(score(8.0)), Some(Severity::High));
        assert!(score(1e6) <= 1.0);
    }

    /// A busy 9-to-5 every day, with a little noise.
    fn day(t: i64) -> f64 {
        let busy = if (9..17).contains(&(t % 24)) {
            20.0
        } else {
            1.0
        };
        busy + ((t * 7919) % 5) as f64 * 0.2
    }

    #[test]
    fn nothing_is_judged_before_a_season_and_outliers_do_not_teach_the_baseline() {
        let mut m = Forecaster::new(24);
        for t in 0..24 {
            assert_eq!(judge_and_learn(&mut m, t, day(t), 0.5), None);
        }
        for t in 24..24 * 8 {
            let j = judge_and_learn(&mut m, t, day(t), 0.5).unwrap();
            assert_eq!(j.severity, None, "a usual hour {t}: {j:?}");
        }
        // An empty office at 10:00, and the same hour the next day is busy as usual.
        let t = 24 * 8 + 10;
        for s in 24 * 8..t {
            judge_and_learn(&mut m, s, day(s), 0.5);
        }
        let empty = judge_and_learn(&mut m, t, 0.0, 0.5).unwrap();
        assert!(empty.severity >= Some(Severity::Medium), "{empty:?}");
        assert!(empty.expected > 15.0);
        for s in t + 1..t + 24 {
            judge_and_learn(&mut m, s, day(s), 0.5);
        }
        let next = judge(&m, t + 24, day(t + 24), 0.5).unwrap();
        assert_eq!(next.severity, None, "the outlier was not learnt: {next:?}");
    }
}
