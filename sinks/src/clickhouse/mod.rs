//! The ClickHouse sink: window revisions, final readings and room versions, one insert per tenant and
//! table per batch; then restatements of final rows whose room capacity changed in the
//! past, and withdrawn room versions.

mod rows;

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clickhouse::Client;

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

    async fn insert_all(&self, batch: &Batch) -> clickhouse::error::Result<()> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as u32);
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
            let client = self.client.clone().with_database(db);
            if !anomalies.is_empty() {
                let mut insert = client.insert::<AnomalyRow<'_>>("anomalies").await?;
                for i in anomalies {
                    insert
                        .write(&AnomalyRow::new(&batch.anomalies[i], now))
                        .await?;
                }
                insert.end().await?;
            }
            if !forecasts.is_empty() {
                let mut insert = client.insert::<ForecastRow<'_>>("forecasts").await?;
                for i in forecasts {
                    let series = &batch.forecasts[i];
                    for p in &series.points {
                        insert.write(&ForecastRow::new(series, p)).await?;
                    }
                }
                insert.end().await?;
            }
            if !models.is_empty() {
                let mut insert = client.insert::<ModelStateRow<'_>>("model_state").await?;
                for i in models {
                    insert
                        .write(&ModelStateRow::new(&batch.models[i], now))
                        .await?;
                }
                insert.end().await?;
            }
            if !readings.is_empty() {
                let mut insert = client.insert::<ReadingRow<'_>>("readings").await?;
                for i in readings {
                    let window = &batch.readings[i];
                    for r in &window.readings {
                        insert.write(&ReadingRow::new(window, r)).await?;
                    }
                }
                insert.end().await?;
            }
            if !rooms.is_empty() {
                let mut insert = client
                    .insert::<RoomUtilization<'_>>("room_utilization")
                    .await?;
                for i in rooms {
                    insert
                        .write(&RoomUtilization::new(&batch.rooms[i], now))
                        .await?;
                }
                insert.end().await?;
            }
            if !offices.is_empty() {
                let mut insert = client
                    .insert::<OfficeUtilization<'_>>("office_utilization")
                    .await?;
                for i in offices {
                    insert
                        .write(&OfficeUtilization::new(&batch.offices[i], now))
                        .await?;
                }
                insert.end().await?;
            }
            if !versions.is_empty() {
                let mut insert = client.insert::<Room<'_>>("rooms").await?;
                for i in versions {
                    let room = &batch.room_versions[i].1;
                    // The version is the room version's start: re-reading the compacted
                    // topic writes identical rows.
                    insert
                        .write(&Room::new(room, room.effective_from as u64))
                        .await?;
                }
                insert.end().await?;
            }
            // After this batch's rows: they may be among those to restate.
            for i in restates {
                restate(&client, &batch.restates[i]).await?;
            }
            for i in withdrawn {
                let (_, room_id, from) = &batch.withdrawn_rooms[i];
                client
                    .query("ALTER TABLE rooms DELETE WHERE room_id = ? AND effective_from = ?")
                    .bind(room_id.as_str())
                    .bind(seconds(*from))
                    .execute()
                    .await?;
            }
        }
        Ok(())
    }
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
            Ok(Err(e)) => Err(SinkError::transient("clickhouse", e)),
            Err(_) => Err(SinkError::transient("clickhouse", "insert timed out")),
        }
    }
}
