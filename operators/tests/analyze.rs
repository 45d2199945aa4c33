//! Anomalies, faults and forecasts of a simulated office, through the aggregation and the
//! analysis as the pipeline runs them.

use std::sync::Arc;

use rf_operators::analyze::faults::FaultConfig;
use rf_operators::Topic;
use rf_operators::*;
use rf_schemas::{Reading, RoomKind, RoomVersion, TenantId};

const T0: i64 = 1_767_571_200_000; // 2026-01-05T00:00:00Z, a Monday; London is on UTC
const MIN: i64 = 60_000;
const HOUR: i64 = 60 * MIN;
const DAY: i64 = 24 * HOUR;
/// The day things go wrong: Tuesday of the fourth week.
const BAD_DAY: i64 = T0 + 22 * DAY;

fn tenant() -> TenantId {
    TenantId::parse("acme").unwrap()
}

fn room(id: &str, capacity: u32) -> Arc<RoomVersion> {
    Arc::new(RoomVersion {
        room_id: id.into(),
        office_id: "lon".into(),
        office_name: "London".into(),
        region: "EMEA".into(),
        country_code: "GB".into(),
        timezone: chrono_tz::Europe::London,
        floor: 2,
        name: id.into(),
        kind: RoomKind::Meeting,
        capacity,
        area_m2: None,
        monthly_cost: None,
        effective_from: 0,
    })
}

/// A usual count: busy on weekdays from 9 to 17, a little noise, empty otherwise.
fn usual(room: &str, ts: i64) -> i32 {
    let (day, hour) = (((ts - T0) / DAY) % 7, (ts % DAY) / HOUR);
    if day >= 5 || !(9..17).contains(&hour) {
        return 0;
    }
    let noise = ((ts / MIN) * 2_654_435_761 % 3) as i32 - 1;
    match room {
        "r1" => 6 + noise,
        "r2" => 2 + noise,
        _ => 3 + noise + ((ts / (15 * MIN)) % 2) as i32,
    }
}

/// The bad day: r1 empty at 10:00, r2 with 7 people (capacity 4) for 25 minutes at
/// 14:00, r3's sensor repeating 3 from 8:00 and silent from 13:00.
fn actual(room: &str, ts: i64) -> Option<i32> {
    let at = |h: i64, m: i64| BAD_DAY + h * HOUR + m * MIN;
    match room {
        "r1" if (at(10, 0)..at(11, 0)).contains(&ts) => Some(0),
        "r2" if (at(14, 0)..at(14, 25)).contains(&ts) => Some(7),
        "r3" if ts >= at(13, 0) && ts >= BAD_DAY => None,
        "r3" if ts >= at(8, 0) && ts >= BAD_DAY => Some(3),
        _ => Some(usual(room, ts)),
    }
}

struct Feed {
    aggregator: Aggregator,
    offset: i64,
}

impl Feed {
    fn new() -> Self {
        Self {
            aggregator: Aggregator::new(AggregateConfig::default()),
            offset: 0,
        }
    }

    /// The aggregation's outputs for `rooms` reading every minute in `[from, to)`.
    fn minutes(&mut self, from: i64, to: i64) -> Vec<Output> {
        let mut out = Vec::new();
        if from == T0 {
            for (i, (id, capacity)) in [("r1", 10), ("r2", 4), ("r3", 6)].iter().enumerate() {
                let event = RoomEvent {
                    tenant: tenant(),
                    partition: 0,
                    offset: i as i64,
                    room_id: id.to_string(),
                    effective_from: 0,
                    version: Some(room(id, *capacity)),
                };
                self.aggregator
                    .apply(Decoded::Room(Box::new(event)), &mut out);
            }
        }
        for ts in (from..to).step_by(MIN as usize) {
            for id in ["r1", "r2", "r3"] {
                let Some(people) = actual(id, ts) else {
                    continue;
                };
                self.reading(id, ts, people, &mut out);
            }
        }
        self.aggregator.flush(&mut out);
        out
    }

    fn reading(&mut self, id: &str, ts: i64, people: i32, out: &mut Vec<Output>) {
        let reading = Reading {
            sensor_id: format!("s-{id}"),
            office_id: "lon".into(),
            room_id: id.into(),
            ts,
            people_count: people,
            temperature: None,
            humidity: None,
            co2_ppm: None,
            battery_pct: None,
        };
        let record = RawRecord {
            tenant: tenant(),
            topic: Topic::Readings,
            partition: 0,
            offset: self.offset,
            timestamp: ts,
            received: ts,
            key: Some(b"lon".to_vec()),
            value: Some(vec![0]),
        };
        self.offset += 1;
        let event = Decoded::Reading(Box::new(DecodedReading {
            reading,
            record,
            schema_id: 1,
        }));
        self.aggregator.apply(event, out);
    }
}

fn analyze(analyzer: &mut Analyzer, outputs: Vec<Output>) -> Vec<Output> {
    let mut out = Vec::new();
    for o in outputs {
        analyzer.apply(o, &mut out);
    }
    analyzer.flush(&mut out);
    out
}

fn anomalies(out: &[Output]) -> Vec<&Anomaly> {
    out.iter()
        .filter_map(|o| match o {
            Output::Anomaly(a) => Some(a),
            _ => None,
        })
        .collect()
}

fn config() -> AnalyzeConfig {
    AnalyzeConfig {
        faults: FaultConfig::default(),
        keep_readings: false,
        ..AnalyzeConfig::default()
    }
}

/// Wall clock at the end of the bad day: only its hours are recent enough to forecast.
fn end_of_bad_day() -> i64 {
    BAD_DAY + DAY
}

#[test]
fn a_bad_day_gives_each_anomaly_once_and_a_restored_model_carries_on_alike() {
    let mut feed = Feed::new();
    let mut analyzer = Analyzer::new(config(), Restored::default()).with_clock(end_of_bad_day);
    let mut before = Vec::new();
    let mut states = Vec::new();
    let mut versions = Vec::new();
    for day in 0..22 {
        let outputs = feed.minutes(T0 + day * DAY, T0 + (day + 1) * DAY);
        versions.extend(
            outputs
                .iter()
                .filter(|o| matches!(o, Output::RoomVersion(..)))
                .cloned(),
        );
        let out = analyze(&mut analyzer, outputs);
        assert!(
            !out.iter().any(|o| matches!(o, Output::Readings(_))),
            "final readings are dropped when not kept"
        );
        for o in out {
            match o {
                Output::Anomaly(a) => before.push(a),
                Output::Model(m) => states.push(m),
                Output::Forecast(f) => panic!("a forecast of an old hour: {f:?}"),
                _ => {}
            }
        }
    }
    // Three usual weeks: no fault, and no occupancy anomaly worth acting on.
    assert!(
        before
            .iter()
            .all(|a| a.kind == AnomalyKind::Occupancy && a.severity == Severity::Low),
        "{before:#?}"
    );
    assert!(
        before.len() <= 3,
        "{} low anomalies in 3 weeks",
        before.len()
    );

    // A second analyzer restores the last persisted states, as after a restart.
    let restored = Restored::default();
    let mut latest = std::collections::BTreeMap::new();
    for m in states {
        latest.insert((m.entity_kind, m.entity_id.clone()), m);
    }
    assert_eq!(latest.len(), 4, "three rooms and their office");
    for (_, m) in latest {
        restored.insert(m);
    }
    let mut twin = Analyzer::new(config(), restored.clone()).with_clock(end_of_bad_day);
    analyze(&mut twin, versions);

    let outputs = feed.minutes(BAD_DAY, BAD_DAY + DAY + HOUR);
    let out = analyze(&mut analyzer, outputs.clone());
    let twin_out = analyze(&mut twin, outputs);
    assert!(restored.is_empty(), "the worker took the office's states");
    let found = anomalies(&out);
    assert_eq!(found, anomalies(&twin_out), "restored, not relearnt");

    let of = |kind: AnomalyKind, id: &str| -> Vec<&Anomaly> {
        found
            .iter()
            .copied()
            .filter(|a| a.kind == kind && a.entity_id == id)
            .collect()
    };
    // r1 empty at 10:00 on a weekday.
    let empty = of(AnomalyKind::Occupancy, "r1");
    assert_eq!(empty.len(), 1, "{found:#?}");
    assert_eq!(empty[0].window_start, BAD_DAY + 10 * HOUR);
    assert!(empty[0].severity >= Severity::Medium, "{:?}", empty[0]);
    assert!(empty[0].details.contains("\"expected\""));

    // r2 over capacity from 14:00 to 14:25: one episode, written once it qualified and
    // once more when it ended.
    let breach = of(AnomalyKind::CapacityBreach, "r2");
    assert!(!breach.is_empty(), "{found:#?}");
    assert!(breach.iter().all(|a| a.window_start == BAD_DAY + 14 * HOUR));
    let last = breach.last().unwrap();
    assert!(!last.ongoing);
    assert_eq!(last.window_end, BAD_DAY + 14 * HOUR + 25 * MIN);
    assert_eq!(last.severity, Severity::High, "7 people in a room for 4");

    // r3's sensor repeated 3 from 8:00 to 13:00 while the office was in use.
    let stuck = of(AnomalyKind::StuckSensor, "s-r3");
    assert!(!stuck.is_empty(), "{found:#?}");
    assert!(stuck
        .iter()
        .all(|a| a.window_start == BAD_DAY + 8 * HOUR && a.room_id == "r3"));
    assert!(stuck
        .iter()
        .any(|a| a.window_end - a.window_start >= 3 * HOUR));

    // r3 silent from 13:00 while r1 and r2 report: one episode, still going on.
    let silent = of(AnomalyKind::SilentSensor, "r3");
    assert!(!silent.is_empty(), "{found:#?}");
    assert!(silent.iter().all(|a| a.window_start == BAD_DAY + 13 * HOUR));
    assert!(silent.iter().all(|a| a.ongoing));
    assert!(
        silent.len() <= 12,
        "revised at most hourly: {}",
        silent.len()
    );

    assert!(
        of(AnomalyKind::ImplausibleValue, "r2").is_empty(),
        "25 minutes is not persistent"
    );

    // The bad day's hours are recent: two weeks of hours for each room and the office,
    // and 13 weeks of daily peaks once the day closed.
    let forecasts: Vec<&ForecastSeries> = out
        .iter()
        .filter_map(|o| match o {
            Output::Forecast(f) => Some(f),
            _ => None,
        })
        .collect();
    let r1 = forecasts
        .iter()
        .rfind(|f| f.entity_id == "r1" && f.granularity == Granularity::H1)
        .unwrap();
    assert_eq!(r1.points.len(), 336);
    // Next Wednesday 11:00 (the issue is at Wednesday 01:00), a usual busy hour: about 6.
    let busy = r1
        .points
        .iter()
        .find(|p| p.start == BAD_DAY + 8 * DAY + 11 * HOUR)
        .unwrap();
    assert!((4.5..7.5).contains(&busy.expected), "{busy:?}");
    assert!(busy.low <= busy.expected && busy.expected <= busy.high);
    let daily = forecasts
        .iter()
        .find(|f| f.entity_kind == EntityKind::Office && f.granularity == Granularity::D1)
        .unwrap();
    assert_eq!(daily.points.len(), 91);
    assert_eq!(daily.points[0].start, BAD_DAY + DAY);
}

#[test]
fn persistently_impossible_counts_are_implausible() {
    let mut analyzer = Analyzer::new(config(), Restored::default());
    let mut out = Vec::new();
    let window = |start: i64, people: i32| FinalReadings {
        tenant: tenant(),
        office_id: Arc::from("lon"),
        room_id: Arc::from("r9"),
        partition: 0,
        capacity: 4,
        readings: (0..15)
            .map(|m| FinalReading {
                sensor_id: Arc::from(format!("s{m}").as_str()),
                ts: start + m * MIN,
                people_count: people,
                extra: Extra::default(),
                schema_id: 1,
                offset: m,
            })
            .collect(),
    };
    for w in 0..6 {
        let start = T0 + 9 * HOUR + w * 15 * MIN;
        analyzer.apply(
            Output::Readings(window(start, if w < 5 { 9 } else { 1 })),
            &mut out,
        );
    }
    let found = anomalies(&out);
    let implausible: Vec<_> = found
        .iter()
        .filter(|a| a.kind == AnomalyKind::ImplausibleValue)
        .collect();
    assert_eq!(implausible.len(), 1, "{found:#?}");
    assert_eq!(implausible[0].window_start, T0 + 9 * HOUR);
    assert_eq!(implausible[0].window_end, T0 + 9 * HOUR + 75 * MIN);
    assert_eq!(implausible[0].severity, Severity::High);
}

#[test]
fn a_tenants_breach_threshold_flags_rooms_under_capacity() {
    // 7 people in a room for 8 for half an hour (87.5% of its seats), then nobody.
    let window = |tenant: TenantId, start: i64, people: i32| FinalReadings {
        tenant,
        office_id: Arc::from("lon"),
        room_id: Arc::from("r8"),
        partition: 0,
        capacity: 8,
        readings: (0..15)
            .map(|m| FinalReading {
                sensor_id: Arc::from("s-r8"),
                ts: start + m * MIN,
                people_count: people,
                extra: Extra::default(),
                schema_id: 1,
                offset: m,
            })
            .collect(),
    };
    let strict = TenantId::parse("strict").unwrap();
    let config = config();
    config
        .breach_at
        .set(std::collections::HashMap::from([(strict.clone(), 0.8)]));
    let mut analyzer = Analyzer::new(config, Restored::default());
    analyzer.apply(
        Output::RoomVersion(strict.clone(), room("r8", 8)),
        &mut Vec::new(),
    );
    analyzer.apply(
        Output::RoomVersion(tenant(), room("r8", 8)),
        &mut Vec::new(),
    );
    let mut out = Vec::new();
    for w in 0..3 {
        let start = T0 + 9 * HOUR + w * 15 * MIN;
        for t in [strict.clone(), tenant()] {
            let people = if w < 2 { 7 } else { 0 };
            analyzer.apply(Output::Readings(window(t, start, people)), &mut out);
        }
    }
    let found = anomalies(&out);
    let breaches: Vec<_> = found
        .iter()
        .filter(|a| a.kind == AnomalyKind::CapacityBreach)
        .collect();
    assert!(!breaches.is_empty(), "{found:#?}");
    assert!(breaches.iter().all(|a| a.tenant == strict), "{breaches:#?}");
    // 7 is 9% over 0.8 × 8 = 6.4.
    assert!(
        breaches[0].details.contains("\"threshold\":0.8"),
        "{:?}",
        breaches[0]
    );
    assert_eq!(breaches.len(), 1, "{breaches:#?}");
    assert_eq!(breaches[0].window_end - breaches[0].window_start, 30 * MIN);
    assert_eq!(
        breaches[0].severity,
        Severity::Low,
        "9% over, for 30 minutes"
    );
}

/// A state persisted by the version before detectors (issue 21) held the weekly model
/// as `hourly`, and no detector or forecast choice.
fn as_before_detectors(state: &str) -> String {
    let mut state: serde_json::Value = serde_json::from_str(state).unwrap();
    let object = state.as_object_mut().unwrap();
    let detector = object.remove("detector").expect("a detector is persisted");
    object.remove("choice");
    object.remove("chosen_at");
    object.insert("hourly".into(), detector["seasonal"][1].clone());
    state.to_string()
}

#[test]
fn a_state_persisted_before_detectors_resumes_with_its_weekly_model() {
    let mut feed = Feed::new();
    let mut analyzer = Analyzer::new(config(), Restored::default()).with_clock(end_of_bad_day);
    let mut latest = std::collections::BTreeMap::new();
    let mut versions = Vec::new();
    for day in 0..22 {
        let outputs = feed.minutes(T0 + day * DAY, T0 + (day + 1) * DAY);
        versions.extend(
            outputs
                .iter()
                .filter(|o| matches!(o, Output::RoomVersion(..)))
                .cloned(),
        );
        for o in analyze(&mut analyzer, outputs) {
            if let Output::Model(m) = o {
                latest.insert((m.entity_kind, m.entity_id.clone()), m);
            }
        }
    }
    let restored = Restored::default();
    for (_, mut m) in latest {
        assert!(
            m.state.contains("\"choice\""),
            "three weeks of hours chose a forecast"
        );
        m.state = as_before_detectors(&m.state);
        restored.insert(m);
    }
    let mut upgraded = Analyzer::new(config(), restored.clone()).with_clock(end_of_bad_day);
    analyze(&mut upgraded, versions);
    let out = analyze(&mut upgraded, feed.minutes(BAD_DAY, BAD_DAY + DAY + HOUR));
    assert!(restored.is_empty(), "the worker took the office's states");

    // The weekly model carried over: the office's next weekday morning is forecast
    // busy (r1 6, r2 2, r3 3.5 people) right away, not learnt again from the mean.
    let office = out
        .iter()
        .filter_map(|o| match o {
            Output::Forecast(f) if f.entity_kind == EntityKind::Office => Some(f),
            _ => None,
        })
        .rfind(|f| f.granularity == Granularity::H1)
        .expect("the office's hours are forecast");
    let morning = office
        .points
        .iter()
        .find(|p| p.start == BAD_DAY + DAY + 10 * HOUR)
        .unwrap();
    assert!((9.0..14.0).contains(&morning.expected), "{morning:?}");
    let night = office
        .points
        .iter()
        .find(|p| p.start == BAD_DAY + DAY + 3 * HOUR)
        .unwrap();
    assert!(night.expected < 1.0, "{night:?}");
    // What is persisted now has a detector and no longer the old field.
    let states: Vec<&ModelState> = out
        .iter()
        .filter_map(|o| match o {
            Output::Model(m) => Some(m),
            _ => None,
        })
        .collect();
    assert!(!states.is_empty());
    assert!(states
        .iter()
        .all(|m| m.state.contains("\"detector\"") && !m.state.contains("\"hourly\"")));
}

#[test]
fn daily_peaks_are_forecast_by_the_validated_choice_once_eight_weeks_were_seen() {
    let mut feed = Feed::new();
    // The clock just after the ninth week's last day closed: its peak is recent.
    fn end() -> i64 {
        T0 + 62 * DAY + HOUR
    }
    let mut analyzer = Analyzer::new(config(), Restored::default()).with_clock(end);
    let mut out = Vec::new();
    for day in 0..63 {
        // Nine usual weeks (no bad day in them).
        let outputs = feed.minutes(T0 + day * DAY, T0 + (day + 1) * DAY);
        out.extend(analyze(&mut analyzer, outputs));
    }
    let daily = out
        .iter()
        .filter_map(|o| match o {
            Output::Forecast(f) if f.granularity == Granularity::D1 && f.entity_id == "r1" => {
                Some(f)
            }
            _ => None,
        })
        .next_back()
        .expect("the last day's peak forecast");
    assert_eq!(daily.points.len(), 91);
    // r1 peaks at 7 (6 give or take one) on weekdays and is empty at weekends.
    for p in &daily.points[..14] {
        let weekday = ((p.start - T0) / DAY) % 7 < 5;
        let usual = if weekday { 7.0 } else { 0.0 };
        assert!((p.expected - usual).abs() < 1.0, "{p:?}");
        assert!(p.low <= p.expected && p.expected <= p.high, "{p:?}");
    }
    let state = out
        .iter()
        .filter_map(|o| match o {
            Output::Model(m) if m.entity_id == "r1" => Some(m),
            _ => None,
        })
        .next_back()
        .expect("r1's state");
    let state: serde_json::Value = serde_json::from_str(&state.state).unwrap();
    assert!(
        state["daily_choice"].is_object(),
        "{}",
        state["daily_choice"]
    );
}

#[test]
fn before_a_whole_week_hours_are_forecast_by_the_mean_so_far() {
    let mut feed = Feed::new();
    fn end() -> i64 {
        T0 + 2 * DAY
    }
    let mut analyzer = Analyzer::new(config(), Restored::default()).with_clock(end);
    let mut out = Vec::new();
    for day in 0..2 {
        out.extend(analyze(
            &mut analyzer,
            feed.minutes(T0 + day * DAY, T0 + (day + 1) * DAY),
        ));
    }
    let office = out
        .iter()
        .filter_map(|o| match o {
            Output::Forecast(f) if f.entity_kind == EntityKind::Office => Some(f),
            _ => None,
        })
        .rfind(|f| f.granularity == Granularity::H1)
        .expect("an office's hours are forecast from its first hours");
    assert_eq!(office.points.len(), 336);
    assert!(office
        .points
        .iter()
        .all(|p| p.low <= p.expected && p.expected <= p.high));
}
