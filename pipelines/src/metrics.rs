//! The pipeline's Prometheus metrics and their `/metrics` endpoint.

use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};
use std::net::TcpListener;

use rf_operators::Why;
use rf_schemas::TenantId;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

/// Every metric of a pipeline process; cheap to clone, shared by all workers.
#[derive(Clone)]
pub struct Metrics {
    /// The registry they are in.
    pub registry: Registry,
    /// Readings consumed, by tenant and partition.
    pub consumed: IntCounterVec,
    /// Readings counted in final room windows.
    pub counted: IntCounterVec,
    /// Readings replaced by a later reading with the same key.
    pub replaced: IntCounterVec,
    /// Dead letters written, by tenant, partition and reason.
    pub dead_letters: IntCounterVec,
    /// Room metadata records rejected, by tenant and reason.
    pub rejected_rooms: IntCounterVec,
    /// Room versions that changed the capacity of final rows, which were rewritten.
    pub restatements: IntCounterVec,
    /// Booking records rejected, by tenant and reason.
    pub rejected_bookings: IntCounterVec,
    /// Booked-versus-used rows written (a revision counts again), by tenant.
    pub booking_rows: IntCounterVec,
    /// Anomaly rows written (an episode that lasts is written more than once), by
    /// tenant, kind and severity.
    pub anomalies: IntCounterVec,
    /// Forecast windows written, by tenant.
    pub forecasts: IntCounterVec,
    /// Failed sink attempts that will be retried, by sink.
    pub sink_retries: IntCounterVec,
    /// What became of alerts, by tenant, target kind and outcome.
    pub alerts: IntCounterVec,
    /// Alert targets disabled after failing for the give-up period, by tenant.
    pub alert_targets_disabled: IntCounterVec,
    /// Alerts waiting for delivery or held by a cooldown.
    pub alerts_pending: IntGauge,
    /// Rows and keys per written batch, by sink.
    pub batch_size: HistogramVec,
    /// Seconds from an epoch's first record consumed to its acknowledgement by every sink.
    pub epoch_latency: HistogramVec,
    /// Per epoch with final rows: seconds from the moment its oldest final window could
    /// be final (window end + allowed lateness, by the wall clock) to its row acknowledged.
    pub final_delay: HistogramVec,
    /// Partition watermark (ms), by tenant and partition.
    pub watermark: IntGaugeVec,
    /// Readings and open windows held by each worker.
    pub state: IntGaugeVec,
    /// Records between the consumer's position and the partition's end, by tenant and
    /// partition (from the Kafka client's statistics).
    pub consumer_lag: IntGaugeVec,
    /// 1 while a tenant's partitions are not read, by tenant and reason: `schema` (its
    /// records wait for the registry), `sinks` (its stores are behind), `quarantine` (a
    /// store refused its rows for good).
    pub paused: IntGaugeVec,
    /// Jobs a worker of this process ran to their end, by kind and state.
    pub jobs_finished: IntCounterVec,
    /// When this process's job worker last went round its loop (Unix seconds; 0: none).
    pub job_worker_heartbeat: IntGauge,
    /// Bytes each tenant stores, by store (`clickhouse`: its database's active parts),
    /// measured by the job worker every 10 minutes.
    pub tenant_storage: IntGaugeVec,
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Self {
        let registry = Registry::new();
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
            registry
                .register(Box::new(c.clone()))
                .expect("unique metric");
            c
        };
        let consumed = counter(
            "rf_readings_consumed_total",
            "Readings consumed.",
            &["tenant", "partition"],
        );
        let counted = counter(
            "rf_readings_counted_total",
            "Readings counted in final room windows.",
            &["tenant", "partition"],
        );
        let replaced = counter(
            "rf_readings_replaced_total",
            "Readings replaced by a later revision.",
            &["tenant", "partition"],
        );
        let dead_letters = counter(
            "rf_dead_letters_total",
            "Dead letters written.",
            &["tenant", "partition", "reason"],
        );
        let rejected_rooms = counter(
            "rf_room_metadata_rejected_total",
            "Room metadata records rejected.",
            &["tenant", "reason"],
        );
        let rejected_bookings = counter(
            "rf_bookings_rejected_total",
            "Booking records rejected: malformed, or moved too far back to rewrite.",
            &["tenant", "reason"],
        );
        let booking_rows = counter(
            "rf_booking_rows_total",
            "Booked-versus-used rows written, revisions included.",
            &["tenant"],
        );
        let restatements = counter(
            "rf_restatements_total",
            "Room versions whose capacity change in the past rewrote final rows.",
            &["tenant"],
        );
        let anomalies = counter(
            "rf_anomaly_rows_total",
            "Anomaly rows written: new anomalies and revisions of lasting ones.",
            &["tenant", "kind", "severity"],
        );
        let forecasts = counter(
            "rf_forecast_rows_total",
            "Forecast windows written.",
            &["tenant"],
        );
        let sink_retries = counter(
            "rf_sink_retries_total",
            "Failed sink calls that were retried: writes, and reading the models at start.",
            &["sink"],
        );
        let alerts = counter(
            "rf_alerts_total",
            "Alerts by outcome: delivered, retried (an attempt failed and is retried), dropped (refused, or failing past the give-up period), grouped (held by a cooldown into the next message), too_old (the anomaly ended before alerts.max_age_secs), unreadable (an outbox record).",
            &["tenant", "target", "outcome"],
        );
        let alert_targets_disabled = counter(
            "rf_alert_targets_disabled_total",
            "Alert targets disabled after their deliveries failed for the give-up period.",
            &["tenant"],
        );
        let alerts_pending = IntGauge::new(
            "rf_alerts_pending",
            "Alerts waiting for delivery or held by a cooldown.",
        )
        .expect("valid metric");
        registry
            .register(Box::new(alerts_pending.clone()))
            .expect("unique metric");
        let histogram = |name: &str, help: &str, buckets: Vec<f64>| {
            let h = HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets), &["sink"])
                .expect("valid metric");
            registry
                .register(Box::new(h.clone()))
                .expect("unique metric");
            h
        };
        let batch_size = histogram(
            "rf_sink_batch_size",
            "Rows or keys per batch written.",
            prometheus::exponential_buckets(1.0, 4.0, 10).expect("valid buckets"),
        );
        let epoch_latency = histogram(
            "rf_epoch_latency_seconds",
            "From an epoch's first record consumed to every sink's acknowledgement: the worst reading-to-Redis delay of the epoch.",
            prometheus::exponential_buckets(0.001, 2.0, 16).expect("valid buckets"),
        );
        let final_delay = histogram(
            "rf_final_row_delay_seconds",
            "Per epoch with final rows: from the oldest final window's end + allowed lateness (wall clock) to its final row acknowledged. Readings with event times in the past (backlogs, replays) show as long delays.",
            prometheus::exponential_buckets(0.01, 2.0, 20).expect("valid buckets"),
        );
        let gauge = |name: &str, help: &str, labels: &[&str]| {
            let g = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric");
            registry
                .register(Box::new(g.clone()))
                .expect("unique metric");
            g
        };
        let watermark = gauge(
            "rf_partition_watermark_ms",
            "Largest accepted reading ts.",
            &["tenant", "partition"],
        );
        let state = gauge(
            "rf_state_size",
            "What the aggregators hold: readings of open 15m windows (kind=readings), final 15m windows summed up for open hour and day windows (chunks), open windows (windows).",
            &["worker", "kind"],
        );
        let consumer_lag = gauge(
            "rf_consumer_lag",
            "Readings not yet consumed, per partition.",
            &["tenant", "partition"],
        );
        let paused = gauge(
            "rf_tenant_paused",
            "1 while a tenant's partitions are not read: reason=schema (its records wait for the schema registry), sinks (its stores are behind), quarantine (a store refused its rows for good; fix and restart).",
            &["tenant", "reason"],
        );
        let jobs_finished = counter(
            "rf_jobs_finished_total",
            "Jobs this process's worker ran to their end, by kind and state (succeeded, failed, cancelled).",
            &["kind", "state"],
        );
        let job_worker_heartbeat = IntGauge::new(
            "rf_job_worker_heartbeat_seconds",
            "When this process's job worker last went round its loop, Unix seconds (0: no worker here). A worker runs one job at a time: a long job holds it.",
        )
        .expect("valid metric");
        registry
            .register(Box::new(job_worker_heartbeat.clone()))
            .expect("unique metric");
        let tenant_storage = gauge(
            "rf_tenant_storage_bytes",
            "Bytes each tenant stores, by store (clickhouse: its database's active parts, compressed), measured by the job worker every 10 minutes: for billing and capacity planning.",
            &["tenant", "store"],
        );
        Self {
            registry,
            consumed,
            counted,
            replaced,
            dead_letters,
            rejected_rooms,
            restatements,
            rejected_bookings,
            booking_rows,
            anomalies,
            forecasts,
            sink_retries,
            alerts,
            alert_targets_disabled,
            alerts_pending,
            batch_size,
            epoch_latency,
            final_delay,
            watermark,
            state,
            consumer_lag,
            paused,
            jobs_finished,
            job_worker_heartbeat,
            tenant_storage,
        }
    }

    /// Mirrors a worker's paused tenants into `rf_tenant_paused` (each change logged at
    /// debug level; the causes are logged where they happen: the registry's retries, a
    /// quarantine); `seen` is what the last call saw.
    pub fn show_paused(&self, paused: &rf_operators::Paused, seen: &mut HashMap<TenantId, u8>) {
        let now = paused.snapshot();
        let tenants: HashSet<&TenantId> = seen.keys().chain(now.keys()).collect();
        for tenant in tenants {
            let (before, after) = (seen.get(tenant), now.get(tenant));
            let changed = before.copied().unwrap_or(0) ^ after.copied().unwrap_or(0);
            for (why, name) in Why::ALL.iter().filter(|(w, _)| changed & *w as u8 != 0) {
                let on = after.is_some_and(|bits| bits & *why as u8 != 0);
                self.paused
                    .with_label_values(&[tenant.as_str(), name])
                    .set(on as i64);
                tracing::debug!(%tenant, reason = name, paused = on, "tenant pause changed");
            }
        }
        *seen = now;
    }

    /// The name of every metric.
    pub fn names(&self) -> Vec<String> {
        use prometheus::core::Collector;
        let collectors: [&dyn Collector; 24] = [
            &self.consumed,
            &self.counted,
            &self.replaced,
            &self.dead_letters,
            &self.rejected_rooms,
            &self.restatements,
            &self.rejected_bookings,
            &self.booking_rows,
            &self.anomalies,
            &self.forecasts,
            &self.sink_retries,
            &self.alerts,
            &self.alert_targets_disabled,
            &self.alerts_pending,
            &self.batch_size,
            &self.epoch_latency,
            &self.final_delay,
            &self.watermark,
            &self.state,
            &self.consumer_lag,
            &self.paused,
            &self.jobs_finished,
            &self.job_worker_heartbeat,
            &self.tenant_storage,
        ];
        collectors
            .iter()
            .flat_map(|c| c.desc())
            .map(|d| d.fq_name.clone())
            .collect()
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .expect("text encoding cannot fail");
        String::from_utf8(buf).expect("the text format is UTF-8")
    }

    /// Serves `GET /metrics` on `listen` from a background thread.
    pub fn serve(&self, listen: &str) -> std::io::Result<()> {
        let listener = TcpListener::bind(listen)?;
        let metrics = self.clone();
        std::thread::Builder::new().name("metrics".into()).spawn(move || {
            for mut stream in listener.incoming().flatten() {
                let mut request = [0u8; 1024];
                let n = stream.read(&mut request).unwrap_or(0);
                let response = if request[..n].starts_with(b"GET /metrics") {
                    let body = metrics.render();
                    format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: text/plain; version=0.0.4\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    )
                } else {
                    "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".to_owned()
                };
                if let Err(error) = stream.write_all(response.as_bytes()) {
                    tracing::debug!(%error, "metrics client went away");
                }
            }
        })?;
        Ok(())
    }
}

/// A field of `/proc/self/status` in bytes (Linux), or 0 where unknown.
fn proc_status_bytes(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(field))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// Resident memory of this process now, bytes.
pub fn rss_bytes() -> u64 {
    proc_status_bytes("VmRSS:")
}

/// Peak resident memory of this process, bytes.
pub fn peak_rss_bytes() -> u64 {
    proc_status_bytes("VmHWM:")
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
