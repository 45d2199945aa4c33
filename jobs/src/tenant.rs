//! Provisioning a tenant: its topics, its ClickHouse database and its schemas.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::types::RDKafkaErrorCode;

use rf_pipelines::{KafkaConfig, RegistryConfig};
use rf_schemas::registry::RegistryClient;
use rf_schemas::TenantId;
use rf_sinks::config::ClickHouseConfig;

use crate::schemas::{register_all, Registered};
use crate::JobError;

/// Partitions of a new tenant's readings topic: offices spread over them, and they bound
/// how many workers can share the tenant.
pub const READINGS_PARTITIONS: i32 = 12;

/// What `create` made.
#[derive(Debug)]
pub struct Created {
    /// Topics created now (existing ones are left as they are).
    pub topics_created: Vec<String>,
    /// The ClickHouse database.
    pub database: String,
    /// The registered subjects.
    pub schemas: Vec<Registered>,
}

/// Creates whatever of `tenant`'s resources is missing; running it twice is harmless.
pub async fn create(
    kafka: &KafkaConfig,
    clickhouse: &ClickHouseConfig,
    registry: &RegistryConfig,
    tenant: &TenantId,
) -> Result<Created, JobError> {
    let admin: AdminClient<DefaultClientContext> = kafka
        .client_config()
        .create()
        .map_err(|e| JobError::Kafka(e.to_string()))?;
    let readings = tenant.readings_topic();
    let rooms = tenant.rooms_topic();
    let deadletter = tenant.deadletter_topic();
    let topics = [
        NewTopic::new(&readings, READINGS_PARTITIONS, TopicReplication::Fixed(1)),
        NewTopic::new(&rooms, 1, TopicReplication::Fixed(1)).set("cleanup.policy", "compact"),
        NewTopic::new(&deadletter, 3, TopicReplication::Fixed(1)),
    ];
    let options =
        AdminOptions::new().operation_timeout(Some(Duration::from_secs(kafka.timeout_secs)));
    let mut topics_created = Vec::new();
    for result in admin
        .create_topics(&topics, &options)
        .await
        .map_err(|e| JobError::Kafka(e.to_string()))?
    {
        match result {
            Ok(topic) => topics_created.push(topic),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => {
                return Err(JobError::Kafka(format!("cannot create {topic}: {code}")))
            }
        }
    }

    let client = rf_sinks::clickhouse::client(clickhouse);
    for statement in rf_schemas::tenant_ddl(tenant) {
        client
            .query(&statement)
            .execute()
            .await
            .map_err(|e| JobError::ClickHouse(e.to_string()))?;
    }

    let check = registry.compatibility_check;
    let registry = RegistryClient::new(&registry.url, Duration::from_secs(registry.timeout_secs));
    let owner = tenant.clone();
    let schemas = tokio::task::spawn_blocking(move || register_all(&registry, &[owner], check))
        .await
        .map_err(|e| JobError::Invalid(format!("registration task failed: {e}")))??;
    Ok(Created {
        topics_created,
        database: tenant.clickhouse_db(),
        schemas,
    })
}

/// Every tenant with a readings topic on the broker.
pub fn list(kafka: &KafkaConfig) -> Result<Vec<TenantId>, JobError> {
    let consumer: BaseConsumer = kafka
        .client_config()
        .create()
        .map_err(|e| JobError::Kafka(e.to_string()))?;
    let metadata = consumer
        .fetch_metadata(None, Duration::from_secs(kafka.timeout_secs))
        .map_err(|e| JobError::Kafka(format!("cannot list topics at {}: {e}", kafka.brokers)))?;
    let mut tenants: Vec<TenantId> = metadata
        .topics()
        .iter()
        .filter_map(|t| t.name().strip_prefix(rf_schemas::tenant::READINGS_PREFIX))
        .filter_map(|t| TenantId::parse(t).ok())
        .collect();
    tenants.sort();
    Ok(tenants)
}
