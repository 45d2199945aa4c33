//! The pipeline's own ceiling: the very same decode and aggregate operators on the same
//! timely workers, fed from records in memory instead of the broker, without sinks.

use std::cell::Cell;
use std::collections::VecDeque;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use timely::dataflow::operators::vec::Input as _;
use timely::dataflow::operators::{Inspect, Probe};
use timely::dataflow::{InputHandleVec, ProbeHandle};

use rf_operators::{
    AggregateConfig, Aggregator, Analyzer, Computation, Decoder, Input, Output, Restored, Topic,
};
use rf_pipelines::{AnalyticsConfig, PipelineConfig, RegistryConfig};
use rf_schemas::registry::RegistryClient;

use crate::capture::Captured;
use rf_jobs::JobError;

/// Epochs between the input and the end of the dataflow, as the Kafka source allows.
const IN_FLIGHT: u64 = 2;
/// Records taken from one partition in a row, like one fetch of the Kafka client.
const FETCH: usize = 1_000;

/// What the in-memory run did.
#[derive(Debug, Default)]
pub struct ComputeReport {
    /// Readings fed.
    pub readings: u64,
    /// Rows produced for ClickHouse: room and office revisions, stored readings.
    pub rows: u64,
    /// Wall time.
    pub elapsed: Duration,
    /// Per epoch, seconds from being fed to being fully processed.
    pub latencies: Vec<f64>,
    /// Peak resident memory during the run, bytes, including the records.
    pub peak_rss: u64,
    /// Bytes of the records held in memory.
    pub buffer: u64,
}

/// Runs decode → aggregate as `pipeline` configures them (workers, epoch size, lateness,
/// stored readings) over `captured`, each worker taking the partitions the Kafka source
/// would give it.
pub fn compute(
    captured: Arc<Captured>,
    registry: &RegistryConfig,
    pipeline: &PipelineConfig,
) -> Result<ComputeReport, JobError> {
    let registry = registry.clone();
    let (workers, epoch_records) = (pipeline.workers, pipeline.max_epoch_records);
    let config = AggregateConfig {
        allowed_lateness_ms: pipeline.allowed_lateness_secs as i64 * 1000,
        // As in the pipeline: the analysis reads every final window's readings.
        store_readings: true,
        clock_skew_ms: pipeline.clock_skew_secs as i64 * 1000,
        revision_interval_ms: pipeline.revision_interval_secs as i64 * 1000,
        ..AggregateConfig::default()
    };
    let analytics = AnalyticsConfig::default().operator(pipeline.store_readings);
    let totals = Arc::new(Mutex::new(ComputeReport::default()));
    let worker_totals = totals.clone();
    let started = Instant::now();
    let guards = timely::execute(timely::Config::process(workers), move |worker| {
        let (index, peers) = (worker.index(), worker.peers());
        let aggregator = Aggregator::new(config.clone());
        let analyzer = Analyzer::new(analytics.clone(), Restored::default());
        let decoder = Decoder::new(RegistryClient::new(
            &registry.url,
            Duration::from_secs(registry.timeout_secs),
        ))
        .with_clock_skew(config.clock_skew_ms);
        let mut input = InputHandleVec::<u64, Input>::new();
        let probe = ProbeHandle::new();
        let rows = Rc::new(Cell::new(0u64));
        let counter = rows.clone();
        worker.dataflow::<u64, _, _>(|scope| {
            let parts = Computation {
                decoder,
                paused: Default::default(),
                aggregator,
                view: Default::default(),
                analyzer: Some(analyzer),
                bookings: Some(rf_operators::BookingUsage::new(Default::default())),
            };
            rf_operators::compute(scope.input_from(&mut input), parts)
                .inspect(move |o| {
                    let rows = match o {
                        Output::Room(_) | Output::Office(_) => 1,
                        Output::Anomaly(_) | Output::Model(_) => 1,
                        Output::Forecast(f) => f.points.len() as u64,
                        Output::Readings(r) => r.readings.len() as u64,
                        _ => 0,
                    };
                    counter.set(counter.get() + rows);
                })
                .probe_with(&probe);
        });

        // Every worker reads the whole rooms topic first, as the Kafka source does.
        // As the Kafka source does: each worker's records carry its own copy of the id.
        let tenant = &captured.tenant.unshared();
        for (&p, log) in &captured.rooms {
            for i in 0..log.len() {
                input.send(Input::Record(log.record(i, tenant, Topic::Rooms, p)));
            }
        }
        let mut cursors: Vec<(i32, usize)> = captured
            .readings
            .keys()
            .filter(|&&p| rf_pipelines::source::owner(tenant, p, peers) == index)
            .map(|&p| (p, 0))
            .collect();
        let mut fed = 0u64;
        let mut sent: VecDeque<(u64, Instant)> = VecDeque::new();
        let mut latencies = Vec::new();
        let mut record_done = |sent: &mut VecDeque<(u64, Instant)>, probe: &ProbeHandle<u64>| {
            while let Some(&(epoch, at)) = sent.front() {
                if probe.less_equal(&epoch) {
                    break;
                }
                latencies.push(at.elapsed().as_secs_f64());
                sent.pop_front();
            }
        };
        loop {
            let mut batch = 0;
            while batch < epoch_records {
                let before = batch;
                for (p, next) in &mut cursors {
                    let log = &captured.readings[p];
                    let end = (*next + FETCH).min(log.len());
                    for i in *next..end {
                        input.send(Input::Record(log.record(i, tenant, Topic::Readings, *p)));
                    }
                    batch += end - *next;
                    *next = end;
                }
                if batch == before {
                    break;
                }
            }
            fed += batch as u64;
            let epoch = *input.time();
            sent.push_back((epoch, Instant::now()));
            input.advance_to(epoch + 1);
            while epoch + 1 >= IN_FLIGHT && probe.less_than(&(epoch + 1 - IN_FLIGHT)) {
                worker.step();
                record_done(&mut sent, &probe);
            }
            if batch == 0 {
                break;
            }
        }
        drop(input);
        while !probe.done() {
            worker.step();
            record_done(&mut sent, &probe);
        }
        let mut totals = worker_totals.lock().expect("no worker panics holding it");
        totals.readings += fed;
        totals.rows += rows.get();
        totals.latencies.extend(latencies);
    })
    .map_err(|e| JobError::Invalid(format!("cannot start the workers: {e}")))?;
    guards.join();
    let mut report = std::mem::take(&mut *totals.lock().expect("workers are done"));
    report.elapsed = started.elapsed();
    Ok(report)
}
