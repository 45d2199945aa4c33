//! Scale-out: the pipeline as a timely cluster of two processes on loopback (one worker
//! each) writes exactly the rows, live state and dead letters of one process with two
//! workers over the same input.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rf_jobs::simulate::{Fleet, FleetSpec};

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_equal_one() {
    let single = fresh_tenant("single");
    let pair = fresh_tenant("pair");
    stack_is_up(&settings(&single));
    let fleet = Fleet::new(&FleetSpec {
        tenants: vec![single.clone()],
        offices: 3,
        rooms: 30,
        seed: 23,
    });
    let (reading_id, _) = create_tenant(&single).await;
    let readings = messy_stream(&fleet, 10 * 60, reading_id, &mut Rng(0xc105));
    provision(&single, &fleet, &readings).await;
    provision(&pair, &fleet, &readings).await;
    let reference = run_until_caught_up(&settings(&single)).await;
    assert_accounts(&reference);

    let group = settings(&pair).kafka.group_id;
    let mut children: Vec<_> = (0..2)
        .map(|process| {
            Command::new(env!("CARGO_BIN_EXE_roomflow"))
                .args(["run", "--until-caught-up", "--tenant", pair.as_str()])
                .args(["--workers", "1", "--processes", "2"])
                .args(["--process", &process.to_string()])
                .env("ROOMFLOW_KAFKA__GROUP_ID", &group)
                .env("ROOMFLOW_PIPELINE__METRICS_LISTEN", "")
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .expect("the roomflow binary starts")
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut consumed = Vec::new();
    for child in &mut children {
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                assert!(status.success(), "a cluster process failed: {status}");
                let mut out = String::new();
                std::io::Read::read_to_string(child.stdout.as_mut().unwrap(), &mut out).unwrap();
                let n: u64 = out
                    .split(" readings consumed")
                    .next()
                    .and_then(|s| s.rsplit(' ').next())
                    .and_then(|n| n.parse().ok())
                    .unwrap_or_else(|| panic!("no report in {out:?}"));
                consumed.push(n);
                break;
            }
            if Instant::now() > deadline {
                for c in &mut children {
                    let _ = c.kill();
                }
                panic!("the cluster did not finish");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    // Each process read its share of the partitions, together all of them.
    assert!(consumed.iter().all(|n| *n > 0), "{consumed:?}");
    assert_eq!(consumed.iter().sum::<u64>(), readings.len() as u64);
    let (want, got) = (window_rows(&single), window_rows(&pair));
    assert!(want.0.len() > 500, "{} room rows", want.0.len());
    assert_eq!(want.0, got.0, "room rows");
    assert_eq!(want.1, got.1, "office rows");
    let s = settings(&single);
    assert_eq!(
        redis_state(&s.redis.url, &single).await,
        redis_state(&s.redis.url, &pair).await
    );
    let n = reference.stats.dead_letters as usize;
    assert_eq!(
        dead_letter_set(&s.kafka, &single, n),
        dead_letter_set(&s.kafka, &pair, n)
    );
    for t in [&single, &pair] {
        clickhouse_lines(&format!("DROP DATABASE {}", t.clickhouse_db()));
    }
}
