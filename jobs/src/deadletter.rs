//! `roomflow deadletter inspect`: what a tenant's dead-letter topic holds, by reason and
//! hour, with examples decoded where they can be.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Headers;
use rdkafka::{Message, Offset, TopicPartitionList};

use rf_operators::Granularity;
use rf_pipelines::{KafkaConfig, RegistryConfig};
use rf_schemas::deadletter::DeadLetterReason;
use rf_schemas::framing::unframe;
use rf_schemas::reading::ReadingDecoder;
use rf_schemas::registry::RegistryClient;
use rf_schemas::{Reading, TenantId};
use rf_sinks::config::ClickHouseConfig;

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
    let mut decoders = Decoders::new(registry);
    let mut out = Inspection::default();
    read_letters(kafka, tenant, since, progress, |letter| {
        let at = letter.at;
        out.total += 1;
        let r = out
            .reasons
            .entry(letter.reason.clone())
            .or_insert((0, at, at));
        (r.0, r.1, r.2) = (r.0 + 1, r.1.min(at), r.2.max(at));
        *out.hours
            .entry(at.div_euclid(HOUR) * HOUR)
            .or_default()
            .entry(letter.reason.clone())
            .or_default() += 1;
        let shown = out.examples.entry(letter.reason).or_default();
        if shown.len() < examples {
            shown.push(Example {
                at,
                detail: letter.detail,
                source: letter.source,
                reading: letter.value.and_then(|v| decoders.decode(v)),
            });
        }
    })?;
    Ok(out)
}

/// One dead letter as read.
struct Letter<'a> {
    reason: String,
    detail: String,
    /// The letter's record timestamp, ms.
    at: i64,
    /// (partition, offset) of the reading.
    source: (i32, i64),
    /// The reading's bytes.
    value: Option<&'a [u8]>,
}

/// Reads `tenant`'s dead-letter topic (from `since`, ms, or its start) to where it ended
/// when called, giving each letter to `each`.
fn read_letters(
    kafka: &KafkaConfig,
    tenant: &TenantId,
    since: Option<i64>,
    progress: bool,
    mut each: impl FnMut(Letter<'_>),
) -> Result<(), JobError> {
    let topic = tenant.deadletter_topic();
    let timeout = Duration::from_secs(kafka.timeout_secs);
    let kerr = |what: &str| {
        let what = format!("{what} {topic}");
        move |e: rdkafka::error::KafkaError| JobError::kafka(what.to_string(), e)
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
    while !ends.is_empty() {
        let message = match consumer.poll(timeout) {
            Some(m) => m.map_err(kerr("cannot read"))?,
            None => {
                return Err(JobError::Topics(format!(
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
        each(Letter {
            reason: header("rf-reason"),
            detail: header("rf-detail"),
            at: message.timestamp().to_millis().unwrap_or(0),
            source: (
                header("rf-source-partition").parse().unwrap_or(-1),
                header("rf-source-offset").parse().unwrap_or(-1),
            ),
            value: message.payload(),
        });
    }
    bar.finish_and_clear();
    Ok(())
}

/// Dead-letter reasons that a fix outside the readings can cure: room metadata published
/// late or corrected, a schema registered late. The others stay what they are.
pub const REPLAYABLE: [DeadLetterReason; 4] = [
    DeadLetterReason::UnknownRoom,
    DeadLetterReason::OfficeMismatch,
    DeadLetterReason::UnknownSchema,
    DeadLetterReason::IncompatibleSchema,
];

/// The replayable reason named `name`; the error names `--reason` and the choices.
pub fn replayable(name: &str) -> Result<DeadLetterReason, JobError> {
    let choices: Vec<&str> = REPLAYABLE.iter().map(|r| r.as_str()).collect();
    let choices = choices.join(", ");
    match REPLAYABLE.into_iter().find(|r| r.as_str() == name) {
        Some(reason) => Ok(reason),
        None if DeadLetterReason::ALL.iter().any(|r| r.as_str() == name) => Err(JobError::Invalid(
            format!("--reason: {name} letters stay what they are; replayable: {choices}"),
        )),
        None => Err(JobError::Invalid(format!(
            "--reason: {name:?} is not a dead-letter reason; replayable: {choices}"
        ))),
    }
}

/// What a replay of dead letters found.
#[derive(Debug, Default)]
pub struct Replay {
    /// Letters with the reason.
    pub letters: u64,
    /// Of which: their cause is fixed now.
    pub fixed: u64,
    /// The others, by what still stands in their way: how many.
    pub unfixed: BTreeMap<String, u64>,
    /// The windows a backfill recomputes to count the fixed ones: those starting in
    /// `[from, to)`, ms.
    pub range: Option<(i64, i64)>,
}

/// A tenant's room versions, as the pipeline mirrors them to ClickHouse: per room,
/// (effective from ms, office, time zone), by time.
pub type Rooms = HashMap<String, Vec<(i64, String, chrono_tz::Tz)>>;

/// Reads the tenant's room versions from its ClickHouse `rooms` table.
pub async fn rooms(clickhouse: &ClickHouseConfig, tenant: &TenantId) -> Result<Rooms, JobError> {
    #[derive(clickhouse::Row, serde::Deserialize)]
    struct Row {
        room_id: String,
        office_id: String,
        timezone: String,
        from_ms: i64,
    }
    let rows: Vec<Row> = rf_sinks::clickhouse::client(clickhouse)
        .query(&format!(
            "SELECT room_id, office_id, timezone, toInt64(toUInt32(effective_from)) * 1000 AS from_ms \
             FROM {}.rooms FINAL ORDER BY room_id, from_ms",
            tenant.clickhouse_db()
        ))
        .fetch_all()
        .await?;
    let mut rooms = Rooms::new();
    for r in rows {
        let tz = r.timezone.parse().unwrap_or(chrono_tz::UTC);
        rooms
            .entry(r.room_id)
            .or_default()
            .push((r.from_ms, r.office_id, tz));
    }
    Ok(rooms)
}

/// Reads `tenant`'s dead letters with `reason` (since `since`, ms) and finds those whose
/// cause is fixed now: they decode with a registered schema, and their room has a version
/// in effect at their time, in their office. Returns the windows holding them.
pub fn plan_replay(
    kafka: &KafkaConfig,
    registry: &RegistryConfig,
    tenant: &TenantId,
    reason: DeadLetterReason,
    since: Option<i64>,
    rooms: &Rooms,
    progress: bool,
) -> Result<Replay, JobError> {
    replayable(reason.as_str())?;
    let mut decoders = Decoders::new(registry);
    let mut out = Replay::default();
    read_letters(kafka, tenant, since, progress, |letter| {
        if letter.reason != reason.as_str() {
            return;
        }
        out.letters += 1;
        let Some(r) = letter.value.and_then(|v| decoders.decode(v)) else {
            *out.unfixed
                .entry("not decodable with a registered schema".into())
                .or_default() += 1;
            return;
        };
        let version = rooms
            .get(&r.room_id)
            .and_then(|versions| versions.iter().rev().find(|(from, _, _)| *from <= r.ts));
        let tz = match version {
            None => {
                *out.unfixed
                    .entry(format!("room {} has no metadata at the time", r.room_id))
                    .or_default() += 1;
                return;
            }
            Some((_, office, _)) if *office != r.office_id => {
                *out.unfixed
                    .entry(format!(
                        "room {} is in office {office}, not {}",
                        r.room_id, r.office_id
                    ))
                    .or_default() += 1;
                return;
            }
            Some((_, _, tz)) => *tz,
        };
        out.fixed += 1;
        let from = [Granularity::M15, Granularity::H1, Granularity::D1]
            .into_iter()
            .map(|g| g.window(r.ts, tz).0)
            .min()
            .unwrap_or(r.ts);
        let (lo, hi) = out.range.get_or_insert((from, r.ts + 1));
        (*lo, *hi) = ((*lo).min(from), (*hi).max(r.ts + 1));
    })?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_reasons_a_fix_can_cure_are_replayable() {
        assert_eq!(
            replayable("unknown_room").unwrap(),
            DeadLetterReason::UnknownRoom
        );
        for bytes_are_bad in ["malformed", "out_of_range", "future_timestamp", "late"] {
            let error = replayable(bytes_are_bad).unwrap_err().to_string();
            assert!(error.starts_with("--reason: "), "{error}");
            assert!(error.contains("stay what they are"), "{error}");
        }
        let error = replayable("typo").unwrap_err().to_string();
        assert!(error.contains("not a dead-letter reason"), "{error}");
    }
}
