//! roomflow's jobs: tenant provisioning, schema registration, the sensor fleet
//! simulator, the end-to-end benchmark and utilization reports.

pub mod analyst;
pub mod apikey;
pub mod backfill;
pub mod backup;
pub mod benchmarks;
pub mod calendar;
pub mod cold;
pub mod deadletter;
pub mod erase;
pub mod headcount;
pub mod principal;
pub mod queue;
pub mod report;
pub mod retention;
pub mod schemas;
pub mod simulate;
pub mod store;
pub mod tenant;

/// A client of the home ClickHouse with the platform's tables (`rf_platform`) created if
/// they were missing.
pub(crate) async fn platform(
    clickhouse: &rf_sinks::config::ClickHouseConfig,
) -> Result<clickhouse::Client, JobError> {
    let client = rf_sinks::clickhouse::client(clickhouse);
    rf_sinks::clickhouse::create_platform(&client).await?;
    Ok(client)
}

/// Why a job failed; `retryable` errors may pass if the job is run again.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// The broker refused or could not be reached.
    #[error("kafka: {context}")]
    Kafka {
        /// What was being done.
        context: String,
        /// The client's error.
        #[source]
        source: rdkafka::error::KafkaError,
    },
    /// A call to the broker failed.
    #[error("kafka")]
    KafkaCall(#[from] rdkafka::error::KafkaError),
    /// The broker answered, but not as the job needs (a topic missing, an error code).
    #[error("kafka: {0}")]
    Topics(String),
    /// ClickHouse refused or could not be reached.
    #[error("clickhouse: {context}")]
    ClickHouse {
        /// What was being done.
        context: String,
        /// The client's error.
        #[source]
        source: clickhouse::error::Error,
    },
    /// A ClickHouse query failed.
    #[error("clickhouse")]
    ClickHouseCall(#[from] clickhouse::error::Error),
    /// ClickHouse answered, but not as the job needs.
    #[error("clickhouse: {0}")]
    Data(String),
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
    /// The cold tier (a directory or an object store) refused, or a file did not check.
    #[error("cold storage: {0}")]
    Cold(String),
    /// A backup or a restore could not go on: a file did not check, the stack is not
    /// empty, a count differs.
    #[error("backup: {0}")]
    Backup(String),
    /// An argument is out of range.
    #[error("{0}")]
    Invalid(String),
}

impl JobError {
    /// A failed call to the broker, while doing `context`.
    pub fn kafka(context: impl Into<String>, source: rdkafka::error::KafkaError) -> Self {
        Self::Kafka {
            context: context.into(),
            source,
        }
    }

    /// A failed ClickHouse query, while doing `context`.
    pub fn clickhouse(context: impl Into<String>, source: clickhouse::error::Error) -> Self {
        Self::ClickHouse {
            context: context.into(),
            source,
        }
    }
}
