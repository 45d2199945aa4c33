//! The ClickHouse sink: window revisions, final readings and room versions, one insert per tenant and
//! table per batch; then restatements of final rows whose room capacity changed in the
//! past, and withdrawn room versions.

mod rows;

use std::collections::BTreeMap;
use std::time::Duration;

use clickhouse::{Client, RowWrite};

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

/// Indices into a batch's vectors of one tenant's rows.
#[derive(Default)]
struct TenantRows {
    rooms: Vec<usize>,
    offices: Vec<usize>,
    readings: Vec<usize>,
    versions: Vec<usize>,
    withdrawn: Vec<usize>,
    restates: Vec<usize>,
    anomalies: Vec<usize>,
    forecasts: Vec<usize>,
    models: Vec<usize>,
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

    async fn insert_all(&self, batch: &Batch) -> Result<(), Failed> {
        let now = seconds(rf_schemas::unix_ms());
        let mut by_db: BTreeMap<String, TenantRows> = BTreeMap::new();
        for (i, r) in batch.rooms.iter().enumerate() {
            by_db
                .entry(r.tenant.clickhouse_db())
                .or_default()
                .rooms
                .push(i);
        }
        for (i, o) in batch.offices.iter().enumerate() {
            by_db
                .entry(o.tenant.clickhouse_db())
                .or_default()
                .offices
                .push(i);
        }
        for (i, r) in batch.readings.iter().enumerate() {
            by_db
                .entry(r.tenant.clickhouse_db())
                .or_default()
                .readings
                .push(i);
        }
        for (i, (t, _)) in batch.room_versions.iter().enumerate() {
            by_db.entry(t.clickhouse_db()).or_default().versions.push(i);
        }
        for (i, (t, ..)) in batch.withdrawn_rooms.iter().enumerate() {
            by_db
                .entry(t.clickhouse_db())
                .or_default()
                .withdrawn
                .push(i);
        }
        for (i, r) in batch.restates.iter().enumerate() {
            by_db
                .entry(r.tenant.clickhouse_db())
                .or_default()
                .restates
                .push(i);
        }
        for (i, a) in batch.anomalies.iter().enumerate() {
            let rows = by_db.entry(a.tenant.clickhouse_db()).or_default();
            rows.anomalies.push(i);
        }
        for (i, f) in batch.forecasts.iter().enumerate() {
            let rows = by_db.entry(f.tenant.clickhouse_db()).or_default();
            rows.forecasts.push(i);
        }
        for (i, m) in batch.models.iter().enumerate() {
            let rows = by_db.entry(m.tenant.clickhouse_db()).or_default();
            rows.models.push(i);
        }
        for (
            db,
            TenantRows {
                rooms,
                offices,
                readings,
                versions,
                withdrawn,
                restates,
                anomalies,
                forecasts,
                models,
            },
        ) in by_db
        {
            let client = self.client.clone().with_database(&db);
            let at = |table: &'static str| {
                let db = db.clone();
                move |error| Failed { db, table, error }
            };
            insert_rows::<AnomalyRow<'static>>(
                &client,
                &db,
                "anomalies",
                anomalies
                    .iter()
                    .map(|&i| AnomalyRow::new(&batch.anomalies[i], now)),
            )
            .await?;
            let points = forecasts.iter().flat_map(|&i| {
                let series = &batch.forecasts[i];
                series
                    .points
                    .iter()
                    .map(move |p| ForecastRow::new(series, p))
            });
            insert_rows::<ForecastRow<'static>>(&client, &db, "forecasts", points).await?;
            insert_rows::<ModelStateRow<'static>>(
                &client,
                &db,
                "model_state",
                models
                    .iter()
                    .map(|&i| ModelStateRow::new(&batch.models[i], now)),
            )
            .await?;
            let counted = readings.iter().flat_map(|&i| {
                let window = &batch.readings[i];
                window
                    .readings
                    .iter()
                    .map(move |r| ReadingRow::new(window, r))
            });
            insert_rows::<ReadingRow<'static>>(&client, &db, "readings", counted).await?;
            insert_rows::<RoomUtilization<'static>>(
                &client,
                &db,
                "room_utilization",
                rooms
                    .iter()
                    .map(|&i| RoomUtilization::new(&batch.rooms[i], now)),
            )
            .await?;
            insert_rows::<OfficeUtilization<'static>>(
                &client,
                &db,
                "office_utilization",
                offices
                    .iter()
                    .map(|&i| OfficeUtilization::new(&batch.offices[i], now)),
            )
            .await?;
            // The version is the room version's start: re-reading the compacted topic
            // writes identical rows.
            insert_rows::<Room<'static>>(
                &client,
                &db,
                "rooms",
                versions.iter().map(|&i| {
                    let room = &batch.room_versions[i].1;
                    Room::new(room, room.effective_from as u64)
                }),
            )
            .await?;
            // After this batch's rows: they may be among those to restate.
            for i in restates {
                restate(&client, &batch.restates[i])
                    .await
                    .map_err(at("room_utilization"))?;
            }
            for i in withdrawn {
                let (_, room_id, from) = &batch.withdrawn_rooms[i];
                client
                    .query("ALTER TABLE rooms DELETE WHERE room_id = ? AND effective_from = ?")
                    .bind(room_id.as_str())
                    .bind(seconds(*from))
                    .execute()
                    .await
                    .map_err(at("rooms"))?;
            }
        }
        Ok(())
    }
}

/// Inserts `rows` into `table` of the tenant database `db` in one INSERT; no rows, no
/// INSERT.
async fn insert_rows<'a, T: RowWrite>(
    client: &Client,
    db: &str,
    table: &'static str,
    rows: impl IntoIterator<Item = T::Value<'a>>,
) -> Result<(), Failed> {
    let failed = |error| Failed {
        db: db.to_owned(),
        table,
        error,
    };
    let mut rows = rows.into_iter().peekable();
    if rows.peek().is_none() {
        return Ok(());
    }
    let mut insert = client.insert::<T>(table).await.map_err(failed)?;
    for row in rows {
        insert.write(&row).await.map_err(failed)?;
    }
    insert.end().await.map_err(failed)
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
/// with the new capacity: the room's rows, then its office's rows from the capacities
/// of the office's final room rows. Rows already right are left alone, so a repeated
/// restatement writes nothing. Plain `INSERT … SELECT … FINAL`, which 18.16 runs too.
async fn restate(client: &Client, r: &rf_operators::Restate) -> clickhouse::error::Result<()> {
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
        if batch.rooms.is_empty()
            && batch.offices.is_empty()
            && batch.readings.is_empty()
            && batch.room_versions.is_empty()
            && batch.withdrawn_rooms.is_empty()
            && batch.restates.is_empty()
            && batch.anomalies.is_empty()
            && batch.forecasts.is_empty()
            && batch.models.is_empty()
        {
            return Ok(());
        }
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
