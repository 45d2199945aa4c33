//! Forecasts chosen per series by rolling-origin validation.
//!
//! The candidates are the naive forecast (the last value), the seasonal-naive forecast
//! of each season, AutoETS on the series, and MSTL with AutoETS on the seasonally
//! adjusted series (Grafana's `augurs`), once with the shortest season and once with
//! all of them: hourly office data has a day and a week. Each candidate forecasts the
//! last few horizons from everything before them; the candidate with the least mean
//! absolute error is chosen, or the average of the best two when that is better still.
//!
//! The 95% interval is conformal: at each step ahead, a high percentile of the chosen
//! forecast's own absolute validation errors near that step. It is as wide as the
//! series made the model's errors, not what a model's assumptions say.

use augurs::ets::AutoETS;
use augurs::mstl::MSTLModel;
use augurs::prelude::*;
use serde::{Deserialize, Serialize};

use crate::online::Forecaster;

/// A way to forecast a series.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Method {
    /// The last value.
    Naive,
    /// The value one season (of this many steps) before.
    SeasonalNaive(usize),
    /// AutoETS (error, trend and damping chosen by likelihood), no season.
    Ets,
    /// MSTL over the first this many seasons, AutoETS on what remains.
    Mstl(usize),
    /// roomflow's online seasonal exponential smoothing ([`Forecaster`]) over the
    /// longest season, learning robustly (an outlier counts as at most 3 spreads).
    Smoothing,
}

impl Method {
    /// A short name, for reports.
    pub fn name(&self) -> String {
        match self {
            Method::Naive => "naive".into(),
            Method::SeasonalNaive(p) => format!("snaive{p}"),
            Method::Ets => "ets".into(),
            Method::Mstl(k) => format!("mstl{k}"),
            Method::Smoothing => "smoothing".into(),
        }
    }

    /// The fewest values the method forecasts from.
    fn needs(&self, periods: &[usize]) -> usize {
        match *self {
            Method::Naive => 1,
            Method::SeasonalNaive(p) => p,
            Method::Ets => 8,
            Method::Mstl(k) => 2 * periods[k - 1] + 1,
            Method::Smoothing => 2 * periods.last().copied().unwrap_or(1),
        }
    }

    /// The next `h` values after `y`; `None` when the method cannot fit it.
    pub fn point(&self, y: &[f64], periods: &[usize], h: usize) -> Option<Vec<f64>> {
        if y.len() < self.needs(periods) {
            return None;
        }
        let points = match *self {
            Method::Naive => vec![*y.last()?; h],
            Method::SeasonalNaive(p) => (0..h).map(|i| y[y.len() - p + i % p]).collect(),
            Method::Ets => {
                AutoETS::non_seasonal()
                    .fit(y)
                    .ok()?
                    .predict(h, None)
                    .ok()?
                    .point
            }
            Method::Mstl(k) => {
                let trend = AutoETS::non_seasonal().into_trend_model();
                MSTLModel::new(periods[..k].to_vec(), trend)
                    .fit(y)
                    .ok()?
                    .predict(h, None)
                    .ok()?
                    .point
            }
            Method::Smoothing => {
                let mut model = Forecaster::new(*periods.last()?);
                let floor = 0.01 * y.iter().map(|v| v.abs()).sum::<f64>() / y.len() as f64;
                for (slot, v) in y.iter().enumerate() {
                    model.observe_robust(slot as i64, *v, floor.max(1e-9));
                }
                model.forecast(h).iter().map(|f| f.mean).collect()
            }
        };
        (points.len() == h && points.iter().all(|v| v.is_finite())).then_some(points)
    }
}

/// Which candidates are compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Candidates {
    /// Every method: what `roomflow forecast` compares (tens of milliseconds a series).
    All,
    /// The methods without a fit to optimize (naive, seasonal naive, smoothing): well
    /// under a millisecond a series, what the pipeline compares for every room and
    /// office.
    Fast,
}

/// The candidates for a series with these seasons (shortest first).
pub fn candidates(periods: &[usize], which: Candidates) -> Vec<Method> {
    let mut methods = vec![Method::Naive];
    methods.extend(periods.iter().map(|&p| Method::SeasonalNaive(p)));
    if !periods.is_empty() {
        methods.push(Method::Smoothing);
    }
    if which == Candidates::All {
        methods.push(Method::Ets);
        methods.extend((1..=periods.len()).map(Method::Mstl));
    }
    methods
}

/// Origins validated: the last this many horizons.
pub const ORIGINS: usize = 5;
/// The interval's level.
pub const LEVEL: f64 = 0.95;
/// The quantile of the validation errors that makes a 95% interval. Higher than 95%:
/// the chosen method is the one whose validation errors were smallest, so they
/// understate its errors to come (measured on the public hourly set: 91.9% coverage at
/// 0.95, 94.4% at 0.97, 94.7% at 0.975).
const QUANTILE: f64 = 0.97;
/// The normal quantile of [`QUANTILE`], two-sided.
const Z: f64 = 2.17;

/// What validation chose for a series.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Choice {
    /// The forecast is the average of these (one or two).
    pub methods: Vec<Method>,
    /// The seasons the methods use.
    pub periods: Vec<usize>,
    /// Half the 95% interval's width at each step ahead validated.
    pub widths: Vec<f64>,
    /// The chosen forecast's mean absolute validation error, and the seasonal-naive
    /// forecast's (of the shortest season, or the naive one without a season).
    pub error: f64,
    pub baseline_error: f64,
}

/// One step of a forecast.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Point {
    pub mean: f64,
    pub low: f64,
    pub high: f64,
}

/// Chooses how to forecast `y` (dense, oldest first) `horizon` steps ahead, among the
/// candidates of its seasons, by their errors over the last [`ORIGINS`] horizons
/// (fewer, and shorter, when the series is short). `None` when `y` is too short to
/// validate anything (fewer than two values).
pub fn choose(y: &[f64], periods: &[usize], horizon: usize) -> Option<Choice> {
    choose_among(y, periods, horizon, Candidates::All)
}

/// [`choose`] among the given candidates.
pub fn choose_among(
    y: &[f64],
    periods: &[usize],
    horizon: usize,
    which: Candidates,
) -> Option<Choice> {
    let horizon = horizon.max(1);
    // The least history an origin keeps: two of the shortest season (or 8 values).
    let keep = periods.first().map_or(8, |p| 2 * p).min(y.len() / 2).max(1);
    let room = y.len().checked_sub(keep).filter(|&r| r > 0)?;
    let h = horizon.min(room);
    let origins: Vec<usize> = (1..=ORIGINS)
        .map_while(|k| y.len().checked_sub(k * h).filter(|&o| o >= keep))
        .collect();
    let methods = candidates(periods, which);
    // Each candidate's forecasts at every origin; a candidate that fails at one is out.
    let mut forecasts: Vec<(Method, Vec<Vec<f64>>)> = Vec::new();
    'methods: for &m in &methods {
        let mut at = Vec::with_capacity(origins.len());
        for &o in &origins {
            match m.point(&y[..o], periods, h) {
                Some(f) => at.push(f),
                None => continue 'methods,
            }
        }
        forecasts.push((m, at));
    }
    let error = |f: &[Vec<f64>]| -> f64 {
        let total: f64 = origins
            .iter()
            .zip(f)
            .map(|(&o, f)| mae(&y[o..o + h], f))
            .sum();
        total / origins.len() as f64
    };
    let mut scored: Vec<(f64, usize)> = forecasts
        .iter()
        .enumerate()
        .map(|(i, (_, f))| (error(f), i))
        .collect();
    scored.sort_by(|a, b| a.0.total_cmp(&b.0));
    let &(best_error, best) = scored.first()?;
    let baseline = periods
        .first()
        .map_or(Method::Naive, |&p| Method::SeasonalNaive(p));
    let baseline_error = forecasts
        .iter()
        .find(|(m, _)| *m == baseline)
        .map_or(f64::NAN, |(_, f)| error(f));
    let mut chosen = (
        vec![forecasts[best].0],
        forecasts[best].1.clone(),
        best_error,
    );
    if let Some(&(_, second)) = scored.get(1) {
        let mean: Vec<Vec<f64>> = forecasts[best]
            .1
            .iter()
            .zip(&forecasts[second].1)
            .map(|(a, b)| a.iter().zip(b).map(|(a, b)| (a + b) / 2.0).collect())
            .collect();
        let e = error(&mean);
        if e < best_error {
            chosen = (vec![forecasts[best].0, forecasts[second].0], mean, e);
        }
    }
    let (methods, validated, error) = chosen;
    let errors: Vec<Vec<f64>> = origins
        .iter()
        .zip(&validated)
        .map(|(&o, f)| {
            y[o..o + h]
                .iter()
                .zip(f)
                .map(|(a, f)| (a - f).abs())
                .collect()
        })
        .collect();
    Some(Choice {
        methods,
        periods: periods.to_vec(),
        widths: widths(&errors, h),
        error,
        baseline_error,
    })
}

/// The conformal half widths: at step `i`, the [`QUANTILE`] of the absolute errors at
/// steps within a quarter of the horizon of `i`, at every origin (with the
/// finite-sample correction). Too few errors for that quantile (fewer than 40) are not
/// trusted to show the tail: the width is then at least [`Z`] root-mean-square errors.
fn widths(errors: &[Vec<f64>], h: usize) -> Vec<f64> {
    let band = (h / 4).max(1);
    (0..h)
        .map(|i| {
            let (from, to) = (i.saturating_sub(band), (i + band + 1).min(h));
            let mut near: Vec<f64> = errors.iter().flat_map(|e| &e[from..to]).copied().collect();
            near.sort_by(f64::total_cmp);
            let n = near.len();
            let rank = ((n + 1) as f64 * QUANTILE).ceil() as usize;
            let empirical = near[rank.clamp(1, n) - 1];
            if rank <= n {
                return empirical;
            }
            let rms = (near.iter().map(|e| e * e).sum::<f64>() / n as f64).sqrt();
            empirical.max(Z * rms)
        })
        .collect()
}

impl Choice {
    /// The next `horizon` steps after `y` with their 95% intervals. Steps beyond those
    /// validated widen with the square root of the horizon. Empty when no chosen method
    /// fits `y`.
    pub fn predict(&self, y: &[f64], horizon: usize) -> Vec<Point> {
        let fits: Option<Vec<Vec<f64>>> = self
            .methods
            .iter()
            .map(|m| m.point(y, &self.periods, horizon))
            .collect();
        fits.map_or_else(Vec::new, |fits| self.combine(&fits))
    }

    /// The forecast from each chosen method's own points (in the order of
    /// [`Self::methods`], all as long): their mean, with the validated intervals.
    pub fn combine(&self, fits: &[Vec<f64>]) -> Vec<Point> {
        let horizon = fits.iter().map(Vec::len).min().unwrap_or(0);
        if fits.is_empty() {
            return Vec::new();
        }
        let validated = self.widths.len().max(1);
        (0..horizon)
            .map(|i| {
                let mean = fits.iter().map(|f| f[i]).sum::<f64>() / fits.len() as f64;
                let width = match self.widths.get(i) {
                    Some(&w) => w,
                    None => {
                        let last = self.widths.last().copied().unwrap_or(0.0);
                        last * ((i + 1) as f64 / validated as f64).sqrt()
                    }
                };
                Point {
                    mean,
                    low: mean - width,
                    high: mean + width,
                }
            })
            .collect()
    }

    /// A description such as `mstl2+snaive24`.
    pub fn describe(&self) -> String {
        let names: Vec<String> = self.methods.iter().map(Method::name).collect();
        names.join("+")
    }
}

/// Chooses and forecasts in one: the next `horizon` steps after `y`.
pub fn forecast(y: &[f64], periods: &[usize], horizon: usize) -> Option<(Choice, Vec<Point>)> {
    let choice = choose(y, periods, horizon)?;
    let points = choice.predict(y, horizon);
    (!points.is_empty()).then_some((choice, points))
}

fn mae(actual: &[f64], forecast: &[f64]) -> f64 {
    let n = actual.len().min(forecast.len()).max(1);
    actual
        .iter()
        .zip(forecast)
        .map(|(a, f)| (a - f).abs())
        .sum::<f64>()
        / n as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An office's hours: busy on weekdays from 8 to 18, quieter on Fridays, noise of
    /// ±3 people.
    fn office(t: usize) -> f64 {
        let (day, hour) = ((t / 24) % 7, t % 24);
        let busy = match day {
            0..=3 if (8..18).contains(&hour) => 40.0,
            4 if (8..18).contains(&hour) => 25.0,
            _ => 5.0,
        };
        busy + 3.0 * crate::noise(t as u64)
    }

    #[test]
    fn a_week_of_seasons_is_chosen_for_an_office_and_beats_last_day() {
        let y: Vec<f64> = (0..168 * 6).map(office).collect();
        let (train, test) = y.split_at(168 * 5);
        let (choice, points) = forecast(train, &[24, 168], 48).unwrap();
        assert!(
            choice.error < choice.baseline_error,
            "{} validated at {} against last day's {}",
            choice.describe(),
            choice.error,
            choice.baseline_error
        );
        let mean: Vec<f64> = points.iter().map(|p| p.mean).collect();
        let naive = Method::SeasonalNaive(24).point(train, &[24], 48).unwrap();
        assert!(mae(&test[..48], &mean) < mae(&test[..48], &naive));
        let held = points
            .iter()
            .zip(test)
            .filter(|(p, a)| p.low <= **a && **a <= p.high)
            .count();
        assert!(held >= 42, "{held} of 48 in the interval");
    }

    #[test]
    fn a_random_walk_is_forecast_by_its_last_value() {
        let mut y = vec![100.0];
        for t in 1..600 {
            y.push(y[t - 1] + 5.0 * crate::noise(t as u64));
        }
        let choice = choose(&y, &[], 10).unwrap();
        assert!(
            choice.methods.contains(&Method::Naive) || choice.methods.contains(&Method::Ets),
            "{}",
            choice.describe()
        );
        let points = choice.predict(&y, 20);
        assert_eq!(points.len(), 20);
        // Beyond the validated ten steps, the interval keeps widening.
        assert!(points[19].high - points[19].low > points[9].high - points[9].low);
    }

    #[test]
    fn short_series_are_validated_on_what_they_have_and_tiny_ones_not_at_all() {
        let y: Vec<f64> = (0..60).map(office).collect();
        let (choice, points) = forecast(&y, &[24], 48).unwrap();
        assert_eq!(points.len(), 48);
        assert!(choice.widths.len() <= 30);
        assert!(choose(&[1.0], &[], 5).is_none());
    }

    #[test]
    fn choices_survive_serialization() {
        let y: Vec<f64> = (0..400).map(office).collect();
        let choice = choose(&y, &[24], 24).unwrap();
        let back: Choice = serde_json::from_str(&serde_json::to_string(&choice).unwrap()).unwrap();
        assert_eq!(back, choice);
    }
}
