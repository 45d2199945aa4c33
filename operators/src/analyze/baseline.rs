//! Occupancy anomalies: a final hour judged by the entity's detector
//! ([`rf_models::detect`]), its calibrated score turned into a severity.

use rf_models::detect::Judgement;
use serde::Serialize;

use crate::Severity;

/// The severity of a calibrated score: low from a one-in-a-thousand hour of the entity
/// itself, medium from one in ten thousand, high from one in a hundred thousand.
pub fn severity(score: f64) -> Option<Severity> {
    match score {
        s if s >= 0.99999 => Some(Severity::High),
        s if s >= 0.9999 => Some(Severity::Medium),
        s if s >= 0.999 => Some(Severity::Low),
        _ => None,
    }
}

/// The smallest spread a room or office is judged with: half a person, plus 2% of its
/// capacity.
pub fn floor(capacity: u32) -> f64 {
    0.5 + 0.02 * f64::from(capacity)
}

/// An anomaly's details: what was seen against what was expected, and its kind.
pub fn details(actual: f64, j: &Judgement) -> String {
    #[derive(Serialize)]
    struct Details<'a> {
        actual: f64,
        #[serde(flatten)]
        judgement: &'a Judgement,
    }
    serde_json::to_string(&Details {
        actual,
        judgement: j,
    })
    .expect("details serialize")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn severities_follow_the_calibrated_score() {
        assert_eq!(severity(0.998), None);
        assert_eq!(severity(0.999), Some(Severity::Low));
        assert_eq!(severity(0.99995), Some(Severity::Medium));
        assert_eq!(severity(0.999_999), Some(Severity::High));
    }
}
