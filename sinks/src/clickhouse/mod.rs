//! The ClickHouse sink: window revisions and room versions, one insert per tenant and
//! table per batch.

mod rows;

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clickhouse::Client;

use crate::config::ClickHouseConfig;
use crate::{Batch, Sink, SinkError};

pub use rows::{OfficeUtilization, Room, RoomUtilization};

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
    versions: Vec<usize>,
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
        for (i, (t, _)) in batch.room_versions.iter().enumerate() {
            by_db.entry(t.clickhouse_db()).or_default().versions.push(i);
        }
        for (
            db,
            TenantRows {
                rooms,
                offices,
                versions,
            },
        ) in by_db
        {
            let client = self.client.clone().with_database(db);
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
        }
        Ok(())
    }
}

impl Sink for ClickHouseSink {
    fn name(&self) -> &'static str {
        "clickhouse"
    }

    async fn write(&mut self, batch: &Batch) -> Result<(), SinkError> {
        if batch.rooms.is_empty() && batch.offices.is_empty() && batch.room_versions.is_empty() {
            return Ok(());
        }
        match tokio::time::timeout(self.timeout, self.insert_all(batch)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(SinkError::transient("clickhouse", e)),
            Err(_) => Err(SinkError::transient("clickhouse", "insert timed out")),
        }
    }
}
