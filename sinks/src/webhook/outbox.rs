//! The alert outbox: every anomaly revision an epoch produced, written to the topic
//! `roomflow.alerts` before the epoch's offsets are committed, so an alert is never lost
//! to a crash. The dispatcher reads it, applies each tenant's rules and delivers.

use std::time::Duration;

use rdkafka::producer::{FutureProducer, FutureRecord};
use serde::{Deserialize, Serialize};

use rf_schemas::rows::{Anomaly, AnomalyKind, EntityKind, Severity};
use rf_schemas::TenantId;

use crate::{Batch, Sink, SinkError};

/// The outbox topic: key the tenant id (a tenant's alerts stay in order whatever the
/// partitions), value [`encode`]d JSON.
pub const TOPIC: &str = "roomflow.alerts";

/// The outbox's JSON: an [`Anomaly`] with the contract's labels.
#[derive(Serialize, Deserialize)]
struct Record {
    tenant: String,
    kind: String,
    entity_kind: String,
    entity_id: String,
    office_id: String,
    room_id: String,
    window_start: i64,
    window_end: i64,
    score: f64,
    severity: Severity,
    details: serde_json::Value,
    ongoing: bool,
}

/// The record value.
pub fn encode(a: &Anomaly) -> Vec<u8> {
    serde_json::to_vec(&Record {
        tenant: a.tenant.to_string(),
        kind: a.kind.label().to_string(),
        entity_kind: a.entity_kind.label().to_string(),
        entity_id: a.entity_id.clone(),
        office_id: a.office_id.clone(),
        room_id: a.room_id.clone(),
        window_start: a.window_start,
        window_end: a.window_end,
        score: a.score,
        severity: a.severity,
        details: serde_json::from_str(&a.details).unwrap_or_default(),
        ongoing: a.ongoing,
    })
    .expect("an anomaly serializes")
}

/// Reads a record value back; the error says which field is wrong.
pub fn decode(bytes: &[u8]) -> Result<Anomaly, String> {
    let r: Record = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    let kind = AnomalyKind::ALL
        .into_iter()
        .find(|k| k.label() == r.kind)
        .ok_or_else(|| format!("unknown kind {:?}", r.kind))?;
    let entity_kind = [EntityKind::Room, EntityKind::Office, EntityKind::Sensor]
        .into_iter()
        .find(|k| k.label() == r.entity_kind)
        .ok_or_else(|| format!("unknown entity kind {:?}", r.entity_kind))?;
    Ok(Anomaly {
        tenant: TenantId::parse(&r.tenant).map_err(|e| e.to_string())?,
        kind,
        entity_kind,
        entity_id: r.entity_id,
        office_id: r.office_id,
        room_id: r.room_id,
        window_start: r.window_start,
        window_end: r.window_end,
        score: r.score,
        severity: r.severity,
        details: r.details.to_string(),
        ongoing: r.ongoing,
    })
}

/// Produces an epoch's anomalies to the outbox and waits for the broker to acknowledge.
#[derive(Clone)]
pub struct OutboxSink {
    producer: FutureProducer,
    timeout: Duration,
}

impl OutboxSink {
    /// A sink producing through `producer` (idempotent, `acks=all`).
    pub fn new(producer: FutureProducer, timeout: Duration) -> Self {
        Self { producer, timeout }
    }
}

impl Sink for OutboxSink {
    fn name(&self) -> &'static str {
        "outbox"
    }

    async fn write(&mut self, batch: &Batch) -> Result<(), SinkError> {
        let values: Vec<Vec<u8>> = batch.anomalies.iter().map(encode).collect();
        let records = batch.anomalies.iter().zip(&values).map(|(a, value)| {
            FutureRecord::to(TOPIC)
                .key(a.tenant.as_str().as_bytes())
                .payload(value.as_slice())
        });
        crate::produce_all(&self.producer, records, self.timeout, "outbox").await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anomalies_round_trip_through_the_outbox() {
        let a = Anomaly {
            tenant: TenantId::parse("acme").unwrap(),
            kind: AnomalyKind::SilentSensor,
            entity_kind: EntityKind::Room,
            entity_id: "r1".into(),
            office_id: "lon".into(),
            room_id: "r1".into(),
            window_start: 1_000,
            window_end: 2_000,
            score: 0.25,
            severity: Severity::Medium,
            details: r#"{"minutes":45}"#.into(),
            ongoing: true,
        };
        assert_eq!(decode(&encode(&a)).unwrap(), a);
        let err = decode(br#"{"tenant":"acme","kind":"fire"}"#).unwrap_err();
        assert!(err.contains("missing field"), "{err}");
    }
}
