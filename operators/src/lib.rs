//! roomflow's dataflow operators: decoding through the registry, event-time windows of
//! rooms and offices with lateness and revisions, and live occupancy.

pub mod aggregate;
pub mod analyze;
pub mod bookings;
pub mod catalog;
pub mod decode;
pub mod live;
pub mod ops;
pub mod pause;
pub mod records;

pub use aggregate::{AggregateConfig, Aggregator, EventClock, StateSize};
pub use analyze::{AnalyzeConfig, Analyzer, BreachThresholds, Restored};
pub use bookings::{BookingUsage, BookingsConfig, RestoredMinutes, RestoredQuarter};
pub use decode::{Decoder, SchemaSource, Step};
pub use ops::{compute, Aggregate, AggregateView, Analyze, Book, Computation, DecodeRecords};
pub use pause::{Paused, Why};
pub use records::*;
/// The models of one series (forecasts, anomalies), shared with the CLI.
pub use rf_models as models;
pub use rf_schemas::rows::*;
pub use rf_schemas::Granularity;

/// Hash maps and sets of the hot path: a fast hash, seeded per process.
pub(crate) type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
pub(crate) type HashSet<K> = std::collections::HashSet<K, foldhash::fast::RandomState>;
