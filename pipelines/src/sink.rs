//! The sink operator: writes each completed epoch to every sink, then commits the
//! offsets the epoch's checkpoints allow.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::Stream;

use rf_operators::{Checkpoint, Output};
use rf_schemas::TenantId;
use rf_sinks::{Batch, Sinks};

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
    /// Runs the sinks' futures.
    pub runtime: tokio::runtime::Handle,
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
}

/// Writes outputs to the sinks, epoch by epoch, and commits offsets after each.
pub trait WriteToSinks {
    /// Consumes the stream.
    fn write_to_sinks(self, context: SinkContext);
}

impl WriteToSinks for Stream<'_, u64, Vec<Output>> {
    fn write_to_sinks(self, mut cx: SinkContext) {
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
            while let Some(entry) = stash.first_entry() {
                if frontier.less_equal(entry.key()) {
                    break;
                }
                let epoch = *entry.key();
                let outputs = entry.remove();
                if cx.source.failed.borrow().is_some() {
                    continue;
                }
                if let Err(message) = cx.write_epoch(epoch, outputs) {
                    tracing::error!(error = %message, "a sink failed for good; stopping");
                    *cx.source.failed.borrow_mut() = Some(message);
                }
            }
            // Every epoch before the frontier is written now, with or without outputs:
            // the source may read further.
            let written = frontier.frontier().first().copied().unwrap_or(u64::MAX);
            cx.source.written_before.set(written);
        });
    }
}

impl SinkContext {
    fn write_epoch(&mut self, epoch: u64, outputs: Vec<Output>) -> Result<(), String> {
        // Each tenant's outputs go to its region's stores, and only there.
        let topology = self.topology.get();
        let mut batches: Vec<Batch> = topology.regions.iter().map(|_| Batch::default()).collect();
        let mut checkpoints = Vec::new();
        for output in outputs {
            let Some(region) = topology.region_of(output.tenant()) else {
                // The source reads only tenants of the topology, which only grows.
                return Err(format!(
                    "tenant {} is in no served region; its outputs are written nowhere",
                    output.tenant()
                ));
            };
            if let Some(c) = batches[region].push(output) {
                checkpoints.push(c);
            }
        }
        if !self.mirror_rooms {
            for batch in &mut batches {
                batch.room_versions.clear();
                batch.withdrawn_rooms.clear();
            }
        }
        if let Some(backfill) = &self.backfill {
            batches.iter_mut().for_each(|b| backfill.keep(b));
        }
        if batches.iter().any(|b| !b.is_empty()) {
            self.runtime
                .block_on(self.sinks.write(&batches))
                .map_err(|e| e.to_string())?;
        }
        if self.backfill.is_none() {
            self.commit(&checkpoints);
        }
        for batch in &batches {
            self.account_batch(batch);
        }
        self.account(epoch, &batches, &checkpoints);
        Ok(())
    }

    /// Checkpoints, then commits the group's offsets (for lag monitoring). A failure is
    /// not lost data: the next epoch checkpoints again, and a restart resumes from the last
    /// checkpoint that was written.
    fn commit(&self, checkpoints: &[Checkpoint]) {
        if checkpoints.is_empty() {
            return;
        }
        if let Err(error) = self.runtime.block_on(self.checkpoints.write(checkpoints)) {
            tracing::warn!(%error, "writing checkpoints failed; the next epoch retries");
            return;
        }
        let mut tpl = TopicPartitionList::new();
        for c in checkpoints {
            let offset = Offset::Offset(c.commit_offset);
            if let Err(error) =
                tpl.add_partition_offset(&c.tenant.readings_topic(), c.partition, offset)
            {
                tracing::warn!(%error, "bad offset to commit");
            }
        }
        if let Err(error) = self.source.consumer.commit(&tpl, CommitMode::Async) {
            tracing::warn!(%error, "committing offsets failed; the next epoch retries");
        }
    }

    /// Counts what one region's batch wrote.
    fn account_batch(&mut self, batch: &Batch) {
        let m = &self.metrics;
        let mut stats = self.stats.borrow_mut();
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

    /// Counts the epoch: its checkpoints, its delay, its final rows' delay.
    fn account(&mut self, epoch: u64, batches: &[Batch], checkpoints: &[Checkpoint]) {
        let m = &self.metrics;
        let mut stats = self.stats.borrow_mut();
        stats.epochs += 1;
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
        let mut started = self.source.epoch_started.borrow_mut();
        if let Some(at) = started.remove(&epoch) {
            let secs = at.elapsed().as_secs_f64();
            m.epoch_latency.with_label_values(&["all"]).observe(secs);
            push_capped(&mut stats.latencies, secs);
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let live = batches
            .iter()
            .flat_map(|b| &b.live_rooms)
            .map(|r| (&r.tenant, r.ts));
        for (tenant, ts) in oldest_by_tenant(live) {
            push_capped(&mut stats.live_acks, (tenant.clone(), now, ts));
        }
        let finals = batches
            .iter()
            .flat_map(|b| &b.rooms)
            .filter(|r| r.is_final)
            .map(|r| (&r.tenant, r.window_end));
        let oldest_final = oldest_by_tenant(finals);
        if let Some(end) = oldest_final.values().min() {
            let delay = (now - end - self.lateness_ms) as f64 / 1e3;
            m.final_delay
                .with_label_values(&["clickhouse"])
                .observe(delay.max(0.0));
        }
        for (tenant, end) in oldest_final {
            push_capped(&mut stats.finals, (tenant.clone(), now, end));
        }
        // Epochs that produced no output leave their start time behind.
        started.retain(|e, _| *e > epoch);
    }
}

/// The smallest time of each tenant.
fn oldest_by_tenant<'a>(
    times: impl Iterator<Item = (&'a TenantId, i64)>,
) -> BTreeMap<&'a TenantId, i64> {
    let mut oldest = BTreeMap::new();
    for (tenant, t) in times {
        let o = oldest.entry(tenant).or_insert(t);
        *o = (*o).min(t);
    }
    oldest
}

/// Keeps a sample list bounded: past the cap, the older half goes.
fn push_capped<T>(samples: &mut Vec<T>, sample: T) {
    if samples.len() >= MAX_LATENCY_SAMPLES {
        samples.drain(..MAX_LATENCY_SAMPLES / 2);
    }
    samples.push(sample);
}
