//! The ClickHouse sink: every output ClickHouse stores (the registry in `tables.rs`), one
//! insert per tenant and table per batch; then restatements of final rows whose room
//! capacity changed in the past, and withdrawn room versions.

pub mod benchmark;
pub mod roles;
mod rows;
mod tables;

use std::collections::BTreeSet;
use std::time::Duration;

use clickhouse::Client;

use rf_schemas::TenantId;

use crate::config::ClickHouseConfig;
use crate::{Batch, Sink, SinkError};

pub use rows::{
    AnomalyRow, ForecastRow, ModelStateRow, OfficeUtilization, ReadingRow, Room, RoomUtilization,
};

/// A client for `config`, without a database (tables are named per tenant).
pub fn client(config: &ClickHouseConfig) -> Client {
    let mut client = Client::default()
        .with_url(&config.url)
        .with_user(&config.user)
        .with_validation(config.validation);
    if !config.password.expose().is_empty() {
        client = client.with_password(config.password.expose());
    }
    client
}

/// Makes the platform's tables (`rf_platform`) where they are missing, and adds the
/// columns later versions added ([`rf_schemas::PLATFORM_ADDED_COLUMNS`]) to tables made
/// before them.
pub async fn create_platform(client: &Client) -> Result<(), clickhouse::error::Error> {
    for statement in rf_schemas::platform_ddl() {
        client.query(&statement).execute().await?;
    }
    for (table, column, kind) in rf_schemas::PLATFORM_ADDED_COLUMNS {
        let has = || async {
            client
                .query(
                    "SELECT count() FROM system.columns \
                     WHERE database = 'rf_platform' AND table = ? AND name = ?",
                )
                .bind(table)
                .bind(column)
                .fetch_one::<u64>()
                .await
        };
        if has().await? == 0 {
            let add = format!("ALTER TABLE rf_platform.{table} ADD COLUMN {column} {kind}");
            // Another process adding it at the same moment is not a failure.
            if let Err(error) = client.query(&add).execute().await {
                if has().await? == 0 {
                    return Err(error);
                }
            }
        }
    }
    Ok(())
}

/// Writes window rows and room versions to each tenant's database.
#[derive(Clone)]
pub struct ClickHouseSink {
    client: Client,
    timeout: Duration,
}

impl ClickHouseSink {
    /// A sink writing through `config`.
    pub fn new(config: &ClickHouseConfig) -> Self {
        Self {
            client: client(config),
            timeout: Duration::from_secs(config.timeout_secs),
        }
    }

    /// Every table's rows (one INSERT per tenant and table), then the restatements of
    /// final rows (after this batch's rows: they may be among those to restate), then
    /// the withdrawn room versions.
    async fn insert_all(&self, batch: &Batch) -> Result<(), Failed> {
        let now = seconds(rf_schemas::unix_ms());
        for table in tables::ALL {
            table.insert(&self.client, batch, now).await?;
        }
        for r in &batch.restates {
            let db = r.tenant.clickhouse_db();
            restate(&self.client.clone().with_database(&db), r)
                .await
                .map_err(|error| Failed {
                    db,
                    table: "room_utilization",
                    error,
                })?;
        }
        for (tenant, room_id, from) in &batch.withdrawn_rooms {
            let db = tenant.clickhouse_db();
            self.client
                .clone()
                .with_database(&db)
                .query("ALTER TABLE rooms DELETE WHERE room_id = ? AND effective_from = ?")
                .bind(room_id.as_str())
                .bind(seconds(*from))
                .execute()
                .await
                .map_err(|error| Failed {
                    db,
                    table: "rooms",
                    error,
                })?;
        }
        Ok(())
    }
}

/// What a batch changes in ClickHouse, by tenant: the query service's cached answers
/// about it are stale once it is written (see the Redis generation counters).
#[derive(Debug, Default, PartialEq)]
pub struct Touched {
    /// Tenants with any change.
    pub tenants: BTreeSet<TenantId>,
    /// (tenant, UTC month `yyyymm`) of window rows written.
    pub months: BTreeSet<(TenantId, u32)>,
    /// Tenants whose history changed beyond the windows (room versions, restatements).
    pub history: BTreeSet<TenantId>,
}

/// What `batch` changes in ClickHouse.
pub fn touched(batch: &Batch) -> Touched {
    let mut touched = Touched::default();
    for table in tables::ALL {
        table.touch(batch, &mut touched);
    }
    let changed = batch
        .restates
        .iter()
        .map(|r| &r.tenant)
        .chain(batch.withdrawn_rooms.iter().map(|(t, _, _)| t));
    for tenant in changed {
        touched.tenants.insert(tenant.clone());
        touched.history.insert(tenant.clone());
    }
    touched
}

/// A failed statement, with the tenant database and the table it wrote to.
#[derive(Debug)]
struct Failed {
    db: String,
    table: &'static str,
    error: clickhouse::error::Error,
}

impl Failed {
    /// As the sink reports it: permanent errors (the table's shape, the data, the
    /// credentials) fail the pipeline at once, naming what to fix; the rest are retried.
    fn into_sink_error(self) -> SinkError {
        let retryable = retryable(&self.error);
        let message = format!("{}.{}: {}", self.db, self.table, self.error);
        let tenant = self
            .db
            .strip_prefix("rf_")
            .unwrap_or(&self.db)
            .replace('_', "-");
        SinkError {
            sink: "clickhouse",
            message: if retryable {
                message
            } else {
                format!("tenant {tenant}: {message} (a permanent error: retrying cannot help)")
            },
            retryable,
        }
    }
}

/// ClickHouse error codes that the same statement meets again on every retry: a column
/// or table missing or of another type, data that does not parse, a refused login or
/// grant, a statement the server does not understand.
const PERMANENT_CODES: [u32; 19] = [
    6, 10, 16, 27, 38, 41, 43, 44, 47, 53, 60, 62, 70, 81, 117, 192, 193, 497, 516,
];

/// Whether the same write may succeed later.
fn retryable(error: &clickhouse::error::Error) -> bool {
    use clickhouse::error::Error;
    match error {
        Error::BadResponse(message) => {
            !code_of(message).is_some_and(|c| PERMANENT_CODES.contains(&c))
        }
        Error::SchemaMismatch(_)
        | Error::Custom(_)
        | Error::InvalidParams(_)
        | Error::Unsupported(_) => false,
        _ => true,
    }
}

/// The `Code: N` of a server's error message.
fn code_of(message: &str) -> Option<u32> {
    let rest = &message[message.find("Code: ")? + 6..];
    rest[..rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len())]
        .parse()
        .ok()
}

/// Epoch ms as ClickHouse `DateTime` seconds, clamped to its range.
fn seconds(ms: i64) -> u32 {
    ms.div_euclid(1000).clamp(0, i64::from(u32::MAX)) as u32
}

/// Rewrites the final rows of the windows `r` covers (last instant in `[from, until)`)
/// with the new capacity: the room's rows and days, then its office's rows from the capacities
/// of the office's final room rows. Rows already right are left alone, so a repeated
/// restatement writes nothing. Plain `INSERT … SELECT … FINAL`, which 18.16 runs too.
async fn restate(client: &Client, r: &rf_schemas::rows::Restate) -> clickhouse::error::Result<()> {
    // `window_end - 1 ms` in [from, until) is, in whole seconds, from < end <= until.
    let range = if r.until == i64::MAX {
        format!("window_end > toDateTime({})", seconds(r.from))
    } else {
        format!(
            "window_end > toDateTime({}) AND window_end <= toDateTime({})",
            seconds(r.from),
            seconds(r.until)
        )
    };
    client
        .query(&format!(
            "INSERT INTO room_utilization (granularity, office_id, room_id, window_start, \
             window_end, samples, avg_people, peak_people, occupied_ratio, capacity, \
             utilization, final, version, updated_at) \
             SELECT granularity, office_id, room_id, window_start, window_end, samples, \
             avg_people, peak_people, occupied_ratio, toUInt32(?), avg_people / ?, final, \
             toUInt64(?), now() FROM room_utilization FINAL \
             WHERE room_id = ? AND office_id = ? AND final = 1 AND {range} AND capacity != ?"
        ))
        .bind(r.capacity)
        .bind(f64::from(r.capacity))
        .bind(r.version)
        .bind(r.room_id.as_str())
        .bind(r.office_id.as_str())
        .bind(r.capacity)
        .execute()
        .await?;
    client
        .query(&format!(
            "INSERT INTO room_days (day, office_id, room_id, window_start, window_end, samples, \
             avg_people, peak_people, occupied_ratio, capacity, utilization, version) \
             SELECT day, office_id, room_id, window_start, window_end, samples, avg_people, \
             peak_people, occupied_ratio, toUInt32(?), avg_people / ?, toUInt64(?) \
             FROM room_days FINAL \
             WHERE room_id = ? AND office_id = ? AND {range} AND capacity != ?"
        ))
        .bind(r.capacity)
        .bind(f64::from(r.capacity))
        .bind(r.version)
        .bind(r.room_id.as_str())
        .bind(r.office_id.as_str())
        .bind(r.capacity)
        .execute()
        .await?;
    client
        .query(&format!(
            "INSERT INTO office_utilization (granularity, office_id, window_start, window_end, \
             rooms_reporting, avg_people, peak_people, capacity, utilization, final, version, \
             updated_at) \
             SELECT granularity, office_id, window_start, window_end, rooms_reporting, \
             avg_people, peak_people, room_capacity, avg_people / room_capacity, final, \
             toUInt64(?), now() \
             FROM (SELECT * FROM office_utilization FINAL \
                   WHERE office_id = ? AND final = 1 AND {range}) \
             ALL INNER JOIN \
             (SELECT granularity, window_start, toUInt32(sum(capacity)) AS room_capacity \
              FROM room_utilization FINAL WHERE office_id = ? AND final = 1 AND {range} \
              GROUP BY granularity, window_start) USING (granularity, window_start) \
             WHERE room_capacity != capacity"
        ))
        .bind(r.version)
        .bind(r.office_id.as_str())
        .bind(r.office_id.as_str())
        .execute()
        .await
}

impl Sink for ClickHouseSink {
    fn name(&self) -> &'static str {
        "clickhouse"
    }

    async fn write(&mut self, batch: &Batch) -> Result<(), SinkError> {
        match tokio::time::timeout(self.timeout, self.insert_all(batch)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(failed)) => Err(failed.into_sink_error()),
            Err(_) => Err(SinkError::transient("clickhouse", "insert timed out")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clickhouse::error::Error;
    use rf_schemas::{rows::RoomRow, Granularity};

    #[test]
    fn a_batch_touches_its_tenants_months_and_history() {
        let (acme, globex) = (
            TenantId::parse("acme").unwrap(),
            TenantId::parse("globex").unwrap(),
        );
        let row = |tenant: &TenantId, window_start| RoomRow {
            tenant: tenant.clone(),
            granularity: Granularity::H1,
            office_id: "lon".into(),
            room_id: "r1".into(),
            window_start,
            window_end: window_start + 3_600_000,
            samples: 1,
            avg_people: 1.0,
            peak_people: 1,
            occupied_ratio: 1.0,
            capacity: 4,
            utilization: 0.25,
            is_final: true,
            version: 1,
        };
        let mut batch = Batch::default();
        assert_eq!(
            touched(&batch),
            Touched::default(),
            "nothing to write, nothing stale"
        );
        // 2026-03-31T23:00Z and 2026-04-01T00:00Z: two months.
        batch.rooms = vec![row(&acme, 1_774_998_000_000), row(&acme, 1_775_001_600_000)];
        batch
            .withdrawn_rooms
            .push((globex.clone(), "r9".into(), 1_775_001_600_000));
        let t = touched(&batch);
        assert_eq!(t.tenants, [acme.clone(), globex.clone()].into());
        assert_eq!(t.months, [(acme.clone(), 202603), (acme, 202604)].into());
        assert_eq!(t.history, [globex].into());
    }

    #[test]
    fn permanent_errors_are_told_from_passing_ones() {
        let bad = |m: &str| Error::BadResponse(m.into());
        let missing = bad("Code: 16, e.displayText() = DB::Exception: No such column occupied_ratio in table rf_acme.room_utilization");
        assert_eq!(code_of(&format!("{missing}")), Some(16));
        assert!(!retryable(&missing));
        assert!(!retryable(&bad("Code: 53. DB::Exception: Type mismatch")));
        assert!(!retryable(&bad(
            "Code: 516. DB::Exception: default: Authentication failed"
        )));
        assert!(retryable(&bad("Code: 252. DB::Exception: Too many parts")));
        assert!(retryable(&bad(
            "Code: 241. DB::Exception: Memory limit exceeded"
        )));
        assert!(retryable(&bad("502 Bad Gateway")));
        assert!(retryable(&Error::TimedOut));
        let failed = Failed {
            db: "rf_acme_eu".into(),
            table: "room_utilization",
            error: missing,
        }
        .into_sink_error();
        assert!(!failed.retryable);
        assert!(
            failed
                .message
                .starts_with("tenant acme-eu: rf_acme_eu.room_utilization: ")
                && failed.message.contains("No such column"),
            "{}",
            failed.message
        );
    }
}
