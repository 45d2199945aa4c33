//! Logs and, when `telemetry.otlp_endpoint` is set, OpenTelemetry traces: every tracing
//! span (a query-service `request` with its `request_id`, a pipeline `epoch` and its
//! `sink` writes, a `job`) is exported over OTLP/HTTP (JSON) to a collector, in batches
//! from a thread of its own. Off by default.

use opentelemetry::trace::TracerProvider as _;
use serde::{Deserialize, Serialize};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::InvalidSetting;

/// Where traces go.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetryConfig {
    /// The OTLP/HTTP collector's base URL (e.g. `http://127.0.0.1:4318`; traces are
    /// posted to `<url>/v1/traces`); empty: no traces.
    pub otlp_endpoint: String,
    /// `service.name` of the traces; the component (`serve`, `run`, `jobs`, …) is
    /// appended.
    pub service_name: String,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            otlp_endpoint: String::new(),
            service_name: "roomflow".into(),
        }
    }
}

impl TelemetryConfig {
    /// Checks the endpoint is an http(s) URL and the name is not empty.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        let e = &self.otlp_endpoint;
        if !(e.is_empty() || e.starts_with("http://") || e.starts_with("https://")) {
            return Err(InvalidSetting {
                field: "telemetry.otlp_endpoint",
                problem: format!("{e:?} is not an http(s) URL"),
            });
        }
        if self.service_name.trim().is_empty() {
            return Err(InvalidSetting {
                field: "telemetry.service_name",
                problem: "must not be empty".into(),
            });
        }
        Ok(())
    }
}

/// The traces' exporter, while the process runs: dropping it sends what is left.
pub struct Telemetry(opentelemetry_sdk::trace::SdkTracerProvider);

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Err(error) = self.0.shutdown() {
            eprintln!("warning: the last traces were not sent: {error}");
        }
    }
}

/// Installs the process's subscriber: log lines to stderr (`json` or plain) filtered
/// by `RUST_LOG` (else `default_filter`), and traces of `component` when
/// `config.otlp_endpoint` is set. Keep the returned value until the process ends.
pub fn init(
    json: bool,
    default_filter: &str,
    config: &TelemetryConfig,
    component: &str,
) -> Result<Option<Telemetry>, String> {
    let filter = tracing_subscriber::EnvFilter::try_from_env("RUST_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    let (traces, telemetry) = match config.otlp_endpoint.as_str() {
        "" => (None, None),
        endpoint => {
            let provider = provider(endpoint, &format!("{}-{component}", config.service_name))?;
            let tracer = provider.tracer("roomflow");
            opentelemetry::global::set_tracer_provider(provider.clone());
            (
                Some(tracing_opentelemetry::layer().with_tracer(tracer)),
                Some(Telemetry(provider)),
            )
        }
    };
    let plain = (!json).then(|| tracing_subscriber::fmt::layer().with_writer(std::io::stderr));
    let structured = json.then(|| {
        tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_writer(std::io::stderr)
    });
    tracing_subscriber::registry()
        .with(filter)
        .with(traces)
        .with(plain)
        .with(structured)
        .try_init()
        .map_err(|e| format!("cannot install the log subscriber: {e}"))?;
    Ok(telemetry)
}

fn provider(
    endpoint: &str,
    service: &str,
) -> Result<opentelemetry_sdk::trace::SdkTracerProvider, String> {
    use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(std::time::Duration::from_secs(10)))
        .build()
        .new_agent();
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(opentelemetry_otlp::Protocol::HttpJson)
        .with_endpoint(format!("{}/v1/traces", endpoint.trim_end_matches('/')))
        .with_http_client(Ureq(agent))
        .build()
        .map_err(|e| format!("telemetry.otlp_endpoint: cannot make the exporter: {e}"))?;
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(service.to_owned())
        .build();
    Ok(opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build())
}

/// The exporter's HTTP client: ureq, on the batch processor's own thread.
#[derive(Debug)]
struct Ureq(ureq::Agent);

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for Ureq {
    async fn send_bytes(
        &self,
        request: http::Request<bytes::Bytes>,
    ) -> Result<http::Response<bytes::Bytes>, opentelemetry_http::HttpError> {
        let (parts, body) = request.into_parts();
        let mut response = self
            .0
            .run(http::Request::from_parts(parts, body.to_vec()))?;
        let status = response.status();
        let body = response.body_mut().read_to_vec()?;
        Ok(http::Response::builder()
            .status(status)
            .body(bytes::Bytes::from(body))?)
    }
}

/// A span of the current span's trace that already happened, from `start` to `end`: a
/// pipeline epoch's reading (`poll`) and computing (`compute`), measured before its
/// `epoch` span, their parent, began. Nothing when traces are off.
pub fn past_span(name: &'static str, start: std::time::Instant, end: std::time::Instant) {
    use opentelemetry::trace::{Span as _, Tracer as _};
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    let parent = tracing::Span::current().context();
    let at = |i: std::time::Instant| std::time::SystemTime::now() - i.elapsed();
    let tracer = opentelemetry::global::tracer("roomflow");
    let mut span = tracer
        .span_builder(name)
        .with_start_time(at(start))
        .start_with_context(&tracer, &parent);
    span.end_with_timestamp(at(end));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_endpoint_or_name_is_refused_naming_the_field() {
        assert!(TelemetryConfig::default().validate().is_ok());
        let on = TelemetryConfig {
            otlp_endpoint: "https://otel.example.com:4318".into(),
            ..Default::default()
        };
        assert!(on.validate().is_ok());
        let bad = TelemetryConfig {
            otlp_endpoint: "otel.example.com:4318".into(),
            ..Default::default()
        };
        assert_eq!(bad.validate().unwrap_err().field, "telemetry.otlp_endpoint");
        let nameless = TelemetryConfig {
            service_name: " ".into(),
            ..Default::default()
        };
        assert_eq!(
            nameless.validate().unwrap_err().field,
            "telemetry.service_name"
        );
    }
}
