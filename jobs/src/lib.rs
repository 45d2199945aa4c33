//! roomflow's jobs: tenant provisioning, schema registration, the sensor fleet
//! simulator, the end-to-end benchmark and utilization reports.

pub mod analyst;
pub mod apikey;
pub mod backfill;
pub mod deadletter;
pub mod erase;
pub mod queue;
pub mod report;
pub mod retention;
pub mod schemas;
pub mod simulate;
pub mod tenant;

/// A client of the home ClickHouse with the platform's tables (`rf_platform`) created if
/// they were missing.
pub(crate) async fn platform(
    clickhouse: &rf_sinks::config::ClickHouseConfig,
) -> Result<clickhouse::Client, JobError> {
    let client = rf_sinks::clickhouse::client(clickhouse);
    for statement in rf_schemas::platform_ddl() {
        client
            .query(&statement)
            .execute()
            .await
            .map_err(|e| JobError::ClickHouse(e.to_string()))?;
    }
    Ok(client)
}

/// Why a job failed; `retryable` errors may pass if the job is run again.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// The broker refused or could not be reached.
    #[error("kafka: {0}")]
    Kafka(String),
    /// ClickHouse refused or could not be reached.
    #[error("clickhouse: {0}")]
    ClickHouse(String),
    /// The schema registry refused or could not be reached.
    #[error("schema registry: {0}")]
    Registry(#[from] rf_schemas::registry::RegistryError),
    /// The pipeline failed.
    #[error(transparent)]
    Pipeline(#[from] rf_pipelines::PipelineError),
    /// A tenant's secrets could not be sealed or opened.
    #[error(transparent)]
    Secrets(#[from] rf_pipelines::secrets::SecretError),
    /// A schema change was refused before it reached the registry.
    #[error("schema for {subject} refused: {reason}")]
    Incompatible {
        /// The subject.
        subject: String,
        /// Why.
        reason: String,
    },
    /// An argument is out of range.
    #[error("{0}")]
    Invalid(String),
}
