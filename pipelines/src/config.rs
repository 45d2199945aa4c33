//! Settings of the Kafka source, the schema registry and the pipeline runtime.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use rf_sinks::Secret;

/// How to reach the Kafka-protocol brokers.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaConfig {
    /// Bootstrap servers, comma separated.
    pub brokers: String,
    /// Consumer group the pipeline commits its offsets under.
    pub group_id: String,
    /// Extra librdkafka properties (e.g. `fetch.max.bytes`), passed through as they are.
    /// Security settings belong in `security`, where secrets stay secret.
    pub properties: BTreeMap<String, String>,
    /// Timeout of metadata, commit and delivery calls, seconds.
    pub timeout_secs: u64,
    /// Copies of each partition of the topics roomflow creates: 1 for one broker, 3 for
    /// a production cluster, where losing a broker loses nothing.
    pub replication_factor: i32,
    /// `min.insync.replicas` of the topics roomflow creates: with acks=all, a write
    /// succeeds only once this many copies have it (2 with a replication factor of 3).
    pub min_insync_replicas: i32,
    /// TLS and SASL towards the brokers.
    pub security: KafkaSecurity,
}

/// How the Kafka client authenticates and encrypts: `protocol` `plaintext` (default),
/// `ssl`, `sasl_plaintext` or `sasl_ssl`; SASL `mechanism` `PLAIN`, `SCRAM-SHA-256`,
/// `SCRAM-SHA-512` (with `username`, `password`) or `OAUTHBEARER` (OIDC client
/// credentials: `token_endpoint`, `client_id`, `client_secret`, optional `scope`).
/// Secrets are never printed or logged.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaSecurity {
    /// `plaintext`, `ssl`, `sasl_plaintext` or `sasl_ssl`.
    pub protocol: String,
    /// CA certificate(s) to verify the brokers with (PEM file); empty: the system's.
    pub ca_location: String,
    /// Client certificate for mutual TLS (PEM file).
    pub certificate_location: String,
    /// Client private key for mutual TLS (PEM file).
    pub key_location: String,
    /// Password of the private key.
    pub key_password: Secret,
    /// `PLAIN`, `SCRAM-SHA-256`, `SCRAM-SHA-512` or `OAUTHBEARER`.
    pub mechanism: String,
    /// SASL user (PLAIN, SCRAM).
    pub username: String,
    /// SASL password (PLAIN, SCRAM).
    pub password: Secret,
    /// OAUTHBEARER: the identity provider's token endpoint (https).
    pub token_endpoint: String,
    /// OAUTHBEARER: the client id.
    pub client_id: String,
    /// OAUTHBEARER: the client secret.
    pub client_secret: Secret,
    /// OAUTHBEARER: scope to ask for, if the provider needs one.
    pub scope: String,
}

impl KafkaSecurity {
    /// The librdkafka properties these settings stand for.
    fn properties(&self) -> Vec<(&'static str, String)> {
        let mut p = Vec::new();
        let mut put = |key, value: &str| {
            if !value.is_empty() {
                p.push((key, value.to_owned()));
            }
        };
        put("security.protocol", &self.protocol);
        put("ssl.ca.location", &self.ca_location);
        put("ssl.certificate.location", &self.certificate_location);
        put("ssl.key.location", &self.key_location);
        put("ssl.key.password", self.key_password.expose());
        put("sasl.mechanism", &self.mechanism);
        put("sasl.username", &self.username);
        put("sasl.password", self.password.expose());
        if self.mechanism == "OAUTHBEARER" {
            put("sasl.oauthbearer.method", "oidc");
            put("sasl.oauthbearer.token.endpoint.url", &self.token_endpoint);
            put("sasl.oauthbearer.client.id", &self.client_id);
            put(
                "sasl.oauthbearer.client.secret",
                self.client_secret.expose(),
            );
            put("sasl.oauthbearer.scope", &self.scope);
        }
        p
    }

    /// Checks that the settings make one consistent whole.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        let bad = |field, problem: &str| {
            Err(InvalidSetting {
                field,
                problem: problem.into(),
            })
        };
        let protocol = self.protocol.as_str();
        if !["", "plaintext", "ssl", "sasl_plaintext", "sasl_ssl"].contains(&protocol) {
            return bad(
                "kafka.security.protocol",
                "must be plaintext, ssl, sasl_plaintext or sasl_ssl",
            );
        }
        let tls = protocol.ends_with("ssl");
        let sasl = protocol.starts_with("sasl");
        for (field, path) in [
            ("kafka.security.ca_location", &self.ca_location),
            (
                "kafka.security.certificate_location",
                &self.certificate_location,
            ),
            ("kafka.security.key_location", &self.key_location),
        ] {
            if path.is_empty() {
                continue;
            }
            if !tls {
                return bad(field, "needs protocol ssl or sasl_ssl");
            }
            if !std::path::Path::new(path).is_file() {
                return bad(field, &format!("{path} is not a readable file"));
            }
        }
        if self.certificate_location.is_empty() != self.key_location.is_empty() {
            return bad(
                "kafka.security.key_location",
                "mutual TLS needs both certificate_location and key_location",
            );
        }
        match (sasl, self.mechanism.as_str()) {
            (false, "") => {}
            (false, _) => {
                return bad(
                    "kafka.security.mechanism",
                    "needs protocol sasl_plaintext or sasl_ssl",
                )
            }
            (true, "") => {
                return bad(
                    "kafka.security.mechanism",
                    "is required with a sasl protocol",
                )
            }
            (true, "PLAIN" | "SCRAM-SHA-256" | "SCRAM-SHA-512") => {
                if self.username.is_empty() {
                    return bad(
                        "kafka.security.username",
                        &format!("is required for {}", self.mechanism),
                    );
                }
                if self.password.expose().is_empty() {
                    return bad(
                        "kafka.security.password",
                        &format!("is required for {}", self.mechanism),
                    );
                }
                if self.mechanism == "PLAIN" && !tls {
                    return bad(
                        "kafka.security.protocol",
                        "PLAIN sends the password in clear: use sasl_ssl",
                    );
                }
            }
            (true, "OAUTHBEARER") => {
                if !self.token_endpoint.starts_with("https://") {
                    return bad(
                        "kafka.security.token_endpoint",
                        "must be an https:// URL for OAUTHBEARER",
                    );
                }
                if self.client_id.is_empty() {
                    return bad("kafka.security.client_id", "is required for OAUTHBEARER");
                }
                if self.client_secret.expose().is_empty() {
                    return bad(
                        "kafka.security.client_secret",
                        "is required for OAUTHBEARER",
                    );
                }
            }
            (true, _) => {
                return bad(
                    "kafka.security.mechanism",
                    "must be PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER",
                )
            }
        }
        Ok(())
    }
}

impl Default for KafkaConfig {
    fn default() -> Self {
        Self {
            brokers: "127.0.0.1:19092".into(),
            group_id: "roomflow-pipeline".into(),
            properties: BTreeMap::new(),
            timeout_secs: 10,
            replication_factor: 1,
            min_insync_replicas: 1,
            security: KafkaSecurity::default(),
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
    /// Tenants to process; empty means every tenant with an `occupancy.<tenant>` topic
    /// that lives in a served region and is not deleted, including tenants created while
    /// the pipeline runs.
    pub tenants: Vec<String>,
    /// How often to look for new tenants, seconds; 0 never.
    pub discover_secs: u64,
    /// How long a window stays open after its end for late readings, seconds.
    pub allowed_lateness_secs: u64,
    /// How long a readings partition may be caught up and silent before its windows
    /// follow the tenant's other partitions, seconds.
    pub idle_timeout_secs: u64,
    /// How far a reading's `ts` may run ahead of this pipeline's own clock, seconds. A
    /// reading further ahead is dead-lettered as `future_timestamp`, and no watermark
    /// passes the clock plus this, so one sensor with a wrong clock cannot close its
    /// partition's windows early. Raise it only for a simulation that runs faster than
    /// real time.
    pub clock_skew_secs: u64,
    /// While a partition is behind (its event time further behind the consumer's clock
    /// than the allowed lateness and this), revisions of its open windows are written at
    /// most once per this many seconds instead of every epoch: a backlog writes each
    /// window's final row and few revisions. Final rows, live state, dead letters and
    /// checkpoints are never held back; a partition that keeps up is revised every epoch.
    /// 0: every epoch.
    pub revision_interval_secs: u64,
    /// How many days of final minutes are kept to set bookings against: a booking moved
    /// or cancelled up to this far behind the watermark rewrites its windows; one further
    /// back is rejected (`rf_bookings_rejected_total`). About 4 bytes per room and 15
    /// minutes: 7 days of 50,000 rooms is 130 MiB.
    pub bookings_horizon_days: u32,
    /// Most records one epoch (one batch through the dataflow and the sinks) takes.
    pub max_epoch_records: usize,
    /// Longest the source spends reading one epoch before it is handed on, milliseconds;
    /// also the wall-clock slot that numbers epochs. 100 keeps the consumed-to-Redis p99
    /// under 500 ms at 100k readings/s on two cores, at no measured cost in throughput
    /// (an epoch grows past it while the computation is busy; see docs/benchmarks.md).
    pub max_epoch_millis: u64,
    /// Write every counted reading, with all its fields, to the tenant's `readings`
    /// table once its 15m window is final. It doubles the rows ClickHouse takes in.
    pub store_readings: bool,
    /// Address of the Prometheus `/metrics` endpoint; empty disables it.
    pub metrics_listen: String,
    /// This process's index in its timely cluster (0 when it runs alone).
    pub process: usize,
    /// `host:port` of every process of the cluster, in process order, where timely's
    /// workers connect to each other; empty: this process runs alone.
    pub hosts: Vec<String>,
}

/// The largest `pipeline.clock_skew_secs`: ten years, for simulations far ahead of the
/// wall clock. Timestamps stay far inside what calendars can compute.
const MAX_CLOCK_SKEW_SECS: u64 = 10 * 365 * 86_400;

/// Ports a cluster on one machine uses when no hosts are given: process i listens on
/// 127.0.0.1:(CLUSTER_BASE_PORT + i).
pub const CLUSTER_BASE_PORT: u16 = 18200;

impl Default for PipelineConfig {
    fn default() -> Self {
        Self {
            workers: 2,
            tenants: Vec::new(),
            discover_secs: 10,
            allowed_lateness_secs: 300,
            idle_timeout_secs: 30,
            clock_skew_secs: 300,
            revision_interval_secs: 5,
            bookings_horizon_days: 7,
            max_epoch_records: 100_000,
            max_epoch_millis: 100,
            store_readings: true,
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
        if self.revision_interval_secs > 3600 {
            return bad(
                "pipeline.revision_interval_secs",
                "must be between 0 (every epoch) and 3600",
            );
        }
        if !(1..=92).contains(&self.bookings_horizon_days) {
            return bad(
                "pipeline.bookings_horizon_days",
                "must be between 1 and 92 (a quarter)",
            );
        }
        if !(1..=MAX_CLOCK_SKEW_SECS).contains(&self.clock_skew_secs) {
            return bad(
                "pipeline.clock_skew_secs",
                "must be between 1 and 315360000 (ten years)",
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

/// A consumer's prefetch budget, records (see [`KafkaConfig::consumer_config_for`]).
const PREFETCH_RECORDS: usize = 1_000_000;
/// A consumer's prefetch budget, KiB of records.
const PREFETCH_KBYTES: usize = 64 * 1024;

impl KafkaConfig {
    /// A librdkafka client config with the brokers and the extra properties.
    pub fn client_config(&self) -> rdkafka::ClientConfig {
        let mut c = rdkafka::ClientConfig::new();
        c.set("bootstrap.servers", &self.brokers);
        for (k, v) in &self.properties {
            c.set(k, v);
        }
        for (k, v) in self.security.properties() {
            c.set(k, v);
        }
        c
    }

    /// A consumer's settings for one partition (see [`KafkaConfig::consumer_config_for`]).
    pub fn consumer_config(&self, group: &str) -> rdkafka::ClientConfig {
        self.consumer_config_for(group, 1)
    }

    /// A consumer's settings: offsets committed only by hand, no end-of-partition events,
    /// and a prefetch queue deep enough for a fast broker. librdkafka prefetches 100k
    /// records a partition by default, which leaves the broker idle between fetches (a
    /// fourth of the throughput here). Its limits apply to each partition, so the
    /// prefetch is a budget for the consumer (1M records, 64 MiB) split over the
    /// `partitions` it reads, at least 10,000 records and 1 MiB and at most 16 MiB each:
    /// a worker serving many tenants' partitions holds no more prefetched records than
    /// one serving a few. Both limits can be overridden in `properties`.
    pub fn consumer_config_for(&self, group: &str, partitions: usize) -> rdkafka::ClientConfig {
        let mut c = self.client_config();
        let n = partitions.max(1);
        let records = (PREFETCH_RECORDS / n).clamp(10_000, PREFETCH_RECORDS);
        let kbytes = (PREFETCH_KBYTES / n).clamp(1024, 16 * 1024);
        for (key, value) in [
            ("queued.min.messages", records.to_string()),
            ("queued.max.messages.kbytes", kbytes.to_string()),
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
        if !(1..=15).contains(&self.replication_factor) {
            return Err(InvalidSetting {
                field: "kafka.replication_factor",
                problem: "must be between 1 and 15".into(),
            });
        }
        if !(1..=self.replication_factor).contains(&self.min_insync_replicas) {
            return Err(InvalidSetting {
                field: "kafka.min_insync_replicas",
                problem: "must be between 1 and kafka.replication_factor".into(),
            });
        }
        if let Some(key) = self
            .properties
            .keys()
            .find(|k| k.starts_with("sasl.") || k.starts_with("ssl.") || *k == "security.protocol")
        {
            return Err(InvalidSetting {
                field: "kafka.properties",
                problem: format!("{key} belongs in [kafka.security], where secrets stay secret"),
            });
        }
        self.security.validate()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::consumer::BaseConsumer;

    fn scram() -> KafkaConfig {
        KafkaConfig {
            security: KafkaSecurity {
                protocol: "sasl_ssl".into(),
                mechanism: "SCRAM-SHA-512".into(),
                username: "roomflow".into(),
                password: Secret::new("hunter2"),
                ..KafkaSecurity::default()
            },
            ..KafkaConfig::default()
        }
    }

    #[test]
    fn the_prefetch_budget_is_split_over_a_consumers_partitions() {
        let prefetch = |c: &KafkaConfig, partitions| {
            let config = c.consumer_config_for("g", partitions);
            let get = |key| config.get(key).expect(key).to_owned();
            (
                get("queued.min.messages"),
                get("queued.max.messages.kbytes"),
            )
        };
        let c = KafkaConfig::default();
        assert_eq!(prefetch(&c, 1), ("1000000".into(), "16384".into()));
        assert_eq!(prefetch(&c, 8), ("125000".into(), "8192".into()));
        assert_eq!(prefetch(&c, 400), ("10000".into(), "1024".into()));
        assert_eq!(prefetch(&c, 0), prefetch(&c, 1));
        // An operator's own setting wins.
        let mut own = c.clone();
        own.properties
            .insert("queued.min.messages".into(), "5000".into());
        assert_eq!(prefetch(&own, 8).0, "5000");
    }

    fn field_of(c: &KafkaConfig) -> &'static str {
        c.validate().expect_err("invalid").field
    }

    #[test]
    fn each_inconsistency_names_its_field() {
        let with = |f: &dyn Fn(&mut KafkaConfig)| {
            let mut c = scram();
            f(&mut c);
            c
        };
        let cases: [(KafkaConfig, &str); 9] = [
            (
                with(&|c| c.security.protocol = "tls".into()),
                "kafka.security.protocol",
            ),
            (
                with(&|c| c.security.mechanism = String::new()),
                "kafka.security.mechanism",
            ),
            (
                with(&|c| c.security.mechanism = "GSSAPI".into()),
                "kafka.security.mechanism",
            ),
            (
                with(&|c| c.security.password = Secret::default()),
                "kafka.security.password",
            ),
            (
                with(&|c| c.security.username = String::new()),
                "kafka.security.username",
            ),
            (
                with(&|c| {
                    c.security.protocol = "sasl_plaintext".into();
                    c.security.mechanism = "PLAIN".into();
                }),
                "kafka.security.protocol",
            ),
            (
                with(&|c| {
                    c.security.mechanism = "OAUTHBEARER".into();
                    c.security.token_endpoint = "http://idp/token".into();
                }),
                "kafka.security.token_endpoint",
            ),
            (
                with(&|c| c.security.ca_location = "/nonexistent/ca.pem".into()),
                "kafka.security.ca_location",
            ),
            (
                with(&|c| {
                    c.properties.insert("sasl.password".into(), "x".into());
                }),
                "kafka.properties",
            ),
        ];
        for (config, field) in &cases {
            assert_eq!(field_of(config), *field, "{:?}", config.security);
        }
        let mut plain = KafkaConfig::default();
        plain.security.mechanism = "SCRAM-SHA-256".into();
        assert_eq!(field_of(&plain), "kafka.security.mechanism");
    }

    #[test]
    fn the_client_is_built_with_tls_scram_and_oauthbearer() {
        // Creating a client checks every property against what librdkafka was built
        // with; it connects only later.
        let c = scram();
        c.validate().unwrap();
        c.client_config().create::<BaseConsumer>().unwrap();
        let mut oauth = scram();
        oauth.security.mechanism = "OAUTHBEARER".into();
        oauth.security.token_endpoint = "https://127.0.0.1:1/oauth2/token".into();
        oauth.security.client_id = "roomflow".into();
        oauth.security.client_secret = Secret::new("s3cret");
        oauth.validate().unwrap();
        oauth.client_config().create::<BaseConsumer>().unwrap();
    }

    #[test]
    fn secrets_stay_out_of_debug_output() {
        let mut c = scram();
        c.security.client_secret = Secret::new("s3cret");
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("hunter2") && !shown.contains("s3cret"),
            "{shown}"
        );
    }
}
