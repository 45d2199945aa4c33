//! Creating roomflow's topics: the one place that knows how, with the replication the
//! deployment asks for (`kafka.replication_factor`, `kafka.min_insync_replicas`).

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::types::RDKafkaErrorCode;

use crate::{KafkaConfig, PipelineError};

/// A topic roomflow needs.
#[derive(Clone, Copy, Debug)]
pub struct TopicSpec<'a> {
    /// Its name.
    pub name: &'a str,
    /// Its partitions.
    pub partitions: i32,
    /// Topic settings beyond replication, e.g. `("cleanup.policy", "compact")`.
    pub config: &'a [(&'a str, &'a str)],
}

impl<'a> TopicSpec<'a> {
    /// A topic of `partitions` partitions with the broker's defaults.
    pub const fn new(name: &'a str, partitions: i32) -> Self {
        Self {
            name,
            partitions,
            config: &[],
        }
    }

    /// A compacted topic of one partition: the latest record per key is kept.
    pub const fn compacted(name: &'a str) -> Self {
        Self {
            name,
            partitions: 1,
            config: &[("cleanup.policy", "compact")],
        }
    }
}

/// Creates those of `topics` that are missing; returns the names of those it created.
pub async fn create(
    kafka: &KafkaConfig,
    topics: &[TopicSpec<'_>],
) -> Result<Vec<String>, PipelineError> {
    let admin: AdminClient<DefaultClientContext> = kafka
        .client_config()
        .create()
        .map_err(|e| PipelineError::kafka("cannot create an admin client", e))?;
    let min_isr = kafka.min_insync_replicas.to_string();
    let new: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|t| {
            let replication = TopicReplication::Fixed(kafka.replication_factor);
            let topic = NewTopic::new(t.name, t.partitions, replication);
            // One copy is trivially in sync; brokers of one node may not know the setting.
            let topic = match kafka.replication_factor {
                1 => topic,
                _ => topic.set("min.insync.replicas", &min_isr),
            };
            t.config.iter().fold(topic, |topic, (k, v)| topic.set(k, v))
        })
        .collect();
    let options =
        AdminOptions::new().operation_timeout(Some(Duration::from_secs(kafka.timeout_secs)));
    let mut created = Vec::new();
    for result in admin
        .create_topics(&new, &options)
        .await
        .map_err(|e| PipelineError::kafka("cannot create topics", e))?
    {
        match result {
            Ok(topic) => created.push(topic),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => {
                return Err(PipelineError::Topics(format!(
                    "cannot create {topic}: {code}"
                )))
            }
        }
    }
    Ok(created)
}

/// Reads `topic` from its start to the end each partition had when called, as consumer
/// group `group` (nothing is committed), calling `f` with each record. An absent or empty
/// topic is read at once. It fails if `kafka.timeout_secs` pass without a record while
/// records remain: a long topic takes as long as it needs, a stalled broker does not.
pub fn read_to_end(
    kafka: &KafkaConfig,
    topic: &str,
    group: &str,
    mut f: impl FnMut(&rdkafka::message::BorrowedMessage<'_>),
) -> Result<(), PipelineError> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::Message;
    use rdkafka::{Offset, TopicPartitionList};

    let timeout = Duration::from_secs(kafka.timeout_secs);
    let kerr = |e: rdkafka::error::KafkaError| PipelineError::kafka(format!("reading {topic}"), e);
    let consumer: BaseConsumer = kafka
        .client_config()
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .map_err(kerr)?;
    let metadata = consumer
        .fetch_metadata(Some(topic), timeout)
        .map_err(kerr)?;
    let mut ends = std::collections::BTreeMap::new();
    let mut assignment = TopicPartitionList::new();
    for p in metadata
        .topics()
        .iter()
        .filter(|t| t.error().is_none())
        .flat_map(|t| t.partitions())
    {
        let (low, high) = consumer
            .fetch_watermarks(topic, p.id(), timeout)
            .map_err(kerr)?;
        if high > low {
            assignment
                .add_partition_offset(topic, p.id(), Offset::Beginning)
                .map_err(kerr)?;
            ends.insert(p.id(), high);
        }
    }
    if ends.is_empty() {
        return Ok(());
    }
    consumer.assign(&assignment).map_err(kerr)?;
    let mut progress = std::time::Instant::now();
    while !ends.is_empty() {
        if progress.elapsed() > timeout {
            return Err(PipelineError::Topics(format!(
                "{topic} not read to its end: nothing arrived for {timeout:?}"
            )));
        }
        let Some(message) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        let m = message.map_err(kerr)?;
        progress = std::time::Instant::now();
        if ends
            .get(&m.partition())
            .is_some_and(|end| m.offset() + 1 >= *end)
        {
            ends.remove(&m.partition());
        }
        f(&m);
    }
    Ok(())
}
