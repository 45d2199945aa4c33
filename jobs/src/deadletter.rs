//! `roomflow deadletter inspect`: what a tenant's dead-letter topic holds, by reason and
//! hour, with examples decoded where they can be.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Headers;
use rdkafka::{Message, Offset, TopicPartitionList};

use rf_pipelines::{KafkaConfig, RegistryConfig};
use rf_schemas::framing::unframe;
use rf_schemas::reading::ReadingDecoder;
use rf_schemas::registry::RegistryClient;
use rf_schemas::{Reading, TenantId};

use crate::JobError;

const HOUR: i64 = 3_600_000;

/// One dead letter, as the inspection shows it.
#[derive(Debug, Clone)]
pub struct Example {
    /// When it was dead-lettered (the letter's record timestamp), ms.
    pub at: i64,
    /// Header `rf-detail`.
    pub detail: String,
    /// Where the reading came from: (partition, offset).
    pub source: (i32, i64),
    /// The reading, when its bytes decode with a known schema.
    pub reading: Option<Reading>,
}

/// Counts by reason and hour, and the first examples of each reason.
#[derive(Debug, Default)]
pub struct Inspection {
    /// Letters read.
    pub total: u64,
    /// Per reason: how many, the first and last time.
    pub reasons: BTreeMap<String, (u64, i64, i64)>,
    /// Per hour (start, ms) and reason: how many.
    pub hours: BTreeMap<i64, BTreeMap<String, u64>>,
    /// Per reason, its first examples.
    pub examples: BTreeMap<String, Vec<Example>>,
}

/// Reads `tenant`'s dead-letter topic (from `since`, ms, or its start) to where it ended
/// when called.
pub fn inspect(
    kafka: &KafkaConfig,
    registry: &RegistryConfig,
    tenant: &TenantId,
    since: Option<i64>,
    examples: usize,
    progress: bool,
) -> Result<Inspection, JobError> {
    let topic = tenant.deadletter_topic();
    let timeout = Duration::from_secs(kafka.timeout_secs);
    let kerr = |what: &str| {
        let what = format!("{what} {topic}");
        move |e: rdkafka::error::KafkaError| JobError::Kafka(format!("{what}: {e}"))
    };
    let consumer: BaseConsumer = kafka
        .consumer_config("roomflow-deadletter-inspect")
        .create()
        .map_err(kerr("cannot read"))?;
    let metadata = consumer
        .fetch_metadata(Some(&topic), timeout)
        .map_err(kerr("cannot list"))?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    if partitions.is_empty() {
        return Err(JobError::Invalid(format!(
            "tenant {tenant} has no topic {topic}; create it with `roomflow tenant create {tenant}`"
        )));
    }
    let mut start = TopicPartitionList::new();
    for &p in &partitions {
        let offset = since.map_or(Offset::Beginning, Offset::Offset);
        start
            .add_partition_offset(&topic, p, offset)
            .map_err(kerr("cannot assign"))?;
    }
    if since.is_some() {
        start = consumer
            .offsets_for_times(start, timeout)
            .map_err(kerr("cannot find offsets by time in"))?;
    }
    let mut ends = BTreeMap::new();
    let mut remaining = 0u64;
    for element in start.elements() {
        let p = element.partition();
        let (low, high) = consumer
            .fetch_watermarks(&topic, p, timeout)
            .map_err(kerr("cannot read the end of"))?;
        let from = match element.offset() {
            Offset::Offset(o) => o,
            Offset::End => high,
            _ => low,
        };
        if high > from {
            ends.insert(p, high);
            remaining += (high - from) as u64;
        }
    }
    consumer.assign(&start).map_err(kerr("cannot assign"))?;

    let bar = if progress {
        let bar = ProgressBar::new(remaining);
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} {bar:40} {human_pos}/{human_len} dead letters, {per_sec}, eta {eta}",
            )
            .expect("valid template"),
        );
        bar
    } else {
        ProgressBar::hidden()
    };
    let mut decoders = Decoders::new(registry);
    let mut out = Inspection::default();
    while !ends.is_empty() {
        let message = match consumer.poll(timeout) {
            Some(m) => m.map_err(kerr("cannot read"))?,
            None => {
                return Err(JobError::Kafka(format!(
                    "{topic}: nothing arrived for {} s with {} partitions unfinished",
                    timeout.as_secs(),
                    ends.len()
                )))
            }
        };
        let p = message.partition();
        if ends.get(&p).is_some_and(|&end| message.offset() + 1 >= end) {
            ends.remove(&p);
        }
        bar.inc(1);
        let header = |name: &str| -> String {
            message
                .headers()
                .and_then(|h| h.iter().find(|h| h.key == name))
                .and_then(|h| h.value)
                .map(|v| String::from_utf8_lossy(v).into_owned())
                .unwrap_or_default()
        };
        let reason = header("rf-reason");
        let at = message.timestamp().to_millis().unwrap_or(0);
        out.total += 1;
        let r = out.reasons.entry(reason.clone()).or_insert((0, at, at));
        (r.0, r.1, r.2) = (r.0 + 1, r.1.min(at), r.2.max(at));
        *out.hours
            .entry(at.div_euclid(HOUR) * HOUR)
            .or_default()
            .entry(reason.clone())
            .or_default() += 1;
        let shown = out.examples.entry(reason).or_default();
        if shown.len() < examples {
            shown.push(Example {
                at,
                detail: header("rf-detail"),
                source: (
                    header("rf-source-partition").parse().unwrap_or(-1),
                    header("rf-source-offset").parse().unwrap_or(-1),
                ),
                reading: message.payload().and_then(|v| decoders.decode(v)),
            });
        }
    }
    bar.finish_and_clear();
    Ok(out)
}

/// Readings decoders by schema id, fetched once; ids that fail are remembered too.
struct Decoders {
    registry: RegistryClient,
    by_id: HashMap<u32, Option<ReadingDecoder>>,
}

impl Decoders {
    fn new(config: &RegistryConfig) -> Self {
        Self {
            registry: RegistryClient::new(&config.url, Duration::from_secs(config.timeout_secs)),
            by_id: HashMap::new(),
        }
    }

    fn decode(&mut self, value: &[u8]) -> Option<Reading> {
        let (id, body) = unframe(value).ok()?;
        let registry = &self.registry;
        let decoder = self.by_id.entry(id).or_insert_with(|| {
            let text = registry.schema_by_id(id).ok()?;
            let schema = apache_avro::Schema::parse_str(&text).ok()?;
            ReadingDecoder::new(&schema).ok()
        });
        decoder.as_ref()?.decode(body).ok()
    }
}
