//! The dead-letter sink: rejected inputs, with their original bytes and reason headers,
//! to `deadletter.<tenant>`.

use std::time::Duration;

use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};

use crate::{Batch, Sink, SinkError};

/// Produces dead letters and waits for the broker to acknowledge each.
#[derive(Clone)]
pub struct DeadLetterSink {
    producer: FutureProducer,
    timeout: Duration,
}

impl DeadLetterSink {
    /// A sink producing through `producer` (idempotent, `acks=all`).
    pub fn new(producer: FutureProducer, timeout: Duration) -> Self {
        Self { producer, timeout }
    }
}

impl Sink for DeadLetterSink {
    fn name(&self) -> &'static str {
        "deadletter"
    }

    async fn write(&mut self, batch: &Batch) -> Result<(), SinkError> {
        // The records borrow their topic names.
        let topics: Vec<String> = batch
            .dead_letters
            .iter()
            .map(|d| d.tenant.deadletter_topic())
            .collect();
        let mut records = Vec::with_capacity(batch.dead_letters.len());
        for (d, topic) in batch.dead_letters.iter().zip(&topics) {
            let partition = d.partition.to_string();
            let offset = d.offset.to_string();
            let headers = OwnedHeaders::new()
                .insert(Header {
                    key: "rf-reason",
                    value: Some(d.reason.as_str()),
                })
                .insert(Header {
                    key: "rf-detail",
                    value: Some(d.detail.as_str()),
                })
                .insert(Header {
                    key: "rf-source-topic",
                    value: Some(d.source_topic.as_str()),
                })
                .insert(Header {
                    key: "rf-source-partition",
                    value: Some(partition.as_str()),
                })
                .insert(Header {
                    key: "rf-source-offset",
                    value: Some(offset.as_str()),
                });
            let mut record = FutureRecord::<[u8], [u8]>::to(topic).headers(headers);
            if let Some(key) = &d.key {
                record = record.key(key.as_slice());
            }
            if let Some(value) = &d.value {
                record = record.payload(value.as_slice());
            }
            records.push(record);
        }
        crate::produce_all(&self.producer, records, self.timeout, "deadletter").await
    }
}
