//! `roomflow bench`: loads a backlog of simulated readings into the broker, then runs
//! the whole pipeline over it and reports throughput, epoch latency and peak memory.
//! Two more stages separate the limits: plain consumers reading the same backlog (the
//! broker's ceiling), and the pipeline's operators fed from memory (its own ceiling).

mod capture;
mod compute;
mod files;
mod gateway;
mod live;
pub mod outage;
mod service;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use rf_pipelines::metrics::peak_rss_bytes;
use rf_pipelines::{run, Metrics, RunOptions, RunReport, Settings};
use rf_schemas::TenantId;

pub use capture::ConsumeReport;
pub use compute::ComputeReport;
pub use files::{export, replay, ReplayReport};
pub use gateway::{gateway_bench, GatewayOptions, GatewayReport};
pub use live::{live, LiveOptions, LiveReport, Noise};
pub use service::{
    service_bench, EndpointReport, ServiceBenchOptions, ServiceBenchReport, HEAVIEST,
};

use rf_jobs::simulate::{simulate, FleetSpec, SimulateOptions, SimulateReport};
use rf_jobs::JobError;

/// The benchmark's shape.
#[derive(Clone, Debug)]
pub struct BenchOptions {
    /// Readings in the backlog (rounded to whole minutes of the fleet).
    pub readings: u64,
    /// Rooms of the fleet (one tenant, ten offices).
    pub rooms: usize,
    /// Keep the benchmark tenant's topics and database afterwards.
    pub keep: bool,
    /// Also measure the broker's and the operators' ceilings (both hold the backlog in
    /// memory, about 160 bytes a reading).
    pub ceilings: bool,
}

/// What the benchmark measured.
#[derive(Debug)]
pub struct BenchReport {
    /// The throwaway tenant used.
    pub tenant: TenantId,
    /// Loading the backlog.
    pub load: SimulateReport,
    /// Running the pipeline over it.
    pub run: RunReport,
    /// Peak resident memory of this process during the pipeline run, bytes.
    pub peak_rss: u64,
    /// Resident memory when the pipeline started, bytes: what loading the backlog left
    /// (the allocator keeps some of the publisher's memory), counted in `peak_rss` too.
    pub start_rss: u64,
    /// Plain consumers reading the backlog, and the operators fed from memory.
    pub ceilings: Option<(ConsumeReport, ComputeReport)>,
}

/// Percentile `p` (0..=100) of `values`; 0 when there are none.
pub fn percentile(values: &[f64], p: f64) -> f64 {
    let mut l = values.to_vec();
    if l.is_empty() {
        return 0.0;
    }
    l.sort_by(f64::total_cmp);
    l[((p / 100.0 * (l.len() - 1) as f64).round() as usize).min(l.len() - 1)]
}

/// A Tuesday at midnight UTC: the backlog covers office hours and closes day windows.
const BACKLOG_START: i64 = 1_763_424_000_000; // 2025-11-18T00:00:00Z

/// Runs the benchmark against the services in `settings`.
pub async fn bench(settings: &Settings, options: &BenchOptions) -> Result<BenchReport, JobError> {
    if options.rooms == 0 || options.readings < options.rooms as u64 {
        return Err(JobError::Invalid(
            "--readings must be at least --rooms, and --rooms at least 1".into(),
        ));
    }
    let tenant = throwaway_tenant(settings, "bench", Default::default()).await?;

    let minutes = options.readings.div_ceil(options.rooms as u64) as i64;
    let sim = SimulateOptions {
        spec: fleet(&tenant, options.rooms),
        from: BACKLOG_START,
        to: BACKLOG_START + minutes * 60_000,
        live: false,
        speed: 1.0,
        progress: true,
    };
    let (kafka, registry) = (settings.kafka.clone(), settings.registry.clone());
    let load = tokio::task::spawn_blocking(move || {
        simulate(&kafka, &registry, &sim, Arc::new(AtomicBool::new(false)))
    })
    .await
    .map_err(|e| JobError::Invalid(format!("load task failed: {e}")))??;

    let run_settings = pipeline_settings(settings, &tenant);
    reset_peak_rss();
    let start_rss = rf_pipelines::metrics::rss_bytes();
    let options_run = RunOptions {
        until_caught_up: true,
        shutdown: Arc::new(AtomicBool::new(false)),
        memory_every: Some(1_000_000),
        ..Default::default()
    };
    let run = tokio::task::spawn_blocking(move || run(&run_settings, options_run, Metrics::new()))
        .await
        .map_err(|e| JobError::Invalid(format!("pipeline task failed: {e}")))??;
    let peak_rss = peak_rss_bytes();

    let ceilings = if options.ceilings {
        Some(ceilings(settings, &tenant).await?)
    } else {
        None
    };
    if !options.keep {
        drop_tenant(settings, &tenant).await?;
    }
    Ok(BenchReport {
        tenant,
        load,
        run,
        peak_rss,
        start_rss,
        ceilings,
    })
}

/// The broker's ceiling, then the operators' over what it read.
async fn ceilings(
    settings: &Settings,
    tenant: &TenantId,
) -> Result<(ConsumeReport, ComputeReport), JobError> {
    let (kafka, workers) = (settings.kafka.clone(), settings.pipeline.workers);
    let reader = tenant.clone();
    let (captured, ceiling) =
        tokio::task::spawn_blocking(move || capture::consume(&kafka, &reader, workers))
            .await
            .map_err(|e| JobError::Invalid(format!("consumer task failed: {e}")))??;
    let buffer = captured.footprint() as u64;
    reset_peak_rss();
    let (registry, pipeline) = (settings.registry.clone(), settings.pipeline.clone());
    let compute = tokio::task::spawn_blocking(move || {
        compute::compute(Arc::new(captured), &registry, &pipeline)
    })
    .await
    .map_err(|e| JobError::Invalid(format!("in-memory task failed: {e}")))??;
    Ok((
        ceiling,
        ComputeReport {
            peak_rss: peak_rss_bytes(),
            buffer,
            ..compute
        },
    ))
}

/// The benchmark's fleet: one tenant, ten offices, always the same rooms.
fn fleet(tenant: &TenantId, rooms: usize) -> FleetSpec {
    FleetSpec {
        tenants: vec![tenant.clone()],
        offices: 10,
        rooms,
        seed: 42,
    }
}

/// The pipeline for the benchmark tenant alone, in its own consumer group, without a
/// metrics endpoint.
fn pipeline_settings(settings: &Settings, tenant: &TenantId) -> Settings {
    let mut s = settings.clone();
    s.kafka.group_id = format!("roomflow-{tenant}");
    s.pipeline.tenants = vec![tenant.to_string()];
    s.pipeline.metrics_listen = String::new();
    s
}

/// Creates one of the benchmark's own tenants, named `<tag>-<the time>`.
async fn throwaway_tenant(
    settings: &Settings,
    tag: &str,
    spec: rf_jobs::tenant::TenantSpec,
) -> Result<TenantId, JobError> {
    let stamp = rf_schemas::unix_ms() / 1000;
    let tenant = TenantId::parse(&format!("{tag}-{stamp}")).expect("a valid id");
    let spec = rf_jobs::tenant::TenantSpec {
        display_name: spec
            .display_name
            .or_else(|| Some(format!("roomflow bench ({tag})"))),
        ..spec
    };
    rf_jobs::tenant::create(settings, &tenant, &spec).await?;
    Ok(tenant)
}

/// Publishes the rooms of `spec`'s fleet (no readings).
async fn publish_rooms(settings: &Settings, spec: FleetSpec) -> Result<(), JobError> {
    let sim = SimulateOptions {
        spec,
        from: BACKLOG_START,
        to: BACKLOG_START,
        live: false,
        speed: 1.0,
        progress: false,
    };
    let (kafka, registry) = (settings.kafka.clone(), settings.registry.clone());
    tokio::task::spawn_blocking(move || {
        simulate(&kafka, &registry, &sim, Arc::new(AtomicBool::new(false)))
    })
    .await
    .map_err(|e| JobError::Invalid(format!("rooms task failed: {e}")))??;
    Ok(())
}

/// Limits no benchmark reaches, for every class of request.
/// A listener on a free loopback port for a benchmark's own server, and its address.
async fn loopback() -> Result<(tokio::net::TcpListener, std::net::SocketAddr), JobError> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| JobError::Invalid(format!("cannot listen on loopback: {e}")))?;
    let addr = listener
        .local_addr()
        .map_err(|e| JobError::Invalid(e.to_string()))?;
    Ok((listener, addr))
}

fn unlimited() -> rf_service::limits::TierLimits {
    let unlimited = rf_service::limits::Limit {
        requests: u32::MAX,
        window_secs: 1,
    };
    rf_service::limits::TierLimits {
        general: unlimited,
        analytics: unlimited,
        ingest: unlimited,
    }
}

/// Erases the benchmark's own throwaway tenant at once.
async fn drop_tenant(settings: &Settings, tenant: &TenantId) -> Result<(), JobError> {
    rf_jobs::erase::all_steps(settings, tenant).await
}

/// Resets the kernel's peak-RSS mark of this process (Linux), so the next reading
/// measures only what follows.
fn reset_peak_rss() {
    if let Err(error) = std::fs::write("/proc/self/clear_refs", "5") {
        tracing::debug!(%error, "cannot reset the peak RSS mark");
    }
}
