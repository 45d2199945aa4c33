//! Backfills: a tenant's windows recomputed from its readings topic for a time range,
//! with the room metadata as it is now, beside the live pipeline.
//!
//! A backfill is [`crate::run`] with [`crate::RunOptions::backfill`] set: it reads each
//! partition from the first record that can hold a reading of the range (found by
//! timestamp) until every window starting in the range is final, and writes only those
//! windows' final rows and counted readings. Nothing else is written: no live state, dead
//! letters, alerts, models, room mirror, checkpoints or offsets.

use std::collections::HashMap;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};

use rf_operators::Granularity;
use rf_schemas::reading::MAX_CLOCK_SKEW_MS;
use rf_sinks::Batch;

use crate::checkpoint::Resume;
use crate::config::KafkaConfig;
use crate::source::Topology;
use crate::PipelineError;

/// The longest window: a local day of 25 hours (when clocks go back).
const LONGEST_WINDOW_MS: i64 = 25 * 3_600_000;

/// A backfill: the windows it recomputes, those starting in `[from, to)` (ms), and how
/// fast it reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backfill {
    /// The first window start, ms.
    pub from: i64,
    /// The end, ms: windows starting from here on are not rewritten.
    pub to: i64,
    /// At most this many records read a second, over all workers: the brokers and
    /// stores it shares with the live pipeline keep their headroom.
    pub max_rate: Option<u64>,
}

impl Backfill {
    /// Event time past which a partition needs no more reading: every window starting
    /// before `to` ends before `to` plus the longest window, and is final once the
    /// partition's watermark passes that end by the allowed lateness.
    pub fn stop_at(&self, lateness_ms: i64) -> i64 {
        self.to + LONGEST_WINDOW_MS + lateness_ms
    }

    /// Whether the window starting at `start` (ms) is one the backfill rewrites.
    pub fn covers(&self, start: i64) -> bool {
        (self.from..self.to).contains(&start)
    }

    /// Keeps only what a backfill writes: the final room and office rows of the windows it
    /// covers and the counted readings of its 15-minute windows.
    pub fn keep(&self, batch: &mut Batch) {
        let Batch {
            rooms,
            offices,
            readings,
            ..
        } = std::mem::take(batch);
        batch.rooms = rooms
            .into_iter()
            .filter(|r| r.is_final && self.covers(r.window_start))
            .collect();
        batch.offices = offices
            .into_iter()
            .filter(|o| o.is_final && self.covers(o.window_start))
            .collect();
        batch.readings = readings
            .into_iter()
            .filter(|r| {
                r.readings.first().is_some_and(|first| {
                    let (start, _) = Granularity::M15.window(first.ts, chrono_tz::UTC);
                    self.covers(start)
                })
            })
            .collect();
    }
}

/// Now, in µs since the Unix epoch: the clock of rows' versions. Rows a backfill writes
/// have versions past its start.
pub fn now_micros() -> u64 {
    rf_schemas::unix_micros()
}

/// Where a backfill starts reading each readings partition of `topology`'s tenants, as
/// resume points without state: the first record whose Kafka timestamp can belong to a
/// reading at or after `from` (a reading may be up to [`MAX_CLOCK_SKEW_MS`] ahead of its
/// record). Partitions with no such record are left out. Fails when a partition's topic
/// no longer holds the range's start (retention deleted it).
pub fn positions(
    kafka: &KafkaConfig,
    topology: &Topology,
    from: i64,
) -> Result<HashMap<(String, i32), Resume>, PipelineError> {
    let kerr = |what: &str, e: rdkafka::error::KafkaError| {
        PipelineError::kafka(format!("backfill: {what}"), e)
    };
    let timeout = Duration::from_secs(kafka.timeout_secs);
    let consumer: BaseConsumer = kafka
        .client_config()
        .create()
        .map_err(|e| kerr("cannot create a consumer", e))?;
    let since = from - MAX_CLOCK_SKEW_MS;
    let mut wanted = TopicPartitionList::new();
    for s in &topology.tenants {
        for p in 0..s.readings {
            wanted
                .add_partition_offset(&s.tenant.readings_topic(), p, Offset::Offset(since))
                .map_err(|e| kerr("bad partition", e))?;
        }
    }
    let found = consumer
        .offsets_for_times(wanted, timeout)
        .map_err(|e| kerr("cannot find offsets by timestamp", e))?;
    let mut resumes = HashMap::new();
    for elem in found.elements() {
        let (low, _) = consumer
            .fetch_watermarks(elem.topic(), elem.partition(), timeout)
            .map_err(|e| kerr("cannot read partition ends", e))?;
        let start = match elem.offset() {
            Offset::Offset(o) => o,
            // No record at or after the time.
            _ => continue,
        };
        check_held(elem.topic(), elem.partition(), low, start, since)?;
        resumes.insert(
            (elem.topic().to_owned(), elem.partition()),
            Resume {
                offset: start,
                watermark: i64::MIN,
                processed_until: 0,
                final_watermark: i64::MIN,
                rooms: Vec::new(),
            },
        );
    }
    Ok(resumes)
}

/// Whether the partition still holds every record from `since` on: a start at its first
/// kept offset, when earlier ones were deleted, may have lost some.
fn check_held(
    topic: &str,
    partition: i32,
    low: i64,
    start: i64,
    since: i64,
) -> Result<(), PipelineError> {
    if start > low || low == 0 {
        return Ok(());
    }
    let at = chrono::DateTime::from_timestamp_millis(since)
        .map(|t| t.format("%Y-%m-%d %H:%M:%SZ").to_string())
        .unwrap_or_default();
    Err(PipelineError::Topics(format!(
        "backfill: {topic} partition {partition} no longer holds records from {at} \
         (offsets below {low} were deleted by its retention); choose a later start"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rf_operators::{FinalReading, FinalReadings, OfficeRow, RoomRow};
    use rf_schemas::TenantId;

    const HOUR: i64 = 3_600_000;

    fn room(start: i64, is_final: bool) -> RoomRow {
        RoomRow {
            tenant: TenantId::parse("acme").unwrap(),
            granularity: Granularity::H1,
            office_id: "lon".into(),
            room_id: "r1".into(),
            window_start: start,
            window_end: start + HOUR,
            samples: 1,
            avg_people: 1.0,
            peak_people: 1,
            occupied_ratio: 1.0,
            capacity: 4,
            utilization: 0.25,
            is_final,
            version: 1,
        }
    }

    #[test]
    fn keeps_only_final_rows_of_windows_starting_in_the_range() {
        let backfill = Backfill {
            from: 10 * HOUR,
            to: 12 * HOUR,
            max_rate: None,
        };
        let mut batch = Batch::default();
        for (start, is_final) in [
            (9 * HOUR, true),
            (10 * HOUR, true),
            (11 * HOUR, false),
            (11 * HOUR, true),
            (12 * HOUR, true),
        ] {
            batch.rooms.push(room(start, is_final));
        }
        let office = |start| OfficeRow {
            tenant: TenantId::parse("acme").unwrap(),
            granularity: Granularity::H1,
            office_id: "lon".into(),
            window_start: start,
            window_end: start + HOUR,
            rooms_reporting: 1,
            avg_people: 1.0,
            peak_people: 1.0,
            capacity: 4,
            utilization: 0.25,
            is_final: true,
            version: 1,
        };
        batch.offices = vec![office(10 * HOUR), office(12 * HOUR)];
        let readings = |ts| FinalReadings {
            tenant: TenantId::parse("acme").unwrap(),
            office_id: "lon".into(),
            room_id: "r1".into(),
            partition: 0,
            capacity: 4,
            readings: vec![FinalReading {
                sensor_id: "s1".into(),
                ts,
                people_count: 1,
                extra: Default::default(),
                schema_id: 1,
                offset: 0,
            }],
        };
        batch.readings = vec![readings(10 * HOUR - 1), readings(10 * HOUR + 60_000)];
        batch.live_rooms.push(rf_operators::LiveRoom {
            tenant: TenantId::parse("acme").unwrap(),
            room_id: "r1".into(),
            office_id: "lon".into(),
            people: 1,
            ts: 10 * HOUR,
            capacity: 4,
            utilization: 0.25,
        });
        backfill.keep(&mut batch);
        let starts: Vec<i64> = batch.rooms.iter().map(|r| r.window_start / HOUR).collect();
        assert_eq!(starts, [10, 11]);
        assert!(batch.rooms.iter().all(|r| r.is_final));
        assert_eq!(batch.offices.len(), 1);
        assert_eq!(batch.readings.len(), 1);
        assert_eq!(batch.readings[0].readings[0].ts, 10 * HOUR + 60_000);
        assert!(batch.live_rooms.is_empty());
    }

    #[test]
    fn reads_until_every_window_starting_in_the_range_is_final() {
        let backfill = Backfill {
            from: 0,
            to: HOUR,
            max_rate: None,
        };
        // The latest local day starting before `to` may last 25 hours.
        assert_eq!(backfill.stop_at(300_000), HOUR + 25 * HOUR + 300_000);
    }

    #[test]
    fn a_start_at_the_first_kept_offset_after_deletions_is_refused() {
        assert!(check_held("occupancy.acme", 0, 0, 0, 0).is_ok());
        assert!(check_held("occupancy.acme", 0, 50, 60, 0).is_ok());
        let error = check_held("occupancy.acme", 3, 50, 50, 0).unwrap_err();
        assert!(error.to_string().contains("partition 3"), "{error}");
        assert!(error.to_string().contains("below 50"), "{error}");
    }
}
