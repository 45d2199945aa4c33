//! The windowed scoring of anomaly detectors, as the Numenta Anomaly Benchmark's
//! standard profile defines it, for evaluating detectors on labelled series.
//!
//! Each labelled anomaly gets a window centred on it, a tenth of the series shared out
//! among its anomalies. Inside a window, only the first detection counts, and it earns
//! more the earlier it comes (a scaled sigmoid of its position: about 1 at the window's
//! start, 0 at its end). A detection outside every window costs 0.11 (less just after a
//! window); a window without a detection costs 1. Detections in the first 15% of a
//! series (at most 750 steps) are not counted. The corpus's score is normalized so that
//! detecting nothing scores 0 and detecting every window at its start scores 100. The
//! threshold that turns scores into detections is the one that scores best on the whole
//! corpus, as the benchmark does; [`corpus`] also reports any fixed threshold.

/// The weights of the standard profile.
const TRUE_POSITIVE: f64 = 1.0;
const FALSE_POSITIVE: f64 = 0.11;
const FALSE_NEGATIVE: f64 = 1.0;

/// One labelled series and a detector's scores of its steps.
pub struct Scored {
    pub scores: Vec<f64>,
    /// The steps where anomalies start.
    pub anomalies: Vec<usize>,
}

/// `2 / (1 + e^(5y)) - 1`: 0.987 at `y = -1`, 0 at 0, towards -1 after.
fn sigmoid(y: f64) -> f64 {
    if y > 3.0 {
        return -1.0;
    }
    2.0 / (1.0 + (5.0 * y).exp()) - 1.0
}

/// The windows of a series of `len` steps with anomalies starting at `anomalies`:
/// `[start, end]`, merged where they overlap.
pub fn windows(len: usize, anomalies: &[usize]) -> Vec<(usize, usize)> {
    if anomalies.is_empty() {
        return Vec::new();
    }
    let width = ((len as f64 * 0.1) / anomalies.len() as f64).floor() as usize;
    let mut sorted = anomalies.to_vec();
    sorted.sort_unstable();
    let mut out: Vec<(usize, usize)> = Vec::new();
    for a in sorted {
        let start = a.saturating_sub(width / 2);
        let end = (a + width / 2).min(len.saturating_sub(1));
        match out.last_mut() {
            Some(last) if start <= last.1 => last.1 = last.1.max(end),
            _ => out.push((start, end)),
        }
    }
    out
}

/// What a threshold gives on one series: the raw score and its counts.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Raw {
    pub score: f64,
    pub windows: usize,
    pub detected: usize,
    pub false_positives: usize,
}

/// Scores one series at `threshold`.
pub fn series(s: &Scored, threshold: f64) -> Raw {
    let len = s.scores.len();
    let windows = windows(len, &s.anomalies);
    let probation = ((len as f64 * 0.15).floor() as usize).min(750);
    let mut raw = Raw {
        windows: windows.len(),
        ..Raw::default()
    };
    let mut found = vec![false; windows.len()];
    for (i, &score) in s.scores.iter().enumerate() {
        if i < probation || score < threshold {
            continue;
        }
        match windows.iter().position(|&(a, b)| a <= i && i <= b) {
            Some(w) => {
                if !found[w] {
                    found[w] = true;
                    let (a, b) = windows[w];
                    let length = (b - a + 1) as f64;
                    let position = -((b - i + 1) as f64) / length;
                    raw.score += TRUE_POSITIVE * sigmoid(position);
                    raw.detected += 1;
                }
            }
            None => {
                raw.false_positives += 1;
                let before = windows.iter().rev().find(|&&(_, b)| b < i);
                raw.score += match before {
                    Some(&(a, b)) => {
                        let position = (i - b) as f64 / (b - a + 1) as f64;
                        FALSE_POSITIVE * sigmoid(position)
                    }
                    None => -FALSE_POSITIVE,
                };
            }
        }
    }
    raw.score -= FALSE_NEGATIVE * found.iter().filter(|f| !**f).count() as f64;
    raw
}

/// A corpus's normalized score at one threshold.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Result {
    pub threshold: f64,
    /// 0 for detecting nothing, 100 for every window at its start.
    pub score: f64,
    pub windows: usize,
    pub detected: usize,
    pub false_positives: usize,
}

/// The corpus's score at `threshold`.
pub fn at(corpus: &[Scored], threshold: f64) -> Result {
    let mut total = Raw::default();
    for s in corpus {
        let r = series(s, threshold);
        total.score += r.score;
        total.windows += r.windows;
        total.detected += r.detected;
        total.false_positives += r.false_positives;
    }
    let null = -FALSE_NEGATIVE * total.windows as f64;
    let perfect = TRUE_POSITIVE * sigmoid(-1.0) * total.windows as f64;
    Result {
        threshold,
        score: 100.0 * (total.score - null) / (perfect - null).max(f64::MIN_POSITIVE),
        windows: total.windows,
        detected: total.detected,
        false_positives: total.false_positives,
    }
}

/// The corpus's best score over thresholds (every distinct score's quantile among
/// 200), as the benchmark optimizes it.
pub fn best(corpus: &[Scored]) -> Result {
    let mut all: Vec<f64> = corpus
        .iter()
        .flat_map(|s| s.scores.iter().copied())
        .collect();
    all.retain(|s| s.is_finite());
    all.sort_by(f64::total_cmp);
    let mut candidates: Vec<f64> = (0..200)
        .map(|q| all[(all.len() - 1) * q / 199])
        .chain(all.iter().rev().take(200).copied())
        .collect();
    candidates.dedup();
    candidates
        .into_iter()
        .map(|t| at(corpus, t))
        .max_by(|a, b| a.score.total_cmp(&b.score))
        .unwrap_or(Result {
            threshold: f64::INFINITY,
            score: 0.0,
            windows: 0,
            detected: 0,
            false_positives: 0,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series_with(len: usize, anomaly: usize, detections: &[usize]) -> Scored {
        let mut scores = vec![0.0; len];
        for &d in detections {
            scores[d] = 1.0;
        }
        Scored {
            scores,
            anomalies: vec![anomaly],
        }
    }

    #[test]
    fn early_detection_scores_near_100_late_less_and_none_0() {
        // 1,000 steps: the window is 100 steps, [450, 550].
        assert_eq!(windows(1000, &[500]), vec![(450, 550)]);
        let early = at(&[series_with(1000, 500, &[450])], 0.5);
        assert!(early.score > 99.0, "{early:?}");
        let late = at(&[series_with(1000, 500, &[540])], 0.5);
        assert!(late.score < 70.0 && late.score > 60.0, "{late:?}");
        let none = at(&[series_with(1000, 500, &[])], 0.5);
        assert_eq!(none.score, 0.0);
        // A second detection in the window is free; false positives cost 0.11 each.
        let twice = at(&[series_with(1000, 500, &[450, 460])], 0.5);
        assert_eq!(twice.score, early.score);
        let noisy = at(&[series_with(1000, 500, &[300, 450, 900])], 0.5);
        assert!(noisy.score < early.score - 5.0, "{noisy:?}");
        assert_eq!(noisy.false_positives, 2);
        // The probation (the first 150 steps) is not counted.
        assert_eq!(at(&[series_with(1000, 500, &[10, 450])], 0.5), early);
    }

    #[test]
    fn the_best_threshold_is_found() {
        let mut s = series_with(1000, 500, &[]);
        s.scores[300] = 0.7;
        s.scores[460] = 0.9;
        let best = best(&[s]);
        assert!(best.threshold > 0.7 && best.threshold <= 0.9, "{best:?}");
        assert_eq!((best.detected, best.false_positives), (1, 0));
    }
}
