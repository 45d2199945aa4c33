//! The Kafka source: which partitions each worker owns, the consumers, and the timely
//! source operator that turns polls into epochs.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::consumer::base_consumer::PartitionQueue;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use timely::dataflow::operators::generic::operator::source;
use timely::dataflow::operators::Capability;
use timely::dataflow::{ProbeHandle, Scope, Stream};

use rf_operators::{AggregateView, Input, Paused, RawRecord, Topic, Why};
use rf_schemas::TenantId;

use crate::checkpoint::Resume;
use crate::config::{KafkaConfig, PipelineConfig};
use crate::metrics::Metrics;
use crate::run::Settings;
use crate::tenants;
use crate::PipelineError;

/// A tenant the pipeline serves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Served {
    /// The tenant.
    pub tenant: TenantId,
    /// Partitions of its readings topic.
    pub readings: i32,
    /// Partitions of its rooms topic.
    pub rooms: i32,
    /// Partitions of its bookings topic (0 without one).
    pub bookings: i32,
    /// Its region: an index into [`Topology::regions`].
    pub region: usize,
}

/// The tenants a pipeline serves, their partition counts and their regions.
#[derive(Clone, Debug, Default)]
pub struct Topology {
    /// Sorted by tenant.
    pub tenants: Vec<Served>,
    /// The names of the served regions, the home region first if it is one.
    pub regions: Vec<String>,
    /// The served tenants' capacity-breach thresholds, where the registry sets one.
    pub breach_at: std::collections::HashMap<TenantId, f64>,
}

impl Topology {
    /// Finds every tenant with an `occupancy.<tenant>` topic (or only those
    /// `settings.pipeline.tenants` names) that is not deleted in the tenant registry and
    /// lives in a region this deployment serves. A tenant missing from the registry lives
    /// in the home region.
    pub fn discover(settings: &Settings) -> Result<Self, PipelineError> {
        let kafka = &settings.kafka;
        let wanted = &settings.pipeline.tenants;
        let consumer: BaseConsumer = kafka
            .client_config()
            .create()
            .map_err(|e| PipelineError::kafka("cannot create a consumer", e))?;
        let metadata = consumer
            .fetch_metadata(None, Duration::from_secs(kafka.timeout_secs))
            .map_err(|e| {
                PipelineError::kafka(format!("cannot list topics at {}", kafka.brokers), e)
            })?;
        let partitions: HashMap<&str, i32> = metadata
            .topics()
            .iter()
            .map(|t| (t.name(), t.partitions().len() as i32))
            .collect();
        let registry = tenants::load(kafka)?;
        let regions: Vec<String> = settings
            .served_regions()
            .into_iter()
            .map(|r| r.name)
            .collect();
        let mut served = Vec::new();
        let mut elsewhere = Vec::new();
        for (name, &count) in &partitions {
            let Some(tenant) = name.strip_prefix(rf_schemas::tenant::READINGS_PREFIX) else {
                continue;
            };
            let Ok(tenant) = TenantId::parse(tenant) else {
                continue;
            };
            if !wanted.is_empty() && !wanted.iter().any(|w| w == tenant.as_str()) {
                continue;
            }
            let region = match registry.get(&tenant) {
                Some(entry) if entry.is_deleted() => continue,
                Some(entry) => entry.region.as_str(),
                None => settings.regions.home.as_str(),
            };
            let Some(region) = regions.iter().position(|r| r == region) else {
                elsewhere.push((tenant, region.to_owned()));
                continue;
            };
            let rooms = partitions
                .get(tenant.rooms_topic().as_str())
                .copied()
                .unwrap_or(0);
            let bookings = partitions
                .get(tenant.bookings_topic().as_str())
                .copied()
                .unwrap_or(0);
            served.push(Served {
                tenant,
                readings: count,
                rooms,
                bookings,
                region,
            });
        }
        served.sort_by(|a, b| a.tenant.cmp(&b.tenant));
        for w in wanted {
            if served.iter().any(|s| s.tenant.as_str() == w) {
                continue;
            }
            if let Some((_, region)) = elsewhere.iter().find(|(t, _)| t.as_str() == w) {
                return Err(PipelineError::Topics(format!(
                    "tenant {w} lives in region {region}, which this deployment does not serve (regions.serve)"
                )));
            }
            return Err(PipelineError::Topics(format!(
                "tenant {w} has no topic occupancy.{w} or is deleted; create it with `roomflow tenant create {w}`"
            )));
        }
        let breach_at = served
            .iter()
            .filter_map(|s| {
                let at = registry.get(&s.tenant)?.capacity_breach_at?;
                Some((s.tenant.clone(), at))
            })
            .collect();
        Ok(Self {
            tenants: served,
            regions,
            breach_at,
        })
    }

    /// The served region of `tenant`, an index into `regions`.
    pub fn region_of(&self, tenant: &TenantId) -> Option<usize> {
        self.tenants
            .binary_search_by(|s| s.tenant.cmp(tenant))
            .ok()
            .map(|i| self.tenants[i].region)
    }

    /// The readings partitions worker `index` of `peers` owns. Partition p of a tenant goes
    /// to worker (h + p) mod peers, h a fixed hash of the tenant id: each tenant's
    /// partitions spread evenly over the workers of every process, and a tenant added
    /// while the pipeline runs lands where every process expects it, with no coordination.
    pub fn readings_for(&self, index: usize, peers: usize) -> Vec<(TenantId, i32)> {
        self.tenants
            .iter()
            .flat_map(|s| {
                (0..s.readings)
                    .filter(move |&p| owner(&s.tenant, p, peers) == index)
                    .map(move |p| (s.tenant.clone(), p))
            })
            .collect()
    }

    /// This topology with the tenants of `newer` it lacks added. Tenants are never taken
    /// away while a pipeline runs: one deleted keeps being served until the next start.
    pub fn merged(&self, newer: &Topology) -> Option<Topology> {
        let added: Vec<&Served> = newer
            .tenants
            .iter()
            .filter(|s| self.region_of(&s.tenant).is_none())
            .collect();
        if added.is_empty() {
            return None;
        }
        let mut tenants = self.tenants.clone();
        tenants.extend(added.into_iter().cloned());
        tenants.sort_by(|a, b| a.tenant.cmp(&b.tenant));
        Some(Topology {
            tenants,
            regions: self.regions.clone(),
            breach_at: newer.breach_at.clone(),
        })
    }
}

/// The worker (of `peers`) that owns readings partition `partition` of `tenant`:
/// (h + partition) mod peers, h a fixed hash of the tenant id. Every process computes
/// the same owner with no coordination; the benchmarks use it too.
pub fn owner(tenant: &TenantId, partition: i32, peers: usize) -> usize {
    ((stable_hash(tenant.as_str()) + partition as u64) % peers as u64) as usize
}

/// FNV-1a: the same on every machine and every run, unlike the hashers of hash maps.
fn stable_hash(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The topology of a running pipeline: discovery replaces it as tenants are added, and
/// the sources and sinks of every worker follow.
#[derive(Default)]
pub struct LiveTopology {
    current: Mutex<Arc<Topology>>,
    generation: AtomicU64,
}

impl LiveTopology {
    /// Starts at `topology`.
    pub fn new(topology: Topology) -> Self {
        Self {
            current: Mutex::new(Arc::new(topology)),
            generation: AtomicU64::new(0),
        }
    }

    /// The current topology.
    pub fn get(&self) -> Arc<Topology> {
        self.current
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Increases each time the topology changes; cheap to poll.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Adds the tenants of `discovered` that are new; returns them.
    pub fn update(&self, discovered: &Topology) -> Vec<TenantId> {
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        let Some(merged) = current.merged(discovered) else {
            return Vec::new();
        };
        let added = merged
            .tenants
            .iter()
            .filter(|s| current.region_of(&s.tenant).is_none())
            .map(|s| s.tenant.clone())
            .collect();
        *current = Arc::new(merged);
        self.generation.fetch_add(1, Ordering::Release);
        added
    }
}

/// How long the source reads only room metadata at start, at most.
const ROOMS_LOAD_TIMEOUT: Duration = Duration::from_secs(30);

/// A gap between two polls longer than an epoch's wait plus this is a pause (backpressure,
/// slow sinks): partitions are not silent while nobody asks them.
const IDLE_PAUSE: Duration = Duration::from_secs(1);

/// When the source stops.
#[derive(Clone)]
pub struct StopWhen {
    /// Stop once every owned partition reached the end it had when the run started.
    pub caught_up: bool,
    /// Stop when this is set (Ctrl-C).
    pub shutdown: Arc<AtomicBool>,
    /// Stop reading a partition once its watermark reached this event time, ms (a
    /// backfill's end); the run then ends when every partition stopped or caught up.
    pub event_time: Option<i64>,
    /// The aggregation's watermarks, which `event_time` is compared with.
    pub watermarks: AggregateView,
    /// Read at most this many records a second (a backfill beside live processing).
    pub max_rate: Option<u64>,
}

/// What holds the source back.
pub struct Backpressure {
    /// Tenants not read for now: records waiting for a schema, stores behind, quarantine.
    pub paused: Paused,
    /// Probes the computation's output: the source reads a new epoch only while fewer
    /// than [`MAX_EPOCHS_AHEAD`] of the epochs it gave records to are not computed yet.
    /// So a backlog waits in the broker, not in the dataflow, whatever the computation's
    /// speed (at 100,000 rooms it is slower than reading).
    pub computed: ProbeHandle<u64>,
}

/// The readings consumer's context: turns the Kafka client's statistics into the
/// per-partition lag gauge.
pub struct LagContext {
    metrics: Metrics,
}

impl rdkafka::ClientContext for LagContext {
    fn stats(&self, statistics: rdkafka::Statistics) {
        for (topic, t) in &statistics.topics {
            let Some(tenant) = topic.strip_prefix("occupancy.") else {
                continue;
            };
            for (id, p) in &t.partitions {
                if *id >= 0 && p.consumer_lag >= 0 {
                    self.metrics
                        .consumer_lag
                        .with_label_values(&[tenant, &id.to_string()])
                        .set(p.consumer_lag);
                }
            }
        }
    }
}

impl rdkafka::consumer::ConsumerContext for LagContext {}

/// The readings consumer.
pub type ReadingsConsumer = BaseConsumer<LagContext>;

/// What a worker's source shares with the rest of its dataflow.
pub struct SourceHandles {
    /// The readings consumer; the sink commits through it.
    pub consumer: Arc<ReadingsConsumer>,
    /// When each epoch's first record was consumed.
    pub epoch_started: Rc<RefCell<BTreeMap<u64, (Instant, Instant)>>>,
    /// Set when the sink failed for good: the source stops.
    pub failed: Rc<RefCell<Option<String>>>,
    /// Readings consumed so far.
    pub consumed: Rc<Cell<u64>>,
}

/// A readings partition: (tenant, partition).
type PartitionKey = (TenantId, i32);

/// Hash maps of the per-record path: a fast hash, seeded per process.
type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// One worker's consumers, assigned and positioned.
pub struct Consumers {
    readings: Arc<ReadingsConsumer>,
    /// One queue per owned readings partition, split off the consumer's, so that
    /// partitions take turns instead of waiting behind each other's prefetched backlog.
    queues: Vec<(TenantId, PartitionQueue<LagContext>)>,
    rooms: BaseConsumer,
    topics: HashMap<String, (TenantId, Topic)>,
    /// Where each owned readings partition ended when it was assigned.
    ends: FastMap<PartitionKey, i64>,
    /// Every owned readings partition.
    owned: Vec<PartitionKey>,
    /// Where each rooms partition ended when it was assigned: the catalog is loaded up to
    /// here before readings are read.
    rooms_ends: HashMap<(String, i32), i64>,
    /// What positioning new partitions needs.
    kafka: KafkaConfig,
    index: usize,
    peers: usize,
    resumes: Arc<HashMap<(String, i32), Resume>>,
    /// Where added partitions resume, for the aggregation: the next epoch starts with
    /// them, before any of their records.
    resuming: Vec<Input>,
}

impl Consumers {
    /// Creates worker `index`'s consumers and assigns the partitions of `topology`'s
    /// tenants it owns (see [`Consumers::add`]).
    pub fn assign(
        kafka: &KafkaConfig,
        topology: &Topology,
        index: usize,
        peers: usize,
        resumes: Arc<HashMap<(String, i32), Resume>>,
        metrics: &Metrics,
    ) -> Result<Self, PipelineError> {
        // The prefetch budget is split over the partitions each consumer reads at start.
        let owned = topology.readings_for(index, peers).len();
        let rooms_partitions = topology.tenants.iter().map(|s| s.rooms as usize).sum();
        let config = |partitions| {
            let mut config = kafka.consumer_config_for(&kafka.group_id, partitions);
            config
                .set("enable.auto.offset.store", "false")
                .set("auto.offset.reset", "earliest");
            config
        };
        let readings: ReadingsConsumer = config(owned)
            .set("statistics.interval.ms", "5000")
            .create_with_context(LagContext {
                metrics: metrics.clone(),
            })
            .map_err(|e| kerr("cannot create the readings consumer", e))?;
        let rooms: BaseConsumer = config(rooms_partitions)
            .create()
            .map_err(|e| kerr("cannot create the rooms consumer", e))?;
        let mut consumers = Self {
            readings: Arc::new(readings),
            queues: Vec::new(),
            rooms,
            topics: HashMap::new(),
            ends: FastMap::default(),
            owned: Vec::new(),
            rooms_ends: HashMap::new(),
            kafka: kafka.clone(),
            index,
            peers,
            resumes,
            resuming: Vec::new(),
        };
        consumers.add(topology, &topology.tenants)?;
        Ok(consumers)
    }

    /// Adds `tenants` (of `topology`): their readings partitions this worker owns, where
    /// their checkpoints say (restoring each partition's aggregation state), else at the
    /// group's committed offsets, else from the beginning; and every rooms partition from
    /// the beginning. Returns the readings partitions added; where they resume goes to
    /// the aggregation with the next epoch.
    pub fn add(
        &mut self,
        topology: &Topology,
        tenants: &[Served],
    ) -> Result<Vec<PartitionKey>, PipelineError> {
        let timeout = Duration::from_secs(self.kafka.timeout_secs);
        let mut wanted = TopicPartitionList::new();
        for (tenant, partition) in topology.readings_for(self.index, self.peers) {
            if tenants.iter().any(|s| s.tenant == tenant) {
                // Each record carries the tenant: a copy of the worker's own.
                self.topics.insert(
                    tenant.readings_topic(),
                    (tenant.unshared(), Topic::Readings),
                );
                wanted.add_partition(&tenant.readings_topic(), partition);
            }
        }
        let committed = if wanted.count() == 0 {
            TopicPartitionList::new()
        } else {
            self.readings
                .committed_offsets(wanted, timeout)
                .map_err(|e| kerr("cannot read committed offsets", e))?
        };
        let mut assignment = TopicPartitionList::new();
        let mut added = Vec::new();
        for elem in committed.elements() {
            let (tenant, _) = &self.topics[elem.topic()];
            let (low, high) = self
                .readings
                .fetch_watermarks(elem.topic(), elem.partition(), timeout)
                .map_err(|e| kerr("cannot read partition ends", e))?;
            let checkpoint = (elem.topic().to_owned(), elem.partition());
            let (start, first) = match (self.resumes.get(&checkpoint), elem.offset()) {
                (Some(r), _) => {
                    tracing::info!(
                        tenant = %tenant,
                        partition = elem.partition(),
                        offset = r.offset,
                        watermark = r.watermark,
                        "reading from the resume point"
                    );
                    self.resuming
                        .push(Input::Resume(rf_operators::Resume::Readings {
                            tenant: tenant.clone(),
                            partition: elem.partition(),
                            watermark: r.watermark,
                            processed_until: r.processed_until,
                            final_watermark: r.final_watermark,
                        }));
                    (Offset::Offset(r.offset), r.offset)
                }
                (None, Offset::Offset(o)) => {
                    tracing::warn!(tenant = %tenant, partition = elem.partition(), offset = o, "no checkpoint; resuming at the committed offset without state");
                    (Offset::Offset(o), o)
                }
                (None, _) => (Offset::Beginning, low),
            };
            assignment
                .add_partition_offset(elem.topic(), elem.partition(), start)
                .map_err(|e| kerr("bad offset", e))?;
            let key = (tenant.clone(), elem.partition());
            if first < high {
                self.ends.insert(key.clone(), high);
            }
            self.owned.push(key.clone());
            added.push(key);
            // Split before the partition is assigned: no record of it reaches the
            // consumer's own queue.
            let queue = self
                .readings
                .split_partition_queue(elem.topic(), elem.partition())
                .ok_or_else(|| {
                    PipelineError::Topics(format!(
                        "cannot split off the queue of {} partition {}",
                        elem.topic(),
                        elem.partition()
                    ))
                })?;
            self.queues.push((tenant.clone(), queue));
        }
        self.readings
            .incremental_assign(&assignment)
            .map_err(|e| kerr("cannot assign partitions", e))?;

        let mut rooms_assignment = TopicPartitionList::new();
        for s in tenants {
            let tenant = &s.tenant;
            self.topics
                .insert(tenant.rooms_topic(), (tenant.unshared(), Topic::Rooms));
            // Room versions that every checkpointed partition's worker had applied to final
            // rows are not applied again; without a checkpoint no final row was written.
            let readings_topic = tenant.readings_topic();
            let checkpointed: Vec<&Resume> = self
                .resumes
                .iter()
                .filter(|((topic, _), _)| *topic == readings_topic)
                .map(|(_, r)| r)
                .collect();
            for p in 0..s.rooms {
                rooms_assignment
                    .add_partition_offset(&tenant.rooms_topic(), p, Offset::Beginning)
                    .map_err(|e| kerr("bad offset", e))?;
                let (low, high) = self
                    .rooms
                    .fetch_watermarks(&tenant.rooms_topic(), p, timeout)
                    .map_err(|e| kerr("cannot read rooms partition ends", e))?;
                if high > low {
                    self.rooms_ends.insert((tenant.rooms_topic(), p), high);
                }
                let applied = checkpointed
                    .iter()
                    .map(|r| r.rooms.iter().find(|(q, _)| *q == p).map_or(0, |(_, o)| *o))
                    .min()
                    .unwrap_or(high);
                self.resuming
                    .push(Input::Resume(rf_operators::Resume::Rooms {
                        tenant: tenant.clone(),
                        partition: p,
                        offset: applied,
                    }));
            }
            // Every worker reads every booking, as it reads every room: an office's rows
            // are written by the worker whose readings partition holds it. Rewriting a
            // window twice writes the same row again, so they are read from the start.
            self.topics.insert(
                tenant.bookings_topic(),
                (tenant.unshared(), Topic::Bookings),
            );
            for p in 0..s.bookings {
                rooms_assignment
                    .add_partition_offset(&tenant.bookings_topic(), p, Offset::Beginning)
                    .map_err(|e| kerr("bad offset", e))?;
                let (low, high) = self
                    .rooms
                    .fetch_watermarks(&tenant.bookings_topic(), p, timeout)
                    .map_err(|e| kerr("cannot read bookings partition ends", e))?;
                if high > low {
                    self.rooms_ends.insert((tenant.bookings_topic(), p), high);
                }
            }
        }
        self.rooms
            .incremental_assign(&rooms_assignment)
            .map_err(|e| kerr("cannot assign rooms partitions", e))?;
        Ok(added)
    }
}

impl Consumers {
    /// Stops reading the partitions of quarantined tenants: they count as caught up.
    fn drop_quarantined(&mut self, paused: &Paused) {
        if paused.is_empty() {
            return;
        }
        let mut done = TopicPartitionList::new();
        self.owned.retain(|key| {
            let quarantined = paused.is(&key.0, Why::Quarantine);
            if quarantined {
                done.add_partition(&key.0.readings_topic(), key.1);
                self.ends.remove(key);
            }
            !quarantined
        });
        if done.count() > 0 {
            if let Err(error) = self.readings.pause(&done) {
                tracing::warn!(%error, "cannot pause a quarantined tenant's partitions");
            }
        }
    }

    /// Stops reading the partitions whose watermark reached `until` (ms): they count as
    /// caught up.
    fn stop_past(&mut self, until: i64, view: &AggregateView) {
        let mut done = TopicPartitionList::new();
        self.ends.retain(|(tenant, partition), _| {
            let past = view
                .watermark(tenant, *partition)
                .is_some_and(|w| w >= until);
            if past {
                done.add_partition(&tenant.readings_topic(), *partition);
            }
            !past
        });
        if done.count() > 0 {
            if let Err(error) = self.readings.pause(&done) {
                tracing::warn!(%error, "cannot pause partitions read far enough");
            }
        }
    }
}

fn kerr(what: &str, e: rdkafka::error::KafkaError) -> PipelineError {
    PipelineError::kafka(what, e)
}

/// The source operator. It reads an epoch of records (room metadata first) over several
/// short activations, so the worker's other operators run in between, and emits it when
/// it is full, or when the partitions gave what they had or an epoch's time of reading
/// passed and the computation has taken the epochs before it. Epochs are numbered by the
/// wall clock (see [`follow_clock`]), and the source reads at most [`MAX_EPOCHS_AHEAD`] epochs
/// ahead of the computation, so a backlog waits in the broker, not in memory.
pub fn kafka_source<'s>(
    scope: Scope<'s, u64>,
    mut consumers: Consumers,
    topology: Arc<LiveTopology>,
    config: &PipelineConfig,
    stop: StopWhen,
    metrics: Metrics,
    backpressure: Backpressure,
) -> (Stream<'s, u64, Vec<Input>>, SourceHandles) {
    let Backpressure { paused, computed } = backpressure;
    let handles = SourceHandles {
        consumer: consumers.readings.clone(),
        epoch_started: Rc::default(),
        failed: Rc::default(),
        consumed: Rc::default(),
    };
    let total = handles.consumed.clone();
    let epoch_started = handles.epoch_started.clone();
    let failed = handles.failed.clone();
    let max_records = config.max_epoch_records;
    let max_wait = Duration::from_millis(config.max_epoch_millis);
    let idle_timeout = Duration::from_secs(config.idle_timeout_secs);
    let stream = source(scope, "KafkaSource", move |capability, info| {
        let activator = scope.activator_for(info.address);
        let mut capability = Some(capability);
        // Per owned partition: since when polling has returned nothing from it. Polling
        // gives every partition with data its turn, so a partition silent for the idle
        // timeout while the source kept polling has nothing to read. Pauses in polling
        // (backpressure, loading metadata) and failed polls (an unreachable broker) do
        // not count.
        let start = Instant::now();
        let mut silent: FastMap<PartitionKey, Instant> = consumers
            .owned
            .iter()
            .map(|key| (key.clone(), start))
            .collect();
        let mut generation = topology.generation();
        let mut last_poll = start;
        let mut consumed: FastMap<PartitionKey, u64> = FastMap::default();
        // A compacted topic may have lost its last offset; metadata loading gives up
        // waiting for it after this.
        let mut rooms_deadline = Instant::now() + ROOMS_LOAD_TIMEOUT;
        let mut queues = std::mem::take(&mut consumers.queues);
        // The queue that takes the first turn in the next round.
        let mut next_turn = 0;
        // The epoch being read: its records, how long the source spent reading them, and
        // when it started. It is read over several activations, so that the worker's
        // other operators (the previous epoch's windows, its writes) run in between.
        let mut reading: Option<(Vec<Input>, Duration, Instant)> = None;
        // The epochs this source gave records to that the computation has not passed yet.
        let mut outstanding: VecDeque<u64> = VecDeque::new();
        move |output| {
            let Some(cap) = capability.as_mut() else {
                return;
            };
            // A quarantined tenant is read no further: its partitions count as caught up.
            consumers.drop_quarantined(&paused);
            // Tenants added while running: their partitions join this worker's.
            if topology.generation() != generation {
                generation = topology.generation();
                let current = topology.get();
                let new: Vec<Served> = current
                    .tenants
                    .iter()
                    .filter(|s| !consumers.topics.contains_key(&s.tenant.rooms_topic()))
                    .cloned()
                    .collect();
                match consumers.add(&current, &new) {
                    Ok(added) => {
                        for s in &new {
                            tracing::info!(tenant = %s.tenant, partitions = added.iter().filter(|(t, _)| *t == s.tenant).count(), "serving a new tenant");
                        }
                        let now = Instant::now();
                        for key in added {
                            silent.insert(key, now);
                        }
                        queues.append(&mut consumers.queues);
                        rooms_deadline = now + ROOMS_LOAD_TIMEOUT;
                    }
                    Err(error) => {
                        tracing::error!(error = %rf_schemas::chain(&error), "cannot add the new tenants' partitions; stopping");
                        *failed.borrow_mut() = Some(rf_schemas::chain(&error));
                    }
                }
            }
            if let Some(until) = stop.event_time {
                consumers.stop_past(until, &stop.watermarks);
            }
            // An epoch being read goes out first: its records were taken off the queues.
            let stopping = reading.is_none()
                && (failed.borrow().is_some()
                    || stop.shutdown.load(Ordering::Relaxed)
                    || (stop.caught_up
                        && consumers.ends.is_empty()
                        && consumers.rooms_ends.is_empty()));
            if stopping {
                capability = None;
                return;
            }
            while outstanding.front().is_some_and(|e| !computed.less_equal(e)) {
                outstanding.pop_front();
            }
            if reading.is_none() && outstanding.len() >= MAX_EPOCHS_AHEAD {
                // Enough read ahead: wait for the computation, holding no epoch back.
                follow_clock(cap, max_wait);
                activator.activate_after(Duration::from_millis(1));
                return;
            }
            // Paced: wait while ahead of the rate, and read at most a tenth of a second's
            // worth ahead of it (a backlog would fill a whole epoch at once).
            let mut limit = max_records;
            if let Some(rate) = stop.max_rate {
                let ahead = start.elapsed() + PACE_BURST;
                let allowed = (ahead.as_secs_f64() * rate as f64) as u64;
                match allowed.checked_sub(total.get()) {
                    Some(budget) if budget > 0 => limit = limit.min(budget as usize),
                    _ => {
                        activator.activate_after(Duration::from_millis(10));
                        return;
                    }
                }
            }
            // Partitions added since the last activation resume before their records.
            let now = Instant::now();
            let (mut batch, read_before, first_at) =
                reading.take().unwrap_or((Vec::new(), Duration::ZERO, now));
            batch.append(&mut consumers.resuming);
            let slice_end = now + SLICE;
            // Until the catalog is loaded to where the rooms topics ended at start, only
            // room metadata is read: readings then find their rooms.
            if Instant::now() > rooms_deadline && !consumers.rooms_ends.is_empty() {
                tracing::warn!(
                    partitions = consumers.rooms_ends.len(),
                    "room metadata did not load completely in time; going on"
                );
                consumers.rooms_ends.clear();
            }
            let loading_rooms = !consumers.rooms_ends.is_empty();
            while batch.len() < max_records {
                let Some(message) = consumers.rooms.poll(Duration::ZERO) else {
                    break;
                };
                match message {
                    Ok(m) => {
                        let key = (m.topic().to_owned(), m.partition());
                        if consumers
                            .rooms_ends
                            .get(&key)
                            .is_some_and(|end| m.offset() + 1 >= *end)
                        {
                            consumers.rooms_ends.remove(&key);
                        }
                        batch.extend(
                            raw(&consumers.topics, &m, rf_schemas::unix_ms()).map(Input::Record),
                        );
                    }
                    Err(error) => tracing::warn!(%error, "polling room metadata failed"),
                }
            }
            // Readings: every owned partition in turn gives up to RECORDS_PER_TURN records,
            // until the epoch is full or its time is up. A tenant replaying a backlog then
            // fills epochs no faster than a live one, and the live one's records never wait
            // behind the backlog's prefetched ones.
            let mut epoch = Epoch {
                batch,
                first_at,
                consumed: &mut consumed,
                silent: &mut silent,
                poll_failed: false,
                received: rf_schemas::unix_ms(),
            };
            // Whether the partitions gave nothing more (the epoch then goes at once).
            let mut drained = false;
            while !loading_rooms && epoch.batch.len() < limit {
                let elapsed = read_before + now.elapsed();
                if elapsed >= max_wait || Instant::now() >= slice_end {
                    break;
                }
                let before = epoch.batch.len();
                // Records fetched before their partition's queue was split, and errors,
                // come through the consumer's own queue, which also serves its callbacks.
                // One clock read a round: records carry when they were read, to a few ms.
                epoch.received = rf_schemas::unix_ms();
                while let Some(message) = consumers.readings.poll(Duration::ZERO) {
                    epoch.take(None, &consumers.topics, &mut consumers.ends, message);
                }
                let n = queues.len();
                for i in 0..n {
                    // Backpressure, per tenant: one whose records wait for a schema or
                    // whose stores are behind is not read meanwhile; the others are.
                    let (tenant, queue) = &queues[(next_turn + i) % n];
                    if paused.contains(tenant) {
                        continue;
                    }
                    let turn = RECORDS_PER_TURN.min(limit.saturating_sub(epoch.batch.len()));
                    for _ in 0..turn {
                        let Some(message) = queue.poll(Duration::ZERO) else {
                            break;
                        };
                        epoch.take(
                            Some(tenant),
                            &consumers.topics,
                            &mut consumers.ends,
                            message,
                        );
                    }
                    if epoch.batch.len() >= limit {
                        next_turn = (next_turn + i + 1) % n;
                        break;
                    }
                }
                if epoch.batch.len() == before {
                    drained = true;
                    if !epoch.batch.is_empty() {
                        break;
                    }
                    // Nothing anywhere: wait a moment, serving callbacks meanwhile.
                    if let Some(message) = consumers.readings.poll(
                        max_wait
                            .saturating_sub(elapsed)
                            .min(Duration::from_millis(1)),
                    ) {
                        epoch.received = rf_schemas::unix_ms();
                        epoch.take(None, &consumers.topics, &mut consumers.ends, message);
                    }
                }
            }
            let Epoch {
                mut batch,
                first_at,
                poll_failed,
                ..
            } = epoch;
            // Silent partitions are marked idle, again every timeout while they stay so.
            if !loading_rooms {
                let now = Instant::now();
                // Partitions of paused tenants are not asked, so not silent either.
                let held = &paused;
                let paused = poll_failed || now.duration_since(last_poll) > max_wait + IDLE_PAUSE;
                last_poll = now;
                for ((tenant, partition), since) in &mut silent {
                    if paused || held.contains(tenant) {
                        *since = now;
                    } else if now.duration_since(*since) >= idle_timeout {
                        *since = now;
                        batch.push(Input::Idle {
                            tenant: tenant.clone(),
                            partition: *partition,
                        });
                    }
                }
            }
            if loading_rooms && batch.is_empty() {
                std::thread::sleep(Duration::from_millis(10));
            }
            // An epoch is complete when full, or when the source spent an epoch's time
            // reading it (or the partitions gave all they had) and the computation took
            // every earlier one: while that is busy, the epoch grows instead, which costs
            // no latency and spreads the cost of an epoch's outputs over more readings.
            let read = read_before + now.elapsed();
            let complete = batch.len() >= limit
                || loading_rooms
                || (outstanding.is_empty() && (drained || read >= max_wait));
            if !batch.is_empty() && !complete {
                // Read on at the next activation, at the same epoch.
                reading = Some((batch, read, first_at));
            } else if !batch.is_empty() {
                for ((tenant, partition), n) in consumed.drain() {
                    total.set(total.get() + n);
                    metrics
                        .consumed
                        .with_label_values(&[tenant.as_str(), &partition.to_string()])
                        .inc_by(n);
                }
                let epoch = *cap.time();
                epoch_started
                    .borrow_mut()
                    .insert(epoch, (first_at, Instant::now()));
                output.session(cap).give_iterator(batch.into_iter());
                outstanding.push_back(epoch);
                cap.downgrade(&(epoch + 1));
            }
            if reading.is_none() {
                // Nothing read, or the next epoch: this worker holds no earlier one back.
                follow_clock(cap, max_wait);
            }
            activator.activate();
        }
    });
    (stream, handles)
}

/// Moves `cap` up to the epoch of the wall clock's current slot of length `epoch`, if it
/// is behind. Epochs are numbered by wall-clock time, the same on every worker: an epoch
/// is complete once every worker's source is past it, so a per-worker count would make
/// the busiest worker's epochs wait for the others to count as far (epoch numbers drift
/// apart by seconds under load).
fn follow_clock(cap: &mut Capability<u64>, epoch: Duration) {
    let slot = rf_schemas::unix_ms().max(0) as u64 / (epoch.as_millis() as u64).max(1);
    if slot > *cap.time() {
        cap.downgrade(&slot);
    }
}

/// How many of the epochs a source gave records to may wait for the computation before
/// it reads another: one being computed, one being handed over.
const MAX_EPOCHS_AHEAD: usize = 2;

/// How long one activation of the source reads at most before the worker's other
/// operators get their turn; an epoch is read over several.
const SLICE: Duration = Duration::from_millis(5);

/// Records one partition gives an epoch per turn.
const RECORDS_PER_TURN: usize = 256;
/// How far ahead of its rate a paced source reads.
const PACE_BURST: Duration = Duration::from_millis(100);

/// An epoch's readings as they are polled.
struct Epoch<'a> {
    batch: Vec<Input>,
    /// When its first reading was consumed: its latency counts from there.
    first_at: Instant,
    consumed: &'a mut FastMap<PartitionKey, u64>,
    silent: &'a mut FastMap<PartitionKey, Instant>,
    /// Whether a poll failed (the broker may be unreachable: silence means nothing now).
    poll_failed: bool,
    /// The consumer's clock for the records taken now, ms.
    received: i64,
}

impl Epoch<'_> {
    /// Takes one polled readings message: of `tenant`'s readings topic when it came from
    /// the tenant's partition queue, else of the topic it names.
    fn take(
        &mut self,
        tenant: Option<&TenantId>,
        topics: &HashMap<String, (TenantId, Topic)>,
        ends: &mut FastMap<PartitionKey, i64>,
        message: rdkafka::error::KafkaResult<rdkafka::message::BorrowedMessage<'_>>,
    ) {
        let m = match message {
            Ok(m) => m,
            Err(error) => {
                self.poll_failed = true;
                tracing::warn!(%error, "polling readings failed");
                return;
            }
        };
        let record = match tenant {
            Some(tenant) => record(tenant, Topic::Readings, &m, self.received),
            None => match raw(topics, &m, self.received) {
                Some(record) => record,
                None => return,
            },
        };
        let key = (record.tenant.clone(), record.partition);
        if ends.get(&key).is_some_and(|end| record.offset + 1 >= *end) {
            ends.remove(&key);
        }
        if self.batch.is_empty() {
            self.first_at = Instant::now();
        }
        if let Some(since) = self.silent.get_mut(&key) {
            *since = self.first_at.max(*since);
        }
        *self.consumed.entry(key).or_default() += 1;
        self.batch.push(Input::Record(record));
    }
}

/// The record of a message of a topic the consumer was assigned, read at `received`.
fn raw(
    topics: &HashMap<String, (TenantId, Topic)>,
    m: &rdkafka::message::BorrowedMessage<'_>,
    received: i64,
) -> Option<RawRecord> {
    let Some((tenant, topic)) = topics.get(m.topic()) else {
        tracing::warn!(
            topic = m.topic(),
            "a message of a topic not assigned; skipped"
        );
        return None;
    };
    Some(record(tenant, *topic, m, received))
}

/// The record of a message of `tenant`'s `topic`, read at `received`.
fn record(
    tenant: &TenantId,
    topic: Topic,
    m: &rdkafka::message::BorrowedMessage<'_>,
    received: i64,
) -> RawRecord {
    RawRecord {
        tenant: tenant.clone(),
        topic,
        partition: m.partition(),
        offset: m.offset(),
        timestamp: m.timestamp().to_millis().unwrap_or(0),
        received,
        key: m.key().map(<[u8]>::to_vec),
        value: m.payload().map(<[u8]>::to_vec),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn served(tenant: &str, readings: i32) -> Served {
        Served {
            tenant: TenantId::parse(tenant).unwrap(),
            readings,
            rooms: 1,
            bookings: 0,
            region: 0,
        }
    }

    #[test]
    fn partitions_spread_over_all_workers() {
        let topology = Topology {
            tenants: vec![served("acme", 12), served("globex", 12)],
            regions: vec!["default".into()],
            ..Default::default()
        };
        let mut all: Vec<_> = (0..3).flat_map(|w| topology.readings_for(w, 3)).collect();
        for w in 0..3 {
            assert_eq!(topology.readings_for(w, 3).len(), 8, "worker {w}");
        }
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 24);
    }

    #[test]
    fn a_tenant_added_later_lands_where_every_worker_expects_it() {
        let before = Topology {
            tenants: vec![served("acme", 12)],
            regions: vec!["default".into()],
            ..Default::default()
        };
        let found = Topology {
            tenants: vec![served("acme", 12), served("globex", 5)],
            regions: vec!["default".into()],
            ..Default::default()
        };
        let after = before.merged(&found).unwrap();
        assert!(
            after.merged(&found).is_none(),
            "nothing new the second time"
        );
        for w in 0..2 {
            let mine = after.readings_for(w, 2);
            let acme: Vec<_> = mine.iter().filter(|(t, _)| t.as_str() == "acme").collect();
            let was: Vec<_> = before.readings_for(w, 2);
            assert_eq!(acme, was.iter().collect::<Vec<_>>(), "acme stays put");
        }
        let live = LiveTopology::new(before);
        let g = live.generation();
        assert_eq!(
            live.update(&found),
            vec![TenantId::parse("globex").unwrap()]
        );
        assert!(live.generation() > g);
        assert_eq!(
            live.get().region_of(&TenantId::parse("globex").unwrap()),
            Some(0)
        );
        assert!(live.update(&found).is_empty());
    }

    /// The source against a mock broker (librdkafka's own), its records held by a
    /// stand-in computation that passes no epoch until it is opened.
    #[test]
    fn the_source_reads_at_most_two_epochs_ahead_of_the_computation_and_loses_nothing() {
        use rdkafka::mocking::MockCluster;
        use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
        use timely::dataflow::channels::pact::Pipeline;
        use timely::dataflow::operators::generic::Operator;
        use timely::dataflow::operators::{Inspect, Probe};

        const RECORDS: u32 = 3_000;
        let cluster = MockCluster::new(1).unwrap();
        let tenant = TenantId::parse("acme").unwrap();
        cluster
            .create_topic(&tenant.readings_topic(), 2, 1)
            .unwrap();
        cluster.create_topic(&tenant.rooms_topic(), 1, 1).unwrap();
        let producer: BaseProducer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", cluster.bootstrap_servers())
            .create()
            .unwrap();
        let topic = tenant.readings_topic();
        for i in 0..RECORDS {
            let payload = i.to_be_bytes();
            let record = BaseRecord::<(), _>::to(&topic)
                .partition((i % 2) as i32)
                .payload(&payload);
            producer.send(record).unwrap();
        }
        producer.flush(Duration::from_secs(10)).unwrap();

        let kafka = KafkaConfig {
            brokers: cluster.bootstrap_servers(),
            group_id: "source-test".into(),
            ..KafkaConfig::default()
        };
        let topology = Topology {
            tenants: vec![Served {
                tenant: tenant.clone(),
                readings: 2,
                rooms: 1,
                bookings: 0,
                region: 0,
            }],
            regions: vec!["default".into()],
            ..Default::default()
        };
        let metrics = Metrics::new();
        let consumers =
            Consumers::assign(&kafka, &topology, 0, 1, Arc::default(), &metrics).unwrap();
        let config = PipelineConfig {
            max_epoch_records: 100,
            max_epoch_millis: 20,
            ..PipelineConfig::default()
        };
        timely::execute_directly(move |worker| {
            let stop = StopWhen {
                caught_up: true,
                shutdown: Arc::default(),
                event_time: None,
                watermarks: AggregateView::default(),
                max_rate: None,
            };
            let computed = ProbeHandle::new();
            let open = Rc::new(Cell::new(false));
            let held = Rc::new(RefCell::new(BTreeMap::<u64, usize>::new()));
            let passed = Rc::new(RefCell::new(Vec::<(i32, i64)>::new()));
            worker.dataflow::<u64, _, _>(|scope| {
                let backpressure = Backpressure {
                    paused: Paused::default(),
                    computed: computed.clone(),
                };
                let (records, _) = kafka_source(
                    scope,
                    consumers,
                    Arc::new(LiveTopology::new(topology)),
                    &config,
                    stop,
                    metrics,
                    backpressure,
                );
                let (gate, counts) = (open.clone(), held.clone());
                let mut stash = BTreeMap::new();
                let through: Stream<'_, u64, Vec<Input>> =
                    records.unary_frontier(Pipeline, "Held", move |_, _| {
                        move |(input, frontier), output| {
                            input.for_each_stamp(|cap, data| {
                                let Some(cap) = cap.retain_least(output.output_index()) else {
                                    return;
                                };
                                let epoch = *cap.time();
                                let (_, inputs): &mut (_, Vec<Input>) =
                                    stash.entry(epoch).or_insert_with(|| (cap, Vec::new()));
                                for batch in data {
                                    *counts.borrow_mut().entry(epoch).or_default() += batch.len();
                                    inputs.append(batch);
                                }
                            });
                            while gate.get() {
                                let Some(entry) = stash.first_entry() else {
                                    break;
                                };
                                if frontier.less_equal(entry.key()) {
                                    break;
                                }
                                let (cap, inputs) = entry.remove();
                                output.session(&cap).give_iterator(inputs.into_iter());
                            }
                        }
                    });
                through
                    .inspect({
                        let passed = passed.clone();
                        move |input: &Input| {
                            if let Input::Record(r) = input {
                                passed.borrow_mut().push((r.partition, r.offset));
                            }
                        }
                    })
                    .probe_with(&computed);
            });
            // Closed: the source reads two epochs and the start of a third, no more.
            let until = Instant::now() + Duration::from_secs(3);
            while Instant::now() < until {
                worker.step_or_park(Some(Duration::from_millis(1)));
            }
            let held_back: usize = held.borrow().values().sum();
            assert!(
                held.borrow().len() <= MAX_EPOCHS_AHEAD,
                "{:?}",
                held.borrow()
            );
            assert!(
                (1..=MAX_EPOCHS_AHEAD * 100).contains(&held_back),
                "{held_back} records read ahead"
            );
            // Opened: everything comes through, once each, in offset order per partition.
            open.set(true);
            let until = Instant::now() + Duration::from_secs(30);
            while !computed.done() && Instant::now() < until {
                worker.step_or_park(Some(Duration::from_millis(1)));
            }
            assert!(computed.done(), "the source stops once caught up");
            let passed = passed.borrow();
            assert_eq!(passed.len(), RECORDS as usize);
            for partition in 0..2 {
                let offsets: Vec<i64> = passed
                    .iter()
                    .filter(|(p, _)| *p == partition)
                    .map(|(_, o)| *o)
                    .collect();
                let expected: Vec<i64> = (0..i64::from(RECORDS / 2)).collect();
                assert_eq!(offsets, expected, "partition {partition}");
            }
        });
    }
}
