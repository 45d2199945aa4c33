//! The broker's ceiling: plain consumers read the backlog as fast as the broker serves
//! it, and keep the records in memory for the in-memory stage.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::BorrowedMessage;
use rdkafka::{Message, Offset, TopicPartitionList};

use rf_operators::{RawRecord, Topic};
use rf_pipelines::KafkaConfig;
use rf_schemas::TenantId;

use rf_jobs::JobError;

/// One partition's records, packed: their bytes in one buffer.
#[derive(Default)]
pub struct Log {
    bytes: Vec<u8>,
    entries: Vec<Entry>,
}

struct Entry {
    offset: i64,
    timestamp: i64,
    key: Option<Range<usize>>,
    value: Option<Range<usize>>,
}

impl Log {
    fn push(&mut self, m: &BorrowedMessage<'_>) {
        let timestamp = m.timestamp().to_millis().unwrap_or(0);
        self.push_parts(m.offset(), timestamp, m.key(), m.payload());
    }

    /// Appends a record.
    pub fn push_parts(
        &mut self,
        offset: i64,
        timestamp: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
    ) {
        let mut keep = |b: &[u8]| {
            let start = self.bytes.len();
            self.bytes.extend_from_slice(b);
            start..self.bytes.len()
        };
        let key = key.map(&mut keep);
        let value = value.map(&mut keep);
        self.entries.push(Entry {
            offset,
            timestamp,
            key,
            value,
        });
    }

    /// Records held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Record `i` as the Kafka source would hand it over (its bytes copied out).
    pub fn record(&self, i: usize, tenant: &TenantId, topic: Topic, partition: i32) -> RawRecord {
        let e = &self.entries[i];
        RawRecord {
            tenant: tenant.clone(),
            topic,
            partition,
            offset: e.offset,
            timestamp: e.timestamp,
            // Read now, as the Kafka source stamps each record it reads.
            received: rf_schemas::unix_ms(),
            key: e.key.clone().map(|r| self.bytes[r].to_vec()),
            value: e.value.clone().map(|r| self.bytes[r].to_vec()),
        }
    }

    /// Bytes held.
    pub fn footprint(&self) -> usize {
        self.bytes.capacity() + self.entries.capacity() * std::mem::size_of::<Entry>()
    }
}

/// A tenant's topics as read.
pub struct Captured {
    /// The tenant.
    pub tenant: TenantId,
    /// Its rooms topic, by partition.
    pub rooms: BTreeMap<i32, Log>,
    /// Its readings topic, by partition.
    pub readings: BTreeMap<i32, Log>,
}

impl Captured {
    /// Bytes held.
    pub fn footprint(&self) -> usize {
        self.rooms
            .values()
            .chain(self.readings.values())
            .map(Log::footprint)
            .sum()
    }
}

/// How fast the plain consumers read.
#[derive(Debug)]
pub struct ConsumeReport {
    /// Readings read.
    pub readings: u64,
    /// Their payload and key bytes.
    pub bytes: u64,
    /// From the first poll to the last record, over every consumer.
    pub elapsed: Duration,
}

/// Reads `tenant`'s readings topic to its end with `threads` consumers splitting the
/// partitions (one per pipeline worker), and its rooms topic.
pub fn consume(
    kafka: &KafkaConfig,
    tenant: &TenantId,
    threads: usize,
) -> Result<(Captured, ConsumeReport), JobError> {
    let timeout = Duration::from_secs(kafka.timeout_secs);
    let rooms = read_all(kafka, &tenant.rooms_topic(), timeout)?;
    let partitions = partitions(kafka, &tenant.readings_topic(), timeout)?;
    let start = Barrier::new(threads);
    type Done = (BTreeMap<i32, Log>, Instant, Instant);
    let results: Vec<Result<Done, JobError>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|i| {
                let mine: Vec<i32> = partitions
                    .iter()
                    .copied()
                    .filter(|p| *p as usize % threads == i)
                    .collect();
                let start = &start;
                let topic = tenant.readings_topic();
                s.spawn(move || -> Result<_, JobError> {
                    let consumer = assign(kafka, &topic, &mine, timeout)?;
                    start.wait();
                    let began = Instant::now();
                    let logs = drain(&consumer, &topic, &mine, timeout)?;
                    Ok((logs, began, Instant::now()))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("consumer threads do not panic"))
            .collect()
    });
    let mut readings = BTreeMap::new();
    let (mut began, mut ended) = (None::<Instant>, None::<Instant>);
    for result in results {
        let (logs, start, end) = result?;
        began = Some(began.map_or(start, |b| b.min(start)));
        ended = Some(ended.map_or(end, |e| e.max(end)));
        readings.extend(logs);
    }
    let captured = Captured {
        tenant: tenant.clone(),
        rooms,
        readings,
    };
    let report = ConsumeReport {
        readings: captured.readings.values().map(|l| l.len() as u64).sum(),
        bytes: captured
            .readings
            .values()
            .map(|l| l.bytes.len() as u64)
            .sum(),
        elapsed: match (began, ended) {
            (Some(b), Some(e)) => e - b,
            _ => Duration::ZERO,
        },
    };
    Ok((captured, report))
}

fn partitions(kafka: &KafkaConfig, topic: &str, timeout: Duration) -> Result<Vec<i32>, JobError> {
    let consumer: BaseConsumer = kafka.client_config().create()?;
    let metadata = consumer
        .fetch_metadata(Some(topic), timeout)
        .map_err(|e| JobError::kafka(format!("metadata of {topic}"), e))?;
    Ok(metadata
        .topics()
        .iter()
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect())
}

fn assign(
    kafka: &KafkaConfig,
    topic: &str,
    partitions: &[i32],
    timeout: Duration,
) -> Result<BaseConsumer, JobError> {
    let consumer: BaseConsumer = kafka.consumer_config("roomflow-bench-ceiling").create()?;
    let mut list = TopicPartitionList::new();
    for &p in partitions {
        list.add_partition_offset(topic, p, Offset::Beginning)?;
    }
    consumer
        .assign(&list)
        .map_err(|e| JobError::kafka(format!("assigning {topic}"), e))?;
    // Fail early on an unreachable broker rather than in the timed part.
    consumer
        .fetch_watermarks(topic, partitions.first().copied().unwrap_or(0), timeout)
        .map_err(|e| JobError::kafka(format!("watermarks of {topic}"), e))?;
    Ok(consumer)
}

/// Polls until every partition is read to the end it had when this started.
fn drain(
    consumer: &BaseConsumer,
    topic: &str,
    partitions: &[i32],
    timeout: Duration,
) -> Result<BTreeMap<i32, Log>, JobError> {
    let mut remaining = BTreeMap::new();
    for &p in partitions {
        let (low, high) = consumer
            .fetch_watermarks(topic, p, timeout)
            .map_err(|e| JobError::kafka(format!("watermarks of {topic}/{p}"), e))?;
        if high > low {
            remaining.insert(p, high);
        }
    }
    let mut logs: BTreeMap<i32, Log> = partitions.iter().map(|&p| (p, Log::default())).collect();
    let mut last_progress = Instant::now();
    while !remaining.is_empty() {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                last_progress = Instant::now();
                let p = m.partition();
                logs.get_mut(&p).expect("assigned").push(&m);
                if remaining
                    .get(&p)
                    .is_some_and(|&high| m.offset() + 1 >= high)
                {
                    remaining.remove(&p);
                }
            }
            Some(Err(e)) => return Err(JobError::kafka(format!("reading {topic}"), e)),
            None if last_progress.elapsed() > timeout => {
                return Err(JobError::Topics(format!(
                    "reading {topic}: no record for {} s with partitions {:?} unfinished",
                    timeout.as_secs(),
                    remaining.keys().collect::<Vec<_>>()
                )))
            }
            None => {}
        }
    }
    Ok(logs)
}

/// Reads a whole (small) topic.
fn read_all(
    kafka: &KafkaConfig,
    topic: &str,
    timeout: Duration,
) -> Result<BTreeMap<i32, Log>, JobError> {
    let partitions = partitions(kafka, topic, timeout)?;
    let consumer = assign(kafka, topic, &partitions, timeout)?;
    drain(&consumer, topic, &partitions, timeout)
}
