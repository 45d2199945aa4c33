//! Faults stay with their tenant, on the real stack: while one tenant's schema registry
//! lookups hang (behind a proxy that stops answering) and then its region's ClickHouse
//! is down, another tenant served by the same worker keeps getting its readings into
//! Redis; Ctrl-C during a registry outage
//! stops the pipeline at once; and once the troubled tenant's stores are back, its
//! results are complete. One test stops a shared service (the second region's
//! ClickHouse); the other touches only its own tenant.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::producer::FutureProducer;
use rf_bench::outage::Hang;
use rf_jobs::tenant::TenantSpec;
use rf_pipelines::{run, Metrics, RegionStores, RunOptions, RunReport, Settings};
use rf_schemas::{Reading, TenantId};

use common::*;

const EU_CLICKHOUSE: &str = "http://127.0.0.1:18124";
/// The eu region's Redis, as its pipeline's user (tests read it as administrator).
const EU_REDIS: &str = "redis://rf-pipeline:roomflow-local-development-only@127.0.0.1:16380/0";

/// Serves `tenants` on one worker (so they share it), home region and "eu".
fn settings_for(tenants: &[&TenantId], registry: &str) -> Settings {
    let mut s = settings(tenants[0]);
    s.pipeline.tenants = tenants.iter().map(|t| t.to_string()).collect();
    s.pipeline.workers = 1;
    s.registry.url = registry.into();
    s.registry.timeout_secs = 2;
    let mut eu = RegionStores::default();
    eu.clickhouse.url = EU_CLICKHOUSE.into();
    eu.redis = rf_sinks::config::RedisConfig::local(16380);
    s.regions.remote.insert("eu".into(), eu);
    s
}

/// A reading of room `room` in London, framed as `OccupancyReading` v1 or v2.
fn reading(schema_id: u32, v2: bool, room: &str, ts: i64, people: i32) -> (String, Vec<u8>, i64) {
    let r = Reading {
        sensor_id: format!("s-{room}"),
        office_id: "lon".into(),
        room_id: room.into(),
        ts,
        people_count: people,
        temperature: None,
        humidity: None,
        co2_ppm: None,
        battery_pct: None,
    };
    let value = if v2 {
        framed_v2(schema_id, &r)
    } else {
        framed(schema_id, &r)
    };
    ("lon".into(), value, ts)
}

/// The `ts` of a room's live hash, if any.
async fn live_ts(url: &str, tenant: &TenantId, room: &str) -> Option<i64> {
    let client = redis::Client::open(admin(url)).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let key = rf_sinks::redis::room_key(tenant, room);
    let ts: Option<String> = redis::cmd("HGET")
        .arg(&key)
        .arg("ts")
        .query_async(&mut conn)
        .await
        .unwrap();
    ts.map(|t| t.parse().unwrap())
}

/// Waits up to `within` for `what`; false if it never held.
async fn eventually<F: std::future::Future<Output = bool>>(
    within: Duration,
    mut what: impl FnMut() -> F,
) -> bool {
    let until = Instant::now() + within;
    while Instant::now() < until {
        if what().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

fn paused(metrics: &Metrics, tenant: &TenantId, why: &str) -> i64 {
    metrics
        .paused
        .with_label_values(&[tenant.as_str(), why])
        .get()
}

/// A live pipeline on a thread of its own (not the runtime's blocking pool, which a
/// failed test would wait for), and how to stop it.
struct Live {
    shutdown: Arc<AtomicBool>,
    done: tokio::sync::oneshot::Receiver<Result<RunReport, rf_pipelines::PipelineError>>,
}

fn start(s: &Settings, metrics: &Metrics) -> Live {
    let shutdown = Arc::new(AtomicBool::new(false));
    let options = RunOptions {
        shutdown: shutdown.clone(),
        ..Default::default()
    };
    let (s, metrics) = (s.clone(), metrics.clone());
    let (report, done) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let _ = report.send(run(&s, options, metrics));
    });
    Live { shutdown, done }
}

impl Live {
    /// Ctrl-C: the run must end within `within`.
    async fn stop(self, within: Duration) -> RunReport {
        self.shutdown.store(true, Ordering::Relaxed);
        tokio::time::timeout(within, self.done)
            .await
            .expect("the pipeline stops within seconds of Ctrl-C")
            .unwrap()
            .expect("the run ends cleanly")
    }
}

/// Quiet tenant Q (home region) and troubled tenant T ("eu") on one worker. First T's
/// new schema id cannot be fetched (the registry hangs): before, the worker slept in the
/// decoder's retry loop and Q's readings stopped too. Then T's region's ClickHouse is
/// down: before, the worker waited in the sink for every tenant. Now Q's readings reach
/// Redis throughout, T is paused alone (`rf_tenant_paused`), and once everything is
/// back T's rows hold every reading.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_tenants_registry_and_clickhouse_outages_leave_another_tenant_flowing() {
    let (q, t) = (fresh_tenant("quiet"), fresh_tenant("troubled"));
    let direct = settings_for(&[&q, &t], &Settings::default().registry.url);
    stack_is_up(&direct);
    let (q_reading, q_room) = create_tenant_on(&direct, &q).await;
    let eu = TenantSpec {
        region: Some("eu".into()),
        ..Default::default()
    };
    let (_, t_room) = create_tenant_with(&direct, &t, &eu).await;
    // T's sensors speak v2, an id Q never uses: the pipeline must fetch it for T alone.
    let t_reading = reading_v2_id(&direct, &t);
    let producer: FutureProducer = direct.kafka.client_config().create().unwrap();
    let rooms = [london_room("lon-a", 6)];
    produce_all(
        &producer,
        &q.rooms_topic(),
        &room_records(&rooms, q_room, 1_704_067_200_000),
    )
    .await;
    produce_all(
        &producer,
        &t.rooms_topic(),
        &room_records(&rooms, t_room, 1_704_067_200_000),
    )
    .await;

    let registry = Hang::start(&Settings::default().registry.url)
        .await
        .unwrap();
    let s = settings_for(&[&q, &t], &registry.url);
    let metrics = Metrics::new();
    let live = start(&s, &metrics);
    let (home_redis, eu_redis) = (s.redis.url.clone(), EU_REDIS.to_owned());
    let minute = chrono::Utc::now().timestamp_millis() / 60_000 * 60_000 - 10 * 60_000;
    let mut q_sent = 0;
    // Q flows: each reading's live state reaches Redis.
    let q_flows = |ts: i64| {
        let (producer, q, url) = (producer.clone(), q.clone(), home_redis.clone());
        async move {
            let record = reading(q_reading, false, "lon-a", ts, 2);
            produce_all(&producer, &q.readings_topic(), &[record]).await;
            eventually(Duration::from_secs(30), || {
                let (url, q) = (url.clone(), q.clone());
                async move { live_ts(&url, &q, "lon-a").await == Some(ts) }
            })
            .await
        }
    };
    assert!(q_flows(minute).await, "Q flows before any trouble");
    q_sent += 1;

    // The registry hangs; T's first reading needs a schema id nobody fetched yet.
    registry.hang(true);
    let t_first = reading(t_reading, true, "lon-a", minute, 3);
    produce_all(&producer, &t.readings_topic(), &[t_first]).await;
    assert!(
        eventually(Duration::from_secs(30), || async {
            paused(&metrics, &t, "schema") == 1
        })
        .await,
        "T waits for its schema"
    );
    for i in 1..=3 {
        assert!(
            q_flows(minute + i * 1_000).await,
            "Q's reading {i} reaches Redis while T's schema lookup hangs"
        );
        q_sent += 1;
    }
    assert_eq!(
        live_ts(&eu_redis, &t, "lon-a").await,
        None,
        "T's reading waits"
    );
    assert_eq!(paused(&metrics, &q, "schema"), 0);

    // The registry answers again: T's reading goes through.
    registry.hang(false);
    assert!(
        eventually(Duration::from_secs(30), || async {
            live_ts(&eu_redis, &t, "lon-a").await == Some(minute)
        })
        .await,
        "T's waiting reading is decoded once the registry answers"
    );
    assert_eq!(paused(&metrics, &t, "schema"), 0);

    // T's region's ClickHouse goes down: T's writer retries, and T is paused once two of
    // its epochs wait; Q goes on.
    stack(&["stop", "clickhouse-eu"]);
    let mut t_sent = 1;
    for i in 1..=3 {
        // Apart, so that they make epochs of their own.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let record = reading(t_reading, true, "lon-a", minute + 60_000 + i * 1_000, 4);
        produce_all(&producer, &t.readings_topic(), &[record]).await;
        t_sent += 1;
    }
    let t_paused = eventually(Duration::from_secs(30), || async {
        paused(&metrics, &t, "sinks") == 1
    })
    .await;
    for i in 1..=3 {
        assert!(
            q_flows(minute + 60_000 + i * 1_000).await,
            "Q's reading {i} reaches Redis while T's ClickHouse is down"
        );
        q_sent += 1;
    }
    stack(&["start", "--broker-storage", "memory"]);
    assert!(t_paused, "T is paused while its stores are behind");
    assert_eq!(paused(&metrics, &q, "sinks"), 0);
    let report = live.stop(Duration::from_secs(60)).await;
    assert!(report.quarantined.is_empty(), "{:?}", report.quarantined);

    // Everything back: a run to the end writes what T's outage held back, and each
    // tenant's rows hold each of its readings exactly once.
    let s = settings_for(&[&q, &t], &Settings::default().registry.url);
    run_until_caught_up(&s).await;
    for (tenant, sent, url) in [
        (&q, q_sent, "http://127.0.0.1:18123/"),
        (&t, t_sent, EU_CLICKHOUSE),
    ] {
        let db = tenant.clickhouse_db();
        let sql = format!(
            "SELECT sum(samples) FROM {db}.room_utilization FINAL WHERE granularity = '15m'"
        );
        let got = clickhouse_at(url, &sql).trim().to_owned();
        assert_eq!(got, sent.to_string(), "{tenant}");
    }
}

/// Ctrl-C while a tenant's records wait for a registry that does not answer: before, the
/// worker slept in the decoder's retry loop and never saw the signal. Now the run ends
/// within seconds, committing nothing of the waiting record (a restart reads it again).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_during_a_registry_outage_stops_within_seconds() {
    let tenant = fresh_tenant("hung");
    let direct = settings_for(&[&tenant], &Settings::default().registry.url);
    stack_is_up(&direct);
    let (_, room_id) = create_tenant_on(&direct, &tenant).await;
    let v2 = reading_v2_id(&direct, &tenant);
    let producer: FutureProducer = direct.kafka.client_config().create().unwrap();
    let rooms = [london_room("lon-a", 6)];
    produce_all(
        &producer,
        &tenant.rooms_topic(),
        &room_records(&rooms, room_id, 1_704_067_200_000),
    )
    .await;
    let minute = chrono::Utc::now().timestamp_millis() / 60_000 * 60_000;
    produce_all(
        &producer,
        &tenant.readings_topic(),
        &[reading(v2, true, "lon-a", minute, 1)],
    )
    .await;

    let registry = Hang::start(&Settings::default().registry.url)
        .await
        .unwrap();
    let s = settings_for(&[&tenant], &registry.url);
    let metrics = Metrics::new();
    // The registry hangs from the start: the tenant's first record waits for its schema.
    registry.hang(true);
    let live = start(&s, &metrics);
    assert!(
        eventually(Duration::from_secs(60), || async {
            paused(&metrics, &tenant, "schema") == 1
        })
        .await,
        "the reading waits for its schema"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    let report = live.stop(Duration::from_secs(15)).await;
    assert_eq!(report.stats.counted + report.stats.dead_letters, 0);
    assert_eq!(live_ts(&s.redis.url, &tenant, "lon-a").await, None);
}
