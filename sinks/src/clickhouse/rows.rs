//! The ClickHouse row layouts (RowBinary, in table column order).

use clickhouse::Row;
use serde::Serialize;

use rf_schemas::rows::{
    Anomaly, BookingUsageRow, FinalReading, FinalReadings, ForecastPoint, ForecastSeries,
    ModelState, OfficeRow, RoomDay, RoomRow,
};
use rf_schemas::RoomVersion;

fn secs(ms: i64) -> u32 {
    u32::try_from(ms.div_euclid(1000)).unwrap_or(u32::MAX)
}

/// A ClickHouse `Date`: days since 1970-01-01, clamped to its range.
fn days_since_epoch(day: chrono::NaiveDate) -> u16 {
    let days = (day - chrono::NaiveDate::default()).num_days();
    days.clamp(0, i64::from(u16::MAX)) as u16
}

/// A row of `room_utilization`.
#[derive(Row, Serialize)]
pub struct RoomUtilization<'a> {
    granularity: i8,
    office_id: &'a str,
    room_id: &'a str,
    window_start: u32,
    window_end: u32,
    samples: u32,
    avg_people: f64,
    peak_people: u32,
    occupied_ratio: f64,
    capacity: u32,
    utilization: f64,
    #[serde(rename = "final")]
    is_final: u8,
    version: u64,
    updated_at: u32,
}

impl<'a> RoomUtilization<'a> {
    /// The row for one revision, stamped `updated_at` (seconds).
    pub fn new(r: &'a RoomRow, updated_at: u32) -> Self {
        Self {
            granularity: r.granularity.enum_value(),
            office_id: &r.office_id,
            room_id: &r.room_id,
            window_start: secs(r.window_start),
            window_end: secs(r.window_end),
            samples: r.samples,
            avg_people: r.avg_people,
            peak_people: r.peak_people,
            occupied_ratio: r.occupied_ratio,
            capacity: r.capacity,
            utilization: r.utilization,
            is_final: u8::from(r.is_final),
            version: r.version,
            updated_at,
        }
    }
}

/// A row of `room_days`.
#[derive(Row, Serialize)]
pub struct RoomDayRow<'a> {
    day: u16,
    office_id: &'a str,
    room_id: &'a str,
    window_start: u32,
    window_end: u32,
    samples: u32,
    avg_people: f64,
    peak_people: u32,
    occupied_ratio: f64,
    capacity: u32,
    utilization: f64,
    version: u64,
}

impl<'a> RoomDayRow<'a> {
    /// The row of a final day window.
    pub fn new(d: &'a RoomDay) -> Self {
        let r = &d.row;
        Self {
            day: days_since_epoch(d.day),
            office_id: &r.office_id,
            room_id: &r.room_id,
            window_start: secs(r.window_start),
            window_end: secs(r.window_end),
            samples: r.samples,
            avg_people: r.avg_people,
            peak_people: r.peak_people,
            occupied_ratio: r.occupied_ratio,
            capacity: r.capacity,
            utilization: r.utilization,
            version: r.version,
        }
    }
}

/// A row of `readings`.
#[derive(Row, Serialize)]
pub struct ReadingRow<'a> {
    office_id: &'a str,
    room_id: &'a str,
    sensor_id: &'a str,
    ts: u32,
    ts_ms: i64,
    people_count: i32,
    temperature: Option<f32>,
    humidity: Option<f32>,
    co2_ppm: Option<i32>,
    battery_pct: Option<f32>,
    schema_id: u32,
    source_partition: i32,
    version: u64,
}

impl<'a> ReadingRow<'a> {
    /// The row of one reading of `window`; its offset is the version.
    pub fn new(window: &'a FinalReadings, r: &'a FinalReading) -> Self {
        Self {
            office_id: &window.office_id,
            room_id: &window.room_id,
            sensor_id: &r.sensor_id,
            ts: secs(r.ts),
            ts_ms: r.ts,
            people_count: r.people_count,
            temperature: r.extra.temperature,
            humidity: r.extra.humidity,
            co2_ppm: r.extra.co2_ppm,
            battery_pct: r.extra.battery_pct,
            schema_id: r.schema_id,
            source_partition: window.partition,
            version: r.offset as u64,
        }
    }
}

/// A row of `office_utilization`.
#[derive(Row, Serialize)]
pub struct OfficeUtilization<'a> {
    granularity: i8,
    office_id: &'a str,
    window_start: u32,
    window_end: u32,
    rooms_reporting: u32,
    avg_people: f64,
    peak_people: f64,
    capacity: u32,
    utilization: f64,
    #[serde(rename = "final")]
    is_final: u8,
    version: u64,
    updated_at: u32,
}

impl<'a> OfficeUtilization<'a> {
    /// The row for one revision, stamped `updated_at` (seconds).
    pub fn new(o: &'a OfficeRow, updated_at: u32) -> Self {
        Self {
            granularity: o.granularity.enum_value(),
            office_id: &o.office_id,
            window_start: secs(o.window_start),
            window_end: secs(o.window_end),
            rooms_reporting: o.rooms_reporting,
            avg_people: o.avg_people,
            peak_people: o.peak_people,
            capacity: o.capacity,
            utilization: o.utilization,
            is_final: u8::from(o.is_final),
            version: o.version,
            updated_at,
        }
    }
}

/// A row of `rooms`.
#[derive(Row, Serialize)]
pub struct Room<'a> {
    room_id: &'a str,
    office_id: &'a str,
    office_name: &'a str,
    region: &'a str,
    country_code: &'a str,
    timezone: &'a str,
    floor: i32,
    name: &'a str,
    kind: i8,
    capacity: u32,
    area_m2: Option<f32>,
    monthly_cost: Option<f64>,
    effective_from: u32,
    version: u64,
}

impl<'a> Room<'a> {
    /// The row for one room version.
    pub fn new(r: &'a RoomVersion, version: u64) -> Self {
        Self {
            room_id: &r.room_id,
            office_id: &r.office_id,
            office_name: &r.office_name,
            region: &r.region,
            country_code: &r.country_code,
            timezone: r.timezone.name(),
            floor: r.floor,
            name: &r.name,
            kind: r.kind.enum_value(),
            capacity: r.capacity,
            area_m2: r.area_m2,
            monthly_cost: r.monthly_cost,
            effective_from: secs(r.effective_from),
            version,
        }
    }
}

/// A row of `anomalies`.
#[derive(Row, Serialize)]
pub struct AnomalyRow<'a> {
    kind: i8,
    entity_kind: i8,
    entity_id: &'a str,
    office_id: &'a str,
    room_id: &'a str,
    window_start: u32,
    window_end: u32,
    score: f64,
    severity: i8,
    details: &'a str,
    ongoing: u8,
    version: u64,
    detected_at: u32,
}

impl<'a> AnomalyRow<'a> {
    /// The row of one revision of an anomaly, its version its end (and an ended episode's
    /// above an ongoing one's with the same end).
    pub fn new(a: &'a Anomaly, detected_at: u32) -> Self {
        Self {
            kind: a.kind.enum_value(),
            entity_kind: a.entity_kind.enum_value(),
            entity_id: &a.entity_id,
            office_id: &a.office_id,
            room_id: &a.room_id,
            window_start: secs(a.window_start),
            window_end: secs(a.window_end),
            score: a.score,
            severity: a.severity.enum_value(),
            details: &a.details,
            ongoing: u8::from(a.ongoing),
            version: a.window_end.max(0) as u64 * 2 + u64::from(!a.ongoing),
            detected_at,
        }
    }
}

/// A row of `forecasts`.
#[derive(Row, Serialize)]
pub struct ForecastRow<'a> {
    granularity: i8,
    entity_kind: i8,
    entity_id: &'a str,
    office_id: &'a str,
    window_start: u32,
    window_end: u32,
    expected: f64,
    low: f64,
    high: f64,
    issued_at: u32,
    version: u64,
}

impl<'a> ForecastRow<'a> {
    /// The row of one forecast window of `f`, its version the issue time.
    pub fn new(f: &'a ForecastSeries, p: &ForecastPoint) -> Self {
        Self {
            granularity: f.granularity.enum_value(),
            entity_kind: f.entity_kind.enum_value(),
            entity_id: &f.entity_id,
            office_id: &f.office_id,
            window_start: secs(p.start),
            window_end: secs(p.end),
            expected: p.expected,
            low: p.low,
            high: p.high,
            issued_at: secs(f.issued_at),
            version: f.issued_at.max(0) as u64,
        }
    }
}

/// A row of `model_state`.
#[derive(Row, Serialize)]
pub struct ModelStateRow<'a> {
    office_id: &'a str,
    entity_kind: i8,
    entity_id: &'a str,
    state: &'a str,
    version: u64,
    updated_at: u32,
}

impl<'a> ModelStateRow<'a> {
    /// The row of one state.
    pub fn new(m: &'a ModelState, updated_at: u32) -> Self {
        Self {
            office_id: &m.office_id,
            entity_kind: m.entity_kind.enum_value(),
            entity_id: &m.entity_id,
            state: &m.state,
            version: m.version,
            updated_at,
        }
    }
}

/// A row of `booking_usage`.
#[derive(Row, Serialize)]
pub struct BookingUsage<'a> {
    granularity: i8,
    office_id: &'a str,
    room_id: &'a str,
    window_start: u32,
    window_end: u32,
    booked_minutes: u32,
    booked_used_minutes: u32,
    ghost_minutes: u32,
    booked_unreported_minutes: u32,
    unbooked_used_minutes: u32,
    meetings: u32,
    no_shows: u32,
    used_mask: u16,
    reported_mask: u16,
    version: u64,
    updated_at: u32,
}

impl<'a> BookingUsage<'a> {
    /// The row for one revision, stamped `updated_at` (seconds).
    pub fn new(b: &'a BookingUsageRow, updated_at: u32) -> Self {
        Self {
            granularity: b.granularity.enum_value(),
            office_id: &b.office_id,
            room_id: &b.room_id,
            window_start: secs(b.window_start),
            window_end: secs(b.window_end),
            booked_minutes: b.booked_minutes,
            booked_used_minutes: b.booked_used_minutes,
            ghost_minutes: b.ghost_minutes,
            booked_unreported_minutes: b.booked_unreported_minutes,
            unbooked_used_minutes: b.unbooked_used_minutes,
            meetings: b.meetings,
            no_shows: b.no_shows,
            used_mask: b.used_mask,
            reported_mask: b.reported_mask,
            version: b.version,
            updated_at,
        }
    }
}
