//! roomflow's read-only query service: current occupancy from Redis, utilization series
//! from ClickHouse, each behind a bearer token that names the tenant.

pub mod admin;
mod analytics;
pub mod ask;
pub mod audit;
pub mod auth;
mod benchmarks;
mod bookings;
mod cache;
mod changes;
mod days;
pub mod directory;
mod flags;
pub mod ingest;
mod insights;
pub mod limits;
mod live;
mod parts;
mod portfolio;
mod rooms;
mod routes;
mod seats;
mod series;
mod slices;
mod slots;
pub mod web;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use tracing::Instrument;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::{delete, get, post, put};
use axum::Router;
use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};
use serde::{Deserialize, Serialize};

use rf_sinks::Secret;

use audit::{AuditLog, AuditRow};
pub use auth::{mint, mint_with, TokenPolicy, Verifier, READ_SCOPE};
pub use directory::{Directory, RegionStores, Stores};
use limits::TierLimits;
use rf_schemas::TenantId;
pub use routes::API_KEY;

/// The service's settings.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServiceConfig {
    /// Address to listen on.
    pub listen: String,
    /// How bearer tokens are signed, pinned: `HS256` (with `jwt_secret`) or `RS256` (with
    /// the keys of `jwks`). Tokens naming another algorithm, or `none`, are refused.
    pub jwt_algorithm: JwtAlgorithm,
    /// HS256 key of the bearer tokens. The default is for the local stack only: the
    /// service refuses it on any address but loopback.
    pub jwt_secret: Secret,
    /// RS256: the identity provider's JWKS, a file path or an http(s) URL, read at start
    /// and again every `jwks_refresh_secs`, so rotated keys are picked up.
    pub jwks: String,
    /// RS256: how often the JWKS is read again, seconds (1 to 86400). A failed read
    /// keeps the keys already known.
    pub jwks_refresh_secs: u64,
    /// Clock skew allowed on `exp`, `nbf` and `iat`, seconds (at most 60).
    pub jwt_leeway_secs: u64,
    /// The oldest a bearer token may be, and the longest it may be valid, seconds (1 to
    /// 31622400, a year): every token needs `iat`, and `roomflow token --ttl` may ask for
    /// no more.
    pub jwt_max_age_secs: u64,
    /// The `iss` every bearer token must carry; required with RS256 (the identity
    /// provider's issuer URL), optional with HS256.
    pub jwt_issuer: String,
    /// The `aud` every bearer token must carry; required with RS256, optional with HS256.
    pub jwt_audience: String,
    /// Longest range a series request may span, days.
    pub max_range_days: u64,
    /// How long a ClickHouse-backed response stays cached in the tenant's Redis, seconds
    /// (0: no cache), and how often what this process keeps checks the ClickHouse parts
    /// it was read from. A write of the tenant's makes its cached responses unreachable.
    pub cache_ttl_secs: u64,
    /// Memory this process keeps utilization series, room days and room metadata in, MiB
    /// (0: none): half for series, a quarter for room days, a quarter for metadata.
    /// Series are kept in chunks (a day of `15m`, a month of `1h` or `1d` windows), room
    /// days a local month at a time (about 14 MiB per 50,000 rooms), until the pipeline
    /// writes to their months; metadata until the pipeline mirrors a room version; each
    /// also until its ClickHouse parts change (checked every `cache_ttl_secs`).
    pub memory_cache_mib: u64,
    /// How often the tenants' states and the API keys are read again, seconds: a new or
    /// revoked key, a deleted tenant take effect within this.
    pub directory_refresh_secs: u64,
    /// ClickHouse queries this process runs at once per region (1 to 1000); requests
    /// beyond wait for one to finish rather than overload the server.
    pub clickhouse_queries: usize,
    /// How many of those one tenant may hold at once (1 to `clickhouse_queries`): a
    /// tenant flooding heavy queries waits behind itself, not in front of the others.
    pub clickhouse_queries_per_tenant: usize,
    /// How many of a tenant's queries may be analytics ones at once (ranges over seven
    /// days, heatmaps, rankings, insights; 1 to `clickhouse_queries_per_tenant`).
    pub analytics_queries_per_tenant: usize,
    /// ClickHouse threads of one analytics query (`max_threads`; 0: the server's
    /// default, one per core). Analytics queries also run at a lower `priority` than
    /// the others, which the server pauses them for: a tenant flooding its heaviest
    /// queries keeps at most this many cores busy, and the quick queries of every tenant
    /// go first.
    pub analytics_max_threads: u64,
    /// The longest one ClickHouse query of the service runs, seconds (1 to 300): the
    /// server stops it (`max_execution_time`), and the request answers 503.
    pub query_timeout_secs: u64,
    /// Requests per tenant, by tier (`free`, `standard`, `enterprise`): `general`,
    /// `analytics` (ranges over seven days, heatmaps, rankings) and `ingest` (batches of
    /// readings), each a number of `requests` per `window_secs`; shared by every `serve`
    /// process of a region.
    pub rate_limits: BTreeMap<String, TierLimits>,
    /// `POST /v1/ingest`'s limits on one request.
    pub ingest: IngestConfig,
    /// The web app and its sign-in.
    pub web: web::WebConfig,
    /// The key of the web app's CSRF cookies: the same (64 or more random characters) on
    /// every `serve` process behind one address; empty: a random key per process.
    pub csrf_key: Secret,
    /// Questions in plain language (`GET /v1/ask`).
    pub ask: ask::AskConfig,
}

/// See [`ServiceConfig::jwt_algorithm`].
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
pub enum JwtAlgorithm {
    /// A shared secret.
    #[serde(rename = "HS256")]
    Hs256,
    /// RSA keys from a JWKS.
    #[serde(rename = "RS256")]
    Rs256,
}

/// The longest `service.jwt_max_age_secs`: a year.
pub const MAX_TOKEN_AGE_SECS: u64 = 366 * 86_400;

/// The local stack's token key; refused on non-loopback addresses.
pub const LOCAL_DEV_SECRET: &str = "roomflow-local-development-only";

impl Default for ServiceConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:18080".into(),
            jwt_algorithm: JwtAlgorithm::Hs256,
            jwt_secret: Secret::new(LOCAL_DEV_SECRET),
            jwks: String::new(),
            jwks_refresh_secs: 300,
            jwt_leeway_secs: 60,
            jwt_max_age_secs: 30 * 86_400,
            jwt_issuer: String::new(),
            jwt_audience: String::new(),
            max_range_days: 400,
            directory_refresh_secs: 5,
            clickhouse_queries: 8,
            clickhouse_queries_per_tenant: 2,
            analytics_queries_per_tenant: 1,
            analytics_max_threads: 1,
            query_timeout_secs: 10,
            cache_ttl_secs: 60,
            memory_cache_mib: 1024,
            rate_limits: limits::default_limits(),
            ingest: IngestConfig::default(),
            web: web::WebConfig::default(),
            csrf_key: Secret::new(""),
            ask: ask::AskConfig::default(),
        }
    }
}

/// A setting that cannot work, naming its field.
#[derive(Debug, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct InvalidSetting {
    /// The dotted path of the field.
    pub field: &'static str,
    /// What is wrong.
    pub problem: String,
}

impl ServiceConfig {
    /// What a bearer token must satisfy beyond its signature.
    pub fn token_policy(&self) -> TokenPolicy {
        let set = |s: &String| (!s.is_empty()).then(|| s.clone());
        TokenPolicy {
            leeway_secs: self.jwt_leeway_secs,
            max_age_secs: self.jwt_max_age_secs,
            issuer: set(&self.jwt_issuer),
            audience: set(&self.jwt_audience),
        }
    }

    /// Checks the settings before anything starts.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        let addr: std::net::SocketAddr = self.listen.parse().map_err(|_| InvalidSetting {
            field: "service.listen",
            problem: format!("{:?} is not an address like 127.0.0.1:18080", self.listen),
        })?;
        if self.jwt_algorithm == JwtAlgorithm::Rs256 {
            if self.jwks.is_empty() {
                return Err(InvalidSetting {
                    field: "service.jwks",
                    problem: "RS256 needs the JWKS: a file path or an http(s) URL".into(),
                });
            }
            for (field, value) in [
                ("service.jwt_issuer", &self.jwt_issuer),
                ("service.jwt_audience", &self.jwt_audience),
            ] {
                if value.is_empty() {
                    return Err(InvalidSetting {
                        field,
                        problem: "RS256 tokens come from an identity provider: name the issuer and audience they must carry".into(),
                    });
                }
            }
        } else if self.jwt_secret.expose().len() < 16 {
            return Err(InvalidSetting {
                field: "service.jwt_secret",
                problem: "must be at least 16 characters".into(),
            });
        }
        // Beyond loopback, anyone who guesses the key mints tokens for every tenant.
        let weak = self.jwt_secret.weakness(32);
        if let Some(why) = weak.filter(|_| self.jwt_algorithm == JwtAlgorithm::Hs256) {
            if !addr.ip().is_loopback() {
                return Err(InvalidSetting {
                    field: "service.jwt_secret",
                    problem: format!(
                        "{why}: on a non-loopback address it needs 32 or more random characters"
                    ),
                });
            }
        }
        if !(1..=MAX_TOKEN_AGE_SECS).contains(&self.jwt_max_age_secs) {
            return Err(InvalidSetting {
                field: "service.jwt_max_age_secs",
                problem: format!("must be between 1 and {MAX_TOKEN_AGE_SECS} (a year)"),
            });
        }
        if self.jwt_leeway_secs > 60 {
            return Err(InvalidSetting {
                field: "service.jwt_leeway_secs",
                problem: "must be at most 60".into(),
            });
        }
        if !(1..=86_400).contains(&self.jwks_refresh_secs) {
            return Err(InvalidSetting {
                field: "service.jwks_refresh_secs",
                problem: "must be between 1 and 86400".into(),
            });
        }
        if !(1..=1000).contains(&self.clickhouse_queries) {
            return Err(InvalidSetting {
                field: "service.clickhouse_queries",
                problem: "must be between 1 and 1000".into(),
            });
        }
        if !(1..=self.clickhouse_queries).contains(&self.clickhouse_queries_per_tenant) {
            return Err(InvalidSetting {
                field: "service.clickhouse_queries_per_tenant",
                problem: "must be between 1 and service.clickhouse_queries".into(),
            });
        }
        if !(1..=self.clickhouse_queries_per_tenant).contains(&self.analytics_queries_per_tenant) {
            return Err(InvalidSetting {
                field: "service.analytics_queries_per_tenant",
                problem: "must be between 1 and service.clickhouse_queries_per_tenant".into(),
            });
        }
        if self.analytics_max_threads > 1024 {
            return Err(InvalidSetting {
                field: "service.analytics_max_threads",
                problem: "must be between 0 (the server's default) and 1024".into(),
            });
        }
        if !(1..=300).contains(&self.query_timeout_secs) {
            return Err(InvalidSetting {
                field: "service.query_timeout_secs",
                problem: "must be between 1 and 300".into(),
            });
        }
        if self.cache_ttl_secs > 86_400 {
            return Err(InvalidSetting {
                field: "service.cache_ttl_secs",
                problem: "must be at most 86400".into(),
            });
        }
        if self.memory_cache_mib > 1 << 20 {
            return Err(InvalidSetting {
                field: "service.memory_cache_mib",
                problem: "must be at most 1048576".into(),
            });
        }
        if !(1..=300).contains(&self.directory_refresh_secs) {
            return Err(InvalidSetting {
                field: "service.directory_refresh_secs",
                problem: "must be between 1 and 300".into(),
            });
        }
        for tier in ["free", "standard", "enterprise"] {
            let Some(l) = self.rate_limits.get(tier) else {
                return Err(InvalidSetting {
                    field: "service.rate_limits",
                    problem: format!("tier {tier} has no limits"),
                });
            };
            for limit in [l.general, l.analytics, l.ingest] {
                if limit.requests == 0 || !(1..=86_400).contains(&limit.window_secs) {
                    return Err(InvalidSetting {
                        field: "service.rate_limits",
                        problem: format!(
                            "{tier}: requests must be at least 1 and window_secs between 1 and 86400"
                        ),
                    });
                }
            }
        }
        self.web.validate(addr.ip().is_loopback())?;
        self.ask.llm.validate()?;
        let key = self.csrf_key.expose();
        if !key.is_empty() && key.len() < 64 {
            return Err(InvalidSetting {
                field: "service.csrf_key",
                problem: "must be 64 or more random characters (or empty: one per process)".into(),
            });
        }
        if !(1..=64 << 20).contains(&self.ingest.max_body_bytes) {
            return Err(InvalidSetting {
                field: "service.ingest.max_body_bytes",
                problem: "must be between 1 and 67108864".into(),
            });
        }
        if !(1..=100_000).contains(&self.ingest.max_readings) {
            return Err(InvalidSetting {
                field: "service.ingest.max_readings",
                problem: "must be between 1 and 100000".into(),
            });
        }
        if !(1..=300).contains(&self.ingest.ack_timeout_secs) {
            return Err(InvalidSetting {
                field: "service.ingest.ack_timeout_secs",
                problem: "must be between 1 and 300".into(),
            });
        }
        if !(1..=3660).contains(&self.max_range_days) {
            return Err(InvalidSetting {
                field: "service.max_range_days",
                problem: "must be between 1 and 3660".into(),
            });
        }
        Ok(())
    }
}

/// `POST /v1/ingest`'s limits on one request.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestConfig {
    /// Largest body accepted, bytes; a larger one is answered 413.
    pub max_body_bytes: usize,
    /// Most readings in one request; more are answered 413.
    pub max_readings: usize,
    /// How long the broker may take to acknowledge a batch before the request is
    /// answered 503 (and should be sent again), seconds.
    pub ack_timeout_secs: u64,
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: 1 << 20,
            max_readings: 5_000,
            ack_timeout_secs: 30,
        }
    }
}

/// One served region's connections.
struct RegionClients {
    /// For general requests.
    clickhouse: clickhouse::Client,
    /// For analytics requests: fewer threads, a lower priority.
    analytics: clickhouse::Client,
    redis: redis::aio::ConnectionManager,
    /// Slots to query `clickhouse`, shared fairly between tenants.
    queries: slots::Slots,
}

/// What every handler shares.
pub struct AppState {
    verifier: RwLock<Verifier>,
    directory: Directory,
    /// Per served region, in the directory's order.
    regions: Vec<RegionClients>,
    config: ServiceConfig,
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
    /// Questions asked (`rf_ask_questions_total`).
    asked: IntCounterVec,
    audit: AuditLog,
    /// Series chunks (none when `memory_cache_mib` is 0).
    chunks: Option<series::Chunks>,
    /// Room series reads waiting for a ClickHouse slot, read together by whoever gets it.
    room_reads: series::RoomReads,
    /// Months of room days (none when `memory_cache_mib` is 0).
    months: Option<days::Months>,
    /// The tenants' room metadata (none when `memory_cache_mib` is 0).
    metadata: Option<rooms::MetadataCache>,
    /// What the kept chunks, months and metadata were read from.
    fingerprints: parts::Fingerprints,
    /// The home ClickHouse, with the platform's tables.
    platform: clickhouse::Client,
    /// The web app's identity provider (none when the web app is off).
    web: Option<web::Provider>,
    /// Tenant administration, when the binary supplies it.
    admin: Option<Arc<dyn admin::Admin>>,
    /// Open live streams per tenant.
    streams: live::Streams,
    /// What `POST /v1/ingest` produces with (none: the service does not ingest).
    gateway: Option<ingest::Gateway>,
    /// Readings sent to `POST /v1/ingest`, by tenant and outcome.
    ingested: IntCounterVec,
    /// Requests of each tenant's credentials, by tenant (usage, for billing).
    tenant_requests: IntCounterVec,
}

/// What the binary supplies beyond the stores: tenant administration for the admin
/// endpoints, and a broker for `POST /v1/ingest`.
#[derive(Default)]
pub struct Backends {
    /// The admin endpoints' actions.
    pub admin: Option<Arc<dyn admin::Admin>>,
    /// The ingest endpoint's producer.
    pub gateway: Option<ingest::Gateway>,
}

/// The service's Prometheus metrics, by name.
pub const METRICS: [&str; 6] = [
    "rf_api_requests_total",
    "rf_api_request_seconds",
    "rf_api_audit_dropped_total",
    "rf_ask_questions_total",
    "rf_ingest_readings_total",
    "rf_api_tenant_requests_total",
];

/// Connects to every served region's ClickHouse and Redis, reads the tenant directory,
/// keeps it fresh, and builds the router.
pub async fn app(config: &ServiceConfig, stores: &Stores) -> Result<Router, String> {
    app_with(config, stores, Backends::default()).await
}

/// [`app`], with what the binary supplies.
pub async fn app_with(
    config: &ServiceConfig,
    stores: &Stores,
    backends: Backends,
) -> Result<Router, String> {
    Ok(build(config, stores, backends).await?.0)
}

/// Answers one question of `tenant`'s as an analyst named `subject` (`roomflow ask`):
/// the same understanding, plan, operations, fact check and audit row as `GET /v1/ask`.
pub async fn ask_once(
    config: &ServiceConfig,
    stores: &Stores,
    tenant: &TenantId,
    subject: &str,
    question: &str,
) -> Result<serde_json::Value, String> {
    let (router, writer, state) = build_all(config, stores, Backends::default()).await?;
    drop(router);
    let started = Instant::now();
    let answered =
        match routes::caller_for(&state, tenant, subject, rf_schemas::tenant::Role::Analyst) {
            Err(e) => Err(e.message().to_owned()),
            Ok((caller, region)) => {
                let (body, detail) = audit::SCOPE
                    .scope(audit::Scope::default(), async {
                        let body = ask::answer_question(
                            &state,
                            &caller,
                            question,
                            chrono::Utc::now(),
                            None,
                        )
                        .await;
                        (body, audit::SCOPE.with(|s| s.change.take()))
                    })
                    .await;
                let now = chrono::Utc::now();
                state.audit.record(
                    region,
                    AuditRow {
                        ts: now.timestamp() as u32,
                        ts_ms: now.timestamp_millis() as u64,
                        tenant: tenant.to_string(),
                        subject: subject.to_owned(),
                        route: "/v1/ask".into(),
                        path: "roomflow ask".into(),
                        query: detail.unwrap_or_default(),
                        status: if body.is_ok() { 200 } else { 500 },
                        duration_ms: started.elapsed().as_secs_f64() * 1000.0,
                        request_id: format!("cli-{}", std::process::id()),
                    },
                );
                body.map_err(|e| e.message().to_owned())
            }
        };
    drop(state);
    if tokio::time::timeout(std::time::Duration::from_secs(10), writer)
        .await
        .is_err()
    {
        tracing::warn!("the audit row was not written within 10 s; the log line keeps it");
    }
    answered
}

/// The router, and the audit writer, which ends once the router is gone and the last
/// rows are written.
async fn build(
    config: &ServiceConfig,
    stores: &Stores,
    backends: Backends,
) -> Result<(Router, tokio::task::JoinHandle<()>), String> {
    build_all(config, stores, backends)
        .await
        .map(|(router, writer, _)| (router, writer))
}

/// [`build`], with the state the router holds.
async fn build_all(
    config: &ServiceConfig,
    stores: &Stores,
    backends: Backends,
) -> Result<(Router, tokio::task::JoinHandle<()>, Arc<AppState>), String> {
    let mut regions = Vec::new();
    for r in &stores.regions {
        let redis = rf_sinks::redis::connect(&r.redis)
            .await
            .map_err(|e| format!("region {}: {e}", r.name))?;
        // The server stops a query past the timeout; the service gives up a moment later.
        let clickhouse = rf_sinks::clickhouse::client(&r.clickhouse)
            .with_setting("max_execution_time", config.query_timeout_secs.to_string());
        // Priorities: the server pauses a running query while one of a higher priority
        // (a lower number) runs.
        let mut analytics = clickhouse.clone().with_setting("priority", "2");
        if config.analytics_max_threads > 0 {
            analytics =
                analytics.with_setting("max_threads", config.analytics_max_threads.to_string());
        }
        regions.push(RegionClients {
            clickhouse: clickhouse.with_setting("priority", "1"),
            analytics,
            redis,
            queries: slots::Slots::new(
                config.clickhouse_queries,
                config.clickhouse_queries_per_tenant,
                config.analytics_queries_per_tenant,
            ),
        });
    }
    let platform = rf_sinks::clickhouse::client(&stores.platform);
    // The platform's tables, made if missing: the service writes the users' roles.
    rf_sinks::clickhouse::create_platform(&platform)
        .await
        .map_err(|e| {
            format!(
                "cannot create the platform's tables at {}: {e}",
                stores.platform.url
            )
        })?;
    let directory = Directory::new(stores);
    directory.refresh(&platform).await.map_err(|e| {
        format!(
            "cannot read the tenant directory at {}: {e}",
            stores.platform.url
        )
    })?;
    let registry = Registry::new();
    let requests = IntCounterVec::new(
        Opts::new(METRICS[0], "Requests answered, by route and status."),
        &["route", "status"],
    )
    .expect("valid metric");
    let latency = HistogramVec::new(
        HistogramOpts::new(METRICS[1], "Request latency, by route.")
            .buckets(prometheus::exponential_buckets(0.0005, 2.0, 14).expect("valid buckets")),
        &["route"],
    )
    .expect("valid metric");
    registry
        .register(Box::new(requests.clone()))
        .expect("unique metric");
    registry
        .register(Box::new(latency.clone()))
        .expect("unique metric");
    let dropped = prometheus::IntCounter::new(
        METRICS[2],
        "Audit rows not written to ClickHouse (the log lines keep them).",
    )
    .expect("valid metric");
    registry
        .register(Box::new(dropped.clone()))
        .expect("unique metric");
    let asked = IntCounterVec::new(
        Opts::new(
            METRICS[3],
            "Questions asked, by what understood them (builtin, llm) and outcome (answer, \
             clarify, out_of_scope, refused: a plan or an answer that failed its checks).",
        ),
        &["parser", "outcome"],
    )
    .expect("valid metric");
    registry
        .register(Box::new(asked.clone()))
        .expect("unique metric");
    let ingested = IntCounterVec::new(
        Opts::new(
            METRICS[4],
            "Readings sent to POST /v1/ingest, by tenant and outcome (accepted, or the \
             dead-letter reason they were rejected for).",
        ),
        &["tenant", "outcome"],
    )
    .expect("valid metric");
    registry
        .register(Box::new(ingested.clone()))
        .expect("unique metric");
    let tenant_requests = IntCounterVec::new(
        Opts::new(
            METRICS[5],
            "Requests answered for each tenant's credentials (keys, tokens, sessions), by tenant: usage for billing and capacity planning.",
        ),
        &["tenant"],
    )
    .expect("valid metric");
    registry
        .register(Box::new(tenant_requests.clone()))
        .expect("unique metric");
    let (audit, writer) = AuditLog::start(
        regions.iter().map(|r| r.clickhouse.clone()).collect(),
        dropped,
    );
    let verifier = match config.jwt_algorithm {
        JwtAlgorithm::Hs256 => Verifier::new(&config.jwt_secret, config.token_policy()),
        JwtAlgorithm::Rs256 => jwks_verifier(config).await?,
    };
    let state = Arc::new(AppState {
        verifier: RwLock::new(verifier),
        directory,
        regions,
        config: config.clone(),
        registry,
        requests,
        latency,
        asked,
        audit,
        chunks: series::chunks(config.memory_cache_mib / 2),
        room_reads: Default::default(),
        months: days::months(config.memory_cache_mib / 4),
        metadata: rooms::cache(config.memory_cache_mib / 4),
        fingerprints: parts::fingerprints(),
        platform: platform.clone(),
        web: config.web.enabled.then(|| web::Provider::new(&config.web)),
        admin: backends.admin,
        streams: live::Streams::default(),
        gateway: backends.gateway,
        ingested,
        tenant_requests,
    });
    if config.jwt_algorithm == JwtAlgorithm::Rs256 {
        let every = std::time::Duration::from_secs(config.jwks_refresh_secs);
        let refreshed = Arc::downgrade(&state);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let Some(state) = refreshed.upgrade() else {
                    return;
                };
                match jwks_verifier(&state.config).await {
                    Ok(verifier) => *state.verifier.write().expect("not poisoned") = verifier,
                    Err(error) => {
                        tracing::warn!(%error, "reading the JWKS again failed; keeping the keys known")
                    }
                }
            }
        });
    }
    let every = std::time::Duration::from_secs(config.directory_refresh_secs);
    let refreshed = Arc::downgrade(&state);
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(every).await;
            // The task ends with the service.
            let Some(state) = refreshed.upgrade() else {
                return;
            };
            if let Err(error) = state.directory.refresh(&platform).await {
                tracing::warn!(%error, "refreshing the tenant directory failed; keeping the last one");
            }
        }
    });
    let router = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(routes::metrics))
        .route("/openapi.json", get(openapi))
        .route("/v1/offices", get(portfolio::offices))
        .route("/v1/offices/ranking", get(insights::ranking))
        .route("/v1/offices/{office_id}/heatmap", get(insights::heatmap))
        .route("/v1/insights/underused", get(insights::underused))
        .route("/v1/benchmarks", get(benchmarks::benchmarks))
        .route("/v1/insights/changes", get(changes::changes))
        .route("/v1/insights/forecast-flags", get(flags::flags))
        .route("/v1/portfolio/days", get(slices::utilization))
        .route("/v1/insights/ghost-bookings", get(bookings::ghosts))
        .route("/v1/insights/seats", get(seats::seats))
        .route("/v1/offices/{office_id}/bookings", get(bookings::office))
        .route("/v1/anomalies", get(analytics::anomalies))
        .route("/v1/ask", get(ask::ask))
        .route(
            "/v1/offices/{office_id}/forecast",
            get(analytics::office_forecast),
        )
        .route(
            "/v1/rooms/{room_id}/forecast",
            get(analytics::room_forecast),
        )
        .route("/v1/offices/{office_id}/rooms", get(portfolio::rooms))
        .route(
            "/v1/offices/{office_id}/utilization",
            get(series::office_utilization),
        )
        .route(
            "/v1/rooms/{room_id}/occupancy",
            get(portfolio::room_occupancy),
        )
        .route(
            "/v1/offices/{office_id}/occupancy",
            get(routes::office_occupancy),
        )
        .route(
            "/v1/rooms/{room_id}/utilization",
            get(series::room_utilization),
        )
        .route(
            "/v1/portfolio/utilization",
            get(portfolio::portfolio_utilization),
        )
        .route("/v1/offices/{office_id}/live", get(live::office_live))
        .route("/v1/offices/{office_id}/today", get(live::office_today))
        .route("/v1/admin/users", get(admin::users))
        .route("/v1/admin/users/{subject}", put(admin::set_role))
        .route(
            "/v1/admin/apikeys",
            get(admin::keys).post(admin::create_key),
        )
        .route("/v1/admin/apikeys/{key_id}", delete(admin::revoke_key))
        .route(
            "/v1/admin/tenant",
            get(admin::tenant).patch(admin::change_tenant),
        )
        .route("/v1/admin/alerts/targets", post(admin::add_target))
        .route(
            "/v1/admin/alerts/targets/{index}",
            delete(admin::remove_target),
        )
        .route("/v1/admin/alerts/test", post(admin::test_alerts))
        .route("/v1/admin/changes", get(admin::changes))
        .route(
            "/v1/ingest",
            post(ingest::ingest).layer(axum::extract::DefaultBodyLimit::max(
                config.ingest.max_body_bytes,
            )),
        );
    let router = if config.web.enabled {
        router.merge(web::routes())
    } else {
        router
    };
    let secure = !config
        .listen
        .parse::<std::net::SocketAddr>()
        .is_ok_and(|a| a.ip().is_loopback())
        || config.web.redirect_url.starts_with("https://");
    let home = stores
        .regions
        .iter()
        .position(|r| r.name == stores.home)
        .unwrap_or(0);
    let sessions = tower_sessions::SessionManagerLayer::new(web::RedisStore::new(
        state.regions[home].redis.clone(),
    ))
    .with_name("rf_session")
    .with_http_only(true)
    .with_same_site(tower_sessions::cookie::SameSite::Lax)
    .with_secure(secure)
    .with_expiry(tower_sessions::Expiry::OnInactivity(
        tower_sessions::cookie::time::Duration::minutes(config.web.session_idle_minutes as i64),
    ));
    let router = router
        .route_layer(axum::middleware::from_fn(web::session_user))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), observe))
        .layer(axum_csrf::CsrfLayer::new(csrf_config(config, secure)))
        .layer(sessions)
        .layer(axum::middleware::from_fn(web::security_headers))
        .with_state(state.clone());
    Ok((router, writer, state))
}

/// The CSRF cookies' settings: strict, HttpOnly, keyed by `service.csrf_key` when set.
fn csrf_config(config: &ServiceConfig, secure: bool) -> axum_csrf::CsrfConfig {
    let mut csrf = axum_csrf::CsrfConfig::default()
        .with_cookie_name("rf_csrf")
        .with_cookie_same_site(axum_csrf::SameSite::Strict)
        .with_http_only(true)
        .with_secure(secure)
        .with_lifetime(tower_sessions::cookie::time::Duration::hours(12));
    let key = config.csrf_key.expose();
    if !key.is_empty() {
        let derived = ring::digest::digest(&ring::digest::SHA512, key.as_bytes());
        let salt = ring::digest::digest(&ring::digest::SHA256, derived.as_ref());
        let salt: String = salt.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        csrf = csrf
            .with_key(Some(axum_csrf::Key::from(derived.as_ref())))
            .with_salt(salt);
    }
    csrf
}

/// A verifier for the RS256 keys of `service.jwks`, read now.
async fn jwks_verifier(config: &ServiceConfig) -> Result<Verifier, String> {
    let source = config.jwks.clone();
    let jwks = tokio::task::spawn_blocking(move || read_jwks(&source))
        .await
        .map_err(|e| e.to_string())??;
    Verifier::rs256(&jwks, config.token_policy())
        .map_err(|e| format!("service.jwks {}: {e}", config.jwks))
}

/// The JWKS document at `source`: an http(s) URL or a file.
fn read_jwks(source: &str) -> Result<String, String> {
    if source.starts_with("https://") || source.starts_with("http://") {
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(std::time::Duration::from_secs(10)))
            .build()
            .new_agent();
        agent
            .get(source)
            .call()
            .and_then(|mut r| r.body_mut().read_to_string())
            .map_err(|e| format!("service.jwks: cannot fetch {source}: {e}"))
    } else {
        std::fs::read_to_string(source)
            .map_err(|e| format!("service.jwks: cannot read {source}: {e}"))
    }
}

/// The service's OpenAPI 3 description.
pub const OPENAPI: &str = include_str!("../openapi.json");

async fn openapi() -> impl axum::response::IntoResponse {
    ([("content-type", "application/json")], OPENAPI)
}

/// `GET /readyz`: 200 when every served region's ClickHouse and Redis answer, else 503
/// naming the first that does not.
async fn readyz(State(state): State<Arc<AppState>>) -> (axum::http::StatusCode, String) {
    use axum::http::StatusCode;
    for (name, r) in state.directory.region_names().iter().zip(&state.regions) {
        if let Err(e) = r.clickhouse.query("SELECT 1").execute().await {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("region {name}: ClickHouse: {e}"),
            );
        }
        let mut redis = r.redis.clone();
        if let Err(e) = redis::cmd("PING").query_async::<String>(&mut redis).await {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("region {name}: Redis: {e}"),
            );
        }
    }
    (StatusCode::OK, "ready".into())
}

/// The header carrying a request's correlation id, taken from the caller when it sends a
/// sane one, else made up; echoed in the response and in every log line of the request.
pub const REQUEST_ID: &str = "x-request-id";

fn request_id(request: &Request) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let given = request
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            (1..=64).contains(&v.len())
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
        });
    match given {
        Some(id) => id.to_owned(),
        None => format!(
            "rf-{:x}-{:x}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ),
    }
}

async fn observe(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched".to_owned(), |p| p.as_str().to_owned());
    let id = request_id(&request);
    let query_string = request.uri().query().unwrap_or_default().to_owned();
    let span = tracing::info_span!("request", request_id = %id, route = %route, tenant = tracing::field::Empty);
    let started = Instant::now();
    let path = request.uri().path().to_owned();
    let method = request.method().clone();
    let (mut response, quota, who, hit, change) = audit::SCOPE
        .scope(
            audit::Scope {
                request_id: id.clone(),
                ..Default::default()
            },
            async {
                let response = next.run(request).instrument(span.clone()).await;
                audit::SCOPE.with(|s| {
                    let change = s.change.take();
                    (
                        response,
                        s.quota.get(),
                        s.who.take(),
                        s.cache_hit.get(),
                        change,
                    )
                })
            },
        )
        .await;
    // What the row keeps of the request: the query string, or what a handler said it
    // changed; a write's starts with its method.
    let mut query = change.unwrap_or_else(|| query_string.clone());
    if method != axum::http::Method::GET && method != axum::http::Method::HEAD {
        query = format!("{method} {query}");
    }
    if let Some(hit) = hit {
        let value = if hit { "hit" } else { "miss" };
        response
            .headers_mut()
            .insert("x-cache", axum::http::HeaderValue::from_static(value));
    }
    for (name, value) in quota.iter().flat_map(limits::Quota::headers) {
        if let Ok(value) = axum::http::HeaderValue::from_str(&value) {
            response.headers_mut().insert(name, value);
        }
    }
    let status = response.status().as_u16();
    let elapsed = started.elapsed();
    let duration_ms = elapsed.as_secs_f64() * 1000.0;
    let subject = who.as_ref().map_or("", |w| w.subject.as_str());
    span.in_scope(|| {
        tracing::info!(status, duration_ms, subject, path = %path, query = %query, "request answered")
    });
    if let Some(who) = who {
        state
            .tenant_requests
            .with_label_values(&[who.tenant.as_str()])
            .inc();
        let now = rf_schemas::unix_ms() as u64;
        state.audit.record(
            who.region,
            audit::AuditRow {
                ts: (now / 1000) as u32,
                ts_ms: now,
                tenant: who.tenant.to_string(),
                subject: who.subject,
                route: route.clone(),
                path,
                query,
                status,
                duration_ms,
                request_id: id.clone(),
            },
        );
    }
    state
        .requests
        .with_label_values(&[&route, &status.to_string()])
        .inc();
    state
        .latency
        .with_label_values(&[&route])
        .observe(elapsed.as_secs_f64());
    if let Ok(value) = axum::http::HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    response
}

/// Serves until `shutdown` resolves.
pub async fn serve(
    config: &ServiceConfig,
    stores: &Stores,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), String> {
    let listener = tokio::net::TcpListener::bind(&config.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
    serve_on(listener, config, stores, shutdown).await
}

/// Serves on a bound `listener` (its address, not `config.listen`) until `shutdown`
/// resolves.
pub async fn serve_on(
    listener: tokio::net::TcpListener,
    config: &ServiceConfig,
    stores: &Stores,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), String> {
    serve_with(listener, config, stores, Backends::default(), shutdown).await
}

/// [`serve_on`], with the tenant administration of the admin endpoints and the ingest
/// endpoint's broker.
pub async fn serve_with(
    listener: tokio::net::TcpListener,
    config: &ServiceConfig,
    stores: &Stores,
    backends: Backends,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), String> {
    let (router, audit) = build(config, stores, backends).await?;
    let listen = listener.local_addr().map_err(|e| e.to_string())?;
    tracing::info!(%listen, "query service ready");
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|e| e.to_string())?;
    // The last audit rows, written before the process ends.
    if tokio::time::timeout(std::time::Duration::from_secs(10), audit)
        .await
        .is_err()
    {
        tracing::warn!("the last audit rows were not written within 10 s; the log lines keep them");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_openapi_document_describes_every_route() {
        let doc: serde_json::Value = serde_json::from_str(OPENAPI).unwrap();
        let paths = doc["paths"].as_object().unwrap();
        let all = include_str!("lib.rs");
        let source = &all[..all.find("#[cfg(test)]").unwrap()];
        let routes: Vec<&str> = source
            .match_indices(".route(")
            .map(|(i, _)| {
                let rest = &source[i..];
                let start = rest.find('"').unwrap() + 1;
                let end = start + rest[start..].find('"').unwrap();
                &rest[start..end]
            })
            .collect();
        assert!(routes.len() >= 10, "{routes:?}");
        for route in &routes {
            assert!(paths.contains_key(*route), "{route} is not in openapi.json");
        }
        assert_eq!(
            paths.len(),
            routes.len(),
            "no route described that does not exist"
        );
    }
}
