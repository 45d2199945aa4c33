//! The endpoints.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, SecondsFormat, Utc};
use prometheus::Encoder;
use redis::AsyncCommands;
use serde::Deserialize;
use serde_json::json;

use rf_schemas::tenant::Role;
use rf_schemas::TenantId;

use crate::audit::{self, Who};
use crate::directory::Refusal;
use crate::limits::{self, Class};
use crate::{AppState, RegionClients};

/// An answer other than 200: a status and a message naming what was wrong.
#[derive(Clone)]
pub struct ApiError {
    status: StatusCode,
    message: String,
    parameter: Option<&'static str>,
    /// Seconds for `Retry-After`, when the caller should come back.
    retry_after: Option<u64>,
}

impl ApiError {
    pub(crate) fn bad(parameter: &'static str, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
            parameter: Some(parameter),
            retry_after: None,
        }
    }

    pub(crate) fn status(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            parameter: None,
            retry_after: None,
        }
    }

    /// Whether it is a 404.
    pub(crate) fn is_not_found(&self) -> bool {
        self.status == StatusCode::NOT_FOUND
    }

    /// Whether the request itself was at fault (4xx), not the stores.
    pub(crate) fn is_refusal(&self) -> bool {
        self.status.is_client_error()
    }

    /// What it says.
    pub(crate) fn message(&self) -> &str {
        &self.message
    }

    /// This error, asking the caller to come back in `secs` seconds.
    pub(crate) fn retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs);
        self
    }

    pub(crate) fn not_found(what: impl Into<String>) -> Self {
        Self::status(StatusCode::NOT_FOUND, what)
    }

    pub(crate) fn unavailable(error: impl std::fmt::Display) -> Self {
        tracing::warn!(%error, "a backing store failed");
        Self::status(
            StatusCode::SERVICE_UNAVAILABLE,
            "a backing store is unavailable; retry shortly",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = match self.parameter {
            Some(p) => json!({ "error": self.message, "parameter": p }),
            None => json!({ "error": self.message }),
        };
        let mut response = (self.status, Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert("retry-after", axum::http::HeaderValue::from(secs));
        }
        response
    }
}

/// An authenticated caller.
pub(crate) struct Caller<'s> {
    pub(crate) tenant: TenantId,
    /// What the caller may do.
    pub(crate) role: Role,
    /// Who: a token's `sub`, `apikey:<key id>` or `user:<sub>`.
    pub(crate) subject: String,
    /// Whether the credential is a browser's session (its writes need the CSRF token).
    pub(crate) session: bool,
    pub(crate) stores: &'s RegionClients,
    tier: String,
    /// `service.query_timeout_secs`.
    pub(crate) query_timeout_secs: u64,
    /// The request's class, once counted ([`Caller::limit`]): its ClickHouse slots and
    /// client follow it.
    analytics: std::sync::atomic::AtomicBool,
    /// Whether the request was counted: a question's plan runs several operations, and
    /// the question counts once.
    counted: std::sync::atomic::AtomicBool,
}

impl Caller<'_> {
    /// The caller, if its role is at least `role`; else 403.
    pub(crate) fn require(self, role: Role) -> Result<Self, ApiError> {
        self.allowed(role).map(|()| self)
    }

    /// 403 unless the caller's role is at least `role`.
    pub(crate) fn allowed(&self, role: Role) -> Result<(), ApiError> {
        if self.role >= role {
            Ok(())
        } else {
            Err(ApiError::status(
                StatusCode::FORBIDDEN,
                format!("this needs the {role} role; the caller is a {}", self.role),
            ))
        }
    }

    /// The request's class: general until counted otherwise.
    pub(crate) fn class(&self) -> Class {
        match self.analytics.load(std::sync::atomic::Ordering::Relaxed) {
            true => Class::Analytics,
            false => Class::General,
        }
    }

    /// The region's ClickHouse client for the request's class: analytics queries run
    /// with fewer threads and a lower priority.
    pub(crate) fn clickhouse(&self) -> &clickhouse::Client {
        match self.class() {
            Class::General | Class::Ingest => &self.stores.clickhouse,
            Class::Analytics => &self.stores.analytics,
        }
    }

    /// Counts the request against the tenant's `class` limit, or answers 429. Either way
    /// the response carries the quota's headers (see [`audit::SCOPE`]). A request is
    /// counted once: the operations a question's plan runs count as the question.
    pub(crate) async fn limit(&self, state: &AppState, class: Class) -> Result<(), ApiError> {
        if self
            .counted
            .swap(true, std::sync::atomic::Ordering::Relaxed)
        {
            return Ok(());
        }
        // The config has every tier (validated); a tier added later falls back to standard.
        let limits = state
            .config
            .rate_limits
            .get(&self.tier)
            .or_else(|| state.config.rate_limits.get("standard"))
            .ok_or_else(|| {
                ApiError::status(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "no rate limits configured",
                )
            })?;
        self.analytics.store(
            class == Class::Analytics,
            std::sync::atomic::Ordering::Relaxed,
        );
        let mut redis = self.stores.redis.clone();
        // A signed-in person has a budget of their own (service.web.rate_limit): the
        // tenant's is for its integrations.
        let (user, limits) = match self.session {
            true => (Some(self.subject.as_str()), &state.config.web.rate_limit),
            false => (None, limits),
        };
        let quota = limits::count_for(&mut redis, &self.tenant, user, class, limits)
            .await
            .map_err(ApiError::unavailable)?;
        audit::remember_quota(quota);
        if quota.exceeded {
            return Err(ApiError::status(
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "rate limit: {} requests per window; retry in {} s",
                    quota.limit, quota.reset_secs
                ),
            ));
        }
        Ok(())
    }
}

/// A 200 with a JSON body.
pub(crate) fn answer(body: serde_json::Value) -> Response {
    Json(body).into_response()
}

/// The header integrations send their API key in.
pub const API_KEY: &str = "x-api-key";

/// The caller's tenant and role, from its credential alone (an API key, else a bearer
/// token, else the browser's session), with the stores of the tenant's region. An
/// ingest key is refused: it only sends readings ([`ingest_caller`]).
pub(crate) fn caller<'s>(state: &'s AppState, headers: &HeaderMap) -> Result<Caller<'s>, ApiError> {
    let caller = any_caller(state, headers)?;
    if caller.role == Role::Ingest {
        return Err(ApiError::status(
            StatusCode::FORBIDDEN,
            "an ingest key only sends readings (POST /v1/ingest)",
        ));
    }
    Ok(caller)
}

/// The caller of `POST /v1/ingest`: only an ingest key.
pub(crate) fn ingest_caller<'s>(
    state: &'s AppState,
    headers: &HeaderMap,
) -> Result<Caller<'s>, ApiError> {
    let caller = any_caller(state, headers)?;
    if caller.role != Role::Ingest {
        return Err(ApiError::status(
            StatusCode::FORBIDDEN,
            format!(
                "ingesting needs an API key of the ingest role; the caller is a {}",
                caller.role
            ),
        ));
    }
    Ok(caller)
}

fn any_caller<'s>(state: &'s AppState, headers: &HeaderMap) -> Result<Caller<'s>, ApiError> {
    let unauthorized = |message: String| ApiError::status(StatusCode::UNAUTHORIZED, message);
    let session = audit::session()
        .filter(|_| !headers.contains_key(API_KEY) && !headers.contains_key("authorization"));
    let from_session = session.is_some() && !headers.contains_key(API_KEY);
    let (tenant, subject, role) = match (headers.get(API_KEY), session) {
        (Some(key), _) => {
            let key = key.to_str().unwrap_or_default();
            let (tenant, key_id) = state
                .directory
                .key(key)
                .ok_or_else(|| unauthorized("unknown or revoked API key".into()))?;
            let principal = format!("apikey:{key_id}");
            // Keys made before roles read as analysts.
            let role = match state.directory.assigned(&tenant, &principal) {
                None => Role::Analyst,
                Some(role) => role.parse().map_err(|_| {
                    unauthorized(format!("API key {key_id} has no access (role {role})"))
                })?,
            };
            (tenant, principal, role)
        }
        (None, Some(user)) => {
            let tenant = TenantId::parse(&user.tenant)
                .map_err(|_| unauthorized("the session names no valid tenant".into()))?;
            let role = session_role(state, &tenant, &user)?;
            (tenant, user.principal(), role)
        }
        (None, None) => {
            let header = headers.get("authorization").and_then(|h| h.to_str().ok());
            let grant = state
                .verifier
                .read()
                .expect("not poisoned")
                .verify(header)
                .map_err(|e| unauthorized(e.to_string()))?;
            if state.directory.revoked(&grant.tenant, grant.issued_at) {
                return Err(unauthorized(format!(
                    "revoked token: tenant {} revoked every token issued before a later time",
                    grant.tenant
                )));
            }
            (grant.tenant, grant.subject, grant.role)
        }
    };
    let session = from_session;
    // The request's log lines carry the tenant from here on.
    tracing::Span::current().record("tenant", tracing::field::display(&tenant));
    match state.directory.region_of(&tenant) {
        Ok((region, tier)) => {
            audit::remember_caller(Who {
                tenant: tenant.clone(),
                subject: subject.clone(),
                region,
            });
            Ok(Caller {
                tier,
                stores: &state.regions[region],
                tenant,
                role,
                subject,
                session,
                query_timeout_secs: state.config.query_timeout_secs,
                analytics: Default::default(),
                counted: Default::default(),
            })
        }
        // A valid signature over a tenant the platform does not have grants nothing.
        Err(Refusal::Unknown) => Err(unauthorized(format!("tenant {tenant} does not exist"))),
        Err(Refusal::Deleted) => Err(ApiError::status(
            StatusCode::FORBIDDEN,
            format!("tenant {tenant} is deleted"),
        )),
        Err(Refusal::Elsewhere(region)) => Err(ApiError::status(
            StatusCode::MISDIRECTED_REQUEST,
            format!(
                "tenant {tenant}'s data lives in region {region}, which this service does not serve"
            ),
        )),
    }
}

/// A caller acting as `subject` for `tenant` with `role`, without a credential: the
/// operator's own tools (`roomflow ask`), never a request; not counted against the
/// tenant's rate limits.
pub(crate) fn caller_for<'s>(
    state: &'s AppState,
    tenant: &TenantId,
    subject: &str,
    role: Role,
) -> Result<(Caller<'s>, usize), ApiError> {
    let (region, tier) = state.directory.region_of(tenant).map_err(|refusal| {
        ApiError::not_found(match refusal {
            Refusal::Unknown => format!("tenant {tenant} does not exist"),
            Refusal::Deleted => format!("tenant {tenant} is deleted"),
            Refusal::Elsewhere(r) => {
                format!("tenant {tenant}'s data lives in region {r}, not served here")
            }
        })
    })?;
    let caller = Caller {
        tier,
        stores: &state.regions[region],
        tenant: tenant.clone(),
        role,
        subject: subject.to_owned(),
        session: false,
        query_timeout_secs: state.config.query_timeout_secs,
        analytics: std::sync::atomic::AtomicBool::new(true),
        counted: std::sync::atomic::AtomicBool::new(true),
    };
    Ok((caller, region))
}

/// A signed-in user's role: what the tenant's admin set, else what the identity
/// provider's claims map to; 403 when the admin removed the user's access.
pub(crate) fn session_role(
    state: &AppState,
    tenant: &TenantId,
    user: &crate::web::SessionUser,
) -> Result<Role, ApiError> {
    match state.directory.assigned(tenant, &user.principal()) {
        None => Ok(user.idp_role),
        Some(role) => role.parse().map_err(|_| {
            ApiError::status(
                StatusCode::FORBIDDEN,
                "your organisation's roomflow admin removed your access",
            )
        }),
    }
}

/// Ids in paths: what the contract's producers use, nothing that could escape a key.
pub(crate) fn id(parameter: &'static str, value: &str) -> Result<(), ApiError> {
    let ok = !value.is_empty()
        && value.len() <= 128
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(ApiError::bad(
            parameter,
            "must be 1 to 128 characters of A-Z, a-z, 0-9, '-', '_' or '.'",
        ))
    }
}

pub(crate) fn iso(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// `GET /metrics`.
pub async fn metrics(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    let mut buf = Vec::new();
    prometheus::TextEncoder::new()
        .encode(&state.registry.gather(), &mut buf)
        .expect("text encoding cannot fail");
    ([("content-type", "text/plain; version=0.0.4")], buf)
}

/// A number of a Redis hash of the pipeline's (0 if absent or not a number).
pub(crate) fn field(hash: &HashMap<String, String>, name: &str) -> f64 {
    hash.get(name)
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0)
}

/// `GET /v1/offices/{office_id}/occupancy`: the office's live occupancy.
pub async fn office_occupancy(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(office_id): Path<String>,
) -> Result<Response, ApiError> {
    let caller = caller(&state, &headers)?;
    id("office_id", &office_id)?;
    caller.limit(&state, Class::General).await?;
    let key = rf_sinks::redis::office_key(&caller.tenant, &office_id);
    let mut redis = caller.stores.redis.clone();
    let hash: HashMap<String, String> = redis.hgetall(&key).await.map_err(ApiError::unavailable)?;
    if hash.is_empty() {
        return Err(ApiError::not_found(format!("no office {office_id}")));
    }
    let num = |f: &str| field(&hash, f);
    Ok(answer(json!({
        "office_id": office_id,
        "people": num("people") as i64,
        "capacity": num("capacity") as u64,
        "rooms_reporting": num("rooms_reporting") as u64,
        "utilization": num("utilization"),
        "as_of": iso(num("ts") as i64),
    })))
}

/// Query parameters of a utilization series.
#[derive(Deserialize, Default)]
pub struct SeriesQuery {
    granularity: Option<String>,
    from: Option<String>,
    to: Option<String>,
    /// Offices only: the floor's rooms alone.
    pub floor: Option<i32>,
    /// The portfolio only: the region's offices alone.
    pub region: Option<String>,
}

/// A series request, checked.
pub struct Series {
    /// `15m`, `1h` or `1d`.
    pub label: &'static str,
    /// Windows starting at or after this…
    pub from: DateTime<Utc>,
    /// …and before this.
    pub to: DateTime<Utc>,
}

impl SeriesQuery {
    /// Checks the granularity (default 1h) and the range (default the last day).
    pub fn parse(&self, max_range_days: u64) -> Result<Series, ApiError> {
        let label = match self.granularity.as_deref().unwrap_or("1h") {
            "15m" => "15m",
            "1h" => "1h",
            "1d" => "1d",
            _ => return Err(ApiError::bad("granularity", "must be one of 15m, 1h, 1d")),
        };
        let to = time("to", self.to.as_deref(), next_minute())?;
        let from = time("from", self.from.as_deref(), to - chrono::Duration::days(1))?;
        if from >= to {
            return Err(ApiError::bad("from", "must be before to"));
        }
        if to - from > chrono::Duration::days(max_range_days as i64) {
            return Err(ApiError::bad(
                "to",
                format!("the range may span at most {max_range_days} days"),
            ));
        }
        Ok(Series { label, from, to })
    }

    /// Ranges over seven days are analytics.
    pub fn class(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Class {
        if to - from > chrono::Duration::days(7) {
            Class::Analytics
        } else {
            Class::General
        }
    }
}

/// Now, rounded up to a whole minute: a default range stays the same for a minute, and so
/// does its cache entry.
pub(crate) fn next_minute() -> DateTime<Utc> {
    let now = Utc::now();
    DateTime::from_timestamp((now.timestamp() / 60 + 1) * 60, 0).unwrap_or(now)
}

/// Seconds since the Unix epoch as ClickHouse's `DateTime` takes them.
pub fn secs(t: DateTime<Utc>) -> u32 {
    t.timestamp().clamp(0, i64::from(u32::MAX)) as u32
}

pub(crate) fn time(
    parameter: &'static str,
    value: Option<&str>,
    default: DateTime<Utc>,
) -> Result<DateTime<Utc>, ApiError> {
    match value {
        None => Ok(default),
        Some(v) => DateTime::parse_from_rfc3339(v)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|_| {
                ApiError::bad(
                    parameter,
                    "must be an ISO-8601 time with a zone, e.g. 2026-11-24T09:00:00Z",
                )
            }),
    }
}
