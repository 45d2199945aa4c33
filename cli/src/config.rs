//! roomflow's one config tree: defaults that work against the local stack, then a TOML
//! file, then `ROOMFLOW_<SECTION>__<FIELD>` environment variables, read in this one place.

use std::path::Path;

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

use rf_pipelines::{
    AlertsConfig, AnalyticsConfig, KafkaConfig, PipelineConfig, RegionsConfig, RegistryConfig,
    Settings,
};
use rf_service::ServiceConfig;
use rf_sinks::config::{ClickHouseConfig, RedisConfig};

/// Every setting of every command.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The Kafka-protocol brokers.
    pub kafka: KafkaConfig,
    /// The Confluent-compatible schema registry.
    pub registry: RegistryConfig,
    /// ClickHouse, where window rows and room metadata go.
    pub clickhouse: ClickHouseConfig,
    /// Redis, where live occupancy goes.
    pub redis: RedisConfig,
    /// The pipeline runtime.
    pub pipeline: PipelineConfig,
    /// The query service.
    pub service: ServiceConfig,
    /// Data residency: the regions' stores and which this deployment serves.
    pub regions: RegionsConfig,
    /// Anomalies and forecasts.
    pub analytics: AnalyticsConfig,
    /// Alert delivery to Slack, Teams and webhooks.
    pub alerts: AlertsConfig,
    /// Durable jobs (`roomflow jobs`).
    pub jobs: rf_jobs::queue::worker::JobsConfig,
    /// The platform keys that tenants' webhook URLs and secrets are encrypted under.
    pub secrets: rf_pipelines::secrets::SecretsConfig,
    /// OpenTelemetry traces (off unless `telemetry.otlp_endpoint` is set).
    pub telemetry: rf_pipelines::telemetry::TelemetryConfig,
}

/// Environment variables that are not config fields.
const NOT_FIELDS: [&str; 2] = ["config", "log"];

impl Config {
    /// Loads the tree from `file` (if given) and the environment, and validates it.
    pub fn load(file: Option<&Path>) -> anyhow::Result<Self> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(file) = file {
            if !file.exists() {
                anyhow::bail!("config file {} does not exist", file.display());
            }
            figment = figment.merge(Toml::file(file));
        }
        figment = figment.merge(Env::prefixed("ROOMFLOW_").ignore(&NOT_FIELDS).split("__"));
        let config: Config = figment
            .extract()
            .map_err(|e| anyhow::anyhow!("invalid config: {}", one_line(&e)))?;
        config.validate()?;
        Ok(config)
    }

    /// Checks what the types alone cannot; the error names the field.
    pub fn validate(&self) -> anyhow::Result<()> {
        self.kafka.validate()?;
        self.pipeline.validate()?;
        self.analytics.validate()?;
        self.alerts.validate()?;
        if self.jobs.output_dir.as_os_str().is_empty() {
            anyhow::bail!("jobs.output_dir: must not be empty");
        }
        self.jobs
            .retention
            .validate()
            .map_err(|e| anyhow::anyhow!("jobs.{e}"))?;
        self.jobs
            .backfill
            .validate()
            .map_err(|e| anyhow::anyhow!("jobs.{e}"))?;
        self.jobs.cold.validate().map_err(anyhow::Error::msg)?;
        self.jobs.backup.validate().map_err(anyhow::Error::msg)?;
        self.telemetry.validate()?;
        if !self.jobs.metrics_listen.is_empty()
            && self
                .jobs
                .metrics_listen
                .parse::<std::net::SocketAddr>()
                .is_err()
        {
            anyhow::bail!(
                "jobs.metrics_listen: {:?} is not an address like 127.0.0.1:18091",
                self.jobs.metrics_listen
            );
        }
        self.service.validate()?;
        self.regions.validate(&self.kafka.brokers)?;
        self.clickhouse
            .analyst
            .validate()
            .map_err(anyhow::Error::msg)?;
        for (name, region) in &self.regions.remote {
            region
                .clickhouse
                .analyst
                .validate()
                .map_err(|e| anyhow::anyhow!("regions.remote.{name}.{e}"))?;
        }
        for (field, url) in [
            ("registry.url", &self.registry.url),
            ("clickhouse.url", &self.clickhouse.url),
        ] {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                anyhow::bail!("{field}: {url:?} must start with http:// or https://");
            }
        }
        if let Some(field) = self.redis.bad_scheme() {
            anyhow::bail!("redis.{field}: must start with redis:// or rediss://");
        }
        self.secrets
            .validate(&self.kafka.brokers, &self.clickhouse.url)
            .map_err(anyhow::Error::msg)?;
        self.check_credentials()
    }

    /// Stores reachable from other machines need real passwords: an empty one, a short
    /// one or an example's placeholder is refused, naming the field.
    fn check_credentials(&self) -> anyhow::Result<()> {
        use rf_sinks::endpoint::weak_credentials;
        let mut stores = vec![(
            "clickhouse.password".to_owned(),
            weak_credentials(&self.clickhouse.url, Some(&self.clickhouse.password), 12),
        )];
        for (field, url) in self.redis.urls() {
            stores.push((format!("redis.{field}"), weak_credentials(url, None, 16)));
        }
        for (name, region) in &self.regions.remote {
            stores.push((
                format!("regions.remote.{name}.clickhouse.password"),
                weak_credentials(
                    &region.clickhouse.url,
                    Some(&region.clickhouse.password),
                    12,
                ),
            ));
            for (field, url) in region.redis.urls() {
                stores.push((
                    format!("regions.remote.{name}.redis.{field}"),
                    weak_credentials(url, None, 16),
                ));
            }
        }
        match stores
            .into_iter()
            .find_map(|(field, why)| Some((field, why?)))
        {
            Some((field, why)) => anyhow::bail!("{field}: {why}"),
            None => Ok(()),
        }
    }

    /// What the query service reads from: the served regions' stores.
    pub fn service_stores(&self) -> rf_service::Stores {
        let settings = self.settings();
        let served = settings.served_regions().into_iter();
        rf_service::Stores::new(
            &self.regions.home,
            &self.clickhouse,
            served.map(|r| (r.name, r.clickhouse, r.redis.as_service())),
        )
    }

    /// What the pipeline and the jobs need.
    pub fn settings(&self) -> Settings {
        Settings {
            kafka: self.kafka.clone(),
            registry: self.registry.clone(),
            clickhouse: self.clickhouse.clone(),
            redis: self.redis.clone(),
            pipeline: self.pipeline.clone(),
            regions: self.regions.clone(),
            analytics: self.analytics.clone(),
            alerts: self.alerts.clone(),
            secrets: self.secrets.clone(),
        }
    }
}

fn one_line(e: &figment::Error) -> String {
    e.clone()
        .into_iter()
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_toml(toml: &str) -> anyhow::Result<Config> {
        let dir = std::env::temp_dir().join(format!(
            "roomflow-config-{}-{}",
            std::process::id(),
            toml.len()
        ));
        std::fs::create_dir_all(&dir)?;
        let path = dir.join("roomflow.toml");
        std::fs::write(&path, toml)?;
        Config::load(Some(&path))
    }

    #[test]
    fn defaults_are_the_local_stack() {
        let c = Config::load(None).unwrap();
        assert_eq!(c.kafka.brokers, "127.0.0.1:19092");
        assert_eq!(c.registry.url, "http://127.0.0.1:18081");
        assert_eq!(c.clickhouse.url, "http://127.0.0.1:18123");
        assert_eq!(c.redis.url, RedisConfig::local(16379).url);
        assert_eq!(c.service.listen, "127.0.0.1:18080");
    }

    #[test]
    fn errors_name_the_field() {
        let unknown = load_toml("[kafka]\nbrokerz = \"x\"\n")
            .unwrap_err()
            .to_string();
        assert!(unknown.contains("brokerz"), "{unknown}");
        let typed = load_toml("[pipeline]\nworkers = \"two\"\n")
            .unwrap_err()
            .to_string();
        assert!(typed.contains("workers"), "{typed}");
        let range = load_toml("[pipeline]\nworkers = 0\n")
            .unwrap_err()
            .to_string();
        assert!(range.starts_with("pipeline.workers"), "{range}");
        let secret = load_toml("[service]\nlisten = \"0.0.0.0:18080\"\n")
            .unwrap_err()
            .to_string();
        assert!(secret.starts_with("service.jwt_secret"), "{secret}");
        for (toml, field) in [
            ("[pipeline]\nprocess = 1\n", "pipeline.process"),
            (
                "[pipeline]\nprocess = 2\nhosts = [\"a:1\", \"b:2\"]\n",
                "pipeline.process",
            ),
            ("[pipeline]\nhosts = [\"a:1\", \"b\"]\n", "pipeline.hosts"),
            (
                "[pipeline]\nidle_timeout_secs = 100000\n",
                "pipeline.idle_timeout_secs",
            ),
            (
                "[service.rate_limits.standard]\ngeneral = { requests = 0, window_secs = 60 }\nanalytics = { requests = 1, window_secs = 60 }\n",
                "service.rate_limits",
            ),
            ("[regions]\nserve = [\"mars\"]\n", "regions.serve"),
            ("[service]\njwt_algorithm = \"RS256\"\n", "service.jwks"),
            (
                "[regions.remote.eu]\nredis.url = \"http://x\"\n",
                "regions.remote.redis.url",
            ),
            (
                "[regions.remote.eu]\nredis.jobs_url = \"http://x\"\n",
                "regions.remote.redis.jobs_url",
            ),
            ("[redis]\nservice_url = \"x\"\n", "redis.service_url"),
            (
                "[service]\nanalytics_queries_per_tenant = 3\n",
                "service.analytics_queries_per_tenant",
            ),
            (
                "[service]\nanalytics_max_threads = 5000\n",
                "service.analytics_max_threads",
            ),
            ("[secrets]\nkey_file = \"/nonexistent/keys\"\n", "secrets.key_file"),
        ] {
            let e = load_toml(toml).unwrap_err().to_string();
            assert!(e.starts_with(field), "{toml}: {e}");
        }
        let limits = load_toml(
            "[service.rate_limits.free]\ngeneral = { requests = 5, window_secs = 60 }\nanalytics = { requests = 1, window_secs = 60 }\n",
        )
        .unwrap();
        assert_eq!(limits.service.rate_limits["free"].general.requests, 5);
        assert_eq!(
            limits.service.rate_limits["enterprise"].general.requests, 1000,
            "the other tiers keep their defaults"
        );
        let cluster = load_toml("[pipeline]\nprocess = 1\nhosts = [\"a:1\", \"b:2\"]\n");
        assert_eq!(cluster.unwrap().pipeline.process, 1);
        assert!(
            load_toml("[pipeline]\nworkers = 4\n")
                .unwrap()
                .pipeline
                .workers
                == 4
        );
    }
}
