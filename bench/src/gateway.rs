//! `roomflow bench --gateway`: sensors sending readings over HTTPS. A throwaway tenant's
//! rooms are published, the query service (with its ingest endpoint) and the pipeline run
//! in this process, and `senders` keep-alive connections post JSON batches of readings
//! stamped with the wall clock as fast as they are answered. Reported: readings
//! accepted a second, request latency, and the delay from the gateway's acknowledgement
//! of a batch to Redis having its readings.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;

use rf_jobs::simulate::Fleet;
use rf_jobs::JobError;
use rf_pipelines::metrics::peak_rss_bytes;
use rf_pipelines::{run, Metrics, RunOptions, RunReport, Settings};
use rf_schemas::tenant::Role;
use rf_schemas::TenantId;
use rf_service::{ServiceConfig, Stores};

use crate::{
    drop_tenant, fleet, pipeline_settings, publish_rooms, reset_peak_rss, throwaway_tenant,
    unlimited,
};

/// The gateway benchmark's shape.
#[derive(Clone, Debug)]
pub struct GatewayOptions {
    /// Rooms of the fleet the readings are of.
    pub rooms: usize,
    /// Concurrent keep-alive connections posting batches.
    pub senders: usize,
    /// Readings in one request.
    pub batch: usize,
    /// Readings a second offered in all (none: each sender as fast as answered).
    pub rate: Option<u64>,
    /// How long they post.
    pub duration: Duration,
    /// Keep the throwaway tenant afterwards.
    pub keep: bool,
}

/// What the gateway benchmark measured.
#[derive(Debug)]
pub struct GatewayReport {
    /// The throwaway tenant.
    pub tenant: TenantId,
    /// Readings the gateway acknowledged.
    pub accepted: u64,
    /// Requests answered 200.
    pub requests: u64,
    /// Requests answered otherwise, or failed, with why.
    pub failures: Vec<String>,
    /// How long the senders posted.
    pub elapsed: Duration,
    /// Per request, milliseconds from sent to answered.
    pub latencies: Vec<f64>,
    /// Per pipeline epoch, milliseconds from the gateway acknowledging the batch of the
    /// epoch's oldest reading to Redis acknowledging the epoch.
    pub ack_to_redis: Vec<f64>,
    /// The pipeline's run.
    pub run: RunReport,
    /// Peak resident memory of this process (service, pipeline and senders), bytes.
    pub peak_rss: u64,
}

/// Runs the benchmark (see the module's documentation).
pub async fn gateway_bench(
    settings: &Settings,
    service: &ServiceConfig,
    stores: &Stores,
    options: &GatewayOptions,
) -> Result<GatewayReport, JobError> {
    if options.rooms == 0 || options.senders == 0 || options.batch == 0 {
        return Err(JobError::Invalid(
            "--rooms, --senders and --batch must be above zero".into(),
        ));
    }
    if options.batch > service.ingest.max_readings {
        return Err(JobError::Invalid(format!(
            "--batch {} is above service.ingest.max_readings ({})",
            options.batch, service.ingest.max_readings
        )));
    }
    let tenant = throwaway_tenant(settings, "gateway", Default::default()).await?;
    // The fleet's rooms, published (no readings).
    let spec = fleet(&tenant, options.rooms);
    publish_rooms(settings, spec.clone()).await?;
    let rooms: Arc<Vec<(String, String, String, u32)>> = Arc::new(
        Fleet::new(&spec).tenants[0]
            .1
            .iter()
            .map(|r| {
                let v = &r.version;
                (
                    r.sensor_id.clone(),
                    v.office_id.clone(),
                    v.room_id.clone(),
                    v.capacity,
                )
            })
            .collect(),
    );
    let (key, _) =
        rf_jobs::apikey::create(&settings.clickhouse, &tenant, "bench", Role::Ingest).await?;

    // The service, with no limit in the way.
    let mut config = service.clone();
    for limits in config.rate_limits.values_mut() {
        *limits = unlimited();
    }
    let gateway = rf_service::ingest::Gateway::connect(
        settings.kafka.client_config(),
        rf_schemas::registry::RegistryClient::new(
            &settings.registry.url,
            Duration::from_secs(settings.registry.timeout_secs),
        ),
        Duration::from_secs(config.ingest.ack_timeout_secs),
    )
    .map_err(JobError::Invalid)?;
    let backends = rf_service::Backends {
        admin: None,
        gateway: Some(gateway),
    };
    let (listener, addr) = crate::loopback().await?;
    let (stop_serving, stopped) = tokio::sync::oneshot::channel::<()>();
    let stores = stores.clone();
    let server = tokio::spawn(async move {
        rf_service::serve_with(listener, &config, &stores, backends, async {
            let _ = stopped.await;
        })
        .await
    });

    // The pipeline, live.
    reset_peak_rss();
    let stop = Arc::new(AtomicBool::new(false));
    let run_settings = pipeline_settings(settings, &tenant);
    let run_options = RunOptions {
        until_caught_up: false,
        shutdown: stop.clone(),
        ..Default::default()
    };
    let pipeline =
        tokio::task::spawn_blocking(move || run(&run_settings, run_options, Metrics::new()));
    tokio::time::sleep(Duration::from_secs(2)).await;

    let started = Instant::now();
    let deadline = started + options.duration;
    let senders: Vec<_> = (0..options.senders)
        .map(|c| {
            let (rooms, key) = (rooms.clone(), key.clone());
            let batch = options.batch;
            // Each sender's batches, evenly spaced.
            let every = options.rate.map(|rate| {
                Duration::from_secs_f64(batch as f64 * options.senders as f64 / rate.max(1) as f64)
            });
            tokio::spawn(
                async move { sender(addr, &key, &rooms, (c, batch, every), deadline).await },
            )
        })
        .collect();
    let mut sent = Sent::default();
    for task in senders {
        let s = task
            .await
            .map_err(|e| JobError::Invalid(format!("a sender failed: {e}")))?;
        sent.latencies.extend(s.latencies);
        sent.acks.extend(s.acks);
        sent.failures.extend(s.failures);
        sent.accepted += s.accepted;
    }
    let elapsed = started.elapsed();
    // What was acknowledged reaches Redis before the pipeline stops.
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, Ordering::Relaxed);
    let run = pipeline
        .await
        .map_err(|e| JobError::Invalid(format!("pipeline task failed: {e}")))??;
    let peak_rss = peak_rss_bytes();
    let _ = stop_serving.send(());
    server
        .await
        .map_err(|e| JobError::Invalid(format!("service task failed: {e}")))?
        .map_err(JobError::Invalid)?;

    // Each epoch's oldest reading: the earliest acknowledgement of a batch starting with
    // that stamp (an upper bound when stamps repeat).
    sent.acks.sort_unstable();
    let ack_to_redis = run
        .stats
        .live_acks
        .iter()
        .filter(|(t, _, _)| *t == tenant)
        .filter_map(|&(_, redis_at, oldest)| {
            let i = sent.acks.partition_point(|&(stamp, _)| stamp < oldest);
            let acked = sent.acks[i..]
                .iter()
                .take_while(|&&(stamp, _)| stamp == oldest)
                .map(|&(_, at)| at)
                .min()?;
            Some((redis_at - acked) as f64)
        })
        .collect();
    if !options.keep {
        drop_tenant(settings, &tenant).await?;
    }
    Ok(GatewayReport {
        tenant,
        accepted: sent.accepted,
        requests: sent.latencies.len() as u64,
        failures: sent.failures,
        elapsed,
        latencies: sent.latencies,
        ack_to_redis,
        run,
        peak_rss,
    })
}

/// What one connection sent.
#[derive(Default)]
struct Sent {
    latencies: Vec<f64>,
    /// Per acknowledged batch: its first reading's stamp and when it was acknowledged (ms).
    acks: Vec<(i64, i64)>,
    failures: Vec<String>,
    accepted: u64,
}

/// One keep-alive connection posting batches of `batch` readings (rooms in turn, each
/// connection from its own offset, stamped when sent) until `deadline`, one every
/// `every` when given.
async fn sender(
    addr: SocketAddr,
    key: &str,
    rooms: &[(String, String, String, u32)],
    (c, batch, every): (usize, usize, Option<Duration>),
    deadline: Instant,
) -> Sent {
    let mut sent = Sent::default();
    let connected = async {
        let stream = tokio::net::TcpStream::connect(addr).await?;
        let _ = stream.set_nodelay(true);
        hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(std::io::Error::other)
    };
    let (mut http, conn) = match connected.await {
        Ok(pair) => pair,
        Err(e) => {
            sent.failures.push(format!("connect: {e}"));
            return sent;
        }
    };
    tokio::spawn(conn);
    let mut next = c * rooms.len() / 7 + c;
    let mut due = Instant::now();
    while Instant::now() < deadline {
        if let Some(every) = every {
            tokio::time::sleep_until(due.into()).await;
            due += every;
        }
        let stamp = rf_schemas::unix_ms();
        let mut body = String::with_capacity(batch * 140 + 16);
        body.push_str("{\"readings\":[");
        for i in 0..batch {
            let (sensor, office, room, capacity) = &rooms[next % rooms.len()];
            next += 1;
            if i > 0 {
                body.push(',');
            }
            let people = (stamp as usize + next) % (*capacity as usize + 1);
            body.push_str(&format!(
                "{{\"sensor_id\":\"{sensor}\",\"office_id\":\"{office}\",\"room_id\":\"{room}\",\"ts\":{stamp},\"people_count\":{people}}}"
            ));
        }
        body.push_str("]}");
        let request = hyper::Request::post("/v1/ingest")
            .header(hyper::header::HOST, addr.to_string())
            .header("x-api-key", key)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))
            .expect("a valid request");
        if let Err(e) = http.ready().await {
            sent.failures.push(format!("connection: {e}"));
            break;
        }
        let at = Instant::now();
        let response = match http.send_request(request).await {
            Ok(r) => r,
            Err(e) => {
                sent.failures.push(format!("connection: {e}"));
                break;
            }
        };
        let status = response.status();
        let answer = response.into_body().collect().await.map(|b| b.to_bytes());
        let ms = at.elapsed().as_secs_f64() * 1000.0;
        match answer {
            Ok(bytes) if status.is_success() => {
                let accepted = serde_json::from_slice::<serde_json::Value>(&bytes)
                    .ok()
                    .and_then(|v| v["accepted"].as_u64())
                    .unwrap_or(0);
                sent.accepted += accepted;
                sent.latencies.push(ms);
                sent.acks.push((stamp, rf_schemas::unix_ms()));
            }
            Ok(_) => sent.failures.push(status.as_u16().to_string()),
            Err(e) => {
                sent.failures.push(format!("body: {e}"));
                break;
            }
        }
    }
    sent
}
