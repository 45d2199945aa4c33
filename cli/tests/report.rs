//! Utilization reports on the real local stack: two weeks of an office through the
//! pipeline, then `roomflow report` reads them back from ClickHouse.

mod common;

use rdkafka::producer::FutureProducer;

use common::*;
use rf_jobs::report;

const T0: i64 = 1_767_571_200_000; // 2026-01-05T00:00:00Z, a Monday; London is on UTC
const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;

/// r1 and r2 busy on weekdays from 9 to 17, r3 never used.
fn people(room: &str, ts: i64) -> Option<i32> {
    let (day, hour) = (((ts - T0) / DAY) % 7, (ts % DAY) / HOUR);
    let busy = day < 5 && (9..17).contains(&hour);
    let noise = ((ts / 60_000) * 2_654_435_761 % 3) as i32 - 1;
    Some(match (room, busy) {
        ("r1", true) => 6 + noise,
        ("r2", true) => 2 + noise,
        _ => 0,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_shows_the_weeks_the_hours_and_the_rooms_to_release() {
    let tenant = fresh_tenant("report");
    let s = settings(&tenant);
    stack_is_up(&s);
    let (reading_id, room_id) = create_tenant(&tenant).await;
    let costs = [("r1", 10, 900.0), ("r2", 4, 400.0), ("r3", 6, 700.0)];
    let rooms: Vec<_> = costs
        .iter()
        .map(|(id, capacity, cost)| {
            let mut r = london_room(id, *capacity);
            r.monthly_cost = Some(*cost);
            r
        })
        .collect();
    let producer: FutureProducer = s.kafka.client_config().create().unwrap();
    produce_all(
        &producer,
        &tenant.rooms_topic(),
        &room_records(&rooms, room_id, T0),
    )
    .await;
    let readings = minute_readings(
        reading_id,
        (T0, T0 + 14 * DAY + 2 * HOUR),
        &["r1", "r2", "r3"],
        people,
    );
    produce_all(&producer, &tenant.readings_topic(), &readings).await;
    assert_accounts(&run_until_caught_up(&s).await);

    let r = report::gather(&s.clickhouse, &tenant, "Report Test", (T0, T0 + 14 * DAY))
        .await
        .unwrap();
    assert_eq!(r.days.len(), 14, "one row per day of the office");
    assert_eq!(r.offices["lon"], "London");
    let weeks = r.weeks();
    assert_eq!(weeks.len(), 2);
    assert!(
        (weeks[0].1 - weeks[1].1).abs() < 0.01 && weeks[0].1 > 0.05,
        "two alike weeks: {weeks:?}"
    );
    let (monday_10, saturday_10) = (r.heatmap[0][10].unwrap(), r.heatmap[5][10].unwrap());
    assert!(
        monday_10 > 0.3 && saturday_10 == 0.0,
        "{monday_10} {saturday_10}"
    );
    let order: Vec<&str> = r.rooms.iter().map(|r| r.room_id.as_str()).collect();
    assert_eq!(order, ["r3", "r2", "r1"], "least used first");
    assert_eq!(r.rooms[0].utilization, 0.0);
    assert_eq!(r.under_used(), (1, 700.0));

    let out = std::env::temp_dir().join(format!("rf-{tenant}"));
    let run = std::process::Command::new(env!("CARGO_BIN_EXE_roomflow"))
        .args([
            "report",
            tenant.as_str(),
            "--from",
            "2026-01-05",
            "--to",
            "2026-01-19",
        ])
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let stem = out.join(format!("{tenant}-2026-01-05-2026-01-18"));
    let csv = std::fs::read_to_string(stem.with_extension("csv")).unwrap();
    assert_eq!(csv.lines().count(), 15);
    assert!(csv
        .lines()
        .nth(1)
        .unwrap()
        .starts_with("2026-01-05,lon,London,3,20,"));
    let html = std::fs::read_to_string(stem.with_extension("html")).unwrap();
    assert!(
        html.contains("save about <b>700</b> a month"),
        "r3 is the one to release"
    );
    std::fs::remove_dir_all(&out).unwrap();

    jobs(&s, &tenant).await;
}

/// The same report as durable jobs: one runs, one is cancelled before it starts, one
/// whose worker died is run again, and a restarted worker runs none twice.
async fn jobs(s: &rf_pipelines::Settings, tenant: &rf_schemas::TenantId) {
    use rf_jobs::queue::worker::{JobsConfig, Worker};
    use rf_jobs::queue::{self, JobKind, JobState};
    let kind = JobKind::Report {
        from: T0,
        to: T0 + 14 * DAY,
    };
    let submit = || queue::submit(&s.kafka, &s.clickhouse, tenant, kind.clone());
    let ran = submit().await.unwrap().spec.id;
    let cancelled = submit().await.unwrap().spec.id;
    queue::cancel(&s.kafka, &cancelled).await.unwrap();
    let mut died = submit().await.unwrap();
    // A worker took it and died: its status says running, its submission is uncommitted.
    died.state = JobState::Running;
    died.attempts = 1;
    died.updated_ms += 1;
    let producer: FutureProducer = s.kafka.client_config().create().unwrap();
    queue::put_status(&producer, &s.kafka, &s.clickhouse, &died)
        .await
        .unwrap();

    let out = std::env::temp_dir().join(format!("rf-jobs-{tenant}"));
    let config = JobsConfig {
        output_dir: out.clone(),
        ..Default::default()
    };
    let (s2, config2) = (s.clone(), config.clone());
    let ended = tokio::task::spawn_blocking(move || {
        let mut worker = Worker::new(&s2, &config2).unwrap();
        let mut ended = std::collections::BTreeMap::new();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
        while ended.len() < 3 {
            assert!(
                std::time::Instant::now() < deadline,
                "jobs ended: {ended:?}"
            );
            if let Some(status) = worker.step(std::time::Duration::from_secs(1)).unwrap() {
                ended.insert(status.spec.id.clone(), status);
            }
        }
        drop(worker);
        // A restart runs nothing again.
        let mut worker = Worker::new(&s2, &config2).unwrap();
        for _ in 0..5 {
            let again = worker.step(std::time::Duration::from_secs(1)).unwrap();
            assert!(again.is_none(), "run again: {again:?}");
        }
        ended
    })
    .await
    .unwrap();
    let report = &ended[&ran];
    assert_eq!(report.state, JobState::Succeeded, "{report:?}");
    assert_eq!((report.done, report.total, report.attempts), (3, 3, 1));
    assert!(
        report.message.starts_with("14 office days"),
        "{}",
        report.message
    );
    assert_eq!(report.outputs.len(), 2);
    let html = std::fs::read_to_string(&report.outputs[1]).unwrap();
    assert!(html.contains("save about <b>700</b> a month"));
    let c = &ended[&cancelled];
    assert_eq!((c.state, c.attempts), (JobState::Cancelled, 0));
    assert_eq!(c.message, "cancelled before it started");
    let d = &ended[&died.spec.id];
    assert_eq!((d.state, d.attempts), (JobState::Succeeded, 2), "run again");

    // The mirror, and what an operator sees.
    assert_eq!(
        clickhouse_lines(&format!(
            "SELECT toString(argMax(state, version)), argMax(attempts, version) FROM rf_platform.jobs WHERE id = '{}'",
            died.spec.id
        )),
        ["succeeded\t2"]
    );
    let cli = |args: &[&str]| {
        let run = std::process::Command::new(env!("CARGO_BIN_EXE_roomflow"))
            .args(args)
            .output()
            .unwrap();
        assert!(
            run.status.success(),
            "{}",
            String::from_utf8_lossy(&run.stderr)
        );
        String::from_utf8(run.stdout).unwrap()
    };
    let status = cli(&["job", "status", &ran]);
    assert!(status.contains("state     succeeded"), "{status}");
    assert!(status.contains("progress  3/3 steps"), "{status}");
    let logs = cli(&["job", "logs", &ran]);
    assert!(
        logs.lines()
            .next()
            .unwrap()
            .ends_with("started (attempt 1)"),
        "{logs}"
    );
    let list = cli(&["job", "list", "--tenant", tenant.as_str()]);
    assert_eq!(list.lines().count(), 4, "a header and three jobs: {list}");
    std::fs::remove_dir_all(&out).unwrap();
}
