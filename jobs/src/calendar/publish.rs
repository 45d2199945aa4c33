//! Publishing booking versions to `bookings.<tenant>` in the Confluent wire format.

use std::time::Duration;

use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};

use rf_pipelines::config::{KafkaConfig, RegistryConfig};
use rf_schemas::framing::frame_header;
use rf_schemas::registry::RegistryClient;
use rf_schemas::{Booking, TenantId, BOOKING_AVSC};

use super::SyncError;
use crate::JobError;

/// A producer of one tenant's bookings.
pub struct Publisher {
    producer: ThreadedProducer<DefaultProducerContext>,
    topic: String,
    schema_id: u32,
    schema: apache_avro::Schema,
}

impl Publisher {
    /// Registers the Booking schema under the tenant's subject (the same schema again
    /// keeps its id) and connects.
    pub fn new(
        kafka: &KafkaConfig,
        registry: &RegistryConfig,
        tenant: &TenantId,
    ) -> Result<Self, JobError> {
        let client = RegistryClient::new(&registry.url, Duration::from_secs(registry.timeout_secs));
        let topic = tenant.bookings_topic();
        let schema_id = client.register(&format!("{topic}-value"), BOOKING_AVSC)?;
        let mut config = kafka.client_config();
        config.set("enable.idempotence", "true");
        Ok(Self {
            producer: config.create()?,
            topic,
            schema_id,
            schema: apache_avro::Schema::parse_str(BOOKING_AVSC).expect("embedded schema"),
        })
    }

    /// Queues one version.
    pub fn publish(&self, b: &Booking) -> Result<(), SyncError> {
        let mut value = Vec::new();
        frame_header(self.schema_id, &mut value);
        value.extend(b.encode(&self.schema));
        let key = b.key();
        self.producer
            .send(BaseRecord::to(&self.topic).key(&key).payload(&value))
            .map_err(|(e, _)| SyncError::Provider(format!("kafka: {e}")))
    }

    /// Waits until the broker acknowledged every version queued.
    pub fn flush(&self) -> Result<(), SyncError> {
        self.producer
            .flush(Duration::from_secs(30))
            .map_err(|e| SyncError::Provider(format!("kafka: bookings not acknowledged: {e}")))
    }
}
