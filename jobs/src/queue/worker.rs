//! The job worker: takes submissions in order, runs each, and keeps its status; a
//! submission's offset is committed only once its job ended.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::FutureProducer;
use rdkafka::{Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};

use rf_pipelines::{Region, Settings};
use rf_schemas::{TenantConfig, TenantId};

use super::{
    beat, ensure_topics, now_ms, put_status, JobKind, JobSpec, JobState, JobStatus, StatusTail,
    HEARTBEAT_EVERY, JOBS_TOPIC,
};
use crate::backfill::BackfillConfig;
use crate::cold::{ColdConfig, ColdStore};
use crate::retention::RetentionConfig;
use crate::JobError;

/// How jobs run.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct JobsConfig {
    /// Where jobs write their files (reports), one folder per job.
    pub output_dir: PathBuf,
    /// How long rows of each size are kept.
    pub retention: RetentionConfig,
    /// Where months past a tenant's retention are kept, and how long.
    pub cold: ColdConfig,
    /// Where backups go, and how often the worker makes one.
    pub backup: crate::backup::BackupConfig,
    /// The worker submits each served tenant's retention this often, hours (0: only
    /// when someone submits it).
    pub retention_every_hours: u32,
    /// Days between a tenant's deletion and its erasure; the worker submits the erasure
    /// once they passed.
    pub erasure_grace_days: u32,
    /// Whether `roomflow run` (process 0 of a cluster) runs a worker too.
    pub in_pipeline: bool,
    /// How backfills run beside the live pipeline.
    pub backfill: BackfillConfig,
    /// Where `roomflow jobs` serves its Prometheus metrics (`GET /metrics`: jobs ended,
    /// the worker's heartbeat); empty: nowhere. A worker in the pipeline shows them on
    /// `pipeline.metrics_listen`.
    pub metrics_listen: String,
}

impl Default for JobsConfig {
    fn default() -> Self {
        Self {
            output_dir: PathBuf::from("reports"),
            retention: RetentionConfig::default(),
            cold: ColdConfig::default(),
            backup: crate::backup::BackupConfig::default(),
            retention_every_hours: 24,
            erasure_grace_days: 30,
            in_pipeline: true,
            backfill: BackfillConfig::default(),
            metrics_listen: "127.0.0.1:18091".into(),
        }
    }
}

/// Why a run stopped early.
enum Stop {
    Cancelled,
    /// The worker is stopping: the job runs again when a worker starts.
    Interrupted,
    Failed(JobError),
}

impl From<JobError> for Stop {
    fn from(e: JobError) -> Self {
        Self::Failed(e)
    }
}

/// Runs submitted jobs one at a time.
pub struct Worker {
    settings: Settings,
    config: JobsConfig,
    consumer: BaseConsumer,
    tail: StatusTail,
    producer: FutureProducer,
    runtime: tokio::runtime::Runtime,
    stop: Arc<AtomicBool>,
    /// Its name in heartbeats: host and process.
    name: String,
    /// When it last said it is alive.
    beaten: Option<std::time::Instant>,
    /// Where it counts the jobs it ends and shows it is alive.
    metrics: Option<rf_pipelines::Metrics>,
    /// The span of the running job's current step (a trace's child of the job's span),
    /// from one recorded step to the next.
    step: Option<tracing::Span>,
}

/// Whether a worker serving the tenants `listed` (not empty) runs `spec`.
fn serves(listed: &[String], spec: &JobSpec) -> bool {
    match &spec.kind {
        JobKind::Backup { tenants } => {
            !tenants.is_empty() && tenants.iter().all(|t| listed.contains(t))
        }
        _ => listed.contains(&spec.tenant),
    }
}

/// The longest wait between two tries to start a worker.
const MAX_START_WAIT: Duration = Duration::from_secs(60);

impl Worker {
    /// [`Worker::new`], tried again with backoff (1 s doubling to a minute) until it
    /// starts or `stop` is set: a broker that is down or busy catching up delays the
    /// worker, it does not leave the submitted jobs without one.
    pub fn start(settings: &Settings, config: &JobsConfig, stop: &Arc<AtomicBool>) -> Option<Self> {
        let mut wait = Duration::from_secs(1);
        for attempt in 1u32.. {
            match Self::new(settings, config) {
                Ok(worker) => {
                    tracing::info!(attempt, output_dir = %config.output_dir.display(), "job worker started");
                    return Some(worker.stop_on(stop.clone()));
                }
                Err(error) => {
                    tracing::warn!(error = %rf_schemas::chain(&error), attempt, retry_in = ?wait, "the job worker cannot start yet")
                }
            }
            let deadline = std::time::Instant::now() + wait;
            while std::time::Instant::now() < deadline {
                if stop.load(Ordering::Relaxed) {
                    return None;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            wait = (wait * 2).min(MAX_START_WAIT);
        }
        None
    }

    /// Creates the job topics if missing, joins the consumer group
    /// `<kafka.group_id>.jobs` and reads every status. It runs the jobs of the tenants
    /// `pipeline.tenants` lists (every tenant when empty).
    pub fn new(settings: &Settings, config: &JobsConfig) -> Result<Self, JobError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| JobError::Invalid(format!("cannot start a runtime: {e}")))?;
        let kafka = &settings.kafka;
        runtime.block_on(ensure_topics(kafka))?;
        let kerr = |e: rdkafka::error::KafkaError| JobError::kafka("jobs", e);
        let consumer: BaseConsumer = kafka
            .client_config()
            .set("group.id", format!("{}.jobs", kafka.group_id))
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            // A job may run for hours between two polls.
            .set("max.poll.interval.ms", "86400000")
            .create()
            .map_err(kerr)?;
        consumer.subscribe(&[JOBS_TOPIC]).map_err(kerr)?;
        let producer: FutureProducer = {
            let _guard = runtime.enter();
            kafka.client_config().create().map_err(kerr)?
        };
        let mut tail = StatusTail::new(kafka, "roomflow-jobs-status")?;
        tail.catch_up(Duration::from_secs(kafka.timeout_secs))?;
        Ok(Self {
            settings: settings.clone(),
            config: config.clone(),
            consumer,
            tail,
            producer,
            runtime,
            stop: Arc::default(),
            name: format!(
                "{}-{}",
                std::env::var("HOSTNAME").unwrap_or_else(|_| "local".into()),
                std::process::id()
            ),
            beaten: None,
            metrics: None,
            step: None,
        })
    }

    /// Counts the jobs it ends in `metrics` (`rf_jobs_finished_total`) and shows it is
    /// alive there (`rf_job_worker_heartbeat_seconds`).
    pub fn with_metrics(mut self, metrics: rf_pipelines::Metrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Stops when `stop` is set: a job running then is interrupted at its next step, goes
    /// back to `queued` with its submission uncommitted, and runs again when a worker
    /// starts (every kind reruns idempotently).
    pub fn stop_on(mut self, stop: Arc<AtomicBool>) -> Self {
        self.stop = stop;
        self
    }

    /// Runs jobs until stopped (see [`Worker::stop_on`]), and submits the erasures and
    /// retentions that are due every 10 minutes.
    pub fn run(mut self) {
        let mut scheduled: Option<std::time::Instant> = None;
        while !self.stop.load(Ordering::Relaxed) {
            self.beat_if_due();
            if scheduled.is_none_or(|at| at.elapsed() > Duration::from_secs(600)) {
                scheduled = Some(std::time::Instant::now());
                if let Err(error) = self.schedule_erasures() {
                    tracing::warn!(error = %rf_schemas::chain(&error), "cannot look for tenants to erase; trying again later");
                }
                if let Err(error) = self.schedule_retention() {
                    tracing::warn!(error = %rf_schemas::chain(&error), "cannot submit the scheduled retention; trying again later");
                }
                if let Err(error) = self.schedule_backup() {
                    tracing::warn!(error = %rf_schemas::chain(&error), "cannot submit the scheduled backup; trying again later");
                }
                if let Err(error) = self.measure_storage() {
                    tracing::warn!(error = %rf_schemas::chain(&error), "cannot measure the tenants' storage; trying again later");
                }
            }
            if let Err(error) = self.step(Duration::from_millis(500)) {
                tracing::warn!(error = %rf_schemas::chain(&error), "the job worker failed; trying again");
                std::thread::sleep(Duration::from_secs(1));
            }
        }
    }

    /// Takes the next submission, if one comes within `wait`, and runs it to its end;
    /// returns its final status (a job that had ended already is passed over; a job of a
    /// tenant not served gives `None`), or its `queued` status when the worker was
    /// stopped meanwhile, leaving the submission to the next worker.
    pub fn step(&mut self, wait: Duration) -> Result<Option<JobStatus>, JobError> {
        if let Some(m) = &self.metrics {
            m.job_worker_heartbeat.set(now_ms() / 1000);
        }
        self.tail.poll(Duration::ZERO)?;
        let Some(message) = self.consumer.poll(wait) else {
            return Ok(None);
        };
        let m = message.map_err(|e| JobError::kafka("jobs", e))?;
        let (partition, offset) = (m.partition(), m.offset());
        let spec = m.payload().map(serde_json::from_slice::<JobSpec>);
        let listed = &self.settings.pipeline.tenants;
        let status = match spec {
            // Another deployment's tenant; a backup is run by a worker serving every
            // tenant it holds (the whole platform's by one serving every tenant).
            Some(Ok(spec)) if !listed.is_empty() && !serves(listed, &spec) => None,
            Some(Ok(spec)) => Some(self.run_job(spec)?),
            _ => {
                tracing::warn!(offset, "unreadable job submission; skipped");
                None
            }
        };
        if status.as_ref().is_some_and(|s| !s.state.is_final()) {
            return Ok(status);
        }

        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(JOBS_TOPIC, partition, Offset::Offset(offset + 1))?;
        self.consumer
            .commit(&tpl, CommitMode::Sync)
            .map_err(|e| JobError::kafka("jobs: committing", e))?;
        Ok(status)
    }

    fn run_job(&mut self, spec: JobSpec) -> Result<JobStatus, JobError> {
        let kind = spec.kind.name();
        let _span =
            tracing::info_span!("job", job = %spec.id, tenant = %spec.tenant, kind).entered();
        let mut status = self
            .tail
            .statuses
            .get(&spec.id)
            .cloned()
            .unwrap_or_else(|| JobStatus::queued(spec.clone()));
        if status.state.is_final() {
            return Ok(status);
        }
        let now = now_ms();
        if self.tail.cancels.contains(&spec.id) {
            self.finish(
                &mut status,
                JobState::Cancelled,
                "cancelled before it started",
            )?;
            return Ok(status);
        }
        status.attempts += 1;
        status.state = JobState::Running;
        status.started_ms = Some(now);
        status.done = 0;
        let attempt = status.attempts;
        status.log(now, format!("started (attempt {attempt})"));
        self.put(&mut status)?;
        tracing::info!(job = %spec.id, tenant = %spec.tenant, attempt, "job started");
        self.step = Some(
            tracing::info_span!("step", job = %spec.id, n = 1u64, did = tracing::field::Empty),
        );
        let outcome = match &spec.kind {
            JobKind::Report { from, to } => self.report(&mut status, (*from, *to)),
            JobKind::Retention { dry_run } => self.retention(&mut status, *dry_run),
            JobKind::Backfill { from, to } => self.backfill(&mut status, (*from, *to)),
            JobKind::Erase => self.erase(&mut status),
            JobKind::RestoreCold { month, keep_days } => {
                self.restore_cold(&mut status, *month, *keep_days)
            }
            JobKind::Backup { tenants } => self.backup(&mut status, tenants),
        };
        self.end_step(match &outcome {
            Ok(message) => message,
            Err(_) => "stopped",
        });
        match outcome {
            Ok(message) => self.finish(&mut status, JobState::Succeeded, &message)?,
            Err(Stop::Cancelled) => self.finish(&mut status, JobState::Cancelled, "cancelled")?,
            Err(Stop::Interrupted) => {
                status.state = JobState::Queued;
                let line = "interrupted: its worker stopped; it runs again when a worker starts";
                status.log(now_ms(), line);
                self.put(&mut status)?;
            }
            Err(Stop::Failed(error)) => {
                self.finish(&mut status, JobState::Failed, &rf_schemas::chain(&error))?
            }
        }
        let state = status.state.label();
        if status.state.is_final() {
            tracing::info!(job = %spec.id, tenant = %spec.tenant, state, "job ended");
        } else {
            tracing::info!(job = %spec.id, tenant = %spec.tenant, state, "job interrupted: the worker is stopping");
        }
        Ok(status)
    }

    fn finish(
        &mut self,
        status: &mut JobStatus,
        state: JobState,
        message: &str,
    ) -> Result<(), JobError> {
        let now = now_ms();
        status.state = state;
        status.message = message.to_string();
        status.finished_ms = Some(now);
        status.log(now, format!("{}: {message}", state.label()));
        self.put(status)?;
        if let Some(m) = &self.metrics {
            m.jobs_finished
                .with_label_values(&[status.spec.kind.name(), state.label()])
                .inc();
        }
        Ok(())
    }

    fn put(&mut self, status: &mut JobStatus) -> Result<(), JobError> {
        status.updated_ms = now_ms().max(status.updated_ms + 1);
        let kafka = &self.settings.kafka;
        let clickhouse = &self.settings.clickhouse;
        self.runtime
            .block_on(put_status(&self.producer, kafka, clickhouse, status))?;
        self.tail
            .statuses
            .insert(status.spec.id.clone(), status.clone());
        Ok(())
    }

    /// Records a step and stops if the job was asked to. The step's span ends here,
    /// saying what it did, and the next one's starts.
    fn progress(&mut self, status: &mut JobStatus, done: u64, line: String) -> Result<(), Stop> {
        self.end_step(&line);
        self.step = Some(tracing::info_span!(
            "step",
            job = %status.spec.id,
            n = done + 1,
            did = tracing::field::Empty
        ));
        status.log(now_ms(), line);
        self.tick(status, done)
    }

    /// Ends the current step's span, recording what it did.
    fn end_step(&mut self, did: &str) {
        if let Some(span) = self.step.take() {
            span.record("did", did);
        }
    }

    /// Says the worker is alive when [`HEARTBEAT_EVERY`] passed since it last did: between
    /// jobs, and at each step of a long one.
    fn beat_if_due(&mut self) {
        if self.beaten.is_some_and(|at| at.elapsed() < HEARTBEAT_EVERY) {
            return;
        }
        self.beaten = Some(std::time::Instant::now());
        let kafka = &self.settings.kafka;
        if let Err(error) = self
            .runtime
            .block_on(beat(&self.producer, kafka, &self.name))
        {
            tracing::warn!(error = %rf_schemas::chain(&error), "cannot say the job worker is alive; trying again later");
        }
    }

    /// Records how much is done and stops if the job was asked to.
    fn tick(&mut self, status: &mut JobStatus, done: u64) -> Result<(), Stop> {
        self.beat_if_due();
        status.done = done;
        self.put(status)?;
        self.tail.poll(Duration::ZERO)?;
        if self.tail.cancels.contains(&status.spec.id) {
            return Err(Stop::Cancelled);
        }
        // A job whose work is all done ends, rather than running again.
        if self.stop.load(Ordering::Relaxed) && status.done < status.total {
            return Err(Stop::Interrupted);
        }
        Ok(())
    }

    /// Submits the erasure of every deleted tenant whose grace period passed and that has
    /// none yet; returns the tenants.
    pub fn schedule_erasures(&mut self) -> Result<Vec<TenantId>, JobError> {
        let grace = self.config.erasure_grace_days as i64 * 86_400_000;
        let now = now_ms();
        self.tail.poll(Duration::ZERO)?;
        let mut submitted = Vec::new();
        let listed = &self.settings.pipeline.tenants;
        for (tenant, entry) in crate::tenant::registry(&self.settings.kafka)? {
            if !listed.is_empty() && !listed.contains(&entry.tenant) {
                continue;
            }
            let due = entry.deleted_ms.is_some_and(|at| now - at >= grace);
            let has_one = self.tail.statuses.values().any(|s| {
                s.spec.kind == JobKind::Erase
                    && s.spec.tenant == tenant.as_str()
                    && s.state != JobState::Failed
                    && s.state != JobState::Cancelled
            });
            if due && !has_one {
                let status = self.runtime.block_on(super::submit(
                    &self.settings.kafka,
                    &self.settings.clickhouse,
                    &tenant,
                    JobKind::Erase,
                ))?;
                tracing::info!(tenant = %tenant, job = %status.spec.id, "erasure submitted: the grace period passed");
                self.tail.statuses.insert(status.spec.id.clone(), status);
                submitted.push(tenant);
            }
        }
        Ok(submitted)
    }

    /// Submits the retention of each served tenant (not deleted) whose last one was
    /// submitted `retention_every_hours` ago or more, or never, and has none waiting;
    /// returns the tenants submitted. Two workers may both submit one: retention is
    /// idempotent, and the second finds nothing left to remove.
    pub fn schedule_retention(&mut self) -> Result<Vec<TenantId>, JobError> {
        let every = i64::from(self.config.retention_every_hours) * 3_600_000;
        if every == 0 {
            return Ok(Vec::new());
        }
        let now = now_ms();
        self.tail.poll(Duration::ZERO)?;
        let mut submitted = Vec::new();
        let listed = &self.settings.pipeline.tenants;
        for (tenant, entry) in crate::tenant::registry(&self.settings.kafka)? {
            if (!listed.is_empty() && !listed.contains(&entry.tenant)) || entry.is_deleted() {
                continue;
            }
            let runs = self.tail.statuses.values().filter(|s| {
                s.spec.kind == (JobKind::Retention { dry_run: false })
                    && s.spec.tenant == tenant.as_str()
            });
            let (mut last, mut waiting) = (None, false);
            for s in runs {
                last = last.max(Some(s.spec.submitted_ms));
                waiting |= !s.state.is_final();
            }
            if waiting || last.is_some_and(|at| now - at < every) {
                continue;
            }
            let status = self.runtime.block_on(super::submit(
                &self.settings.kafka,
                &self.settings.clickhouse,
                &tenant,
                JobKind::Retention { dry_run: false },
            ))?;
            tracing::info!(tenant = %tenant, job = %status.spec.id, "retention submitted on schedule");
            self.tail.statuses.insert(status.spec.id.clone(), status);
            submitted.push(tenant);
        }
        Ok(submitted)
    }

    /// Submits a backup of the whole platform when `jobs.backup.every_hours` passed since
    /// the last one was submitted (or there was none) and none is waiting, if this worker
    /// serves every tenant; returns whether it did.
    pub fn schedule_backup(&mut self) -> Result<bool, JobError> {
        let every = i64::from(self.config.backup.every_hours) * 3_600_000;
        // Only a worker serving every tenant runs a whole backup, so only it submits one.
        let whole_platform = self.settings.pipeline.tenants.is_empty();
        if every == 0 || self.config.backup.url.is_empty() || !whole_platform {
            return Ok(false);
        }
        let now = now_ms();
        self.tail.poll(Duration::ZERO)?;
        let whole = JobKind::Backup {
            tenants: Vec::new(),
        };
        let (mut last, mut waiting) = (None, false);
        for s in self.tail.statuses.values().filter(|s| s.spec.kind == whole) {
            last = last.max(Some(s.spec.submitted_ms));
            waiting |= !s.state.is_final();
        }
        if waiting || last.is_some_and(|at| now - at < every) {
            return Ok(false);
        }
        let status = self.runtime.block_on(super::submit(
            &self.settings.kafka,
            &self.settings.clickhouse,
            &super::platform(),
            whole,
        ))?;
        tracing::info!(job = %status.spec.id, "backup submitted on schedule");
        self.tail.statuses.insert(status.spec.id.clone(), status);
        Ok(true)
    }

    /// A backup: planned (the checkpoints read first), then each topic and table taken,
    /// then the manifest written.
    fn backup(&mut self, status: &mut JobStatus, tenants: &[String]) -> Result<String, Stop> {
        let scope: Vec<TenantId> = tenants
            .iter()
            .map(|t| TenantId::parse(t).map_err(|e| JobError::Invalid(e.to_string())))
            .collect::<Result<_, _>>()?;
        let scratch = self.config.output_dir.join(".backup-staging");
        let backups = crate::backup::Backups::open(&self.config.backup, &scratch)?;
        let settings = self.settings.clone();
        let job = status.spec.id.clone();
        let mut backup = self.runtime.block_on(crate::backup::Backup::plan(
            &settings, &backups, &scope, &job,
        ))?;
        let units = backup.units();
        (status.total, status.unit) = (units.len() as u64 + 1, "steps".into());
        self.progress(
            status,
            1,
            format!(
                "backup {} into {}: checkpoints read",
                backup.id(),
                backups.location()
            ),
        )?;
        for (i, unit) in units.iter().enumerate() {
            let line = self.runtime.block_on(backup.take(unit))?;
            self.progress(status, i as u64 + 2, line)?;
        }
        let manifest = self.runtime.block_on(backup.finish())?;
        let (records, rows): (u64, u64) = (
            manifest
                .topics
                .iter()
                .flat_map(|t| &t.parts)
                .map(|p| p.records)
                .sum(),
            manifest.tables.iter().map(|t| t.rows).sum(),
        );
        let bytes: u64 = manifest
            .topics
            .iter()
            .map(|t| t.bytes)
            .chain(manifest.tables.iter().map(|t| t.bytes))
            .sum();
        status.outputs = vec![format!("{}/{}", backups.location(), manifest.id)];
        Ok(format!(
            "backup {} of {} tenants: {records} records of {} topics, {rows} rows of {} tables, {bytes} bytes, in {}",
            manifest.id,
            manifest.tenants.len(),
            manifest.topics.len(),
            manifest.tables.len(),
            backups.location()
        ))
    }

    /// Each served tenant's bytes in its region's ClickHouse (its database's active
    /// parts) into `rf_tenant_storage_bytes{store="clickhouse"}`, for billing and
    /// capacity planning; deleted tenants leave the gauge.
    pub fn measure_storage(&mut self) -> Result<(), JobError> {
        let Some(metrics) = &self.metrics else {
            return Ok(());
        };
        let listed = &self.settings.pipeline.tenants;
        let mut by_region: std::collections::BTreeMap<String, Vec<TenantId>> = Default::default();
        for (tenant, entry) in crate::tenant::registry(&self.settings.kafka)? {
            if (listed.is_empty() || listed.contains(&entry.tenant)) && !entry.is_deleted() {
                by_region
                    .entry(entry.region.clone())
                    .or_default()
                    .push(tenant);
            }
        }
        let mut measured = Vec::new();
        for (region, tenants) in by_region {
            let Some(region) = self.settings.region(&region) else {
                continue;
            };
            let client = rf_sinks::clickhouse::client(&region.clickhouse);
            let rows: Vec<(String, u64)> = self.runtime.block_on(
                client
                    .query("SELECT database, sum(bytes_on_disk) FROM system.parts WHERE active GROUP BY database")
                    .fetch_all(),
            )?;
            let bytes: std::collections::HashMap<String, u64> = rows.into_iter().collect();
            for tenant in tenants {
                let b = bytes.get(&tenant.clickhouse_db()).copied().unwrap_or(0);
                measured.push((tenant, b));
            }
        }
        metrics.tenant_storage.reset();
        for (tenant, b) in measured {
            metrics
                .tenant_storage
                .with_label_values(&[tenant.as_str(), "clickhouse"])
                .set(i64::try_from(b).unwrap_or(i64::MAX));
        }
        Ok(())
    }

    /// Erasure: each [`crate::erase::Step`], then the verification report.
    fn erase(&mut self, status: &mut JobStatus) -> Result<String, Stop> {
        let tenant =
            TenantId::parse(&status.spec.tenant).map_err(|e| JobError::Invalid(e.to_string()))?;
        if let Some(entry) = crate::tenant::registry(&self.settings.kafka)?.remove(&tenant) {
            let grace = self.config.erasure_grace_days as i64 * 86_400_000;
            match entry.deleted_ms {
                None => {
                    return Err(JobError::Invalid(format!(
                        "tenant {tenant} is not deleted: roomflow tenant delete {tenant} first"
                    ))
                    .into())
                }
                Some(at) if now_ms() - at < grace => {
                    let ends = chrono::DateTime::from_timestamp_millis(at + grace)
                        .map(|t| t.format("%Y-%m-%d %H:%M:%SZ").to_string())
                        .unwrap_or_default();
                    return Err(JobError::Invalid(format!(
                        "tenant {tenant}'s grace period ends at {ends}"
                    ))
                    .into());
                }
                Some(_) => {}
            }
        }
        let steps = crate::erase::Step::ALL;
        (status.total, status.unit) = (steps.len() as u64 + 1, "steps".into());
        let id = status.spec.id.clone();
        for (done, step) in (1..).zip(steps) {
            let line = self.runtime.block_on(crate::erase::step(
                &self.settings,
                &self.config.output_dir,
                &self.config.cold,
                &tenant,
                &id,
                step,
            ))?;
            self.progress(status, done, line)?;
        }
        let report = self.runtime.block_on(crate::erase::verify(
            &self.settings,
            &self.config.output_dir,
            &self.config.cold,
            &tenant,
            &id,
            now_ms(),
        ))?;
        let dir = self.config.output_dir.join(&id);
        let path = dir.join("erasure-report.json");
        std::fs::create_dir_all(&dir)
            .and_then(|()| {
                std::fs::write(
                    &path,
                    serde_json::to_vec_pretty(&report).expect("a report serializes"),
                )
            })
            .map_err(|e| {
                JobError::Invalid(format!(
                    "jobs.output_dir: cannot write {}: {e}",
                    path.display()
                ))
            })?;
        status.outputs = vec![path.display().to_string()];
        let left: Vec<String> = report
            .checks
            .iter()
            .filter(|c| c.found > 0)
            .map(|c| format!("{} {} in {}", c.found, c.what, c.store))
            .collect();
        self.progress(status, status.total, "verified every store".into())?;
        if !left.is_empty() {
            return Err(JobError::Invalid(format!("still found: {}", left.join("; "))).into());
        }
        let expiring: u64 = report.expiring.iter().map(|c| c.found).sum();
        Ok(format!(
            "erased; verified: nothing of the tenant remains live; {expiring} earlier records wait for their topics' compaction or retention (listed in the report)"
        ))
    }

    /// The job's tenant, its registry entry and its region.
    fn tenant_of(&self, status: &JobStatus) -> Result<(TenantId, TenantConfig, Region), JobError> {
        let tenant =
            TenantId::parse(&status.spec.tenant).map_err(|e| JobError::Invalid(e.to_string()))?;
        let entry = crate::tenant::entry(&self.settings, &tenant)?;
        let region = self.settings.region(&entry.region).ok_or_else(|| {
            JobError::Invalid(format!("region {} is not configured here", entry.region))
        })?;
        Ok((tenant, entry, region))
    }

    /// The cold store of `region`, when the cold tier is on.
    fn cold_store(&self, region: &Region) -> Result<Option<ColdStore>, JobError> {
        let scratch = self.config.output_dir.join(".cold-staging");
        ColdStore::open(&self.config.cold, &region.name, &scratch)
    }

    /// Retention: plan, then each export, drop and delete (a dry run stops at the plan).
    fn retention(&mut self, status: &mut JobStatus, dry_run: bool) -> Result<String, Stop> {
        let (tenant, entry, region) = self.tenant_of(status)?;
        let cold = self.cold_store(&region)?;
        let plan = self.runtime.block_on(crate::retention::plan(
            &region.clickhouse,
            &tenant,
            entry.retention_days,
            &self.config.retention,
            cold.as_ref().map(|c| (c, self.config.cold.keep_days)),
            now_ms(),
        ))?;
        let lines = plan.lines();
        (status.total, status.unit) = (lines.len() as u64 + 1, "steps".into());
        let exported = plan.drops.iter().filter(|d| d.cold).count();
        let mut what = format!(
            "{} partitions to drop, {} deletes and {} months to compact: {} rows (retention {} days)",
            plan.drops.len(),
            plan.deletes.len(),
            plan.compactions.len(),
            plan.rows(),
            entry.retention_days
        );
        if let Some(store) = &cold {
            what += &format!(
                "; {exported} partitions kept in {} first, {} cold months past their {} days",
                store.location,
                plan.cold_expired.len(),
                self.config.cold.keep_days
            );
        }
        self.progress(status, 1, format!("planned {what}"))?;
        for (month, until) in &plan.held {
            let until = chrono::DateTime::from_timestamp_millis(*until)
                .map(|t| t.format("%Y-%m-%d").to_string())
                .unwrap_or_default();
            status.log(
                now_ms(),
                format!("kept month {month}: restored from cold storage, held until {until}"),
            );
        }
        if dry_run {
            for line in &lines {
                status.log(now_ms(), format!("would {line}"));
            }
            status.done = status.total;
            return Ok(format!("dry run: {what}"));
        }
        for index in 0..lines.len() {
            let line = self.runtime.block_on(crate::retention::apply_step(
                &region.clickhouse,
                &tenant,
                cold.as_ref(),
                &plan,
                index,
            ))?;
            self.progress(status, index as u64 + 2, line)?;
        }
        Ok(format!("removed {what}"))
    }

    /// A cold month back into ClickHouse: the manifest read, the hold set (so a rerun
    /// replaces what a run cut short left), then each file checked and restored.
    fn restore_cold(
        &mut self,
        status: &mut JobStatus,
        month: u32,
        keep_days: u32,
    ) -> Result<String, Stop> {
        let (tenant, _, region) = self.tenant_of(status)?;
        let store = self.cold_store(&region)?.ok_or_else(|| {
            JobError::Cold("jobs.cold.url is empty: this worker has no cold tier".into())
        })?;
        let client = rf_sinks::clickhouse::client(&region.clickhouse);
        let db = tenant.clickhouse_db();
        let found = self.runtime.block_on(store.manifest(&tenant, month))?;
        let Some(mut manifest) = found else {
            let months = self.runtime.block_on(store.months(&tenant))?;
            let months: Vec<String> = months.iter().map(|m| m.to_string()).collect();
            return Err(JobError::Cold(format!(
                "month {month} of tenant {tenant} is not in {}; its cold months: [{}]",
                store.location,
                months.join(", ")
            ))
            .into());
        };
        manifest.check()?;
        (status.total, status.unit) = (manifest.files.len() as u64 + 1, "tables".into());
        // A month still hot (never exported, or written since) is not overwritten.
        if manifest.restored_until_ms.is_none() {
            for file in &manifest.files {
                let hot: u64 = self
                    .runtime
                    .block_on(
                        client
                            .query(&format!(
                                "SELECT count() FROM {db}.{} WHERE toYYYYMM({}) = {month}",
                                file.table, file.partitioned_by
                            ))
                            .fetch_one(),
                    )
                    .map_err(JobError::from)?;
                if hot > 0 {
                    return Err(JobError::Cold(format!(
                        "{} still holds {hot} rows of month {month}: it is hot, nothing was restored",
                        file.table
                    ))
                    .into());
                }
            }
        }
        let until = now_ms() + i64::from(keep_days) * 86_400_000;
        manifest.restored_until_ms = Some(until);
        self.runtime.block_on(store.put_manifest(&manifest))?;
        let until = chrono::DateTime::from_timestamp_millis(until)
            .map(|t| t.format("%Y-%m-%d").to_string())
            .unwrap_or_default();
        self.progress(
            status,
            1,
            format!(
                "month {month}: {} files in {}; held until {until}",
                manifest.files.len(),
                store.location
            ),
        )?;
        let mut rows = 0;
        for (done, file) in (2..).zip(&manifest.files) {
            let n = self
                .runtime
                .block_on(store.restore(&client, &tenant, month, file))?;
            rows += n;
            let line = format!("restored {n} rows of {} (SHA-256 checked)", file.table);
            self.progress(status, done, line)?;
        }
        Ok(format!(
            "restored month {month}: {rows} rows in {} tables from {}; held until {until}, when retention returns it to the cold tier",
            manifest.files.len(),
            store.location
        ))
    }

    /// Backfill: the pipeline over the range on threads of its own at a lower priority,
    /// its progress recorded every few seconds, then the stale rows removed.
    fn backfill(&mut self, status: &mut JobStatus, (from, to): (i64, i64)) -> Result<String, Stop> {
        use crate::backfill::{self, day};
        let (tenant, _, region) = self.tenant_of(status)?;
        let range = rf_pipelines::backfill::Backfill {
            from,
            to,
            max_rate: None,
        };
        let config = self.config.backfill.clone();
        let settings = backfill::settings_for(&self.settings, &tenant, &config);
        let total = backfill::records_to_read(&settings, &range)?;
        (status.total, status.unit) = (total, "records".into());
        let line = format!(
            "windows starting from {} to {}: up to {total} records to read",
            day(from),
            day(to)
        );
        self.progress(status, 0, line)?;
        let running = backfill::start(settings, &tenant, range, &config)?;
        while !running.is_finished() {
            std::thread::sleep(Duration::from_millis(500));
            if let Err(stop) = self.tick(status, running.consumed().min(total)) {
                status.done = running.stop().min(total);
                return Err(stop);
            }
        }
        let outcome = self.runtime.block_on(running.finish(&region))?;
        let report = &outcome.report;
        let removed = format!(
            "removed {} stale rows and {} readings no longer counted",
            outcome.removed, outcome.removed_readings
        );
        let st = &report.stats;
        let line = format!(
            "read {} records in {:.1} s; rewrote {} room rows and {} office rows; {removed}",
            st.consumed,
            report.elapsed.as_secs_f64(),
            st.room_rows,
            st.office_rows
        );
        self.progress(status, total, line)?;
        let mut message = format!(
            "rewrote {} room rows and {} office rows of windows starting from {} to {}; {removed}",
            st.room_rows,
            st.office_rows,
            day(from),
            day(to)
        );
        if let Some(closed) = outcome.open_after {
            message += &format!(
                "; windows ending after {} are not final yet and were left to the live pipeline",
                day(closed)
            );
        }
        Ok(message)
    }

    /// A utilization report: read, then the CSV, then the HTML, into
    /// `<output_dir>/<job id>/`.
    fn report(&mut self, status: &mut JobStatus, (from, to): (i64, i64)) -> Result<String, Stop> {
        (status.total, status.unit) = (3, "steps".into());
        let (tenant, entry, region) = self.tenant_of(status)?;
        let report = self.runtime.block_on(crate::report::gather(
            &region.clickhouse,
            &tenant,
            &entry.display_name,
            (from, to),
        ))?;
        if report.days.is_empty() {
            return Err(JobError::Invalid(format!(
                "tenant {tenant} has no day windows in the range"
            ))
            .into());
        }
        let line = format!(
            "read {} office days and {} rooms",
            report.days.len(),
            report.rooms.len()
        );
        self.progress(status, 1, line)?;
        let dir = self.config.output_dir.join(&status.spec.id);
        std::fs::create_dir_all(&dir).map_err(|e| {
            JobError::Invalid(format!(
                "jobs.output_dir: cannot create {}: {e}",
                dir.display()
            ))
        })?;
        status.outputs.clear();
        for (done, ext, body) in [
            (2, "csv", crate::report::render::csv(&report)),
            (3, "html", crate::report::render::html(&report)),
        ] {
            let path = dir.join(format!("report.{ext}"));
            std::fs::write(&path, body).map_err(|e| {
                JobError::Invalid(format!(
                    "jobs.output_dir: cannot write {}: {e}",
                    path.display()
                ))
            })?;
            status.outputs.push(path.display().to_string());
            self.progress(status, done, format!("wrote {}", path.display()))?;
        }
        Ok(format!(
            "{} office days; mean utilization {:.1}%",
            report.days.len(),
            report.mean_utilization() * 100.0
        ))
    }
}
