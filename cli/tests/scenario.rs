//! A seeded, generated scenario against an independent, deliberately plain computation
//! of the contract (written here, sharing no code with the pipeline): out-of-order
//! readings, readings past the allowed lateness, revisions, a capacity change, a
//! withdrawn room version, readings before their room exists, a room that never exists,
//! wrong keys, malformed bytes, London's 23-hour day, and an office that goes idle.
//! Then corrections to room history after the windows are final (restated in place),
//! and a live run in which the idle office's partition follows the tenant's event time.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{NaiveTime, TimeZone};
use rdkafka::producer::{FutureProducer, FutureRecord};

use rf_pipelines::{run, Metrics, RunOptions};
use rf_schemas::{Reading, RoomKind, RoomVersion};

use common::*;

const LATENESS: i64 = 5 * MIN;
const HOUR: i64 = 60 * MIN;
/// 2026-03-28T20:00:00Z; London springs forward on the 29th.
const T: i64 = 1_774_728_000_000;

fn version(room: &str, office: &str, tz: chrono_tz::Tz, capacity: u32, from: i64) -> RoomVersion {
    RoomVersion {
        room_id: room.into(),
        office_id: office.into(),
        office_name: office.into(),
        region: "EMEA".into(),
        country_code: "GB".into(),
        timezone: tz,
        floor: 1,
        name: room.into(),
        kind: RoomKind::Desk,
        capacity,
        area_m2: None,
        monthly_cost: None,
        effective_from: from,
    }
}

/// One input record as the model sees it.
struct Input {
    partition: i32,
    key: String,
    reading: Option<Reading>, // None: malformed bytes
}

fn day_of(ts: i64, tz: chrono_tz::Tz) -> (i64, i64) {
    // Plainly: local date of ts, then the instants of that midnight and the next.
    let date = tz.timestamp_millis_opt(ts).unwrap().date_naive();
    let midnight = |d: chrono::NaiveDate| {
        tz.from_local_datetime(&d.and_time(NaiveTime::MIN))
            .earliest()
            .unwrap()
            .timestamp_millis()
    };
    (midnight(date), midnight(date.succ_opt().unwrap()))
}

fn windows_of(ts: i64, tz: chrono_tz::Tz) -> [(&'static str, i64, i64); 3] {
    let q = ts - ts.rem_euclid(15 * MIN);
    let h = ts - ts.rem_euclid(HOUR);
    let (ds, de) = day_of(ts, tz);
    [
        ("15m", q, q + 15 * MIN),
        ("1h", h, h + HOUR),
        ("1d", ds, de),
    ]
}

fn fmt_time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap()
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}

/// ClickHouse prints Float64 with up to 17 significant digits, like Rust's `{}` does not;
/// compare numbers rounded to 9 decimals.
fn num(x: f64) -> String {
    format!("{:.9}", x)
}

/// Plainly: the version with the latest start not after `ts`.
fn version_at<'a>(catalog: &[&'a RoomVersion], room: &str, ts: i64) -> Option<&'a RoomVersion> {
    catalog
        .iter()
        .filter(|v| v.room_id == room && v.effective_from <= ts)
        .max_by_key(|v| v.effective_from)
        .copied()
}

type Counted = BTreeMap<(String, i64, String), (i32, i32)>; // (room, ts, sensor) -> (people, partition)

/// The final room and office rows the contract expects from the counted readings, with
/// `catalog`'s versions in effect, tab-separated.
fn expected_rows(
    catalog: &[&RoomVersion],
    counted: &Counted,
    is_final: &dyn Fn(i32, i64) -> bool,
) -> (Vec<String>, Vec<String>) {
    let version_at = |room: &str, ts: i64| version_at(catalog, room, ts);
    type Key = (&'static str, String, i64, i64); // granularity, id, start, end
    let mut by_room: BTreeMap<(Key, String), Vec<(i64, i32)>> = BTreeMap::new(); // ((g, room, start, end), office) -> (ts, people)
    for ((room, ts, _), (people, partition)) in counted {
        let v = version_at(room, *ts).unwrap();
        for (g, start, end) in windows_of(*ts, v.timezone) {
            if is_final(*partition, end) {
                by_room
                    .entry(((g, room.clone(), start, end), v.office_id.clone()))
                    .or_default()
                    .push((*ts, *people));
            }
        }
    }
    let mut expected_rooms = Vec::new();
    // Per office window, per reporting room: capacity, mean, and (sum, count) per minute.
    type RoomPart = (u32, f64, BTreeMap<i64, (i64, i64)>);
    let mut offices: BTreeMap<Key, Vec<RoomPart>> = BTreeMap::new();
    for (((g, room, start, end), office), samples) in &by_room {
        let v = version_at(room, end - 1).unwrap();
        let n = samples.len() as f64;
        let sum: i64 = samples.iter().map(|s| i64::from(s.1)).sum();
        let avg = sum as f64 / n;
        let peak = samples.iter().map(|s| s.1).max().unwrap();
        let occupied = samples.iter().filter(|s| s.1 > 0).count() as f64 / n;
        expected_rooms.push(format!(
            "{g}\t{office}\t{room}\t{}\t{}\t{}\t{}\t{peak}\t{}\t{}\t{}",
            fmt_time(*start),
            fmt_time(*end),
            samples.len(),
            num(avg),
            num(occupied),
            v.capacity,
            num(avg / f64::from(v.capacity))
        ));
        let mut minutes: BTreeMap<i64, (i64, i64)> = BTreeMap::new();
        for (ts, people) in samples {
            let e = minutes.entry(ts.div_euclid(MIN)).or_default();
            e.0 += i64::from(*people);
            e.1 += 1;
        }
        offices
            .entry((g, office.clone(), *start, *end))
            .or_default()
            .push((v.capacity, avg, minutes));
    }
    expected_rooms.sort();
    let mut expected_offices = Vec::new();
    for ((g, office, start, end), rooms) in &offices {
        let capacity: u32 = rooms.iter().map(|r| r.0).sum();
        let avg: f64 = rooms.iter().map(|r| r.1).sum();
        let mut per_minute: BTreeMap<i64, f64> = BTreeMap::new();
        for (_, _, minutes) in rooms {
            for (m, (sum, n)) in minutes {
                *per_minute.entry(*m).or_default() += *sum as f64 / *n as f64;
            }
        }
        let peak = per_minute.values().copied().fold(0.0, f64::max);
        expected_offices.push(format!(
            "{g}\t{office}\t{}\t{}\t{}\t{}\t{}\t{capacity}\t{}",
            fmt_time(*start),
            fmt_time(*end),
            rooms.len(),
            num(avg),
            num(peak),
            num(avg / f64::from(capacity))
        ));
    }
    // In the order of `final_rows`: by line.
    expected_offices.sort();
    (expected_rooms, expected_offices)
}

/// The final rows in ClickHouse, as the model prints them, with each row's version.
fn final_rows(db: &str) -> (BTreeMap<String, u64>, BTreeMap<String, u64>) {
    let reformat = |line: &str, floats: &[usize]| {
        let mut fields: Vec<String> = line.split('\t').map(String::from).collect();
        let version = fields.pop().unwrap().parse().unwrap();
        for &i in floats {
            fields[i] = num(fields[i].parse().unwrap());
        }
        (fields.join("\t"), version)
    };
    let rooms = clickhouse_lines(&format!(
        "SELECT granularity, office_id, room_id, window_start, window_end, samples, avg_people, peak_people, \
         occupied_ratio, capacity, utilization, version FROM {db}.room_utilization FINAL WHERE final = 1"
    ))
    .iter()
    .map(|l| reformat(l, &[6, 8, 10]))
    .collect();
    let offices = clickhouse_lines(&format!(
        "SELECT granularity, office_id, window_start, window_end, rooms_reporting, avg_people, peak_people, \
         capacity, utilization, version FROM {db}.office_utilization FINAL WHERE final = 1"
    ))
    .iter()
    .map(|l| reformat(l, &[5, 6, 8]))
    .collect();
    (rooms, offices)
}

/// The daily table holds exactly the final `1d` room rows, each under its local date
/// (plainly: the date of the window's start in the office's zone).
fn room_days_agree(db: &str, rooms: &BTreeMap<String, u64>, zone: impl Fn(&str) -> chrono_tz::Tz) {
    let days: Vec<String> = clickhouse_lines(&format!(
        "SELECT day, office_id, room_id, window_start, window_end, samples, avg_people, peak_people, \
         occupied_ratio, capacity, utilization FROM {db}.room_days FINAL"
    ))
    .iter()
    .map(|line| {
        let mut fields: Vec<String> = line.split('\t').map(String::from).collect();
        for i in [6, 8, 10] {
            fields[i] = num(fields[i].parse().unwrap());
        }
        let day = fields.remove(0);
        let start = chrono::NaiveDateTime::parse_from_str(&fields[2], "%Y-%m-%d %H:%M:%S").unwrap();
        let local = zone(&fields[0]).from_utc_datetime(&start).date_naive();
        assert_eq!(day, local.to_string(), "the local date of {line}");
        format!("1d\t{}", fields.join("\t"))
    })
    .collect();
    let mut days = days;
    days.sort();
    let want: Vec<&String> = rooms.keys().filter(|l| l.starts_with("1d\t")).collect();
    assert!(!want.is_empty());
    assert_eq!(days.iter().collect::<Vec<_>>(), want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_scenario_matches_a_plain_computation() {
    let tenant = fresh_tenant("scen");
    let s = settings(&tenant);
    stack_is_up(&s);
    let (reading_id, room_id) = create_tenant(&tenant).await;
    let london = chrono_tz::Europe::London;
    let new_york = chrono_tz::America::New_York;

    // Room metadata, all published before the readings.
    let versions = vec![
        version("lon-1", "lon", london, 4, T - 24 * HOUR),
        version("lon-1", "lon", london, 8, T + 3 * HOUR), // capacity change
        version("lon-2", "lon", london, 6, T - 24 * HOUR),
        version("lon-2", "lon", london, 10, T + 2 * HOUR), // withdrawn below
        version("lon-3", "lon", london, 5, T + HOUR),      // readings before it are unknown_room
        version("lon-4", "lon", london, 12, T - 24 * HOUR),
        version("nyc-1", "nyc", new_york, 6, T - 24 * HOUR),
    ];
    let withdrawn = ("lon-2", T + 2 * HOUR);
    let catalog: Vec<&RoomVersion> = versions
        .iter()
        .filter(|v| (v.room_id.as_str(), v.effective_from) != withdrawn)
        .collect();
    let version_at = |room: &str, ts: i64| version_at(&catalog, room, ts);

    // Readings: every minute for 30 hours in London (plus a room with no metadata), New
    // York for the first 2 hours only (then idle), messed up by a seeded generator.
    let mut rng = Rng(0x5ce7_a410);
    let mut inputs = Vec::new();
    let mut delayed: Vec<(i64, Input)> = Vec::new();
    for m in 0..30 * 60 + 60 {
        let now = T + m * MIN;
        let rooms: Vec<(&str, &str, i32)> = if m < 30 * 60 {
            let mut r = vec![
                ("lon-1", "lon", 0),
                ("lon-2", "lon", 0),
                ("lon-3", "lon", 0),
                ("lon-4", "lon", 0),
                ("lon-9", "lon", 0),
            ];
            if m < 120 {
                r.push(("nyc-1", "nyc", 1));
            }
            r
        } else {
            Vec::new()
        };
        for (room, office, partition) in rooms {
            let reading = Reading {
                sensor_id: format!("s-{room}"),
                office_id: office.into(),
                room_id: room.into(),
                ts: now + (rng.next() % 50) as i64 * 1000,
                people_count: (rng.next() % 9) as i32,
                temperature: None,
                humidity: None,
                co2_ppm: None,
                battery_pct: None,
            };
            let input = |reading: Option<Reading>, key: &str| Input {
                partition,
                key: key.into(),
                reading,
            };
            let u = rng.unit();
            if u < 0.12 {
                delayed.push((
                    m + 1 + (rng.next() % 4) as i64,
                    input(Some(reading), office),
                ));
            } else if u < 0.13 {
                delayed.push((m + 40, input(Some(reading), office)));
            } else if u < 0.133 {
                inputs.push((now, input(None, office)));
            } else if u < 0.136 {
                inputs.push((now, input(Some(reading), "elsewhere")));
            } else {
                if u < 0.156 {
                    let revision = Reading {
                        people_count: reading.people_count + 1,
                        ..reading.clone()
                    };
                    delayed.push((
                        m + 1 + (rng.next() % 3) as i64,
                        input(Some(revision), office),
                    ));
                }
                inputs.push((now, input(Some(reading), office)));
            }
        }
        let (due, rest): (Vec<_>, Vec<_>) = delayed.into_iter().partition(|(at, _)| *at <= m);
        delayed = rest;
        inputs.extend(due.into_iter().map(|(_, i)| (now, i)));
    }

    // Publish: metadata, then readings with explicit partitions (one per office).
    let producer: FutureProducer = s.kafka.client_config().create().unwrap();
    let rooms = room_records(&versions, room_id, T);
    produce_all(&producer, &tenant.rooms_topic(), &rooms).await;
    let (rooms_topic, readings_topic) = (tenant.rooms_topic(), tenant.readings_topic());
    withdraw(&producer, &rooms_topic, withdrawn.0, withdrawn.1).await;
    let mut offsets: BTreeMap<i32, i64> = BTreeMap::new();
    let mut stream: Vec<(i32, i64, &Input)> = Vec::new(); // (partition, offset, input)
    let mut deliveries = Vec::new();
    for (now, input) in &inputs {
        let value = match &input.reading {
            Some(r) => framed(reading_id, r),
            None => b"\x00\x00\x00".to_vec(),
        };
        let record = FutureRecord::to(&readings_topic)
            .key(&input.key)
            .payload(&value)
            .partition(input.partition)
            .timestamp(now + 1_000);
        deliveries.push(producer.send_result(record).map_err(|(e, _)| e).unwrap());
        let offset = offsets.entry(input.partition).or_default();
        stream.push((input.partition, *offset, input));
        *offset += 1;
    }

    // The model assumes each partition's offsets follow the order of production.
    for (delivery, (partition, offset, _)) in deliveries.into_iter().zip(&stream) {
        let delivered = delivery.await.unwrap().map_err(|(e, _)| e).unwrap();
        assert_eq!(
            (delivered.partition, delivered.offset),
            (*partition, *offset)
        );
    }

    // The plain computation, per partition in offset order.
    let mut accepted: BTreeMap<(String, i64, String), (i32, i32)> = BTreeMap::new(); // (room, ts, sensor) -> (people, partition)
    let mut letters: BTreeSet<(String, String, i64)> = BTreeSet::new();
    let mut watermark: BTreeMap<i32, i64> = BTreeMap::new();
    for &(partition, offset, input) in &stream {
        let dead = |reason: &str| (reason.to_owned(), partition.to_string(), offset);
        let Some(r) = &input.reading else {
            letters.insert(dead("malformed"));
            continue;
        };
        if input.key != r.office_id {
            letters.insert(dead("office_mismatch"));
            continue;
        }
        let end15 = r.ts - r.ts.rem_euclid(15 * MIN) + 15 * MIN;
        if watermark
            .get(&partition)
            .is_some_and(|wm| end15 + LATENESS <= *wm)
        {
            letters.insert(dead("late"));
            continue;
        }
        accepted.insert(
            (r.room_id.clone(), r.ts, r.sensor_id.clone()),
            (r.people_count, partition),
        );
        let wm = watermark.entry(partition).or_insert(i64::MIN);
        *wm = (*wm).max(r.ts);
    }
    let is_final = |partition: i32, end: i64| {
        watermark
            .get(&partition)
            .is_some_and(|wm| end + LATENESS <= *wm)
    };
    // Readings without a room version at their time: dead once their 15m window is final.
    let mut counted = Counted::new();
    for ((room, ts, sensor), (people, partition)) in &accepted {
        let end15 = ts - ts.rem_euclid(15 * MIN) + 15 * MIN;
        if version_at(room, *ts).is_none() {
            if is_final(*partition, end15) {
                let offset = stream
                    .iter()
                    .rev()
                    .find(|(p, _, i)| {
                        p == partition
                            && i.reading.as_ref().is_some_and(|r| {
                                &r.room_id == room && r.ts == *ts && &r.sensor_id == sensor
                            })
                    })
                    .unwrap()
                    .1;
                letters.insert(("unknown_room".into(), partition.to_string(), offset));
            }
            continue;
        }
        counted.insert((room.clone(), *ts, sensor.clone()), (*people, *partition));
    }

    let (want_rooms, want_offices) = expected_rows(&catalog, &counted, &is_final);

    // The pipeline.
    let report = run_until_caught_up(&s).await;
    let st = &report.stats;
    assert_eq!(st.consumed, stream.len() as u64);
    assert_accounts(&report);
    let out_of_order = stream
        .windows(2)
        .filter(|w| match (&w[0].2.reading, &w[1].2.reading) {
            (Some(a), Some(b)) => w[0].0 == w[1].0 && b.ts < a.ts,
            _ => false,
        });
    assert!(
        out_of_order.count() * 10 >= stream.len() / 2,
        "at least 10% out of order per office stream"
    );

    let db = tenant.clickhouse_db();
    let (rooms_v1, offices_v1) = final_rows(&db);
    let zone = |office: &str| if office == "nyc" { new_york } else { london };
    room_days_agree(&db, &rooms_v1, zone);
    let got_rooms: Vec<String> = rooms_v1.keys().cloned().collect();
    let got_offices: Vec<String> = offices_v1.keys().cloned().collect();
    eprintln!(
        "{} readings, {} final room rows, {} final office rows, {} dead letters",
        stream.len(),
        want_rooms.len(),
        want_offices.len(),
        letters.len()
    );
    assert_eq!(got_rooms.len(), want_rooms.len(), "final room rows");
    for (got, want) in got_rooms.iter().zip(&want_rooms) {
        assert_eq!(got, want);
    }
    assert_eq!(got_offices, want_offices, "final office rows");

    // New York went idle after two hours: its later windows stay open, London's close.
    assert!(
        got_offices
            .iter()
            .any(|l| l.starts_with("1d\tlon\t2026-03-29 00:00:00\t2026-03-29 23:00:00")),
        "London's 23-hour day is final"
    );
    assert!(
        !got_offices
            .iter()
            .any(|l| l.starts_with("1h\tnyc\t2026-03-28 21:00:00")),
        "the idle office's last hour stays open"
    );

    let reasons: BTreeSet<&str> = letters.iter().map(|l| l.0.as_str()).collect();
    assert_eq!(
        reasons,
        ["late", "malformed", "office_mismatch", "unknown_room"]
            .into_iter()
            .collect()
    );
    assert_eq!(
        dead_letter_set(&settings(&tenant).kafka, &tenant, letters.len()),
        letters
    );

    // Corrections in the past, after their windows are final: lon-4 has had 20 seats
    // since T + 5 h, and lon-1's change to 8 seats at T + 3 h is withdrawn. Exactly the
    // final rows of the windows they cover are rewritten; no other row changes.
    let correction = version("lon-4", "lon", london, 20, T + 5 * HOUR);
    let rooms = room_records([&correction], room_id, T);
    produce_all(&producer, &rooms_topic, &rooms).await;
    withdraw(&producer, &rooms_topic, "lon-1", T + 3 * HOUR).await;
    let mut corrected: Vec<&RoomVersion> = catalog
        .iter()
        .copied()
        .filter(|v| (v.room_id.as_str(), v.effective_from) != ("lon-1", T + 3 * HOUR))
        .collect();
    corrected.push(&correction);
    let (want_rooms, want_offices) = expected_rows(&corrected, &counted, &is_final);
    let report = run_until_caught_up(&s).await;
    // The restart replays the readings of open windows: none is counted or rejected twice.
    assert_eq!((report.stats.counted, report.stats.dead_letters), (0, 0));
    let (rooms_v2, offices_v2) = final_rows(&db);
    assert_eq!(rooms_v2.keys().cloned().collect::<Vec<_>>(), want_rooms);
    room_days_agree(&db, &rooms_v2, zone);
    assert_eq!(offices_v2.keys().cloned().collect::<Vec<_>>(), want_offices);
    let (mut kept, mut rewritten) = (0, 0);
    for (v1, v2) in [(&rooms_v1, &rooms_v2), (&offices_v1, &offices_v2)] {
        for (line, version) in v2 {
            match v1.get(line) {
                Some(before) => {
                    assert_eq!(before, version, "an unaffected row was rewritten: {line}");
                    kept += 1;
                }
                None => rewritten += 1,
            }
        }
    }
    eprintln!("corrections: {rewritten} final rows rewritten, {kept} kept");
    assert!(rewritten > 0 && kept > 0);
    // Withdrawn versions leave the mirror through a mutation, which ClickHouse applies
    // in the background.
    let mirror = || {
        clickhouse_lines(&format!(
            "SELECT room_id, capacity FROM {db}.rooms FINAL \
             WHERE room_id IN ('lon-1', 'lon-2', 'lon-4') ORDER BY room_id, effective_from"
        ))
    };
    let want = ["lon-1\t4", "lon-2\t6", "lon-4\t12", "lon-4\t20"];
    for _ in 0..100 {
        if mirror() == want {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(mirror(), want);

    // Running on, live: New York's partition is caught up and silent, so after the idle
    // timeout it follows London's event time and its open windows close.
    let tenant_watermark = *watermark.values().max().unwrap();
    let follows = |_: i32, end: i64| end + LATENESS <= tenant_watermark;
    let (want_rooms, want_offices) = expected_rows(&corrected, &counted, &follows);
    assert!(want_offices.len() > offices_v2.len());
    let mut live = s.clone();
    live.pipeline.idle_timeout_secs = 1;
    let shutdown = Arc::new(AtomicBool::new(false));
    let _stop = StopOnDrop(shutdown.clone());
    let running = tokio::task::spawn_blocking({
        let shutdown = shutdown.clone();
        move || {
            let options = RunOptions {
                until_caught_up: false,
                shutdown,
                memory_every: None,
                ..Default::default()
            };
            run(&live, options, Metrics::new())
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    while final_rows(&db).1.len() < want_offices.len() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    shutdown.store(true, Ordering::Relaxed);
    running.await.unwrap().expect("the pipeline runs");
    let (rooms_v3, offices_v3) = final_rows(&db);
    assert_eq!(rooms_v3.keys().cloned().collect::<Vec<_>>(), want_rooms);
    room_days_agree(&db, &rooms_v3, zone);
    assert_eq!(offices_v3.keys().cloned().collect::<Vec<_>>(), want_offices);
    clickhouse_lines(&format!("DROP DATABASE {db}"));
}

/// Publishes the tombstone of `room@from`.
async fn withdraw(producer: &FutureProducer, topic: &str, room: &str, from: i64) {
    let key = format!("{room}@{from}");
    producer
        .send(
            FutureRecord::<str, [u8]>::to(topic).key(&key),
            Duration::from_secs(10),
        )
        .await
        .map_err(|(e, _)| e)
        .unwrap();
}
