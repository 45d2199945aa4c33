//! The connectors' HTTP: one agent that follows no redirects, reads at most 8 MiB a
//! response, gives up after 30 s, backs off on 429 and 503 as `Retry-After` says, and
//! audits every call (tenant, connector, endpoint, status, duration).

use std::time::{Duration, Instant};

use oauth2::http::{self, Request, Response};

/// Largest response body read.
const MAX_BODY: u64 = 8 << 20;
/// How often a throttled call is tried again before the sync gives up (it resumes from
/// where it was at the next run).
const MAX_THROTTLED: u32 = 6;
/// The longest wait a `Retry-After` may ask for.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(120);

/// What went wrong talking to a provider.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The connection, TLS or the body failed.
    #[error("{endpoint}: {message}")]
    Transport {
        /// Where.
        endpoint: String,
        /// What.
        message: String,
    },
    /// Still throttled after the retries.
    #[error("{endpoint}: still throttled (HTTP {status}) after {MAX_THROTTLED} tries")]
    Throttled {
        /// Where.
        endpoint: String,
        /// 429 or 503.
        status: u16,
    },
}

/// One call a connector made, for the tenant's `audit` table.
#[derive(Clone, Debug, PartialEq)]
pub struct Call {
    /// When it was answered, ms.
    pub at_ms: i64,
    /// `GET`, `POST`.
    pub method: String,
    /// The URL without its query.
    pub endpoint: String,
    /// The answer's status; 0 when none came.
    pub status: u16,
    /// How long it took, ms.
    pub duration_ms: f64,
}

/// A connector's HTTP client.
#[derive(Clone)]
pub struct Http {
    agent: ureq::Agent,
    /// For the audit: whose calls, which connector.
    tenant: String,
    connector: &'static str,
    /// The calls made since the last [`Http::take_calls`].
    calls: std::sync::Arc<std::sync::Mutex<Vec<Call>>>,
    /// How long a `Retry-After` is slept at most (tests shorten it).
    pub max_retry_after: Duration,
}

impl Http {
    /// A client auditing its calls as `tenant`'s `connector`.
    pub fn new(tenant: &str, connector: &'static str) -> Self {
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(30)))
            .max_redirects(0)
            .http_status_as_error(false)
            .build()
            .new_agent();
        Self {
            agent,
            tenant: tenant.to_owned(),
            connector,
            calls: Default::default(),
            max_retry_after: MAX_RETRY_AFTER,
        }
    }

    /// The connector's name.
    pub fn connector(&self) -> &'static str {
        self.connector
    }

    /// The calls made since the last time, oldest first.
    pub fn take_calls(&self) -> Vec<Call> {
        std::mem::take(&mut *self.calls.lock().expect("no panics while holding it"))
    }

    /// Sends `request` (retrying 429 and 503 after `Retry-After`) and returns the answer.
    pub fn send(&self, request: Request<Vec<u8>>) -> Result<Response<Vec<u8>>, HttpError> {
        let endpoint = endpoint(request.uri());
        let mut throttled = 0;
        loop {
            let started = Instant::now();
            let answer = self.once(request.clone(), &endpoint);
            let status = answer.as_ref().map_or(0, |r| r.status().as_u16());
            let elapsed = started.elapsed();
            self.calls
                .lock()
                .expect("no panics while holding it")
                .push(Call {
                    at_ms: rf_schemas::unix_ms(),
                    method: request.method().to_string(),
                    endpoint: endpoint.clone(),
                    status,
                    duration_ms: elapsed.as_secs_f64() * 1000.0,
                });
            tracing::info!(
                target: "audit",
                tenant = %self.tenant,
                connector = self.connector,
                method = %request.method(),
                endpoint = %endpoint,
                status,
                duration_ms = elapsed.as_millis() as u64,
                "connector call"
            );
            let answer = answer?;
            if !matches!(status, 429 | 503) {
                return Ok(answer);
            }
            throttled += 1;
            if throttled >= MAX_THROTTLED {
                return Err(HttpError::Throttled { endpoint, status });
            }
            let wait = retry_after(&answer)
                .unwrap_or(Duration::from_secs(1 << throttled.min(6)))
                .min(self.max_retry_after);
            tracing::warn!(tenant = %self.tenant, connector = self.connector, %endpoint, status, wait_ms = wait.as_millis() as u64, "throttled; waiting as asked");
            std::thread::sleep(wait);
        }
    }

    fn once(
        &self,
        request: Request<Vec<u8>>,
        endpoint: &str,
    ) -> Result<Response<Vec<u8>>, HttpError> {
        let failed = |e: &dyn std::fmt::Display| HttpError::Transport {
            endpoint: endpoint.to_owned(),
            message: e.to_string(),
        };
        let mut response = self.agent.run(request).map_err(|e| failed(&e))?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response
            .body_mut()
            .with_config()
            .limit(MAX_BODY)
            .read_to_vec()
            .map_err(|e| failed(&e))?;
        let mut answer = Response::new(body);
        *answer.status_mut() = status;
        *answer.headers_mut() = headers;
        Ok(answer)
    }
}

impl oauth2::SyncHttpClient for Http {
    type Error = HttpError;

    fn call(&self, request: oauth2::HttpRequest) -> Result<oauth2::HttpResponse, HttpError> {
        self.send(request)
    }
}

/// The URL without its query: query strings carry tokens and delta links.
fn endpoint(uri: &http::Uri) -> String {
    format!(
        "{}://{}{}",
        uri.scheme_str().unwrap_or("http"),
        uri.authority().map_or("", |a| a.as_str()),
        uri.path()
    )
}

/// `Retry-After` in seconds (the form both providers send).
fn retry_after(answer: &Response<Vec<u8>>) -> Option<Duration> {
    let value = answer.headers().get(http::header::RETRY_AFTER)?;
    let secs: u64 = value.to_str().ok()?.trim().parse().ok()?;
    Some(Duration::from_secs(secs))
}

/// A GET with a bearer token.
pub fn get(url: &str, token: &str) -> Result<Request<Vec<u8>>, String> {
    Request::get(url)
        .header(http::header::AUTHORIZATION, format!("Bearer {token}"))
        .header(http::header::ACCEPT, "application/json")
        .body(Vec::new())
        .map_err(|e| format!("bad request URL {url:?}: {e}"))
}

/// A row of a tenant's `audit` table (the query service's layout).
#[derive(clickhouse::Row, serde::Serialize)]
struct AuditRow {
    ts: u32,
    ts_ms: u64,
    tenant: String,
    subject: String,
    route: String,
    path: String,
    query: String,
    status: u16,
    duration_ms: f64,
    request_id: String,
}

/// Writes `calls` of `http`'s connector into the tenant's `audit` table, as
/// `connector:<name>` (the query string, which holds cursors, is never kept); `run`
/// names the sync they belong to.
pub async fn audit(
    clickhouse: &rf_sinks::config::ClickHouseConfig,
    tenant: &rf_schemas::TenantId,
    connector: &str,
    run: &str,
    calls: &[Call],
) -> clickhouse::error::Result<()> {
    if calls.is_empty() {
        return Ok(());
    }
    let client = rf_sinks::clickhouse::client(clickhouse).with_database(tenant.clickhouse_db());
    let mut insert = client.insert::<AuditRow>("audit").await?;
    for c in calls {
        insert
            .write(&AuditRow {
                ts: (c.at_ms / 1000) as u32,
                ts_ms: c.at_ms as u64,
                tenant: tenant.to_string(),
                subject: format!("connector:{connector}"),
                route: format!("{} {}", c.method, c.endpoint),
                path: c.endpoint.clone(),
                query: String::new(),
                status: c.status,
                duration_ms: c.duration_ms,
                request_id: run.to_owned(),
            })
            .await?;
    }
    insert.end().await
}
