//! roomflow's models of one series, shared by the pipeline and the CLI:
//!
//! - [`forecast`]: forecasts chosen per series by rolling-origin validation among
//!   seasonal naive, AutoETS and MSTL (Grafana's `augurs`), with conformal 95% intervals;
//! - [`seasons`]: the seasons a series can have, from its step and length;
//! - [`online`]: the incremental seasonal exponential smoothing the pipeline used before
//!   (kept for the states persisted by earlier versions, and for comparison).

pub mod detect;
pub mod forecast;
pub mod history;
pub mod online;
pub mod score;
pub mod seasons;

/// Test noise: splitmix64 of `t`, uniform in [-1, 1).
#[cfg(test)]
pub(crate) fn noise(t: u64) -> f64 {
    let mut z = t.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    ((z ^ (z >> 31)) % 2_000) as f64 / 1_000.0 - 1.0
}
