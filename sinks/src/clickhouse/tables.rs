//! The registry of outputs ClickHouse stores. Storing a new output is its row layout
//! (`rows.rs`), an impl of [`Table`] here and its entry in [`ALL`]: the insert, the
//! grouping by tenant and the Redis generation counters follow from it.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use clickhouse::{Client, RowWrite};

use rf_schemas::rows::{
    Anomaly, BookingUsageRow, FinalReadings, ForecastSeries, ModelState, OfficeRow, RoomDay,
    RoomRow,
};
use rf_schemas::{RoomVersion, TenantId};

use super::rows::{
    AnomalyRow, BookingUsage, ForecastRow, ModelStateRow, OfficeUtilization, ReadingRow, Room,
    RoomDayRow, RoomUtilization,
};
use super::{Failed, Touched};
use crate::redis::month_of;
use crate::Batch;

/// An output ClickHouse stores: its table in the tenant's database and its rows.
pub(super) trait Table: Sized + Sync + 'static {
    /// The table.
    const NAME: &'static str;
    /// Whether rows change history beyond the windows (room metadata): the service's
    /// history caches go stale.
    const HISTORY: bool = false;
    /// Its row layout.
    type Row: RowWrite;
    /// This output's part of a batch.
    fn of(batch: &Batch) -> &[Self];
    /// Whose it is.
    fn tenant(&self) -> &TenantId;
    /// Its rows, stamped `now` (seconds) where the table has an update time.
    fn rows(&self, now: u32) -> impl Iterator<Item = <Self::Row as clickhouse::Row>::Value<'_>>;
    /// The start of its window (ms), for outputs that are a window's revision: the
    /// service caches series per month.
    fn window_start(&self) -> Option<i64> {
        None
    }
}

/// Every stored output, in insert order.
pub(super) const ALL: [&dyn Stored; 9] = [
    &Of::<Anomaly>(std::marker::PhantomData),
    &Of::<ForecastSeries>(std::marker::PhantomData),
    &Of::<ModelState>(std::marker::PhantomData),
    &Of::<FinalReadings>(std::marker::PhantomData),
    &Of::<RoomRow>(std::marker::PhantomData),
    &Of::<OfficeRow>(std::marker::PhantomData),
    &Of::<RoomDay>(std::marker::PhantomData),
    &Of::<(TenantId, Arc<RoomVersion>)>(std::marker::PhantomData),
    &Of::<BookingUsageRow>(std::marker::PhantomData),
];

impl Table for BookingUsageRow {
    const NAME: &'static str = "booking_usage";
    type Row = BookingUsage<'static>;
    fn of(batch: &Batch) -> &[Self] {
        &batch.booking_usage
    }
    fn tenant(&self) -> &TenantId {
        &self.tenant
    }
    fn rows(&self, now: u32) -> impl Iterator<Item = BookingUsage<'_>> {
        std::iter::once(BookingUsage::new(self, now))
    }
}

impl Table for Anomaly {
    const NAME: &'static str = "anomalies";
    type Row = AnomalyRow<'static>;
    fn of(batch: &Batch) -> &[Self] {
        &batch.anomalies
    }
    fn tenant(&self) -> &TenantId {
        &self.tenant
    }
    fn rows(&self, now: u32) -> impl Iterator<Item = AnomalyRow<'_>> {
        std::iter::once(AnomalyRow::new(self, now))
    }
}

impl Table for ForecastSeries {
    const NAME: &'static str = "forecasts";
    type Row = ForecastRow<'static>;
    fn of(batch: &Batch) -> &[Self] {
        &batch.forecasts
    }
    fn tenant(&self) -> &TenantId {
        &self.tenant
    }
    fn rows(&self, _: u32) -> impl Iterator<Item = ForecastRow<'_>> {
        self.points.iter().map(move |p| ForecastRow::new(self, p))
    }
}

impl Table for ModelState {
    const NAME: &'static str = "model_state";
    type Row = ModelStateRow<'static>;
    fn of(batch: &Batch) -> &[Self] {
        &batch.models
    }
    fn tenant(&self) -> &TenantId {
        &self.tenant
    }
    fn rows(&self, now: u32) -> impl Iterator<Item = ModelStateRow<'_>> {
        std::iter::once(ModelStateRow::new(self, now))
    }
}

impl Table for FinalReadings {
    const NAME: &'static str = "readings";
    type Row = ReadingRow<'static>;
    fn of(batch: &Batch) -> &[Self] {
        &batch.readings
    }
    fn tenant(&self) -> &TenantId {
        &self.tenant
    }
    fn rows(&self, _: u32) -> impl Iterator<Item = ReadingRow<'_>> {
        self.readings.iter().map(move |r| ReadingRow::new(self, r))
    }
}

impl Table for RoomRow {
    const NAME: &'static str = "room_utilization";
    type Row = RoomUtilization<'static>;
    fn of(batch: &Batch) -> &[Self] {
        &batch.rooms
    }
    fn tenant(&self) -> &TenantId {
        &self.tenant
    }
    fn rows(&self, now: u32) -> impl Iterator<Item = RoomUtilization<'_>> {
        std::iter::once(RoomUtilization::new(self, now))
    }
    fn window_start(&self) -> Option<i64> {
        Some(self.window_start)
    }
}

impl Table for OfficeRow {
    const NAME: &'static str = "office_utilization";
    type Row = OfficeUtilization<'static>;
    fn of(batch: &Batch) -> &[Self] {
        &batch.offices
    }
    fn tenant(&self) -> &TenantId {
        &self.tenant
    }
    fn rows(&self, now: u32) -> impl Iterator<Item = OfficeUtilization<'_>> {
        std::iter::once(OfficeUtilization::new(self, now))
    }
    fn window_start(&self) -> Option<i64> {
        Some(self.window_start)
    }
}

impl Table for RoomDay {
    const NAME: &'static str = "room_days";
    type Row = RoomDayRow<'static>;
    fn of(batch: &Batch) -> &[Self] {
        &batch.room_days
    }
    fn tenant(&self) -> &TenantId {
        &self.row.tenant
    }
    fn rows(&self, _: u32) -> impl Iterator<Item = RoomDayRow<'_>> {
        std::iter::once(RoomDayRow::new(self))
    }
    fn window_start(&self) -> Option<i64> {
        Some(self.row.window_start)
    }
}

/// A room version: its version is its start, so re-reading the compacted topic writes
/// identical rows.
impl Table for (TenantId, Arc<RoomVersion>) {
    const NAME: &'static str = "rooms";
    const HISTORY: bool = true;
    type Row = Room<'static>;
    fn of(batch: &Batch) -> &[Self] {
        &batch.room_versions
    }
    fn tenant(&self) -> &TenantId {
        &self.0
    }
    fn rows(&self, _: u32) -> impl Iterator<Item = Room<'_>> {
        std::iter::once(Room::new(&self.1, self.1.effective_from as u64))
    }
}

/// A [`Table`] as the sink uses it, whatever its output type.
pub(super) trait Stored: Sync {
    /// Inserts the batch's outputs of this table: one INSERT per tenant; none if it has
    /// none.
    fn insert<'a>(
        &'a self,
        client: &'a Client,
        batch: &'a Batch,
        now: u32,
    ) -> Pin<Box<dyn Future<Output = Result<(), Failed>> + 'a>>;

    /// Adds what the batch's outputs of this table change.
    fn touch(&self, batch: &Batch, touched: &mut Touched);
}

/// The [`Stored`] of table `T`.
pub(super) struct Of<T>(std::marker::PhantomData<fn() -> T>);

impl<T: Table> Stored for Of<T> {
    fn insert<'a>(
        &'a self,
        client: &'a Client,
        batch: &'a Batch,
        now: u32,
    ) -> Pin<Box<dyn Future<Output = Result<(), Failed>> + 'a>> {
        Box::pin(async move {
            let mut by_tenant: BTreeMap<&TenantId, Vec<&T>> = BTreeMap::new();
            for output in T::of(batch) {
                by_tenant.entry(output.tenant()).or_default().push(output);
            }
            for (tenant, outputs) in by_tenant {
                let db = tenant.clickhouse_db();
                let rows = outputs.iter().flat_map(|o| o.rows(now));
                insert_rows::<T::Row>(&client.clone().with_database(&db), &db, T::NAME, rows)
                    .await?;
            }
            Ok(())
        })
    }

    fn touch(&self, batch: &Batch, touched: &mut Touched) {
        for output in T::of(batch) {
            let tenant = output.tenant();
            touched.tenants.insert(tenant.clone());
            if let Some(start) = output.window_start() {
                touched.months.insert((tenant.clone(), month_of(start)));
            }
            if T::HISTORY {
                touched.history.insert(tenant.clone());
            }
        }
    }
}

/// Inserts `rows` into `table` of the tenant database `db` in one INSERT; no rows, no
/// INSERT.
pub(super) async fn insert_rows<'a, T: RowWrite>(
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
