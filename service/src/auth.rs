//! Bearer tokens: HS256 JWTs whose `tenant` claim names the only tenant they can read.

use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use rf_schemas::TenantId;
use rf_sinks::Secret;

/// The claims roomflow reads.
#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    /// Who the token was issued to.
    pub sub: String,
    /// The tenant whose data the token reads.
    pub tenant: String,
    /// Expiry, seconds since the epoch.
    pub exp: u64,
    /// Not valid before, seconds since the epoch.
    pub nbf: u64,
}

/// Why a request is not authenticated.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    /// No `Authorization: Bearer` header.
    #[error("missing bearer token")]
    Missing,
    /// The token did not verify (signature, algorithm, expiry, claims).
    #[error("invalid token: {0}")]
    Invalid(String),
}

/// Verifies tokens with the service's key.
#[derive(Clone)]
pub struct Verifier {
    key: DecodingKey,
    validation: Validation,
}

impl Verifier {
    /// A verifier for HS256 tokens signed with `secret`, allowing `leeway_secs` of clock skew.
    pub fn new(secret: &Secret, leeway_secs: u64) -> Self {
        // The algorithm is pinned: a token naming another (or `none`) is refused.
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = leeway_secs;
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp", "nbf", "sub"]);
        Self {
            key: DecodingKey::from_secret(secret.expose().as_bytes()),
            validation,
        }
    }

    /// The tenant a `Bearer` authorization header grants.
    pub fn tenant(&self, authorization: Option<&str>) -> Result<TenantId, AuthError> {
        let token = authorization
            .and_then(|h| {
                h.strip_prefix("Bearer ")
                    .or_else(|| h.strip_prefix("bearer "))
            })
            .ok_or(AuthError::Missing)?;
        let data = jsonwebtoken::decode::<Claims>(token.trim(), &self.key, &self.validation)
            .map_err(|e| AuthError::Invalid(e.to_string()))?;
        TenantId::parse(&data.claims.tenant).map_err(|e| AuthError::Invalid(e.to_string()))
    }
}

/// Mints a token for `tenant`, valid for `ttl_secs`, signed with `secret`.
pub fn mint(secret: &Secret, tenant: &TenantId, subject: &str, ttl_secs: u64) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let claims = Claims {
        sub: subject.to_owned(),
        tenant: tenant.to_string(),
        exp: now + ttl_secs,
        nbf: now,
    };
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.expose().as_bytes()),
    )
    .expect("HS256 encoding cannot fail")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_name_their_tenant_and_nothing_else_passes() {
        let secret = Secret::new("s3cret");
        let v = Verifier::new(&secret, 60);
        let acme = TenantId::parse("acme").unwrap();
        let token = mint(&secret, &acme, "dash", 3600);
        assert_eq!(v.tenant(Some(&format!("Bearer {token}"))), Ok(acme.clone()));
        assert_eq!(v.tenant(None), Err(AuthError::Missing));
        assert_eq!(v.tenant(Some(&token)), Err(AuthError::Missing));
        let forged = mint(&Secret::new("other"), &acme, "dash", 3600);
        assert!(v.tenant(Some(&format!("Bearer {forged}"))).is_err());
        // An expired token, past the leeway.
        let old = Claims {
            sub: "x".into(),
            tenant: "acme".into(),
            exp: 1_000,
            nbf: 0,
        };
        let expired = jsonwebtoken::encode(
            &Header::default(),
            &old,
            &EncodingKey::from_secret(b"s3cret"),
        )
        .unwrap();
        assert!(v.tenant(Some(&format!("Bearer {expired}"))).is_err());
        // alg: none.
        let none = format!(
            "{}.{}.",
            b64(r#"{"alg":"none","typ":"JWT"}"#),
            b64(r#"{"sub":"x","tenant":"acme","exp":9999999999,"nbf":0}"#)
        );
        assert!(v.tenant(Some(&format!("Bearer {none}"))).is_err());
    }

    fn b64(s: &str) -> String {
        const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let bytes = s.as_bytes();
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let n = chunk
                .iter()
                .enumerate()
                .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
            for i in 0..=chunk.len() {
                out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
            }
        }
        out
    }
}
