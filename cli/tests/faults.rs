//! Crash safety: a pipeline killed with SIGKILL three times at random points, then
//! restarted, ends with exactly the ClickHouse rows (`FINAL`), Redis state and dead
//! letters of an uninterrupted run over the same messy input.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use rf_jobs::simulate::{Fleet, FleetSpec};

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_three_times_equals_an_uninterrupted_run() {
    let clean = fresh_tenant("clean");
    let crash = fresh_tenant("crash");
    stack_is_up(&settings(&clean));
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    eprintln!("fault test seed {seed}");
    let mut rng = Rng(seed);
    let fleet = Fleet::new(&FleetSpec {
        tenants: vec![clean.clone()],
        offices: 3,
        rooms: 40,
        seed: 5,
    });
    // Both tenants register the same two schemas, which the registry shares by content.
    let (reading_id, _) = create_tenant(&clean).await;
    let readings = messy_stream(&fleet, 30 * 60, reading_id, &mut rng);
    provision(&clean, &fleet, &readings).await;
    provision(&crash, &fleet, &readings).await;

    let reference = run_until_caught_up(&settings(&clean)).await;
    let st = &reference.stats;
    assert_eq!(st.consumed, readings.len() as u64);
    assert_accounts(&reference);
    assert!(
        st.replaced > 100 && st.dead_letters > 100,
        "the input is messy enough: {st:?}"
    );

    let crash_settings = settings(&crash);
    for round in 0..3 {
        let mut child = Command::new(env!("CARGO_BIN_EXE_roomflow"))
            .args(["run", "--tenant", crash.as_str()])
            .env("ROOMFLOW_KAFKA__GROUP_ID", &crash_settings.kafka.group_id)
            .env("ROOMFLOW_PIPELINE__METRICS_LISTEN", "")
            // The readings are from March: the worker's scheduled retention would (rightly)
            // remove their quarter hours from this run and not from the reference.
            .env("ROOMFLOW_JOBS__RETENTION_EVERY_HOURS", "0")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the roomflow binary starts");
        let delay = Duration::from_millis(300 + rng.next() % 2_500);
        tokio::time::sleep(delay).await;
        child.kill().expect("SIGKILL");
        child.wait().unwrap();
        eprintln!("round {round}: killed after {delay:?}");
    }
    let resumed = run_until_caught_up(&crash_settings).await;
    eprintln!("after the kills: {:?}", resumed.stats);

    let (clean_rooms, clean_offices) = window_rows(&clean);
    let (crash_rooms, crash_offices) = window_rows(&crash);
    assert!(clean_rooms.len() > 1_000, "{} room rows", clean_rooms.len());
    assert!(
        clean_rooms.iter().any(|r| r.starts_with("1d\tlon\t")
            && r.contains("2026-03-29 00:00:00\t2026-03-29 23:00:00")),
        "London's 23-hour day"
    );
    assert_eq!(clean_rooms.len(), crash_rooms.len());
    for (a, b) in clean_rooms.iter().zip(&crash_rooms) {
        assert_eq!(a, b, "room rows differ");
    }
    assert_eq!(clean_offices, crash_offices, "office rows differ");
    let s = settings(&clean);
    assert_eq!(
        redis_state(&s.redis.url, &clean).await,
        redis_state(&s.redis.url, &crash).await
    );
    let letters = dead_letter_set(&s.kafka, &clean, st.dead_letters as usize);
    assert_eq!(letters.len() as u64, st.dead_letters);
    assert_eq!(
        letters,
        dead_letter_set(&s.kafka, &crash, letters.len()),
        "the same readings were dead-lettered"
    );
    for t in [&clean, &crash] {
        clickhouse_lines(&format!("DROP DATABASE {}", t.clickhouse_db()));
    }
}
