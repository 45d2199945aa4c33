//! Sign-in: OpenID Connect's authorization code flow with PKCE, through `openidconnect`.
//! The identity provider's discovery document is read when first needed and again every
//! hour (a provider that is down delays sign-in, never the service's start); its ID tokens
//! must be signed with an asymmetric algorithm (never HS*, never `none`), name this
//! client, carry the nonce of this sign-in, and map to a tenant the platform serves and a
//! role. The HTTP client follows no redirects and reads at most 1 MiB.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Json;
use axum_csrf::CsrfToken;
use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreJwsSigningAlgorithm, CoreProviderMetadata,
};
use openidconnect::{
    AuthorizationCode, ClientId, ClientSecret, CsrfToken as State_, IssuerUrl, Nonce,
    PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope, TokenResponse,
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::Mutex;
use tower_sessions::Session;

use rf_schemas::tenant::Role;
use rf_schemas::TenantId;

use super::{problem, SessionUser, WebConfig, USER};
use crate::audit::{self, Who};
use crate::directory::Refusal;
use crate::routes::ApiError;
use crate::AppState;

/// The identity provider, discovered when first needed.
pub struct Provider {
    config: WebConfig,
    discovered: Mutex<Option<(Instant, CoreProviderMetadata)>>,
}

/// How long a discovery document is trusted before it is read again.
const REDISCOVER: Duration = Duration::from_secs(3600);

/// The longest a sign-in may take at the provider.
const LOGIN_MAX_MS: i64 = 10 * 60 * 1000;

/// Why a provider call failed.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct HttpError(String);

/// One HTTP exchange with the identity provider: no redirects, 10 s, 1 MiB.
async fn http(
    request: openidconnect::HttpRequest,
) -> Result<openidconnect::HttpResponse, HttpError> {
    tokio::task::spawn_blocking(move || {
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(10)))
            .max_redirects(0)
            .http_status_as_error(false)
            .build()
            .new_agent();
        let mut response = agent.run(request).map_err(|e| HttpError(e.to_string()))?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response
            .body_mut()
            .with_config()
            .limit(1 << 20)
            .read_to_vec()
            .map_err(|e| HttpError(e.to_string()))?;
        let mut answer = openidconnect::HttpResponse::new(body);
        *answer.status_mut() = status;
        *answer.headers_mut() = headers;
        Ok(answer)
    })
    .await
    .map_err(|e| HttpError(e.to_string()))?
}

impl Provider {
    /// The provider of `config`, not contacted yet.
    pub fn new(config: &WebConfig) -> Self {
        Self {
            config: config.clone(),
            discovered: Mutex::new(None),
        }
    }

    /// The provider's metadata, read again once an hour old.
    async fn metadata(&self) -> Result<CoreProviderMetadata, String> {
        let mut discovered = self.discovered.lock().await;
        if let Some((at, metadata)) = discovered.as_ref() {
            if at.elapsed() < REDISCOVER {
                return Ok(metadata.clone());
            }
        }
        let issuer = IssuerUrl::new(self.config.oidc_issuer.clone()).map_err(|e| e.to_string())?;
        let metadata = CoreProviderMetadata::discover_async(issuer, &http)
            .await
            .map_err(|e| {
                let mut message = e.to_string();
                let mut source = std::error::Error::source(&e);
                while let Some(s) = source {
                    message.push_str(": ");
                    message.push_str(&s.to_string());
                    source = s.source();
                }
                message
            })?;
        *discovered = Some((Instant::now(), metadata.clone()));
        Ok(metadata)
    }

    fn client(
        &self,
        metadata: CoreProviderMetadata,
    ) -> Result<
        CoreClient<
            openidconnect::EndpointSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointMaybeSet,
            openidconnect::EndpointMaybeSet,
        >,
        String,
    > {
        let secret = self.config.oidc_client_secret.expose();
        let secret = (!secret.is_empty()).then(|| ClientSecret::new(secret.to_owned()));
        let redirect =
            RedirectUrl::new(self.config.redirect_url.clone()).map_err(|e| e.to_string())?;
        Ok(CoreClient::from_provider_metadata(
            metadata,
            ClientId::new(self.config.oidc_client_id.clone()),
            secret,
        )
        .set_redirect_uri(redirect))
    }

    /// The strongest role `claims` map to.
    fn role(&self, claims: &serde_json::Value) -> Option<Role> {
        let values: Vec<&str> = match &claims[&self.config.roles_claim] {
            serde_json::Value::Array(values) => values.iter().filter_map(|v| v.as_str()).collect(),
            serde_json::Value::String(s) => s.split_whitespace().collect(),
            _ => Vec::new(),
        };
        values
            .iter()
            .filter_map(|v| self.config.role_map.get(*v).copied())
            .max()
    }
}

/// A sign-in under way, kept in the session until the provider sends the user back.
#[derive(Serialize, Deserialize)]
struct Login {
    state: String,
    nonce: String,
    verifier: String,
    next: String,
    started_ms: i64,
}

const LOGIN: &str = "login";

#[derive(Deserialize)]
pub(crate) struct LoginQuery {
    next: Option<String>,
}

/// Where to go after sign-in: a path of this site only.
fn next_path(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && !n.contains('\\')
                && n.len() <= 512
                && n.chars().all(|c| !c.is_control()) =>
        {
            n.to_owned()
        }
        _ => "/".into(),
    }
}

fn provider(state: &AppState) -> Result<&Provider, Box<Response>> {
    state.web.as_ref().ok_or_else(|| {
        Box::new(problem(
            StatusCode::NOT_FOUND,
            "Sign-in is off",
            "This service's web app is disabled (service.web.enabled).",
        ))
    })
}

/// `GET /auth/login`: off to the identity provider.
pub(crate) async fn login(
    State(state): State<Arc<AppState>>,
    session: Session,
    Query(q): Query<LoginQuery>,
) -> Response {
    let provider = match provider(&state) {
        Ok(p) => p,
        Err(r) => return *r,
    };
    let client = match provider.metadata().await.and_then(|m| provider.client(m)) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, issuer = %provider.config.oidc_issuer, "the identity provider did not answer");
            return problem(
                StatusCode::SERVICE_UNAVAILABLE,
                "The identity provider did not answer",
                &format!(
                    "roomflow could not read the sign-in settings of {}. Try again in a moment; if it lasts, tell your administrator.",
                    provider.config.oidc_issuer
                ),
            );
        }
    };
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let mut request = client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            State_::new_random,
            Nonce::new_random,
        )
        .set_pkce_challenge(challenge);
    for scope in &provider.config.scopes {
        if scope != "openid" {
            request = request.add_scope(Scope::new(scope.clone()));
        }
    }
    let (url, csrf_state, nonce) = request.url();
    let login = Login {
        state: csrf_state.secret().clone(),
        nonce: nonce.secret().clone(),
        verifier: verifier.secret().clone(),
        next: next_path(q.next.as_deref()),
        started_ms: rf_schemas::unix_ms(),
    };
    if let Err(e) = session.insert(LOGIN, login).await {
        return problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "Sign-in is unavailable",
            &format!("the session store failed: {e}"),
        );
    }
    Redirect::to(url.as_str()).into_response()
}

#[derive(Deserialize)]
pub(crate) struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// `GET /auth/callback`: the provider sends the user back with a code, exchanged here
/// (with the PKCE verifier) for an ID token, which is verified and mapped to a tenant and
/// a role.
pub(crate) async fn callback(
    State(state): State<Arc<AppState>>,
    session: Session,
    Query(q): Query<CallbackQuery>,
) -> Response {
    let provider = match provider(&state) {
        Ok(p) => p,
        Err(r) => return *r,
    };
    let refused = |title: &str, detail: &str| problem(StatusCode::FORBIDDEN, title, detail);
    let login: Option<Login> = session.remove(LOGIN).await.ok().flatten();
    let Some(login) = login.filter(|l| rf_schemas::unix_ms() - l.started_ms <= LOGIN_MAX_MS) else {
        return problem(
            StatusCode::BAD_REQUEST,
            "This sign-in has expired",
            "It took too long, or was started in another browser. Sign in again.",
        );
    };
    if let Some(error) = q.error {
        let detail = q.error_description.unwrap_or_default();
        return refused(
            "The identity provider did not sign you in",
            &format!("{error}: {detail}"),
        );
    }
    let (Some(code), Some(returned)) = (q.code, q.state) else {
        return problem(
            StatusCode::BAD_REQUEST,
            "Sign-in failed",
            "The identity provider's answer had no code.",
        );
    };
    if !ring_eq(returned.as_bytes(), login.state.as_bytes()) {
        return problem(
            StatusCode::BAD_REQUEST,
            "Sign-in failed",
            "The answer does not belong to this sign-in (state mismatch). Sign in again.",
        );
    }
    let claims = match exchange(provider, code, &login).await {
        Ok(claims) => claims,
        Err(e) => {
            tracing::warn!(error = %e, "a sign-in's token was refused");
            return refused("Sign-in failed", &e);
        }
    };
    let subject = claims["sub"].as_str().unwrap_or_default().to_owned();
    let Some(tenant) = claims[&provider.config.tenant_claim]
        .as_str()
        .and_then(|t| TenantId::parse(t).ok())
    else {
        return refused(
            "No tenant",
            &format!(
                "Your account carries no valid {:?} claim; ask your administrator to add it.",
                provider.config.tenant_claim
            ),
        );
    };
    let region = match state.directory.region_of(&tenant) {
        Ok((region, _)) => region,
        Err(Refusal::Elsewhere(region)) => {
            return refused(
                "Another region",
                &format!("Your organisation's data lives in region {region}; sign in at that region's roomflow."),
            )
        }
        Err(_) => return refused("Unknown organisation", "roomflow has no such tenant."),
    };
    let Some(idp_role) = provider.role(&claims) else {
        return refused(
            "No roomflow role",
            "Your account has none of the roles roomflow maps; ask your administrator for access.",
        );
    };
    let user = SessionUser {
        tenant: tenant.to_string(),
        subject,
        name: claims["name"]
            .as_str()
            .or(claims["preferred_username"].as_str())
            .unwrap_or_default()
            .chars()
            .take(200)
            .collect(),
        email: claims["email"]
            .as_str()
            .unwrap_or_default()
            .chars()
            .take(200)
            .collect(),
        idp_role,
    };
    if state
        .directory
        .assigned(&tenant, &user.principal())
        .as_deref()
        == Some("none")
    {
        return refused(
            "Access removed",
            "Your organisation's roomflow admin removed your access.",
        );
    }
    // A new session id on sign-in: an id planted before it grants nothing after.
    if let Err(e) = session.cycle_id().await {
        return problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "Sign-in is unavailable",
            &format!("the session store failed: {e}"),
        );
    }
    if let Err(e) = session.insert(USER, user.clone()).await {
        return problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "Sign-in is unavailable",
            &format!("the session store failed: {e}"),
        );
    }
    if let Err(e) = crate::admin::seen(&state, &tenant, &user).await {
        tracing::warn!(tenant = %tenant, error = %e, "a sign-in was not recorded in rf_platform.roles");
    }
    // The callback's query (code, state) is not kept: the row says who signed in as what.
    audit::remember_change(&[("sign_in", user.idp_role.as_str())]);
    audit::remember_caller(Who {
        tenant,
        subject: user.principal(),
        region,
    });
    Redirect::to(&login.next).into_response()
}

/// Whether two byte strings are equal, in time that does not depend on where they differ.
fn ring_eq(a: &[u8], b: &[u8]) -> bool {
    use ring::hmac;
    // HMAC both under one random key: comparing the tags leaks nothing about the inputs.
    let key = hmac::Key::generate(hmac::HMAC_SHA256, &ring::rand::SystemRandom::new());
    match key {
        Ok(key) => hmac::verify(&key, a, hmac::sign(&key, b).as_ref()).is_ok(),
        Err(_) => false,
    }
}

/// The code for tokens; the ID token verified; its claims.
async fn exchange(
    provider: &Provider,
    code: String,
    login: &Login,
) -> Result<serde_json::Value, String> {
    let client = provider.client(provider.metadata().await?)?;
    let response = client
        .exchange_code(AuthorizationCode::new(code))
        .map_err(|e| format!("the provider has no token endpoint: {e}"))?
        .set_pkce_verifier(PkceCodeVerifier::new(login.verifier.clone()))
        .request_async(&http)
        .await
        .map_err(|e| match e {
            openidconnect::RequestTokenError::ServerResponse(r) => {
                format!("the provider refused the code: {r}")
            }
            other => format!("the token request failed: {other}"),
        })?;
    let id_token = response.id_token().ok_or("the provider sent no ID token")?;
    let verifier = client.id_token_verifier().set_allowed_algs([
        CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
        CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha384,
        CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha512,
        CoreJwsSigningAlgorithm::RsaSsaPssSha256,
        CoreJwsSigningAlgorithm::EcdsaP256Sha256,
        CoreJwsSigningAlgorithm::EcdsaP384Sha384,
        CoreJwsSigningAlgorithm::EdDsa,
    ]);
    id_token
        .claims(&verifier, &Nonce::new(login.nonce.clone()))
        .map_err(|e| format!("the ID token did not verify: {e}"))?;
    // Verified: its payload's other claims (tenant, roles) can be read as they are.
    let raw = id_token.to_string();
    let payload = raw.split('.').nth(1).ok_or("the ID token is not a JWS")?;
    use base64::Engine;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .map_err(|e| format!("the ID token's payload: {e}"))?;
    serde_json::from_slice(&bytes).map_err(|e| format!("the ID token's payload: {e}"))
}

/// `POST /auth/logout`: ends the session (CSRF-checked).
pub(crate) async fn logout(session: Session, token: CsrfToken, headers: HeaderMap) -> Response {
    if let Err(e) = csrf(&token, &headers) {
        return e.into_response();
    }
    let _ = session.flush().await;
    StatusCode::NO_CONTENT.into_response()
}

/// A session's write must carry the page's CSRF token in `X-CSRF-Token`, and, when the
/// browser names it, come from this site.
pub(crate) fn csrf(token: &CsrfToken, headers: &HeaderMap) -> Result<(), ApiError> {
    let forbidden =
        |why: &str| ApiError::status(StatusCode::FORBIDDEN, format!("CSRF check failed: {why}"));
    if headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|site| site != "same-origin" && site != "none")
    {
        return Err(forbidden("the request came from another site"));
    }
    let given = headers
        .get("x-csrf-token")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| forbidden("no X-CSRF-Token header"))?;
    token
        .verify(given)
        .map_err(|_| forbidden("the X-CSRF-Token does not match this session"))
}

/// `GET /auth/me`: who is signed in, the role in effect, and the CSRF token for writes
/// (its cookie is set with it); `{"signed_in": false}` when nobody is (a page asks
/// before it knows, which is no error).
pub(crate) async fn me(
    State(state): State<Arc<AppState>>,
    session: Session,
    token: CsrfToken,
) -> Response {
    let user: Option<SessionUser> = session.get(USER).await.ok().flatten();
    let Some(user) = user else {
        return Json(json!({ "signed_in": false, "login": "/auth/login" })).into_response();
    };
    let Ok(tenant) = TenantId::parse(&user.tenant) else {
        return StatusCode::UNAUTHORIZED.into_response();
    };
    let role = match crate::routes::session_role(&state, &tenant, &user) {
        Ok(role) => role,
        Err(e) => return e.into_response(),
    };
    let Ok(csrf_token) = token.authenticity_token() else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let tenant_name = state
        .directory
        .known(&tenant)
        .map(|k| k.name)
        .unwrap_or_default();
    (
        token,
        Json(json!({
            "signed_in": true,
            "tenant": user.tenant,
            "tenant_name": tenant_name,
            "subject": user.subject,
            "name": user.name,
            "email": user.email,
            "role": role,
            "csrf_token": csrf_token,
        })),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_this_sites_paths_are_followed_after_sign_in() {
        assert_eq!(next_path(Some("/#/portfolio")), "/#/portfolio");
        for bad in [
            "https://evil.example/",
            "//evil.example/",
            "/\\evil.example",
            "javascript:alert(1)",
            "/a\nb",
        ] {
            assert_eq!(next_path(Some(bad)), "/", "{bad}");
        }
        assert_eq!(next_path(None), "/");
    }

    #[test]
    fn roles_map_from_lists_or_strings_and_the_strongest_wins() {
        let p = Provider::new(&WebConfig::default());
        let claims = json!({ "roles": ["staff", "roomflow-viewer", "roomflow-admin"] });
        assert_eq!(p.role(&claims), Some(Role::Admin));
        let claims = json!({ "roles": "roomflow-analyst other" });
        assert_eq!(p.role(&claims), Some(Role::Analyst));
        assert_eq!(p.role(&json!({ "roles": ["staff"] })), None);
        assert_eq!(p.role(&json!({})), None);
        assert_eq!(p.role(&json!({ "roles": 7 })), None);
    }

    #[test]
    fn equal_compares_contents() {
        assert!(ring_eq(b"abc", b"abc"));
        assert!(!ring_eq(b"abc", b"abd"));
        assert!(!ring_eq(b"abc", b"abcd"));
    }
}
