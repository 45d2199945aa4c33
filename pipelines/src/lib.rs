//! roomflow's pipelines: the Kafka source, the sink operator and [`run`], which wires
//! source → decode → aggregate → sinks on every timely worker.

pub mod alerts;
pub mod analytics;
pub mod backfill;
pub mod checkpoint;
pub mod config;
pub mod metrics;
pub mod regions;
pub mod run;
pub mod secrets;
pub mod sink;
pub mod source;
pub mod telemetry;
pub mod tenants;
pub mod topics;

pub use alerts::AlertsConfig;
pub use analytics::AnalyticsConfig;
pub use config::{
    CompatibilityCheck, KafkaConfig, KafkaSecurity, PipelineConfig, RegistryConfig,
    CLUSTER_BASE_PORT,
};
pub use metrics::Metrics;
pub use regions::{Region, RegionStores, RegionsConfig};
pub use run::{run, RunOptions, RunReport, Settings};

/// Why a pipeline could not start or had to stop.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The broker could not be reached or refused a call.
    #[error("kafka: {context}")]
    Kafka {
        /// What was being done.
        context: String,
        /// The client's error.
        #[source]
        source: rdkafka::error::KafkaError,
    },
    /// The broker answered, but what it holds cannot work (a topic missing, a tenant in
    /// another region, records deleted by retention).
    #[error("kafka: {0}")]
    Topics(String),
    /// A sink failed in a way retrying cannot fix.
    #[error("sink: {0}")]
    Sink(String),
    /// The timely runtime failed.
    #[error("dataflow: {0}")]
    Dataflow(String),
    /// A setting cannot work.
    #[error(transparent)]
    Setting(#[from] config::InvalidSetting),
    /// A tenant's secrets could not be sealed or opened.
    #[error(transparent)]
    Secrets(#[from] secrets::SecretError),
}

impl PipelineError {
    /// A failed call to the broker, while doing `context`.
    pub fn kafka(context: impl Into<String>, source: rdkafka::error::KafkaError) -> Self {
        Self::Kafka {
            context: context.into(),
            source,
        }
    }
}
