//! Event-time window aggregation of readings into room and office rows.
//!
//! [`Aggregator`] is the state machine behind the `Aggregate` operator: it takes decoded
//! events in partition order and produces row revisions, live state, dead letters and
//! checkpoints. It is deterministic per partition: the same offsets in the same order,
//! with the same room metadata, give the same rows.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use rf_schemas::{DeadLetterReason, RoomVersion, TenantId};

use crate::catalog::{Cached, RoomCatalog};
use crate::live::LiveState;
use crate::Granularity;
use crate::{
    Checkpoint, DeadLetter, Decoded, DecodedReading, Extra, FinalReading, FinalReadings, OfficeRow,
    Output, RawRecord, Restate, Resume, RoomDay, RoomEvent, RoomRow, Topic,
};
use crate::{HashMap, HashSet};

/// Settings of the aggregation.
#[derive(Clone, Debug)]
pub struct AggregateConfig {
    /// How long after a window's end it stays open for late readings, in ms.
    pub allowed_lateness_ms: i64,
    /// The tenants' event time, shared by the aggregators of one process.
    pub clock: EventClock,
    /// Emit the counted readings of each 15m window once it is final.
    pub store_readings: bool,
    /// How far a watermark may run ahead of the consumer's clock, in ms: no reading moves
    /// event time past the wall clock plus this, whatever its producer's clock says.
    pub clock_skew_ms: i64,
    /// While a partition's event time is behind its consumer's clock by more than the
    /// allowed lateness and this (a backlog), revisions of its open windows are written
    /// at most once per this many ms instead of every epoch; final rows, dead letters,
    /// live state and checkpoints are not held back. 0: every epoch.
    pub revision_interval_ms: i64,
}

impl Default for AggregateConfig {
    fn default() -> Self {
        Self {
            allowed_lateness_ms: 5 * 60_000,
            clock: EventClock::default(),
            store_readings: true,
            clock_skew_ms: rf_schemas::reading::MAX_CLOCK_SKEW_MS,
            revision_interval_ms: 0,
        }
    }
}

/// Each tenant's event time: the largest watermark of its partitions, as far as the
/// aggregators sharing this clock have seen. An idle partition moves up to it.
#[derive(Clone, Debug, Default)]
pub struct EventClock(Arc<Mutex<HashMap<TenantId, i64>>>);

impl EventClock {
    fn advance(&self, tenant: &TenantId, watermark: i64) {
        let mut tenants = self.0.lock().expect("no panics while holding it");
        match tenants.get_mut(tenant) {
            Some(t) => *t = (*t).max(watermark),
            None => {
                tenants.insert(tenant.clone(), watermark);
            }
        }
    }

    fn now(&self, tenant: &TenantId) -> Option<i64> {
        let tenants = self.0.lock().expect("no panics while holding it");
        tenants.get(tenant).copied()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Level {
    Room,
    Office,
}

/// An interned room or office id. Equal ids of one partition share one allocation, so
/// comparing them compares pointers first: the strings of 50,000 rooms do not stay in
/// cache, and looking a window's room up must not read them. Hashes and orders as `str`.
#[derive(Clone, Debug, Eq, PartialOrd, Ord)]
struct Id(Arc<str>);

impl PartialEq for Id {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || self.0 == other.0
    }
}

impl std::hash::Hash for Id {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        (*self.0).hash(state);
    }
}

impl std::borrow::Borrow<str> for Id {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl std::ops::Deref for Id {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Id {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// An open window, ordered by when it closes; at equal ends rooms close before offices.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct WindowKey {
    end: i64,
    granularity: Granularity,
    level: Level,
    id: Id,
    start: i64,
}

/// A reading whose room was unknown on arrival: judged when its 15m window is final.
#[derive(Debug)]
struct Pending {
    office_id: String,
    record: RawRecord,
}

#[derive(Debug)]
struct Sample {
    people: i32,
    schema_id: u32,
    offset: i64,
    pending: Option<Box<Pending>>,
    /// The optional measurements, when the reading has any.
    extra: Option<Box<Extra>>,
}

/// Readings by (ts, sensor): sensor ids are interned, so holding a reading allocates
/// nothing beyond its map entry.
type Samples = BTreeMap<(i64, Arc<str>), Sample>;

/// What a room holds for its open windows.
#[derive(Debug, Default)]
struct RoomState {
    /// Readings of 15m windows not final yet (and, during a replay, of windows that were
    /// final before the restart), each replaceable by a later revision.
    samples: Samples,
    /// Final 15m windows by start, summed up: nothing can change them any more, and the
    /// hour and day windows still open are built from them.
    chunks: BTreeMap<i64, Chunk>,
    /// The flush, 15m window start and version whose windows are marked changed already:
    /// the next in-order reading of the room before that flush needs no marking (the 15m
    /// window fixes the hour and the local day, as every zone's offset is a multiple of
    /// 15 minutes).
    marked: Option<(u64, i64, Option<Arc<RoomVersion>>)>,
    /// The room's version around its latest reading, until its versions change.
    version: Option<Cached>,
}

/// A final 15m window of a room, as the open hour and day windows need it.
#[derive(Debug)]
struct Chunk {
    stats: RoomStats,
    /// The oldest offset of its readings: replays after a restart start there.
    offset: i64,
    /// Its first and last reading, for the room versions in effect over it.
    first_ts: i64,
    last_ts: i64,
}

/// The keys of the readings with `start <= ts < end`.
fn span(start: i64, end: i64) -> std::ops::Range<(i64, Arc<str>)> {
    let first: Arc<str> = Arc::from("");
    (start, first.clone())..(end, first)
}

#[derive(Debug)]
struct PartitionState {
    /// The readings partition.
    partition: i32,
    watermark: i64,
    /// Per room, readings keyed by (ts, sensor) (a second reading with the same key
    /// replaces) and final 15m windows.
    rooms: HashMap<Id, RoomState>,
    /// Interned sensor ids; those no reading refers to any more are dropped when days close.
    sensors: HashSet<Arc<str>>,
    /// Interned room and office ids of open windows, dropped likewise.
    ids: HashSet<Id>,
    /// Rooms with counted readings, by the office their metadata names.
    offices: HashMap<Id, BTreeSet<Id>>,
    /// Per office, the peak minute of each final 15m window (the minutes' sums need
    /// every room's readings, which are summed up when the window is final).
    peaks: HashMap<Id, BTreeMap<i64, f64>>,
    open: BTreeSet<WindowKey>,
    /// At most the end of the first window in `open` (`i64::MAX` when none): most
    /// readings close nothing, and this tells without a walk down the tree.
    first_end: i64,
    dirty: HashSet<WindowKey>,
    /// Flushes so far: a room's `marked` holds only until the next one.
    flushes: u64,
    /// Offsets of the readings held in `rooms`, and of the oldest reading of each chunk,
    /// with the watermark before each arrived.
    held: BTreeMap<i64, i64>,
    processed_until: i64,
    replay_until: i64,
    /// During a replay: windows with `end + lateness` at or below this were final and
    /// written before the restart; they are never reopened.
    replay_final: i64,
    counted: u64,
    replaced: u64,
    /// Readings whose 15m window is not final yet: neither counted nor rejected.
    pending: u64,
    touched: bool,
    /// The consumer's clock when it read the partition's latest record, ms.
    received: i64,
    /// When revisions of its open windows were last written, wall clock ms.
    revised_at: i64,
}

impl PartitionState {
    fn new(partition: i32) -> Self {
        Self {
            partition,
            watermark: i64::MIN,
            rooms: HashMap::default(),
            sensors: HashSet::default(),
            ids: HashSet::default(),
            offices: HashMap::default(),
            peaks: HashMap::default(),
            open: BTreeSet::new(),
            first_end: i64::MAX,
            dirty: HashSet::default(),
            flushes: 0,
            held: BTreeMap::new(),
            processed_until: 0,
            replay_until: 0,
            replay_final: i64::MIN,
            counted: 0,
            replaced: 0,
            pending: 0,
            touched: false,
            received: i64::MIN,
            revised_at: i64::MIN,
        }
    }

    /// Whether revisions of its open windows wait at this flush (see
    /// [`AggregateConfig::revision_interval_ms`]).
    fn defers(&self, config: &AggregateConfig, now: i64) -> bool {
        let interval = config.revision_interval_ms;
        let behind = self.received.saturating_sub(self.watermark)
            > config.allowed_lateness_ms.saturating_add(interval);
        interval > 0 && behind && now.saturating_sub(self.revised_at) < interval
    }
}

#[derive(Default, Debug)]
struct TenantState {
    catalog: RoomCatalog,
    partitions: BTreeMap<i32, PartitionState>,
    live: LiveState,
    /// Next offset to read, per rooms partition.
    rooms_read: BTreeMap<i32, i64>,
    /// Per rooms partition, the offset from which room versions were not yet applied to
    /// final rows before a restart; below it they were, and only rebuild the catalog.
    restate_from: BTreeMap<i32, i64>,
}

/// Aggregates the readings of the partitions one worker owns.
#[derive(Debug)]
pub struct Aggregator {
    config: AggregateConfig,
    tenants: HashMap<TenantId, TenantState>,
    last_version: u64,
}

/// How many readings and windows an aggregator holds: its memory, in units.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StateSize {
    /// Readings held one by one, for 15m windows not final yet.
    pub readings: usize,
    /// Final 15m windows of rooms held summed up, for open hour and day windows.
    pub chunks: usize,
    /// Readings not yet counted or rejected: their 15m window is still open.
    pub pending: usize,
    /// Open room and office windows.
    pub windows: usize,
}

impl Aggregator {
    /// An empty aggregator.
    pub fn new(config: AggregateConfig) -> Self {
        Self {
            config,
            tenants: HashMap::default(),
            last_version: 0,
        }
    }

    /// Resumes a partition from a checkpoint: its watermark as it was at the resume
    /// offset, the offset below which effects were already written, and the watermark
    /// reached by then (windows final by it were written and stay closed).
    pub fn restore(
        &mut self,
        tenant: &TenantId,
        partition: i32,
        watermark: i64,
        processed_until: i64,
        final_watermark: i64,
    ) {
        let p = self.partition(tenant, partition);
        p.replay_final = final_watermark;
        p.watermark = watermark;
        p.replay_until = processed_until;
    }

    /// Resumes a rooms partition: versions from `offset` on may not have been applied to
    /// final rows before the restart, so they are (again); those before it only rebuild
    /// the catalog.
    pub fn restate_from(&mut self, tenant: &TenantId, partition: i32, offset: i64) {
        let state = self.tenants.entry(tenant.clone()).or_default();
        state.restate_from.insert(partition, offset);
    }

    /// Applies one event, in partition order.
    pub fn apply(&mut self, event: Decoded, out: &mut Vec<Output>) {
        match event {
            Decoded::Reading(r) => self.on_reading(*r, out),
            Decoded::Rejected(letter) => self.on_rejected(*letter, out),
            Decoded::Room(e) => self.on_room(*e, out),
            Decoded::Booking(e) => out.push(Output::Booking(*e)),
            Decoded::Idle { tenant, partition } => self.on_idle(tenant, partition, out),
            Decoded::Resume(Resume::Readings {
                tenant,
                partition,
                watermark,
                processed_until,
                final_watermark,
            }) => self.restore(
                &tenant,
                partition,
                watermark,
                processed_until,
                final_watermark,
            ),
            Decoded::Resume(Resume::Rooms {
                tenant,
                partition,
                offset,
            }) => self.restate_from(&tenant, partition, offset),
        }
    }

    /// An idle partition follows its tenant's event time: the windows its readings left
    /// open close as the other partitions' watermarks pass them. Readings arriving for
    /// them afterwards are late.
    fn on_idle(&mut self, tenant: TenantId, partition: i32, out: &mut Vec<Output>) {
        let Some(now) = self.config.clock.now(&tenant) else {
            return;
        };
        let Some(state) = self.tenants.get_mut(&tenant) else {
            return;
        };
        let Some(p) = state.partitions.get_mut(&partition) else {
            return;
        };
        if now <= p.watermark || p.watermark == i64::MIN {
            return;
        }
        tracing::debug!(%tenant, partition, from = p.watermark, to = now, "idle partition follows its tenant");
        p.watermark = now;
        p.touched = true;
        close_windows(
            &tenant,
            &state.catalog,
            p,
            false,
            &self.config,
            &mut self.last_version,
            out,
        );
    }

    /// Emits a revision of every window changed since the last flush (unless its
    /// partition defers them, see [`AggregateConfig::revision_interval_ms`]), the live
    /// state, and a checkpoint of every partition that saw events.
    pub fn flush(&mut self, out: &mut Vec<Output>) {
        let now = rf_schemas::unix_ms();
        for (tenant, state) in &mut self.tenants {
            for (&partition, p) in &mut state.partitions {
                p.flushes += 1;
                if !p.defers(&self.config, now) {
                    revise(tenant, &state.catalog, p, now, &mut self.last_version, out);
                }
                if std::mem::take(&mut p.touched) {
                    let (commit_offset, watermark) = match p.held.first_key_value() {
                        Some((&offset, &wm)) => (offset, wm),
                        None => (p.processed_until, p.watermark),
                    };
                    out.push(Output::Checkpoint(Checkpoint {
                        tenant: tenant.clone(),
                        partition,
                        commit_offset,
                        watermark,
                        // A checkpoint written while replaying never claims less than
                        // the one restored: what was written before the restart stays
                        // written, and its final windows stay closed.
                        current_watermark: p.watermark.max(p.replay_final),
                        processed_until: p.processed_until.max(p.replay_until),
                        counted: std::mem::take(&mut p.counted),
                        replaced: std::mem::take(&mut p.replaced),
                        rooms: state.rooms_read.iter().map(|(&p, &o)| (p, o)).collect(),
                    }));
                }
            }
            state.live.flush(tenant, out);
            if let Some(wm) = state.partitions.values().map(|p| p.watermark).max() {
                self.config.clock.advance(tenant, wm);
            }
        }
    }

    /// Whether revisions of open windows wait for a later flush.
    pub fn deferred(&self) -> bool {
        self.tenants
            .values()
            .any(|t| t.partitions.values().any(|p| !p.dirty.is_empty()))
    }

    /// Emits the revisions that wait: every window changed since its last revision.
    pub fn flush_revisions(&mut self, out: &mut Vec<Output>) {
        let now = rf_schemas::unix_ms();
        for (tenant, state) in &mut self.tenants {
            for p in state.partitions.values_mut() {
                revise(tenant, &state.catalog, p, now, &mut self.last_version, out);
            }
        }
    }

    /// See [`AggregateConfig::revision_interval_ms`].
    pub fn revision_interval(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.config.revision_interval_ms.max(0) as u64)
    }

    /// The watermark of `tenant`'s `partition`, once it has seen it.
    pub fn watermark(&self, tenant: &TenantId, partition: i32) -> Option<i64> {
        let p = self.tenants.get(tenant)?.partitions.get(&partition)?;
        Some(p.watermark)
    }

    /// Writes the watermark of every partition it has seen into `into`.
    pub(crate) fn watermarks_into(&self, into: &mut HashMap<(TenantId, i32), i64>) {
        for (tenant, state) in &self.tenants {
            for (&partition, p) in &state.partitions {
                into.insert((tenant.clone(), partition), p.watermark);
            }
        }
    }

    /// What the aggregator holds now.
    pub fn size(&self) -> StateSize {
        let mut size = StateSize::default();
        for p in self.tenants.values().flat_map(|t| t.partitions.values()) {
            for room in p.rooms.values() {
                size.readings += room.samples.len();
                size.chunks += room.chunks.len();
            }
            size.pending += p.pending as usize;
            size.windows += p.open.len();
        }
        size
    }

    fn partition(&mut self, tenant: &TenantId, partition: i32) -> &mut PartitionState {
        self.tenants
            .entry(tenant.clone())
            .or_default()
            .partitions
            .entry(partition)
            .or_insert_with(|| PartitionState::new(partition))
    }

    /// A room version published or withdrawn: open windows of the room are revised in
    /// memory; final rows whose capacity it changes are restated in the stores.
    fn on_room(&mut self, e: RoomEvent, out: &mut Vec<Output>) {
        let state = self.tenants.entry(e.tenant.clone()).or_default();
        state.rooms_read.insert(e.partition, e.offset + 1);
        let fresh = e.offset >= state.restate_from.get(&e.partition).copied().unwrap_or(0);
        let before = state.catalog.at(&e.room_id, e.effective_from).cloned();
        let changed = match e.version {
            Some(v) => {
                out.push(Output::RoomVersion(e.tenant.clone(), v.clone()));
                state.catalog.insert(v);
                true
            }
            None => {
                let withdrawn = state.catalog.withdraw(&e.room_id, e.effective_from);
                if withdrawn || fresh {
                    let (room, from) = (e.room_id.clone(), e.effective_from);
                    out.push(Output::RoomWithdrawn(e.tenant.clone(), room, from));
                }
                withdrawn
            }
        };
        if !changed {
            return;
        }
        rewindow_room(state, &e.room_id, self.config.allowed_lateness_ms);
        let (Some(before), Some(after)) = (before, state.catalog.at(&e.room_id, e.effective_from))
        else {
            // A room's first version: its earlier readings were judged when their windows
            // closed. A withdrawn first version: readings counted stay counted.
            return;
        };
        if !fresh || before.capacity == after.capacity {
            return;
        }
        if before.office_id != after.office_id {
            tracing::warn!(
                tenant = %e.tenant,
                room = %e.room_id,
                from = e.effective_from,
                "a room version moves the room to another office in the past; final rows keep their office"
            );
            return;
        }
        self.last_version = next_version(self.last_version, rf_schemas::unix_micros());
        out.push(Output::Restate(Restate {
            room_id: e.room_id.clone(),
            office_id: after.office_id.clone(),
            from: e.effective_from,
            until: state
                .catalog
                .next_after(&e.room_id, e.effective_from)
                .unwrap_or(i64::MAX),
            capacity: after.capacity,
            version: self.last_version,
            tenant: e.tenant,
        }));
    }

    fn on_rejected(&mut self, letter: DeadLetter, out: &mut Vec<Output>) {
        if letter.topic == Topic::Bookings {
            return out.push(Output::BookingRejected(letter));
        }
        if letter.topic == Topic::Rooms {
            let state = self.tenants.entry(letter.tenant.clone()).or_default();
            state.rooms_read.insert(letter.partition, letter.offset + 1);
            return out.push(Output::RoomRejected(letter));
        }
        let p = self.partition(&letter.tenant, letter.partition);
        p.processed_until = p.processed_until.max(letter.offset + 1);
        p.touched = true;
        if letter.offset >= p.replay_until {
            out.push(Output::DeadLetter(letter));
        }
    }

    fn on_reading(
        &mut self,
        DecodedReading {
            reading: r,
            record,
            schema_id,
        }: DecodedReading,
        out: &mut Vec<Output>,
    ) {
        let lateness = self.config.allowed_lateness_ms;
        let tenant = record.tenant.clone();
        // A producer's clock never moves event time past the consumer's plus the skew.
        let event_time =
            r.ts.min(record.received.saturating_add(self.config.clock_skew_ms));
        if !self.tenants.contains_key(&tenant) {
            self.tenants.insert(tenant.clone(), TenantState::default());
        }
        let TenantState {
            catalog,
            partitions,
            live,
            ..
        } = self.tenants.get_mut(&tenant).expect("inserted above");
        let p = partitions
            .entry(record.partition)
            .or_insert_with(|| PartitionState::new(record.partition));
        let offset = record.offset;
        p.received = p.received.max(record.received);
        let replaying = offset < p.replay_until;
        p.processed_until = p.processed_until.max(offset + 1);
        p.touched = true;
        let reject = |record: RawRecord, reason, detail: String, out: &mut Vec<Output>| {
            if !replaying {
                out.push(Output::DeadLetter(record.dead_letter(reason, detail)));
            }
        };

        let (_, end15) = Granularity::M15.window(r.ts, chrono_tz::UTC);
        // After a replay, the watermark the first run reached (an idle partition's may
        // have been moved past its own readings) judges what comes next.
        let watermark = if replaying {
            p.watermark
        } else {
            p.watermark.max(p.replay_final)
        };
        if watermark != i64::MIN && end15 + lateness <= watermark {
            let detail = format!(
                "ts {} is in a window that closed at {end15} (watermark {watermark}, allowed lateness {} s)",
                r.ts,
                lateness / 1000
            );
            return reject(record, DeadLetterReason::Late, detail, out);
        }
        // The room's version: most readings fall within the span its last one looked up.
        let cached = p.rooms.get(r.room_id.as_str()).and_then(|room| {
            let cached = room.version.as_ref()?;
            cached.at(r.ts).map(|v| v.cloned())
        });
        let (version, looked_up) = match cached {
            Some(v) => (v, None),
            None => {
                let l = catalog.at_within(&r.room_id, r.ts);
                (l.at(r.ts).flatten().cloned(), Some(l))
            }
        };
        let pending = match &version {
            Some(v) if v.office_id != r.office_id => {
                let detail = format!(
                    "room {} belongs to office {}, not {}",
                    r.room_id, v.office_id, r.office_id
                );
                return reject(record, DeadLetterReason::OfficeMismatch, detail, out);
            }
            Some(_) => None,
            None => Some(Box::new(Pending {
                office_id: r.office_id.clone(),
                record,
            })),
        };

        // Replaying a reading whose 15m window was final before the restart: it was
        // judged and counted then; it only feeds the hour and day windows still open.
        let judged = replaying && end15 + lateness <= p.replay_final;
        let pending = if judged { None } else { pending };
        let extra = Extra::of(&r);
        let sample = Sample {
            people: r.people_count,
            schema_id,
            offset,
            pending,
            extra: (extra != Extra::default()).then(|| Box::new(extra)),
        };
        let sensor = match p.sensors.get(r.sensor_id.as_str()) {
            Some(s) => s.clone(),
            None => {
                let s: Arc<str> = r.sensor_id.into();
                p.sensors.insert(s.clone());
                s
            }
        };
        let room = match p.rooms.get_mut(r.room_id.as_str()) {
            Some(room) => room,
            None => {
                let id = intern(&mut p.ids, &r.room_id);
                p.rooms.entry(id).or_default()
            }
        };
        if looked_up.is_some() {
            room.version = looked_up;
        }
        match room.samples.insert((r.ts, sensor), sample) {
            // The replaced reading was pending too: its window cannot be final, or this
            // one would have been late.
            Some(old) => {
                p.held.remove(&old.offset);
                if !replaying {
                    p.replaced += 1;
                }
            }
            None if judged => {}
            None => p.pending += 1,
        }
        let (start15, _) = Granularity::M15.window(r.ts, chrono_tz::UTC);
        let marked = room.marked.as_ref().is_some_and(|(flush, start, v)| {
            *flush == p.flushes
                && *start == start15
                && match (v, &version) {
                    (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                    (None, None) => true,
                    _ => false,
                }
        });
        p.held.insert(offset, p.watermark);
        if !marked {
            open_windows(p, &r.room_id, r.ts, version.as_deref(), lateness);
            if let Some(room) = p.rooms.get_mut(r.room_id.as_str()) {
                room.marked = Some((p.flushes, start15, version.clone()));
            }
        }
        if let Some(v) = &version {
            live.observe(&r.room_id, &v.office_id, r.people_count, r.ts, v.capacity);
        }

        p.watermark = p.watermark.max(event_time);
        close_windows(
            &tenant,
            catalog,
            p,
            replaying,
            &self.config,
            &mut self.last_version,
            out,
        );
    }
}

/// Emits a revision of every window of `p` changed since its last one.
fn revise(
    tenant: &TenantId,
    catalog: &RoomCatalog,
    p: &mut PartitionState,
    now: i64,
    last_version: &mut u64,
    out: &mut Vec<Output>,
) {
    if p.dirty.is_empty() {
        return;
    }
    p.revised_at = now;
    // Each room's windows one after the other, while its state is in cache: ordered by
    // the interned id's address, which reads no string.
    // Drained, not taken: the set keeps its table for the next epoch's windows.
    let mut dirty: Vec<WindowKey> = p.dirty.drain().collect();
    dirty.sort_unstable_by_key(|k| (k.level, Arc::as_ptr(&k.id.0).cast::<u8>() as usize));
    // One clock read for all of them: versions still grow and follow the wall clock.
    let clock = rf_schemas::unix_micros();
    for key in dirty {
        *last_version = next_version(*last_version, clock);
        emit_row(tenant, catalog, p, &key, false, *last_version, out);
    }
}

/// The version after `last` at wall-clock time `clock` (µs): versions grow, and follow
/// the clock, so a restarted pipeline's revisions replace the earlier run's.
fn next_version(last: u64, clock: u64) -> u64 {
    clock.max(last + 1)
}

/// Registers (and marks changed) the windows a reading of `room_id` at `ts` belongs to.
/// Readings of a room without metadata only open their 15m window, where they are judged.
fn open_windows(
    p: &mut PartitionState,
    room_id: &str,
    ts: i64,
    version: Option<&RoomVersion>,
    lateness: i64,
) {
    let room = intern(&mut p.ids, room_id);
    let mut add = |granularity: Granularity, level: Level, id: &Id, tz| {
        let (start, end) = granularity.window(ts, tz);
        if end + lateness > p.watermark && end + lateness > p.replay_final {
            let key = WindowKey {
                end,
                granularity,
                level,
                id: id.clone(),
                start,
            };
            // A window marked changed is open already.
            if p.dirty.insert(key.clone()) {
                p.open.insert(key);
                p.first_end = p.first_end.min(end);
            }
        }
    };
    let Some(v) = version else {
        add(Granularity::M15, Level::Room, &room, chrono_tz::UTC);
        return;
    };
    let office = intern(&mut p.ids, &v.office_id);
    for g in Granularity::ALL {
        add(g, Level::Room, &room, v.timezone);
        add(g, Level::Office, &office, v.timezone);
    }
    match p.offices.get_mut(&office) {
        Some(rooms) if rooms.contains(&room) => {}
        Some(rooms) => {
            rooms.insert(room);
        }
        None => {
            p.offices.insert(office, BTreeSet::from([room]));
        }
    }
}

/// The one shared copy of a room or office id in a partition's windows.
fn intern(ids: &mut HashSet<Id>, id: &str) -> Id {
    match ids.get(id) {
        Some(id) => id.clone(),
        None => {
            let id = Id(id.into());
            ids.insert(id.clone());
            id
        }
    }
}

/// Room metadata changed: every open window of the room's readings may change.
fn rewindow_room(state: &mut TenantState, room_id: &str, lateness: i64) {
    for p in state.partitions.values_mut() {
        let Some(room) = p.rooms.get_mut(room_id) else {
            continue;
        };
        room.marked = None;
        room.version = None;
        let chunks = room.chunks.values().flat_map(|c| [c.first_ts, c.last_ts]);
        let times: Vec<i64> = room
            .samples
            .keys()
            .map(|(ts, _)| *ts)
            .chain(chunks)
            .collect();
        for ts in times {
            let version = state.catalog.at(room_id, ts).cloned();
            open_windows(p, room_id, ts, version.as_deref(), lateness);
        }
    }
    if let Some(ts) = state.live.latest_ts(room_id) {
        if let Some(v) = state.catalog.at(room_id, ts) {
            state.live.recapacity(room_id, v.capacity);
        }
    }
}

/// Closes every window of the partition that its watermark has passed by the allowed
/// lateness: judges waiting readings, emits final rows, sums up final 15m windows and
/// retires what is done.
fn close_windows(
    tenant: &TenantId,
    catalog: &RoomCatalog,
    p: &mut PartitionState,
    replaying: bool,
    config: &AggregateConfig,
    last_version: &mut u64,
    out: &mut Vec<Output>,
) {
    let lateness = config.allowed_lateness_ms;
    if p.first_end.saturating_add(lateness) > p.watermark {
        return;
    }
    let (mut collapse, mut retire) = (Vec::new(), Vec::new());
    // One clock read for all the windows closing: versions still grow and follow it.
    let clock = rf_schemas::unix_micros();
    while let Some(first) = p.open.first() {
        if first.end + lateness > p.watermark {
            break;
        }
        let key = p.open.pop_first().expect("checked above");
        p.dirty.remove(&key);
        *last_version = next_version(*last_version, clock);
        match (key.level, key.granularity) {
            (Level::Room, Granularity::M15) => {
                judge(catalog, p, &key, replaying, out);
                emit_row(tenant, catalog, p, &key, true, *last_version, out);
                collapse.push(key);
            }
            (Level::Office, Granularity::M15) => {
                if let Some(row) = office_row(tenant, catalog, p, &key, true, *last_version) {
                    let peaks = p.peaks.entry(key.id.clone()).or_default();
                    peaks.insert(key.start, row.peak_people);
                    out.push(Output::Office(row));
                }
            }
            (_, Granularity::D1) => {
                emit_row(tenant, catalog, p, &key, true, *last_version, out);
                retire.push(key);
            }
            _ => emit_row(tenant, catalog, p, &key, true, *last_version, out),
        }
    }
    p.first_end = p.open.first().map_or(i64::MAX, |k| k.end);
    // Only now: rows of every window closing at the same instant read the readings.
    for key in collapse {
        sum_up(tenant, catalog, p, &key, config.store_readings, out);
    }
    let retired_any = !retire.is_empty();
    for key in retire {
        match key.level {
            Level::Room => retire_room(p, &key.id, key.end),
            Level::Office => {
                if let Some(peaks) = p.peaks.get_mut(&key.id) {
                    *peaks = peaks.split_off(&key.end);
                    if peaks.is_empty() {
                        p.peaks.remove(&key.id);
                    }
                }
            }
        }
    }
    if retired_any {
        p.sensors.retain(|s| Arc::strong_count(s) > 1);
        p.ids.retain(|s| Arc::strong_count(&s.0) > 1);
    }
}

/// A room's 15m window is final: its readings are written out and become one chunk.
fn sum_up(
    tenant: &TenantId,
    catalog: &RoomCatalog,
    p: &mut PartitionState,
    key: &WindowKey,
    store_readings: bool,
    out: &mut Vec<Output>,
) {
    let (start, end) = (key.start, key.end);
    let Some(room) = p.rooms.get_mut(&key.id) else {
        return;
    };
    let first: Arc<str> = Arc::from("");
    let mut window = room.samples.split_off(&(start, first.clone()));
    let mut later = window.split_off(&(end, first));
    room.samples.append(&mut later);
    let Some((&(first_ts, _), _)) = window.first_key_value() else {
        return;
    };
    let last_ts = window.last_key_value().map_or(first_ts, |((ts, _), _)| *ts);
    let mut stats = RoomStats::default();
    let mut oldest: Option<(i64, i64)> = None;
    let mut readings = Vec::with_capacity(if store_readings { window.len() } else { 0 });
    for ((ts, sensor_id), sample) in window {
        stats.add(sample.people);
        if store_readings {
            readings.push(FinalReading {
                sensor_id,
                ts,
                people_count: sample.people,
                extra: sample.extra.as_deref().copied().unwrap_or_default(),
                schema_id: sample.schema_id,
                offset: sample.offset,
            });
        }
        let watermark = p.held.remove(&sample.offset).unwrap_or(i64::MIN);
        if oldest.is_none_or(|(o, _)| sample.offset < o) {
            oldest = Some((sample.offset, watermark));
        }
    }
    let (offset, watermark) = oldest.expect("the window has readings");
    p.held.insert(offset, watermark);
    if let Some(v) = catalog.at(&key.id, end - 1).filter(|_| store_readings) {
        out.push(Output::Readings(FinalReadings {
            tenant: tenant.clone(),
            office_id: intern(&mut p.ids, &v.office_id).0,
            room_id: key.id.0.clone(),
            partition: p.partition,
            capacity: v.capacity,
            readings,
        }));
    }
    let chunk = Chunk {
        stats,
        offset,
        first_ts,
        last_ts,
    };
    if let Some(old) = room.chunks.insert(start, chunk) {
        // A window is final once; should it ever be summed up twice, nothing is lost.
        let new = room.chunks.get_mut(&start).expect("just inserted");
        new.stats.merge(&old.stats);
        new.first_ts = new.first_ts.min(old.first_ts);
        new.last_ts = new.last_ts.max(old.last_ts);
        if old.offset < new.offset {
            p.held.remove(&new.offset);
            new.offset = old.offset;
        } else {
            p.held.remove(&old.offset);
        }
    }
}

/// A room's day is final: what it held before `end` goes.
fn retire_room(p: &mut PartitionState, room_id: &str, end: i64) {
    let Some(room) = p.rooms.get_mut(room_id) else {
        return;
    };
    let kept = room.samples.split_off(&(end, Arc::from("")));
    for sample in std::mem::replace(&mut room.samples, kept).into_values() {
        p.held.remove(&sample.offset);
    }
    let kept = room.chunks.split_off(&end);
    for chunk in std::mem::replace(&mut room.chunks, kept).into_values() {
        p.held.remove(&chunk.offset);
    }
    if room.samples.is_empty() && room.chunks.is_empty() {
        p.rooms.remove(room_id);
        p.offices.retain(|_, rooms| {
            rooms.remove(room_id);
            !rooms.is_empty()
        });
    }
}

/// A room's 15m window is final: readings that waited for their room's metadata are
/// counted or dead-lettered now, and every reading left in the window is counted.
fn judge(
    catalog: &RoomCatalog,
    p: &mut PartitionState,
    key: &WindowKey,
    replaying: bool,
    out: &mut Vec<Output>,
) {
    let Some(room) = p.rooms.get_mut(&key.id) else {
        return;
    };
    let range = span(key.start, key.end);
    let mut rejected = Vec::new();
    for ((ts, sensor), sample) in room.samples.range_mut(range) {
        p.pending -= 1;
        let Some(pending) = sample.pending.take() else {
            p.counted += u64::from(!replaying);
            continue;
        };
        let verdict = match catalog.at(&key.id, *ts) {
            None => Some((
                DeadLetterReason::UnknownRoom,
                format!("room {} has no version in effect at {ts}", key.id),
            )),
            Some(v) if v.office_id != pending.office_id => Some((
                DeadLetterReason::OfficeMismatch,
                format!(
                    "room {} belongs to office {}, not {}",
                    key.id, v.office_id, pending.office_id
                ),
            )),
            Some(_) => None,
        };
        match verdict {
            None => p.counted += u64::from(!replaying),
            Some((reason, detail)) => {
                rejected.push((*ts, sensor.clone()));
                if !replaying {
                    out.push(Output::DeadLetter(
                        pending.record.dead_letter(reason, detail),
                    ));
                }
            }
        }
    }
    for k in rejected {
        let sample = room.samples.remove(&k).expect("just seen");
        p.held.remove(&sample.offset);
    }
}

/// The version of a room in effect at `ts`: from the room's own lookup when it covers
/// `ts`, else from the catalog.
fn version_at<'a>(
    catalog: &'a RoomCatalog,
    room_id: &str,
    room: &'a RoomState,
    ts: i64,
) -> Option<&'a Arc<RoomVersion>> {
    match room.version.as_ref().and_then(|c| c.at(ts)) {
        Some(cached) => cached,
        None => catalog.at(room_id, ts),
    }
}

/// Whether a reading of `room_id` at `ts` counts in rows now.
fn counts(catalog: &RoomCatalog, room_id: &str, ts: i64, sample: &Sample) -> bool {
    match &sample.pending {
        None => true,
        Some(p) => catalog
            .at(room_id, ts)
            .is_some_and(|v| v.office_id == p.office_id),
    }
}

#[derive(Clone, Copy, Debug, Default)]
struct RoomStats {
    samples: u32,
    sum: i64,
    peak: i32,
    occupied: u32,
}

impl RoomStats {
    fn add(&mut self, people: i32) {
        self.samples += 1;
        self.sum += i64::from(people);
        self.peak = self.peak.max(people);
        self.occupied += u32::from(people > 0);
    }

    fn merge(&mut self, other: &Self) {
        self.samples += other.samples;
        self.sum += other.sum;
        self.peak = self.peak.max(other.peak);
        self.occupied += other.occupied;
    }
}

/// A room's readings in `[start, end)`: its final 15m windows and the readings after.
fn room_stats(
    catalog: &RoomCatalog,
    room_id: &str,
    room: &RoomState,
    start: i64,
    end: i64,
) -> RoomStats {
    let mut s = RoomStats::default();
    for chunk in room.chunks.range(start..end).map(|(_, c)| c) {
        s.merge(&chunk.stats);
    }
    for ((ts, _), sample) in room.samples.range(span(start, end)) {
        if counts(catalog, room_id, *ts, sample) {
            s.add(sample.people);
        }
    }
    s
}

fn emit_row(
    tenant: &TenantId,
    catalog: &RoomCatalog,
    p: &PartitionState,
    key: &WindowKey,
    is_final: bool,
    version: u64,
    out: &mut Vec<Output>,
) {
    match key.level {
        Level::Room => {
            let Some(room) = p.rooms.get(&key.id) else {
                return;
            };
            let Some(v) = version_at(catalog, &key.id, room, key.end - 1) else {
                return;
            };
            let s = room_stats(catalog, &key.id, room, key.start, key.end);
            if s.samples == 0 {
                return;
            }
            let avg = s.sum as f64 / f64::from(s.samples);
            let row = RoomRow {
                tenant: tenant.clone(),
                granularity: key.granularity,
                office_id: v.office_id.clone(),
                room_id: key.id.to_string(),
                window_start: key.start,
                window_end: key.end,
                samples: s.samples,
                avg_people: avg,
                peak_people: s.peak as u32,
                occupied_ratio: f64::from(s.occupied) / f64::from(s.samples),
                capacity: v.capacity,
                utilization: avg / f64::from(v.capacity),
                is_final,
                version,
            };
            if is_final && key.granularity == Granularity::D1 {
                // The local date of a day window is its start's, in the room's zone.
                let day = chrono::DateTime::from_timestamp_millis(key.start)
                    .map(|t| t.with_timezone(&v.timezone).date_naive());
                if let Some(day) = day {
                    out.push(Output::RoomDay(RoomDay {
                        day,
                        row: row.clone(),
                    }));
                }
            }
            out.push(Output::Room(row));
        }
        Level::Office => {
            if let Some(row) = office_row(tenant, catalog, p, key, is_final, version) {
                out.push(Output::Office(row));
            }
        }
    }
}

/// An office's row: its rooms' window stats summed, and the peak minute, from the peaks
/// of its final 15m windows and the minutes of the readings after them.
fn office_row(
    tenant: &TenantId,
    catalog: &RoomCatalog,
    p: &PartitionState,
    key: &WindowKey,
    is_final: bool,
    version: u64,
) -> Option<OfficeRow> {
    let rooms = p.offices.get(&key.id)?;
    let (mut reporting, mut avg_people, mut capacity) = (0u32, 0.0f64, 0u32);
    // Per minute of readings not summed up yet: the sum over rooms of each room's mean
    // in that minute.
    let mut minutes: BTreeMap<i64, f64> = BTreeMap::new();
    for room_id in rooms {
        let Some(room) = p.rooms.get(room_id) else {
            continue;
        };
        let Some(v) =
            version_at(catalog, room_id, room, key.end - 1).filter(|v| *v.office_id == *key.id)
        else {
            continue;
        };
        let s = room_stats(catalog, room_id, room, key.start, key.end);
        if s.samples == 0 {
            continue;
        }
        reporting += 1;
        avg_people += s.sum as f64 / f64::from(s.samples);
        capacity += v.capacity;
        let mut minute = (i64::MIN, 0i64, 0u32);
        for ((ts, _), sample) in room.samples.range(span(key.start, key.end)) {
            if !counts(catalog, room_id, *ts, sample) {
                continue;
            }
            let m = ts.div_euclid(60_000);
            if m != minute.0 {
                if minute.2 > 0 {
                    *minutes.entry(minute.0).or_default() += minute.1 as f64 / f64::from(minute.2);
                }
                minute = (m, 0, 0);
            }
            minute.1 += i64::from(sample.people);
            minute.2 += 1;
        }
        if minute.2 > 0 {
            *minutes.entry(minute.0).or_default() += minute.1 as f64 / f64::from(minute.2);
        }
    }
    if reporting == 0 {
        return None;
    }
    let summed_up = p
        .peaks
        .get(&*key.id)
        .into_iter()
        .flat_map(|peaks| peaks.range(key.start..key.end).map(|(_, peak)| *peak));
    Some(OfficeRow {
        tenant: tenant.clone(),
        granularity: key.granularity,
        office_id: key.id.to_string(),
        window_start: key.start,
        window_end: key.end,
        rooms_reporting: reporting,
        avg_people,
        peak_people: minutes
            .values()
            .copied()
            .chain(summed_up)
            .fold(0.0, f64::max),
        capacity,
        utilization: avg_people / f64::from(capacity),
        is_final,
        version,
    })
}
