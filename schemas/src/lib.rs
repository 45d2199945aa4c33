//! roomflow's core: its data contract in code. Tenants and their resource names, the
//! Avro records with their Confluent framing, validation rules, dead-letter reasons, the
//! windows, the rows the pipeline writes and the ClickHouse DDL. Every other crate builds
//! on it; it depends on none of them.

pub mod alerts;
pub mod benchmark;
pub mod booking;
pub mod deadletter;
pub mod framing;
pub mod reading;
pub mod registry;
pub mod room;
pub mod rows;
pub mod tenant;
pub mod windows;

pub use alerts::Severity;
pub use booking::Booking;
pub use deadletter::{DeadLetterReason, Rejection};
pub use reading::Reading;
pub use room::{RoomKind, RoomVersion};
pub use tenant::{TenantConfig, TenantId, Tier};
pub use windows::Granularity;

/// An error with its causes, outermost first: `a: b: c`. For logs and messages that
/// carry an error as one string.
pub fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(e) = cause {
        text.push_str(": ");
        text.push_str(&e.to_string());
        cause = e.source();
    }
    text
}

/// The wall clock, ms since the Unix epoch (0 before it): roomflow's one clock.
pub fn unix_ms() -> i64 {
    (unix_micros() / 1000) as i64
}

/// The wall clock, µs since the Unix epoch (0 before it): the clock of rows' versions.
pub fn unix_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// The Avro schema of `io.roomflow.OccupancyReading` (v1).
pub const OCCUPANCY_READING_AVSC: &str = include_str!("../avro/occupancy_reading.avsc");
/// The Avro schema of `io.roomflow.OccupancyReading` v2: v1 plus `co2_ppm` and
/// `battery_pct`, both optional with defaults (BACKWARD compatible).
pub const OCCUPANCY_READING_V2_AVSC: &str = include_str!("../avro/occupancy_reading_v2.avsc");
/// The Avro schema of `io.roomflow.Room`.
pub const ROOM_AVSC: &str = include_str!("../avro/room.avsc");
/// The Avro schema of `io.roomflow.Booking`.
pub const BOOKING_AVSC: &str = include_str!("../avro/booking.avsc");
/// ClickHouse DDL of one tenant's database, with `{db}` standing for its name.
pub const TENANT_DDL: &str = include_str!("../clickhouse/tenant.sql");
/// ClickHouse DDL of the platform's tables (`rf_platform`).
pub const PLATFORM_DDL: &str = include_str!("../clickhouse/platform.sql");

/// The schemas the project registers, in the fixed order the local registry needs
/// (it hands out ids in registration order): `(topic prefix, schema)`.
pub const SUBJECT_SCHEMAS: [(&str, &str); 2] = [
    (tenant::READINGS_PREFIX, OCCUPANCY_READING_AVSC),
    (tenant::ROOMS_PREFIX, ROOM_AVSC),
];

/// Later versions, registered after every tenant's [`SUBJECT_SCHEMAS`] (so that adding one
/// changes no earlier id), in this order.
pub const LATER_SCHEMAS: [(&str, &str); 2] = [
    (tenant::READINGS_PREFIX, OCCUPANCY_READING_V2_AVSC),
    (tenant::BOOKINGS_PREFIX, BOOKING_AVSC),
];

/// The DDL statements that create `tenant`'s database and tables, one per element.
pub fn tenant_ddl(tenant: &TenantId) -> Vec<String> {
    statements(TENANT_DDL)
        .iter()
        .map(|s| s.replace("{db}", &tenant.clickhouse_db()))
        .collect()
}

/// The DDL statements that create the platform's database and tables.
pub fn platform_ddl() -> Vec<String> {
    statements(PLATFORM_DDL)
}

/// Columns of the platform's tables added after the tables were first made, as
/// `(table, column, type)`: ClickHouse 18.16 has no `ADD COLUMN IF NOT EXISTS`, so whoever
/// makes the tables adds those missing (`rf_sinks::clickhouse::create_platform`).
pub const PLATFORM_ADDED_COLUMNS: [(&str, &str, &str); 1] =
    [("api_keys", "offices", "Array(String)")];

/// A SQL file's statements, comment lines left out (comments may hold `;`).
fn statements(sql: &str) -> Vec<String> {
    let without_comments: Vec<&str> = sql
        .lines()
        .filter(|l| !l.trim_start().starts_with("--"))
        .collect();
    without_comments
        .join("\n")
        .split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ddl_names_the_tenant_database() {
        let t = TenantId::parse("acme-eu").unwrap();
        let ddl = tenant_ddl(&t);
        assert_eq!(ddl.len(), 12);
        assert!(ddl.iter().all(|s| s.starts_with("CREATE ")), "{ddl:#?}");
        assert!(ddl[0].contains("CREATE DATABASE IF NOT EXISTS rf_acme_eu"));
        assert!(ddl[1].contains("rf_acme_eu.room_utilization"));
        assert!(ddl.iter().any(|s| s.contains("rf_acme_eu.room_days")));
        assert!(ddl.iter().all(|s| !s.contains("{db}")));
    }

    #[test]
    fn embedded_schemas_parse() {
        for (_, avsc) in SUBJECT_SCHEMAS {
            apache_avro::Schema::parse_str(avsc).unwrap();
        }
    }

    #[test]
    fn an_error_chain_names_every_cause_outermost_first() {
        #[derive(Debug, thiserror::Error)]
        #[error("cannot list topics")]
        struct Outer(#[source] std::io::Error);
        let e = Outer(std::io::Error::other("connection refused"));
        assert_eq!(chain(&e), "cannot list topics: connection refused");
        assert_eq!(chain(&std::io::Error::other("alone")), "alone");
    }
}
