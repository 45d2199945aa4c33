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
        .map_err(|e| PipelineError::Kafka(e.to_string()))?;
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
        .map_err(|e| PipelineError::Kafka(format!("cannot create topics: {e}")))?
    {
        match result {
            Ok(topic) => created.push(topic),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => {
                return Err(PipelineError::Kafka(format!(
                    "cannot create {topic}: {code}"
                )))
            }
        }
    }
    Ok(created)
}
