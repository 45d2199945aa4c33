//! The web app: its pages and assets at `/` (built into the binary), sign-in through the
//! enterprise's identity provider at `/auth/…` (OpenID Connect, authorization code with
//! PKCE), and the sessions that let a signed-in browser call the API.
//!
//! A session holds who signed in (tenant, subject, the role the identity provider's claims
//! map to); what the caller may do is decided per request by [`crate::routes::caller`],
//! with the tenant admin's role assignments (`rf_platform.roles`) over the claims'. Writes
//! from a session need the CSRF token (`X-CSRF-Token`, from `GET /auth/me`).

pub mod devidp;
mod oidc;
mod store;

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::{Deserialize, Serialize};
use tower_sessions::Session;

use rf_schemas::tenant::Role;
use rf_sinks::Secret;

use crate::{audit, AppState, InvalidSetting};

pub(crate) use oidc::csrf;
pub use oidc::Provider;
pub(crate) use store::RedisStore;

/// The web app's settings (`[service.web]`).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebConfig {
    /// Serve the web app at `/` and sign-in at `/auth/…`.
    pub enabled: bool,
    /// The identity provider's issuer URL; its discovery document is read from
    /// `<issuer>/.well-known/openid-configuration`. https, or http on a loopback host
    /// only. The default is the local stack's development provider (`roomflow dev-idp`).
    pub oidc_issuer: String,
    /// The client id registered at the identity provider.
    pub oidc_client_id: String,
    /// The client's secret, for providers that require one (empty: a public client,
    /// PKCE only).
    pub oidc_client_secret: Secret,
    /// Where the provider sends users back: this service's `/auth/callback`, as browsers
    /// reach it (registered at the provider).
    pub redirect_url: String,
    /// Scopes asked for (`openid` always).
    pub scopes: Vec<String>,
    /// The ID-token claim naming the user's tenant.
    pub tenant_claim: String,
    /// The ID-token claim with the user's groups or roles: a list or a space-separated
    /// string.
    pub roles_claim: String,
    /// Values of `roles_claim` and the role each grants; a user gets the strongest. A user
    /// none of whose values is mapped cannot sign in.
    pub role_map: BTreeMap<String, Role>,
    /// A session ends after this many minutes without a request (1 to 1440).
    pub session_idle_minutes: u64,
    /// Requests of each signed-in user, counted apart from the tenant's integrations
    /// (`service.rate_limits`): a dashboard's page asks for several series at once.
    pub rate_limit: crate::limits::TierLimits,
}

/// The local stack's development identity provider.
pub const DEV_ISSUER: &str = "http://127.0.0.1:18088";
/// The client id the development provider knows.
pub const DEV_CLIENT_ID: &str = "roomflow-local";
/// The local service's callback.
pub const DEV_REDIRECT_URL: &str = "http://127.0.0.1:18080/auth/callback";

impl Default for WebConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            oidc_issuer: DEV_ISSUER.into(),
            oidc_client_id: DEV_CLIENT_ID.into(),
            oidc_client_secret: Secret::new(""),
            redirect_url: DEV_REDIRECT_URL.into(),
            scopes: vec!["openid".into(), "profile".into(), "email".into()],
            tenant_claim: "tenant".into(),
            roles_claim: "roles".into(),
            role_map: Role::ALL
                .into_iter()
                .map(|r| (format!("roomflow-{r}"), r))
                .collect(),
            session_idle_minutes: 480,
            rate_limit: crate::limits::TierLimits {
                general: crate::limits::Limit {
                    requests: 1_000,
                    window_secs: 900,
                },
                analytics: crate::limits::Limit {
                    requests: 120,
                    window_secs: 60,
                },
                // A person never ingests (no person holds the ingest role).
                ingest: crate::limits::Limit {
                    requests: 0,
                    window_secs: 60,
                },
            },
        }
    }
}

impl WebConfig {
    /// Checks the settings; `loopback` is whether the service listens on loopback only.
    pub fn validate(&self, loopback: bool) -> Result<(), InvalidSetting> {
        if !self.enabled {
            return Ok(());
        }
        let issuer = url("service.web.oidc_issuer", &self.oidc_issuer)?;
        let redirect = url("service.web.redirect_url", &self.redirect_url)?;
        if !redirect.path().ends_with("/auth/callback") {
            return Err(InvalidSetting {
                field: "service.web.redirect_url",
                problem: "must be this service's /auth/callback as browsers reach it".into(),
            });
        }
        if !loopback
            && (issuer.as_str() == format!("{DEV_ISSUER}/") || redirect.scheme() != "https")
        {
            return Err(InvalidSetting {
                field: if redirect.scheme() != "https" {
                    "service.web.redirect_url"
                } else {
                    "service.web.oidc_issuer"
                },
                problem: "on a non-loopback address the web app needs the enterprise's identity provider and an https redirect URL".into(),
            });
        }
        if self.oidc_client_id.is_empty() {
            return Err(InvalidSetting {
                field: "service.web.oidc_client_id",
                problem: "must name the client registered at the identity provider".into(),
            });
        }
        if self.tenant_claim.is_empty() || self.roles_claim.is_empty() {
            return Err(InvalidSetting {
                field: "service.web.tenant_claim",
                problem: "the tenant and roles claims must be named".into(),
            });
        }
        if self.role_map.is_empty() {
            return Err(InvalidSetting {
                field: "service.web.role_map",
                problem: "map at least one claim value to a role, or nobody can sign in".into(),
            });
        }
        for limit in [self.rate_limit.general, self.rate_limit.analytics] {
            if limit.requests == 0 || !(1..=86_400).contains(&limit.window_secs) {
                return Err(InvalidSetting {
                    field: "service.web.rate_limit",
                    problem: "requests must be at least 1 and window_secs between 1 and 86400"
                        .into(),
                });
            }
        }
        if !(1..=1440).contains(&self.session_idle_minutes) {
            return Err(InvalidSetting {
                field: "service.web.session_idle_minutes",
                problem: "must be between 1 and 1440".into(),
            });
        }
        Ok(())
    }
}

/// An http(s) URL; plain http only to a loopback host.
pub(crate) fn url(
    field: &'static str,
    value: &str,
) -> Result<openidconnect::url::Url, InvalidSetting> {
    let invalid = |problem: String| InvalidSetting { field, problem };
    let parsed = openidconnect::url::Url::parse(value)
        .map_err(|e| invalid(format!("{value:?} is not a URL: {e}")))?;
    let loopback = match parsed.host() {
        Some(openidconnect::url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(openidconnect::url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(openidconnect::url::Host::Domain(d)) => d == "localhost",
        None => false,
    };
    match parsed.scheme() {
        "https" => Ok(parsed),
        "http" if loopback => Ok(parsed),
        _ => Err(invalid(format!(
            "{value:?}: must be https (plain http only on a loopback host)"
        ))),
    }
}

/// Who signed in, as the session keeps it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SessionUser {
    /// The tenant the identity provider named.
    pub tenant: String,
    /// The provider's `sub`.
    pub subject: String,
    /// The name to show.
    pub name: String,
    /// The e-mail address, if the provider gave one.
    pub email: String,
    /// The role the provider's claims map to (the tenant's admin may set another).
    pub idp_role: Role,
}

impl SessionUser {
    /// The user's principal in `rf_platform.roles`.
    pub fn principal(&self) -> String {
        format!("user:{}", self.subject)
    }
}

/// The session's key of the signed-in user.
const USER: &str = "user";

/// Reads the session's user, for requests that carry no other credential, into the
/// request's scope, where [`crate::routes::caller`] finds it.
pub(crate) async fn session_user(request: Request, next: Next) -> Response {
    let headers = request.headers();
    let other =
        headers.contains_key(crate::routes::API_KEY) || headers.contains_key("authorization");
    if !other {
        if let Some(session) = request.extensions().get::<Session>() {
            if let Ok(Some(user)) = session.get::<SessionUser>(USER).await {
                audit::remember_session(user);
            }
        }
    }
    next.run(request).await
}

/// Every response's security headers: the pages' Content-Security-Policy allows nothing
/// but this origin's own scripts, styles and API, no framing, no inline code.
pub(crate) async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    let set = |headers: &mut axum::http::HeaderMap, name: &'static str, value: &'static str| {
        headers.insert(name, HeaderValue::from_static(value));
    };
    set(headers, "content-security-policy", CSP);
    set(headers, "x-content-type-options", "nosniff");
    set(headers, "x-frame-options", "DENY");
    set(headers, "referrer-policy", "no-referrer");
    set(headers, "cross-origin-opener-policy", "same-origin");
    response
}

/// The Content-Security-Policy of every response.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

const INDEX: &str = include_str!("../../web/index.html");
const APP_JS: &str = include_str!("../../web/app.js");
const APP_CSS: &str = include_str!("../../web/app.css");
const FAVICON: &str = "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 16 16\"><rect width=\"16\" height=\"16\" rx=\"3\" fill=\"#0072b2\"/><rect x=\"3\" y=\"9\" width=\"2\" height=\"4\" fill=\"#fff\"/><rect x=\"7\" y=\"6\" width=\"2\" height=\"7\" fill=\"#fff\"/><rect x=\"11\" y=\"3\" width=\"2\" height=\"10\" fill=\"#fff\"/></svg>";

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

/// The web app's routes: the pages, the assets and sign-in.
pub(crate) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/", get(|| async { Html(INDEX) }))
        .route(
            "/assets/app.js",
            get(|| async { asset("text/javascript; charset=utf-8", APP_JS) }),
        )
        .route(
            "/assets/app.css",
            get(|| async { asset("text/css; charset=utf-8", APP_CSS) }),
        )
        .route(
            "/favicon.ico",
            get(|| async { asset("image/svg+xml", FAVICON) }),
        )
        .route("/auth/login", get(oidc::login))
        .route("/auth/callback", get(oidc::callback))
        .route("/auth/logout", post(oidc::logout))
        .route("/auth/me", get(oidc::me))
}

/// A small page for what went wrong in sign-in, text escaped.
pub(crate) fn problem(status: StatusCode, title: &str, detail: &str) -> Response {
    let body = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>roomflow: {t}</title><link rel=\"stylesheet\" href=\"/assets/app.css\"></head><body><main class=\"problem\"><h1>{t}</h1><p>{d}</p><p><a href=\"/\">Back to roomflow</a></p></main></body></html>",
        t = escape(title),
        d = escape(detail)
    );
    (status, Html(body)).into_response()
}

/// Text for HTML.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_pass_on_loopback_only() {
        let web = WebConfig::default();
        assert!(web.validate(true).is_ok());
        let e = web.validate(false).unwrap_err();
        assert_eq!(e.field, "service.web.redirect_url");
        let real = WebConfig {
            oidc_issuer: "https://login.example.com/tenant/v2.0".into(),
            redirect_url: "https://roomflow.example.com/auth/callback".into(),
            ..WebConfig::default()
        };
        assert!(real.validate(false).is_ok());
        for (field, bad) in [
            (
                "service.web.oidc_issuer",
                WebConfig {
                    oidc_issuer: "http://idp.example.com".into(),
                    ..real.clone()
                },
            ),
            (
                "service.web.oidc_issuer",
                WebConfig {
                    oidc_issuer: "javascript:alert(1)".into(),
                    ..real.clone()
                },
            ),
            (
                "service.web.redirect_url",
                WebConfig {
                    redirect_url: "https://roomflow.example.com/elsewhere".into(),
                    ..real.clone()
                },
            ),
            (
                "service.web.role_map",
                WebConfig {
                    role_map: BTreeMap::new(),
                    ..real.clone()
                },
            ),
            (
                "service.web.session_idle_minutes",
                WebConfig {
                    session_idle_minutes: 0,
                    ..real.clone()
                },
            ),
        ] {
            assert_eq!(bad.validate(false).unwrap_err().field, field);
        }
    }

    #[test]
    fn problem_pages_escape_what_they_show() {
        assert_eq!(
            escape("<script>alert('x')</script>&"),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;"
        );
    }
}
