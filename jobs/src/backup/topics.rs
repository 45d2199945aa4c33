//! Topics in a backup: records copied with their partition, offset, key, value, headers
//! and timestamp as JSON lines, and produced again in order on restore, where offsets
//! start afresh and are translated.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::path::Path;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{BorrowedMessage, Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};

use rf_pipelines::KafkaConfig;

use super::{PartBackup, TopicBackup};
use crate::JobError;

/// One record of a backed-up topic, a line of its file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Partition.
    pub p: i32,
    /// Offset in the backed-up topic.
    pub o: i64,
    /// Timestamp, ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub t: Option<i64>,
    /// Key, base64.
    #[serde(default)]
    pub k: Option<String>,
    /// Value, base64 (none: a tombstone).
    #[serde(default)]
    pub v: Option<String>,
    /// Headers, values base64.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub h: Vec<(String, Option<String>)>,
}

impl Record {
    fn of(m: &BorrowedMessage<'_>) -> Self {
        Self {
            p: m.partition(),
            o: m.offset(),
            t: m.timestamp().to_millis(),
            k: m.key().map(|k| B64.encode(k)),
            v: m.payload().map(|v| B64.encode(v)),
            h: m.headers().map_or_else(Vec::new, |hs| {
                hs.iter()
                    .map(|h| (h.key.to_string(), h.value.map(|v| B64.encode(v))))
                    .collect()
            }),
        }
    }

    /// The key, decoded.
    pub fn key(&self) -> Option<Vec<u8>> {
        self.k.as_ref().and_then(|k| B64.decode(k).ok())
    }

    /// The value, decoded.
    pub fn value(&self) -> Option<Vec<u8>> {
        self.v.as_ref().and_then(|v| B64.decode(v).ok())
    }

    /// A header's value, as text.
    pub fn header(&self, name: &str) -> Option<String> {
        let (_, v) = self.h.iter().find(|(k, _)| k == name)?;
        String::from_utf8(B64.decode(v.as_ref()?).ok()?).ok()
    }

    /// Sets a header's value.
    pub fn set_header(&mut self, name: &str, value: &str) {
        let encoded = Some(B64.encode(value));
        match self.h.iter_mut().find(|(k, _)| k == name) {
            Some((_, v)) => *v = encoded,
            None => self.h.push((name.to_string(), encoded)),
        }
    }
}

fn kerr(topic: &str) -> impl Fn(rdkafka::error::KafkaError) -> JobError + '_ {
    move |e| JobError::kafka(format!("backing up {topic}"), e)
}

/// Copies `topic` into the file `to`: each partition from `from` (its first offset when
/// absent) to its end when the copy started, the records `keep` accepts. `None` when the
/// topic does not exist.
pub fn dump(
    kafka: &KafkaConfig,
    topic: &str,
    from: &BTreeMap<i32, i64>,
    to: &Path,
    mut keep: impl FnMut(&BorrowedMessage<'_>) -> bool,
) -> Result<Option<TopicBackup>, JobError> {
    let timeout = Duration::from_secs(kafka.timeout_secs);
    let consumer: BaseConsumer = kafka
        .client_config()
        .set("group.id", "roomflow-backup")
        .set("enable.auto.commit", "false")
        .create()
        .map_err(kerr(topic))?;
    let Some(marks) = watermarks(&consumer, kafka, topic)? else {
        return Ok(None);
    };
    let mut parts = BTreeMap::new();
    let mut assignment = TopicPartitionList::new();
    for (partition, (low, high)) in marks {
        let start = from
            .get(&partition)
            .copied()
            .unwrap_or(low)
            .clamp(low, high);
        parts.insert(
            partition,
            PartBackup {
                partition,
                from_offset: start,
                to_offset: high,
                records: 0,
            },
        );
        if high > start {
            assignment
                .add_partition_offset(topic, partition, Offset::Offset(start))
                .map_err(kerr(topic))?;
        }
    }
    let file = std::fs::File::create(to)
        .map_err(|e| JobError::Backup(format!("{}: {e}", to.display())))?;
    let mut out = std::io::BufWriter::new(file);
    let mut open: BTreeMap<i32, i64> = parts
        .values()
        .filter(|p| p.to_offset > p.from_offset)
        .map(|p| (p.partition, p.to_offset))
        .collect();
    if !open.is_empty() {
        consumer.assign(&assignment).map_err(kerr(topic))?;
    }
    let mut progress = std::time::Instant::now();
    while !open.is_empty() {
        if progress.elapsed() > timeout {
            return Err(JobError::Backup(format!(
                "{topic} not read to its end: nothing arrived for {timeout:?}"
            )));
        }
        let Some(message) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        let m = message.map_err(kerr(topic))?;
        progress = std::time::Instant::now();
        let Some(end) = open.get(&m.partition()).copied() else {
            continue;
        };
        if m.offset() >= end {
            open.remove(&m.partition());
            continue;
        }
        if m.offset() + 1 >= end {
            open.remove(&m.partition());
        }
        if keep(&m) {
            serde_json::to_writer(&mut out, &Record::of(&m))
                .map_err(|e| JobError::Backup(e.to_string()))?;
            out.write_all(b"\n")
                .map_err(|e| JobError::Backup(e.to_string()))?;
            if let Some(p) = parts.get_mut(&m.partition()) {
                p.records += 1;
            }
        }
    }
    out.flush().map_err(|e| JobError::Backup(e.to_string()))?;
    Ok(Some(TopicBackup {
        name: topic.to_string(),
        partitions: parts.len() as i32,
        compacted: false,
        parts: parts.into_values().collect(),
        file: String::new(),
        bytes: 0,
        sha256: String::new(),
    }))
}

/// The records of a backed-up topic's file, in order.
pub fn read(file: &Path) -> Result<Vec<Record>, JobError> {
    let f = std::fs::File::open(file)
        .map_err(|e| JobError::Backup(format!("{}: {e}", file.display())))?;
    std::io::BufReader::new(f)
        .lines()
        .filter(|l| l.as_ref().map_or(true, |l| !l.is_empty()))
        .map(|line| {
            let line = line.map_err(|e| JobError::Backup(e.to_string()))?;
            serde_json::from_str(&line)
                .map_err(|e| JobError::Backup(format!("{}: a record: {e}", file.display())))
        })
        .collect()
}

/// Where each partition's records went: the backed-up offsets in order, so that an
/// offset translates to the count of restored records before it.
#[derive(Clone, Debug, Default)]
pub struct Offsets(BTreeMap<i32, Vec<i64>>);

impl Offsets {
    /// The restored topic's offset that `old` (an offset of the backed-up topic, or an
    /// end) became: the first restored record at or after it.
    pub fn translate(&self, partition: i32, old: i64) -> i64 {
        self.0
            .get(&partition)
            .map_or(0, |olds| olds.partition_point(|o| *o < old) as i64)
    }

    /// Notes that `olds` (in order) were restored to `partition`.
    pub fn push(&mut self, partition: i32, olds: &[i64]) {
        self.0.entry(partition).or_default().extend_from_slice(olds);
    }

    /// Whether the record at `old` was restored.
    pub fn contains(&self, partition: i32, old: i64) -> bool {
        self.0
            .get(&partition)
            .is_some_and(|olds| olds.binary_search(&old).is_ok())
    }
}

/// Produces `records` to `topic` in order (each to its partition, with its key, value,
/// headers and timestamp) and waits for every acknowledgement; returns where the old
/// offsets went.
pub async fn produce(
    producer: &FutureProducer,
    kafka: &KafkaConfig,
    topic: &str,
    records: &[Record],
) -> Result<Offsets, JobError> {
    let timeout = Duration::from_secs(kafka.timeout_secs);
    let mut offsets = Offsets::default();
    for chunk in records.chunks(10_000) {
        let mut deliveries = Vec::with_capacity(chunk.len());
        for r in chunk {
            let (key, value) = (r.key(), r.value());
            let mut headers = OwnedHeaders::new_with_capacity(r.h.len());
            for (name, v) in &r.h {
                let v = v.as_ref().and_then(|v| B64.decode(v).ok());
                headers = headers.insert(Header {
                    key: name,
                    value: v.as_deref(),
                });
            }
            let mut record = FutureRecord::<[u8], [u8]>::to(topic)
                .partition(r.p)
                .headers(headers);
            if let Some(k) = key.as_deref() {
                record = record.key(k);
            }
            if let Some(v) = value.as_deref() {
                record = record.payload(v);
            }
            if let Some(t) = r.t {
                record = record.timestamp(t);
            }
            let delivery = producer
                .send_result(record)
                .map_err(|(e, _)| JobError::kafka(format!("restoring {topic}"), e))?;
            deliveries.push(delivery);
            offsets.push(r.p, &[r.o]);
        }
        for delivery in deliveries {
            match tokio::time::timeout(timeout, delivery).await {
                Ok(Ok(Ok(_))) => {}
                Ok(Ok(Err((e, _)))) => {
                    return Err(JobError::kafka(format!("restoring {topic}"), e))
                }
                Ok(Err(_)) => {
                    return Err(JobError::Backup(format!(
                        "restoring {topic}: the producer closed"
                    )))
                }
                Err(_) => {
                    return Err(JobError::Backup(format!(
                        "restoring {topic}: no acknowledgement in {timeout:?}"
                    )))
                }
            }
        }
    }
    Ok(offsets)
}

/// Each partition's end (high watermark) of `topic`, `None` when it does not exist.
pub fn ends(kafka: &KafkaConfig, topic: &str) -> Result<Option<BTreeMap<i32, i64>>, JobError> {
    let consumer: BaseConsumer = kafka.client_config().create().map_err(kerr(topic))?;
    Ok(watermarks(&consumer, kafka, topic)?
        .map(|marks| marks.into_iter().map(|(p, (_, high))| (p, high)).collect()))
}

/// Each partition's first offset and end.
type Watermarks = BTreeMap<i32, (i64, i64)>;

/// Each partition's first and end offsets of `topic`, `None` when it does not exist.
fn watermarks(
    consumer: &BaseConsumer,
    kafka: &KafkaConfig,
    topic: &str,
) -> Result<Option<Watermarks>, JobError> {
    let timeout = Duration::from_secs(kafka.timeout_secs);
    let metadata = consumer
        .fetch_metadata(Some(topic), timeout)
        .map_err(kerr(topic))?;
    let Some(t) = metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic && t.error().is_none() && !t.partitions().is_empty())
    else {
        return Ok(None);
    };
    let mut marks = BTreeMap::new();
    for p in t.partitions() {
        let mark = consumer
            .fetch_watermarks(topic, p.id(), timeout)
            .map_err(kerr(topic))?;
        marks.insert(p.id(), mark);
    }
    Ok(Some(marks))
}

/// The offsets `group` committed on `topic`'s partitions (those it committed).
pub fn committed(
    kafka: &KafkaConfig,
    group: &str,
    topic: &str,
) -> Result<BTreeMap<i32, i64>, JobError> {
    let Some(ends) = ends(kafka, topic)? else {
        return Ok(BTreeMap::new());
    };
    let consumer: BaseConsumer = kafka
        .client_config()
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .map_err(kerr(topic))?;
    let mut tpl = TopicPartitionList::new();
    for p in ends.keys() {
        tpl.add_partition(topic, *p);
    }
    let committed = consumer
        .committed_offsets(tpl, Duration::from_secs(kafka.timeout_secs))
        .map_err(kerr(topic))?;
    Ok(committed
        .elements()
        .iter()
        .filter_map(|e| match e.offset() {
            Offset::Offset(o) => Some((e.partition(), o)),
            _ => None,
        })
        .collect())
}
