//! The sink operator: hands each completed epoch's outputs to one writer per tenant,
//! which writes them to the tenant's stores, then checkpoints; the worker commits the
//! tenant's offsets once its writer acknowledged.
//!
//! Writers run on the I/O runtime, one per tenant, each in epoch order. The worker never
//! waits for a store: a tenant whose stores are slow, down or refusing is paused (the
//! source stops reading its partitions) while every other tenant's results flow on.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Arc;

use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::Stream;

use rf_operators::{Checkpoint, Output, Paused, Why};
use rf_schemas::TenantId;
use rf_sinks::{Batch, SinkError, Sinks};

use crate::backfill::Backfill;
use crate::checkpoint::CheckpointWriter;
use crate::metrics::Metrics;
use crate::source::{LiveTopology, SourceHandles};

/// Latency samples kept for the run report; older ones are dropped past this.
const MAX_LATENCY_SAMPLES: usize = 100_000;

/// What a worker's sink operator counts, for reports and benchmarks.
#[derive(Default, Debug, Clone)]
pub struct SinkStats {
    /// Epochs written.
    pub epochs: u64,
    /// Room rows written.
    pub room_rows: u64,
    /// Office rows written.
    pub office_rows: u64,
    /// Redis hashes written.
    pub live_keys: u64,
    /// Dead letters written.
    pub dead_letters: u64,
    /// Readings counted in final windows.
    pub counted: u64,
    /// Readings replaced by later revisions.
    pub replaced: u64,
    /// Readings consumed (by the source).
    pub consumed: u64,
    /// Readings not yet counted when the run ended: their 15m window was still open.
    pub pending: u64,
    /// Readings held one by one for open 15m windows when the run ended.
    pub held: u64,
    /// Final 15m windows held summed up for open hour and day windows.
    pub chunks: u64,
    /// Per epoch: seconds from its first record consumed to every sink's acknowledgement
    /// (the worst reading-to-Redis delay of the epoch).
    pub latencies: Vec<f64>,
    /// Per epoch and tenant with final room rows: (the tenant, when they were
    /// acknowledged, ms since the Unix epoch; the oldest final window's end, ms).
    pub finals: Vec<(TenantId, i64, i64)>,
    /// Per epoch and tenant with live room states: (the tenant, when Redis acknowledged
    /// them, ms since the Unix epoch; the oldest of their readings' event times, ms).
    pub live_acks: Vec<(TenantId, i64, i64)>,
}

/// Everything the sink operator needs.
pub struct SinkContext {
    /// The sinks.
    pub sinks: Sinks,
    /// Which region each tenant's outputs go to.
    pub topology: Arc<LiveTopology>,
    /// The source's shared handles: the consumer to commit through, epoch start times.
    pub source: SourceHandles,
    /// Metrics to update.
    pub metrics: Metrics,
    /// Whether this worker mirrors room versions to ClickHouse (one worker does).
    pub mirror_rooms: bool,
    /// Filled as epochs complete.
    pub stats: Rc<RefCell<SinkStats>>,
    /// Writes the epoch's checkpoints before offsets are committed.
    pub checkpoints: CheckpointWriter,
    /// How long windows stay open after their end, ms.
    pub lateness_ms: i64,
    /// A backfill's windows: only their final rows are written, and nothing is committed.
    pub backfill: Option<Backfill>,
    /// The tenants the source must not read for now; the writers add theirs.
    pub paused: Paused,
}

/// Epochs of one tenant handed to its writer and not yet acknowledged, at most: past
/// this the tenant is paused, so a slow store holds back its own tenant only, and memory
/// stays bounded.
const MAX_IN_FLIGHT: usize = 2;

/// Writes outputs to the sinks, epoch by epoch, and commits offsets after each.
pub trait WriteToSinks {
    /// Consumes the stream. The worker calls [`Writers::settle`] after every step, and
    /// steps until [`Writers::busy`] is false once the dataflow is done.
    fn write_to_sinks(self, context: SinkContext) -> Writers;
}

impl WriteToSinks for Stream<'_, u64, Vec<Output>> {
    fn write_to_sinks(self, cx: SinkContext) -> Writers {
        let writers = Writers(Rc::new(RefCell::new(Inner::new(cx))));
        let inner = writers.0.clone();
        let mut stash: BTreeMap<u64, Vec<Output>> = BTreeMap::new();
        self.sink(Pipeline, "Sinks", move |(input, frontier)| {
            input.for_each_stamp(|cap, data| {
                if let Some(&epoch) = cap.least() {
                    let outputs = stash.entry(epoch).or_default();
                    for batch in data {
                        outputs.append(batch);
                    }
                }
            });
            let mut inner = inner.borrow_mut();
            while let Some(entry) = stash.first_entry() {
                if frontier.less_equal(entry.key()) {
                    break;
                }
                let epoch = *entry.key();
                let outputs = entry.remove();
                if inner.cx.source.failed.borrow().is_some() {
                    continue;
                }
                if let Err(message) = inner.dispatch(epoch, outputs) {
                    tracing::error!(error = %message, "stopping");
                    *inner.cx.source.failed.borrow_mut() = Some(message);
                }
            }
        });
        writers
    }
}

/// The tenants' writers of one worker.
#[derive(Clone)]
pub struct Writers(Rc<RefCell<Inner>>);

impl Writers {
    /// Takes the writers' acknowledgements: commits, counts, and pauses or resumes
    /// tenants.
    pub fn settle(&self) {
        self.0.borrow_mut().settle();
    }

    /// Whether a writer still has epochs to acknowledge.
    pub fn busy(&self) -> bool {
        self.0.borrow().open.values().any(|n| *n > 0)
    }

    /// The tenants a store refused for good during the run, with why.
    pub fn quarantined(&self) -> BTreeMap<TenantId, String> {
        self.0.borrow().quarantined.clone()
    }
}

/// One epoch of one tenant, for its writer.
struct Job {
    epoch: u64,
    /// When its first record was read, when the source handed it on, and when its
    /// outputs reached the sink: the epoch's `poll` and `compute` spans.
    timing: Option<(std::time::Instant, std::time::Instant, std::time::Instant)>,
    region: usize,
    batch: Batch,
    checkpoints: Vec<Checkpoint>,
}

/// A writer's answer for one job.
struct Ack {
    tenant: TenantId,
    job: Job,
    outcome: Outcome,
}

enum Outcome {
    /// Every store acknowledged, at this time (ms since the Unix epoch); the checkpoints
    /// were written too, if `checkpointed`.
    Written { at: i64, checkpointed: bool },
    /// A store failed for good, or the process is stopping.
    Failed(SinkError),
    /// Not written: an earlier epoch of the tenant failed.
    Skipped,
}

struct Inner {
    cx: SinkContext,
    /// To the writers' thread, or why it could not start (the first epoch then fails).
    jobs: Result<JobSender, String>,
    /// Per tenant, its epochs handed to its writer and not acknowledged yet.
    in_flight: HashMap<TenantId, usize>,
    acks: Receiver<Ack>,
    /// Per dispatched epoch, the writers that have not acknowledged it yet.
    open: BTreeMap<u64, usize>,
    quarantined: BTreeMap<TenantId, String>,
}

impl Inner {
    fn new(cx: SinkContext) -> Self {
        let (sender, acks) = channel();
        Self {
            jobs: start(&cx, sender),
            cx,
            in_flight: HashMap::new(),
            acks,
            open: BTreeMap::new(),
            quarantined: BTreeMap::new(),
        }
    }

    /// Hands each tenant's part of a completed epoch to its writer.
    fn dispatch(&mut self, epoch: u64, outputs: Vec<Output>) -> Result<(), String> {
        let topology = self.cx.topology.get();
        let computed = std::time::Instant::now();
        // The reading its outputs were computed from: its own, or the last before it (an
        // epoch of revisions or flushes reads nothing).
        let timing = self
            .cx
            .source
            .epoch_started
            .borrow()
            .range(..=epoch)
            .next_back()
            .map(|(_, (read, handed))| (*read, *handed, computed));
        let mut jobs: BTreeMap<TenantId, Job> = BTreeMap::new();
        for output in outputs {
            let Some(region) = topology.region_of(output.tenant()) else {
                // The source reads only tenants of the topology, which only grows.
                return Err(format!(
                    "tenant {} is in no served region; its outputs are written nowhere",
                    output.tenant()
                ));
            };
            let job = jobs.entry(output.tenant().clone()).or_insert_with(|| Job {
                epoch,
                timing,
                region,
                batch: Batch::default(),
                checkpoints: Vec::new(),
            });
            if let Some(c) = job.batch.push(output) {
                job.checkpoints.push(c);
            }
        }
        for (tenant, mut job) in jobs {
            if self.quarantined.contains_key(&tenant) {
                continue;
            }
            if !self.cx.mirror_rooms {
                job.batch.room_versions.clear();
                job.batch.withdrawn_rooms.clear();
            }
            if let Some(backfill) = &self.cx.backfill {
                backfill.keep(&mut job.batch);
            }
            if job.batch.is_empty() && job.checkpoints.is_empty() {
                continue;
            }
            let jobs = self.jobs.as_ref().map_err(Clone::clone)?;
            if jobs.send((tenant.clone(), job)).is_err() {
                return Err("the writers' thread stopped".into());
            }
            *self.in_flight.entry(tenant).or_default() += 1;
            *self.open.entry(epoch).or_default() += 1;
        }
        if !self.open.contains_key(&epoch) {
            self.close(epoch);
        }
        self.pause_behind();
        Ok(())
    }

    fn settle(&mut self) {
        let mut any = false;
        while let Ok(Ack {
            tenant,
            job,
            outcome,
        }) = self.acks.try_recv()
        {
            any = true;
            if let Some(n) = self.in_flight.get_mut(&tenant) {
                *n -= 1;
            }
            match outcome {
                Outcome::Written { at, checkpointed } => {
                    if checkpointed {
                        self.commit(&job.checkpoints);
                    }
                    self.account_batch(&job.batch);
                    self.account_tenant(&tenant, at, &job.batch, &job.checkpoints);
                }
                Outcome::Failed(_) if self.cx.sinks.shutdown.load(Ordering::Relaxed) => {}
                Outcome::Failed(error) => self.quarantine(&tenant, &error),
                Outcome::Skipped => {}
            }
            let epoch = job.epoch;
            if let Some(n) = self.open.get_mut(&epoch) {
                *n -= 1;
                if *n == 0 {
                    self.open.remove(&epoch);
                    self.close(epoch);
                }
            }
        }
        if any {
            self.pause_behind();
        }
    }

    /// Pauses the tenants whose writers are behind, and resumes those that caught up.
    fn pause_behind(&mut self) {
        for (tenant, n) in &self.in_flight {
            let behind = *n >= MAX_IN_FLIGHT;
            self.cx.paused.set(tenant, Why::Sinks, behind);
        }
    }

    /// A store refused the tenant's rows for good: nothing more of the tenant is read or
    /// written, and its offsets stay where the failure was, so a restart after the fix
    /// writes everything. Every other tenant goes on.
    fn quarantine(&mut self, tenant: &TenantId, error: &SinkError) {
        tracing::error!(%tenant, %error, "a store refused the tenant's rows for good; the tenant is quarantined until the cause is fixed and the pipeline restarted");
        self.cx.paused.set(tenant, Why::Quarantine, true);
        self.quarantined
            .insert(tenant.clone(), format!("tenant {tenant}: {error}"));
    }

    /// Commits the group's offsets the tenant's checkpoints allow (for lag monitoring and
    /// restarts without checkpoints). A failure is not lost data: the next epoch commits
    /// again, and a restart resumes from the last checkpoint written.
    fn commit(&self, checkpoints: &[Checkpoint]) {
        let mut tpl = TopicPartitionList::new();
        for c in checkpoints {
            let offset = Offset::Offset(c.commit_offset);
            if let Err(error) =
                tpl.add_partition_offset(&c.tenant.readings_topic(), c.partition, offset)
            {
                tracing::warn!(%error, "bad offset to commit");
            }
        }
        if let Err(error) = self.cx.source.consumer.commit(&tpl, CommitMode::Async) {
            tracing::warn!(%error, "committing offsets failed; the next epoch retries");
        }
    }

    /// Counts what one batch wrote.
    fn account_batch(&self, batch: &Batch) {
        let m = &self.cx.metrics;
        let mut stats = self.cx.stats.borrow_mut();
        stats.room_rows += batch.rooms.len() as u64;
        stats.office_rows += batch.offices.len() as u64;
        stats.live_keys += (batch.live_rooms.len() + batch.live_offices.len()) as u64;
        stats.dead_letters += batch.dead_letters.len() as u64;
        for d in &batch.dead_letters {
            let partition = d.partition.to_string();
            m.dead_letters
                .with_label_values(&[d.tenant.as_str(), &partition, d.reason.as_str()])
                .inc();
        }
        for d in &batch.rejected_rooms {
            m.rejected_rooms
                .with_label_values(&[d.tenant.as_str(), d.reason.as_str()])
                .inc();
            tracing::warn!(tenant = %d.tenant, offset = d.offset, reason = %d.reason, detail = %d.detail, "room metadata rejected");
        }
        for d in &batch.rejected_bookings {
            m.rejected_bookings
                .with_label_values(&[d.tenant.as_str(), d.reason.as_str()])
                .inc();
            tracing::warn!(tenant = %d.tenant, partition = d.partition, offset = d.offset, reason = %d.reason, detail = %d.detail, "booking rejected");
        }
        for b in &batch.booking_usage {
            m.booking_rows.with_label_values(&[b.tenant.as_str()]).inc();
        }
        for a in &batch.anomalies {
            let labels = [a.tenant.as_str(), a.kind.label(), a.severity.label()];
            m.anomalies.with_label_values(&labels).inc();
            if a.severity == rf_operators::Severity::High {
                tracing::info!(tenant = %a.tenant, kind = a.kind.label(), entity = %a.entity_id, office = %a.office_id, "high-severity anomaly");
            }
        }
        for f in &batch.forecasts {
            m.forecasts
                .with_label_values(&[f.tenant.as_str()])
                .inc_by(f.points.len() as u64);
        }
        for r in &batch.restates {
            m.restatements.with_label_values(&[r.tenant.as_str()]).inc();
            tracing::info!(tenant = %r.tenant, room = %r.room_id, from = r.from, capacity = r.capacity, "capacity changed in the past; final rows restated");
        }
        for (sink, n) in [
            ("clickhouse", batch.rooms.len() + batch.offices.len()),
            ("redis", batch.live_rooms.len() + batch.live_offices.len()),
            ("deadletter", batch.dead_letters.len()),
        ] {
            if n > 0 {
                m.batch_size.with_label_values(&[sink]).observe(n as f64);
            }
        }
    }

    /// Counts what one tenant's acknowledged epoch did: its checkpoints, when its live
    /// state reached Redis, its final rows' delay.
    fn account_tenant(
        &self,
        tenant: &TenantId,
        at: i64,
        batch: &Batch,
        checkpoints: &[Checkpoint],
    ) {
        let m = &self.cx.metrics;
        let mut stats = self.cx.stats.borrow_mut();
        for c in checkpoints {
            let labels = [c.tenant.as_str(), &c.partition.to_string()];
            m.counted.with_label_values(&labels).inc_by(c.counted);
            m.replaced.with_label_values(&labels).inc_by(c.replaced);
            m.watermark
                .with_label_values(&labels)
                .set(c.current_watermark);
            stats.counted += c.counted;
            stats.replaced += c.replaced;
        }
        if let Some(ts) = batch.live_rooms.iter().map(|r| r.ts).min() {
            push_capped(&mut stats.live_acks, (tenant.clone(), at, ts));
        }
        let oldest_final = batch
            .rooms
            .iter()
            .filter(|r| r.is_final)
            .map(|r| r.window_end)
            .min();
        if let Some(end) = oldest_final {
            let delay = (at - end - self.cx.lateness_ms) as f64 / 1e3;
            m.final_delay
                .with_label_values(&["clickhouse"])
                .observe(delay.max(0.0));
            push_capped(&mut stats.finals, (tenant.clone(), at, end));
        }
    }

    /// Counts an epoch every writer acknowledged: its delay from the first record read.
    fn close(&mut self, epoch: u64) {
        let mut stats = self.cx.stats.borrow_mut();
        stats.epochs += 1;
        let mut started = self.cx.source.epoch_started.borrow_mut();
        if let Some((at, _)) = started.get(&epoch) {
            let secs = at.elapsed().as_secs_f64();
            self.cx
                .metrics
                .epoch_latency
                .with_label_values(&["all"])
                .observe(secs);
            push_capped(&mut stats.latencies, secs);
        }
        // Kept: the epochs still open, and the last reading at or before this epoch (later
        // epochs' outputs may come from it).
        let oldest_open = self.open.keys().next().copied().unwrap_or(u64::MAX);
        let last_read = started
            .range(..=epoch)
            .next_back()
            .map_or(epoch, |(e, _)| *e);
        started.retain(|e, _| *e >= last_read.min(oldest_open));
    }
}

/// Starts the worker's writer thread: a runtime of its own, where each tenant's jobs are
/// written by a task of the tenant's, in order, while other tenants' tasks go on. A task
/// writes each job to the stores, then its checkpoints, and answers on `acks`; after a
/// failure it writes nothing more (the tenant is quarantined, or the process stops) and
/// answers `Skipped`. The thread ends when the worker drops its side of the channel.
fn start(cx: &SinkContext, acks: Sender<Ack>) -> Result<JobSender, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the writers' runtime: {e}"))?;
    let (jobs, mut incoming) = tokio::sync::mpsc::unbounded_channel::<(TenantId, Job)>();
    let (sinks, checkpoints) = (cx.sinks.clone(), cx.checkpoints.clone());
    let commit = cx.backfill.is_none();
    std::thread::Builder::new()
        .name("writers".into())
        .spawn(move || {
            let local = tokio::task::LocalSet::new();
            local.block_on(&runtime, async move {
                let mut lanes = HashMap::new();
                while let Some((tenant, job)) = incoming.recv().await {
                    let lane = lanes.entry(tenant.clone()).or_insert_with(|| {
                        let (lane, queue) = tokio::sync::mpsc::unbounded_channel::<Job>();
                        let (sinks, checkpoints) = (sinks.clone(), checkpoints.clone());
                        let (acks, tenant) = (acks.clone(), tenant.clone());
                        tokio::task::spawn_local(async move {
                            writer(queue, sinks, checkpoints, commit, tenant, acks).await
                        });
                        lane
                    });
                    // A lane ends only when its sender is dropped, below.
                    let _ = lane.send(job);
                }
            });
        })
        .map_err(|e| format!("cannot start the writers' thread: {e}"))?;
    Ok(jobs)
}

type JobSender = tokio::sync::mpsc::UnboundedSender<(TenantId, Job)>;

/// One tenant's writer.
async fn writer(
    mut queue: tokio::sync::mpsc::UnboundedReceiver<Job>,
    mut sinks: Sinks,
    checkpoints: CheckpointWriter,
    commit: bool,
    tenant: TenantId,
    acks: Sender<Ack>,
) {
    let mut failed = false;
    while let Some(job) = queue.recv().await {
        let outcome = if failed {
            Outcome::Skipped
        } else {
            write(&mut sinks, &checkpoints, commit, &tenant, &job).await
        };
        failed |= matches!(outcome, Outcome::Failed(_));
        let ack = Ack {
            tenant: tenant.clone(),
            job,
            outcome,
        };
        if acks.send(ack).is_err() {
            break;
        }
    }
}

/// One tenant's epoch to its stores (a span `epoch`, with a `sink` span per store).
#[tracing::instrument(name = "epoch", skip_all, fields(%tenant, epoch = job.epoch, region = job.region))]
async fn write(
    sinks: &mut Sinks,
    checkpoints: &CheckpointWriter,
    commit: bool,
    tenant: &TenantId,
    job: &Job,
) -> Outcome {
    if let Some((read, handed, computed)) = job.timing {
        crate::telemetry::past_span("poll", read, handed);
        crate::telemetry::past_span("compute", handed, computed);
    }
    let started = std::time::Instant::now();
    if !job.batch.is_empty() {
        if let Err(error) = sinks.write(job.region, &job.batch).await {
            return Outcome::Failed(error);
        }
    }
    let (at, stored) = (rf_schemas::unix_ms(), started.elapsed());
    let mut checkpointed = false;
    if commit && !job.checkpoints.is_empty() {
        let span = tracing::info_span!("checkpoints", partitions = job.checkpoints.len());
        match tracing::Instrument::instrument(checkpoints.write(&job.checkpoints), span).await {
            Ok(()) => checkpointed = true,
            Err(error) => {
                tracing::warn!(%tenant, %error, "writing checkpoints failed; the next epoch retries")
            }
        }
    }
    tracing::debug!(
        %tenant,
        stores_ms = stored.as_millis() as u64,
        checkpoints_ms = (started.elapsed() - stored).as_millis() as u64,
        "epoch written"
    );
    Outcome::Written { at, checkpointed }
}

/// Keeps a sample list bounded: past the cap, the older half goes.
fn push_capped<T>(samples: &mut Vec<T>, sample: T) {
    if samples.len() >= MAX_LATENCY_SAMPLES {
        samples.drain(..MAX_LATENCY_SAMPLES / 2);
    }
    samples.push(sample);
}
