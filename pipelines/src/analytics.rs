//! Anomalies and forecasts in the pipeline: their settings, and the model states a
//! starting pipeline restores from each tenant's `model_state` table.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use clickhouse::Row;
use serde::{Deserialize, Serialize};

use rf_operators::analyze::faults::FaultConfig;
use rf_operators::{
    AnalyzeConfig, EntityKind, ModelState, Restored, RestoredMinutes, RestoredQuarter,
};
use rf_sinks::config::ClickHouseConfig;

use crate::config::InvalidSetting;
use crate::metrics::Metrics;
use crate::source::Topology;
use crate::{PipelineError, Settings};

/// How anomalies are found and forecasts issued.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AnalyticsConfig {
    /// A room or office above capacity for this long is a capacity breach, minutes.
    pub breach_minutes: u32,
    /// A sensor repeating one non-zero count this long while its office is in use is
    /// stuck, minutes.
    pub stuck_minutes: u32,
    /// A room without readings this long while its office reports is silent, minutes.
    pub silent_minutes: u32,
    /// A room's 15-minute means above 1.5 × capacity this long are implausible, minutes.
    pub implausible_minutes: u32,
    /// Forecasts are issued when an hour or day closes that ended at most this long ago
    /// (wall clock), seconds: catching up a backlog issues no forecast for each past hour.
    pub forecast_within_secs: u64,
    /// A room's next 14 days of hours are issued again every this many hours (an
    /// office's every hour): 336 rows each time, per room.
    pub room_forecast_every_hours: u32,
    /// A room or office without data for this long (event time) leaves memory; its
    /// learnt state stays in `model_state`, days.
    pub retire_after_days: u32,
}

impl Default for AnalyticsConfig {
    fn default() -> Self {
        let operator = AnalyzeConfig::default();
        let faults = operator.faults;
        Self {
            breach_minutes: faults.breach_minutes as u32,
            stuck_minutes: faults.stuck_minutes as u32,
            silent_minutes: faults.silent_minutes as u32,
            implausible_minutes: faults.implausible_minutes as u32,
            forecast_within_secs: (operator.forecast_within_ms / 1000) as u64,
            room_forecast_every_hours: operator.room_forecast_every_hours as u32,
            retire_after_days: (operator.retire_after_ms / 86_400_000) as u32,
        }
    }
}

impl AnalyticsConfig {
    /// Checks each threshold's range.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        for (field, value) in [
            ("analytics.breach_minutes", self.breach_minutes),
            ("analytics.stuck_minutes", self.stuck_minutes),
            ("analytics.silent_minutes", self.silent_minutes),
            ("analytics.implausible_minutes", self.implausible_minutes),
        ] {
            if !(1..=7 * 24 * 60).contains(&value) {
                return Err(InvalidSetting {
                    field,
                    problem: "must be between 1 and 10080 (a week)".into(),
                });
            }
        }
        if !(1..=168).contains(&self.room_forecast_every_hours) {
            return Err(InvalidSetting {
                field: "analytics.room_forecast_every_hours",
                problem: "must be between 1 and 168 (a week)".into(),
            });
        }
        if !(1..=3650).contains(&self.retire_after_days) {
            return Err(InvalidSetting {
                field: "analytics.retire_after_days",
                problem: "must be between 1 and 3650".into(),
            });
        }
        Ok(())
    }

    /// The operator's settings; `keep_readings` says whether final readings go on to
    /// the sinks.
    pub fn operator(&self, keep_readings: bool) -> AnalyzeConfig {
        AnalyzeConfig {
            faults: FaultConfig {
                breach_minutes: i64::from(self.breach_minutes),
                stuck_minutes: i64::from(self.stuck_minutes),
                silent_minutes: i64::from(self.silent_minutes),
                implausible_minutes: i64::from(self.implausible_minutes),
            },
            forecast_within_ms: self.forecast_within_secs.min(i64::MAX as u64 / 1000) as i64 * 1000,
            room_forecast_every_hours: i64::from(self.room_forecast_every_hours),
            keep_readings,
            retire_after_ms: i64::from(self.retire_after_days) * 86_400_000,
            ..AnalyzeConfig::default()
        }
    }
}

#[derive(Row, Deserialize)]
struct StateRow {
    office_id: String,
    entity_kind: i8,
    entity_id: String,
    state: String,
    version: u64,
}

/// Brings each served tenant's database up to the current DDL (new tables such as
/// `model_state`; `CREATE … IF NOT EXISTS` leaves the rest alone), then reads the latest
/// persisted state of each of its rooms and offices. While ClickHouse cannot be reached
/// it waits, retrying with backoff (counted in `rf_sink_retries_total`), as the sinks
/// do: models must not start over because of an outage. `shutdown` ends the wait.
pub fn restore(
    settings: &Settings,
    topology: &Topology,
    metrics: &Metrics,
    shutdown: &AtomicBool,
) -> Result<(Restored, RestoredMinutes), PipelineError> {
    let restored = Restored::default();
    let mut minutes = RestoredMinutes::default();
    let horizon_ms = i64::from(settings.pipeline.bookings_horizon_days) * 86_400_000;
    let since = rf_schemas::unix_ms() - horizon_ms;
    let regions = settings.served_regions();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| PipelineError::Dataflow(format!("cannot start a runtime: {e}")))?;
    for served in &topology.tenants {
        let name = &topology.regions[served.region];
        let Some(region) = regions.iter().find(|r| r.name == *name) else {
            continue;
        };
        let mut backoff = Duration::from_millis(200);
        let states = loop {
            match runtime.block_on(load(&region.clickhouse, &served.tenant, since)) {
                Ok(states) => break states,
                Err(Load::Unreachable(error)) if !shutdown.load(Ordering::Relaxed) => {
                    metrics
                        .sink_retries
                        .with_label_values(&["clickhouse"])
                        .inc();
                    tracing::warn!(tenant = %served.tenant, %error, "cannot restore the models yet; retrying");
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                }
                Err(Load::Unreachable(error) | Load::Failed(error)) => {
                    return Err(PipelineError::Sink(format!(
                        "clickhouse: restoring {}'s models: {error}",
                        served.tenant
                    )))
                }
            }
        };
        let (states, quarters) = states;
        tracing::info!(tenant = %served.tenant, states = states.len(), quarters = quarters.len(), "model states and booked rooms' minutes restored");
        for state in states {
            restored.insert(state);
        }
        for q in quarters {
            let quarter = RestoredQuarter {
                room: q.room_id,
                start: i64::from(q.start) * 1000,
                used_mask: q.used,
                reported_mask: q.reported,
                counts: q.counts.try_into().unwrap_or_default(),
            };
            minutes.insert(&served.tenant, &q.office_id, quarter);
        }
    }
    Ok((restored, minutes))
}

#[derive(Row, Deserialize)]
struct QuarterRow {
    office_id: String,
    room_id: String,
    start: u32,
    used: u16,
    reported: u16,
    /// As [`RestoredQuarter::counts`]; seven of them.
    counts: Vec<u32>,
}

/// Why states could not be read.
enum Load {
    /// ClickHouse did not answer: it may later.
    Unreachable(clickhouse::error::Error),
    /// It answered with an error.
    Failed(clickhouse::error::Error),
}

async fn load(
    config: &ClickHouseConfig,
    tenant: &rf_schemas::TenantId,
    since: i64,
) -> Result<(Vec<ModelState>, Vec<QuarterRow>), Load> {
    let fail = |e: clickhouse::error::Error| match e {
        clickhouse::error::Error::Network(_) | clickhouse::error::Error::TimedOut => {
            Load::Unreachable(e)
        }
        e => Load::Failed(e),
    };
    let client = rf_sinks::clickhouse::client(config);
    for statement in rf_schemas::tenant_ddl(tenant) {
        client.query(&statement).execute().await.map_err(fail)?;
    }
    let rows = client
        .clone()
        .with_database(tenant.clickhouse_db())
        .query(
            "SELECT office_id, entity_kind, entity_id, \
             argMax(state, version) AS s, max(version) AS v FROM model_state \
             GROUP BY office_id, entity_kind, entity_id",
        )
        .fetch_all::<StateRow>()
        .await
        .map_err(fail)?;
    // The minutes of booked rooms' final quarters within the bookings horizon.
    let quarters = client
        .with_database(tenant.clickhouse_db())
        .query(
            "SELECT office_id, room_id, toUInt32(window_start), argMax(used_mask, version), \
             argMax(reported_mask, version), argMax([booked_minutes, booked_used_minutes, \
             ghost_minutes, booked_unreported_minutes, unbooked_used_minutes, meetings, \
             no_shows], version) FROM booking_usage \
             WHERE granularity = '15m' AND room_id != '' AND window_start >= toDateTime(?) \
             GROUP BY office_id, room_id, window_start",
        )
        .bind(u32::try_from(since.max(0) / 1000).unwrap_or(0))
        .fetch_all::<QuarterRow>()
        .await
        .map_err(fail)?;
    let states = rows
        .into_iter()
        .map(|r| ModelState {
            tenant: tenant.clone(),
            entity_kind: if r.entity_kind == EntityKind::Office.enum_value() {
                EntityKind::Office
            } else {
                EntityKind::Room
            },
            entity_id: r.entity_id,
            office_id: r.office_id,
            version: r.version,
            state: r.state,
        })
        .collect();
    Ok((states, quarters))
}
