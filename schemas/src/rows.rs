//! What the pipeline writes: window rows, the counted readings of final windows, live
//! state, dead letters, checkpoints, anomalies, forecasts and model states. The
//! operators produce them and the sinks take them, so they live here, beside the rest
//! of the data contract, and neither depends on the other.

use std::sync::Arc;

use crate::windows::Granularity;
use crate::{Booking, DeadLetterReason, Reading, RoomVersion, TenantId};

/// Which of a tenant's topics a record came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Topic {
    /// `occupancy.<tenant>`.
    Readings,
    /// `rooms.<tenant>`.
    Rooms,
    /// `bookings.<tenant>`.
    Bookings,
}

/// The readings of one room's 15m window, once the window is final: every counted
/// reading with all its fields (`readings`), the later revision of a duplicate only.
#[derive(Clone, Debug, PartialEq)]
pub struct FinalReadings {
    /// The tenant.
    pub tenant: TenantId,
    /// The room's office.
    pub office_id: Arc<str>,
    /// The room.
    pub room_id: Arc<str>,
    /// The readings partition they came from.
    pub partition: i32,
    /// The room's capacity at the window's last instant.
    pub capacity: u32,
    /// The readings, by (ts, sensor).
    pub readings: Vec<FinalReading>,
}

/// One counted reading.
#[derive(Clone, Debug, PartialEq)]
pub struct FinalReading {
    /// The sensor.
    pub sensor_id: Arc<str>,
    /// Event time, ms.
    pub ts: i64,
    /// People counted.
    pub people_count: i32,
    /// The optional measurements (v1: temperature, humidity; v2: co2, battery).
    pub extra: Extra,
    /// The writer schema's registry id.
    pub schema_id: u32,
    /// Its offset: a later revision of the same (room, sensor, ts) has a higher one.
    pub offset: i64,
}

/// A reading's optional measurements.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Extra {
    /// °C.
    pub temperature: Option<f32>,
    /// %.
    pub humidity: Option<f32>,
    /// ppm (v2).
    pub co2_ppm: Option<i32>,
    /// % (v2).
    pub battery_pct: Option<f32>,
}

impl Extra {
    /// The optional fields of `r`.
    pub fn of(r: &Reading) -> Self {
        Self {
            temperature: r.temperature,
            humidity: r.humidity,
            co2_ppm: r.co2_ppm,
            battery_pct: r.battery_pct,
        }
    }
}

/// A rejected input with the original bytes and where they came from.
#[derive(Clone, Debug, PartialEq)]
pub struct DeadLetter {
    /// The tenant; the letter goes to `deadletter.<tenant>`.
    pub tenant: TenantId,
    /// Header `rf-source-topic`.
    pub source_topic: String,
    /// Readings or rooms.
    pub topic: Topic,
    /// Header `rf-source-partition`.
    pub partition: i32,
    /// Header `rf-source-offset`.
    pub offset: i64,
    /// The original key.
    pub key: Option<Vec<u8>>,
    /// The original value.
    pub value: Option<Vec<u8>>,
    /// Header `rf-reason`.
    pub reason: DeadLetterReason,
    /// Header `rf-detail`.
    pub detail: String,
}

/// One revision of a room's window row (`room_utilization`).
#[derive(Clone, Debug, PartialEq)]
pub struct RoomRow {
    /// The tenant.
    pub tenant: TenantId,
    /// Window size.
    pub granularity: Granularity,
    /// The room's office.
    pub office_id: String,
    /// The room.
    pub room_id: String,
    /// Window start, ms.
    pub window_start: i64,
    /// Window end (exclusive), ms.
    pub window_end: i64,
    /// Readings counted.
    pub samples: u32,
    /// Mean people count.
    pub avg_people: f64,
    /// Largest people count.
    pub peak_people: u32,
    /// Share of readings with someone in the room.
    pub occupied_ratio: f64,
    /// Capacity of the version in effect at `window_end - 1 ms`.
    pub capacity: u32,
    /// `avg_people / capacity`.
    pub utilization: f64,
    /// Whether this is the last revision.
    pub is_final: bool,
    /// Grows with every revision.
    pub version: u64,
}

/// A room's final day window, with the local date it covers (`room_days`): the daily
/// table reports, slices and benchmarks read, one row per room and local day.
#[derive(Clone, Debug, PartialEq)]
pub struct RoomDay {
    /// The local date, in the zone of the room's office.
    pub day: chrono::NaiveDate,
    /// The final `1d` row.
    pub row: RoomRow,
}

/// One revision of an office's window row (`office_utilization`).
#[derive(Clone, Debug, PartialEq)]
pub struct OfficeRow {
    /// The tenant.
    pub tenant: TenantId,
    /// Window size.
    pub granularity: Granularity,
    /// The office.
    pub office_id: String,
    /// Window start, ms.
    pub window_start: i64,
    /// Window end (exclusive), ms.
    pub window_end: i64,
    /// Rooms with at least one reading in the window.
    pub rooms_reporting: u32,
    /// Sum of the rooms' mean people counts.
    pub avg_people: f64,
    /// Largest per-minute sum of the rooms' mean counts in that minute.
    pub peak_people: f64,
    /// Sum of the reporting rooms' capacities.
    pub capacity: u32,
    /// `avg_people / capacity`.
    pub utilization: f64,
    /// Whether this is the last revision.
    pub is_final: bool,
    /// Grows with every revision.
    pub version: u64,
}

/// A room's latest reading, for `rf:<tenant>:room:<room_id>`.
#[derive(Clone, Debug, PartialEq)]
pub struct LiveRoom {
    /// The tenant.
    pub tenant: TenantId,
    /// The room.
    pub room_id: String,
    /// Its office.
    pub office_id: String,
    /// People at `ts`.
    pub people: i32,
    /// When, ms.
    pub ts: i64,
    /// Capacity of the version in effect at `ts`.
    pub capacity: u32,
    /// `people / capacity`.
    pub utilization: f64,
}

/// An office's current occupancy, for `rf:<tenant>:office:<office_id>`.
#[derive(Clone, Debug, PartialEq)]
pub struct LiveOffice {
    /// The tenant.
    pub tenant: TenantId,
    /// The office.
    pub office_id: String,
    /// People over the rooms reporting.
    pub people: i64,
    /// Capacity of the rooms reporting.
    pub capacity: u64,
    /// Rooms whose latest reading is at most 10 minutes older than the office's newest.
    pub rooms_reporting: u32,
    /// `people / capacity`.
    pub utilization: f64,
    /// The office's newest reading, ms.
    pub ts: i64,
}

/// How far a partition may be committed once this epoch's effects are acknowledged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// The tenant.
    pub tenant: TenantId,
    /// The readings partition.
    pub partition: i32,
    /// The offset to commit: the oldest reading still held in window state, or the next
    /// unread offset when nothing is held. Replaying from it rebuilds the state exactly.
    pub commit_offset: i64,
    /// The partition watermark just before `commit_offset` was first processed.
    pub watermark: i64,
    /// The partition watermark now: windows final by it are written once this epoch is
    /// acknowledged, and a replay must not reopen them.
    pub current_watermark: i64,
    /// The next offset after everything processed so far: effects of offsets below it
    /// have been written and must not be written again during a replay.
    pub processed_until: i64,
    /// Readings counted in final room windows during the epoch.
    pub counted: u64,
    /// Readings replaced by a later reading with the same key during the epoch.
    pub replaced: u64,
    /// The tenant's rooms partitions with the next offset read by this worker: what
    /// room versions before them changed in final rows is written once this epoch is.
    pub rooms: Vec<(i32, i64)>,
}

/// A room version changed the capacity of windows that are final already: every final
/// row of `room_id` in `office_id` whose last instant lies in `[from, until)` gets
/// `capacity` and the utilization that follows, and so do the office's rows of those
/// windows. The rows' readings are gone from memory, but these columns need none.
#[derive(Clone, Debug, PartialEq)]
pub struct Restate {
    /// The tenant.
    pub tenant: TenantId,
    /// The room.
    pub room_id: String,
    /// Its office over the range.
    pub office_id: String,
    /// First instant whose version changed, epoch ms.
    pub from: i64,
    /// End of the changed range, epoch ms (exclusive; `i64::MAX` when open).
    pub until: i64,
    /// The capacity in effect over the range now.
    pub capacity: u32,
    /// The revision's version: above every row it replaces.
    pub version: u64,
}

/// Everything the dataflow hands to the sinks.
#[derive(Clone, Debug)]
pub enum Output {
    /// A room window revision.
    Room(RoomRow),
    /// An office window revision.
    Office(OfficeRow),
    /// A room's final day window, for the daily table.
    RoomDay(RoomDay),
    /// The counted readings of a room's 15m window that just became final.
    Readings(FinalReadings),
    /// A room's latest state.
    LiveRoom(LiveRoom),
    /// An office's latest state.
    LiveOffice(LiveOffice),
    /// A rejected reading, for the tenant's dead-letter topic.
    DeadLetter(DeadLetter),
    /// A rejected room metadata record: logged and counted, not dead-lettered (the rooms
    /// topic is read from its start on every start, and dead letters are for readings).
    RoomRejected(DeadLetter),
    /// A room version to mirror into ClickHouse.
    RoomVersion(TenantId, Arc<RoomVersion>),
    /// A withdrawn room version (room id, effective_from) to remove from ClickHouse.
    RoomWithdrawn(TenantId, String, i64),
    /// Final rows to rewrite after a room version changed in the past.
    Restate(Restate),
    /// Progress of a partition.
    Checkpoint(Checkpoint),
    /// An anomaly found, or a revision of one still going on.
    Anomaly(Anomaly),
    /// A forecast issued for a room or an office.
    Forecast(ForecastSeries),
    /// A model's state after it learnt, to persist for restarts.
    Model(ModelState),
    /// A booking version read from `bookings.<tenant>`, on its way to the bookings
    /// operator.
    Booking(BookingEvent),
    /// A rejected booking record: logged and counted, not dead-lettered (the bookings
    /// topic is read from its start on every start, like the rooms topic).
    BookingRejected(DeadLetter),
    /// One revision of a booked-versus-used row.
    BookingUsage(BookingUsageRow),
}

/// A booking version as read.
#[derive(Clone, Debug, PartialEq)]
pub struct BookingEvent {
    /// The tenant.
    pub tenant: TenantId,
    /// The bookings partition.
    pub partition: i32,
    /// Its offset there.
    pub offset: i64,
    /// The version.
    pub booking: Arc<Booking>,
}

/// A room's or an office's bookings set against its occupancy in one window
/// (`booking_usage`). Minutes are whole minutes of the window: a minute is booked when a
/// booking covers its first instant, used when a counted reading within it saw somebody,
/// and reported when any counted reading fell within it. So
/// `booked = booked_used + ghost + booked_unreported`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BookingUsageRow {
    /// The tenant.
    pub tenant: TenantId,
    /// Window size.
    pub granularity: Granularity,
    /// The office.
    pub office_id: String,
    /// The room; empty on an office's row (the sum of its rooms').
    pub room_id: String,
    /// Window start, ms.
    pub window_start: i64,
    /// Window end (exclusive), ms.
    pub window_end: i64,
    /// Minutes booked (overlapping bookings count once).
    pub booked_minutes: u32,
    /// Booked minutes in which somebody was there.
    pub booked_used_minutes: u32,
    /// Booked minutes reported empty: ghost bookings.
    pub ghost_minutes: u32,
    /// Booked minutes without any reading: neither used nor empty.
    pub booked_unreported_minutes: u32,
    /// Minutes used without a booking.
    pub unbooked_used_minutes: u32,
    /// Bookings starting in the window.
    pub meetings: u32,
    /// Of those lasting 15 minutes or more, the ones in whose first 15 minutes nobody
    /// was seen (and at least one reading said so).
    pub no_shows: u32,
    /// On a room's 15m row: bit i set if minute i was used (0 on other rows). With
    /// `reported_mask`, what a restarted pipeline sets later bookings against.
    pub used_mask: u16,
    /// On a room's 15m row: bit i set if minute i was reported.
    pub reported_mask: u16,
    /// Grows with every revision.
    pub version: u64,
}

/// What kind of thing an anomaly or forecast is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EntityKind {
    /// A room.
    Room,
    /// An office.
    Office,
    /// A sensor of a room.
    Sensor,
}

impl EntityKind {
    /// The value of its ClickHouse Enum8.
    pub fn enum_value(self) -> i8 {
        self as i8 + 1
    }

    /// The contract's label.
    pub fn label(self) -> &'static str {
        match self {
            Self::Room => "room",
            Self::Office => "office",
            Self::Sensor => "sensor",
        }
    }
}

/// The kinds of anomaly, with the contract's labels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AnomalyKind {
    /// Occupancy far from the entity's own pattern for that hour of the week.
    Occupancy,
    /// Above capacity for at least the configured minutes.
    CapacityBreach,
    /// A sensor repeating one non-zero count for hours while its office is in use.
    StuckSensor,
    /// A room without readings for the configured minutes while its office reports.
    SilentSensor,
    /// Counts persistently above 1.5 × capacity.
    ImplausibleValue,
}

impl AnomalyKind {
    /// The value of its ClickHouse Enum8.
    pub fn enum_value(self) -> i8 {
        self as i8 + 1
    }

    /// Every kind.
    pub const ALL: [Self; 5] = [
        Self::Occupancy,
        Self::CapacityBreach,
        Self::StuckSensor,
        Self::SilentSensor,
        Self::ImplausibleValue,
    ];

    /// The contract's label.
    pub fn label(self) -> &'static str {
        match self {
            Self::Occupancy => "occupancy",
            Self::CapacityBreach => "capacity_breach",
            Self::StuckSensor => "stuck_sensor",
            Self::SilentSensor => "silent_sensor",
            Self::ImplausibleValue => "implausible_value",
        }
    }
}

pub use crate::Severity;

/// An anomaly of one entity over `[window_start, window_end)`. An anomaly that lasts
/// (a breach, a silent sensor) is written when it is found and revised as it goes on,
/// under the same (kind, entity, window_start) and a growing version.
#[derive(Clone, Debug, PartialEq)]
pub struct Anomaly {
    /// The tenant.
    pub tenant: TenantId,
    /// What was found.
    pub kind: AnomalyKind,
    /// Room, office or sensor.
    pub entity_kind: EntityKind,
    /// The room, office or sensor id.
    pub entity_id: String,
    /// The office it belongs to.
    pub office_id: String,
    /// The room, for sensors and rooms; empty for offices.
    pub room_id: String,
    /// Start, ms.
    pub window_start: i64,
    /// End (exclusive), ms; grows while the anomaly goes on.
    pub window_end: i64,
    /// How unusual, in [0, 1].
    pub score: f64,
    /// How serious.
    pub severity: Severity,
    /// What was seen against what was expected, as a JSON object.
    pub details: String,
    /// Whether it was still going on when written.
    pub ongoing: bool,
}

/// Forecasts of one entity, issued once the window ending at `issued_at` was final:
/// hourly mean occupancy (`1h`) or the daily peak (`1d`).
#[derive(Clone, Debug, PartialEq)]
pub struct ForecastSeries {
    /// The tenant.
    pub tenant: TenantId,
    /// `H1` (mean people per hour) or `D1` (peak people per local day).
    pub granularity: Granularity,
    /// Room or office.
    pub entity_kind: EntityKind,
    /// The room or office.
    pub entity_id: String,
    /// The office.
    pub office_id: String,
    /// The end of the last window learnt from, ms.
    pub issued_at: i64,
    /// (window start, window end, expected, low, high), in time order.
    pub points: Vec<ForecastPoint>,
}

/// One forecast window.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ForecastPoint {
    /// Window start, ms.
    pub start: i64,
    /// Window end (exclusive), ms.
    pub end: i64,
    /// Expected value.
    pub expected: f64,
    /// Lower bound of the 95% interval.
    pub low: f64,
    /// Upper bound of the 95% interval.
    pub high: f64,
}

/// The learnt state of one room's or office's models, as JSON.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelState {
    /// The tenant.
    pub tenant: TenantId,
    /// Room or office.
    pub entity_kind: EntityKind,
    /// The room or office.
    pub entity_id: String,
    /// The office (a worker restoring an office's state takes its rooms' too).
    pub office_id: String,
    /// Grows with each state written (the end of the last window learnt, ms).
    pub version: u64,
    /// The state.
    pub state: String,
}

impl Output {
    /// The tenant the output belongs to.
    pub fn tenant(&self) -> &TenantId {
        match self {
            Self::Room(r) => &r.tenant,
            Self::Office(o) => &o.tenant,
            Self::RoomDay(d) => &d.row.tenant,
            Self::Readings(r) => &r.tenant,
            Self::LiveRoom(r) => &r.tenant,
            Self::LiveOffice(o) => &o.tenant,
            Self::DeadLetter(d) | Self::RoomRejected(d) | Self::BookingRejected(d) => &d.tenant,
            Self::RoomVersion(t, _) | Self::RoomWithdrawn(t, _, _) => t,
            Self::Restate(r) => &r.tenant,
            Self::Checkpoint(c) => &c.tenant,
            Self::Anomaly(a) => &a.tenant,
            Self::Forecast(f) => &f.tenant,
            Self::Model(m) => &m.tenant,
            Self::Booking(b) => &b.tenant,
            Self::BookingUsage(b) => &b.tenant,
        }
    }
}
