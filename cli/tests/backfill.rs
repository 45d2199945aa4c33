//! Backfill on the real local stack: after a room-metadata correction, a backfill job
//! recomputes a day of a tenant's windows from its readings topic, beside its live
//! pipeline, and the result equals what live processing produces with the corrected
//! metadata from the start (a control tenant that had it).

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rf_jobs::queue::{JobKind, JobState, JobStatus};
use rf_pipelines::{run, Metrics, RunOptions, Settings};
use rf_schemas::TenantId;

const HOUR: i64 = 3_600_000;
/// Monday 2026-01-12 00:00 UTC: London's day starts then too.
const DAY: i64 = 1_768_176_000_000;

/// One reading a minute of r1, r2 and r3 from `from` to `to`, r2 missing every fifth.
fn readings(schema_id: u32, (from, to): (i64, i64)) -> Vec<(String, Vec<u8>, i64)> {
    minute_readings(schema_id, (from, to), &["r1", "r2", "r3"], |room, ts| {
        let minute = ts / MIN;
        match room {
            "r2" if minute % 5 == 0 => None,
            "r1" => Some((minute % 11) as i32),
            "r2" => Some((minute % 7) as i32),
            _ => Some((minute % 3) as i32),
        }
    })
}

/// The condition on windows starting in `[from, to)`, ms.
fn starting_in((from, to): (i64, i64)) -> String {
    format!(
        "window_start >= toDateTime({}) AND window_start < toDateTime({})",
        from / 1000,
        to / 1000
    )
}

/// `sql`'s lines for the tenant, `{db}` and `{where}` filled in.
fn rows(tenant: &TenantId, sql: &str, condition: &str) -> Vec<String> {
    clickhouse_lines(
        &sql.replace("{db}", &tenant.clickhouse_db())
            .replace("{where}", condition),
    )
}

const ROOM_ROWS: &str =
    "SELECT granularity, office_id, room_id, window_start, window_end, samples, avg_people, \
     peak_people, occupied_ratio, capacity, utilization, final FROM {db}.room_utilization FINAL \
     WHERE {where} ORDER BY granularity, office_id, room_id, window_start";
const OFFICE_ROWS: &str =
    "SELECT granularity, office_id, window_start, window_end, rooms_reporting, avg_people, \
     peak_people, capacity, utilization, final FROM {db}.office_utilization FINAL WHERE {where} \
     ORDER BY granularity, office_id, window_start";
const WITH_VERSIONS: &str =
    "SELECT granularity, room_id, window_start, version FROM {db}.room_utilization FINAL \
     WHERE {where} ORDER BY granularity, room_id, window_start";
const READINGS: &str = "SELECT office_id, room_id, sensor_id, ts_ms, people_count \
     FROM {db}.readings FINAL WHERE {where} ORDER BY office_id, room_id, ts_ms";

/// Submits a backfill of `range` and runs it with a job worker.
async fn backfill(s: &Settings, tenant: &TenantId, (from, to): (i64, i64)) -> JobStatus {
    run_job(s, tenant, JobKind::Backfill { from, to }).await
}

/// The event times of the tenant's dead letters saying `room` had no metadata.
fn unknown_room_letters(s: &Settings, tenant: &TenantId, room: &str) -> Vec<i64> {
    let prefix = format!("room {room} has no version in effect at ");
    read_topic(&s.kafka, &tenant.deadletter_topic(), 1)
        .into_iter()
        .filter_map(|(_, _, h)| h["rf-detail"].strip_prefix(&prefix)?.parse().ok())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backfill_after_a_metadata_correction_equals_live_processing_with_it() {
    let (fixed, control) = (fresh_tenant("backfill"), fresh_tenant("bfcontrol"));
    let (sf, sc) = (settings(&fixed), settings(&control));
    stack_is_up(&sf);
    let producer: FutureProducer = sf.kafka.client_config().create().unwrap();
    // The control tenant has the right metadata from the start: r1 and r2. The other
    // has r1 and r3 (r3's sensor is not in a room of the fleet any more), and no r2.
    let (r1, r2, r3) = (
        london_room("r1", 10),
        london_room("r2", 6),
        london_room("r3", 8),
    );
    let span = (DAY - 6 * HOUR, DAY + 50 * HOUR);
    let mut ids = Vec::new();
    for (tenant, rooms) in [(&control, [&r1, &r2]), (&fixed, [&r1, &r3])] {
        let (readings_id, rooms_id) = create_tenant(tenant).await;
        let records = room_records(rooms, rooms_id, DAY - 7 * HOUR);
        produce_all(&producer, &tenant.rooms_topic(), &records).await;
        produce_all(
            &producer,
            &tenant.readings_topic(),
            &readings(readings_id, span),
        )
        .await;
        ids.push((readings_id, rooms_id));
    }
    let (readings_id, rooms_id) = ids[1];
    for s in [&sc, &sf] {
        assert_accounts(&run_until_caught_up(s).await);
    }
    let range = (DAY, DAY + 24 * HOUR);
    let within = starting_in(range);
    let before = rows(&fixed, ROOM_ROWS, &within);
    assert!(
        before.iter().any(|r| r.contains("\tr3\t")),
        "r3 counted live"
    );
    assert_ne!(before, rows(&control, ROOM_ROWS, &within));
    let (day_readings, earlier_readings) = (
        format!(
            "ts >= toDateTime({}) AND ts < toDateTime({})",
            DAY / 1000,
            (DAY + 24 * HOUR) / 1000
        ),
        format!("ts < toDateTime({})", DAY / 1000),
    );
    assert_ne!(
        rows(&fixed, READINGS, &day_readings),
        rows(&control, READINGS, &day_readings),
        "r3's readings counted live"
    );
    // Final windows outside the range (later ones the live pipeline may still revise).
    let outside = format!(
        "window_start < toDateTime({}) OR ({})",
        DAY / 1000,
        starting_in((DAY + 24 * HOUR, DAY + 48 * HOUR))
    );
    let untouched = rows(&fixed, WITH_VERSIONS, &outside);
    let untouched_readings = rows(&fixed, READINGS, &earlier_readings);

    // The correction: r2 is published, r3 withdrawn.
    let records = room_records([&r2], rooms_id, DAY + 51 * HOUR);
    produce_all(&producer, &fixed.rooms_topic(), &records).await;
    let (topic, key) = (fixed.rooms_topic(), r3.key());
    let withdraw = FutureRecord::<String, [u8]>::to(&topic)
        .key(&key)
        .timestamp(DAY + 51 * HOUR);
    producer
        .send(withdraw, Duration::from_secs(5))
        .await
        .map_err(|(e, _)| e)
        .unwrap();

    // The live pipeline goes on meanwhile: a later day arrives and is written.
    let stop = Arc::new(AtomicBool::new(false));
    let live = {
        let (s, shutdown) = (sf.clone(), stop.clone());
        std::thread::spawn(move || {
            let options = RunOptions {
                shutdown,
                ..Default::default()
            };
            run(&s, options, Metrics::new()).expect("the live pipeline runs")
        })
    };
    let later = (DAY + 50 * HOUR, DAY + 53 * HOUR);
    produce_all(
        &producer,
        &fixed.readings_topic(),
        &readings(readings_id, later),
    )
    .await;

    let status = backfill(&sf, &fixed, range).await;
    assert_eq!(status.state, JobState::Succeeded, "{status:#?}");
    assert_eq!(status.unit, "records");
    assert_eq!(status.done, status.total, "{status:#?}");
    // From the first record that may hold a reading of the range, found by timestamp.
    let from_range = readings(0, (DAY - 5 * MIN, later.1)).len() as u64;
    assert_eq!(status.total, from_range, "{status:#?}");
    assert!(
        status.message.contains("removed ")
            && !status.message.contains("removed 0 ")
            && !status.message.contains("and 0 readings"),
        "r3's rows and readings went: {}",
        status.message
    );

    // Equal to live processing with the right metadata, room and office rows alike.
    assert_eq!(
        rows(&fixed, ROOM_ROWS, &within),
        rows(&control, ROOM_ROWS, &within)
    );
    assert_eq!(
        rows(&fixed, OFFICE_ROWS, &within),
        rows(&control, OFFICE_ROWS, &within)
    );
    let counted = format!(
        "SELECT count() FROM {{db}}.readings FINAL WHERE room_id = 'r2' \
         AND ts >= toDateTime({}) AND ts < toDateTime({})",
        DAY / 1000,
        (DAY + 24 * HOUR) / 1000
    );
    assert_eq!(
        rows(&fixed, &counted, ""),
        rows(&control, &counted, ""),
        "r2's readings stored"
    );
    assert_ne!(rows(&control, &counted, ""), ["0"]);
    assert_eq!(
        rows(&fixed, READINGS, &day_readings),
        rows(&control, READINGS, &day_readings),
        "the day's counted readings"
    );
    // Nothing outside the range changed, and nothing else was written: r3's readings of
    // the range, no longer in a room, were counted live and are not dead letters now.
    assert_eq!(rows(&fixed, WITH_VERSIONS, &outside), untouched);
    assert_eq!(
        rows(&fixed, READINGS, &earlier_readings),
        untouched_readings
    );
    // The backfill dead-letters none of r3's readings. The live pipeline judges the
    // readings of windows still open when r3 was withdrawn as the contract says (no
    // version in effect when the window became final): the first run left the window
    // starting 15 minutes before the span's end open, and its replay may judge it before
    // this check or after, depending on how fast the live pipeline runs.
    let r3 = unknown_room_letters(&sf, &fixed, "r3");
    let open_at_restart = span.1 - 15 * MIN;
    assert!(r3.iter().all(|&ts| ts >= open_at_restart), "{r3:?}");
    let mut group = sf.kafka.clone();
    group.group_id = format!("{}.backfill", sf.kafka.group_id);
    assert!(rf_pipelines::checkpoint::load(&group).unwrap().is_empty());

    // The live pipeline wrote the later day, with r2 found.
    let later_rows = "SELECT count() FROM {db}.room_utilization FINAL WHERE {where} AND room_id = 'r2' AND final = 1";
    let deadline = Instant::now() + Duration::from_secs(60);
    let later_hours = starting_in((later.0, later.0 + 2 * HOUR));
    while rows(&fixed, later_rows, &later_hours) == ["0"] {
        assert!(
            Instant::now() < deadline,
            "the live pipeline wrote r2's later hours"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let report = live.join().unwrap();
    assert!(report.stats.consumed > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backfill_interrupted_by_its_worker_stopping_runs_again_when_a_worker_starts() {
    use rf_jobs::backfill::BackfillConfig;
    use rf_jobs::queue::worker::JobsConfig;
    let tenant = fresh_tenant("bfstop");
    let s = settings(&tenant);
    stack_is_up(&s);
    let producer: FutureProducer = s.kafka.client_config().create().unwrap();
    let (readings_id, rooms_id) = create_tenant(&tenant).await;
    let rooms = ["r1", "r2", "r3"].map(|room| london_room(room, 10));
    let records = room_records(&rooms, rooms_id, DAY - 7 * HOUR);
    produce_all(&producer, &tenant.rooms_topic(), &records).await;
    let span = (DAY - HOUR, DAY + 50 * HOUR);
    produce_all(
        &producer,
        &tenant.readings_topic(),
        &readings(readings_id, span),
    )
    .await;
    let kind = JobKind::Backfill {
        from: DAY,
        to: DAY + 24 * HOUR,
    };
    let id = rf_jobs::queue::submit(&s.kafka, &s.clickhouse, &tenant, kind)
        .await
        .unwrap()
        .spec
        .id;

    // A worker reading 200 records a second (the job would take ~40 s) stops once the
    // job's status shows records read.
    let slow = JobsConfig {
        backfill: BackfillConfig {
            max_records_per_sec: 200,
            ..Default::default()
        },
        ..Default::default()
    };
    let stop = Arc::new(AtomicBool::new(false));
    let (flag, job) = (stop.clone(), id.clone());
    std::thread::spawn(move || {
        let read = format!("SELECT max(done) FROM rf_platform.jobs WHERE id = '{job}'");
        while clickhouse_lines(&read)
            .first()
            .is_none_or(|done| done == "0")
        {
            std::thread::sleep(Duration::from_millis(100));
        }
        flag.store(true, Ordering::Relaxed);
    });
    let interrupted = take_job(&s, slow, id.clone(), stop).await;
    assert_eq!(interrupted.state, JobState::Queued, "{interrupted:#?}");
    assert!(
        0 < interrupted.done && interrupted.done < interrupted.total,
        "{interrupted:#?}"
    );
    assert!(interrupted.logs.last().unwrap().contains("interrupted"));

    // The next worker takes the uncommitted submission and runs it to its end.
    let rerun = take_job(&s, Default::default(), id, Default::default()).await;
    assert_eq!(rerun.state, JobState::Succeeded, "{rerun:#?}");
    assert_eq!((rerun.attempts, rerun.done), (2, rerun.total));
    let quarters = "SELECT count() FROM {db}.room_utilization FINAL \
                    WHERE {where} AND granularity = '15m' AND final = 1";
    let day = starting_in((DAY, DAY + 24 * HOUR));
    assert_eq!(
        rows(&tenant, quarters, &day),
        ["288"],
        "3 rooms' 96 quarters"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backfill_of_a_range_ending_in_the_future_is_refused() {
    let tenant = fresh_tenant("bffuture");
    let s = settings(&tenant);
    stack_is_up(&s);
    create_tenant(&tenant).await;
    let now = chrono::Utc::now().timestamp_millis();
    let status = backfill(&s, &tenant, (now - HOUR, now + HOUR)).await;
    assert_eq!(status.state, JobState::Failed);
    assert!(
        status.message.contains("in the future"),
        "{}",
        status.message
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replaying_unknown_room_letters_counts_the_fixed_ones_once() {
    use rf_jobs::deadletter::{plan_replay, rooms};
    use rf_schemas::deadletter::DeadLetterReason;
    let tenant = fresh_tenant("replay");
    let s = settings(&tenant);
    stack_is_up(&s);
    let producer: FutureProducer = s.kafka.client_config().create().unwrap();
    let (readings_id, rooms_id) = create_tenant(&tenant).await;
    let r1 = london_room("r1", 10);
    produce_all(
        &producer,
        &tenant.rooms_topic(),
        &room_records([&r1], rooms_id, DAY - 7 * HOUR),
    )
    .await;
    // r2's metadata comes late; r9's never does.
    let records = minute_readings(
        readings_id,
        (DAY, DAY + 30 * HOUR),
        &["r1", "r2", "r9"],
        |_, ts| Some((ts / MIN % 5) as i32),
    );
    produce_all(&producer, &tenant.readings_topic(), &records).await;
    assert_accounts(&run_until_caught_up(&s).await);
    let r2 = london_room("r2", 6);
    produce_all(
        &producer,
        &tenant.rooms_topic(),
        &room_records([&r2], rooms_id, DAY + 31 * HOUR),
    )
    .await;
    // The live pipeline reads the fix (and mirrors it).
    run_until_caught_up(&s).await;

    let rooms = rooms(&s.clickhouse, &tenant).await.unwrap();
    let plan = {
        let (kafka, registry, tenant) = (s.kafka.clone(), s.registry.clone(), tenant.clone());
        tokio::task::spawn_blocking(move || {
            plan_replay(
                &kafka,
                &registry,
                &tenant,
                DeadLetterReason::UnknownRoom,
                None,
                &rooms,
                false,
            )
        })
        .await
        .unwrap()
        .unwrap()
    };
    let r2_letters = unknown_room_letters(&s, &tenant, "r2");
    let r9_letters = unknown_room_letters(&s, &tenant, "r9");
    assert!(!r2_letters.is_empty() && !r9_letters.is_empty());
    assert_eq!(plan.letters as usize, r2_letters.len() + r9_letters.len());
    assert_eq!(plan.fixed as usize, r2_letters.len());
    assert_eq!(
        plan.unfixed
            .get("room r9 has no metadata at the time")
            .copied(),
        Some(r9_letters.len() as u64),
        "{plan:?}"
    );
    let (from, to) = plan.range.unwrap();
    assert_eq!(from, DAY, "London's day, hour and quarter start together");
    assert_eq!(to, r2_letters.iter().max().unwrap() + 1);

    let status = backfill(&s, &tenant, (from, to)).await;
    assert_eq!(status.state, JobState::Succeeded, "{status:#?}");
    // Each of r2's dead-lettered readings is counted once; r9's stay letters.
    let counted = |room: &str| {
        rows(
            &tenant,
            &format!(
                "SELECT count() FROM {{db}}.readings FINAL WHERE room_id = '{room}' AND ts_ms < {to}"
            ),
            "",
        )
    };
    assert_eq!(counted("r2"), [r2_letters.len().to_string()]);
    assert_eq!(counted("r9"), ["0"]);
    let samples = rows(
        &tenant,
        "SELECT sum(samples) FROM {db}.room_utilization FINAL WHERE granularity = '15m' \
         AND room_id = 'r2' AND {where}",
        &starting_in((from, to)),
    );
    assert_eq!(samples, [r2_letters.len().to_string()]);
}
