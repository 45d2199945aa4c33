//! Durable jobs. A job is submitted to the topic `roomflow.jobs` and its status kept in
//! the compacted topic `roomflow.job-status` (key: the job id), mirrored to ClickHouse
//! `rf_platform.jobs`. A worker ([`worker::Worker`], `roomflow jobs`) takes jobs in
//! order and commits a submission's offset only once the job ended, so a job whose
//! worker died is run again by the next one (every kind is idempotent).

pub mod worker;

pub use rf_schemas::unix_ms as now_ms;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};

use rf_pipelines::KafkaConfig;
use rf_schemas::TenantId;
use rf_sinks::config::ClickHouseConfig;

use crate::JobError;

/// Submissions: key the job id, value a [`JobSpec`] as JSON.
pub const JOBS_TOPIC: &str = "roomflow.jobs";
/// Statuses, compacted: key the job id, value a [`JobStatus`] as JSON.
pub const STATUS_TOPIC: &str = "roomflow.job-status";
/// The tenant a platform job (a backup) is submitted as: a reserved id, no tenant's.
pub fn platform() -> TenantId {
    TenantId::parse("platform").expect("a valid id")
}

/// Log lines a status keeps, the latest.
const KEPT_LOGS: usize = 200;

/// What a job does.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum JobKind {
    /// The tenant's utilization report over whole days `[from, to)` (ms): CSV and HTML
    /// files in the worker's `jobs.output_dir`.
    Report {
        /// The first day, ms.
        from: i64,
        /// The end, ms.
        to: i64,
    },
    /// Retention and downsampling of the tenant's tables (`jobs.retention` and the
    /// tenant's `retention_days`); a dry run only lists what would go.
    Retention {
        /// Only list.
        dry_run: bool,
    },
    /// The tenant's windows starting in `[from, to)` (ms) recomputed from its readings
    /// topic with the room metadata as it is now, beside the live pipeline; the range's
    /// rows the recomputation no longer produces are then removed.
    Backfill {
        /// The first window start, ms.
        from: i64,
        /// The end, ms.
        to: i64,
    },
    /// Erasure of a deleted tenant past its grace period, everywhere, ending with a
    /// verification report (JSON) in the worker's `jobs.output_dir`.
    Erase,
    /// A month of the tenant's cold tier brought back into ClickHouse, each file's
    /// checksum checked first; retention leaves it hot for `keep_days`, then returns it.
    RestoreCold {
        /// The month, `YYYYMM`.
        month: u32,
        /// Days it stays hot.
        keep_days: u32,
    },
    /// A backup into `jobs.backup.url` of these tenants, or of the whole platform when
    /// empty (submitted as tenant `platform`, which no tenant can be called).
    Backup {
        /// The tenants; empty: every tenant and the platform's own records.
        #[serde(default)]
        tenants: Vec<String>,
    },
}

impl JobKind {
    /// The kind's name.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Report { .. } => "report",
            Self::Retention { .. } => "retention",
            Self::Backfill { .. } => "backfill",
            Self::Erase => "erase",
            Self::RestoreCold { .. } => "restore_cold",
            Self::Backup { .. } => "backup",
        }
    }
}

/// A submitted job.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobSpec {
    /// `<kind>-<tenant>-<ms>`: unique per submission.
    pub id: String,
    /// The tenant it is about.
    pub tenant: String,
    /// What it does.
    pub kind: JobKind,
    /// When it was submitted, ms.
    pub submitted_ms: i64,
}

/// Where a job is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    /// Waiting for a worker.
    Queued,
    /// A worker runs it.
    Running,
    /// Done.
    Succeeded,
    /// Ended with an error (in `message`).
    Failed,
    /// Cancelled before it ended.
    Cancelled,
}

impl JobState {
    /// Whether the job ended.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::Cancelled)
    }

    /// The state's name.
    pub fn label(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }
}

/// A job's status.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobStatus {
    /// The job.
    pub spec: JobSpec,
    /// Where it is.
    pub state: JobState,
    /// Units of work done.
    pub done: u64,
    /// Units of work in all (0 while unknown).
    pub total: u64,
    /// What the units are (e.g. "steps").
    pub unit: String,
    /// The outcome, or the error.
    pub message: String,
    /// Files written.
    pub outputs: Vec<String>,
    /// Runs started (a job whose worker died runs again).
    pub attempts: u32,
    /// When the current run started, ms.
    pub started_ms: Option<i64>,
    /// When it ended, ms.
    pub finished_ms: Option<i64>,
    /// The last change, ms: orders revisions.
    pub updated_ms: i64,
    /// The latest log lines, each `<RFC 3339 time> <message>`.
    pub logs: Vec<String>,
}

impl JobStatus {
    /// A job just submitted.
    pub fn queued(spec: JobSpec) -> Self {
        Self {
            updated_ms: spec.submitted_ms,
            spec,
            state: JobState::Queued,
            done: 0,
            total: 0,
            unit: String::new(),
            message: String::new(),
            outputs: Vec::new(),
            attempts: 0,
            started_ms: None,
            finished_ms: None,
            logs: Vec::new(),
        }
    }

    /// Adds a log line, dropping the oldest past [`KEPT_LOGS`].
    pub fn log(&mut self, now: i64, line: impl Into<String>) {
        let at = chrono::DateTime::from_timestamp_millis(now)
            .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
            .unwrap_or_default();
        self.logs.push(format!("{at} {}", line.into()));
        if self.logs.len() > KEPT_LOGS {
            self.logs.remove(0);
        }
    }
}

fn kafka_error(what: &str) -> impl Fn(rdkafka::error::KafkaError) -> JobError + '_ {
    move |e| JobError::kafka(what.to_string(), e)
}

/// Creates the jobs topic and the status topic if they are missing.
pub async fn ensure_topics(kafka: &KafkaConfig) -> Result<(), JobError> {
    use rf_pipelines::topics::{create, TopicSpec};
    let topics = [
        TopicSpec::new(JOBS_TOPIC, 1),
        TopicSpec::compacted(STATUS_TOPIC),
    ];
    create(kafka, &topics).await?;
    Ok(())
}

/// Writes a status to the status topic and its mirror; the topic is the record, so a
/// mirror failure is logged, not returned.
pub async fn put_status(
    producer: &FutureProducer,
    kafka: &KafkaConfig,
    clickhouse: &ClickHouseConfig,
    status: &JobStatus,
) -> Result<(), JobError> {
    let value = serde_json::to_vec(status).expect("a status serializes");
    let record = FutureRecord::to(STATUS_TOPIC)
        .key(&status.spec.id)
        .payload(&value);
    producer
        .send(record, Duration::from_secs(kafka.timeout_secs))
        .await
        .map_err(|(e, _)| JobError::kafka("writing a job status", e))?;
    if let Err(error) = mirror(clickhouse, status).await {
        tracing::warn!(job = %status.spec.id, tenant = %status.spec.tenant, error = %rf_schemas::chain(&error), "job status not mirrored to rf_platform.jobs");
    }
    Ok(())
}

#[derive(clickhouse::Row, Serialize)]
struct JobRow<'a> {
    id: &'a str,
    tenant: &'a str,
    kind: &'a str,
    state: i8,
    done: u64,
    total: u64,
    message: &'a str,
    attempts: u32,
    submitted_at: u32,
    started_at: u32,
    finished_at: u32,
    version: u64,
}

/// Inserts the status row; the platform's tables are made only when the insert finds
/// them missing, not before every write.
pub(crate) async fn mirror(clickhouse: &ClickHouseConfig, s: &JobStatus) -> Result<(), JobError> {
    match insert_status(rf_sinks::clickhouse::client(clickhouse), s).await {
        Ok(()) => Ok(()),
        Err(_) => insert_status(crate::platform(clickhouse).await?, s).await,
    }
}

async fn insert_status(client: clickhouse::Client, s: &JobStatus) -> Result<(), JobError> {
    let ch = |e: clickhouse::error::Error| JobError::from(e);
    let secs = |ms: i64| (ms / 1000).clamp(0, u32::MAX as i64) as u32;
    let mut insert = client
        .with_database("rf_platform")
        .insert::<JobRow>("jobs")
        .await
        .map_err(ch)?;
    insert
        .write(&JobRow {
            id: &s.spec.id,
            tenant: &s.spec.tenant,
            kind: s.spec.kind.name(),
            state: s.state as i8 + 1,
            done: s.done,
            total: s.total,
            message: &s.message,
            attempts: s.attempts,
            submitted_at: secs(s.spec.submitted_ms),
            started_at: s.started_ms.map_or(0, secs),
            finished_at: s.finished_ms.map_or(0, secs),
            version: s.updated_ms.max(0) as u64,
        })
        .await
        .map_err(ch)?;
    insert.end().await.map_err(ch)
}

/// Submits a job: its queued status first (so `job status` knows it at once), then the
/// submission.
pub async fn submit(
    kafka: &KafkaConfig,
    clickhouse: &ClickHouseConfig,
    tenant: &TenantId,
    kind: JobKind,
) -> Result<JobStatus, JobError> {
    ensure_topics(kafka).await?;
    let now = now_ms();
    let spec = JobSpec {
        id: format!("{}-{tenant}-{now}", kind.name()),
        tenant: tenant.to_string(),
        kind,
        submitted_ms: now,
    };
    let producer: FutureProducer = kafka
        .client_config()
        .create()
        .map_err(kafka_error("jobs"))?;
    let status = JobStatus::queued(spec.clone());
    put_status(&producer, kafka, clickhouse, &status).await?;
    let value = serde_json::to_vec(&spec).expect("a spec serializes");
    producer
        .send(
            FutureRecord::to(JOBS_TOPIC).key(&spec.id).payload(&value),
            Duration::from_secs(kafka.timeout_secs),
        )
        .await
        .map_err(|(e, _)| JobError::kafka("submitting the job", e))?;
    Ok(status)
}

/// The status topic's key of a cancel request: requests are records of their own, so a
/// worker's status writes never overwrite one.
fn cancel_key(id: &str) -> String {
    format!("cancel/{id}")
}

/// Asks a job to stop: a queued job is cancelled when a worker reaches it, a running one
/// at its next step. Returns the job's status.
pub async fn cancel(kafka: &KafkaConfig, id: &str) -> Result<JobStatus, JobError> {
    let status = read(kafka)?
        .statuses
        .remove(id)
        .ok_or_else(|| JobError::Invalid(format!("no job {id:?}")))?;
    if status.state.is_final() {
        return Err(JobError::Invalid(format!(
            "job {id} {} already",
            status.state.label()
        )));
    }
    let producer: FutureProducer = kafka
        .client_config()
        .create()
        .map_err(kafka_error("jobs"))?;
    let at = now_ms().to_string();
    producer
        .send(
            FutureRecord::to(STATUS_TOPIC)
                .key(&cancel_key(id))
                .payload(&at),
            Duration::from_secs(kafka.timeout_secs),
        )
        .await
        .map_err(|(e, _)| JobError::kafka("requesting the cancel", e))?;
    Ok(status)
}

/// Every job's latest status and the cancel requests (the status topic read to its end).
pub fn read(kafka: &KafkaConfig) -> Result<StatusTail, JobError> {
    let mut tail = StatusTail::new(kafka, "roomflow-job-reader")?;
    tail.catch_up(Duration::from_secs(kafka.timeout_secs))?;
    Ok(tail)
}

/// A reader of the status topic that keeps every job's latest status and follows new
/// ones.
pub struct StatusTail {
    consumer: BaseConsumer,
    ends: BTreeMap<i32, i64>,
    /// Every job's latest status read so far.
    pub statuses: BTreeMap<String, JobStatus>,
    /// Jobs asked to stop.
    pub cancels: std::collections::BTreeSet<String>,
    /// Job workers by name, with when each was last seen (ms).
    pub workers: BTreeMap<String, i64>,
}

/// Keys of job workers' heartbeats in the status topic: `worker/<name>`.
pub const WORKER_PREFIX: &str = "worker/";
/// How often a worker says it is alive.
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(30);

/// A job worker's sign of life.
#[derive(Debug, Serialize, Deserialize)]
pub struct Heartbeat {
    /// When it was sent, ms.
    pub seen_ms: i64,
}

/// Writes that the worker `name` is alive now.
pub async fn beat(
    producer: &FutureProducer,
    kafka: &KafkaConfig,
    name: &str,
) -> Result<(), JobError> {
    let value =
        serde_json::to_vec(&Heartbeat { seen_ms: now_ms() }).expect("a heartbeat serializes");
    let key = format!("{WORKER_PREFIX}{name}");
    let record = FutureRecord::to(STATUS_TOPIC).key(&key).payload(&value);
    producer
        .send(record, Duration::from_secs(kafka.timeout_secs))
        .await
        .map_err(|(e, _)| JobError::kafka("writing a worker heartbeat", e))?;
    Ok(())
}

/// A warning when no worker has been seen for twice the heartbeat interval, so nobody
/// waits for a job nobody will run.
pub fn no_worker_warning(last_seen_ms: Option<i64>, now_ms: i64) -> Option<String> {
    let stale = 2 * HEARTBEAT_EVERY.as_millis() as i64;
    let start = "start `roomflow jobs` (or `roomflow run` with jobs.in_pipeline)";
    match last_seen_ms {
        Some(seen) if now_ms - seen <= stale => None,
        Some(seen) => Some(format!(
            "no job worker has been seen for {} s: {start}",
            (now_ms - seen) / 1000
        )),
        None => Some(format!("no job worker has ever been seen: {start}")),
    }
}

impl StatusTail {
    /// When a job worker was last seen (ms), if one ever was.
    pub fn last_worker_seen(&self) -> Option<i64> {
        self.workers.values().copied().max()
    }

    /// For a job still waiting: a warning when no worker has been seen lately.
    pub fn no_worker_warning(&self, now_ms: i64) -> Option<String> {
        no_worker_warning(self.last_worker_seen(), now_ms)
    }

    /// Assigns the status topic from its start.
    pub fn new(kafka: &KafkaConfig, group: &str) -> Result<Self, JobError> {
        let consumer: BaseConsumer = kafka
            .client_config()
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .create()
            .map_err(kafka_error("job status"))?;
        let timeout = Duration::from_secs(kafka.timeout_secs);
        let metadata = consumer
            .fetch_metadata(Some(STATUS_TOPIC), timeout)
            .map_err(kafka_error("job status"))?;
        let mut tpl = TopicPartitionList::new();
        let mut ends = BTreeMap::new();
        for p in metadata
            .topics()
            .iter()
            .filter(|t| t.error().is_none())
            .flat_map(|t| t.partitions())
        {
            let (_, high) = consumer
                .fetch_watermarks(STATUS_TOPIC, p.id(), timeout)
                .map_err(kafka_error("job status"))?;
            tpl.add_partition_offset(STATUS_TOPIC, p.id(), Offset::Beginning)
                .map_err(kafka_error("job status"))?;
            ends.insert(p.id(), high);
        }
        if !ends.is_empty() {
            consumer.assign(&tpl).map_err(kafka_error("job status"))?;
        }
        Ok(Self {
            consumer,
            ends,
            statuses: BTreeMap::new(),
            cancels: Default::default(),
            workers: Default::default(),
        })
    }

    /// Reads what is there now, for at most `wait`.
    pub fn poll(&mut self, wait: Duration) -> Result<(), JobError> {
        if self.consumer.assignment().map_or(0, |a| a.count()) == 0 {
            std::thread::sleep(wait);
            return Ok(());
        }
        let mut wait = wait;
        while let Some(message) = self.consumer.poll(wait) {
            wait = Duration::ZERO;
            let m = message.map_err(kafka_error("job status"))?;
            if self
                .ends
                .get(&m.partition())
                .is_some_and(|e| m.offset() + 1 >= *e)
            {
                self.ends.remove(&m.partition());
            }
            let key = m.key().and_then(|k| std::str::from_utf8(k).ok());
            if let Some(id) = key.and_then(|k| k.strip_prefix("cancel/")) {
                self.cancels.insert(id.to_string());
                continue;
            }
            if let Some(worker) = key.and_then(|k| k.strip_prefix(WORKER_PREFIX)) {
                let seen = m
                    .payload()
                    .and_then(|v| serde_json::from_slice::<Heartbeat>(v).ok());
                if let Some(h) = seen {
                    self.workers.insert(worker.to_string(), h.seen_ms);
                }
                continue;
            }
            let Some(value) = m.payload() else { continue };
            match serde_json::from_slice::<JobStatus>(value) {
                Ok(s) => {
                    let newer = self
                        .statuses
                        .get(&s.spec.id)
                        .is_none_or(|old| old.updated_ms <= s.updated_ms);
                    if newer {
                        self.statuses.insert(s.spec.id.clone(), s);
                    }
                }
                Err(error) => {
                    tracing::warn!(offset = m.offset(), %error, "unreadable job status; skipped")
                }
            }
        }
        Ok(())
    }

    /// Reads up to where the topic ended when the tail was made.
    pub fn catch_up(&mut self, timeout: Duration) -> Result<(), JobError> {
        let deadline = Instant::now() + timeout;
        while !self.ends.is_empty() {
            if Instant::now() > deadline {
                return Err(JobError::Topics(format!(
                    "{STATUS_TOPIC} not read to its end within {timeout:?}"
                )));
            }
            self.poll(Duration::from_millis(100))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_queued_job_without_a_worker_says_so() {
        let now = 1_800_000_000_000;
        assert_eq!(no_worker_warning(Some(now - 10_000), now), None);
        let gone = no_worker_warning(Some(now - 300_000), now).unwrap();
        assert!(
            gone.contains("300 s") && gone.contains("roomflow jobs"),
            "{gone}"
        );
        assert!(no_worker_warning(None, now).unwrap().contains("ever"));
    }

    #[test]
    fn statuses_round_trip_and_keep_the_latest_logs() {
        let spec = JobSpec {
            id: "report-acme-1".into(),
            tenant: "acme".into(),
            kind: JobKind::Report {
                from: 0,
                to: 86_400_000,
            },
            submitted_ms: 1,
        };
        let mut s = JobStatus::queued(spec);
        for i in 0..250 {
            s.log(1_767_571_200_000, format!("line {i}"));
        }
        assert_eq!(s.logs.len(), KEPT_LOGS);
        assert_eq!(s.logs[0], "2026-01-05T00:00:00.000Z line 50");
        let json = serde_json::to_string(&s).unwrap();
        assert!(json.contains(r#""kind":"report""#), "{json}");
        assert_eq!(serde_json::from_str::<JobStatus>(&json).unwrap(), s);
        assert!(!JobState::Running.is_final() && JobState::Cancelled.is_final());
    }
}
