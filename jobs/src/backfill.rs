//! Backfill jobs: a tenant's windows starting in a range recomputed from its readings
//! topic with the room metadata as it is now (see [`rf_pipelines::backfill`]), beside the
//! live pipeline, then the range's rows the recomputation no longer produces removed (a
//! room withdrawn, or moved to another office).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use serde::{Deserialize, Serialize};

use rf_pipelines::backfill::{self, Backfill};
use rf_pipelines::source::Topology;
use rf_pipelines::{Metrics, Region, RunOptions, RunReport, Settings};
use rf_schemas::TenantId;
use rf_sinks::config::ClickHouseConfig;

use crate::JobError;

/// How backfills run.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct BackfillConfig {
    /// Timely workers (threads) of a backfill.
    pub workers: usize,
    /// The nice value of a backfill's threads, 0 to 19: on shared cores the live
    /// pipeline's threads run first.
    pub nice: i32,
    /// Records a backfill reads a second at most (0: no limit), so that the broker and
    /// the stores it shares with the live pipeline keep their headroom.
    pub max_records_per_sec: u64,
}

impl Default for BackfillConfig {
    fn default() -> Self {
        Self {
            workers: 1,
            nice: 10,
            max_records_per_sec: 50_000,
        }
    }
}

impl BackfillConfig {
    /// Checks every field; the error names the field.
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=64).contains(&self.workers) {
            return Err(format!(
                "backfill.workers: {} is not in 1..=64",
                self.workers
            ));
        }
        if !(0..=19).contains(&self.nice) {
            return Err(format!("backfill.nice: {} is not in 0..=19", self.nice));
        }
        Ok(())
    }
}

/// The settings of `tenant`'s backfill: the worker's, serving only the tenant, with
/// `config`'s workers in one process and a consumer group of its own.
pub fn settings_for(settings: &Settings, tenant: &TenantId, config: &BackfillConfig) -> Settings {
    let mut s = settings.clone();
    s.pipeline.tenants = vec![tenant.to_string()];
    s.pipeline.workers = config.workers;
    s.pipeline.hosts.clear();
    s.pipeline.process = 0;
    s.kafka.group_id = format!("{}.backfill", settings.kafka.group_id);
    s
}

/// Checks the range and that the tenant's readings topic still holds it; returns how
/// many records there are from its start to the partitions' ends (the most a backfill
/// reads).
pub fn records_to_read(settings: &Settings, range: &Backfill) -> Result<u64, JobError> {
    if range.from >= range.to {
        return Err(JobError::Invalid(format!(
            "backfill: from ({}) must be before to ({})",
            day(range.from),
            day(range.to)
        )));
    }
    if range.to > rf_schemas::unix_ms() {
        return Err(JobError::Invalid(format!(
            "backfill: to ({}) is in the future; the live pipeline writes what comes",
            day(range.to)
        )));
    }
    let topology = Topology::discover(settings)?;
    let positions = backfill::positions(&settings.kafka, &topology, range.from)?;
    let consumer: BaseConsumer = settings
        .kafka
        .client_config()
        .create()
        .map_err(|e| JobError::kafka("backfill", e))?;
    let timeout = Duration::from_secs(settings.kafka.timeout_secs);
    let mut total = 0;
    for ((topic, partition), resume) in &positions {
        let (_, high) = consumer
            .fetch_watermarks(topic, *partition, timeout)
            .map_err(|e| JobError::kafka(format!("backfill: {topic}"), e))?;
        total += (high - resume.offset).max(0) as u64;
    }
    Ok(total)
}

/// A backfill running on threads of its own.
pub struct Running {
    tenant: TenantId,
    range: Backfill,
    lateness: i64,
    /// Rows older than this (µs) that the backfill did not rewrite are stale afterwards.
    since: u64,
    consumed: Arc<AtomicU64>,
    shutdown: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Result<RunReport, rf_pipelines::PipelineError>>,
}

/// What a backfill did.
#[derive(Debug)]
pub struct Outcome {
    /// The pipeline's run.
    pub report: RunReport,
    /// Stale room and office rows removed.
    pub removed: u64,
    /// Readings no longer counted removed.
    pub removed_readings: u64,
    /// Windows ending after this (ms) were not final yet, and were left to the live
    /// pipeline; `None` when every window of the range was.
    pub open_after: Option<i64>,
}

/// Starts the backfill of `tenant`'s `range` with `settings` (see [`settings_for`]): the
/// pipeline on threads of its own, at `config.nice`.
pub fn start(
    settings: Settings,
    tenant: &TenantId,
    range: Backfill,
    config: &BackfillConfig,
) -> Result<Running, JobError> {
    let range = Backfill {
        max_rate: (config.max_records_per_sec > 0).then_some(config.max_records_per_sec),
        ..range
    };
    let options = RunOptions {
        backfill: Some(range),
        ..Default::default()
    };
    let (consumed, shutdown) = (options.consumed.clone(), options.shutdown.clone());
    let lateness = settings.pipeline.allowed_lateness_secs as i64 * 1000;
    let since = backfill::now_micros();
    let nice = config.nice;
    let thread = std::thread::Builder::new()
        .name(format!("backfill-{tenant}"))
        .spawn(move || {
            lower_priority(nice);
            rf_pipelines::run(&settings, options, Metrics::new())
        })
        .map_err(|e| JobError::Invalid(format!("cannot start the backfill: {e}")))?;
    Ok(Running {
        tenant: tenant.clone(),
        range,
        lateness,
        since,
        consumed,
        shutdown,
        thread,
    })
}

impl Running {
    /// Records read so far.
    pub fn consumed(&self) -> u64 {
        self.consumed.load(Ordering::Relaxed)
    }

    /// Whether the pipeline ended.
    pub fn is_finished(&self) -> bool {
        self.thread.is_finished()
    }

    /// Stops the pipeline after the epoch it is writing; the rows written stay, and no
    /// stale row is removed. Returns the records it read.
    pub fn stop(self) -> u64 {
        self.shutdown.store(true, Ordering::Relaxed);
        let _ = self.thread.join();
        self.consumed.load(Ordering::Relaxed)
    }

    /// Waits for the pipeline, then removes the range's stale rows from `region`'s
    /// ClickHouse and makes the query service's cached answers unreachable.
    pub async fn finish(self, region: &Region) -> Result<Outcome, JobError> {
        let report = tokio::task::spawn_blocking(move || self.thread.join())
            .await
            .map_err(|e| JobError::Invalid(format!("the backfill's pipeline failed: {e}")))?
            .map_err(|_| JobError::Invalid("the backfill's pipeline panicked".into()))??;
        let (tenant, range) = (&self.tenant, &self.range);
        let closed = closed_until(&report, tenant, range, self.lateness);
        let (removed, removed_readings) =
            remove_stale(&region.clickhouse, tenant, range, closed, self.since).await?;
        invalidate_caches(&region.redis, tenant, range).await?;
        let all = range.stop_at(self.lateness) - self.lateness;
        Ok(Outcome {
            report,
            removed,
            removed_readings,
            open_after: (closed < all).then_some(closed),
        })
    }
}

/// Up to where (ms, a window end) the backfill made every window of the range final:
/// every partition it read accepted readings up to the allowed lateness past it.
/// Partitions with no accepted reading hold none of the range's windows.
fn closed_until(report: &RunReport, tenant: &TenantId, range: &Backfill, lateness: i64) -> i64 {
    report
        .watermarks
        .iter()
        .filter(|(t, _, w)| t == tenant && *w != i64::MIN)
        .map(|(_, _, w)| w - lateness)
        .min()
        .unwrap_or(i64::MAX)
        .min(range.stop_at(lateness) - lateness)
}

/// Removes the range's room and office rows the backfill did not write (their versions
/// are older than `since`, the backfill's start in µs) among windows ending by `closed`
/// (ms), then the readings of those windows no longer counted: those without their
/// room's 15-minute row. Returns how many rows and readings there were. Rows written
/// meanwhile by the live pipeline are newer and stay.
async fn remove_stale(
    clickhouse: &ClickHouseConfig,
    tenant: &TenantId,
    range: &Backfill,
    closed: i64,
    since: u64,
) -> Result<(u64, u64), JobError> {
    let client = rf_sinks::clickhouse::client(clickhouse);
    let ch = |e: clickhouse::error::Error| JobError::from(e);
    let db = tenant.clickhouse_db();
    // Windows start and end on whole seconds.
    let (from, to) = (ceil_secs(range.from), ceil_secs(range.to));
    let closed = closed.div_euclid(1000).min(i64::from(u32::MAX));
    let rows = format!(
        "window_start >= toDateTime({from}) AND window_start < toDateTime({to}) \
         AND window_end <= toDateTime({closed}) AND version < {since}"
    );
    // A reading's version is its source offset, not its writing time: it is stale when
    // its room's row of the window went (a withdrawn room's, or one under its old office).
    let window = "toStartOfFifteenMinutes(ts)";
    let readings = format!(
        "ts >= toDateTime({from}) AND {window} >= toDateTime({from}) \
         AND {window} < toDateTime({to}) AND {window} <= toDateTime({closed} - 900) \
         AND (office_id, room_id, {window}) NOT IN (SELECT office_id, room_id, window_start \
         FROM {db}.room_utilization WHERE granularity = '15m' \
         AND window_start >= toDateTime({from}) AND window_start < toDateTime({to}))"
    );
    let mut removed = [0; 3];
    let tables = [
        ("room_utilization", &rows),
        ("office_utilization", &rows),
        ("readings", &readings),
    ];
    for ((table, condition), removed) in tables.into_iter().zip(&mut removed) {
        let stale: u64 = client
            .query(&format!(
                "SELECT count() FROM {db}.{table} WHERE {condition}"
            ))
            .fetch_one()
            .await
            .map_err(ch)?;
        if stale > 0 {
            crate::retention::mutate(&client, &db, table, condition).await?;
        }
        *removed = stale;
    }
    Ok((removed[0] + removed[1], removed[2]))
}

/// Makes the query service's cached answers about the tenant's range unreachable.
async fn invalidate_caches(
    redis: &rf_sinks::config::RedisConfig,
    tenant: &TenantId,
    range: &Backfill,
) -> Result<(), JobError> {
    use rf_sinks::redis::{generation_key, history_generation_key, month_of};
    let (mut conn, rerr) = crate::tenant::redis_conn(redis).await?;
    let mut pipe = redis::pipe();
    pipe.incr(generation_key(tenant), 1).ignore();
    pipe.incr(history_generation_key(tenant), 1).ignore();
    let mut month = month_of(range.from);
    while month <= month_of(range.to - 1) {
        pipe.incr(rf_sinks::redis::month_generation_key(tenant, month), 1)
            .ignore();
        month = if month % 100 == 12 {
            month + 89
        } else {
            month + 1
        };
    }
    pipe.query_async::<()>(&mut conn).await.map_err(rerr)
}

/// Lowers the calling thread's priority to `nice`; threads it starts inherit it.
pub fn lower_priority(nice: i32) {
    // SAFETY: setpriority reads its arguments only. On Linux, PRIO_PROCESS with 0 names
    // the calling thread.
    let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, nice) };
    if rc != 0 {
        tracing::warn!(nice, error = %std::io::Error::last_os_error(), "cannot lower the backfill's priority");
    }
}

fn ceil_secs(ms: i64) -> i64 {
    (ms + 999).div_euclid(1000)
}

/// A time as its UTC date and time, for messages.
pub fn day(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M:%SZ").to_string())
        .unwrap_or_else(|| ms.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: i64 = 3_600_000;

    fn report(watermarks: &[(&str, i32, i64)]) -> RunReport {
        RunReport {
            watermarks: watermarks
                .iter()
                .map(|&(t, p, w)| (TenantId::parse(t).unwrap(), p, w))
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn closed_up_to_the_slowest_partition_that_read_readings() {
        let acme = TenantId::parse("acme").unwrap();
        let range = Backfill {
            from: 0,
            to: 24 * HOUR,
            max_rate: None,
        };
        let lateness = 300_000;
        let r = report(&[
            ("acme", 0, 30 * HOUR),
            ("acme", 1, 20 * HOUR),
            ("acme", 2, i64::MIN),
            ("other", 0, HOUR),
        ]);
        assert_eq!(
            closed_until(&r, &acme, &range, lateness),
            20 * HOUR - lateness
        );
        // Every partition read past the stop: all the range's windows are final.
        let r = report(&[("acme", 0, 90 * HOUR)]);
        assert_eq!(closed_until(&r, &acme, &range, lateness), 49 * HOUR);
        // Nothing read: the range has no windows, and any row in it is stale.
        assert_eq!(
            closed_until(&report(&[]), &acme, &range, lateness),
            49 * HOUR
        );
    }

    #[test]
    fn config_errors_name_the_field() {
        let bad = BackfillConfig {
            workers: 0,
            ..Default::default()
        };
        assert!(bad.validate().unwrap_err().starts_with("backfill.workers"));
        let bad = BackfillConfig {
            nice: 25,
            ..Default::default()
        };
        assert!(bad.validate().unwrap_err().starts_with("backfill.nice"));
        assert!(BackfillConfig::default().validate().is_ok());
    }
}
