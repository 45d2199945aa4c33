//! Bookings set against occupancy: booked, booked-and-used, ghost and used-without-booking
//! minutes, and no-shows, per room and office, in 15m, 1h and 1d windows.
//!
//! [`BookingUsage`] follows the aggregation's outputs on the same worker. The counted
//! readings of each final 15m window ([`Output::Readings`]) become two 15-bit masks of
//! the room's minutes: reported (a reading fell in it) and used (a reading saw somebody).
//! Booking versions ([`Output::Booking`], every worker reads every bookings partition)
//! become each room's active bookings. A window's row is written once the watermark of
//! the partition holding its office has passed it by the allowed lateness; a booking
//! moved or cancelled later rewrites the rows of the windows it left and entered, with a
//! higher version, exactly like a late reading. Masks are kept for `horizon_ms` behind
//! the watermark: bounded memory, and how far back a booking may still change.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

use chrono_tz::Tz;
use rf_schemas::rows::{BookingEvent, BookingUsageRow, DeadLetter, FinalReadings, Topic};
use rf_schemas::{Booking, DeadLetterReason, Granularity, RoomKind, TenantId};

use crate::{HashMap, Output};

const MINUTE: i64 = 60_000;
const QUARTER: i64 = 15 * MINUTE;
const HOUR: i64 = 60 * MINUTE;
/// A meeting is a no-show when nobody was seen in this many of its first minutes.
pub const NO_SHOW_MINUTES: i64 = 15;

/// Settings of the bookings operator.
#[derive(Clone, Debug)]
pub struct BookingsConfig {
    /// The aggregation's: a window is final this long after its end.
    pub allowed_lateness_ms: i64,
    /// How long the minutes of final windows are kept: how far back a booking may still
    /// be moved or cancelled and its windows rewritten.
    pub horizon_ms: i64,
}

impl Default for BookingsConfig {
    fn default() -> Self {
        Self {
            allowed_lateness_ms: 5 * MINUTE,
            horizon_ms: 7 * 24 * 3_600_000,
        }
    }
}

/// The bookings state of one worker.
#[derive(Debug)]
pub struct BookingUsage {
    config: BookingsConfig,
    tenants: HashMap<TenantId, Tenant>,
    last_version: u64,
    restored: Arc<RestoredMinutes>,
}

/// Rooms' minutes of final 15m windows as the pipeline wrote them before a restart
/// (`booking_usage`), by tenant and office: each worker takes (and so frees) those of the
/// offices it aggregates when it first sees their readings.
#[derive(Debug, Default)]
pub struct RestoredMinutes(
    std::sync::Mutex<std::collections::HashMap<(TenantId, String), Vec<RestoredQuarter>>>,
);

/// One room's 15m row as written before a restart.
#[derive(Clone, Debug)]
pub struct RestoredQuarter {
    pub room: String,
    /// The window's start, ms.
    pub start: i64,
    pub used_mask: u16,
    pub reported_mask: u16,
    /// Its counts: booked, booked-and-used, ghost, booked-unreported and
    /// unbooked-used minutes, meetings and no-shows.
    pub counts: [u32; 7],
}

impl RestoredQuarter {
    /// The quarter a row wrote.
    pub fn of(row: &BookingUsageRow) -> Self {
        Self {
            room: row.room_id.clone(),
            start: row.window_start,
            used_mask: row.used_mask,
            reported_mask: row.reported_mask,
            counts: [
                row.booked_minutes,
                row.booked_used_minutes,
                row.ghost_minutes,
                row.booked_unreported_minutes,
                row.unbooked_used_minutes,
                row.meetings,
                row.no_shows,
            ],
        }
    }
}

impl RestoredMinutes {
    /// Adds a quarter of `office`.
    pub fn insert(&mut self, tenant: &TenantId, office: &str, quarter: RestoredQuarter) {
        self.0
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry((tenant.clone(), office.to_owned()))
            .or_default()
            .push(quarter);
    }

    /// Takes `office`'s quarters: one worker aggregates an office, once; its memory goes.
    fn take(&self, tenant: &TenantId, office: &str) -> Vec<RestoredQuarter> {
        let mut map = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.remove(&(tenant.clone(), office.to_owned()))
            .unwrap_or_default()
    }
}

#[derive(Debug, Default)]
struct Tenant {
    /// The latest version of every booking, cancelled ones included (an older version
    /// arriving later must not revive them).
    latest: HashMap<String, Arc<Booking>>,
    /// Per room ever booked, its active bookings by (start, id), with their ends.
    active: HashMap<String, BTreeMap<(i64, String), i64>>,
    /// Per room, the minutes of its final 15m windows.
    minutes: HashMap<String, Minutes>,
    /// Per room, its office, the office's zone and whether its kind is booked (meeting
    /// rooms and focus booths), from room versions.
    rooms: HashMap<String, (String, Tz, bool)>,
    /// Per office, its rooms.
    offices: HashMap<String, BTreeSet<String>>,
    /// Per office this worker aggregates: its readings partition, the start of the
    /// first window it saw final or restored, and whether any was restored.
    served: HashMap<String, (i32, i64, bool)>,
    /// Per readings partition, its watermark.
    watermarks: HashMap<i32, i64>,
    /// Minutes before this were forgotten (the horizon).
    kept_from: i64,
    /// Windows to write once final, by end: (end, granularity, office, room, start),
    /// `room` empty for the office's row; `true` when a booking changed it (written even
    /// if all zero, to overwrite what was written before).
    due: BTreeMap<Due, bool>,
    /// Booked rooms' quarters that just became final: (office, room, start).
    fresh: Vec<(String, String, i64)>,
    /// Whether `due` or a watermark changed since the last flush looked.
    changed: bool,
}

type Due = (i64, Granularity, String, String, i64);

/// One room's minute masks: element `i` is the 15m window starting at `(first + i)`
/// quarters, low 16 bits used, high 16 bits reported. A window without readings has
/// none.
#[derive(Debug, Default)]
struct Minutes {
    first: i64,
    masks: VecDeque<u32>,
}

impl Minutes {
    fn set(&mut self, quarter: i64, mask: u32) {
        if self.masks.is_empty() {
            self.first = quarter;
        }
        while quarter < self.first {
            self.masks.push_front(0);
            self.first -= 1;
        }
        let i = (quarter - self.first) as usize;
        if i >= self.masks.len() {
            self.masks.resize(i + 1, 0);
        }
        self.masks[i] |= mask;
    }

    /// (used, reported) of a quarter.
    fn get(&self, quarter: i64) -> (u16, u16) {
        let m = usize::try_from(quarter - self.first)
            .ok()
            .and_then(|i| self.masks.get(i))
            .copied()
            .unwrap_or(0);
        (m as u16, (m >> 16) as u16)
    }

    fn trim(&mut self, before_quarter: i64) {
        while self.first < before_quarter && !self.masks.is_empty() {
            self.masks.pop_front();
            self.first += 1;
        }
    }
}

/// The booked minutes of a quarter starting at `qs`, from the bookings in `spans`.
fn booked_mask(qs: i64, spans: impl Iterator<Item = (i64, i64)>) -> u16 {
    let mut mask = 0u16;
    for (start, end) in spans {
        let from =
            (start - qs).div_euclid(MINUTE) + i64::from((start - qs).rem_euclid(MINUTE) != 0);
        let to = (end - qs).div_euclid(MINUTE) + i64::from((end - qs).rem_euclid(MINUTE) != 0);
        for i in from.max(0)..to.min(15) {
            mask |= 1 << i;
        }
    }
    mask
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Counts {
    booked: u32,
    booked_used: u32,
    ghost: u32,
    booked_unreported: u32,
    unbooked_used: u32,
    meetings: u32,
    no_shows: u32,
}

impl Counts {
    fn add(&mut self, o: Counts) {
        self.booked += o.booked;
        self.booked_used += o.booked_used;
        self.ghost += o.ghost;
        self.booked_unreported += o.booked_unreported;
        self.unbooked_used += o.unbooked_used;
        self.meetings += o.meetings;
        self.no_shows += o.no_shows;
    }

    fn is_zero(&self) -> bool {
        *self == Counts::default()
    }

    /// In [`RestoredQuarter::counts`]' order.
    fn array(self) -> [u32; 7] {
        [
            self.booked,
            self.booked_used,
            self.ghost,
            self.booked_unreported,
            self.unbooked_used,
            self.meetings,
            self.no_shows,
        ]
    }
}

impl Tenant {
    fn spans(&self, room: &str, from: i64, to: i64) -> impl Iterator<Item = (i64, i64)> + '_ {
        let lo = (from - rf_schemas::booking::MAX_BOOKING_MS, String::new());
        self.active
            .get(room)
            .into_iter()
            .flat_map(move |b| b.range(lo.clone()..(to, String::new())))
            .filter(move |(_, &end)| end > from)
            .map(|((start, _), &end)| (*start, end))
    }

    /// Whether the minutes of `office` over `[start, end)` are known here. After a
    /// restart, only windows from the first restored one on: rows before it were written
    /// from minutes no longer kept. An office seen for the first time had no readings
    /// before its first: windows overlapping it are known, the minutes before it
    /// unreported.
    fn known(&self, office: &str, start: i64, end: i64) -> bool {
        self.served.get(office).is_some_and(|&(_, from, restored)| {
            start >= self.kept_from && if restored { start >= from } else { end > from }
        })
    }

    /// A room's counts over `[start, end)`.
    fn room_counts(&self, room: &str, start: i64, end: i64) -> Counts {
        let none = Minutes::default();
        let minutes = self.minutes.get(room).unwrap_or(&none);
        let mut c = Counts::default();
        let mut q = start;
        while q < end {
            let (used, reported) = minutes.get(q.div_euclid(QUARTER));
            let booked = booked_mask(q, self.spans(room, q, q + QUARTER));
            c.booked += booked.count_ones();
            c.booked_used += (booked & used).count_ones();
            c.ghost += (booked & reported & !used).count_ones();
            c.booked_unreported += (booked & !reported).count_ones();
            c.unbooked_used += (used & !booked).count_ones();
            q += QUARTER;
        }
        for (s, e) in self.spans(room, start, end) {
            if s < start {
                continue;
            }
            c.meetings += 1;
            if e - s >= NO_SHOW_MINUTES * MINUTE && no_show(minutes, s) {
                c.no_shows += 1;
            }
        }
        c
    }

    /// The row of a window (version 0), unless its minutes are not known here, or it is
    /// all zero and neither `force`d nor a room's quarter with readings (whose minutes a
    /// restart needs).
    fn row(&self, tenant: &TenantId, key: &Due, force: bool) -> Option<BookingUsageRow> {
        let (end, g, office, room, start) = key;
        if !self.known(office, *start, *end) {
            return None;
        }
        let masks = match self.minutes.get(room.as_str()) {
            Some(m) if *g == Granularity::M15 && !room.is_empty() => {
                m.get(start.div_euclid(QUARTER))
            }
            _ => (0, 0),
        };
        let c = if room.is_empty() {
            let mut sum = Counts::default();
            for r in self.offices.get(office).into_iter().flatten() {
                if self.bookable(r) {
                    sum.add(self.room_counts(r, *start, *end));
                }
            }
            sum
        } else {
            self.room_counts(room, *start, *end)
        };
        if c.is_zero() && !force && masks.1 == 0 {
            return None;
        }
        Some(BookingUsageRow {
            tenant: tenant.clone(),
            granularity: *g,
            office_id: office.clone(),
            room_id: room.clone(),
            window_start: *start,
            window_end: *end,
            booked_minutes: c.booked,
            booked_used_minutes: c.booked_used,
            ghost_minutes: c.ghost,
            booked_unreported_minutes: c.booked_unreported,
            unbooked_used_minutes: c.unbooked_used,
            meetings: c.meetings,
            no_shows: c.no_shows,
            used_mask: masks.0,
            reported_mask: masks.1,
            version: 0,
        })
    }

    /// Whether `room` has rows: meeting rooms and focus booths, and any room booked.
    fn bookable(&self, room: &str) -> bool {
        self.active.contains_key(room) || self.rooms.get(room).is_some_and(|r| r.2)
    }

    /// Marks the windows of every granularity that `[start, end)` of `room` touches, if
    /// the room has rows and its office is aggregated here.
    fn mark(&mut self, room: &str, start: i64, end: i64, booking: bool) {
        if !self.bookable(room) {
            return;
        }
        let Some((office, tz, _)) = self.rooms.get(room).cloned() else {
            return;
        };
        let Some(&(_, seen_from, _)) = self.served.get(&office) else {
            return;
        };
        for g in Granularity::ALL {
            let mut t = start.max(seen_from);
            while t < end {
                let (s, e) = g.window(t, tz);
                self.changed = true;
                for r in [room, ""] {
                    let force = self
                        .due
                        .entry((e, g, office.clone(), r.to_owned(), s))
                        .or_insert(booking);
                    *force |= booking;
                }
                t = e;
            }
        }
    }
}

impl Tenant {
    /// From now on `office`'s windows are seen here, its first final quarter starting at
    /// `qs`. Those written before a restart are known from what was written
    /// (`restored`); the bookings read before (at start, all of them) are due from there
    /// on.
    fn serve(&mut self, office: &str, partition: i32, qs: i64, restored: &[RestoredQuarter]) {
        let mut from = qs;
        for q in restored {
            let mask = u32::from(q.used_mask) | (u32::from(q.reported_mask) << 16);
            self.minutes
                .entry(q.room.clone())
                .or_default()
                .set(q.start.div_euclid(QUARTER), mask);
            from = from.min(q.start);
        }
        self.served
            .insert(office.to_owned(), (partition, from, !restored.is_empty()));
        // Windows that were final but not yet written when the pipeline stopped (a
        // quarter's no-shows, an hour, the office's rows) are due again.
        for q in restored.iter().filter(|q| q.start >= qs - 2 * HOUR) {
            self.mark(&q.room, q.start, q.start + QUARTER, false);
        }
        let booked: Vec<(String, i64, i64)> = self
            .offices
            .get(office)
            .into_iter()
            .flatten()
            .filter_map(|room| self.active.get(room).map(|spans| (room, spans)))
            .flat_map(|(room, spans)| {
                spans
                    .iter()
                    .map(move |((start, _), end)| (room.clone(), *start, *end))
            })
            .collect();
        for (room, start, end) in &booked {
            self.mark(room, *start, *end, false);
        }
        // A booking moved or cancelled while the pipeline was stopped, or read before
        // this office's first readings, left rows written with the bookings of then:
        // each quarter written, or booked now, that counts otherwise now is rewritten,
        // with the hours, days and office rows holding it.
        let written: HashMap<(&str, i64), [u32; 7]> = restored
            .iter()
            .map(|q| ((q.room.as_str(), q.start), q.counts))
            .collect();
        let booked_quarters = booked.iter().flat_map(|(room, start, end)| {
            let first = (*start).max(from).div_euclid(QUARTER);
            let last = ((*end).min(qs) + QUARTER - 1).div_euclid(QUARTER);
            (first..last).map(move |q| (room.as_str(), q * QUARTER))
        });
        let quarters: BTreeSet<(&str, i64)> =
            written.keys().copied().chain(booked_quarters).collect();
        let stale: Vec<(String, i64)> = quarters
            .into_iter()
            .filter(|&(room, start)| {
                let now = self.room_counts(room, start, start + QUARTER).array();
                now != written.get(&(room, start)).copied().unwrap_or_default()
            })
            .map(|(room, start)| (room.to_owned(), start))
            .collect();
        for (room, start) in stale {
            self.mark(&room, start, start + QUARTER, true);
        }
    }
}

/// Whether nobody was seen in the first 15 minutes from `start` though a reading looked.
fn no_show(minutes: &Minutes, start: i64) -> bool {
    let first = start.div_euclid(MINUTE) + i64::from(start.rem_euclid(MINUTE) != 0);
    let (mut used, mut reported) = (false, false);
    for m in first..first + NO_SHOW_MINUTES {
        let (u, r) = minutes.get((m * MINUTE).div_euclid(QUARTER));
        let bit = 1 << (m * MINUTE).rem_euclid(QUARTER).div_euclid(MINUTE);
        used |= u & bit != 0;
        reported |= r & bit != 0;
    }
    reported && !used
}

impl BookingUsage {
    /// An empty state.
    pub fn new(config: BookingsConfig) -> Self {
        Self::restoring(config, Arc::default())
    }

    /// A state that takes each office's minutes from `restored` when it first sees the
    /// office's readings.
    pub fn restoring(config: BookingsConfig, restored: Arc<RestoredMinutes>) -> Self {
        Self {
            config,
            tenants: HashMap::default(),
            last_version: 0,
            restored,
        }
    }

    /// Takes one of the aggregation's outputs; bookings are consumed, the rest passed on.
    pub fn apply(&mut self, output: Output, out: &mut Vec<Output>) {
        match output {
            Output::Booking(e) => return self.on_booking(e, out),
            Output::Readings(ref r) => self.on_readings(r),
            Output::RoomVersion(ref tenant, ref v) => {
                let t = self.tenants.entry(tenant.clone()).or_default();
                if let Some((old, ..)) = t.rooms.get(&v.room_id) {
                    if let Some(rooms) = t.offices.get_mut(old) {
                        rooms.remove(&v.room_id);
                    }
                }
                let booked = matches!(v.kind, RoomKind::Meeting | RoomKind::Focus);
                t.rooms
                    .insert(v.room_id.clone(), (v.office_id.clone(), v.timezone, booked));
                t.offices
                    .entry(v.office_id.clone())
                    .or_default()
                    .insert(v.room_id.clone());
            }
            Output::Checkpoint(ref c) => {
                let t = self.tenants.entry(c.tenant.clone()).or_default();
                let w = t.watermarks.entry(c.partition).or_insert(i64::MIN);
                t.changed |= c.current_watermark > *w;
                *w = (*w).max(c.current_watermark);
            }
            _ => {}
        }
        out.push(output);
    }

    fn on_readings(&mut self, r: &FinalReadings) {
        let Some(first) = r.readings.first() else {
            return;
        };
        let quarter = first.ts.div_euclid(QUARTER);
        let qs = quarter * QUARTER;
        let mut mask = 0u32;
        for reading in &r.readings {
            let bit = 1u32 << (reading.ts - qs).div_euclid(MINUTE).clamp(0, 14);
            mask |= bit << 16;
            if reading.people_count > 0 {
                mask |= bit;
            }
        }
        let t = self.tenants.entry(r.tenant.clone()).or_default();
        // Every room's every quarter comes here: no allocation once the room is known.
        match t.minutes.get_mut(&*r.room_id) {
            Some(m) => m.set(quarter, mask),
            None => t
                .minutes
                .entry(r.room_id.to_string())
                .or_default()
                .set(quarter, mask),
        }
        if !t.served.contains_key(&*r.office_id) {
            let mut restored = self.restored.take(&r.tenant, &r.office_id);
            restored.retain(|q| q.start < qs);
            t.serve(&r.office_id, r.partition, qs, &restored);
        }
        t.mark(&r.room_id, qs, qs + QUARTER, false);
        if t.bookable(&r.room_id) {
            t.fresh
                .push((r.office_id.to_string(), r.room_id.to_string(), qs));
        }
    }

    fn on_booking(&mut self, e: BookingEvent, out: &mut Vec<Output>) {
        let horizon = self.config.horizon_ms;
        let t = self.tenants.entry(e.tenant.clone()).or_default();
        let b = e.booking;
        if t.latest
            .get(&b.booking_id)
            .is_some_and(|l| l.version >= b.version)
        {
            return;
        }
        let watermark = t
            .rooms
            .get(&b.room_id)
            .and_then(|(office, ..)| t.served.get(office))
            .and_then(|(p, ..)| t.watermarks.get(p))
            .copied();
        let old = t.latest.insert(b.booking_id.clone(), b.clone());
        t.active.entry(b.room_id.clone()).or_default();
        if let Some(old) = old.filter(|o| !o.cancelled) {
            if let Some(spans) = t.active.get_mut(&old.room_id) {
                spans.remove(&(old.start_ts, old.booking_id.clone()));
            }
            t.mark(&old.room_id, old.start_ts, old.end_ts, true);
        }
        if !b.cancelled {
            let spans = t.active.get_mut(&b.room_id).expect("inserted above");
            spans.insert((b.start_ts, b.booking_id.clone()), b.end_ts);
            t.mark(&b.room_id, b.start_ts, b.end_ts, true);
        }
        if let Some(w) = watermark.filter(|w| b.start_ts < w.saturating_sub(horizon)) {
            out.push(Output::BookingRejected(DeadLetter {
                tenant: e.tenant.clone(),
                source_topic: e.tenant.bookings_topic(),
                topic: Topic::Bookings,
                partition: e.partition,
                offset: e.offset,
                key: Some(b.key().into_bytes()),
                value: None,
                reason: DeadLetterReason::Late,
                detail: format!(
                    "booking {} starts at {}, more than {} h behind the watermark {w}: windows before then are not rewritten",
                    b.booking_id,
                    b.start_ts,
                    horizon / 3_600_000
                ),
            }));
        }
    }

    /// Writes the rows of every marked window that is final (a meeting's first 15
    /// minutes included, for its no-show), and forgets what fell behind the horizon.
    pub fn flush(&mut self, out: &mut Vec<Output>) {
        let wait = self.config.allowed_lateness_ms + NO_SHOW_MINUTES * MINUTE;
        let horizon = self.config.horizon_ms;
        let clock = rf_schemas::unix_micros();
        let mut version = || {
            self.last_version = clock.max(self.last_version + 1);
            self.last_version
        };
        for (tenant, t) in &mut self.tenants {
            // Quarters just final are written at once with their minutes, so that a
            // restart finds them; their no-shows may need the next quarter, so they are
            // written again when that is final too.
            for (office, room, start) in std::mem::take(&mut t.fresh) {
                let key = (start + QUARTER, Granularity::M15, office, room, start);
                if let Some(row) = t.row(tenant, &key, true) {
                    out.push(Output::BookingUsage(BookingUsageRow {
                        version: version(),
                        ..row
                    }));
                }
            }
            let Some(&newest) = t.watermarks.values().max() else {
                continue;
            };
            if !std::mem::take(&mut t.changed) {
                continue;
            }
            // The windows whose end the newest watermark has passed, those of offices
            // whose own partition has too (the others stay due).
            let ready: Vec<Due> = t
                .due
                .keys()
                .take_while(|(end, ..)| end.saturating_add(wait) <= newest)
                .filter(|(end, _, office, ..)| {
                    let final_by = t
                        .served
                        .get(office)
                        .and_then(|(p, ..)| t.watermarks.get(p))
                        .copied()
                        .unwrap_or(i64::MIN);
                    end.saturating_add(wait) <= final_by
                })
                .cloned()
                .collect();
            for key in ready {
                let force = t.due.remove(&key).unwrap_or(false);
                let Some(row) = t.row(tenant, &key, force) else {
                    continue;
                };
                // A room's quarter with readings was written when it became final; only a
                // meeting starting in it (its no-show needed the next quarter) or a
                // booking changed since makes it differ.
                let written =
                    key.1 == Granularity::M15 && !key.3.is_empty() && row.reported_mask != 0;
                if written && !force && row.meetings == 0 {
                    continue;
                }
                out.push(Output::BookingUsage(BookingUsageRow {
                    version: version(),
                    ..row
                }));
            }
            // What fell behind the horizon goes.
            let before = newest.saturating_sub(horizon).div_euclid(QUARTER);
            if before * QUARTER > t.kept_from {
                t.kept_from = before * QUARTER;
                for m in t.minutes.values_mut() {
                    m.trim(before);
                }
                t.minutes.retain(|_, m| !m.masks.is_empty());
                let gone = t.kept_from - rf_schemas::booking::MAX_BOOKING_MS;
                for spans in t.active.values_mut() {
                    spans.retain(|_, end| *end > gone);
                }
                t.latest.retain(|_, b| b.end_ts > gone);
            }
        }
    }
}
