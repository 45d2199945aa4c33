//! roomflow's sinks: ClickHouse (window rows, room metadata), Redis (live state), the
//! Kafka dead-letter topics and the alert outbox with its webhook delivery, one folder
//! each behind the [`Sink`] trait.
//!
//! A pipeline hands each completed epoch to [`Sinks::write`] as one [`Batch`]; the call
//! returns only once every sink has acknowledged it, retrying with backoff meanwhile, so
//! the source may commit the epoch's offsets right after.

pub mod clickhouse;
pub mod config;
pub mod dlq;
pub mod endpoint;
pub mod redis;
pub mod webhook;

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rf_schemas::rows::{
    Anomaly, BookingUsageRow, DeadLetter, FinalReadings, ForecastSeries, LiveOffice, LiveRoom,
    ModelState, OfficeRow, Output, Restate, RoomDay, RoomRow,
};
use rf_schemas::{RoomVersion, TenantId};

pub use config::Secret;

/// What one epoch asks the sinks to write.
#[derive(Default, Debug)]
pub struct Batch {
    /// Room window revisions.
    pub rooms: Vec<RoomRow>,
    /// Office window revisions.
    pub offices: Vec<OfficeRow>,
    /// Final day windows of rooms, with their local dates.
    pub room_days: Vec<RoomDay>,
    /// Counted readings of 15m windows that became final.
    pub readings: Vec<FinalReadings>,
    /// Latest room states.
    pub live_rooms: Vec<LiveRoom>,
    /// Latest office states.
    pub live_offices: Vec<LiveOffice>,
    /// Rejected inputs.
    pub dead_letters: Vec<DeadLetter>,
    /// Room versions to mirror.
    pub room_versions: Vec<(TenantId, Arc<RoomVersion>)>,
    /// Withdrawn room versions (room id, effective_from) to remove from the mirror.
    pub withdrawn_rooms: Vec<(TenantId, String, i64)>,
    /// Final rows to rewrite after a room's capacity changed in the past.
    pub restates: Vec<Restate>,
    /// Rejected room metadata: logged and counted by the pipeline, written nowhere.
    pub rejected_rooms: Vec<DeadLetter>,
    /// Anomalies found or revised.
    pub anomalies: Vec<Anomaly>,
    /// Forecasts issued.
    pub forecasts: Vec<ForecastSeries>,
    /// Model states to persist.
    pub models: Vec<ModelState>,
    /// Booked-versus-used rows.
    pub booking_usage: Vec<BookingUsageRow>,
    /// Rejected bookings: logged and counted by the pipeline, written nowhere.
    pub rejected_bookings: Vec<DeadLetter>,
}

impl Batch {
    /// Sorts one output into the batch; checkpoints are not for sinks and come back.
    pub fn push(&mut self, output: Output) -> Option<rf_schemas::rows::Checkpoint> {
        match output {
            Output::Room(r) => self.rooms.push(r),
            Output::Office(o) => self.offices.push(o),
            Output::RoomDay(d) => self.room_days.push(d),
            Output::Readings(r) => self.readings.push(r),
            Output::LiveRoom(r) => self.live_rooms.push(r),
            Output::LiveOffice(o) => self.live_offices.push(o),
            Output::DeadLetter(d) => self.dead_letters.push(d),
            Output::RoomVersion(t, r) => self.room_versions.push((t, r)),
            Output::RoomWithdrawn(t, room, from) => self.withdrawn_rooms.push((t, room, from)),
            Output::Restate(r) => self.restates.push(r),
            Output::RoomRejected(d) => self.rejected_rooms.push(d),
            Output::Anomaly(a) => self.anomalies.push(a),
            Output::Forecast(f) => self.forecasts.push(f),
            Output::Model(m) => self.models.push(m),
            Output::BookingUsage(b) => self.booking_usage.push(b),
            Output::BookingRejected(d) => self.rejected_bookings.push(d),
            // Consumed by the bookings operator; a run without it (a backfill) drops them.
            Output::Booking(_) => {}
            Output::Checkpoint(c) => return Some(c),
        }
        None
    }

    /// Whether there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.rooms.is_empty()
            && self.offices.is_empty()
            && self.room_days.is_empty()
            && self.readings.is_empty()
            && self.live_rooms.is_empty()
            && self.live_offices.is_empty()
            && self.dead_letters.is_empty()
            && self.room_versions.is_empty()
            && self.withdrawn_rooms.is_empty()
            && self.restates.is_empty()
            && self.anomalies.is_empty()
            && self.forecasts.is_empty()
            && self.models.is_empty()
            && self.booking_usage.is_empty()
    }
}

/// A failed write, and whether trying again can help.
#[derive(Debug, thiserror::Error)]
#[error("{sink} sink: {message}")]
pub struct SinkError {
    /// Which sink failed.
    pub sink: &'static str,
    /// What went wrong.
    pub message: String,
    /// Whether the same write may succeed later (an outage, a timeout).
    pub retryable: bool,
}

impl SinkError {
    /// A failure of `sink` that may pass.
    pub fn transient(sink: &'static str, error: impl std::fmt::Display) -> Self {
        Self {
            sink,
            message: error.to_string(),
            retryable: true,
        }
    }
}

/// A destination for batches.
pub trait Sink {
    /// The sink's name in logs and metrics.
    fn name(&self) -> &'static str;

    /// Writes its part of `batch`; returns once the destination acknowledged it.
    /// Writes are idempotent: the same batch twice leaves the same result.
    fn write<'a>(
        &'a mut self,
        batch: &'a Batch,
    ) -> impl Future<Output = Result<(), SinkError>> + 'a;
}

/// Calls `report` on each failed attempt; the default logs it.
pub type RetryReport = Arc<dyn Fn(&SinkError, u32) + Send + Sync>;

/// Every sink of a pipeline: dead letters, and each served region's ClickHouse and
/// Redis. Cheap to clone: clones share their clients, and each tenant's writes go through
/// a clone of their own, so that one tenant's retries never wait in another's way.
#[derive(Clone)]
pub struct Sinks {
    /// The dead-letter producer (every served region shares the deployment's broker).
    pub dlq: dlq::DeadLetterSink,
    /// The alert outbox, on the deployment's broker too.
    pub outbox: webhook::OutboxSink,
    /// Per served region, in the pipeline's region order: its stores.
    pub regions: Vec<RegionSinks>,
    /// Called on every failed attempt, with the attempt number.
    pub on_retry: RetryReport,
    /// Set when the process is stopping: a failing sink stops retrying, and the epoch is
    /// left uncommitted (a restart replays it).
    pub shutdown: Arc<AtomicBool>,
}

/// The longest wait between two attempts of a failing sink.
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// How long a write may still take once the process is stopping.
const STOP_GRACE: Duration = Duration::from_secs(5);

impl Sinks {
    /// Writes `batch` (outputs of region `region`'s tenants) to the region's stores, and
    /// its dead letters and alerts to the broker, all at once (the delay is the slowest
    /// sink's, not their sum). Each failing sink is retried with exponential backoff until
    /// it succeeds or fails for good; a sink that succeeded is not written again. The
    /// batch is acknowledged only when every sink is.
    pub async fn write(&mut self, region: usize, batch: &Batch) -> Result<(), SinkError> {
        let Self {
            dlq,
            outbox,
            regions,
            on_retry,
            shutdown,
        } = self;
        let (on_retry, shutdown) = (&*on_retry, &**shutdown);
        let RegionSinks { clickhouse, redis } = &mut regions[region];
        let dead_letters = async {
            if batch.dead_letters.is_empty() {
                return Ok(());
            }
            retry(dlq, batch, on_retry, shutdown).await
        };
        let alerts = async {
            if batch.anomalies.is_empty() {
                return Ok(());
            }
            retry(outbox, batch, on_retry, shutdown).await
        };
        tokio::try_join!(
            dead_letters,
            alerts,
            retry(clickhouse, batch, on_retry, shutdown),
            retry(redis, batch, on_retry, shutdown),
        )?;
        // Only now that ClickHouse has the rows: responses cached before become unreachable.
        let mut generations = redis::Generations(redis);
        retry(&mut generations, batch, on_retry, shutdown).await
    }
}

/// One region's stores.
#[derive(Clone)]
pub struct RegionSinks {
    /// Window rows and room metadata.
    pub clickhouse: clickhouse::ClickHouseSink,
    /// Live state.
    pub redis: redis::RedisSink,
}

/// Produces `records` and waits for the broker to acknowledge each: the Kafka sinks'
/// one way of writing.
async fn produce_all<'a>(
    producer: &rdkafka::producer::FutureProducer,
    records: impl IntoIterator<Item = rdkafka::producer::FutureRecord<'a, [u8], [u8]>>,
    timeout: Duration,
    sink: &'static str,
) -> Result<(), SinkError> {
    use rdkafka::error::{KafkaError, RDKafkaErrorCode};
    let mut deliveries = Vec::new();
    for mut record in records {
        loop {
            match producer.send_result(record) {
                Ok(delivery) => break deliveries.push(delivery),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Err((e, _)) => return Err(SinkError::transient(sink, e)),
            }
        }
    }
    for delivery in deliveries {
        match tokio::time::timeout(timeout, delivery).await {
            Ok(Ok(Ok(_))) => {}
            Ok(Ok(Err((e, _)))) => return Err(SinkError::transient(sink, e)),
            Ok(Err(_)) => return Err(SinkError::transient(sink, "producer closed")),
            Err(_) => return Err(SinkError::transient(sink, "delivery timed out")),
        }
    }
    Ok(())
}

#[tracing::instrument(name = "sink", skip_all, fields(sink = sink.name()))]
async fn retry<S: Sink>(
    sink: &mut S,
    batch: &Batch,
    on_retry: &RetryReport,
    shutdown: &AtomicBool,
) -> Result<(), SinkError> {
    let mut backoff = Duration::from_millis(200);
    for attempt in 1.. {
        // A store that hangs does not hold a stopping process for its whole timeout: once
        // stopping, an attempt gets STOP_GRACE to finish (a healthy store answers well
        // within it: the last epochs are written), then it is dropped (the epoch stays
        // uncommitted; writes are idempotent).
        let stopping = async {
            while !shutdown.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            tokio::time::sleep(STOP_GRACE).await;
        };
        let result = tokio::select! {
            biased;
            result = sink.write(batch) => result,
            () = stopping => Err(SinkError::transient(sink.name(), "the process is stopping")),
        };
        match result {
            Ok(()) => return Ok(()),
            Err(e) if e.retryable && shutdown.load(Ordering::Relaxed) => {
                return Err(SinkError {
                    sink: e.sink,
                    message: format!(
                        "stopping while the sink fails ({}); the epoch stays uncommitted",
                        e.message
                    ),
                    retryable: false,
                })
            }
            Err(e) if e.retryable => {
                on_retry(&e, attempt);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
            Err(e) => return Err(e),
        }
    }
    unreachable!("the loop returns")
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Flaky {
        failures: u32,
    }

    impl Sink for Flaky {
        fn name(&self) -> &'static str {
            "flaky"
        }

        async fn write(&mut self, _: &Batch) -> Result<(), SinkError> {
            if self.failures == 0 {
                return Ok(());
            }
            self.failures -= 1;
            Err(SinkError::transient("flaky", "down"))
        }
    }

    #[tokio::test]
    async fn retries_with_growing_attempts_until_the_sink_recovers() {
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = seen.clone();
        let report: RetryReport = Arc::new(move |_, attempt| log.lock().unwrap().push(attempt));
        let stop = AtomicBool::new(false);
        let mut sink = Flaky { failures: 2 };
        retry(&mut sink, &Batch::default(), &report, &stop)
            .await
            .unwrap();
        assert_eq!(*seen.lock().unwrap(), vec![1, 2]);
    }

    /// A store that never answers.
    struct Hung;

    impl Sink for Hung {
        fn name(&self) -> &'static str {
            "hung"
        }

        async fn write(&mut self, _: &Batch) -> Result<(), SinkError> {
            std::future::pending().await
        }
    }

    #[tokio::test]
    async fn stopping_ends_an_attempt_that_hangs() {
        let report: RetryReport = Arc::new(|_, _| {});
        let stop = Arc::new(AtomicBool::new(false));
        let later = stop.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            later.store(true, Ordering::Relaxed);
        });
        let stopped = tokio::time::timeout(
            STOP_GRACE * 3,
            retry(&mut Hung, &Batch::default(), &report, &stop),
        )
        .await
        .expect("the attempt is dropped once stopping");
        assert!(!stopped.unwrap_err().retryable);
    }

    /// A store that answers after a while.
    struct Slow;

    impl Sink for Slow {
        fn name(&self) -> &'static str {
            "slow"
        }

        async fn write(&mut self, _: &Batch) -> Result<(), SinkError> {
            tokio::time::sleep(Duration::from_millis(300)).await;
            Ok(())
        }
    }

    #[tokio::test]
    async fn stopping_still_lets_a_healthy_store_finish() {
        let report: RetryReport = Arc::new(|_, _| {});
        let stop = AtomicBool::new(true);
        retry(&mut Slow, &Batch::default(), &report, &stop)
            .await
            .expect("the last epochs are written when stopping");
    }

    #[tokio::test]
    async fn stopping_ends_the_retries_without_success() {
        let report: RetryReport = Arc::new(|_, _| {});
        let stop = AtomicBool::new(true);
        let mut sink = Flaky { failures: 100 };
        let err = retry(&mut sink, &Batch::default(), &report, &stop)
            .await
            .unwrap_err();
        assert!(!err.retryable);
        assert_eq!(sink.failures, 99, "one attempt, then it stopped");
    }
}
