//! Retention and downsampling on the real local stack (ClickHouse 18.16): a dry run lists
//! what would go and removes nothing; the job, submitted by the worker's daily schedule,
//! then drops whole months past the tenant's retention and deletes 15-minute windows,
//! readings and hours past theirs.

mod common;

use common::*;
use rf_jobs::queue::worker::JobsConfig;
use rf_jobs::queue::{JobKind, JobState, JobStatus};
use rf_pipelines::Settings;
use rf_schemas::TenantId;

const DAY: i64 = 86_400;

fn office_row(db: &str, granularity: &str, start: i64) -> String {
    format!(
        "INSERT INTO {db}.office_utilization (granularity, office_id, window_start, window_end, rooms_reporting, \
         avg_people, peak_people, capacity, utilization, final, version, updated_at) \
         VALUES ('{granularity}', 'lon', toDateTime({start}), toDateTime({}), 1, 1.0, 1.0, 10, 0.1, 1, 1, now())",
        start + 900
    )
}

fn reading_row(db: &str, ts: i64) -> String {
    format!(
        "INSERT INTO {db}.readings (office_id, room_id, sensor_id, ts, ts_ms, people_count, schema_id, \
         source_partition, version) VALUES ('lon', 'r1', 's1', toDateTime({ts}), {}, 1, 1, 0, 1)",
        ts * 1000
    )
}

/// Jobs writing into `out`, with the cold tier there too.
fn jobs_config(out: &std::path::Path) -> JobsConfig {
    JobsConfig {
        output_dir: out.to_path_buf(),
        cold: rf_jobs::cold::ColdConfig {
            url: out.join("cold").display().to_string(),
            ..Default::default()
        },
        ..Default::default()
    }
}

/// Submits a retention job and runs it with a worker.
async fn run(s: &Settings, tenant: &TenantId, dry_run: bool) -> JobStatus {
    let id = rf_jobs::queue::submit(
        &s.kafka,
        &s.clickhouse,
        tenant,
        JobKind::Retention { dry_run },
    )
    .await
    .unwrap()
    .spec
    .id;
    let out = std::env::temp_dir().join(format!("rf-{tenant}"));
    take_job(s, jobs_config(&out), id, Default::default()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_drops_months_and_downsamples_as_configured() {
    let tenant = fresh_tenant("retain");
    let s = settings(&tenant);
    stack_is_up(&s);
    create_tenant(&tenant).await;
    let db = tenant.clickhouse_db();
    let now = chrono::Utc::now().timestamp();
    let day = |n: i64| (now - n * DAY) / 900 * 900;
    for (granularity, age) in [
        ("15m", 40), // goes: 15-minute windows live 30 days
        ("15m", 10),
        ("1h", 400), // goes: hours live a year
        ("1h", 100),
        ("1d", 100), // a second part in that month: compacted into one
        ("1d", 400),
        ("1d", 800), // goes with its month: past the tenant's 730 days
    ] {
        clickhouse_lines(&office_row(&db, granularity, day(age)));
    }
    for age in [40, 5] {
        clickhouse_lines(&reading_row(&db, day(age)));
    }
    let left = || {
        let mut rows = clickhouse_lines(&format!(
            "SELECT toString(granularity), intDiv(toUInt32(now()) - toUInt32(window_start), 86400) FROM {db}.office_utilization"
        ));
        rows.extend(clickhouse_lines(&format!(
            "SELECT 'readings', intDiv(toUInt32(now()) - toUInt32(ts), 86400) FROM {db}.readings"
        )));
        rows.sort();
        rows
    };
    let all = left();
    assert_eq!(all.len(), 9);

    let dry = run(&s, &tenant, true).await;
    assert_eq!(dry.state, JobState::Succeeded, "{dry:?}");
    assert!(dry.message.starts_with("dry run: "), "{}", dry.message);
    assert!(dry.message.contains(": 4 rows"), "{}", dry.message);
    assert!(
        dry.logs.iter().any(|l| l.contains("would drop partition")),
        "{:#?}",
        dry.logs
    );
    assert_eq!(left(), all, "a dry run removes nothing");

    // The worker submits it on its schedule: once, and not again within the day.
    let done = tokio::task::spawn_blocking({
        let s = s.clone();
        let tenant = tenant.clone();
        move || {
            let config = jobs_config(&std::env::temp_dir().join(format!("rf-{tenant}")));
            let mut worker = rf_jobs::queue::worker::Worker::new(&s, &config).unwrap();
            assert_eq!(
                worker.schedule_retention().unwrap(),
                std::slice::from_ref(&tenant)
            );
            assert!(worker.schedule_retention().unwrap().is_empty(), "one waits");
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
            let done = loop {
                assert!(
                    std::time::Instant::now() < deadline,
                    "the scheduled retention ran"
                );
                match worker.step(std::time::Duration::from_secs(1)).unwrap() {
                    Some(status) if status.spec.kind == (JobKind::Retention { dry_run: false }) => {
                        break status
                    }
                    _ => {}
                }
            };
            assert!(
                worker.schedule_retention().unwrap().is_empty(),
                "done today"
            );
            let off = JobsConfig {
                retention_every_hours: 0,
                ..config
            };
            let mut idle = rf_jobs::queue::worker::Worker::new(&s, &off).unwrap();
            assert!(idle.schedule_retention().unwrap().is_empty(), "off");
            done
        }
    })
    .await
    .unwrap();
    assert_eq!(done.state, JobState::Succeeded, "{done:?}");
    assert_eq!(done.done, done.total);
    assert_eq!(
        left(),
        ["15m\t10", "1d\t100", "1d\t400", "1h\t100", "readings\t5"],
        "{:#?}",
        done.logs
    );
    let parts = |age: i64| {
        clickhouse_lines(&format!(
            "SELECT count() FROM system.parts WHERE active AND database = '{db}' \
             AND table = 'office_utilization' AND partition = toString(toYYYYMM(toDateTime({})))",
            day(age)
        ))
    };
    assert_eq!(
        parts(100),
        ["1"],
        "a closed month is one part: {:#?}",
        done.logs
    );
    assert!(done.logs.iter().any(|l| l.contains("compact partition")));
    // The month past the tenant's retention went to the cold tier first; the readings,
    // gone by downsampling, did not.
    let out = std::env::temp_dir().join(format!("rf-{tenant}"));
    let month: String =
        clickhouse_lines(&format!("SELECT toYYYYMM(toDateTime({}))", day(800))).remove(0);
    let manifest: rf_jobs::cold::Manifest = serde_json::from_slice(
        &std::fs::read(
            out.join("cold")
                .join(tenant.as_str())
                .join(&month)
                .join("manifest.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let tables: Vec<(&str, u64)> = manifest
        .files
        .iter()
        .map(|f| (f.table.as_str(), f.rows))
        .collect();
    assert_eq!(tables, [("office_utilization", 1)], "{manifest:#?}");
    // Again: nothing left to remove.
    let again = run(&s, &tenant, true).await;
    assert!(again.message.contains(": 0 rows"), "{}", again.message);
    std::fs::remove_dir_all(&out).unwrap();
}
