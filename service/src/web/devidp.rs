//! The local stack's development identity provider (`roomflow dev-idp`): an OpenID
//! Connect provider with the authorization code flow and PKCE (S256 only), so the web
//! app's sign-in works offline exactly as against an enterprise's provider. Its sign-in
//! page lets anyone pick a tenant and a persona (a facilities manager, an executive, a
//! tenant admin), so it listens on loopback only and refuses any other address.
//!
//! Its documents and ID tokens are built with `openidconnect`'s own types; tokens are
//! signed with an Ed25519 key made at start (so tokens of an earlier run do not verify).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use base64::Engine;
use openidconnect::core::{
    CoreEdDsaPrivateSigningKey, CoreGenderClaim, CoreJsonWebKeySet,
    CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm, CoreProviderMetadata,
    CoreResponseType, CoreSubjectIdentifierType,
};
use openidconnect::{
    AdditionalClaims, Audience, AuthUrl, EmptyAdditionalProviderMetadata, EndUserEmail,
    EndUserName, IdToken, IdTokenClaims, IssuerUrl, JsonWebKeyId, JsonWebKeySetUrl, Nonce,
    PrivateSigningKey, ResponseTypes, StandardClaims, SubjectIdentifier, TokenUrl,
};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::escape;

/// What `roomflow dev-idp` serves.
#[derive(Clone, Debug)]
pub struct DevIdpConfig {
    /// Where to listen: a loopback address.
    pub listen: SocketAddr,
    /// The one client it knows.
    pub client_id: String,
    /// The redirect URLs that client may use.
    pub redirect_urls: Vec<String>,
    /// The tenant its sign-in page suggests.
    pub tenant: String,
}

/// The personas of the sign-in page: (key, name, role claim).
const PERSONAS: [(&str, &str, &str, &str); 4] = [
    (
        "facilities",
        "Fran Facilities",
        "Facilities manager",
        "roomflow-viewer",
    ),
    (
        "executive",
        "Erin Executive",
        "Real-estate executive",
        "roomflow-analyst",
    ),
    ("admin", "Ada Admin", "Tenant admin", "roomflow-admin"),
    (
        "visitor",
        "Val Visitor",
        "Someone without a roomflow role",
        "staff",
    ),
];

#[derive(Clone, Debug, Serialize, Deserialize)]
struct DevClaims {
    tenant: String,
    roles: Vec<String>,
}
impl AdditionalClaims for DevClaims {}

type DevIdToken =
    IdToken<DevClaims, CoreGenderClaim, CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm>;

/// A code handed out, waiting to be exchanged (once, within a minute).
struct Grant {
    redirect_uri: String,
    challenge: String,
    nonce: Option<String>,
    user: (String, String, String, DevClaims),
    expires: Instant,
}

struct Idp {
    config: DevIdpConfig,
    issuer: String,
    key: CoreEdDsaPrivateSigningKey,
    codes: Mutex<HashMap<String, Grant>>,
}

/// Why the provider cannot start.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct DevIdpError(String);

/// Serves the development provider until `shutdown` resolves.
pub async fn serve(
    config: DevIdpConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), DevIdpError> {
    if !config.listen.ip().is_loopback() {
        return Err(DevIdpError(format!(
            "--listen {}: the development identity provider signs anyone in as anyone; it listens on loopback only (127.0.0.1 or ::1)",
            config.listen
        )));
    }
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| DevIdpError(format!("cannot listen on {}: {e}", config.listen)))?;
    let issuer = format!("http://{}", config.listen);
    let key = generate_key().map_err(DevIdpError)?;
    let idp = Arc::new(Idp {
        config,
        issuer: issuer.clone(),
        key,
        codes: Mutex::new(HashMap::new()),
    });
    tracing::info!(%issuer, "development identity provider ready (loopback only)");
    axum::serve(listener, router(idp))
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|e| DevIdpError(e.to_string()))
}

fn generate_key() -> Result<CoreEdDsaPrivateSigningKey, String> {
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = ring::signature::Ed25519KeyPair::generate_pkcs8(&rng)
        .map_err(|_| "cannot generate a key".to_string())?;
    let b64 = base64::engine::general_purpose::STANDARD.encode(pkcs8.as_ref());
    // PEM: lines of 64 characters.
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).expect("base64 is ASCII"))
        .collect();
    let pem = format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        lines.join("\n")
    );
    let mut kid = [0u8; 6];
    ring::rand::SecureRandom::fill(&rng, &mut kid).map_err(|_| "no randomness".to_string())?;
    let kid: String = kid.iter().map(|b| format!("{b:02x}")).collect();
    CoreEdDsaPrivateSigningKey::from_ed25519_pem(&pem, Some(JsonWebKeyId::new(kid)))
}

fn router(idp: Arc<Idp>) -> Router {
    // The sign-in form posts here and is redirected on to the client: browsers hold
    // that redirect to the form's `form-action` too.
    let origins: Vec<String> = idp
        .config
        .redirect_urls
        .iter()
        .filter_map(|u| openidconnect::url::Url::parse(u).ok())
        .map(|u| u.origin().ascii_serialization())
        .collect();
    let csp = format!(
        "default-src 'none'; form-action 'self' {}; base-uri 'none'; frame-ancestors 'none'",
        origins.join(" ")
    );
    let csp = header::HeaderValue::from_str(&csp)
        .unwrap_or(header::HeaderValue::from_static("default-src 'none'"));
    Router::new()
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/jwks.json", get(jwks))
        .route("/authorize", get(authorize_page).post(authorize))
        .route("/token", post(token))
        .route("/favicon.ico", get(|| async { StatusCode::NO_CONTENT }))
        .layer(axum::middleware::from_fn(
            move |request: axum::extract::Request, next: axum::middleware::Next| {
                let csp = csp.clone();
                async move {
                    let mut response = next.run(request).await;
                    let h = response.headers_mut();
                    h.insert("content-security-policy", csp);
                    h.insert(
                        "cache-control",
                        header::HeaderValue::from_static("no-store"),
                    );
                    response
                }
            },
        ))
        .with_state(idp)
}

async fn discovery(State(idp): State<Arc<Idp>>) -> Response {
    let url = |path: &str| format!("{}{path}", idp.issuer);
    let metadata = CoreProviderMetadata::new(
        IssuerUrl::new(idp.issuer.clone()).expect("a loopback URL"),
        AuthUrl::new(url("/authorize")).expect("a URL"),
        JsonWebKeySetUrl::new(url("/jwks.json")).expect("a URL"),
        vec![ResponseTypes::new(vec![CoreResponseType::Code])],
        vec![CoreSubjectIdentifierType::Public],
        vec![CoreJwsSigningAlgorithm::EdDsa],
        EmptyAdditionalProviderMetadata {},
    )
    .set_token_endpoint(Some(TokenUrl::new(url("/token")).expect("a URL")))
    .set_scopes_supported(Some(
        ["openid", "profile", "email"]
            .into_iter()
            .map(|s| openidconnect::Scope::new(s.into()))
            .collect(),
    ));
    Json(metadata).into_response()
}

async fn jwks(State(idp): State<Arc<Idp>>) -> Response {
    Json(CoreJsonWebKeySet::new(vec![idp.key.as_verification_key()])).into_response()
}

/// The authorization request's parameters, on the page and in its form.
#[derive(Deserialize, Serialize, Clone)]
struct AuthorizeParams {
    response_type: Option<String>,
    client_id: Option<String>,
    redirect_uri: Option<String>,
    scope: Option<String>,
    state: Option<String>,
    nonce: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
}

/// What is wrong with a request, before anything is redirected anywhere.
fn check(idp: &Idp, p: &AuthorizeParams) -> Result<(), String> {
    if p.client_id.as_deref() != Some(idp.config.client_id.as_str()) {
        return Err("unknown client_id".into());
    }
    match &p.redirect_uri {
        Some(r) if idp.config.redirect_urls.contains(r) => {}
        _ => return Err("redirect_uri is not registered for this client".into()),
    }
    if p.response_type.as_deref() != Some("code") {
        return Err("only response_type=code is supported".into());
    }
    if !p
        .scope
        .as_deref()
        .unwrap_or_default()
        .split_whitespace()
        .any(|s| s == "openid")
    {
        return Err("the scope must include openid".into());
    }
    if p.code_challenge_method.as_deref() != Some("S256")
        || p.code_challenge.as_deref().is_none_or(|c| c.len() < 43)
    {
        return Err("PKCE with code_challenge_method=S256 is required".into());
    }
    Ok(())
}

fn refused(status: StatusCode, why: &str) -> Response {
    (
        status,
        Html(format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Sign-in refused</title></head><body><h1>Sign-in refused</h1><p>{}</p></body></html>",
            escape(why)
        )),
    )
        .into_response()
}

async fn authorize_page(State(idp): State<Arc<Idp>>, Query(p): Query<AuthorizeParams>) -> Response {
    if let Err(why) = check(&idp, &p) {
        return refused(StatusCode::BAD_REQUEST, &why);
    }
    let hidden: String = [
        ("response_type", &p.response_type),
        ("client_id", &p.client_id),
        ("redirect_uri", &p.redirect_uri),
        ("scope", &p.scope),
        ("state", &p.state),
        ("nonce", &p.nonce),
        ("code_challenge", &p.code_challenge),
        ("code_challenge_method", &p.code_challenge_method),
    ]
    .iter()
    .filter_map(|(name, value)| {
        value.as_ref().map(|v| {
            format!(
                "<input type=\"hidden\" name=\"{name}\" value=\"{}\">",
                escape(v)
            )
        })
    })
    .collect();
    let buttons: String = PERSONAS
        .iter()
        .map(|(key, name, title, claim)| {
            format!(
                "<p><button type=\"submit\" name=\"persona\" value=\"{key}\">Sign in as {name}</button> ({title}; claim <code>{claim}</code>)</p>"
            )
        })
        .collect();
    Html(format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>roomflow development sign-in</title></head><body><main><h1>roomflow development sign-in</h1><p>The local stack's identity provider, for development and demos only: it signs you in as whoever you pick.</p><form method=\"post\" action=\"/authorize\">{hidden}<p><label for=\"tenant\">Tenant</label> <input id=\"tenant\" name=\"tenant\" value=\"{tenant}\" required pattern=\"[a-z][a-z0-9\\-]{{1,39}}\"></p>{buttons}</form></main></body></html>",
        tenant = escape(&idp.config.tenant)
    ))
    .into_response()
}

#[derive(Deserialize)]
struct AuthorizeForm {
    #[serde(flatten)]
    params: AuthorizeParams,
    tenant: String,
    persona: String,
}

async fn authorize(State(idp): State<Arc<Idp>>, Form(form): Form<AuthorizeForm>) -> Response {
    let p = &form.params;
    if let Err(why) = check(&idp, p) {
        return refused(StatusCode::BAD_REQUEST, &why);
    }
    let Some((key, name, _, claim)) = PERSONAS.iter().find(|(k, ..)| *k == form.persona) else {
        return refused(StatusCode::BAD_REQUEST, "unknown persona");
    };
    let tenant: String = form.tenant.trim().chars().take(40).collect();
    let code = random_token();
    let user = (
        format!("{key}@{tenant}"),
        (*name).to_owned(),
        format!("{key}@{tenant}.example"),
        DevClaims {
            tenant,
            roles: vec![(*claim).to_owned()],
        },
    );
    let redirect_uri = p.redirect_uri.clone().unwrap_or_default();
    {
        let mut codes = idp.codes.lock().unwrap_or_else(|e| e.into_inner());
        codes.retain(|_, g| g.expires > Instant::now());
        // Bounded: a flood of sign-ins forgets the oldest waiting codes.
        if codes.len() >= 10_000 {
            codes.clear();
        }
        codes.insert(
            code.clone(),
            Grant {
                redirect_uri: redirect_uri.clone(),
                challenge: p.code_challenge.clone().unwrap_or_default(),
                nonce: p.nonce.clone(),
                user,
                expires: Instant::now() + Duration::from_secs(60),
            },
        );
    }
    let mut target = match openidconnect::url::Url::parse(&redirect_uri) {
        Ok(u) => u,
        Err(_) => return refused(StatusCode::BAD_REQUEST, "redirect_uri is not a URL"),
    };
    target.query_pairs_mut().append_pair("code", &code);
    if let Some(state) = &p.state {
        target.query_pairs_mut().append_pair("state", state);
    }
    Redirect::to(target.as_str()).into_response()
}

fn random_token() -> String {
    let mut bytes = [0u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
        .expect("the system's randomness");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[derive(Deserialize)]
struct TokenForm {
    grant_type: String,
    code: String,
    redirect_uri: Option<String>,
    client_id: Option<String>,
    code_verifier: Option<String>,
}

fn token_error(error: &str, description: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({ "error": error, "error_description": description })),
    )
        .into_response()
}

async fn token(State(idp): State<Arc<Idp>>, Form(form): Form<TokenForm>) -> Response {
    if form.grant_type != "authorization_code" {
        return token_error("unsupported_grant_type", "only authorization_code");
    }
    if form.client_id.as_deref() != Some(idp.config.client_id.as_str()) {
        return token_error("invalid_client", "unknown client_id");
    }
    // Once only: the code is gone whatever follows.
    let grant = idp
        .codes
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&form.code);
    let Some(grant) = grant.filter(|g| g.expires > Instant::now()) else {
        return token_error("invalid_grant", "unknown, used or expired code");
    };
    if form.redirect_uri.as_deref() != Some(grant.redirect_uri.as_str()) {
        return token_error(
            "invalid_grant",
            "redirect_uri differs from the authorization's",
        );
    }
    let Some(verifier) = form.code_verifier else {
        return token_error("invalid_grant", "code_verifier is required (PKCE)");
    };
    let digest = ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes());
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest.as_ref());
    if challenge != grant.challenge {
        return token_error(
            "invalid_grant",
            "code_verifier does not match the challenge",
        );
    }
    let (sub, name, email, claims) = grant.user;
    let now = chrono::Utc::now();
    let mut id_claims = IdTokenClaims::new(
        IssuerUrl::new(idp.issuer.clone()).expect("a loopback URL"),
        vec![Audience::new(idp.config.client_id.clone())],
        now + chrono::Duration::minutes(5),
        now,
        StandardClaims::new(SubjectIdentifier::new(sub))
            .set_name(Some(EndUserName::new(name).into()))
            .set_email(Some(EndUserEmail::new(email))),
        claims,
    );
    if let Some(nonce) = grant.nonce {
        id_claims = id_claims.set_nonce(Some(Nonce::new(nonce)));
    }
    let id_token = match DevIdToken::new(
        id_claims,
        &idp.key,
        CoreJwsSigningAlgorithm::EdDsa,
        None,
        None,
    ) {
        Ok(t) => t,
        Err(e) => {
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                Json(json!({ "error": "server_error", "error_description": e.to_string() })),
            )
                .into_response()
        }
    };
    Json(json!({
        "access_token": random_token(),
        "token_type": "Bearer",
        "expires_in": 300,
        "id_token": id_token.to_string(),
    }))
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn it_refuses_any_address_but_loopback() {
        let config = DevIdpConfig {
            listen: "0.0.0.0:0".parse().unwrap(),
            client_id: "c".into(),
            redirect_urls: vec![],
            tenant: "acme".into(),
        };
        let e = serve(config, async {}).await.unwrap_err().to_string();
        assert!(e.contains("loopback only"), "{e}");
    }

    #[test]
    fn a_key_is_made_and_signs() {
        let key = generate_key().unwrap();
        assert!(key.sign(&CoreJwsSigningAlgorithm::EdDsa, b"x").is_ok());
    }
}
