//! A tenant admin's endpoints (`/v1/admin/…`, the `admin` role only): users and their
//! roles, API keys, the tenant's settings, alert targets and rules, a test alert, and the
//! recent changes. Every write is audited with what it changed (in the audit row's
//! `query`; secrets never), and a browser's write needs its CSRF token.
//!
//! Keys, settings and alerts live in the tenant registry (a Kafka topic) and the platform's
//! tables, which the binary's jobs manage: the service reaches them through [`Admin`],
//! which the `roomflow serve` command supplies.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use axum_csrf::CsrfToken;
use clickhouse::Row;
use serde::Deserialize;
use serde_json::{json, Value};

use rf_schemas::tenant::Role;
use rf_schemas::TenantId;
use rf_sinks::clickhouse::roles::{self, RoleRow};

use crate::audit;
use crate::limits::Class;
use crate::portfolio::no_database_is_empty;
use crate::routes::{answer, caller, iso, ApiError, Caller};
use crate::web::SessionUser;
use crate::AppState;

/// What an [`Admin`] call answers.
pub type Pending<'a, T> = Pin<Box<dyn Future<Output = Result<T, AdminError>> + Send + 'a>>;

/// Why an admin action failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The request cannot be done as asked (400), naming the field.
    #[error("{1}")]
    Invalid(&'static str, String),
    /// Nothing such (404).
    #[error("{0}")]
    NotFound(String),
    /// A store or the broker failed (503).
    #[error("{0}")]
    Unavailable(String),
}

impl From<AdminError> for ApiError {
    fn from(e: AdminError) -> Self {
        match e {
            AdminError::Invalid(field, m) => ApiError::bad(field, m),
            AdminError::NotFound(m) => ApiError::not_found(m),
            AdminError::Unavailable(m) => ApiError::unavailable(m),
        }
    }
}

/// A change to a tenant's registry entry.
#[derive(Clone, Debug)]
pub enum Change {
    /// The name, industry, retention and benchmark consent (`None`: unchanged).
    Settings {
        /// The name people see.
        display_name: Option<String>,
        /// The customer's industry.
        industry: Option<String>,
        /// Days the tenant's rows are kept.
        retention_days: Option<u32>,
        /// Whether the tenant contributes to cross-tenant benchmarks.
        benchmarks: Option<bool>,
        /// The share of capacity above which rooms and offices are in breach.
        capacity_breach_at: Option<f64>,
    },
    /// The alert rules, replaced (each as `roomflow tenant update --alert-rule` takes it).
    Rules(Vec<String>),
    /// A new alert target, `KIND=URL`.
    AddTarget(String),
    /// The alert target at this index, removed.
    RemoveTarget(usize),
}

/// Tenant administration beyond the service's own tables.
pub trait Admin: Send + Sync {
    /// The tenant's API keys (never the keys): `[{key_id, name, role, created_at, revoked_at}]`.
    fn keys<'a>(&'a self, tenant: &'a TenantId) -> Pending<'a, Value>;
    /// A new key with `role`: `{key, key_id, name, role, offices}` (the key shown this
    /// once); an ingest key with `offices` sends readings of those offices only.
    fn create_key<'a>(
        &'a self,
        tenant: &'a TenantId,
        name: &'a str,
        role: Role,
        offices: &'a [String],
    ) -> Pending<'a, Value>;
    /// Revokes a key: `{key_id, revoked_at}`.
    fn revoke_key<'a>(&'a self, tenant: &'a TenantId, key_id: &'a str) -> Pending<'a, Value>;
    /// The registry entry, alert URLs masked: `{display_name, industry, tier, region,
    /// retention_days, alert_targets: [{index, kind, url, disabled}], alert_rules}`.
    fn tenant<'a>(&'a self, tenant: &'a TenantId) -> Pending<'a, Value>;
    /// Applies `change`; answers the entry as [`Admin::tenant`] does, with the new
    /// target's signing secret (`signing_secret`) once, if it has one.
    fn change<'a>(&'a self, tenant: &'a TenantId, change: Change) -> Pending<'a, Value>;
    /// Sends a test message to each alert target: `[{index, kind, url, outcome, delivered}]`.
    fn test_alerts<'a>(&'a self, tenant: &'a TenantId) -> Pending<'a, Value>;
}

/// The admin caller of a request, CSRF-checked for a browser's writes.
fn admin<'s>(
    state: &'s AppState,
    headers: &HeaderMap,
    write: Option<&CsrfToken>,
) -> Result<(Caller<'s>, &'s dyn Admin), ApiError> {
    let caller = caller(state, headers)?.require(Role::Admin)?;
    if let (Some(token), true) = (write, caller.session) {
        crate::web::csrf(token, headers)?;
    }
    let admin = state.admin.as_deref().ok_or_else(|| {
        ApiError::status(
            StatusCode::NOT_IMPLEMENTED,
            "this service was started without tenant administration",
        )
    })?;
    Ok((caller, admin))
}

/// A JSON body, or 400 naming what is wrong with it.
fn body<T>(body: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    body.map(|Json(b)| b)
        .map_err(|e| ApiError::bad("body", e.body_text()))
}

/// `GET /v1/admin/users`: who signed in, their roles and where each comes from.
pub async fn users(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (caller, _) = admin(&state, &headers, None)?;
    caller.limit(&state, Class::General).await?;
    let rows: Vec<RoleRow> = no_database_is_empty(
        state
            .platform
            .query(
                "SELECT tenant, principal, name, email, role, idp_role, toUInt32(last_seen), updated_by, version \
                 FROM rf_platform.roles FINAL WHERE tenant = ? AND startsWith(principal, 'user:') \
                 ORDER BY last_seen DESC LIMIT 1000",
            )
            .bind(caller.tenant.as_str())
            .fetch_all()
            .await,
    )?;
    let users: Vec<Value> = rows
        .iter()
        .map(|r| {
            let role = if r.role.is_empty() {
                &r.idp_role
            } else {
                &r.role
            };
            json!({
                "subject": r.principal.trim_start_matches("user:"),
                "name": r.name,
                "email": r.email,
                "role": role,
                "assigned": !r.role.is_empty(),
                "idp_role": r.idp_role,
                "last_sign_in": iso(i64::from(r.last_seen) * 1000),
            })
        })
        .collect();
    Ok(answer(json!({ "users": users })))
}

#[derive(Deserialize)]
pub struct RoleChange {
    /// viewer, analyst, admin, none (no access), or empty (follow the identity provider).
    role: String,
}

/// `PUT /v1/admin/users/{subject}`: sets a user's role over the identity provider's.
pub async fn set_role(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    token: CsrfToken,
    Path(subject): Path<String>,
    change: Result<Json<RoleChange>, JsonRejection>,
) -> Result<Response, ApiError> {
    let (caller, _) = admin(&state, &headers, Some(&token))?;
    let change = body(change)?;
    if subject.is_empty() || subject.len() > 256 || subject.chars().any(char::is_control) {
        return Err(ApiError::bad(
            "subject",
            "must be 1 to 256 printable characters",
        ));
    }
    let person = |r: Role| Role::ALL.contains(&r);
    if !change.role.is_empty()
        && change.role != "none"
        && !change.role.parse::<Role>().is_ok_and(person)
    {
        return Err(ApiError::bad(
            "role",
            "must be viewer, analyst, admin, none (no access) or empty (follow the identity provider)",
        ));
    }
    let principal = format!("user:{subject}");
    if principal == caller.subject {
        return Err(ApiError::bad(
            "subject",
            "admins cannot change their own role; ask another admin",
        ));
    }
    caller.limit(&state, Class::General).await?;
    let existing = roles::read(&state.platform, caller.tenant.as_str(), &principal)
        .await
        .map_err(ApiError::unavailable)?;
    let Some(mut row) = existing else {
        return Err(ApiError::not_found(format!(
            "no user {subject} has signed in to tenant {}",
            caller.tenant
        )));
    };
    row.role = change.role.clone();
    row.updated_by = caller.subject.clone();
    row.version = (rf_schemas::unix_ms() as u64).max(row.version + 1);
    audit::remember_change(&[("subject", &subject), ("role", &change.role)]);
    roles::write(&state.platform, &[row])
        .await
        .map_err(ApiError::unavailable)?;
    refresh(&state).await;
    Ok(answer(json!({ "subject": subject, "role": change.role })))
}

/// Reads the directory again, so that a change takes effect now rather than within
/// `service.directory_refresh_secs` (every other process: within it).
async fn refresh(state: &AppState) {
    if let Err(error) = state.directory.refresh(&state.platform).await {
        tracing::warn!(%error, "refreshing the tenant directory failed; it is read again shortly");
    }
}

/// Records a sign-in in `rf_platform.roles`, keeping the role an admin set.
pub(crate) async fn seen(
    state: &AppState,
    tenant: &TenantId,
    user: &SessionUser,
) -> clickhouse::error::Result<()> {
    let principal = user.principal();
    let before = roles::read(&state.platform, tenant.as_str(), &principal).await?;
    let now = rf_schemas::unix_ms() as u64;
    let row = RoleRow {
        tenant: tenant.to_string(),
        principal,
        name: user.name.clone(),
        email: user.email.clone(),
        role: before.as_ref().map(|b| b.role.clone()).unwrap_or_default(),
        idp_role: user.idp_role.as_str().into(),
        last_seen: (now / 1000) as u32,
        updated_by: before
            .as_ref()
            .map(|b| b.updated_by.clone())
            .unwrap_or_default(),
        version: before.map_or(now, |b| now.max(b.version + 1)),
    };
    roles::write(&state.platform, &[row]).await
}

/// `GET /v1/admin/apikeys`.
pub async fn keys(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (caller, admin) = admin(&state, &headers, None)?;
    caller.limit(&state, Class::General).await?;
    let keys = admin.keys(&caller.tenant).await?;
    Ok(answer(json!({ "keys": keys })))
}

#[derive(Deserialize)]
pub struct NewKey {
    name: String,
    role: Role,
    /// An ingest key's sites: the only offices it sends readings of.
    #[serde(default)]
    offices: Vec<String>,
}

/// `POST /v1/admin/apikeys`: a new key, shown this once.
pub async fn create_key(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    token: CsrfToken,
    new: Result<Json<NewKey>, JsonRejection>,
) -> Result<Response, ApiError> {
    let (caller, admin) = admin(&state, &headers, Some(&token))?;
    let new = body(new)?;
    caller.limit(&state, Class::General).await?;
    // What was asked, for the row of a refused attempt; the key id once it exists.
    audit::remember_change(&[("name", &new.name), ("role", new.role.as_str())]);
    let created = admin
        .create_key(&caller.tenant, &new.name, new.role, &new.offices)
        .await?;
    let key_id = created["key_id"].as_str().unwrap_or_default().to_owned();
    audit::remember_change(&[
        ("key_id", &key_id),
        ("name", &new.name),
        ("role", new.role.as_str()),
    ]);
    refresh(&state).await;
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

/// `DELETE /v1/admin/apikeys/{key_id}`.
pub async fn revoke_key(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    token: CsrfToken,
    Path(key_id): Path<String>,
) -> Result<Response, ApiError> {
    let (caller, admin) = admin(&state, &headers, Some(&token))?;
    crate::routes::id("key_id", &key_id)?;
    caller.limit(&state, Class::General).await?;
    audit::remember_change(&[("key_id", &key_id)]);
    let revoked = admin.revoke_key(&caller.tenant, &key_id).await?;
    refresh(&state).await;
    Ok(answer(revoked))
}

/// `GET /v1/admin/tenant`: the settings, alert targets (URLs masked) and rules.
pub async fn tenant(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (caller, admin) = admin(&state, &headers, None)?;
    caller.limit(&state, Class::General).await?;
    Ok(answer(admin.tenant(&caller.tenant).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SettingsChange {
    display_name: Option<String>,
    industry: Option<String>,
    retention_days: Option<u32>,
    alert_rules: Option<Vec<String>>,
    benchmarks: Option<bool>,
    capacity_breach_at: Option<f64>,
}

/// `PATCH /v1/admin/tenant`: the name, industry, retention, alert rules, benchmark
/// consent or capacity-breach threshold.
pub async fn change_tenant(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    token: CsrfToken,
    change: Result<Json<SettingsChange>, JsonRejection>,
) -> Result<Response, ApiError> {
    let (caller, admin) = admin(&state, &headers, Some(&token))?;
    let c = body(change)?;
    caller.limit(&state, Class::General).await?;
    let retention = c.retention_days.map(|d| d.to_string());
    let rules = c.alert_rules.as_ref().map(|r| r.join(" "));
    let benchmarks = c.benchmarks.map(|on| if on { "on" } else { "off" });
    let breach_at = c.capacity_breach_at.map(|at| at.to_string());
    let mut changed: Vec<(&str, &str)> = Vec::new();
    for (field, value) in [
        ("display_name", c.display_name.as_deref()),
        ("industry", c.industry.as_deref()),
        ("retention_days", retention.as_deref()),
        ("alert_rules", rules.as_deref()),
        ("benchmarks", benchmarks),
        ("capacity_breach_at", breach_at.as_deref()),
    ] {
        if let Some(v) = value {
            changed.push((field, v));
        }
    }
    if changed.is_empty() {
        return Err(ApiError::bad("body", "names nothing to change"));
    }
    audit::remember_change(&changed);
    let mut entry = Value::Null;
    if c.display_name.is_some()
        || c.industry.is_some()
        || c.retention_days.is_some()
        || c.benchmarks.is_some()
        || c.capacity_breach_at.is_some()
    {
        let settings = Change::Settings {
            display_name: c.display_name,
            industry: c.industry,
            retention_days: c.retention_days,
            benchmarks: c.benchmarks,
            capacity_breach_at: c.capacity_breach_at,
        };
        entry = admin.change(&caller.tenant, settings).await?;
    }
    if let Some(rules) = c.alert_rules {
        entry = admin.change(&caller.tenant, Change::Rules(rules)).await?;
    }
    Ok(answer(entry))
}

#[derive(Deserialize)]
pub struct NewTarget {
    /// slack, teams or webhook.
    kind: String,
    url: String,
}

/// `POST /v1/admin/alerts/targets`: adds an alert target (a webhook's signing secret is
/// shown this once).
pub async fn add_target(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    token: CsrfToken,
    new: Result<Json<NewTarget>, JsonRejection>,
) -> Result<Response, ApiError> {
    let (caller, admin) = admin(&state, &headers, Some(&token))?;
    let new = body(new)?;
    caller.limit(&state, Class::General).await?;
    let change = Change::AddTarget(format!("{}={}", new.kind, new.url));
    // The URL is a secret (Slack's and Teams' carry their token): only its host is kept.
    let host = openidconnect::url::Url::parse(&new.url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_default();
    audit::remember_change(&[("kind", &new.kind), ("host", &host)]);
    let entry = admin.change(&caller.tenant, change).await?;
    Ok((StatusCode::CREATED, Json(entry)).into_response())
}

/// `DELETE /v1/admin/alerts/targets/{index}`.
pub async fn remove_target(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    token: CsrfToken,
    Path(index): Path<usize>,
) -> Result<Response, ApiError> {
    let (caller, admin) = admin(&state, &headers, Some(&token))?;
    caller.limit(&state, Class::General).await?;
    audit::remember_change(&[("index", &index.to_string())]);
    Ok(answer(
        admin
            .change(&caller.tenant, Change::RemoveTarget(index))
            .await?,
    ))
}

/// `POST /v1/admin/alerts/test`: a test message to every alert target.
pub async fn test_alerts(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    token: CsrfToken,
) -> Result<Response, ApiError> {
    let (caller, admin) = admin(&state, &headers, Some(&token))?;
    caller.limit(&state, Class::General).await?;
    audit::remember_change(&[("test", "all targets")]);
    let results = admin.test_alerts(&caller.tenant).await?;
    Ok(answer(json!({ "targets": results })))
}

#[derive(Row, Deserialize)]
struct Changed {
    ts_ms: u64,
    subject: String,
    route: String,
    path: String,
    query: String,
    status: u16,
}

#[derive(Deserialize)]
pub struct Recent {
    limit: Option<u32>,
}

/// `GET /v1/admin/changes`: the tenant's latest writes (allowed or refused) and sign-ins,
/// from its audit table, newest first.
pub async fn changes(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(q): Query<Recent>,
) -> Result<Response, ApiError> {
    let (caller, _) = admin(&state, &headers, None)?;
    let limit = q.limit.unwrap_or(50);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad("limit", "must be between 1 and 1000"));
    }
    caller.limit(&state, Class::General).await?;
    let rows: Vec<Changed> = no_database_is_empty(
        caller
            .clickhouse()
            .query(&format!(
                "SELECT ts_ms, subject, route, path, query, status FROM {}.audit \
                 WHERE match(query, '^(POST|PUT|PATCH|DELETE) ') OR route = '/auth/callback' \
                 ORDER BY ts_ms DESC LIMIT ?",
                caller.tenant.clickhouse_db()
            ))
            .bind(limit)
            .fetch_all()
            .await,
    )?;
    let changes: Vec<Value> = rows
        .iter()
        .map(|r| {
            json!({
                "at": iso(r.ts_ms as i64),
                "subject": r.subject,
                "route": r.route,
                "path": r.path,
                "change": r.query,
                "status": r.status,
            })
        })
        .collect();
    Ok(answer(json!({ "changes": changes })))
}
