//! The pipeline, wired: on every worker, Kafka source → decode → aggregate → sinks.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::producer::FutureProducer;
use timely::dataflow::operators::Probe;
use timely::dataflow::ProbeHandle;

use rf_operators::{
    compute, AggregateConfig, AggregateView, Aggregator, AnalyzeConfig, Analyzer, BookingUsage,
    BookingsConfig, BreachThresholds, Computation, Decoder, EventClock, Paused,
};
use rf_schemas::registry::RegistryClient;
use rf_schemas::TenantId;
use rf_sinks::clickhouse::ClickHouseSink;
use rf_sinks::config::{ClickHouseConfig, RedisConfig};
use rf_sinks::dlq::DeadLetterSink;
use rf_sinks::redis::RedisSink;
use rf_sinks::webhook::OutboxSink;
use rf_sinks::{RegionSinks, Sinks};

use crate::alerts::AlertsConfig;
use crate::analytics::{self, AnalyticsConfig};
use crate::backfill::{self, Backfill};
use crate::checkpoint::{self, CheckpointWriter};
use crate::config::{KafkaConfig, PipelineConfig, RegistryConfig};
use crate::metrics::{rss_bytes, Metrics};
use crate::regions::RegionsConfig;
use crate::sink::{SinkContext, SinkStats, WriteToSinks};
use crate::source::{kafka_source, Backpressure, Consumers, LiveTopology, StopWhen, Topology};
use crate::PipelineError;

/// Everything a pipeline connects to, and how it runs.
#[derive(Clone, Debug, Default)]
pub struct Settings {
    /// The brokers.
    pub kafka: KafkaConfig,
    /// The schema registry.
    pub registry: RegistryConfig,
    /// Where rows go.
    pub clickhouse: ClickHouseConfig,
    /// Where live state goes.
    pub redis: RedisConfig,
    /// The runtime.
    pub pipeline: PipelineConfig,
    /// The regions and which of them this deployment serves.
    pub regions: RegionsConfig,
    /// Anomalies and forecasts.
    pub analytics: AnalyticsConfig,
    /// Alert delivery.
    pub alerts: AlertsConfig,
    /// The platform keys tenants' secrets are sealed under.
    pub secrets: crate::secrets::SecretsConfig,
}

/// What every worker of a run starts from.
struct Shared {
    settings: Settings,
    topology: Arc<LiveTopology>,
    producer: FutureProducer,
    metrics: Metrics,
    /// Where each partition resumes.
    resumes: Arc<std::collections::HashMap<(String, i32), checkpoint::Resume>>,
    /// The models' learnt states.
    restored: rf_operators::Restored,
    /// Booked rooms' minutes of final windows, as written before the restart.
    minutes: Arc<rf_operators::RestoredMinutes>,
}

/// How a run ends.
#[derive(Clone, Default)]
pub struct RunOptions {
    /// Stop once every partition is consumed to where it ended at start (tests, benches,
    /// backfills); otherwise run until `shutdown` is set.
    pub until_caught_up: bool,
    /// Set to stop gracefully: the current epoch is written and committed first.
    pub shutdown: Arc<AtomicBool>,
    /// Sample the resident memory each time this many more readings were consumed (over
    /// all workers), for benchmarks.
    pub memory_every: Option<u64>,
    /// Recompute only these windows, from where the readings topics hold them, and write
    /// only their final rows (see [`crate::backfill`]); the run then stops by itself.
    pub backfill: Option<Backfill>,
    /// Counts the readings consumed, over all workers, as they are (progress).
    pub consumed: Arc<AtomicU64>,
}

/// What a run did.
#[derive(Debug, Default, Clone)]
pub struct RunReport {
    /// Tenants served.
    pub tenants: usize,
    /// Wall time.
    pub elapsed: Duration,
    /// Totals over every worker.
    pub stats: SinkStats,
    /// (readings consumed, resident bytes) samples, when asked for.
    pub memory: Vec<(u64, u64)>,
    /// Where each partition's watermark was when the run ended: (tenant, partition, ms).
    pub watermarks: Vec<(TenantId, i32, i64)>,
    /// Tenants a store refused for good during the run (live runs go on without them),
    /// with why.
    pub quarantined: BTreeMap<TenantId, String>,
}

/// Runs the pipeline on `settings.pipeline.workers` timely workers until `options` say stop.
pub fn run(
    settings: &Settings,
    options: RunOptions,
    metrics: Metrics,
) -> Result<RunReport, PipelineError> {
    let started = Instant::now();
    let topology = Topology::discover(settings)?;
    let tenants = topology.tenants.len();
    tracing::info!(
        tenants = ?topology.tenants.iter().map(|s| s.tenant.as_str()).collect::<Vec<_>>(),
        regions = ?topology.regions,
        workers = settings.pipeline.workers,
        "pipeline starting"
    );
    let regions = settings.served_regions();
    let backfill = options.backfill;
    // A backfill starts from no state: its models and checkpoints are the live pipeline's.
    let ((restored, minutes), resumes) = match backfill {
        Some(b) => (
            Default::default(),
            backfill::positions(&settings.kafka, &topology, b.from)?,
        ),
        None => (
            analytics::restore(settings, &topology, &metrics, &options.shutdown)?,
            checkpoint::load(&settings.kafka)?,
        ),
    };
    let minutes = Arc::new(minutes);
    let breach_at = BreachThresholds::default();
    breach_at.set(topology.breach_at.clone());
    let topology = Arc::new(LiveTopology::new(topology));
    let discovery = Discovery::start(settings, topology.clone(), breach_at.clone());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| PipelineError::Dataflow(format!("cannot start the I/O runtime: {e}")))?;
    let producer: FutureProducer = {
        let mut c = settings.kafka.client_config();
        c.set("enable.idempotence", "true").set("linger.ms", "5");
        // librdkafka's producer needs a runtime context for its futures' timers.
        let _guard = runtime.enter();
        c.create()
            .map_err(|e| PipelineError::kafka("cannot create the producer", e))?
    };

    runtime.block_on(checkpoint::ensure_topic(&settings.kafka))?;
    runtime.block_on(crate::alerts::ensure_topics(settings))?;
    let resumes = Arc::new(resumes);
    let shared = Arc::new(Shared {
        settings: settings.clone(),
        topology,
        producer,
        metrics,
        resumes,
        restored,
        minutes,
    });
    let totals = Arc::new(Mutex::new(SinkStats::default()));
    let worker_totals = totals.clone();
    let memory = Arc::new(Mutex::new(Vec::new()));
    let worker_memory = memory.clone();
    let consumed_total = options.consumed.clone();
    let watermarks = Arc::new(Mutex::new(Vec::new()));
    let worker_watermarks = watermarks.clone();
    let quarantined = Arc::new(Mutex::new(BTreeMap::new()));
    let worker_quarantined = quarantined.clone();
    // The tenants' event time, shared by this process's workers for idle partitions.
    let clock = EventClock::default();
    let config = timely_config(&settings.pipeline);
    let guards = timely::execute(config, move |worker| {
        let Shared {
            settings,
            topology,
            producer,
            metrics,
            resumes,
            restored,
            minutes,
        } = &*shared;
        let index = worker.index();
        let peers = worker.peers();
        let lateness = settings.pipeline.allowed_lateness_secs as i64 * 1000;
        let clock_skew_ms = settings.pipeline.clock_skew_secs as i64 * 1000;
        let aggregator = Aggregator::new(AggregateConfig {
            allowed_lateness_ms: lateness,
            clock: clock.clone(),
            // The analysis reads every final window's readings; the sinks get them
            // only when they are stored.
            store_readings: true,
            clock_skew_ms,
            revision_interval_ms: settings.pipeline.revision_interval_secs as i64 * 1000,
        });
        let view = AggregateView::default();
        let analyzer = Analyzer::new(
            AnalyzeConfig {
                breach_at: breach_at.clone(),
                ..settings
                    .analytics
                    .operator(settings.pipeline.store_readings)
            },
            restored.clone(),
        );
        let consumers = Consumers::assign(
            &settings.kafka,
            &topology.get(),
            index,
            peers,
            resumes.clone(),
            metrics,
        )?;
        let registry = RegistryClient::new(
            &settings.registry.url,
            Duration::from_secs(settings.registry.timeout_secs),
        );
        let timeout = Duration::from_secs(settings.kafka.timeout_secs);
        let retries = metrics.clone();
        let sinks = Sinks {
            dlq: DeadLetterSink::new(producer.clone(), timeout),
            outbox: OutboxSink::new(producer.clone(), timeout),
            regions: regions
                .iter()
                .map(|r| RegionSinks {
                    clickhouse: ClickHouseSink::new(&r.clickhouse),
                    redis: RedisSink::new(&r.redis),
                })
                .collect(),
            on_retry: Arc::new(move |error, attempt| {
                retries.sink_retries.with_label_values(&[error.sink]).inc();
                tracing::warn!(worker = index, %error, attempt, "sink write failed; retrying");
            }),
            shutdown: options.shutdown.clone(),
        };
        let stats = Rc::new(RefCell::new(SinkStats::default()));
        let stop = StopWhen {
            caught_up: options.until_caught_up || backfill.is_some(),
            shutdown: options.shutdown.clone(),
            event_time: backfill.map(|b| b.stop_at(lateness)),
            watermarks: view.clone(),
            max_rate: backfill
                .and_then(|b| b.max_rate)
                .map(|rate| rate.div_ceil(peers as u64)),
        };
        let probe = ProbeHandle::new();
        let mut consumed = Rc::default();
        let mut failed = Rc::default();
        let paused = Paused::default();
        let decoder = Decoder::new(registry)
            .with_clock_skew(clock_skew_ms)
            .with_stop(options.shutdown.clone());
        let writers = worker.dataflow::<u64, _, _>(|scope| {
            let (records, handles) = kafka_source(
                scope,
                consumers,
                topology.clone(),
                &settings.pipeline,
                stop,
                metrics.clone(),
                Backpressure {
                    paused: paused.clone(),
                    computed: probe.clone(),
                },
            );
            consumed = handles.consumed.clone();
            failed = handles.failed.clone();
            let outputs = compute(
                records,
                Computation {
                    decoder,
                    paused: paused.clone(),
                    aggregator,
                    view: view.clone(),
                    // A backfill rewrites windows only: anomalies and forecasts stay as
                    // found live.
                    analyzer: backfill.is_none().then_some(analyzer),
                    bookings: backfill.is_none().then(|| {
                        let config = BookingsConfig {
                            allowed_lateness_ms: lateness,
                            horizon_ms: i64::from(settings.pipeline.bookings_horizon_days)
                                * 86_400_000,
                        };
                        BookingUsage::restoring(config, minutes.clone())
                    }),
                },
            );
            outputs.probe_with(&probe).write_to_sinks(SinkContext {
                sinks,
                topology: topology.clone(),
                source: handles,
                metrics: metrics.clone(),
                mirror_rooms: index == 0 && backfill.is_none(),
                backfill,
                stats: stats.clone(),
                lateness_ms: lateness,
                checkpoints: CheckpointWriter {
                    producer: producer.clone(),
                    group: settings.kafka.group_id.clone(),
                    timeout,
                },
                paused: paused.clone(),
            })
        });
        let (mut last_report, mut steps) = (Instant::now(), 0u64);
        let (mut added, mut next_sample) = (0, options.memory_every.unwrap_or(u64::MAX));
        let (mut changes, mut shown) = (paused.changes(), Default::default());
        // Once the dataflow is done, the writers still finish what they were handed.
        while !probe.done() || writers.busy() {
            // Parks (up to a millisecond) only when no operator has work.
            worker.step_or_park(Some(Duration::from_millis(1)));
            writers.settle();
            if paused.changes() != changes {
                changes = paused.changes();
                metrics.show_paused(&paused, &mut shown);
            }
            steps += 1;
            let mine = consumed.get();
            let total = consumed_total.fetch_add(mine - added, Ordering::Relaxed) + mine - added;
            added = mine;
            if let Some(every) = options
                .memory_every
                .filter(|_| index == 0 && total >= next_sample)
            {
                worker_memory
                    .lock()
                    .expect("no worker panics holding it")
                    .push((total, rss_bytes()));
                next_sample = (total / every + 1) * every;
            }
            if steps % 256 == 0 && last_report.elapsed() > Duration::from_secs(5) {
                last_report = Instant::now();
                let size = view.size();
                let w = index.to_string();
                metrics
                    .state
                    .with_label_values(&[&w, "readings"])
                    .set(size.readings as i64);
                metrics
                    .state
                    .with_label_values(&[&w, "chunks"])
                    .set(size.chunks as i64);
                metrics
                    .state
                    .with_label_values(&[&w, "windows"])
                    .set(size.windows as i64);
            }
        }
        if let Some(message) = failed.borrow_mut().take() {
            return Err(PipelineError::Sink(message));
        }
        worker_quarantined
            .lock()
            .expect("no worker panics while holding it")
            .extend(writers.quarantined());
        worker_watermarks
            .lock()
            .expect("no worker panics while holding it")
            .extend(view.watermarks());
        let mut stats = stats.borrow().clone();
        let size = view.size();
        stats.held = size.readings as u64;
        stats.chunks = size.chunks as u64;
        stats.pending = size.pending as u64;
        stats.consumed = consumed.get();
        let mut totals = worker_totals
            .lock()
            .expect("no worker panics while holding it");
        merge(&mut totals, stats);
        Ok::<(), PipelineError>(())
    })
    .map_err(PipelineError::Dataflow)?;
    let results = guards.join();
    discovery.stop();
    for result in results {
        result.map_err(PipelineError::Dataflow)??;
    }
    let stats = std::mem::take(&mut *totals.lock().expect("workers are done"));
    let memory = std::mem::take(&mut *memory.lock().expect("workers are done"));
    let watermarks = std::mem::take(&mut *watermarks.lock().expect("workers are done"));
    let quarantined = std::mem::take(&mut *quarantined.lock().expect("workers are done"));
    if !quarantined.is_empty() && options.until_caught_up {
        // A run that was to read everything did not: say which tenants, and why.
        let why: Vec<String> = quarantined.into_values().collect();
        return Err(PipelineError::Sink(format!(
            "quarantined (their offsets stay uncommitted; fix the cause and run again): {}",
            why.join("; ")
        )));
    }
    Ok(RunReport {
        tenants,
        elapsed: started.elapsed(),
        stats,
        memory,
        watermarks,
        quarantined,
    })
}

/// Looks for new tenants every `pipeline.discover_secs` while the pipeline runs, on its
/// own thread, adds them to the live topology, and takes the tenants' capacity-breach
/// thresholds.
struct Discovery {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Discovery {
    fn start(
        settings: &Settings,
        topology: Arc<LiveTopology>,
        breach_at: BreachThresholds,
    ) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let every = Duration::from_secs(settings.pipeline.discover_secs);
        // A pipeline given its tenants serves those and no others.
        if every.is_zero() || !settings.pipeline.tenants.is_empty() {
            return Self { stop, thread: None };
        }
        let settings = settings.clone();
        let stopping = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut next = Instant::now() + every;
            while !stopping.load(Ordering::Relaxed) {
                if Instant::now() < next {
                    std::thread::sleep(Duration::from_millis(100));
                    continue;
                }
                next = Instant::now() + every;
                match Topology::discover(&settings) {
                    Ok(found) => {
                        breach_at.set(found.breach_at.clone());
                        let added = topology.update(&found);
                        if !added.is_empty() {
                            tracing::info!(tenants = ?added, "new tenants discovered");
                        }
                    }
                    Err(error) => {
                        tracing::warn!(error = %rf_schemas::chain(&error), "looking for new tenants failed; trying again later")
                    }
                }
            }
        });
        Self {
            stop,
            thread: Some(thread),
        }
    }

    fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn merge(into: &mut SinkStats, from: SinkStats) {
    into.epochs += from.epochs;
    into.room_rows += from.room_rows;
    into.office_rows += from.office_rows;
    into.live_keys += from.live_keys;
    into.dead_letters += from.dead_letters;
    into.counted += from.counted;
    into.held += from.held;
    into.chunks += from.chunks;
    into.pending += from.pending;
    into.consumed += from.consumed;
    into.replaced += from.replaced;
    into.latencies.extend(from.latencies);
    into.finals.extend(from.finals);
    into.live_acks.extend(from.live_acks);
}

/// One process, or one process of a cluster: partitions are then spread over the workers
/// of every process, as if they were threads of one.
fn timely_config(pipeline: &PipelineConfig) -> timely::Config {
    if pipeline.hosts.is_empty() {
        return timely::Config::process(pipeline.workers);
    }
    timely::Config {
        communication: timely::CommunicationConfig::Cluster {
            threads: pipeline.workers,
            process: pipeline.process,
            addresses: pipeline.hosts.clone(),
            report: false,
            zerocopy: false,
        },
        worker: timely::WorkerConfig::default(),
    }
}
