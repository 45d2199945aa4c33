//! Anomalies and forecasts, incrementally: the state machine behind the `Analyze`
//! operator. It reads what the aggregation emits and adds to it:
//!
//! - per room and office, a detector of hourly occupancy ([`Detector`]: daily and weekly
//!   seasons in the office's time zone) and a model of the daily peak (7 days of the
//!   week); each final `1h` row is judged by the detector ([`baseline`]) before it learns
//!   from it, and each final `1h` / `1d` row issues the next 14 days of hours / 13 weeks
//!   of days when it is recent (a replay of a backlog issues none). The hourly forecast
//!   is the one validation chose ([`forecast::choose_among`], the fast candidates: naive,
//!   seasonal naive of a day and a week, and the detector's weekly smoothing), re-chosen
//!   once a week per entity, on the last six weeks of its hours; the daily peak's alike
//!   (seasonal naive of a week and the 7-day smoothing), on its last half year of days
//!   once eight weeks were seen;
//! - sensor faults and capacity breaches from the final 15m windows ([`faults`]);
//! - the states of the models that changed, to persist in the same epoch as the rows
//!   they learnt from: a restart restores them (a worker takes an office's states when it
//!   first sees the office), and a replayed row is not learnt twice (models skip slots
//!   they have seen).
//!
//! Offices are keyed to one partition, so one worker sees all of an office and its rooms.

pub mod baseline;
pub mod faults;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Offset, TimeZone};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use rf_schemas::TenantId;

use crate::Granularity;
use crate::HashMap;
use crate::{
    Anomaly, AnomalyKind, EntityKind, FinalReadings, ForecastPoint, ForecastSeries, ModelState,
    OfficeRow, Output, RoomRow,
};
use faults::{FaultConfig, OfficeWatch, OfficeWindow, RoomWatch, Scope};
use rf_models::detect::Detector;
use rf_models::forecast::{self, Candidates, Choice, Method};
use rf_models::history::History;
use rf_models::online::Forecaster;

const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;

/// Settings of the analysis.
#[derive(Clone, Debug)]
pub struct AnalyzeConfig {
    /// Thresholds of faults and breaches.
    pub faults: FaultConfig,
    /// Hours forecast ahead (14 days).
    pub forecast_hours: usize,
    /// Days forecast ahead (13 weeks).
    pub forecast_days: usize,
    /// A room's hourly forecast is issued every this many hours (at local hours that are
    /// multiples of it); an office's every hour. Each issue is 336 rows.
    pub room_forecast_every_hours: i64,
    /// Forecasts are issued for windows that ended at most this long before now, ms.
    pub forecast_within_ms: i64,
    /// Pass the final readings on to the sinks (`pipeline.store_readings`).
    pub keep_readings: bool,
    /// A room or office with no data for this long (event time) leaves memory; its
    /// state stays persisted.
    pub retire_after_ms: i64,
    /// Each tenant's capacity-breach threshold (see [`BreachThresholds`]).
    pub breach_at: BreachThresholds,
}

/// Per tenant, the share of capacity above which a room or office is in breach: 1 (over
/// capacity) unless its registry entry says otherwise. Shared with the pipeline, which
/// updates it as it reads the registry.
#[derive(Clone, Debug, Default)]
pub struct BreachThresholds(Arc<std::sync::RwLock<HashMap<TenantId, f64>>>);

impl BreachThresholds {
    /// Replaces every tenant's threshold.
    pub fn set<S>(&self, thresholds: std::collections::HashMap<TenantId, f64, S>) {
        *self.0.write().expect("no panics while holding it") = thresholds.into_iter().collect();
    }

    /// `tenant`'s threshold.
    pub fn of(&self, tenant: &TenantId) -> f64 {
        let thresholds = self.0.read().expect("no panics while holding it");
        thresholds.get(tenant).copied().unwrap_or(1.0)
    }
}

impl Default for AnalyzeConfig {
    fn default() -> Self {
        Self {
            faults: FaultConfig::default(),
            forecast_hours: 14 * 24,
            forecast_days: 13 * 7,
            room_forecast_every_hours: 6,
            forecast_within_ms: 6 * HOUR,
            keep_readings: true,
            retire_after_ms: 28 * DAY,
            breach_at: BreachThresholds::default(),
        }
    }
}

/// Model states persisted before a restart, by tenant and office, until a worker takes
/// them.
#[derive(Clone, Debug, Default)]
pub struct Restored(Arc<Mutex<HashMap<OfficeKey, Vec<ModelState>>>>);

/// A tenant's office.
type OfficeKey = (TenantId, String);

impl Restored {
    /// Adds a persisted state.
    pub fn insert(&self, state: ModelState) {
        let mut states = self.0.lock().expect("no panics while holding it");
        let key = (state.tenant.clone(), state.office_id.clone());
        states.entry(key).or_default().push(state);
    }

    /// States not taken yet.
    pub fn len(&self) -> usize {
        let states = self.0.lock().expect("no panics while holding it");
        states.values().map(Vec::len).sum()
    }

    /// Whether every state was taken.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn take(&self, tenant: &TenantId, office: &str) -> Vec<ModelState> {
        let mut states = self.0.lock().expect("no panics while holding it");
        states
            .remove(&(tenant.clone(), office.to_string()))
            .unwrap_or_default()
    }
}

/// The seasons of hourly occupancy: a day and a week.
const SEASONS: [usize; 2] = [24, 168];
/// Hours kept to validate forecasts on: six weeks.
const HISTORY_HOURS: usize = 6 * 168;
/// Hours ahead a forecast is validated for, and hours between choices.
const VALIDATED_HOURS: usize = 168;
const CHOICE_EVERY_HOURS: i64 = 168;

fn hours_history() -> History {
    History::new(HISTORY_HOURS)
}

/// Daily peaks: kept for half a year, validated four weeks ahead, chosen weekly once
/// eight weeks were seen.
const HISTORY_DAYS: usize = 182;
const VALIDATED_DAYS: usize = 28;
const CHOICE_EVERY_DAYS: i64 = 7;
const CHOICE_FROM_DAYS: usize = 56;

fn days_history() -> History {
    History::new(HISTORY_DAYS)
}

/// What one room or office has learnt.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Entity {
    office_id: String,
    /// The hourly detector; its weekly model is also the smoothing forecast. `None`
    /// only in a state persisted by an earlier version, until it is first used.
    #[serde(default)]
    detector: Option<Detector>,
    /// The weekly model an earlier version persisted instead: the detector takes it.
    #[serde(default, skip_serializing)]
    hourly: Option<Forecaster>,
    daily: Forecaster,
    /// How the hourly forecast is made, and the local hour it was chosen at (offset by
    /// the entity's own jitter, so that not every room chooses in the same hour).
    #[serde(default)]
    choice: Option<Choice>,
    #[serde(default)]
    chosen_at: Option<i64>,
    /// The last hours, to validate the next choice on (not persisted: after a restart
    /// the persisted choice serves until enough hours came again).
    #[serde(skip, default = "hours_history")]
    history: History,
    /// The same for the daily peak.
    #[serde(default)]
    daily_choice: Option<Choice>,
    #[serde(default)]
    daily_chosen_at: Option<i64>,
    #[serde(skip, default = "days_history")]
    days: History,
    watch: Watch,
    /// The newest event time its state changed at, ms: the persisted state's version.
    version: i64,
    /// The newest event time it had data, ms.
    active: i64,
    #[serde(skip)]
    dirty: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
enum Watch {
    Room(RoomWatch),
    Office(OfficeWatch),
}

impl Entity {
    fn new(kind: EntityKind, office_id: &str) -> Self {
        Self {
            office_id: office_id.to_string(),
            detector: None,
            hourly: None,
            daily: Forecaster::new(7),
            choice: None,
            chosen_at: None,
            history: hours_history(),
            daily_choice: None,
            daily_chosen_at: None,
            days: days_history(),
            watch: match kind {
                EntityKind::Office => Watch::Office(OfficeWatch::default()),
                _ => Watch::Room(RoomWatch::default()),
            },
            version: 0,
            active: 0,
            dirty: false,
        }
    }

    /// The hourly detector, judging with spreads of at least `floor`: spikes, drops and
    /// level shifts (stuck and silent sensors are watched at the minute, [`faults`]).
    fn detector(&mut self, floor: f64) -> &mut Detector {
        let old = &mut self.hourly;
        let detector = self.detector.get_or_insert_with(|| {
            match old.take() {
                Some(weekly) => Detector::resume(&SEASONS, floor, weekly),
                None => Detector::new(&SEASONS, floor),
            }
            .without_runs()
            .with_warmup(168)
        });
        detector.set_floor(floor);
        detector
    }

    fn changed(&mut self, at: i64, data: bool) {
        self.version = self.version.max(at);
        if data {
            self.active = self.active.max(at);
        }
        self.dirty = true;
    }
}

#[derive(Default)]
struct TenantAnalysis {
    /// Each office's time zone, from its rooms' metadata.
    zones: HashMap<String, Tz>,
    rooms: HashMap<String, Entity>,
    offices: HashMap<String, Entity>,
    /// Rooms in memory, by office.
    office_rooms: HashMap<String, BTreeSet<String>>,
    /// Offices whose restored states were taken.
    claimed: BTreeSet<String>,
    /// Changed since the last flush.
    dirty: Vec<(EntityKind, String)>,
    /// The newest event time seen, and when entities were last retired.
    newest: i64,
    retired: i64,
}

/// The analysis of one worker's rooms and offices.
pub struct Analyzer {
    config: AnalyzeConfig,
    tenants: HashMap<TenantId, TenantAnalysis>,
    restored: Restored,
    /// The wall clock, ms (a parameter for tests).
    now: fn() -> i64,
}

fn wall_clock() -> i64 {
    rf_schemas::unix_ms()
}

/// The local hour of `ts` in `tz`, counted from the Unix epoch: its position in the
/// week is the model's slot.
pub fn local_hour(ts: i64, tz: Tz) -> i64 {
    (ts / 1000 + offset_secs(ts, tz)).div_euclid(3600)
}

/// The local date of `ts` in `tz`, as days from 1970-01-01.
pub fn local_day(ts: i64, tz: Tz) -> i64 {
    (ts / 1000 + offset_secs(ts, tz)).div_euclid(86_400)
}

fn offset_secs(ts: i64, tz: Tz) -> i64 {
    let utc = DateTime::from_timestamp_millis(ts).unwrap_or_default();
    i64::from(
        tz.offset_from_utc_datetime(&utc.naive_utc())
            .fix()
            .local_minus_utc(),
    )
}

impl Analyzer {
    /// An analyzer that restores persisted states from `restored`.
    pub fn new(config: AnalyzeConfig, restored: Restored) -> Self {
        Self {
            config,
            tenants: HashMap::default(),
            restored,
            now: wall_clock,
        }
    }

    /// The same, with `now` as the wall clock.
    pub fn with_clock(mut self, now: fn() -> i64) -> Self {
        self.now = now;
        self
    }

    /// Takes one output of the aggregation: passes it on (final readings only when they
    /// are kept) and appends what it reveals.
    pub fn apply(&mut self, output: Output, out: &mut Vec<Output>) {
        match &output {
            Output::RoomVersion(tenant, v) => {
                let t = self.tenants.entry(tenant.clone()).or_default();
                t.zones.insert(v.office_id.clone(), v.timezone);
            }
            Output::Room(r) if r.is_final => self.room_row(r, out),
            Output::Office(o) if o.is_final => self.office_row(o, out),
            Output::Readings(w) => {
                self.readings(w, out);
                if !self.config.keep_readings {
                    return;
                }
            }
            _ => {}
        }
        out.push(output);
    }

    /// Appends the states of the models changed since the last flush.
    pub fn flush(&mut self, out: &mut Vec<Output>) {
        for (tenant, t) in &mut self.tenants {
            for (kind, id) in std::mem::take(&mut t.dirty) {
                let entities = match kind {
                    EntityKind::Office => &mut t.offices,
                    _ => &mut t.rooms,
                };
                let Some(e) = entities.get_mut(&id).filter(|e| e.dirty) else {
                    continue;
                };
                e.dirty = false;
                let state = serde_json::to_string(&*e).expect("states serialize");
                out.push(Output::Model(ModelState {
                    tenant: tenant.clone(),
                    entity_kind: kind,
                    entity_id: id,
                    office_id: e.office_id.clone(),
                    version: e.version.max(0) as u64,
                    state,
                }));
            }
            retire(t, self.config.retire_after_ms);
        }
    }

    /// Rooms and offices in memory.
    pub fn size(&self) -> usize {
        self.tenants
            .values()
            .map(|t| t.rooms.len() + t.offices.len())
            .sum()
    }

    fn tenant(&mut self, tenant: &TenantId, office: &str) -> &mut TenantAnalysis {
        let t = self.tenants.entry(tenant.clone()).or_default();
        if !t.claimed.contains(office) {
            t.claimed.insert(office.to_string());
            for state in self.restored.take(tenant, office) {
                restore(t, state);
            }
        }
        t
    }

    fn room_row(&mut self, r: &RoomRow, out: &mut Vec<Output>) {
        let value = match r.granularity {
            Granularity::M15 => return,
            Granularity::H1 => r.avg_people,
            Granularity::D1 => f64::from(r.peak_people),
        };
        let row = Closed {
            tenant: &r.tenant,
            kind: EntityKind::Room,
            id: &r.room_id,
            office_id: &r.office_id,
            granularity: r.granularity,
            start: r.window_start,
            end: r.window_end,
            value,
            capacity: r.capacity,
        };
        self.closed(row, out);
    }

    fn office_row(&mut self, o: &OfficeRow, out: &mut Vec<Output>) {
        let value = match o.granularity {
            Granularity::M15 => return self.office_window(o, out),
            Granularity::H1 => o.avg_people,
            Granularity::D1 => o.peak_people,
        };
        let row = Closed {
            tenant: &o.tenant,
            kind: EntityKind::Office,
            id: &o.office_id,
            office_id: &o.office_id,
            granularity: o.granularity,
            start: o.window_start,
            end: o.window_end,
            value,
            capacity: o.capacity,
        };
        self.closed(row, out);
    }

    /// A final hour or day of a room or office: judged, learnt, and forecast onwards.
    fn closed(&mut self, row: Closed<'_>, out: &mut Vec<Output>) {
        let live = row.end >= (self.now)() - self.config.forecast_within_ms;
        let (hours, days) = (self.config.forecast_hours, self.config.forecast_days);
        let every = self.config.room_forecast_every_hours.max(1);
        let t = self.tenant(row.tenant, row.office_id);
        let tz = t.zones.get(row.office_id).copied().unwrap_or(Tz::UTC);
        t.newest = t.newest.max(row.end);
        let e = entity(t, row.kind, row.id, row.office_id);
        e.changed(row.end, true);
        let series = if row.granularity == Granularity::H1 {
            let slot = local_hour(row.start, tz);
            let floor = baseline::floor(row.capacity);
            let judged = e.detector(floor).step_sparse(slot, row.value);
            e.history.push(slot, row.value);
            let found = judged
                .filter(|j| !j.warmup)
                .and_then(|j| Some((j, baseline::severity(j.score)?)));
            if let Some((j, severity)) = found {
                out.push(Output::Anomaly(Anomaly {
                    tenant: row.tenant.clone(),
                    kind: AnomalyKind::Occupancy,
                    entity_kind: row.kind,
                    entity_id: row.id.to_string(),
                    office_id: row.office_id.to_string(),
                    room_id: room_of(row.kind, row.id),
                    window_start: row.start,
                    window_end: row.end,
                    score: j.score,
                    severity,
                    details: baseline::details(row.value, &j),
                    ongoing: false,
                }));
            }
            let due = row.kind == EntityKind::Office || (slot + 1) % every == 0;
            (live && due).then(|| hourly_points(e, row.id, slot, row.end, hours, tz))
        } else {
            let floor = baseline::floor(row.capacity);
            let day = local_day(row.start, tz);
            e.daily.observe_robust(day, row.value, floor);
            e.days.push(day, row.value);
            live.then(|| daily_points(e, row.id, day, row.end, days, tz))
        };
        if let Some(points) = series.filter(|p| !p.is_empty()) {
            out.push(Output::Forecast(ForecastSeries {
                tenant: row.tenant.clone(),
                granularity: row.granularity,
                entity_kind: row.kind,
                entity_id: row.id.to_string(),
                office_id: row.office_id.to_string(),
                issued_at: row.end,
                points,
            }));
        }
        mark(t, row.kind, row.id);
    }

    fn readings(&mut self, w: &FinalReadings, out: &mut Vec<Output>) {
        let Some(first) = w.readings.first() else {
            return;
        };
        let (start, _) = Granularity::M15.window(first.ts, Tz::UTC);
        let config = self.config.faults.clone();
        let breach_at = self.config.breach_at.of(&w.tenant);
        let t = self.tenant(&w.tenant, &w.office_id);
        let office = t.offices.get(&*w.office_id).map(|o| match &o.watch {
            Watch::Office(watch) => watch.clone(),
            Watch::Room(_) => OfficeWatch::default(),
        });
        let office = office.unwrap_or_default();
        let end = start + 15 * 60_000;
        let e = entity(t, EntityKind::Room, &w.room_id, &w.office_id);
        e.active = e.active.max(end);
        let mut found = Vec::new();
        if let Watch::Room(watch) = &mut e.watch {
            let mut scope = Scope {
                tenant: &w.tenant,
                office_id: &w.office_id,
                config: &config,
                breach_at,
                out: &mut found,
            };
            watch.readings(w, start, &|a, b| office.in_use(a, b), &mut scope);
        }
        // The runs in between are persisted with the hourly model (a restart may restart
        // a run that was not written yet: that delays it, never repeats it).
        if !found.is_empty() {
            e.changed(end, true);
            mark(t, EntityKind::Room, &w.room_id);
        }
        out.extend(found.into_iter().map(Output::Anomaly));
    }

    /// An office's final 15m window: its own breach, and its rooms' faults.
    fn office_window(&mut self, o: &OfficeRow, out: &mut Vec<Output>) {
        let config = self.config.faults.clone();
        let breach_at = self.config.breach_at.of(&o.tenant);
        let t = self.tenant(&o.tenant, &o.office_id);
        let rooms = t
            .office_rooms
            .get(&o.office_id)
            .cloned()
            .unwrap_or_default();
        let complete = !rooms.iter().any(|id| {
            t.rooms
                .get(id)
                .is_some_and(|e| matches!(&e.watch, Watch::Room(r) if r.silent()))
        });
        let mut found = Vec::new();
        let mut scope = Scope {
            tenant: &o.tenant,
            office_id: &o.office_id,
            config: &config,
            breach_at,
            out: &mut found,
        };
        let e = entity(t, EntityKind::Office, &o.office_id, &o.office_id);
        e.active = e.active.max(o.window_end);
        let Watch::Office(watch) = &mut e.watch else {
            return;
        };
        let window = OfficeWindow {
            start: o.window_start,
            avg_people: o.avg_people,
            peak_people: o.peak_people,
            capacity: o.capacity,
            complete,
        };
        watch.window(&window, &mut scope);
        let watch = watch.clone();
        if !scope.out.is_empty() {
            e.changed(o.window_end, true);
            mark(t, EntityKind::Office, &o.office_id);
        }
        for room in rooms {
            let Some(e) = t.rooms.get_mut(&room) else {
                continue;
            };
            let Watch::Room(r) = &mut e.watch else {
                continue;
            };
            let before = scope.out.len();
            let reports = o.rooms_reporting > 0;
            r.check(
                &room,
                o.window_end,
                reports,
                &|a, b| watch.in_use(a, b),
                &mut scope,
            );
            if scope.out.len() > before {
                e.changed(o.window_end, false);
                mark(t, EntityKind::Room, &room);
            }
        }
        out.extend(found.into_iter().map(Output::Anomaly));
    }
}

/// A final window of a room or office, as the models need it.
struct Closed<'a> {
    tenant: &'a TenantId,
    kind: EntityKind,
    id: &'a str,
    office_id: &'a str,
    granularity: Granularity,
    start: i64,
    end: i64,
    value: f64,
    capacity: u32,
}

fn room_of(kind: EntityKind, id: &str) -> String {
    match kind {
        EntityKind::Office => String::new(),
        _ => id.to_string(),
    }
}

fn entity<'t>(
    t: &'t mut TenantAnalysis,
    kind: EntityKind,
    id: &str,
    office: &str,
) -> &'t mut Entity {
    let entities = match kind {
        EntityKind::Office => &mut t.offices,
        _ => {
            t.office_rooms
                .entry(office.to_string())
                .or_default()
                .insert(id.to_string());
            &mut t.rooms
        }
    };
    if !entities.contains_key(id) {
        entities.insert(id.to_string(), Entity::new(kind, office));
    }
    entities.get_mut(id).expect("just inserted")
}

fn mark(t: &mut TenantAnalysis, kind: EntityKind, id: &str) {
    t.dirty.push((kind, id.to_string()));
}

fn restore(t: &mut TenantAnalysis, state: ModelState) {
    let entity: Entity = match serde_json::from_str(&state.state) {
        Ok(e) => e,
        Err(error) => {
            // An unreadable state is relearnt; the rows it learnt from are not lost.
            tracing::warn!(tenant = %state.tenant, entity = %state.entity_id, %error, "a persisted model state is unreadable; it is learnt again");
            return;
        }
    };
    match state.entity_kind {
        EntityKind::Office => {
            t.offices.insert(state.entity_id, entity);
        }
        _ => {
            t.office_rooms
                .entry(entity.office_id.clone())
                .or_default()
                .insert(state.entity_id.clone());
            t.rooms.insert(state.entity_id, entity);
        }
    }
}

/// Once a day of event time: rooms and offices without data for the retirement period
/// leave memory (their states were flushed).
fn retire(t: &mut TenantAnalysis, after: i64) {
    if t.newest - t.retired < DAY {
        return;
    }
    t.retired = t.newest;
    let cutoff = t.newest - after;
    t.rooms.retain(|_, e| e.dirty || e.active >= cutoff);
    t.offices.retain(|_, e| e.dirty || e.active >= cutoff);
    let rooms = &t.rooms;
    for ids in t.office_rooms.values_mut() {
        ids.retain(|id| rooms.contains_key(id));
    }
    t.office_rooms.retain(|_, ids| !ids.is_empty());
}

/// The next `hours` UTC hours after `end` (the end of local hour `last`), each forecast
/// for its local hour: with the validated choice once the entity has one (re-chosen
/// once a week), else with its weekly smoothing's own intervals.
fn hourly_points(
    e: &mut Entity,
    id: &str,
    last: i64,
    end: i64,
    hours: usize,
    tz: Tz,
) -> Vec<ForecastPoint> {
    let values = e.history.values();
    // Validated only with both seasons (two weeks of hours), so that the smoothing
    // validated is the weekly one that forecasts.
    if values.len() >= 2 * SEASONS[1] {
        let every = CHOICE_EVERY_HOURS;
        let due = Due { id, last, every };
        due.choose(
            &mut e.choice,
            &mut e.chosen_at,
            &values,
            &SEASONS,
            VALIDATED_HOURS,
        );
    }
    // Local hours repeat or skip at a change of time: a few steps more than hours.
    let steps = hours + 2;
    let Some(detector) = &e.detector else {
        return Vec::new();
    };
    // Before a whole week, its forecast is the mean so far with the spread so far.
    let weekly = detector.model(168).filter(|m| m.last() == Some(last));
    let chosen = chosen_points(e.choice.as_ref(), &values, &SEASONS, weekly, steps);
    let at = |h: i64| -> Option<(f64, f64, f64)> {
        let start = end + h * HOUR;
        let slot = local_hour(start, tz);
        match &chosen {
            Some(points) => {
                let p = points.get(usize::try_from(slot - last - 1).ok()?)?;
                Some((p.mean, p.low, p.high))
            }
            None => {
                let f = weekly?.at(slot)?;
                Some((f.mean, f.low, f.high))
            }
        }
    };
    (0..hours as i64)
        .filter_map(|h| {
            let (expected, low, high) = at(h)?;
            let start = end + h * HOUR;
            Some(ForecastPoint {
                start,
                end: start + HOUR,
                expected: expected.max(0.0),
                low: low.max(0.0),
                high: high.max(0.0),
            })
        })
        .collect()
}

/// One chosen method's next `steps` steps: smoothing from the live model of the longest
/// season (it has learnt every step so far), the others from the recent steps.
fn method_points(
    method: Method,
    values: &[f64],
    seasons: &[usize],
    smoothing: Option<&Forecaster>,
    steps: usize,
) -> Option<Vec<f64>> {
    match method {
        Method::Smoothing => Some(smoothing?.forecast(steps).iter().map(|f| f.mean).collect()),
        Method::SeasonalNaive(_) | Method::Naive => method.point(values, seasons, steps),
        Method::Ets | Method::Mstl(_) => None,
    }
}

/// When an entity's forecast is chosen again: `every` steps after the last choice.
/// The first choice is dated back by the entity's own jitter (FNV-1a of its id), so
/// that the next ones spread over the period rather than all falling in one hour.
struct Due<'a> {
    id: &'a str,
    last: i64,
    every: i64,
}

impl Due<'_> {
    fn choose(
        &self,
        choice: &mut Option<Choice>,
        chosen_at: &mut Option<i64>,
        values: &[f64],
        seasons: &[usize],
        validated: usize,
    ) {
        if chosen_at.is_some_and(|at| self.last - at < self.every) {
            return;
        }
        let Some(chosen) = forecast::choose_among(values, seasons, validated, Candidates::Fast)
        else {
            return;
        };
        let jitter = match chosen_at {
            Some(_) => 0,
            None => {
                let hash = self.id.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                    (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
                });
                (hash % self.every as u64) as i64
            }
        };
        *choice = Some(chosen);
        *chosen_at = Some(self.last - jitter);
    }
}

/// The chosen methods' next `steps` points, combined with the validated intervals;
/// `None` without a choice or when a method cannot forecast yet.
fn chosen_points(
    choice: Option<&Choice>,
    values: &[f64],
    seasons: &[usize],
    smoothing: Option<&Forecaster>,
    steps: usize,
) -> Option<Vec<forecast::Point>> {
    let choice = choice?;
    let fits: Option<Vec<Vec<f64>>> = choice
        .methods
        .iter()
        .map(|m| method_points(*m, values, seasons, smoothing, steps))
        .collect();
    let points = choice.combine(&fits?);
    (points.len() == steps).then_some(points)
}
/// The next `days` local days from `end` (a local midnight).
fn daily_points(
    e: &mut Entity,
    id: &str,
    last: i64,
    end: i64,
    days: usize,
    tz: Tz,
) -> Vec<ForecastPoint> {
    let values = e.days.values();
    if values.len() >= CHOICE_FROM_DAYS {
        let due = Due {
            id,
            last,
            every: CHOICE_EVERY_DAYS,
        };
        let (choice, at) = (&mut e.daily_choice, &mut e.daily_chosen_at);
        due.choose(choice, at, &values, &[7], VALIDATED_DAYS);
    }
    let model = Some(&e.daily).filter(|m| m.last() == Some(last));
    let chosen = chosen_points(e.daily_choice.as_ref(), &values, &[7], model, days);
    let predictor = e.daily.predictor();
    let mut points = Vec::with_capacity(days);
    let mut start = end;
    for _ in 0..days {
        let (s, e) = Granularity::D1.window(start, tz);
        let day = local_day(s, tz);
        let forecast = match &chosen {
            Some(chosen) => usize::try_from(day - last - 1)
                .ok()
                .and_then(|i| chosen.get(i))
                .map(|p| (p.mean, p.low, p.high)),
            None => predictor(day).map(|f| (f.mean, f.low, f.high)),
        };
        if let Some((expected, low, high)) = forecast {
            points.push(ForecastPoint {
                start: s,
                end: e,
                expected: expected.max(0.0),
                low: low.max(0.0),
                high: high.max(0.0),
            });
        }
        start = e;
    }
    points
}
