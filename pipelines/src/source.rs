//! The Kafka source: which partitions each worker owns, the consumers, and the timely
//! source operator that turns polls into epochs.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use timely::dataflow::operators::generic::operator::source;
use timely::dataflow::{Scope, Stream};

use rf_operators::{Aggregator, Input, RawRecord, Topic};
use rf_schemas::TenantId;

use crate::checkpoint::Resume;
use crate::config::{KafkaConfig, PipelineConfig};
use crate::metrics::Metrics;
use crate::PipelineError;

/// The tenants a pipeline serves and their partition counts.
#[derive(Clone, Debug)]
pub struct Topology {
    /// `(tenant, readings partitions, rooms partitions)`, sorted by tenant.
    pub tenants: Vec<(TenantId, i32, i32)>,
}

impl Topology {
    /// Finds every tenant with an `occupancy.<tenant>` topic (or only `wanted`, when given).
    pub fn discover(kafka: &KafkaConfig, wanted: &[String]) -> Result<Self, PipelineError> {
        let consumer: BaseConsumer = kafka
            .client_config()
            .create()
            .map_err(|e| PipelineError::Kafka(format!("cannot create a consumer: {e}")))?;
        let metadata = consumer
            .fetch_metadata(None, Duration::from_secs(kafka.timeout_secs))
            .map_err(|e| {
                PipelineError::Kafka(format!("cannot list topics at {}: {e}", kafka.brokers))
            })?;
        let partitions: HashMap<&str, i32> = metadata
            .topics()
            .iter()
            .map(|t| (t.name(), t.partitions().len() as i32))
            .collect();
        let mut tenants = Vec::new();
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
            let rooms = partitions
                .get(tenant.rooms_topic().as_str())
                .copied()
                .unwrap_or(0);
            tenants.push((tenant, count, rooms));
        }
        tenants.sort();
        for w in wanted {
            if !tenants.iter().any(|(t, _, _)| t.as_str() == w) {
                return Err(PipelineError::Kafka(format!(
                    "tenant {w} has no topic occupancy.{w}; create it with `roomflow tenant create {w}`"
                )));
            }
        }
        Ok(Self { tenants })
    }

    /// The readings partitions worker `index` of `peers` owns: every `peers`-th of the
    /// sorted list, so that partitions spread evenly over the workers of every process.
    pub fn readings_for(&self, index: usize, peers: usize) -> Vec<(TenantId, i32)> {
        self.tenants
            .iter()
            .flat_map(|(t, n, _)| (0..*n).map(move |p| (t.clone(), p)))
            .enumerate()
            .filter(|(i, _)| i % peers == index)
            .map(|(_, tp)| tp)
            .collect()
    }
}

/// Epochs read but not yet written by the sinks, at most.
const MAX_IN_FLIGHT: u64 = 2;

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
    pub consumer: Rc<ReadingsConsumer>,
    /// When each epoch's first record was consumed.
    pub epoch_started: Rc<RefCell<BTreeMap<u64, Instant>>>,
    /// Set when the sink failed for good: the source stops.
    pub failed: Rc<RefCell<Option<String>>>,
    /// Readings consumed so far.
    pub consumed: Rc<Cell<u64>>,
    /// Every epoch below this is written by the sinks (set by the sink operator).
    pub written_before: Rc<Cell<u64>>,
}

/// One worker's consumers, assigned and positioned.
pub struct Consumers {
    readings: Rc<ReadingsConsumer>,
    rooms: BaseConsumer,
    topics: HashMap<String, (TenantId, Topic)>,
    /// Where each owned readings partition ended when the run started.
    ends: HashMap<(String, i32), i64>,
    /// Every owned readings partition.
    owned: HashMap<(String, i32), TenantId>,
    /// Where each rooms partition ends now: the catalog is loaded up to here first.
    rooms_ends: HashMap<(String, i32), i64>,
}

impl Consumers {
    /// Assigns worker `index`'s readings partitions where their checkpoints say (restoring
    /// each partition's aggregation state), else at the group's committed offsets, else
    /// from the beginning; and every rooms partition from the beginning.
    pub fn assign(
        kafka: &KafkaConfig,
        topology: &Topology,
        index: usize,
        peers: usize,
        resumes: &HashMap<(String, i32), Resume>,
        aggregator: &mut Aggregator,
        metrics: &Metrics,
    ) -> Result<Self, PipelineError> {
        let timeout = Duration::from_secs(kafka.timeout_secs);
        let kerr = |what: &str, e: rdkafka::error::KafkaError| {
            PipelineError::Kafka(format!("{what}: {e}"))
        };
        let mut config = kafka.consumer_config(&kafka.group_id);
        config
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest");
        let readings: ReadingsConsumer = config
            .clone()
            .set("statistics.interval.ms", "5000")
            .create_with_context(LagContext {
                metrics: metrics.clone(),
            })
            .map_err(|e| kerr("cannot create the readings consumer", e))?;
        let rooms: BaseConsumer = config
            .create()
            .map_err(|e| kerr("cannot create the rooms consumer", e))?;

        let mut topics = HashMap::new();
        let mut wanted = TopicPartitionList::new();
        for (tenant, partition) in topology.readings_for(index, peers) {
            topics.insert(tenant.readings_topic(), (tenant.clone(), Topic::Readings));
            wanted.add_partition(&tenant.readings_topic(), partition);
        }
        let committed = if wanted.count() == 0 {
            TopicPartitionList::new()
        } else {
            readings
                .committed_offsets(wanted, timeout)
                .map_err(|e| kerr("cannot read committed offsets", e))?
        };
        let mut assignment = TopicPartitionList::new();
        let mut ends = HashMap::new();
        let mut owned = HashMap::new();
        for elem in committed.elements() {
            let (tenant, _) = &topics[elem.topic()];
            let (low, high) = readings
                .fetch_watermarks(elem.topic(), elem.partition(), timeout)
                .map_err(|e| kerr("cannot read partition ends", e))?;
            let resume = resumes.get(&(elem.topic().to_owned(), elem.partition()));
            let (start, first) = match (resume, elem.offset()) {
                (Some(r), _) => {
                    tracing::info!(
                        tenant = %tenant,
                        partition = elem.partition(),
                        offset = r.offset,
                        watermark = r.watermark,
                        "resuming from the checkpoint"
                    );
                    aggregator.restore(
                        tenant,
                        elem.partition(),
                        r.watermark,
                        r.processed_until,
                        r.final_watermark,
                    );
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
            if first < high {
                ends.insert((elem.topic().to_owned(), elem.partition()), high);
            }
            owned.insert((elem.topic().to_owned(), elem.partition()), tenant.clone());
        }
        readings
            .assign(&assignment)
            .map_err(|e| kerr("cannot assign partitions", e))?;

        let mut rooms_assignment = TopicPartitionList::new();
        let mut rooms_ends = HashMap::new();
        for (tenant, _, n) in &topology.tenants {
            topics.insert(tenant.rooms_topic(), (tenant.clone(), Topic::Rooms));
            // Room versions that every checkpointed partition's worker had applied to final
            // rows are not applied again; without a checkpoint no final row was written.
            let readings_topic = tenant.readings_topic();
            let checkpointed: Vec<&Resume> = resumes
                .iter()
                .filter(|((topic, _), _)| *topic == readings_topic)
                .map(|(_, r)| r)
                .collect();
            for p in 0..*n {
                rooms_assignment
                    .add_partition_offset(&tenant.rooms_topic(), p, Offset::Beginning)
                    .map_err(|e| kerr("bad offset", e))?;
                let (low, high) = rooms
                    .fetch_watermarks(&tenant.rooms_topic(), p, timeout)
                    .map_err(|e| kerr("cannot read rooms partition ends", e))?;
                if high > low {
                    rooms_ends.insert((tenant.rooms_topic(), p), high);
                }
                let applied = checkpointed
                    .iter()
                    .map(|r| r.rooms.iter().find(|(q, _)| *q == p).map_or(0, |(_, o)| *o))
                    .min()
                    .unwrap_or(high);
                aggregator.restate_from(tenant, p, applied);
            }
        }
        rooms
            .assign(&rooms_assignment)
            .map_err(|e| kerr("cannot assign rooms partitions", e))?;
        Ok(Self {
            readings: Rc::new(readings),
            rooms,
            topics,
            ends,
            owned,
            rooms_ends,
        })
    }
}

/// The source operator: each activation polls up to one epoch of records (room metadata
/// first), emits them at the current epoch and moves on to the next.
pub fn kafka_source<'s>(
    scope: Scope<'s, u64>,
    consumers: Consumers,
    config: &PipelineConfig,
    stop: StopWhen,
    metrics: Metrics,
) -> (Stream<'s, u64, Vec<Input>>, SourceHandles) {
    let handles = SourceHandles {
        consumer: consumers.readings.clone(),
        epoch_started: Rc::default(),
        failed: Rc::default(),
        consumed: Rc::default(),
        written_before: Rc::default(),
    };
    let written_before = handles.written_before.clone();
    let total = handles.consumed.clone();
    let epoch_started = handles.epoch_started.clone();
    let failed = handles.failed.clone();
    let max_records = config.max_epoch_records;
    let max_wait = Duration::from_millis(config.max_epoch_millis);
    let idle_timeout = Duration::from_secs(config.idle_timeout_secs);
    let stream = source(scope, "KafkaSource", move |capability, info| {
        let activator = scope.activator_for(info.address);
        let mut capability = Some(capability);
        let Consumers {
            readings,
            rooms,
            topics,
            mut ends,
            owned,
            mut rooms_ends,
        } = consumers;
        // Per owned partition: since when polling has returned nothing from it. Polling
        // gives every partition with data its turn, so a partition silent for the idle
        // timeout while the source kept polling has nothing to read. Pauses in polling
        // (backpressure, loading metadata) and failed polls (an unreachable broker) do
        // not count.
        let start = Instant::now();
        let mut silent: HashMap<(String, i32), (TenantId, Instant)> = owned
            .into_iter()
            .map(|(key, tenant)| (key, (tenant, start)))
            .collect();
        let mut last_poll = start;
        let mut consumed: HashMap<(TenantId, i32), u64> = HashMap::new();
        // A compacted topic may have lost its last offset; metadata loading gives up
        // waiting for it after this.
        let rooms_deadline = Instant::now() + ROOMS_LOAD_TIMEOUT;
        move |output| {
            let Some(cap) = capability.as_mut() else {
                return;
            };
            // Backpressure: at most MAX_IN_FLIGHT epochs between this source and the
            // sinks' acknowledgement, so memory does not grow when the sinks are slower
            // than the broker.
            if *cap.time() >= written_before.get() + MAX_IN_FLIGHT {
                // Look again in a millisecond rather than spin: the sinks share the cores.
                activator.activate_after(Duration::from_millis(1));
                return;
            }
            let stopping = failed.borrow().is_some()
                || stop.shutdown.load(Ordering::Relaxed)
                || (stop.caught_up && ends.is_empty() && rooms_ends.is_empty());
            if stopping {
                capability = None;
                return;
            }
            let mut batch = Vec::new();
            let started = Instant::now();
            // When the epoch's first record was consumed: its latency counts from there.
            let mut first_at = started;
            // Until the catalog is loaded to where the rooms topics ended at start, only
            // room metadata is read: readings then find their rooms.
            if Instant::now() > rooms_deadline && !rooms_ends.is_empty() {
                tracing::warn!(
                    partitions = rooms_ends.len(),
                    "room metadata did not load completely in time; going on"
                );
                rooms_ends.clear();
            }
            let loading_rooms = !rooms_ends.is_empty();
            let mut poll_failed = false;
            while batch.len() < max_records {
                let Some(message) = rooms.poll(Duration::ZERO) else {
                    break;
                };
                match message {
                    Ok(m) => {
                        let key = (m.topic().to_owned(), m.partition());
                        if rooms_ends
                            .get(&key)
                            .is_some_and(|end| m.offset() + 1 >= *end)
                        {
                            rooms_ends.remove(&key);
                        }
                        batch.push(Input::Record(raw(&topics, &m)));
                    }
                    Err(error) => tracing::warn!(%error, "polling room metadata failed"),
                }
            }
            while !loading_rooms && batch.len() < max_records {
                // Reading the clock per record costs more than the record; every 256 do.
                let wait = if batch.is_empty() || batch.len() % 256 == 0 {
                    let elapsed = started.elapsed();
                    if elapsed >= max_wait {
                        break;
                    }
                    if batch.is_empty() {
                        (max_wait - elapsed).min(Duration::from_millis(50))
                    } else {
                        Duration::ZERO
                    }
                } else {
                    Duration::ZERO
                };
                let Some(message) = readings.poll(wait) else {
                    break;
                };
                match message {
                    Ok(m) => {
                        let key = (m.topic().to_owned(), m.partition());
                        if ends.get(&key).is_some_and(|end| m.offset() + 1 >= *end) {
                            ends.remove(&key);
                        }
                        if let Some((_, since)) = silent.get_mut(&key) {
                            *since = Instant::now();
                        }
                        if batch.is_empty() {
                            first_at = Instant::now();
                        }
                        let record = raw(&topics, &m);
                        *consumed
                            .entry((record.tenant.clone(), record.partition))
                            .or_default() += 1;
                        batch.push(Input::Record(record));
                    }
                    Err(error) => {
                        // The broker may be unreachable: silence means nothing now.
                        poll_failed = true;
                        tracing::warn!(%error, "polling readings failed");
                    }
                }
            }
            // Silent partitions are marked idle, again every timeout while they stay so.
            if !loading_rooms {
                let now = Instant::now();
                let paused = poll_failed || now.duration_since(last_poll) > max_wait + IDLE_PAUSE;
                last_poll = now;
                for ((_, partition), (tenant, since)) in &mut silent {
                    if paused {
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
            if !batch.is_empty() {
                for ((tenant, partition), n) in consumed.drain() {
                    total.set(total.get() + n);
                    metrics
                        .consumed
                        .with_label_values(&[tenant.as_str(), &partition.to_string()])
                        .inc_by(n);
                }
                let epoch = *cap.time();
                epoch_started.borrow_mut().insert(epoch, first_at);
                output.session(cap).give_iterator(batch.into_iter());
                cap.downgrade(&(epoch + 1));
            }
            activator.activate();
        }
    });
    (stream, handles)
}

fn raw(
    topics: &HashMap<String, (TenantId, Topic)>,
    m: &rdkafka::message::BorrowedMessage<'_>,
) -> RawRecord {
    let (tenant, topic) = topics[m.topic()].clone();
    RawRecord {
        tenant,
        topic,
        partition: m.partition(),
        offset: m.offset(),
        timestamp: m.timestamp().to_millis().unwrap_or(0),
        key: m.key().map(<[u8]>::to_vec),
        value: m.payload().map(<[u8]>::to_vec),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_spread_over_all_workers() {
        let t = |s| TenantId::parse(s).unwrap();
        let topology = Topology {
            tenants: vec![(t("acme"), 3, 1), (t("globex"), 2, 1)],
        };
        let all: Vec<_> = (0..2).flat_map(|w| topology.readings_for(w, 2)).collect();
        assert_eq!(all.len(), 5);
        assert_eq!(topology.readings_for(0, 2).len(), 3);
        assert_eq!(
            topology.readings_for(1, 2),
            vec![(t("acme"), 1), (t("globex"), 0)]
        );
    }
}
