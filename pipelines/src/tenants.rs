//! The tenant registry as the pipeline reads it: the compacted topic `roomflow.tenants`,
//! read from its start to its end.

use std::collections::BTreeMap;

use rdkafka::message::Message;

use rf_schemas::tenant::TENANTS_TOPIC;
use rf_schemas::{TenantConfig, TenantId};

use crate::config::KafkaConfig;
use crate::topics::read_to_end;
use crate::PipelineError;

/// Every tenant in the registry, deleted ones included, by id: the latest entry of each
/// key; an erased tenant (a tombstone) is absent. An absent topic is an empty registry.
pub fn load(kafka: &KafkaConfig) -> Result<BTreeMap<TenantId, TenantConfig>, PipelineError> {
    let mut tenants = BTreeMap::new();
    read_to_end(kafka, TENANTS_TOPIC, "roomflow-tenant-registry", |m| {
        let Some(tenant) = m
            .key()
            .and_then(|k| std::str::from_utf8(k).ok())
            .and_then(|k| TenantId::parse(k).ok())
        else {
            tracing::warn!(
                offset = m.offset(),
                "tenant registry: an entry without a valid tenant key; skipped"
            );
            return;
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
    })?;
    Ok(tenants)
}
