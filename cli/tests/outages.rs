//! Outages: with ClickHouse, then Redis, stopped while the pipeline runs, it waits with
//! backoff, says so in its metrics, and once the store is back ends with exactly the
//! rows and live state of an undisturbed run. One test: it stops shared services.

mod common;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use rf_jobs::simulate::{Fleet, FleetSpec};
use rf_pipelines::{run, Metrics, RunOptions};

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clickhouse_and_redis_outages_delay_but_do_not_change_results() {
    let reference = fresh_tenant("steady");
    stack_is_up(&settings(&reference));
    let fleet = Fleet::new(&FleetSpec {
        tenants: vec![reference.clone()],
        offices: 2,
        rooms: 20,
        seed: 11,
    });
    let s = settings(&reference);
    let (reading_id, _) = create_tenant(&reference).await;
    let readings = messy_stream(&fleet, 8 * 60, reading_id, &mut Rng(0x5eed));
    provision(&reference, &fleet, &readings).await;
    run_until_caught_up(&s).await;
    let expected_rows = window_rows(&reference);
    let expected_live = redis_state(&settings(&reference).redis.url, &reference).await;
    assert!(!expected_rows.0.is_empty() && !expected_live.is_empty());

    for (service, sink) in [("clickhouse", "clickhouse"), ("redis", "redis")] {
        let tenant = fresh_tenant(&format!("out-{service}"));
        let s = settings(&tenant);
        provision(&tenant, &fleet, &readings).await;

        stack(&["stop", service]);
        let metrics = Metrics::new();
        let running = tokio::task::spawn_blocking({
            let (s, metrics) = (s.clone(), metrics.clone());
            move || {
                let options = RunOptions {
                    until_caught_up: true,
                    shutdown: Arc::new(AtomicBool::new(false)),
                    memory_every: None,
                    ..Default::default()
                };
                run(&s, options, metrics)
            }
        });
        tokio::time::sleep(Duration::from_secs(4)).await;
        assert!(!running.is_finished(), "the pipeline waits for {service}");
        stack(&["start", "--broker-storage", "memory"]);
        let report = running
            .await
            .unwrap()
            .expect("the pipeline catches up after the outage");
        let retries = metrics.sink_retries.with_label_values(&[sink]).get();
        assert!(retries > 0, "{sink} failures were retried and counted");
        assert_accounts(&report);

        assert_eq!(
            window_rows(&tenant),
            expected_rows,
            "rows after a {service} outage"
        );
        assert_eq!(
            redis_state(&s.redis.url, &tenant).await,
            expected_live,
            "live state after a {service} outage"
        );
        clickhouse_lines(&format!("DROP DATABASE {}", tenant.clickhouse_db()));
    }
    clickhouse_lines(&format!("DROP DATABASE {}", reference.clickhouse_db()));
}
