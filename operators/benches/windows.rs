//! The measurement behind the windows' design: roomflow's hand-written incremental
//! windows ([`Aggregator`]) against the same windows as differential-dataflow
//! collections, on the same readings, one worker each, in epochs as the source cuts them.
//!
//! `cargo bench -p rf-operators --bench windows [-- READINGS ROOMS EPOCH]` (defaults:
//! 2,000,000 readings, 1,000 rooms, 50,000 readings an epoch). Each engine runs in a
//! process of its own, so that each one's peak memory is its own. It prints readings/s,
//! epoch latency percentiles and peak RSS.
//!
//! The differential side computes less than roomflow's: room and office windows (the
//! office's peak minute included), but no live state, no lateness or final rows, no
//! dead letters, no replaced readings, no checkpoints, and UTC days instead of local
//! ones. Its windows are a `reduce` per (granularity, id, window start), the natural way
//! to write them; its input to a reduce is consolidated (a window's readings become a
//! histogram of people counts), which keeps the peak cheap to recompute.

use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use differential_dataflow::input::Input as _;
use timely::dataflow::operators::probe::Handle as ProbeHandle;

use rf_operators::{AggregateConfig, Aggregator, Decoded, Output, RawRecord};
use rf_operators::{DecodedReading, RoomEvent, Topic};
use rf_schemas::{Reading, RoomKind, RoomVersion, TenantId};

const T0: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z
const MIN: i64 = 60_000;
/// Rooms per office, as in the query service's benchmark portfolio.
const ROOMS_PER_OFFICE: usize = 250;

#[derive(Clone, Copy)]
struct Shape {
    readings: usize,
    rooms: usize,
    epoch: usize,
}

/// The `i`-th reading: every room once a minute, people from a fixed pattern.
fn reading(shape: Shape, i: usize) -> (usize, i64, i32) {
    let room = i % shape.rooms;
    let minute = (i / shape.rooms) as i64;
    let people = ((room * 7 + minute as usize * 13) % 11) as i32 - 3;
    (room, T0 + minute * MIN, people.max(0))
}

fn version(room: usize) -> RoomVersion {
    RoomVersion {
        room_id: format!("room-{room:05}"),
        office_id: format!("office-{:03}", room / ROOMS_PER_OFFICE),
        office_name: format!("Office {}", room / ROOMS_PER_OFFICE),
        region: "EMEA".into(),
        country_code: "GB".into(),
        timezone: chrono_tz::UTC,
        floor: 1,
        name: format!("Room {room}"),
        kind: RoomKind::Meeting,
        capacity: 8,
        area_m2: None,
        monthly_cost: None,
        effective_from: 0,
    }
}

/// What a run measured.
struct Measured {
    seconds: f64,
    latencies: Vec<f64>,
    outputs: u64,
}

fn roomflow(shape: Shape) -> Measured {
    let tenant = TenantId::parse("bench").expect("a valid id");
    let mut aggregator = Aggregator::new(AggregateConfig::default());
    let mut out = Vec::new();
    for room in 0..shape.rooms {
        let v = version(room);
        aggregator.apply(
            Decoded::Room(Box::new(RoomEvent {
                tenant: tenant.clone(),
                partition: 0,
                offset: room as i64,
                room_id: v.room_id.clone(),
                effective_from: 0,
                version: Some(Arc::new(v)),
            })),
            &mut out,
        );
    }
    // The ids as decoding hands them over: strings of their own.
    let ids: Vec<(String, String, String)> = (0..shape.rooms)
        .map(|room| {
            let v = version(room);
            (format!("s-{room}"), v.office_id, v.room_id)
        })
        .collect();
    let (started, mut latencies, mut outputs) = (Instant::now(), Vec::new(), 0u64);
    for first in (0..shape.readings).step_by(shape.epoch) {
        let epoch = Instant::now();
        let mut out = Vec::new();
        for i in first..(first + shape.epoch).min(shape.readings) {
            let (room, ts, people) = reading(shape, i);
            let (sensor, office, room) = &ids[room];
            let event = DecodedReading {
                reading: Reading {
                    sensor_id: sensor.clone(),
                    office_id: office.clone(),
                    room_id: room.clone(),
                    ts,
                    people_count: people,
                    temperature: None,
                    humidity: None,
                    co2_ppm: None,
                    battery_pct: None,
                },
                record: RawRecord {
                    tenant: tenant.clone(),
                    topic: Topic::Readings,
                    partition: 0,
                    offset: i as i64,
                    timestamp: ts,
                    received: ts + 1_000,
                    key: None,
                    value: None,
                },
                schema_id: 1,
            };
            aggregator.apply(Decoded::Reading(Box::new(event)), &mut out);
        }
        aggregator.flush(&mut out);
        outputs += out
            .iter()
            .filter(|o| matches!(o, Output::Room(_) | Output::Office(_)))
            .count() as u64;
        latencies.push(epoch.elapsed().as_secs_f64());
    }
    Measured {
        seconds: started.elapsed().as_secs_f64(),
        latencies,
        outputs,
    }
}

fn differential(shape: Shape) -> Measured {
    timely::execute_directly(move |worker| {
        let probe = ProbeHandle::new();
        let outputs = std::rc::Rc::new(std::cell::Cell::new(0u64));
        let (rooms, offices) = (outputs.clone(), outputs.clone());
        let mut input = worker.dataflow::<u64, _, _>(|scope| {
            // (office, room, ts, people), ids as strings as decoding hands them over.
            let (input, readings) = scope.new_collection::<(String, String, i64, i32), isize>();
            // Room windows: samples, sum, peak and occupied minutes per window.
            readings
                .clone()
                .flat_map(|(_, room, ts, people)| {
                    [15 * MIN, 60 * MIN, 1_440 * MIN]
                        .into_iter()
                        .map(move |len| ((len, room.clone(), ts.div_euclid(len) * len), people))
                })
                .reduce(|_window, readings, stats| {
                    let (mut samples, mut sum, mut peak, mut occupied) = (0isize, 0i64, 0, 0);
                    for (people, n) in readings {
                        samples += n;
                        sum += i64::from(**people) * *n as i64;
                        peak = peak.max(**people);
                        occupied += isize::from(**people > 0) * n;
                    }
                    stats.push(((samples, sum, peak, occupied), 1));
                })
                .inspect(move |_| rooms.set(rooms.get() + 1))
                .probe_with(&probe);
            // Office windows: the people of each minute summed over the office's rooms,
            // then the windows' mean and peak minute.
            readings
                .map(|(office, _, ts, people)| ((office, ts.div_euclid(MIN)), people))
                .reduce(|_minute, people, total| {
                    let sum: i64 = people.iter().map(|(p, n)| i64::from(**p) * *n as i64).sum();
                    total.push((sum, 1));
                })
                .flat_map(|((office, minute), people)| {
                    [15 * MIN, 60 * MIN, 1_440 * MIN]
                        .into_iter()
                        .map(move |len| {
                            let start = (minute * MIN).div_euclid(len) * len;
                            ((len, office.clone(), start), people)
                        })
                })
                .reduce(|_window, minutes, stats| {
                    let (mut n, mut sum, mut peak) = (0isize, 0i64, 0i64);
                    for (people, count) in minutes {
                        n += count;
                        sum += **people * *count as i64;
                        peak = peak.max(**people);
                    }
                    stats.push(((n, sum, peak), 1));
                })
                .inspect(move |_| offices.set(offices.get() + 1))
                .probe_with(&probe);
            input
        });
        let ids: Vec<(String, String)> = (0..shape.rooms)
            .map(|room| {
                let v = version(room);
                (v.office_id, v.room_id)
            })
            .collect();
        let (started, mut latencies) = (Instant::now(), Vec::new());
        for first in (0..shape.readings).step_by(shape.epoch) {
            let epoch = Instant::now();
            for i in first..(first + shape.epoch).min(shape.readings) {
                let (room, ts, people) = reading(shape, i);
                let (office, room) = &ids[room];
                input.insert((office.clone(), room.clone(), ts, people));
            }
            let next = *input.time() + 1;
            input.advance_to(next);
            input.flush();
            worker.step_while(|| probe.less_than(input.time()));
            latencies.push(epoch.elapsed().as_secs_f64());
        }
        Measured {
            seconds: started.elapsed().as_secs_f64(),
            latencies,
            // Each revision is a retraction and an addition.
            outputs: outputs.get() / 2,
        }
    })
}

/// Peak resident memory of this process, bytes (Linux).
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).copied().unwrap_or(0.0)
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let number = |i: usize, default: usize| {
        args.iter()
            .filter(|a| a.parse::<usize>().is_ok())
            .nth(i)
            .map_or(default, |a| a.parse().expect("checked"))
    };
    let shape = Shape {
        readings: number(0, 2_000_000),
        rooms: number(1, 1_000).max(1),
        epoch: number(2, 50_000).max(1),
    };
    let engine = args
        .iter()
        .find(|a| *a == "roomflow" || *a == "differential");
    let Some(engine) = engine else {
        // Each engine in a process of its own: its peak memory is its own.
        let exe = std::env::current_exe().expect("the bench's own path");
        println!(
            "windows: {} readings of {} rooms, {} an epoch, one worker each",
            shape.readings, shape.rooms, shape.epoch
        );
        let mut rates = Vec::new();
        for engine in ["roomflow", "differential"] {
            let out = Command::new(&exe)
                .args([
                    engine,
                    &shape.readings.to_string(),
                    &shape.rooms.to_string(),
                    &shape.epoch.to_string(),
                ])
                .output()
                .expect("the bench runs itself");
            let text = String::from_utf8_lossy(&out.stdout);
            print!("{text}");
            rates.push(
                text.split_whitespace()
                    .find_map(|w| w.strip_prefix("rate="))
                    .and_then(|r| r.parse::<f64>().ok())
                    .unwrap_or(0.0),
            );
        }
        if rates[1] > 0.0 {
            println!(
                "ratio     roomflow / differential = {:.2}x",
                rates[0] / rates[1]
            );
        }
        return;
    };
    let measured = if engine == "roomflow" {
        roomflow(shape)
    } else {
        differential(shape)
    };
    let mut latencies = measured.latencies;
    latencies.sort_by(f64::total_cmp);
    let rate = shape.readings as f64 / measured.seconds;
    println!(
        "{engine:<13} {:.0} readings/s (rate={rate:.0}), {} window revisions; epoch p50 {:.1} ms, p95 {:.1} ms, p99 {:.1} ms; peak RSS {} MiB",
        rate,
        measured.outputs,
        percentile(&latencies, 0.5) * 1e3,
        percentile(&latencies, 0.95) * 1e3,
        percentile(&latencies, 0.99) * 1e3,
        peak_rss() >> 20
    );
}
