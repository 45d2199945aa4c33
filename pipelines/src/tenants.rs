//! The tenant registry as the pipeline reads it: the compacted topic `roomflow.tenants`,
//! read from its start to its end.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use rf_schemas::tenant::TENANTS_TOPIC;
use rf_schemas::{TenantConfig, TenantId};

use crate::config::KafkaConfig;
use crate::PipelineError;

/// Every tenant in the registry, deleted ones included, by id: the latest entry of each
/// key; an erased tenant (a tombstone) is absent. An absent topic is an empty registry.
pub fn load(kafka: &KafkaConfig) -> Result<BTreeMap<TenantId, TenantConfig>, PipelineError> {
    let timeout = Duration::from_secs(kafka.timeout_secs);
    let kerr = |what: &str, e: rdkafka::error::KafkaError| {
        PipelineError::Kafka(format!("tenant registry: {what}: {e}"))
    };
    let consumer: BaseConsumer = kafka
        .consumer_config("roomflow-tenant-registry")
        .set("enable.auto.commit", "false")
        .create()
        .map_err(|e| kerr("cannot create a consumer", e))?;
    let metadata = consumer
        .fetch_metadata(Some(TENANTS_TOPIC), timeout)
        .map_err(|e| kerr("cannot read metadata", e))?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .filter(|t| t.error().is_none())
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    let mut ends = BTreeMap::new();
    let mut assignment = TopicPartitionList::new();
    for p in partitions {
        let (low, high) = consumer
            .fetch_watermarks(TENANTS_TOPIC, p, timeout)
            .map_err(|e| kerr("cannot read partition ends", e))?;
        if high > low {
            ends.insert(p, high);
            assignment
                .add_partition_offset(TENANTS_TOPIC, p, Offset::Beginning)
                .map_err(|e| kerr("bad offset", e))?;
        }
    }
    let mut tenants = BTreeMap::new();
    if ends.is_empty() {
        return Ok(tenants);
    }
    consumer
        .assign(&assignment)
        .map_err(|e| kerr("cannot assign", e))?;
    let deadline = Instant::now() + timeout;
    while !ends.is_empty() {
        if Instant::now() > deadline {
            return Err(PipelineError::Kafka(format!(
                "tenant registry: {TENANTS_TOPIC} not read to its end within {timeout:?}"
            )));
        }
        let Some(message) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        let m = message.map_err(|e| kerr("cannot read", e))?;
        if ends
            .get(&m.partition())
            .is_some_and(|end| m.offset() + 1 >= *end)
        {
            ends.remove(&m.partition());
        }
        let Some(tenant) = m
            .key()
            .and_then(|k| std::str::from_utf8(k).ok())
            .and_then(|k| TenantId::parse(k).ok())
        else {
            tracing::warn!(
                offset = m.offset(),
                "tenant registry: an entry without a valid tenant key; skipped"
            );
            continue;
        };
        match m.payload().map(serde_json::from_slice::<TenantConfig>) {
            None => {
                tenants.remove(&tenant);
            }
            Some(Ok(config)) => {
                tenants.insert(tenant, config);
            }
            Some(Err(error)) => {
                tracing::warn!(tenant = %tenant, offset = m.offset(), %error, "tenant registry: an unreadable entry; the previous one stays");
            }
        }
    }
    Ok(tenants)
}
