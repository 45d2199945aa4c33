//! `roomflow detect`: the pipeline's anomaly detector (`rf_models::detect`) over a CSV
//! series, or with `--evaluate`, over a folder of labelled series, scored as the
//! Numenta Anomaly Benchmark scores (`rf_models::score`) against the detector roomflow
//! used before and a rolling z-score.

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use rf_models::detect::{Detector, Judgement};
use rf_models::online::Forecaster;
use rf_models::score::{self, Scored};
use rf_models::seasons;

use crate::series::{files, Series};

/// What `roomflow detect` was asked.
pub struct DetectOptions<'a> {
    pub input: &'a Path,
    /// The seasons; empty: from the step and the length.
    pub periods: Vec<usize>,
    pub step_secs: Option<i64>,
    /// The smallest spread a value is judged with; `None`: a millionth of the series'
    /// typical size.
    pub floor: Option<f64>,
    /// The score from which a step is labelled with its kind.
    pub threshold: f64,
    /// Evaluate instead: anomalies injected per series (when the files carry no
    /// `label` column), and the seed they are drawn with.
    pub evaluate: bool,
    pub inject: usize,
    pub seed: u64,
}

impl DetectOptions<'_> {
    fn periods(&self, step: i64, len: usize) -> Vec<usize> {
        seasons::given_or_found(&self.periods, step, len)
    }

    fn floor(&self, values: &[f64]) -> f64 {
        self.floor.unwrap_or_else(|| {
            let size = values.iter().map(|v| v.abs()).sum::<f64>() / values.len().max(1) as f64;
            (size * 1e-6).max(1e-9)
        })
    }
}

/// Prints each step judged against the steps before it, as the pipeline judges a closed
/// hour: `timestamp,value,expected,low,high,score,label`. A missing step is printed
/// with an empty value; the label is `warmup` (score 0), `normal`, or the kind (`spike`,
/// `drop`, `level_shift`, `stuck`, `silent`) once the score reaches the threshold.
pub fn detect(o: &DetectOptions<'_>) -> anyhow::Result<()> {
    if !(0.0..=1.0).contains(&o.threshold) || o.floor.is_some_and(|f| f.is_nan() || f <= 0.0) {
        bail!("--threshold must be within [0, 1] and --floor positive");
    }
    if o.periods.iter().any(|&p| p < 2) {
        bail!("every --period must be at least 2");
    }
    if o.evaluate {
        return evaluate(o);
    }
    let series = Series::read(o.input, o.step_secs)?;
    let values: Vec<f64> = series.rows.iter().map(|r| r.value).collect();
    let span = (series.rows[series.rows.len() - 1].slot - series.rows[0].slot + 1) as usize;
    let periods = o.periods(series.step, span);
    let mut detector = Detector::new(&periods, o.floor(&values));
    let mut out = std::io::stdout().lock();
    writeln!(out, "timestamp,value,expected,low,high,score,label")?;
    let mut previous: Option<i64> = None;
    for row in &series.rows {
        // Steps missing before this row.
        if let Some(slot) = previous {
            for missing in (slot + 1).max(row.slot - 64)..row.slot {
                if let Some(j) = detector.step(missing, None) {
                    let at = series
                        .wall_after(missing - series.rows[series.rows.len() - 1].slot)
                        .map_or_else(|| missing.to_string(), |t| t.to_rfc3339());
                    print_row(&mut out, &at, None, &j, o.threshold)?;
                }
            }
        }
        previous = Some(row.slot);
        if let Some(j) = detector.step(row.slot, Some(row.value)) {
            print_row(&mut out, &row.at, Some(row.value), &j, o.threshold)?;
        }
    }
    Ok(())
}

/// One step: `timestamp,value,expected,low,high,score,label` (no value when missing).
fn print_row(
    out: &mut impl Write,
    at: &str,
    value: Option<f64>,
    j: &Judgement,
    threshold: f64,
) -> std::io::Result<()> {
    let value = value.map_or_else(String::new, |v| v.to_string());
    writeln!(
        out,
        "{at},{value},{:.4},{:.4},{:.4},{:.4},{}",
        j.expected,
        j.low,
        j.high,
        j.score,
        j.label(threshold)
    )
}

/// A series for evaluation: values by step (`None` missing) and where anomalies start.
pub struct Labelled {
    pub step: i64,
    pub values: Vec<Option<f64>>,
    pub anomalies: Vec<usize>,
    /// The kind of each anomaly, when injected.
    pub kinds: Vec<&'static str>,
}

/// splitmix64.
fn random(state: &mut u64) -> f64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
}

/// The kinds injected, in turn.
const KINDS: [&str; 5] = ["spike", "drop", "level_shift", "stuck", "silent"];

/// Injects `count` anomalies into a clean series, each of the next kind in turn, after
/// its first 20% and at least a tenth of the series apart. Sizes are in units of the
/// series' seasonal spread (1.25 mean absolute changes from one season before, the
/// standard deviation of normal changes; a median would be 0 for an office, empty at
/// night and at weekends): spikes
/// and drops of 4 to 7, shifts of 2 to 4 that last, stuck runs and gaps of half the
/// shortest season (at least 8 steps) where the series moves.
pub fn inject(
    y: &[f64],
    periods: &[usize],
    count: usize,
    first_kind: usize,
    seed: u64,
) -> (Vec<Option<f64>>, Vec<(usize, &'static str)>) {
    let mut state = seed;
    let m = periods.first().copied().unwrap_or(1);
    let changes: Vec<f64> = y.iter().zip(&y[m..]).map(|(a, b)| (b - a).abs()).collect();
    let spread = (1.25 * changes.iter().sum::<f64>() / changes.len().max(1) as f64).max(1e-9);
    let mut values: Vec<Option<f64>> = y.iter().copied().map(Some).collect();
    let n = y.len();
    let run = (m / 2).max(8);
    let mut anomalies = Vec::new();
    let (from, to) = (n / 5, n.saturating_sub(run + 1));
    let gap = n / 10;
    for k in 0..count {
        let mut at = None;
        for _ in 0..100 {
            let i = from + (random(&mut state) * (to.saturating_sub(from)) as f64) as usize;
            let apart = anomalies
                .iter()
                .all(|&(a, _): &(usize, _)| a.abs_diff(i) >= gap);
            let moves = y[i..i + run].windows(2).filter(|w| w[0] != w[1]).count() >= run / 2;
            if apart && moves {
                at = Some(i);
                break;
            }
        }
        let Some(i) = at else { continue };
        let size = 4.0 + 3.0 * random(&mut state);
        let kind = KINDS[(first_kind + k) % KINDS.len()];
        match kind {
            "spike" => values[i] = Some(y[i] + size * spread),
            "drop" => values[i] = Some(y[i] - size * spread),
            "level_shift" => {
                let shift = (2.0 + 2.0 * random(&mut state)) * spread;
                let sign = if random(&mut state) < 0.5 { -1.0 } else { 1.0 };
                for v in values[i..].iter_mut().flatten() {
                    *v += sign * shift;
                }
            }
            "stuck" => {
                for v in &mut values[i..i + run] {
                    *v = Some(y[i]);
                }
            }
            _ => {
                for v in &mut values[i..i + run] {
                    *v = None;
                }
            }
        }
        anomalies.push((i, kind));
    }
    anomalies.sort_unstable();
    (values, anomalies)
}

/// The detectors compared.
pub const DETECTORS: [&str; 4] = [
    "roomflow",
    "roomflow before",
    "rolling z-score",
    "augurs BOCPD",
];

/// Scores of every step by the detectors: roomflow's, the one before (online weekly
/// smoothing, `z² / (z² + 9)`, nothing on missing steps), a rolling z-score over the
/// last 100 steps, and `augurs`' Bayesian online changepoint detection (normal-gamma
/// prior, on the series standardized; 1 at each changepoint it reports). The last
/// reports changepoints after the whole series was read, so it judges with hindsight.
pub fn judge(values: &[Option<f64>], periods: &[usize], floor: f64) -> ([Vec<f64>; 4], Duration) {
    let mut spent = Duration::ZERO;
    let mut detector = Detector::new(periods, floor);
    let mut before = Forecaster::new(periods.last().copied().unwrap_or(2));
    let mut window: std::collections::VecDeque<f64> = std::collections::VecDeque::new();
    let mut out = [Vec::new(), Vec::new(), Vec::new(), Vec::new()];
    for (t, v) in values.iter().enumerate() {
        let slot = t as i64;
        let started = Instant::now();
        let judged = detector.step(slot, *v);
        spent += started.elapsed();
        out[0].push(judged.map_or(0.0, |j| j.score));
        let Some(v) = *v else {
            out[1].push(0.0);
            out[2].push(0.0);
            continue;
        };
        let old = before.at(slot).filter(|_| before.ready()).map_or(0.0, |f| {
            let z = (v - f.mean).abs() / f.sd.max(0.5);
            z * z / (z * z + 9.0)
        });
        out[1].push(old);
        before.observe_robust(slot, v, 0.5);
        let rolling = if window.len() >= 30 {
            let n = window.len() as f64;
            let mean = window.iter().sum::<f64>() / n;
            let sd = (window.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n).sqrt();
            let z = (v - mean).abs() / sd.max(1e-9);
            z * z / (z * z + 9.0)
        } else {
            0.0
        };
        out[2].push(rolling);
        window.push_back(v);
        if window.len() > 100 {
            window.pop_front();
        }
    }
    out[3] = changepoints(values);
    (out, spent)
}

/// `augurs`' changepoints of the series (missing steps carry the value before),
/// standardized for its normal-gamma prior.
fn changepoints(values: &[Option<f64>]) -> Vec<f64> {
    use augurs::changepoint::{Detector as _, NormalGammaDetector};
    let mut carried = values.iter().flatten().next().copied().unwrap_or(0.0);
    let dense: Vec<f64> = values
        .iter()
        .map(|v| {
            carried = v.unwrap_or(carried);
            carried
        })
        .collect();
    let n = dense.len().max(1) as f64;
    let mean = dense.iter().sum::<f64>() / n;
    let sd = (dense.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n)
        .sqrt()
        .max(1e-9);
    let standard: Vec<f64> = dense.iter().map(|v| (v - mean) / sd).collect();
    let mut scores = vec![0.0; values.len()];
    for i in NormalGammaDetector::default().detect_changepoints(&standard) {
        if let Some(s) = scores.get_mut(i) {
            *s = 1.0;
        }
    }
    scores
}

fn evaluate(o: &DetectOptions<'_>) -> anyhow::Result<()> {
    let mut corpora: [Vec<Scored>; 4] = Default::default();
    let mut kinds: Vec<Vec<&'static str>> = Vec::new();
    let (mut spent, mut steps) = (Duration::ZERO, 0usize);
    let mut out = std::io::stdout().lock();
    for (index, path) in files(o.input)?.iter().enumerate() {
        let labelled = read_labelled(path, o, index)?;
        let Some(labelled) = labelled else { continue };
        let present: Vec<f64> = labelled.values.iter().flatten().copied().collect();
        let periods = o.periods(labelled.step, labelled.values.len());
        let floor = o.floor(&present);
        kinds.push(labelled.kinds.clone());
        let (scores, took) = judge(&labelled.values, &periods, floor);
        spent += took;
        steps += labelled.values.len();
        for (corpus, scores) in corpora.iter_mut().zip(scores) {
            corpus.push(Scored {
                scores,
                anomalies: labelled.anomalies.clone(),
            });
        }
    }
    if corpora[0].is_empty() {
        bail!("--input {}: no series to evaluate", o.input.display());
    }
    writeln!(
        out,
        "series {}, anomaly windows {}",
        corpora[0].len(),
        score::at(&corpora[0], 2.0).windows
    )?;
    for (name, corpus) in DETECTORS.iter().zip(&corpora) {
        let best = score::best(corpus);
        writeln!(
            out,
            "{name:16} score {:5.1} (best threshold {:.6}: {} of {} windows found, {} false positives)",
            best.score, best.threshold, best.detected, best.windows, best.false_positives
        )?;
    }
    writeln!(
        out,
        "roomflow's CPU per step judged and learnt: {:.2} µs",
        spent.as_secs_f64() * 1e6 / steps.max(1) as f64
    )?;
    let fixed = score::at(&corpora[0], o.threshold);
    if kinds.iter().any(|k| !k.is_empty()) {
        write!(out, "roomflow at its threshold, found by kind:")?;
        for kind in KINDS {
            let (mut found, mut all) = (0, 0);
            for (s, kinds) in corpora[0].iter().zip(&kinds) {
                let windows = score::windows(s.scores.len(), &s.anomalies);
                let probation = ((s.scores.len() as f64 * 0.15) as usize).min(750);
                for (&a, _) in s.anomalies.iter().zip(kinds).filter(|(_, k)| **k == kind) {
                    all += 1;
                    let Some(&(from, to)) = windows.iter().find(|w| w.0 <= a && a <= w.1) else {
                        continue;
                    };
                    found +=
                        usize::from((from.max(probation)..=to).any(|i| s.scores[i] >= o.threshold));
                }
            }
            write!(out, " {kind} {found}/{all}")?;
        }
        writeln!(out)?;
    }
    writeln!(
        out,
        "roomflow at its threshold {}: score {:.1} ({} of {} found, {} false positives)",
        o.threshold, fixed.score, fixed.detected, fixed.windows, fixed.false_positives
    )?;
    Ok(())
}

/// A series with its labels: from a `label` column (1 where an anomaly starts), or
/// injected (`--inject`) into a clean series. `None`: too short to hold anomalies.
fn read_labelled(
    path: &Path,
    o: &DetectOptions<'_>,
    index: usize,
) -> anyhow::Result<Option<Labelled>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("--input {}", path.display()))?;
    let labelled = text
        .lines()
        .next()
        .is_some_and(|h| h.trim_end().ends_with(",label"));
    let series = if labelled {
        let stripped: String = text
            .lines()
            .map(|l| l.rsplit_once(',').map_or(l, |(rest, _)| rest))
            .collect::<Vec<_>>()
            .join("\n");
        let tmp =
            std::env::temp_dir().join(format!("rf-detect-{}-{index}.csv", std::process::id()));
        std::fs::write(&tmp, stripped)?;
        let series = Series::read(&tmp, o.step_secs);
        std::fs::remove_file(&tmp)?;
        series.with_context(|| format!("--input {}", path.display()))?
    } else {
        Series::read(path, o.step_secs)?
    };
    let first = series.rows[0].slot;
    let len = (series.rows[series.rows.len() - 1].slot - first + 1) as usize;
    let mut values = vec![None; len];
    for r in &series.rows {
        values[(r.slot - first) as usize] = Some(r.value);
    }
    if labelled {
        let marks: Vec<bool> = text
            .lines()
            .skip(1)
            .filter(|l| !l.trim().is_empty())
            .map(|l| l.trim_end().ends_with(",1"))
            .collect();
        let anomalies = series
            .rows
            .iter()
            .zip(marks)
            .filter(|(_, m)| *m)
            .map(|(r, _)| (r.slot - first) as usize)
            .collect();
        return Ok(Some(Labelled {
            step: series.step,
            values,
            anomalies,
            kinds: Vec::new(),
        }));
    }
    if o.inject == 0 {
        bail!(
            "--input {}: no label column; give --inject N to inject anomalies",
            path.display()
        );
    }
    let dense = series.dense();
    let periods = o.periods(series.step, dense.len());
    if dense.len() < 100 {
        return Ok(None);
    }
    let (values, injected) = inject(
        &dense,
        &periods,
        o.inject,
        index,
        o.seed ^ (index as u64) << 32,
    );
    Ok(Some(Labelled {
        step: series.step,
        values,
        anomalies: injected.iter().map(|a| a.0).collect(),
        kinds: injected.iter().map(|a| a.1).collect(),
    }))
}

#[cfg(test)]
mod tests {
    use super::{inject, judge, KINDS};
    use crate::forecast::tests::office;
    use rf_models::score::{self, Scored};

    #[test]
    fn on_simulated_offices_roomflow_finds_injected_anomalies_better_than_before() {
        let y = office("detect").dense();
        let mut corpora: [Vec<Scored>; 4] = Default::default();
        for first in 0..KINDS.len() {
            let (values, injected) = inject(&y, &[24, 168], 2, first, first as u64 + 1);
            assert_eq!(injected.len(), 2);
            let anomalies: Vec<usize> = injected.iter().map(|a| a.0).collect();
            for (corpus, scores) in corpora.iter_mut().zip(judge(&values, &[24, 168], 0.5).0) {
                corpus.push(Scored {
                    scores,
                    anomalies: anomalies.clone(),
                });
            }
        }
        let [now, before, rolling, _] = corpora.map(|c| score::best(&c).score);
        assert!(
            now > before && now > rolling,
            "roomflow {now}, before {before}, rolling z {rolling}"
        );
        assert!(now >= 50.0, "roomflow {now}");
    }
}
