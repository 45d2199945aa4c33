//! Settings of the Kafka source, the schema registry and the pipeline runtime.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// How to reach the Kafka-protocol brokers.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaConfig {
    /// Bootstrap servers, comma separated.
    pub brokers: String,
    /// Consumer group the pipeline commits its offsets under.
    pub group_id: String,
    /// Extra librdkafka properties (e.g. `security.protocol`), passed through as they are.
    pub properties: BTreeMap<String, String>,
    /// Timeout of metadata, commit and delivery calls, seconds.
    pub timeout_secs: u64,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        Self {
            brokers: "127.0.0.1:19092".into(),
            group_id: "roomflow-pipeline".into(),
            properties: BTreeMap::new(),
            timeout_secs: 10,
        }
    }
}

/// How to reach the Confluent-compatible schema registry.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RegistryConfig {
    /// Base URL.
    pub url: String,
    /// Per-request timeout, seconds.
    pub timeout_secs: u64,
    /// Who refuses a schema change that is not BACKWARD compatible. roomflow always
    /// checks every new version against all registered ones first; `registry` then also
    /// lets the registry apply its own compatibility level (Confluent Schema Registry);
    /// `roomflow` sets the roomflow subjects to `NONE` in the registry and relies on
    /// roomflow's check alone, for registries whose own check is wrong (the local
    /// stand-in refuses timestamp-millis against itself).
    pub compatibility_check: CompatibilityCheck,
}

/// See [`RegistryConfig::compatibility_check`].
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum CompatibilityCheck {
    /// roomflow's check, then the registry's.
    Registry,
    /// roomflow's check only.
    #[default]
    Roomflow,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        Self {
            url: "http://127.0.0.1:18081".into(),
            timeout_secs: 5,
            compatibility_check: CompatibilityCheck::default(),
        }
    }
}

/// The pipeline runtime.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct PipelineConfig {
    /// Timely worker threads in this process.
    pub workers: usize,
    /// Tenants to process; empty means every tenant with an `occupancy.<tenant>` topic.
    pub tenants: Vec<String>,
    /// How long a window stays open after its end for late readings, seconds.
    pub allowed_lateness_secs: u64,
    /// How long a readings partition may be caught up and silent before its windows
    /// follow the tenant's other partitions, seconds.
    pub idle_timeout_secs: u64,
    /// Most records one epoch (one batch through the dataflow and the sinks) takes.
    pub max_epoch_records: usize,
    /// Longest an epoch collects records before it is handed on, milliseconds. Keeps the
    /// reading-to-Redis delay under a second.
    pub max_epoch_millis: u64,
    /// Address of the Prometheus `/metrics` endpoint; empty disables it.
    pub metrics_listen: String,
    /// This process's index in its timely cluster (0 when it runs alone).
    pub process: usize,
    /// `host:port` of every process of the cluster, in process order, where timely's
    /// workers connect to each other; empty: this process runs alone.
    pub hosts: Vec<String>,
}

/// Ports a cluster on one machine uses when no hosts are given: process i listens on
/// 127.0.0.1:(CLUSTER_BASE_PORT + i).
pub const CLUSTER_BASE_PORT: u16 = 18200;

impl Default for PipelineConfig {
    fn default() -> Self {
        Self {
            workers: 2,
            tenants: Vec::new(),
            allowed_lateness_secs: 300,
            idle_timeout_secs: 30,
            max_epoch_records: 100_000,
            max_epoch_millis: 200,
            metrics_listen: "127.0.0.1:18090".into(),
            process: 0,
            hosts: Vec::new(),
        }
    }
}

/// A setting that cannot work, naming its field.
#[derive(Debug, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct InvalidSetting {
    /// The dotted path of the field.
    pub field: &'static str,
    /// What is wrong with its value.
    pub problem: String,
}

impl PipelineConfig {
    /// Checks what serde cannot.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        let bad = |field, problem: &str| {
            Err(InvalidSetting {
                field,
                problem: problem.into(),
            })
        };
        if !(1..=256).contains(&self.workers) {
            return bad("pipeline.workers", "must be between 1 and 256");
        }
        if self.max_epoch_records == 0 {
            return bad("pipeline.max_epoch_records", "must be at least 1");
        }
        if !(1..=10_000).contains(&self.max_epoch_millis) {
            return bad("pipeline.max_epoch_millis", "must be between 1 and 10000");
        }
        if self.allowed_lateness_secs > 7 * 86_400 {
            return bad(
                "pipeline.allowed_lateness_secs",
                "must be at most 604800 (7 days)",
            );
        }
        if self.idle_timeout_secs > 86_400 {
            return bad(
                "pipeline.idle_timeout_secs",
                "must be at most 86400 (a day)",
            );
        }
        if self.hosts.is_empty() && self.process != 0 {
            return bad("pipeline.process", "must be 0 without pipeline.hosts");
        }
        if !self.hosts.is_empty() && self.process >= self.hosts.len() {
            return bad(
                "pipeline.process",
                "must be below the number of pipeline.hosts",
            );
        }
        for host in &self.hosts {
            let port = host.rsplit_once(':').map(|(h, p)| (h, p.parse::<u16>()));
            if !matches!(port, Some((h, Ok(p))) if !h.is_empty() && p > 0) {
                return bad("pipeline.hosts", "each must be host:port");
            }
        }
        for t in &self.tenants {
            if let Err(e) = rf_schemas::TenantId::parse(t) {
                return Err(InvalidSetting {
                    field: "pipeline.tenants",
                    problem: e.to_string(),
                });
            }
        }
        if !self.metrics_listen.is_empty()
            && self.metrics_listen.parse::<std::net::SocketAddr>().is_err()
        {
            return bad(
                "pipeline.metrics_listen",
                "must be an address like 127.0.0.1:18090",
            );
        }
        Ok(())
    }
}

impl KafkaConfig {
    /// A librdkafka client config with the brokers and the extra properties.
    pub fn client_config(&self) -> rdkafka::ClientConfig {
        let mut c = rdkafka::ClientConfig::new();
        c.set("bootstrap.servers", &self.brokers);
        for (k, v) in &self.properties {
            c.set(k, v);
        }
        c
    }

    /// A consumer's settings: offsets committed only by hand, no end-of-partition events,
    /// and a prefetch queue deep enough for a fast broker. librdkafka prefetches 100k
    /// records by default, which leaves the broker idle between fetches (a fourth of the
    /// throughput here); the byte bound keeps the queue's memory in check. Both can be
    /// overridden in `properties`.
    pub fn consumer_config(&self, group: &str) -> rdkafka::ClientConfig {
        let mut c = self.client_config();
        for (key, value) in [
            ("queued.min.messages", "1000000"),
            ("queued.max.messages.kbytes", "16384"),
        ] {
            if !self.properties.contains_key(key) {
                c.set(key, value);
            }
        }
        c.set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "false");
        c
    }

    /// Checks the settings.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        if self.brokers.trim().is_empty() {
            return Err(InvalidSetting {
                field: "kafka.brokers",
                problem: "must name at least one host:port".into(),
            });
        }
        if self.group_id.trim().is_empty() {
            return Err(InvalidSetting {
                field: "kafka.group_id",
                problem: "must not be empty".into(),
            });
        }
        Ok(())
    }
}
