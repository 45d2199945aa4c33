//! Anomalies of one series at any step, by kind, with scores calibrated into [0, 1].
//!
//! Each step is judged against what the series showed before it, then learnt from:
//!
//! - **spike / drop**: the value against its expectation. The expectation comes from
//!   online seasonal exponential smoothing ([`Forecaster`]) of the longest season seen
//!   twice (a week of hours for an office), else of a shorter one, else a smoothed level;
//!   the deviation is in units of the expectation's own spread at that slot.
//! - **level shift**: a two-sided CUSUM of the deviations, each clipped at 3 spreads,
//!   so one spike cannot pass for a shift but a lasting change adds up.
//! - **stuck**: a run of one repeated value, against how often the series repeats a
//!   value at that slot of its season (an office repeats 0 every night; a busy morning
//!   does not repeat).
//! - **silent**: a run of missing steps, against how often that slot was missing.
//!
//! **Calibration.** A deviation's score is `1 - p`, where `p` is the share of earlier
//! deviations of the series at least as large, counted in a histogram of logarithmic
//! bins (conformal: `(k + 1) / (n + 1)`); in the tail (the largest 2%), a Pareto tail
//! fitted to them by Hill's estimator, as extreme-value detectors do (SPOT). Before ten
//! values make a tail, beyond the largest seen it falls with the fourth power of the
//! excess. Stuck and silent runs score `1 - p` with `p` the run's
//! probability from the slot frequencies. So a score means the same on every series:
//! 0.999 is a one-in-a-thousand step of that series. The kind reported is the one with
//! the highest score.
//!
//! **Warm-up.** The model learns from the first season (or 30 steps without one), the
//! calibration from the second; until then every step scores 0 with the label `warmup`.

use serde::{Deserialize, Serialize};

use crate::online::Forecaster;

/// What a step was judged to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Spike,
    Drop,
    LevelShift,
    Stuck,
    Silent,
}

impl Kind {
    /// The label `roomflow detect` prints.
    pub fn label(self) -> &'static str {
        match self {
            Kind::Spike => "spike",
            Kind::Drop => "drop",
            Kind::LevelShift => "level_shift",
            Kind::Stuck => "stuck",
            Kind::Silent => "silent",
        }
    }
}

/// One step judged.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Judgement {
    /// The expectation, and its 95% interval (from the expectation's spread).
    pub expected: f64,
    pub low: f64,
    pub high: f64,
    /// Spreads away (signed).
    pub z: f64,
    /// How unusual, in [0, 1]: 0 during the warm-up.
    pub score: f64,
    /// The kind with the highest score; `None` during the warm-up.
    pub kind: Option<Kind>,
    /// Whether the series was still warming up.
    pub warmup: bool,
}

impl Judgement {
    /// `warmup`, or the kind when the score reaches `threshold`, else `normal`.
    pub fn label(&self, threshold: f64) -> &'static str {
        match self.kind {
            _ if self.warmup => "warmup",
            Some(kind) if self.score >= threshold => kind.label(),
            _ => "normal",
        }
    }
}

/// Logarithmic bins of a calibration histogram: bin `i` starts at `e^(i/8) - 1`.
const BINS: usize = 96;
/// Counts are halved once they pass this, so calibration follows the recent series.
const MEMORY: f32 = 20_000.0;

/// How rare a non-negative value is among those seen: a histogram of log bins.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
struct Tail {
    counts: Vec<f32>,
    total: f32,
    /// The largest value seen.
    max: f64,
}

fn bin(x: f64) -> usize {
    (((1.0 + x.max(0.0)).ln() * 8.0) as usize).min(BINS - 1)
}

fn bin_start(i: usize) -> f64 {
    (i as f64 / 8.0).exp() - 1.0
}

impl Tail {
    /// The p-value of `x`: the share of values seen at least as large (conformal:
    /// `(k + 1) / (n + 1)`). In the tail (beyond the largest 2% of values, at least 10),
    /// a Pareto tail fitted to them (Hill's estimator), so that a value far beyond
    /// anything seen is rarer than one just beyond, however short the history.
    fn p(&self, x: f64) -> f64 {
        // Within one spread is never unusual, however steady the series was.
        if self.counts.is_empty() || x <= 1.0 {
            return 1.0;
        }
        let n = f64::from(self.total);
        let need = (0.02 * n).max(10.0);
        let mut tail = 0.0;
        let mut start = None;
        for i in (0..BINS).rev() {
            tail += f64::from(self.counts[i]);
            if tail >= need {
                start = Some(i);
                break;
            }
        }
        let q = start.map_or(f64::INFINITY, bin_start);
        if x <= q || q <= 0.0 {
            let b = bin(x);
            let within = if b + 1 < BINS {
                let (start, end) = (bin_start(b), bin_start(b + 1));
                ((end - x) / (end - start)).clamp(0.0, 1.0)
            } else {
                0.5
            };
            let above: f32 = self.counts[b + 1..].iter().sum();
            let k = f64::from(above) + within * f64::from(self.counts[b]);
            let p = (k + 1.0) / (n + 1.0);
            // Too little seen for a tail: beyond the largest (at least one spread),
            // rarer with the fourth power of the excess.
            let largest = self.max.max(1.0);
            return if x > largest {
                p * (largest / x).powi(4)
            } else {
                p
            };
        }
        let first = start.expect("a tail");
        let logs: f64 = (first..BINS)
            .map(|i| {
                let middle = (bin_start(i) + bin_start((i + 1).min(BINS))) / 2.0;
                f64::from(self.counts[i]) * (middle / q).ln()
            })
            .sum();
        let alpha = if logs > 0.0 {
            (tail / logs).clamp(1.0, 10.0)
        } else {
            10.0
        };
        (tail + 1.0) / (n + 1.0) * (q / x).powf(alpha)
    }

    fn add(&mut self, x: f64) {
        if self.counts.is_empty() {
            self.counts = vec![0.0; BINS];
        }
        self.counts[bin(x)] += 1.0;
        self.total += 1.0;
        self.max = self.max.max(x);
        if self.total > MEMORY {
            self.counts.iter_mut().for_each(|c| *c /= 2.0);
            self.total /= 2.0;
        }
    }
}

/// How often something happened at each slot of a season (or overall, a season of 1).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
struct Frequency {
    /// Per slot: times it happened, times it could have.
    seen: Vec<(f32, f32)>,
}

impl Frequency {
    fn new(period: usize) -> Self {
        Self {
            seen: vec![(0.0, 0.0); period.max(1)],
        }
    }

    fn slot(&self, slot: i64) -> usize {
        slot.rem_euclid(self.seen.len() as i64) as usize
    }

    /// The chance it happens at `slot`, with one happening and one not assumed (so
    /// that never seen is rare, not impossible); 1 (no evidence either way) until the
    /// slot was seen 4 times.
    fn chance(&self, slot: i64) -> f64 {
        let (yes, all) = self.seen[self.slot(slot)];
        if all < 4.0 {
            return 1.0;
        }
        (f64::from(yes) + 1.0) / (f64::from(all) + 2.0)
    }

    fn add(&mut self, slot: i64, happened: bool) {
        let i = self.slot(slot);
        let (yes, all) = &mut self.seen[i];
        *yes += f32::from(u8::from(happened));
        *all += 1.0;
        if *all > 1_000.0 {
            *yes /= 2.0;
            *all /= 2.0;
        }
    }
}

/// Deviations are clipped at this many spreads in the CUSUM.
const CLIP: f64 = 3.0;
/// The CUSUM's allowance: shifts of about twice this many spreads are found fastest.
const ALLOWANCE: f64 = 1.0;
/// Steps of warm-up without a season.
const WARMUP: u64 = 30;
/// The smoothing of the level without a season.
const LEVEL_WEIGHT: f64 = 0.1;

/// A series' detector: everything it learnt, serializable so a restart resumes.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Detector {
    periods: Vec<usize>,
    /// One online model per season, shortest first.
    seasonal: Vec<Forecaster>,
    /// Without a season: a smoothed level and squared deviation.
    level: f64,
    spread: f64,
    /// Steps seen (with a value) and steps in all.
    seen: u64,
    /// The last step judged, and its value (`None` when missing).
    last: Option<(i64, Option<f64>)>,
    /// The smallest spread a value is judged with.
    floor: f64,
    deviations: Tail,
    shifts: Tail,
    cusum: (f64, f64),
    repeats: Frequency,
    gaps: Frequency,
    /// Current runs: the repeated value's chance so far, the gap's chance so far.
    repeat_run: f64,
    gap_run: f64,
    /// How each expectation did: the level's, then each season's.
    #[serde(default)]
    bases: Vec<Base>,
    /// The smoothed size of a step's change: a tenth of it is the least spread judged
    /// with, so that a slot learnt as constant (an office at night) does not make any
    /// change infinitely unusual.
    #[serde(default)]
    change: f64,
    /// The longest season whose expectation was used yet (0: the level): when a
    /// longer one takes over, the calibration starts again, since what was unusual for
    /// the shorter season (an office's weekend, for a daily model) is usual now.
    #[serde(default)]
    longest_used: usize,
    /// Whether stuck and silent runs are judged (the pipeline watches its sensors'
    /// runs at the minute instead).
    #[serde(default = "judged")]
    runs: bool,
    /// Steps of warm-up, when set.
    #[serde(default)]
    warmup: Option<u64>,
}

fn judged() -> bool {
    true
}

/// The least spread, as a share of the typical change from one step to the next.
const CHANGE_FLOOR: f64 = 0.1;

/// How one way of expecting the next value did, and what its residuals say about the
/// next one: residuals that persist (weather, a busy day) carry over (`φ`, fitted
/// online as an AR(1) of the residuals).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
struct Base {
    /// Smoothed squared residual, and squared residual after the carry-over.
    squared: f64,
    carried: f64,
    /// The last residual (clipped), and the smoothed products that fit `φ`.
    last: f64,
    lagged: f64,
    variance: f64,
}

/// The smoothing of the bases' statistics: about the last 50 steps count.
const BASE_WEIGHT: f64 = 0.02;

impl Base {
    fn carry(&self) -> f64 {
        if self.variance <= 0.0 {
            return 0.0;
        }
        (self.lagged / self.variance).clamp(0.0, 0.98)
    }

    /// How much the carry-over narrows the spread.
    fn narrowing(&self) -> f64 {
        if self.squared <= 0.0 || self.carried <= 0.0 {
            return 1.0;
        }
        (self.carried / self.squared).sqrt().min(1.0)
    }

    fn learn(&mut self, residual: f64, bound: f64, expected_with_carry: f64, value: f64) {
        let clipped = residual.clamp(-bound, bound);
        let w = BASE_WEIGHT;
        self.squared += w * (clipped * clipped - self.squared);
        let fast = (value - expected_with_carry).clamp(-bound, bound);
        self.carried += w * (fast * fast - self.carried);
        self.lagged += w * (clipped * self.last - self.lagged);
        self.variance += w * (self.last * self.last - self.variance);
        self.last = clipped;
    }
}

impl Detector {
    /// A detector of a series with these seasons (in steps, shortest first; see
    /// [`crate::seasons::periods`]), judging no spread as smaller than `floor`.
    pub fn new(periods: &[usize], floor: f64) -> Self {
        let shortest = periods.first().copied().unwrap_or(1);
        Self {
            periods: periods.to_vec(),
            seasonal: periods.iter().map(|&p| Forecaster::new(p)).collect(),
            level: 0.0,
            spread: 0.0,
            seen: 0,
            last: None,
            floor: floor.max(f64::MIN_POSITIVE),
            deviations: Tail::default(),
            shifts: Tail::default(),
            cusum: (0.0, 0.0),
            repeats: Frequency::new(shortest),
            gaps: Frequency::new(shortest),
            repeat_run: 1.0,
            gap_run: 1.0,
            bases: vec![Base::default(); periods.len() + 1],
            change: 0.0,
            longest_used: 0,
            runs: true,
            warmup: None,
        }
    }

    /// The same, judging values only: no stuck or silent runs.
    pub fn without_runs(mut self) -> Self {
        self.runs = false;
        self
    }

    /// Resumes from a weekly online model learnt before detectors existed (the
    /// pipeline's persisted state of an earlier version): it becomes the longest
    /// season's model and judges at once; the calibration of scores starts anew.
    pub fn resume(periods: &[usize], floor: f64, longest: Forecaster) -> Self {
        let mut d = Self::new(periods, floor);
        let Some(&period) = periods.last() else {
            return d;
        };
        if longest.ready() {
            // Judged by the model it learnt at once; only the calibration starts anew.
            d.seen = 2 * period as u64;
            d.last = longest.last().map(|slot| (slot, None));
            d.longest_used = periods.len();
            if let Some(f) = longest.last().and_then(|slot| longest.at(slot + 1)) {
                d.level = f.mean;
            }
        }
        if let Some(last) = d.seasonal.last_mut() {
            *last = longest;
        }
        d
    }

    /// The last step judged.
    pub fn last(&self) -> Option<i64> {
        self.last.map(|(slot, _)| slot)
    }

    /// Each way of expecting `slot`: the smoothed level, then each season's model once
    /// it saw its season: expectation and spread.
    fn expectations(&self, slot: i64) -> Vec<Option<(f64, f64)>> {
        let level = Some((self.level, self.spread.sqrt()));
        let seasonal = self.seasonal.iter().zip(&self.periods).map(|(m, &p)| {
            if self.seen < p as u64 || !m.ready() {
                return None;
            }
            m.at(slot).map(|f| (f.mean, f.sd))
        });
        std::iter::once(level).chain(seasonal).collect()
    }

    /// Steps the model needs before its deviations mean anything: its first season
    /// (or [`WARMUP`] steps).
    fn settling(&self) -> u64 {
        self.periods.first().map_or(WARMUP, |&p| p as u64)
    }

    /// Judging starts once the deviations of a settled model were seen for as long
    /// again, or after the warm-up set.
    fn warming_up(&self) -> bool {
        self.seen < self.warmup.unwrap_or(2 * self.settling())
    }

    /// Judges nothing for the first `steps` steps (the pipeline waits a week of hours,
    /// so that an office's first weekend is not judged by its weekdays).
    pub fn with_warmup(mut self, steps: u64) -> Self {
        self.warmup = Some(steps);
        self
    }

    /// Judges the value of `slot` (`None`: the step is missing), then learns from it.
    /// Slots must come in order; steps skipped in between are judged missing. A slot not
    /// after the last is ignored (`None`).
    pub fn step(&mut self, slot: i64, value: Option<f64>) -> Option<Judgement> {
        if self.last.is_some_and(|(last, _)| slot <= last) {
            return None;
        }
        if let Some((last, _)) = self.last {
            // Steps skipped are missing; only the last few of a long gap are judged.
            for s in (last + 1).max(slot - 64)..slot {
                self.judge(s, None);
            }
        }
        Some(self.judge(slot, value.filter(|v| v.is_finite())))
    }

    /// Like [`Self::step`], for series whose skipped steps are unknown rather than
    /// missing (a room's hours without readings: its sensor's silence is watched
    /// elsewhere): only the value is judged, and no run continues over the gap.
    pub fn step_sparse(&mut self, slot: i64, value: f64) -> Option<Judgement> {
        if self.last.is_some_and(|(last, _)| slot <= last) {
            return None;
        }
        if self.last.is_some_and(|(last, _)| slot > last + 1) {
            self.last = Some((slot - 1, None));
            self.repeat_run = 1.0;
        }
        Some(self.judge(slot, value.is_finite().then_some(value)))
    }

    /// Sets the smallest spread values are judged with (a room's capacity changed).
    pub fn set_floor(&mut self, floor: f64) {
        self.floor = floor.max(f64::MIN_POSITIVE);
    }

    /// The online model of `period`, if the detector has that season.
    pub fn model(&self, period: usize) -> Option<&Forecaster> {
        self.periods
            .iter()
            .position(|&p| p == period)
            .map(|i| &self.seasonal[i])
    }

    fn judge(&mut self, slot: i64, value: Option<f64>) -> Judgement {
        let warmup = self.warming_up();
        if self.bases.len() != self.periods.len() + 1 {
            self.bases = vec![Base::default(); self.periods.len() + 1];
        }
        let expectations = self.expectations(slot);
        // The way that did best so far; its residual carried over.
        // Ties (a way not tried yet) go to the longest season.
        let best = (0..expectations.len())
            .rev()
            .filter(|&i| expectations[i].is_some())
            .min_by(|&a, &b| self.bases[a].squared.total_cmp(&self.bases[b].squared))
            .unwrap_or(0);
        if best > self.longest_used {
            self.longest_used = best;
            self.deviations = Tail::default();
            self.shifts = Tail::default();
        }
        let (base, base_sd) = expectations[best].unwrap_or((self.level, 0.0));
        let b = &self.bases[best];
        let expected = base + b.carry() * b.last;
        let sd = base_sd * b.narrowing();
        let floor = self.floor.max(CHANGE_FLOOR * self.change);
        let spread = sd.max(floor);
        let slow_spread = base_sd.max(floor);
        let mut judgement = Judgement {
            expected,
            low: expected - 1.96 * sd,
            high: expected + 1.96 * sd,
            z: 0.0,
            score: 0.0,
            kind: None,
            warmup,
        };
        let previous = self.last.and_then(|(_, v)| v);
        self.last = Some((slot, value));
        if let (Some(p), Some(v)) = (previous, value) {
            self.change += 0.01 * ((v - p).abs() - self.change);
        }
        // Silent: a run of missing steps.
        let missing = value.is_none();
        if self.seen > 0 {
            self.gaps.add(slot, missing);
        }
        let Some(value) = value else {
            self.gap_run *= self.gaps.chance(slot);
            if !warmup && self.runs {
                judgement.score = 1.0 - self.gap_run;
                judgement.kind = Some(Kind::Silent);
            }
            return judgement;
        };
        self.gap_run = 1.0;
        // Stuck: a run of one repeated value.
        let repeated = previous.is_some_and(|p| (p - value).abs() <= 1e-9 * (1.0 + value.abs()));
        let repeat_chance = self.repeats.chance(slot);
        if previous.is_some() {
            self.repeats.add(slot, repeated);
        }
        self.repeat_run = if repeated {
            self.repeat_run * repeat_chance
        } else {
            1.0
        };
        let z = (value - expected) / spread;
        judgement.z = z;
        // A lasting shift is measured against the expectation without carry-over,
        // which follows it slowly.
        let clipped = ((value - base) / slow_spread).clamp(-CLIP, CLIP);
        self.cusum.0 = (self.cusum.0 + clipped - ALLOWANCE).max(0.0);
        self.cusum.1 = (self.cusum.1 - clipped - ALLOWANCE).max(0.0);
        let shift = self.cusum.0.max(self.cusum.1);
        if !warmup {
            let scores = [
                (
                    1.0 - self.deviations.p(z.abs()),
                    if z >= 0.0 { Kind::Spike } else { Kind::Drop },
                ),
                (1.0 - self.shifts.p(shift), Kind::LevelShift),
                // A repeat needs two repeats at least to be a run.
                (
                    if self.runs && self.repeat_run < repeat_chance {
                        1.0 - self.repeat_run
                    } else {
                        0.0
                    },
                    Kind::Stuck,
                ),
            ];
            let (score, kind) = scores
                .into_iter()
                .max_by(|a, b| a.0.total_cmp(&b.0))
                .expect("three scores");
            judgement.score = score.clamp(0.0, 1.0);
            judgement.kind = Some(kind);
        }
        if self.seen >= self.settling() {
            self.deviations.add(z.abs());
            self.shifts.add(shift);
        }
        for (i, e) in expectations.iter().enumerate() {
            if let Some((m, sd)) = *e {
                let b = &mut self.bases[i];
                let with_carry = m + b.carry() * b.last;
                b.learn(value - m, CLIP * sd.max(floor), with_carry, value);
            }
        }
        self.learn(slot, value);
        judgement
    }

    fn learn(&mut self, slot: i64, value: f64) {
        self.seen += 1;
        for m in &mut self.seasonal {
            m.observe_robust(slot, value, self.floor);
        }
        if self.seen == 1 {
            self.level = value;
            return;
        }
        let error = value - self.level;
        let bound = CLIP * self.spread.sqrt().max(self.floor);
        self.level += LEVEL_WEIGHT * error.clamp(-bound, bound);
        self.spread += LEVEL_WEIGHT * (error * error - self.spread);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A day of 24 steps: busy from 9 to 17.
    fn day(t: i64) -> f64 {
        let busy = if (9..17).contains(&(t % 24)) {
            20.0
        } else {
            2.0
        };
        busy + crate::noise(t as u64)
    }

    fn run(d: &mut Detector, from: i64, to: i64, f: impl Fn(i64) -> Option<f64>) -> Vec<Judgement> {
        (from..to).filter_map(|t| d.step(t, f(t))).collect()
    }

    #[test]
    fn warmup_scores_zero_and_usual_days_score_low() {
        let mut d = Detector::new(&[24], 0.5);
        let first = run(&mut d, 0, 48, |t| Some(day(t)));
        assert!(first
            .iter()
            .all(|j| j.warmup && j.score == 0.0 && j.label(0.5) == "warmup"));
        let usual = run(&mut d, 48, 24 * 30, |t| Some(day(t)));
        let high = usual.iter().filter(|j| j.score >= 0.999).count();
        assert!(high <= 3, "{high} of {} usual steps at 0.999", usual.len());
        assert!(usual
            .iter()
            .all(|j| !j.warmup && (0.0..=1.0).contains(&j.score)));
    }

    #[test]
    fn kinds_are_told_apart() {
        let base = |d: &mut Detector| run(d, 0, 24 * 60, |t| Some(day(t)));
        // A spike at a quiet hour.
        let mut d = Detector::new(&[24], 0.5);
        base(&mut d);
        let j = d.step(24 * 60 + 3, Some(15.0)).unwrap();
        assert_eq!(
            (j.kind, j.score > 0.999),
            (Some(Kind::Spike), true),
            "{j:?}"
        );
        // A drop at a busy hour.
        let mut d = Detector::new(&[24], 0.5);
        base(&mut d);
        run(&mut d, 24 * 60, 24 * 60 + 11, |t| Some(day(t)));
        let j = d.step(24 * 60 + 11, Some(3.0)).unwrap();
        assert_eq!((j.kind, j.score > 0.999), (Some(Kind::Drop), true), "{j:?}");
        // A lasting shift of 2 spreads: not one step stands out, the run does.
        let mut d = Detector::new(&[24], 0.5);
        base(&mut d);
        let shifted = run(&mut d, 24 * 60, 24 * 61, |t| Some(day(t) + 1.2));
        let found = shifted
            .iter()
            .position(|j| j.score > 0.999)
            .unwrap_or_else(|| panic!("{shifted:#?}"));
        assert_eq!(
            shifted[found].kind,
            Some(Kind::LevelShift),
            "{:?}",
            shifted[found]
        );
        assert!(found < 12, "after {found} steps");
        // Stuck at 20 through the evening and night, when it normally moves.
        let mut d = Detector::new(&[24], 0.5);
        base(&mut d);
        run(&mut d, 24 * 60, 24 * 60 + 12, |t| Some(day(t)));
        let stuck = run(&mut d, 24 * 60 + 12, 24 * 60 + 20, |_| Some(20.0));
        let last = stuck.last().unwrap();
        assert!(
            stuck
                .iter()
                .any(|j| j.kind == Some(Kind::Stuck) && j.score > 0.999),
            "{stuck:?}"
        );
        assert!(last.score > 0.999, "{last:?}");
        // Silent: steps missing where none ever was.
        let mut d = Detector::new(&[24], 0.5);
        base(&mut d);
        let j = d.step(24 * 60 + 3, Some(day(24 * 60 + 3))).unwrap();
        assert_eq!(j.kind.map(|k| k != Kind::Silent), Some(true));
        let gap = run(&mut d, 24 * 60 + 4, 24 * 60 + 7, |_| None);
        assert!(gap.iter().all(|j| j.kind == Some(Kind::Silent)));
        assert!(gap[2].score > 0.999, "{gap:?}");
    }

    #[test]
    fn a_quiet_night_repeating_zero_is_not_stuck() {
        let mut d = Detector::new(&[24], 0.5);
        let night = |t: i64| {
            Some(if (9..17).contains(&(t % 24)) {
                10.0 + crate::noise(t as u64)
            } else {
                0.0
            })
        };
        let judged = run(&mut d, 0, 24 * 30, night);
        let stuck = judged[24 * 7..]
            .iter()
            .filter(|j| j.kind == Some(Kind::Stuck) && j.score >= 0.999)
            .count();
        assert_eq!(stuck, 0);
    }

    #[test]
    fn scores_mean_the_same_on_series_of_any_scale() {
        let rate = |scale: f64| {
            let mut d = Detector::new(&[], 1e-9);
            let judged = run(&mut d, 0, 20_000, |t| {
                Some(scale * (100.0 + crate::noise(t as u64)))
            });
            judged.iter().filter(|j| j.score >= 0.99).count() as f64 / judged.len() as f64
        };
        let (small, large) = (rate(0.01), rate(1_000.0));
        assert!(small < 0.03 && large < 0.03, "{small} {large}");
        assert!((small - large).abs() < 0.005, "{small} {large}");
    }

    #[test]
    fn a_weekly_model_learnt_before_judges_at_once_after_an_upgrade() {
        let mut old = Forecaster::new(168);
        for t in 0..168 * 3 {
            old.observe_robust(t, day(t), 0.5);
        }
        let mut d = Detector::resume(&[24, 168], 0.5, old);
        let t = 168 * 3 + 10;
        let j = d.step_sparse(t, day(t)).unwrap();
        assert!(!j.warmup, "{j:?}");
        assert!((j.expected - day(t)).abs() < 3.0, "{j:?}");
        // The calibration starts anew: nothing is unusual yet, except the absurd.
        let j = d.step_sparse(t + 1, day(t + 1)).unwrap();
        assert!(j.score < 0.999, "{j:?}");
    }

    #[test]
    fn a_detector_survives_serialization() {
        let mut d = Detector::new(&[24, 168], 0.5);
        run(&mut d, 0, 500, |t| Some(day(t)));
        let back: Detector = serde_json::from_str(&serde_json::to_string(&d).unwrap()).unwrap();
        assert_eq!(back, d);
    }
}
