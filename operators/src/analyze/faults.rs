//! Sensor faults and capacity breaches, judged on final 15m windows: a room's readings
//! update its runs (over capacity, one sensor repeating a count, counts beyond 1.5 ×
//! capacity), and each final 15m window of its office judges them, knowing whether the
//! office was in use and reporting.
//!
//! A run becomes an anomaly once it lasted the configured minutes; it is then revised at
//! most hourly while it goes on, and once more when it ends, always under its first
//! instant, so that each episode is one row.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};
use serde_json::json;

use rf_schemas::TenantId;

use crate::{Anomaly, AnomalyKind, EntityKind, FinalReadings, Severity};

const MINUTE: i64 = 60_000;
const HOUR: i64 = 60 * MINUTE;
const WINDOW: i64 = 15 * MINUTE;

/// How long a condition must hold to be an anomaly.
#[derive(Clone, Debug)]
pub struct FaultConfig {
    /// Above capacity, minutes.
    pub breach_minutes: i64,
    /// One sensor repeating the same non-zero count while its office is in use, minutes.
    pub stuck_minutes: i64,
    /// A room without readings while its office reports, minutes.
    pub silent_minutes: i64,
    /// A room's 15m means above 1.5 × capacity, minutes.
    pub implausible_minutes: i64,
}

impl Default for FaultConfig {
    fn default() -> Self {
        Self {
            breach_minutes: 15,
            stuck_minutes: 180,
            silent_minutes: 30,
            implausible_minutes: 60,
        }
    }
}

/// A condition holding over `[since, until)`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Episode {
    since: i64,
    until: i64,
    /// The largest value seen during it.
    peak: f64,
    /// Its `until` when it was last written; `None`: not written yet.
    written: Option<i64>,
}

impl Episode {
    fn new(since: i64, until: i64, value: f64) -> Self {
        Self {
            since,
            until,
            peak: value,
            written: None,
        }
    }

    fn minutes(&self) -> i64 {
        (self.until - self.since) / MINUTE
    }

    fn extend(&mut self, until: i64, value: f64) {
        self.until = self.until.max(until);
        self.peak = self.peak.max(value);
    }

    /// Whether an ongoing episode should be written now: when it first qualifies, then
    /// at most hourly.
    fn due(&self, qualifies: bool) -> bool {
        match self.written {
            None => qualifies,
            Some(at) => self.until - at >= HOUR,
        }
    }
}

/// Where anomalies go, and whose they are.
pub struct Scope<'a> {
    /// The tenant.
    pub tenant: &'a TenantId,
    /// The office.
    pub office_id: &'a str,
    /// Thresholds.
    pub config: &'a FaultConfig,
    /// The tenant's share of capacity above which a room or office is in breach.
    pub breach_at: f64,
    /// Found anomalies are appended here.
    pub out: &'a mut Vec<Anomaly>,
}

/// What one kind of episode is, for writing it.
struct Finding<'a> {
    kind: AnomalyKind,
    entity_kind: EntityKind,
    entity_id: &'a str,
    room_id: &'a str,
    score: f64,
    severity: Severity,
    details: serde_json::Value,
}

impl Scope<'_> {
    fn write(&mut self, episode: &mut Episode, ongoing: bool, f: Finding<'_>) {
        episode.written = Some(episode.until);
        self.out.push(Anomaly {
            tenant: self.tenant.clone(),
            kind: f.kind,
            entity_kind: f.entity_kind,
            entity_id: f.entity_id.to_string(),
            office_id: self.office_id.to_string(),
            room_id: f.room_id.to_string(),
            window_start: episode.since,
            window_end: episode.until,
            score: f.score.clamp(0.0, 1.0),
            severity: f.severity,
            details: f.details.to_string(),
            ongoing,
        });
    }
}

/// A breach's severity: high from 25% over the threshold (`at` of capacity), medium
/// from 10% or once it lasted four times the minimum, low otherwise.
fn breach(
    episode: &Episode,
    capacity: u32,
    at: f64,
    minimum: i64,
) -> (f64, Severity, serde_json::Value) {
    let capacity = f64::from(capacity.max(1));
    // How far over the threshold (`at` of capacity) it went.
    let ratio = episode.peak / (capacity * at);
    let severity = if ratio >= 1.25 {
        Severity::High
    } else if ratio >= 1.1 || episode.minutes() >= 4 * minimum {
        Severity::Medium
    } else {
        Severity::Low
    };
    let details = json!({
        "capacity": capacity,
        "threshold": at,
        "peak_people": episode.peak,
        "minutes": episode.minutes(),
    });
    ((ratio - 1.0) * 2.0, severity, details)
}

/// What a room's readings have shown, as far as faults and breaches go.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct RoomWatch {
    capacity: u32,
    /// The newest reading's time, ms.
    last_seen: i64,
    over: Option<Episode>,
    implausible: Option<Episode>,
    /// Per sensor: the count it repeats, since when.
    stuck: Vec<(String, i32, Episode)>,
    silent: Option<Episode>,
}

impl RoomWatch {
    /// Whether the room is silent while its office reports.
    pub fn silent(&self) -> bool {
        self.silent.is_some()
    }

    /// Takes the readings of a final 15m window `[start, start + 15 min)`; runs that end
    /// are written if they qualified. `in_use` tells whether the office was in use for at
    /// least half of a span.
    pub fn readings(
        &mut self,
        window: &FinalReadings,
        start: i64,
        in_use: &dyn Fn(i64, i64) -> bool,
        scope: &mut Scope<'_>,
    ) {
        let room = &*window.room_id;
        self.capacity = window.capacity;
        let Some(first) = window.readings.first() else {
            return;
        };
        if let Some(mut silent) = self.silent.take() {
            silent.until = first.ts;
            if silent.written.is_some() {
                self.write_silent(&mut silent, false, room, scope);
            }
        }
        let capacity = f64::from(self.capacity);
        // Per minute (several sensors may share one), the room's mean count.
        let mut i = 0;
        let readings = &window.readings;
        let mut sum = 0.0;
        while i < readings.len() {
            let ts = readings[i].ts;
            let same: Vec<_> = readings[i..].iter().take_while(|r| r.ts == ts).collect();
            i += same.len();
            let people =
                same.iter().map(|r| f64::from(r.people_count)).sum::<f64>() / same.len() as f64;
            sum += people * same.len() as f64;
            self.last_seen = self.last_seen.max(ts);
            if people > capacity * scope.breach_at {
                self.over
                    .get_or_insert_with(|| Episode::new(ts, ts, people))
                    .extend(ts + MINUTE, people);
            } else if let Some(mut over) = self.over.take() {
                over.until = ts;
                self.end_breach(&mut over, room, scope);
            }
            for r in same {
                let sensor = &*r.sensor_id;
                match self.stuck.iter_mut().find(|(s, ..)| s == sensor) {
                    Some((_, value, run)) if *value == r.people_count => {
                        run.extend(ts + MINUTE, f64::from(*value))
                    }
                    Some(entry) => {
                        let (_, value, mut run) = std::mem::replace(
                            entry,
                            (
                                sensor.to_string(),
                                r.people_count,
                                Episode::new(ts, ts + MINUTE, f64::from(r.people_count)),
                            ),
                        );
                        run.until = ts;
                        end_stuck(sensor, value, &mut run, in_use, room, scope);
                    }
                    None => self.stuck.push((
                        sensor.to_string(),
                        r.people_count,
                        Episode::new(ts, ts + MINUTE, f64::from(r.people_count)),
                    )),
                }
            }
        }
        let mean = sum / readings.len() as f64;
        if mean > 1.5 * capacity {
            self.implausible
                .get_or_insert_with(|| Episode::new(start, start, mean))
                .extend(start + WINDOW, mean);
        } else if let Some(mut run) = self.implausible.take() {
            if run.written.is_some() || run.minutes() >= scope.config.implausible_minutes {
                self.write_implausible(&mut run, false, room, scope);
            }
        }
    }

    /// The room's office closed the 15m window ending at `end`: ongoing runs that qualify
    /// are written, and a room silent while its office reports becomes an anomaly (its
    /// runs end with its last reading).
    pub fn check(
        &mut self,
        room: &str,
        end: i64,
        office_reports: bool,
        in_use: &dyn Fn(i64, i64) -> bool,
        scope: &mut Scope<'_>,
    ) {
        let config = scope.config.clone();
        let silent = self.last_seen > 0
            && office_reports
            && end - self.last_seen >= config.silent_minutes * MINUTE;
        if silent {
            if let Some(mut over) = self.over.take() {
                self.end_breach(&mut over, room, scope);
            }
            if let Some(mut run) = self.implausible.take() {
                if run.written.is_some() || run.minutes() >= config.implausible_minutes {
                    self.write_implausible(&mut run, false, room, scope);
                }
            }
            for (sensor, value, mut run) in std::mem::take(&mut self.stuck) {
                end_stuck(&sensor, value, &mut run, in_use, room, scope);
            }
        }
        if let Some(mut over) = self.over.take() {
            if over.due(over.minutes() >= config.breach_minutes) {
                self.write_breach(&mut over, true, room, scope);
            }
            self.over = Some(over);
        }
        if let Some(mut run) = self.implausible.take() {
            if run.due(run.minutes() >= config.implausible_minutes) {
                self.write_implausible(&mut run, true, room, scope);
            }
            self.implausible = Some(run);
        }
        for (sensor, value, run) in &mut self.stuck {
            let qualifies =
                *value > 0 && run.minutes() >= config.stuck_minutes && in_use(run.since, run.until);
            if run.due(qualifies) {
                let finding = stuck(sensor, *value, run, room, &config);
                scope.write(run, true, finding);
            }
        }
        if silent {
            let mut silent = self
                .silent
                .take()
                .unwrap_or_else(|| Episode::new(self.last_seen + MINUTE, end, 0.0));
            silent.until = end;
            if silent.due(true) {
                self.write_silent(&mut silent, true, room, scope);
            }
            self.silent = Some(silent);
        }
    }

    fn end_breach(&mut self, over: &mut Episode, room: &str, scope: &mut Scope<'_>) {
        if over.written.is_some() || over.minutes() >= scope.config.breach_minutes {
            self.write_breach(over, false, room, scope);
        }
    }

    fn write_breach(&self, over: &mut Episode, ongoing: bool, room: &str, scope: &mut Scope<'_>) {
        let (score, severity, details) = breach(
            over,
            self.capacity,
            scope.breach_at,
            scope.config.breach_minutes,
        );
        let finding = Finding {
            kind: AnomalyKind::CapacityBreach,
            entity_kind: EntityKind::Room,
            entity_id: room,
            room_id: room,
            score,
            severity,
            details,
        };
        scope.write(over, ongoing, finding);
    }

    fn write_implausible(
        &self,
        run: &mut Episode,
        ongoing: bool,
        room: &str,
        scope: &mut Scope<'_>,
    ) {
        let capacity = f64::from(self.capacity.max(1));
        let finding = Finding {
            kind: AnomalyKind::ImplausibleValue,
            entity_kind: EntityKind::Room,
            entity_id: room,
            room_id: room,
            score: run.peak / capacity / 3.0,
            severity: Severity::High,
            details: json!({
                "capacity": self.capacity,
                "peak_mean_people": run.peak,
                "minutes": run.minutes(),
            }),
        };
        scope.write(run, ongoing, finding);
    }

    fn write_silent(&self, silent: &mut Episode, ongoing: bool, room: &str, scope: &mut Scope<'_>) {
        let minutes = silent.minutes();
        let finding = Finding {
            kind: AnomalyKind::SilentSensor,
            entity_kind: EntityKind::Room,
            entity_id: room,
            room_id: room,
            score: minutes as f64 / (4 * scope.config.silent_minutes) as f64,
            severity: if minutes >= 24 * 60 {
                Severity::High
            } else {
                Severity::Medium
            },
            details: json!({ "last_reading": self.last_seen, "minutes": minutes }),
        };
        scope.write(silent, ongoing, finding);
    }
}

/// A sensor's run of one count ended: written if it had been, or if it qualifies.
fn end_stuck(
    sensor: &str,
    value: i32,
    run: &mut Episode,
    in_use: &dyn Fn(i64, i64) -> bool,
    room: &str,
    scope: &mut Scope<'_>,
) {
    let qualifies =
        value > 0 && run.minutes() >= scope.config.stuck_minutes && in_use(run.since, run.until);
    if run.written.is_some() || qualifies {
        let finding = stuck(sensor, value, run, room, scope.config);
        scope.write(run, false, finding);
    }
}

fn stuck<'a>(
    sensor: &'a str,
    value: i32,
    run: &Episode,
    room: &'a str,
    config: &FaultConfig,
) -> Finding<'a> {
    let minutes = run.minutes();
    Finding {
        kind: AnomalyKind::StuckSensor,
        entity_kind: EntityKind::Sensor,
        entity_id: sensor,
        room_id: room,
        score: minutes as f64 / (2 * config.stuck_minutes) as f64,
        severity: if minutes >= 4 * config.stuck_minutes {
            Severity::High
        } else {
            Severity::Medium
        },
        details: json!({ "people_count": value, "minutes": minutes }),
    }
}

/// What an office's final 15m windows have shown.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct OfficeWatch {
    /// Recent 15m windows: (start, whether anyone was in).
    in_use: VecDeque<(i64, bool)>,
    over: Option<Episode>,
}

/// The office row of a final 15m window, as the watch needs it.
pub struct OfficeWindow {
    /// Window start, ms.
    pub start: i64,
    /// Sum of the rooms' mean counts.
    pub avg_people: f64,
    /// The peak minute: an episode's severity follows its highest.
    pub peak_people: f64,
    /// Capacity of the reporting rooms.
    pub capacity: u32,
    /// Whether none of its rooms is silent: a silent room's capacity is missing from
    /// `capacity`, so the office's breaches are not judged meanwhile.
    pub complete: bool,
}

impl OfficeWatch {
    /// Whether the office was in use (someone in) for at least half of its recent 15m
    /// windows in `[since, until)`.
    pub fn in_use(&self, since: i64, until: i64) -> bool {
        let windows = self
            .in_use
            .iter()
            .filter(|(start, _)| *start + WINDOW > since && *start < until);
        let (used, all) = windows.fold((0, 0), |(u, a), (_, used)| (u + usize::from(*used), a + 1));
        all > 0 && 2 * used >= all
    }

    /// Takes the office's final 15m window; an office above the tenant's breach threshold
    /// (capacity, unless it says otherwise) for the configured minutes is an anomaly.
    pub fn window(&mut self, w: &OfficeWindow, scope: &mut Scope<'_>) {
        let keep = (scope.config.stuck_minutes / 15 + 4).max(96) as usize;
        self.in_use.push_back((w.start, w.avg_people >= 1.0));
        while self.in_use.len() > keep {
            self.in_use.pop_front();
        }
        let office = scope.office_id.to_string();
        let minimum = scope.config.breach_minutes;
        let end = w.start + WINDOW;
        let over = w.complete && w.avg_people > f64::from(w.capacity) * scope.breach_at;
        let mut episode = match (self.over.take(), over) {
            (Some(mut e), true) => {
                e.extend(end, w.peak_people);
                e
            }
            (None, true) => Episode::new(w.start, end, w.peak_people),
            (Some(mut e), false) => {
                if e.written.is_some() || e.minutes() >= minimum {
                    let (score, severity, details) =
                        breach(&e, w.capacity, scope.breach_at, minimum);
                    scope.write(
                        &mut e,
                        false,
                        office_breach(&office, score, severity, details),
                    );
                }
                return;
            }
            (None, false) => return,
        };
        if episode.due(episode.minutes() >= minimum) {
            let (score, severity, details) = breach(&episode, w.capacity, scope.breach_at, minimum);
            scope.write(
                &mut episode,
                true,
                office_breach(&office, score, severity, details),
            );
        }
        self.over = Some(episode);
    }
}

fn office_breach(
    office: &str,
    score: f64,
    severity: Severity,
    details: serde_json::Value,
) -> Finding<'_> {
    Finding {
        kind: AnomalyKind::CapacityBreach,
        entity_kind: EntityKind::Office,
        entity_id: office,
        room_id: "",
        score,
        severity,
        details,
    }
}
