//! Bearer tokens: JWTs whose `tenant` claim names the only tenant they can read, signed
//! with HS256 (a shared key) or RS256 (keys from a JWKS file or URL); the algorithm is
//! pinned by the config, so a token naming another one, or `none`, is refused.

use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use rf_schemas::TenantId;
use rf_sinks::Secret;

/// The scope a token needs to read.
pub const READ_SCOPE: &str = "read";

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
    /// Space-separated scopes; reading needs `read`.
    pub scope: String,
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

/// Verifies tokens.
#[derive(Clone)]
pub struct Verifier {
    /// `(key id, key)`; a shared key has no id.
    keys: Vec<(Option<String>, DecodingKey)>,
    validation: Validation,
}

impl Verifier {
    /// A verifier for HS256 tokens signed with `secret`, allowing `leeway_secs` of clock skew.
    pub fn new(secret: &Secret, leeway_secs: u64) -> Self {
        Self {
            keys: vec![(None, DecodingKey::from_secret(secret.expose().as_bytes()))],
            validation: validation(Algorithm::HS256, leeway_secs),
        }
    }

    /// A verifier for RS256 tokens signed by one of the RSA keys of a JWKS document.
    pub fn rs256(jwks: &str, leeway_secs: u64) -> Result<Self, String> {
        let set: JwkSet =
            serde_json::from_str(jwks).map_err(|e| format!("not a JWKS document: {e}"))?;
        let mut keys = Vec::new();
        for jwk in &set.keys {
            if let jsonwebtoken::jwk::AlgorithmParameters::RSA(_) = jwk.algorithm {
                let key = DecodingKey::from_jwk(jwk).map_err(|e| format!("a JWKS key: {e}"))?;
                keys.push((jwk.common.key_id.clone(), key));
            }
        }
        if keys.is_empty() {
            return Err("the JWKS document has no RSA key".into());
        }
        Ok(Self {
            keys,
            validation: validation(Algorithm::RS256, leeway_secs),
        })
    }

    /// The tenant a `Bearer` authorization header grants.
    pub fn tenant(&self, authorization: Option<&str>) -> Result<TenantId, AuthError> {
        self.verify(authorization).map(|(tenant, _)| tenant)
    }

    /// The tenant a `Bearer` authorization header grants, and the token's subject.
    pub fn verify(&self, authorization: Option<&str>) -> Result<(TenantId, String), AuthError> {
        let token = authorization
            .and_then(|h| {
                h.strip_prefix("Bearer ")
                    .or_else(|| h.strip_prefix("bearer "))
            })
            .ok_or(AuthError::Missing)?
            .trim();
        let invalid = |e: jsonwebtoken::errors::Error| AuthError::Invalid(e.to_string());
        let header = jsonwebtoken::decode_header(token).map_err(invalid)?;
        // The key the token names, else the only one.
        let key = match &header.kid {
            Some(kid) => self
                .keys
                .iter()
                .find(|(id, _)| id.as_deref() == Some(kid.as_str())),
            None if self.keys.len() == 1 => self.keys.first(),
            None => None,
        }
        .map(|(_, key)| key)
        .ok_or_else(|| AuthError::Invalid("the token's key id is not known".into()))?;
        let data = jsonwebtoken::decode::<Claims>(token, key, &self.validation).map_err(invalid)?;
        if !data
            .claims
            .scope
            .split_whitespace()
            .any(|s| s == READ_SCOPE)
        {
            return Err(AuthError::Invalid(format!(
                "the token's scope lacks {READ_SCOPE:?}"
            )));
        }
        let tenant =
            TenantId::parse(&data.claims.tenant).map_err(|e| AuthError::Invalid(e.to_string()))?;
        Ok((tenant, data.claims.sub))
    }
}

fn validation(algorithm: Algorithm, leeway_secs: u64) -> Validation {
    let mut validation = Validation::new(algorithm);
    validation.leeway = leeway_secs;
    validation.validate_nbf = true;
    validation.set_required_spec_claims(&["exp", "nbf", "sub"]);
    validation
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
        scope: READ_SCOPE.into(),
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
            scope: "read".into(),
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
        // A token without the read scope.
        let mut claims = Claims {
            sub: "x".into(),
            tenant: "acme".into(),
            exp: 9_999_999_999,
            nbf: 0,
            scope: "write".into(),
        };
        let sign = |c: &Claims, h: &Header, k: &EncodingKey| {
            format!("Bearer {}", jsonwebtoken::encode(h, c, k).unwrap())
        };
        let hs = EncodingKey::from_secret(b"s3cret");
        assert!(v
            .tenant(Some(&sign(&claims, &Header::default(), &hs)))
            .is_err());
        claims.scope = "profile read".into();
        assert_eq!(
            v.tenant(Some(&sign(&claims, &Header::default(), &hs))),
            Ok(acme)
        );
    }

    #[test]
    fn rs256_tokens_verify_against_the_jwks_and_nothing_else_does() {
        let jwks = include_str!("../../testdata/jwt-test-rs256.jwks.json");
        let pem = include_bytes!("../../testdata/jwt-test-rs256.pem");
        let v = Verifier::rs256(jwks, 60).unwrap();
        let claims = Claims {
            sub: "app".into(),
            tenant: "acme".into(),
            exp: 9_999_999_999,
            nbf: 0,
            scope: "read".into(),
        };
        let rsa = EncodingKey::from_rsa_pem(pem).unwrap();
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some("roomflow-test-1".into());
        let token = jsonwebtoken::encode(&header, &claims, &rsa).unwrap();
        let acme = TenantId::parse("acme").unwrap();
        assert_eq!(v.tenant(Some(&format!("Bearer {token}"))), Ok(acme));
        // Another kid, an HS256 token (the algorithm is pinned), a token signed with the
        // public key's bytes as an HMAC secret: all refused.
        header.kid = Some("other".into());
        let unknown = jsonwebtoken::encode(&header, &claims, &rsa).unwrap();
        assert!(v.tenant(Some(&format!("Bearer {unknown}"))).is_err());
        let mut hs = Header::new(Algorithm::HS256);
        hs.kid = Some("roomflow-test-1".into());
        let confused =
            jsonwebtoken::encode(&hs, &claims, &EncodingKey::from_secret(jwks.as_bytes())).unwrap();
        assert!(v.tenant(Some(&format!("Bearer {confused}"))).is_err());
        assert!(Verifier::rs256("{\"keys\": []}", 60).is_err());
        assert!(Verifier::rs256("not json", 60).is_err());
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
