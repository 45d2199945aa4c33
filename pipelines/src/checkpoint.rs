//! Checkpoints: where each partition resumes, and the state to resume with, kept in the
//! compacted topic `roomflow.checkpoints` (key `<group>/<topic>/<partition>`).
//!
//! A checkpoint is written after every sink acknowledged an epoch, and before the
//! consumer group's offsets are committed (those stay for lag monitoring). It carries what
//! an offset alone cannot: the partition watermark at the resume offset, so a replay
//! judges lateness exactly as the first run did, and how far effects were written, so
//! dead letters are not written twice. Kafka's commit metadata could carry the same, but
//! not every Kafka-protocol broker keeps it.

use std::collections::HashMap;
use std::time::Duration;

use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};

use rf_operators::Checkpoint;

use crate::config::KafkaConfig;
use crate::PipelineError;

/// The checkpoint topic.
pub const TOPIC: &str = "roomflow.checkpoints";

/// Where a partition resumes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resume {
    /// First offset to read.
    pub offset: i64,
    /// The partition watermark before that offset.
    pub watermark: i64,
    /// Effects of offsets below this were written already.
    pub processed_until: i64,
    /// The watermark reached at `processed_until`: windows final by it were written.
    pub final_watermark: i64,
    /// Per rooms partition of the tenant, the offset below which room versions had been
    /// applied to final rows by the worker that wrote this checkpoint.
    pub rooms: Vec<(i32, i64)>,
}

impl Resume {
    /// The record value.
    pub fn encode(&self) -> String {
        let rooms: Vec<String> = self.rooms.iter().map(|(p, o)| format!("{p}:{o}")).collect();
        format!(
            "offset={};wm={};until={};final={};rooms={}",
            self.offset,
            self.watermark,
            self.processed_until,
            self.final_watermark,
            rooms.join(",")
        )
    }

    /// A record value, if it is one.
    pub fn decode(s: &str) -> Option<Self> {
        let mut fields = s.split(';');
        let mut next = |name: &str| fields.next()?.strip_prefix(name)?.parse().ok();
        let (offset, watermark, processed_until, final_watermark) = (
            next("offset=")?,
            next("wm=")?,
            next("until=")?,
            next("final=")?,
        );
        // Checkpoints written before room restatements carry no rooms field: every room
        // version is then applied to final rows again, which changes nothing that is right.
        let rooms = match fields.next() {
            None => Vec::new(),
            Some(f) => f
                .strip_prefix("rooms=")?
                .split(',')
                .filter(|s| !s.is_empty())
                .map(|po| {
                    let (p, o) = po.split_once(':')?;
                    Some((p.parse().ok()?, o.parse().ok()?))
                })
                .collect::<Option<_>>()?,
        };
        Some(Self {
            offset,
            watermark,
            processed_until,
            final_watermark,
            rooms,
        })
    }
}

fn key(group: &str, topic: &str, partition: i32) -> String {
    format!("{group}/{topic}/{partition}")
}

/// Creates the checkpoint topic if it is missing.
pub async fn ensure_topic(kafka: &KafkaConfig) -> Result<(), PipelineError> {
    crate::topics::create(kafka, &[crate::topics::TopicSpec::compacted(TOPIC)]).await?;
    Ok(())
}

/// The latest checkpoint of every partition `group` has checkpointed, by (topic, partition).
pub fn load(kafka: &KafkaConfig) -> Result<HashMap<(String, i32), Resume>, PipelineError> {
    let mut resumes = HashMap::new();
    let prefix = format!("{}/", kafka.group_id);
    crate::topics::read_to_end(kafka, TOPIC, &kafka.group_id, |m| {
        let Some(k) = m.key().and_then(|k| std::str::from_utf8(k).ok()) else {
            return;
        };
        let Some((topic, partition)) = k.strip_prefix(&prefix).and_then(|r| r.rsplit_once('/'))
        else {
            return;
        };
        let Ok(partition) = partition.parse::<i32>() else {
            return;
        };
        match m
            .payload()
            .and_then(|v| std::str::from_utf8(v).ok())
            .and_then(Resume::decode)
        {
            Some(resume) => resumes.insert((topic.to_owned(), partition), resume),
            None => resumes.remove(&(topic.to_owned(), partition)),
        };
    })?;
    Ok(resumes)
}

/// Writes checkpoints and waits for the broker to acknowledge them.
#[derive(Clone)]
pub struct CheckpointWriter {
    /// Producer (idempotent).
    pub producer: FutureProducer,
    /// The consumer group the checkpoints belong to.
    pub group: String,
    /// Delivery timeout.
    pub timeout: Duration,
}

impl CheckpointWriter {
    /// Writes one record per checkpoint.
    pub async fn write(&self, checkpoints: &[Checkpoint]) -> Result<(), String> {
        let mut deliveries = Vec::with_capacity(checkpoints.len());
        for c in checkpoints {
            let key = key(&self.group, &c.tenant.readings_topic(), c.partition);
            let value = Resume {
                offset: c.commit_offset,
                watermark: c.watermark,
                processed_until: c.processed_until,
                final_watermark: c.current_watermark,
                rooms: c.rooms.clone(),
            }
            .encode();
            let record = FutureRecord::to(TOPIC).key(&key).payload(&value);
            deliveries.push(
                self.producer
                    .send_result(record)
                    .map_err(|(e, _)| e.to_string())?,
            );
        }
        for delivery in deliveries {
            match tokio::time::timeout(self.timeout, delivery).await {
                Ok(Ok(Ok(_))) => {}
                Ok(Ok(Err((e, _)))) => return Err(e.to_string()),
                Ok(Err(_)) => return Err("producer closed".into()),
                Err(_) => return Err("checkpoint delivery timed out".into()),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resume_round_trips() {
        let mut r = Resume {
            offset: 42,
            watermark: i64::MIN,
            processed_until: 50,
            final_watermark: 7,
            rooms: Vec::new(),
        };
        assert_eq!(Resume::decode(&r.encode()), Some(r.clone()));
        r.rooms = vec![(0, 12), (1, 3)];
        assert_eq!(
            r.encode(),
            "offset=42;wm=-9223372036854775808;until=50;final=7;rooms=0:12,1:3"
        );
        assert_eq!(Resume::decode(&r.encode()), Some(r));
        let old = Resume::decode("offset=1;wm=2;until=3;final=4").unwrap();
        assert!(old.rooms.is_empty());
        assert_eq!(
            Resume::decode("offset=1;wm=2;until=3;final=4;rooms=0"),
            None
        );
        assert_eq!(Resume::decode("offset=1;wm=2"), None);
        assert_eq!(Resume::decode("offset=1;wm=2;until=3"), None);
        assert_eq!(Resume::decode("wm=2;offset=1;until=3"), None);
        assert_eq!(key("g", "occupancy.acme", 3), "g/occupancy.acme/3");
    }
}
