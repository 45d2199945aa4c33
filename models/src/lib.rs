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
