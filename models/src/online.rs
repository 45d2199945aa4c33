//! Forecasts of a seasonal series: additive exponential smoothing with a level and one
//! season (ETS(A,N,A), Holt-Winters without trend), updated one observation at a time.
//! Hourly occupancy uses a season of a week (168 hours of the week, in the office's
//! time zone); daily peaks a season of 7 days.
//!
//! Prediction intervals follow the model's own variance, `σ²·(1 + (h-1)·α² +
//! k·γ·(2α + γ))` for `h` steps ahead with `k` whole seasons before it (Hyndman et al.,
//! *Forecasting with Exponential Smoothing*, class 1), where `σ²` is the smoothed
//! square of the one-step errors of the slot forecast: a quiet night is forecast
//! narrowly, a busy Tuesday morning widely. The state is a few numbers per slot of the season and
//! is serialized as it is, so a restart resumes rather than relearns.

use serde::{Deserialize, Serialize};

/// The smoothing of the level: how fast a lasting change of the whole week is followed.
const ALPHA: f64 = 0.05;
/// The smoothing of each slot of the season: about the last `1/γ` weeks count.
const GAMMA: f64 = 0.2;
/// The smoothing of a slot's squared one-step error (one error a season).
const ERROR_WEIGHT: f64 = 0.2;
/// The interval: 95% under normal errors.
const Z: f64 = 1.96;
/// Errors of its own after which a slot's variance stands alone; before, it is pulled
/// towards the pooled variance as if that were [`PRIOR`] errors (one squared error says
/// little about a slot's spread).
const SETTLED: u8 = 5;
const PRIOR: f64 = 2.0;

/// The state of one series' forecast.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Forecaster {
    period: usize,
    /// The last slot observed (slot `s` is season position `s mod period`).
    last: Option<i64>,
    level: f64,
    season: Vec<f64>,
    /// Squared one-step error of each slot, smoothed; `None` until its first error.
    variance: Vec<Option<f64>>,
    /// One-step errors seen per slot, up to [`SETTLED`].
    #[serde(default)]
    errors: Vec<u8>,
    /// The spread of the first season: the error of a slot before any was seen.
    spread: f64,
    /// Observations while the first season fills (the model starts after it).
    warmup: Vec<(i64, f64)>,
}

/// One forecast value and its 95% interval.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Forecast {
    /// The slot forecast.
    pub slot: i64,
    /// Expected value.
    pub mean: f64,
    /// Lower bound, at least 0.
    pub low: f64,
    /// Upper bound.
    pub high: f64,
    /// The standard deviation of the forecast error.
    pub sd: f64,
}

/// How far outside its interval a value is robustly learnt from: an outlier counts as if
/// it were this many standard deviations off, so that one anomaly does not teach the
/// baseline (a Huber-type update).
const CLIP: f64 = 3.0;

impl Forecaster {
    /// A forecaster of a season of `period` slots (at least 2).
    pub fn new(period: usize) -> Self {
        Self {
            period: period.max(2),
            last: None,
            level: 0.0,
            season: Vec::new(),
            variance: Vec::new(),
            errors: Vec::new(),
            spread: 0.0,
            warmup: Vec::new(),
        }
    }

    /// Whether a whole season was seen, so forecasts follow the season.
    pub fn ready(&self) -> bool {
        !self.season.is_empty()
    }

    fn position(&self, slot: i64) -> usize {
        slot.rem_euclid(self.period as i64) as usize
    }

    /// The squared one-step error expected at position `p`: the slot's own, shrunk
    /// towards the mean of every slot's while it has few errors; the first season's
    /// spread before any error.
    fn slot_variance(&self, p: usize, pooled: Option<f64>) -> f64 {
        let n = f64::from(self.errors.get(p).copied().unwrap_or(SETTLED));
        match (self.variance[p], pooled) {
            (Some(own), Some(pooled)) if n < f64::from(SETTLED) => {
                (n * own + PRIOR * pooled) / (n + PRIOR)
            }
            (Some(own), _) => own,
            (None, Some(pooled)) => pooled,
            (None, None) => self.spread,
        }
    }

    /// The last slot observed.
    pub fn last(&self) -> Option<i64> {
        self.last
    }

    /// Takes the value of `slot` like [`Self::observe`], but once a season was seen, a
    /// value beyond [`CLIP`] standard deviations of its forecast (at least `floor`)
    /// counts as if it were at that bound: the baseline follows lasting changes, not
    /// single outliers. (Clipped errors still widen a spread that was too narrow.)
    pub fn observe_robust(&mut self, slot: i64, value: f64, floor: f64) {
        let value = match self.at(slot).filter(|_| self.ready()) {
            Some(f) => {
                let bound = CLIP * f.sd.max(floor);
                value.clamp(f.mean - bound, f.mean + bound)
            }
            None => value,
        };
        self.observe(slot, value);
    }

    /// Takes the value of `slot`. Slots must come in order; a slot not after the last
    /// is ignored, and slots skipped are left to the model's own forecast.
    pub fn observe(&mut self, slot: i64, value: f64) {
        if self.last.is_some_and(|last| slot <= last) || !value.is_finite() {
            return;
        }
        self.last = Some(slot);
        if !self.ready() {
            self.warmup.push((slot, value));
            let first = self.warmup[0].0;
            if slot - first + 1 >= self.period as i64 {
                self.start();
            }
            return;
        }
        let p = self.position(slot);
        let error = value - (self.level + self.season[p]);
        self.level += ALPHA * error;
        self.season[p] += GAMMA * error;
        let squared = error * error;
        let v = self.variance[p].get_or_insert(squared);
        *v += ERROR_WEIGHT * (squared - *v);
        if let Some(n) = self.errors.get_mut(p) {
            *n = (*n + 1).min(SETTLED);
        }
    }

    /// The first season seen sets the level (its mean) and each slot's difference from
    /// it; slots not seen take the level.
    fn start(&mut self) {
        let warmup = std::mem::take(&mut self.warmup);
        let mean = warmup.iter().map(|(_, v)| v).sum::<f64>() / warmup.len() as f64;
        self.level = mean;
        self.season = vec![0.0; self.period];
        for &(slot, value) in &warmup {
            let p = self.position(slot);
            self.season[p] = value - mean;
        }
        self.spread =
            warmup.iter().map(|(_, v)| (v - mean).powi(2)).sum::<f64>() / warmup.len() as f64;
        self.variance = vec![None; self.period];
        self.errors = vec![0; self.period];
    }

    /// The next `horizon` slots after the last observed. Before a whole season was seen,
    /// the mean so far with the spread so far.
    pub fn forecast(&self, horizon: usize) -> Vec<Forecast> {
        let Some(last) = self.last else {
            return Vec::new();
        };
        let at = self.predictor();
        (1..=horizon as i64).filter_map(|h| at(last + h)).collect()
    }

    /// The forecast of one slot after the last observed; `None` before any observation
    /// or for a slot not after the last.
    pub fn at(&self, slot: i64) -> Option<Forecast> {
        self.at_with(slot, &self.shared())
    }

    /// [`Self::at`] for many slots: what their forecasts share is computed once.
    pub fn predictor(&self) -> impl Fn(i64) -> Option<Forecast> + '_ {
        let shared = self.shared();
        move |slot| self.at_with(slot, &shared)
    }

    /// The mean of the slots' variances (what a slot with few errors is pulled
    /// towards), or during the warm-up the mean and spread seen so far.
    fn shared(&self) -> Shared {
        if self.ready() {
            let known = self.variance.iter().flatten();
            let count = known.clone().count();
            let pooled = (count > 0).then(|| known.sum::<f64>() / count as f64);
            return Shared::Pooled(pooled);
        }
        let n = self.warmup.len() as f64;
        let mean = self.warmup.iter().map(|(_, v)| v).sum::<f64>() / n;
        let spread = self
            .warmup
            .iter()
            .map(|(_, v)| (v - mean).powi(2))
            .sum::<f64>()
            / n;
        Shared::Warmup(mean, spread)
    }

    fn at_with(&self, slot: i64, shared: &Shared) -> Option<Forecast> {
        let last = self.last?;
        let h = slot - last;
        if h < 1 {
            return None;
        }
        let (mean, variance) = match *shared {
            Shared::Pooled(pooled) => {
                let k = ((h - 1) / self.period as i64) as f64;
                let factor =
                    1.0 + (h - 1) as f64 * ALPHA * ALPHA + k * GAMMA * (2.0 * ALPHA + GAMMA);
                let p = self.position(slot);
                let variance = self.slot_variance(p, pooled);
                (self.level + self.season[p], variance * factor)
            }
            Shared::Warmup(mean, spread) => (mean, spread),
        };
        let sd = variance.sqrt();
        let mean = mean.max(0.0);
        Some(Forecast {
            slot,
            mean,
            low: (mean - Z * sd).max(0.0),
            high: mean + Z * sd,
            sd,
        })
    }
}

/// What the forecasts of one state share.
enum Shared {
    /// After the warm-up: the mean of the slots' variances, once any is known.
    Pooled(Option<f64>),
    /// During the warm-up: the mean and spread so far.
    Warmup(f64, f64),
}

/// Mean absolute scaled error of `forecast` against `actual`, scaled by the in-sample
/// mean absolute error of the seasonal-naive forecast over `history` (`period` slots
/// back): below 1 beats the seasonal-naive forecast on the history.
pub fn mase(actual: &[f64], forecast: &[f64], history: &[f64], period: usize) -> Option<f64> {
    let scale = history
        .iter()
        .zip(history.iter().skip(period))
        .map(|(a, b)| (b - a).abs())
        .collect::<Vec<_>>();
    if scale.is_empty() || actual.is_empty() {
        return None;
    }
    let scale = scale.iter().sum::<f64>() / scale.len() as f64;
    let error = actual
        .iter()
        .zip(forecast)
        .map(|(a, f)| (a - f).abs())
        .sum::<f64>()
        / actual.len().min(forecast.len()) as f64;
    (scale > 0.0).then(|| error / scale)
}

#[cfg(test)]
mod tests {
    use super::{mase, Forecaster};

    /// A week of 168 hours: busy weekday office hours, and noise of up to ±5.
    fn hour(t: i64) -> f64 {
        let (day, h) = ((t / 24) % 7, t % 24);
        let busy = if day < 5 && (8..18).contains(&h) {
            40.0
        } else {
            6.0
        };
        // splitmix64
        let mut z = (t as u64).wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        busy + ((z ^ (z >> 31)) % 1_000) as f64 / 100.0 - 5.0
    }

    #[test]
    fn a_weekly_pattern_is_learnt_and_beats_last_week() {
        let mut f = Forecaster::new(168);
        for t in 0..168 * 6 {
            f.observe(t, hour(t));
        }
        let ahead = f.forecast(168);
        assert_eq!(ahead.len(), 168);
        assert_eq!(ahead[0].slot, 168 * 6);
        let history: Vec<f64> = (0..168 * 6).map(hour).collect();
        let actual: Vec<f64> = (168 * 6..168 * 7).map(hour).collect();
        let mean: Vec<f64> = ahead.iter().map(|p| p.mean).collect();
        let model = mase(&actual, &mean, &history, 168).unwrap();
        let naive = mase(&actual, &history[history.len() - 168..], &history, 168).unwrap();
        assert!(model < naive, "model {model}, seasonal naive {naive}");
        // Nearly every interval holds its value, and no bound is negative.
        let held = ahead
            .iter()
            .zip(&actual)
            .filter(|(p, a)| p.low <= **a && **a <= p.high)
            .count();
        assert!(held >= 150, "{held} of 168 within the 95% interval");
        assert!(ahead.iter().all(|p| p.low >= 0.0));
    }

    #[test]
    fn intervals_widen_with_the_horizon_and_the_state_survives_a_restart() {
        let mut f = Forecaster::new(24);
        for t in 0..24 * 10 {
            f.observe(t, 10.0 + (t % 24) as f64 + (t % 5) as f64);
        }
        let ahead = f.forecast(72);
        let width = |i: usize| ahead[i].high - ahead[i].low;
        // The same slot one and two seasons further ahead.
        assert!(width(5) < width(29) && width(29) < width(53));
        let json = serde_json::to_string(&f).unwrap();
        let restored: Forecaster = serde_json::from_str(&json).unwrap();
        for (a, b) in restored.forecast(72).iter().zip(&ahead) {
            assert_eq!(a.slot, b.slot);
            assert!((a.mean - b.mean).abs() < 1e-9 && (a.high - b.high).abs() < 1e-9);
        }
    }

    #[test]
    fn before_a_season_the_mean_so_far_and_old_slots_are_ignored() {
        let mut f = Forecaster::new(168);
        assert!(f.forecast(3).is_empty());
        f.observe(5, 10.0);
        f.observe(6, 20.0);
        f.observe(6, 1_000.0);
        f.observe(4, 1_000.0);
        let ahead = f.forecast(2);
        assert!(!f.ready());
        assert_eq!(ahead[0].slot, 7);
        assert_eq!(ahead[0].mean, 15.0);
        assert!(ahead[0].low < 15.0 && ahead[0].high > 15.0);
    }
}
