//! `roomflow bench --live`: a steady stream of readings published while the pipeline
//! runs, for the delays a live deployment sees. Event time runs faster than the wall
//! clock (so that a few thousand rooms make the rate), and every delay is reported in
//! wall-clock time.

use rf_schemas::unix_ms;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rf_pipelines::metrics::peak_rss_bytes;
use rf_pipelines::{run, KafkaConfig, Metrics, RunOptions, RunReport, Settings};
use rf_schemas::TenantId;

use crate::outage::{new_schema_id, publish, Hang};
use crate::{
    drop_tenant, fleet, pipeline_settings, publish_rooms, reset_peak_rss, throwaway_tenant,
    BACKLOG_START,
};
use rf_jobs::backfill::{self, BackfillConfig};
use rf_jobs::simulate::{simulate, Fleet, SimulateOptions, SimulateReport};
use rf_jobs::JobError;
use rf_pipelines::backfill::Backfill;

const MINUTE: i64 = 60_000;

/// The live benchmark's shape.
#[derive(Clone, Debug)]
pub struct LiveOptions {
    /// Readings per second to publish.
    pub rate: u64,
    /// Rooms of the fleet; each sends one reading per simulated minute.
    pub rooms: usize,
    /// How long to publish.
    pub duration: Duration,
    /// Keep the benchmark tenant's topics and database afterwards.
    pub keep: bool,
    /// Meanwhile, a second tenant makes noise.
    pub noise: Option<Noise>,
    /// How a backfill beside runs ([`Noise::Backfill`]).
    pub backfill: BackfillConfig,
}

/// What the noisy neighbour of the live benchmark does.
#[derive(Clone, Copy, Debug)]
pub enum Noise {
    /// Floods this many malformed messages a second.
    Malformed(u64),
    /// Has this many valid readings of backlog waiting when the run starts (a replay).
    Backlog(u64),
    /// Has a history of this many readings that a backfill job recomputes meanwhile, as
    /// [`LiveOptions::backfill`] says.
    Backfill(u64),
    /// Publishes this many valid readings a second through two outages of its own: from a
    /// tenth of the run, with a schema id the registry does not answer for (the registry
    /// hangs: only ids the pipeline had cached still decode); from half of it, with its
    /// region's ClickHouse hanging instead. Both end a little before the run does.
    Outage(u64),
}

impl std::fmt::Display for Noise {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Malformed(rate) => write!(f, "flooding {rate} malformed messages/s"),
            Self::Backlog(n) => write!(f, "replaying a backlog of {n} readings"),
            Self::Backfill(n) => write!(f, "backfilling a history of {n} readings"),
            Self::Outage(rate) => write!(
                f,
                "publishing {rate} readings/s through a registry outage and then a ClickHouse outage of its own"
            ),
        }
    }
}

/// Rooms of the noisy tenant's backlog fleet.
const BACKLOG_ROOMS: usize = 2_000;
/// Rooms of the troubled tenant ([`Noise::Outage`]).
const TROUBLED_ROOMS: usize = 1_000;
/// The region the troubled tenant lives in: the home region's stores, reached through a
/// proxy that can hang.
const OUTAGE_REGION: &str = "bench-outage";

/// What the live benchmark measured.
#[derive(Debug)]
pub struct LiveReport {
    /// The throwaway tenant used.
    pub tenant: TenantId,
    /// Simulated minutes per wall-clock minute.
    pub speed: f64,
    /// What was published.
    pub published: SimulateReport,
    /// The pipeline's run.
    pub run: RunReport,
    /// Per epoch with final rows, seconds from when the reading that could make its
    /// oldest window final was published to the final row acknowledged.
    pub final_delays: Vec<f64>,
    /// Allowed lateness in wall-clock seconds at this speed.
    pub lateness_wall: f64,
    /// Per epoch, seconds from when the benchmark tenant's oldest reading in it was
    /// published to Redis acknowledging it: the reading-to-Redis delay, waiting in the
    /// broker included.
    pub publish_to_redis: Vec<f64>,
    /// Peak resident memory of this process (pipeline and publisher), bytes.
    pub peak_rss: u64,
    /// The noisy tenant and how many messages it sent (flooded, backlog or history), if
    /// one did.
    pub noise: Option<(TenantId, u64)>,
    /// A backfill beside: records it read, for how long, and whether it ended before the
    /// publishing did.
    pub backfilled: Option<(u64, Duration, bool)>,
}

/// Publishes `options.rate` readings a second for `options.duration` while the pipeline
/// runs, then stops both.
pub async fn live(settings: &Settings, options: &LiveOptions) -> Result<LiveReport, JobError> {
    if options.rooms == 0 || options.rate == 0 || options.duration.is_zero() {
        return Err(JobError::Invalid(
            "--rate, --rooms and --duration must be above zero".into(),
        ));
    }
    let speed = options.rate as f64 * 60.0 / options.rooms as f64;
    if speed > 100_000.0 {
        return Err(JobError::Invalid(format!(
            "--rate {} with --rooms {} needs {speed:.0} simulated minutes a minute; at most 100000: add rooms",
            options.rate, options.rooms
        )));
    }
    // The troubled tenant's region: the home stores under another name.
    let mut settings = settings.clone();
    if matches!(options.noise, Some(Noise::Outage(_))) {
        let home = settings
            .region(&settings.regions.home)
            .ok_or_else(|| JobError::Invalid("no home region".into()))?;
        let stores = rf_pipelines::RegionStores {
            brokers: home.brokers,
            clickhouse: home.clickhouse,
            redis: home.redis,
        };
        settings.regions.remote.insert(OUTAGE_REGION.into(), stores);
    }
    let settings = &settings;
    let tenant = throwaway_tenant(settings, "bench", Default::default()).await?;
    let noisy = match options.noise {
        Some(Noise::Outage(_)) => {
            let spec = rf_jobs::tenant::TenantSpec {
                region: Some(OUTAGE_REGION.into()),
                ..Default::default()
            };
            Some(throwaway_tenant(settings, "troubled", spec).await?)
        }
        Some(_) => Some(throwaway_tenant(settings, "noisy", Default::default()).await?),
        None => None,
    };
    // A backlog is all there before the pipeline starts.
    let backlog = match (&noisy, options.noise) {
        (Some(noisy), Some(Noise::Backlog(readings) | Noise::Backfill(readings))) => {
            let minutes = readings.div_ceil(BACKLOG_ROOMS as u64) as i64;
            let sim = SimulateOptions {
                spec: fleet(noisy, BACKLOG_ROOMS),
                from: BACKLOG_START - minutes * MINUTE,
                to: BACKLOG_START,
                live: false,
                speed: 1.0,
                progress: true,
            };
            let (kafka, registry) = (settings.kafka.clone(), settings.registry.clone());
            let published = tokio::task::spawn_blocking(move || {
                simulate(&kafka, &registry, &sim, Arc::new(AtomicBool::new(false)))
            })
            .await
            .map_err(|e| JobError::Invalid(format!("backlog task failed: {e}")))??;
            Some(published.readings)
        }
        _ => None,
    };

    let mut run_settings = pipeline_settings(settings, &tenant);
    if !matches!(options.noise, Some(Noise::Backfill(_))) {
        run_settings
            .pipeline
            .tenants
            .extend(noisy.iter().map(ToString::to_string));
    }
    // Event time runs `speed` times faster than the wall clock from BACKLOG_START on: where
    // it would pass the pipeline's clock, the benchmark's pipeline allows that much skew.
    let simulated_end = BACKLOG_START + (options.duration.as_millis() as f64 * speed) as i64;
    let ahead_ms = simulated_end - unix_ms();
    if ahead_ms > 0 {
        let skew = &mut run_settings.pipeline.clock_skew_secs;
        *skew = (*skew).max(ahead_ms as u64 / 1000 + 300);
    }
    // The troubled tenant: its rooms, a schema id of its own, and the proxies to hang.
    let trouble = match (&noisy, options.noise) {
        (Some(noisy), Some(Noise::Outage(_))) => {
            publish_rooms(settings, fleet(noisy, TROUBLED_ROOMS)).await?;
            let schema_id = new_schema_id(&settings.registry, noisy)?;
            let registry = Hang::start(&settings.registry.url).await?;
            let stores = run_settings
                .regions
                .remote
                .get_mut(OUTAGE_REGION)
                .expect("added above");
            let clickhouse = Hang::start(&stores.clickhouse.url).await?;
            stores.clickhouse.url = clickhouse.url.clone();
            run_settings.registry.url = registry.url.clone();
            Some((schema_id, registry, clickhouse))
        }
        _ => None,
    };
    let lateness_ms = settings.pipeline.allowed_lateness_secs as i64 * 1000;
    reset_peak_rss();
    let stop_pipeline = Arc::new(AtomicBool::new(false));
    let run_options = RunOptions {
        until_caught_up: false,
        shutdown: stop_pipeline.clone(),
        memory_every: Some(options.rate * 10),
        ..Default::default()
    };
    let pipeline =
        tokio::task::spawn_blocking(move || run(&run_settings, run_options, Metrics::new()));
    // A benchmark that fails on the way stops the pipeline too.
    let _stops = StopOnDrop(stop_pipeline.clone());
    // The pipeline finds its (empty) topics before the first reading is published.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let sim = SimulateOptions {
        spec: fleet(&tenant, options.rooms),
        from: BACKLOG_START,
        to: BACKLOG_START,
        live: true,
        speed,
        progress: false,
    };
    let stop_publishing = Arc::new(AtomicBool::new(false));
    let mut troubled_sent = None;
    let (kafka, registry, stop) = (
        settings.kafka.clone(),
        settings.registry.clone(),
        stop_publishing.clone(),
    );
    // Taken before the publisher starts its clock: delays measured from it are upper bounds.
    let wall_start = unix_ms();
    let publisher = tokio::task::spawn_blocking(move || simulate(&kafka, &registry, &sim, stop));
    let flood = match (&noisy, options.noise) {
        (Some(noisy), Some(Noise::Malformed(rate))) => {
            let (kafka, topic) = (settings.kafka.clone(), noisy.readings_topic());
            let stop = stop_publishing.clone();
            Some(tokio::task::spawn_blocking(move || {
                flood(&kafka, &topic, rate, &stop)
            }))
        }
        _ => None,
    };
    let backfill = match (&noisy, options.noise, backlog) {
        (Some(noisy), Some(Noise::Backfill(_)), Some(readings)) => {
            let minutes = readings.div_ceil(BACKLOG_ROOMS as u64) as i64;
            let range = Backfill {
                from: BACKLOG_START - minutes * MINUTE,
                to: BACKLOG_START,
                max_rate: None,
            };
            let config = &options.backfill;
            let s = backfill::settings_for(settings, noisy, config);
            Some((
                backfill::start(s, noisy, range, config)?,
                std::time::Instant::now(),
            ))
        }
        _ => None,
    };
    match (&noisy, &trouble) {
        (Some(noisy), Some((schema_id, registry, clickhouse))) => {
            let rate = match options.noise {
                Some(Noise::Outage(rate)) => rate,
                _ => unreachable!("trouble comes with Noise::Outage"),
            };
            let tenth = options.duration / 10;
            tokio::time::sleep(tenth).await;
            // The registry hangs: the troubled tenant's new id cannot be fetched.
            registry.hang(true);
            let (kafka, stop) = (settings.kafka.clone(), stop_publishing.clone());
            let troubled = Fleet::new(&fleet(noisy, TROUBLED_ROOMS));
            let schema_id = *schema_id;
            let started_at = BACKLOG_START + (tenth.as_millis() as f64 * speed) as i64;
            let publisher = tokio::task::spawn_blocking(move || {
                publish(
                    &kafka,
                    &troubled,
                    schema_id,
                    (rate, started_at, speed),
                    &stop,
                )
            });
            tokio::time::sleep(tenth * 4).await;
            // Now its region's ClickHouse hangs instead.
            clickhouse.hang(true);
            registry.hang(false);
            tokio::time::sleep(tenth * 4).await;
            clickhouse.hang(false);
            tokio::time::sleep(tenth).await;
            stop_publishing.store(true, Ordering::Relaxed);
            let sent = publisher
                .await
                .map_err(|e| JobError::Invalid(format!("troubled publisher failed: {e}")))??;
            troubled_sent = Some(sent);
        }
        _ => tokio::time::sleep(options.duration).await,
    }
    let backfilled = match backfill {
        Some((running, started)) => {
            if running.is_finished() {
                let region = settings
                    .region(&settings.regions.home)
                    .ok_or_else(|| JobError::Invalid("no home region".into()))?;
                let run = running.finish(&region).await?.report;
                Some((run.stats.consumed, run.elapsed, true))
            } else {
                let (read, took) = (running.consumed(), started.elapsed());
                running.stop();
                Some((read, took, false))
            }
        }
        None => None,
    };
    stop_publishing.store(true, Ordering::Relaxed);
    let published = publisher
        .await
        .map_err(|e| JobError::Invalid(format!("publisher task failed: {e}")))??;
    let flooded = match flood {
        Some(task) => Some(
            task.await
                .map_err(|e| JobError::Invalid(format!("flood task failed: {e}")))??,
        ),
        None => None,
    };
    // What was published is consumed and written before the pipeline stops.
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop_pipeline.store(true, Ordering::Relaxed);
    let run = pipeline
        .await
        .map_err(|e| JobError::Invalid(format!("pipeline task failed: {e}")))??;
    let peak_rss = peak_rss_bytes();

    // The simulated minute m is published when the publisher's clock passes m + 1 minute.
    let published_at = |ts: i64| wall_start as f64 + (ts + MINUTE - BACKLOG_START) as f64 / speed;
    let final_delays = run
        .stats
        .finals
        .iter()
        .filter(|(t, _, _)| *t == tenant)
        .map(|&(_, acked, end)| (acked as f64 - published_at(end + lateness_ms)) / 1e3)
        .collect();
    let publish_to_redis = run
        .stats
        .live_acks
        .iter()
        .filter(|(t, _, _)| *t == tenant)
        .map(|&(_, acked, oldest)| (acked as f64 - published_at(oldest)) / 1e3)
        .collect();
    if !options.keep {
        drop_tenant(settings, &tenant).await?;
        if let Some(noisy) = &noisy {
            drop_tenant(settings, noisy).await?;
        }
    }
    Ok(LiveReport {
        tenant,
        speed,
        published,
        run,
        final_delays,
        lateness_wall: lateness_ms as f64 / speed / 1e3,
        publish_to_redis,
        peak_rss,
        noise: noisy.zip(flooded.or(backlog).or(troubled_sent)),
        backfilled,
    })
}

/// Sets its flag when dropped.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Sends `rate` malformed messages a second to `topic` (keys spread over its
/// partitions) until `stop`; returns how many were delivered.
fn flood(kafka: &KafkaConfig, topic: &str, rate: u64, stop: &AtomicBool) -> Result<u64, JobError> {
    crate::outage::paced(kafka, rate, stop, |sent, _| {
        let key = format!("noisy-office-{}", sent % 24);
        (
            topic.to_owned(),
            key,
            format!("not avro {sent}").into_bytes(),
        )
    })
}
