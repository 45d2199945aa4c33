//! Bearer tokens: JWTs whose `tenant` claim names the only tenant they can read, signed
//! with HS256 (a shared key) or RS256 (keys from a JWKS file or URL); the algorithm is
//! pinned by the config, so a token naming another one, or `none`, is refused.

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use rf_schemas::tenant::Role;
use rf_schemas::TenantId;
use rf_sinks::Secret;

/// The scope a token needs to read.
pub const READ_SCOPE: &str = "read";

/// The claims roomflow reads.
#[derive(Clone, Debug, Serialize, Deserialize)]
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
    /// Issued at, seconds since the epoch: required, it bounds the token's age and lets
    /// a tenant's tokens be revoked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
    /// Issuer; checked when `service.jwt_issuer` is set (always for RS256).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// Audience; checked when `service.jwt_audience` is set (always for RS256).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
    /// What the token may do: viewer, analyst or admin; tokens without it (made before
    /// roles) are analysts'.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
}

/// What a verified token grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// The tenant it reads.
    pub tenant: TenantId,
    /// Who it was issued to.
    pub subject: String,
    /// When it was issued, seconds since the epoch.
    pub issued_at: u64,
    /// What it may do.
    pub role: Role,
}

/// What a token must satisfy beyond its signature.
#[derive(Clone, Debug, Default)]
pub struct TokenPolicy {
    /// Clock skew allowed on `exp`, `nbf` and `iat`, seconds.
    pub leeway_secs: u64,
    /// The oldest a token may be (now − `iat`), and the longest it may be valid
    /// (`exp` − `iat`), seconds.
    pub max_age_secs: u64,
    /// The `iss` every token must carry, if set.
    pub issuer: Option<String>,
    /// The `aud` every token must carry, if set.
    pub audience: Option<String>,
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
    policy: TokenPolicy,
}

impl Verifier {
    /// A verifier for HS256 tokens signed with `secret`, under `policy`.
    pub fn new(secret: &Secret, policy: TokenPolicy) -> Self {
        Self {
            keys: vec![(None, DecodingKey::from_secret(secret.expose().as_bytes()))],
            validation: validation(Algorithm::HS256, &policy),
            policy,
        }
    }

    /// A verifier for RS256 tokens signed by one of the RSA keys of a JWKS document.
    pub fn rs256(jwks: &str, policy: TokenPolicy) -> Result<Self, String> {
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
            validation: validation(Algorithm::RS256, &policy),
            policy,
        })
    }

    /// The tenant a `Bearer` authorization header grants.
    pub fn tenant(&self, authorization: Option<&str>) -> Result<TenantId, AuthError> {
        self.verify(authorization).map(|grant| grant.tenant)
    }

    /// What a `Bearer` authorization header grants.
    pub fn verify(&self, authorization: Option<&str>) -> Result<Grant, AuthError> {
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
        let issued_at = self.issued_at(&data.claims)?;
        let tenant =
            TenantId::parse(&data.claims.tenant).map_err(|e| AuthError::Invalid(e.to_string()))?;
        let role = match &data.claims.role {
            None => Role::Analyst,
            Some(role) => role.parse().map_err(AuthError::Invalid)?,
        };
        Ok(Grant {
            tenant,
            subject: data.claims.sub,
            issued_at,
            role,
        })
    }

    /// The token's `iat`, once its age and lifetime are within the policy.
    fn issued_at(&self, claims: &Claims) -> Result<u64, AuthError> {
        let p = &self.policy;
        let iat = claims
            .iat
            .ok_or_else(|| AuthError::Invalid("the token has no iat (issued at)".into()))?;
        let now = now_secs();
        if iat > now + p.leeway_secs {
            return Err(AuthError::Invalid(
                "the token is issued in the future".into(),
            ));
        }
        if now.saturating_sub(iat) > p.max_age_secs + p.leeway_secs {
            return Err(AuthError::Invalid(format!(
                "the token is older than {} s",
                p.max_age_secs
            )));
        }
        if claims.exp.saturating_sub(iat) > p.max_age_secs {
            return Err(AuthError::Invalid(format!(
                "the token is valid for longer than {} s",
                p.max_age_secs
            )));
        }
        Ok(iat)
    }
}

fn validation(algorithm: Algorithm, policy: &TokenPolicy) -> Validation {
    let mut validation = Validation::new(algorithm);
    validation.leeway = policy.leeway_secs;
    validation.validate_nbf = true;
    let mut required = vec!["exp", "nbf", "sub"];
    if let Some(issuer) = &policy.issuer {
        validation.set_issuer(&[issuer]);
        required.push("iss");
    }
    match &policy.audience {
        Some(audience) => {
            validation.set_audience(&[audience]);
            required.push("aud");
        }
        None => validation.validate_aud = false,
    }
    validation.set_required_spec_claims(&required);
    validation
}

fn now_secs() -> u64 {
    rf_schemas::unix_ms() as u64 / 1000
}

/// Mints a token for `tenant`, valid for `ttl_secs`, signed with `secret`.
pub fn mint(secret: &Secret, tenant: &TenantId, subject: &str, ttl_secs: u64) -> String {
    mint_with(secret, &TokenPolicy::default(), tenant, subject, ttl_secs)
}

/// [`mint`], naming `policy`'s issuer and audience.
pub fn mint_with(
    secret: &Secret,
    policy: &TokenPolicy,
    tenant: &TenantId,
    subject: &str,
    ttl_secs: u64,
) -> String {
    mint_as(secret, policy, tenant, subject, ttl_secs, None)
}

/// [`mint_with`], for `role` (none: the token reads as an analyst's).
pub fn mint_as(
    secret: &Secret,
    policy: &TokenPolicy,
    tenant: &TenantId,
    subject: &str,
    ttl_secs: u64,
    role: Option<Role>,
) -> String {
    let now = now_secs();
    let claims = Claims {
        sub: subject.to_owned(),
        tenant: tenant.to_string(),
        exp: now + ttl_secs,
        nbf: now,
        scope: READ_SCOPE.into(),
        iat: Some(now),
        iss: policy.issuer.clone(),
        aud: policy.audience.clone(),
        role: role.map(|r| r.as_str().to_owned()),
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

    fn policy() -> TokenPolicy {
        TokenPolicy {
            leeway_secs: 60,
            max_age_secs: 86_400,
            issuer: None,
            audience: None,
        }
    }

    #[test]
    fn tokens_name_their_tenant_and_nothing_else_passes() {
        let secret = Secret::new("s3cret");
        let v = Verifier::new(&secret, policy());
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
            iat: Some(now_secs()),
            iss: None,
            aud: None,
            role: None,
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
            exp: now_secs() + 3600,
            nbf: 0,
            scope: "write".into(),
            iat: Some(now_secs()),
            iss: None,
            aud: None,
            role: None,
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
        let v = Verifier::rs256(jwks, idp()).unwrap();
        let claims = Claims {
            sub: "app".into(),
            tenant: "acme".into(),
            exp: now_secs() + 3600,
            nbf: 0,
            scope: "read".into(),
            iat: Some(now_secs()),
            iss: Some("https://idp.example".into()),
            aud: Some("roomflow".into()),
            role: None,
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
        assert!(Verifier::rs256("{\"keys\": []}", idp()).is_err());
        assert!(Verifier::rs256("not json", idp()).is_err());
    }

    fn idp() -> TokenPolicy {
        TokenPolicy {
            issuer: Some("https://idp.example".into()),
            audience: Some("roomflow".into()),
            ..policy()
        }
    }

    #[test]
    fn tokens_without_iat_too_old_too_long_or_from_another_issuer_are_refused() {
        let secret = Secret::new("s3cret");
        let key = EncodingKey::from_secret(b"s3cret");
        let now = now_secs();
        let token = |c: &Claims| {
            format!(
                "Bearer {}",
                jsonwebtoken::encode(&Header::default(), c, &key).unwrap()
            )
        };
        let fine = Claims {
            sub: "x".into(),
            tenant: "acme".into(),
            exp: now + 3600,
            nbf: now,
            scope: "read".into(),
            iat: Some(now),
            iss: None,
            aud: None,
            role: None,
        };
        let v = Verifier::new(&secret, policy());
        assert_eq!(v.verify(Some(&token(&fine))).unwrap().issued_at, now);
        let refused = |c: Claims, why: &str| {
            let e = v.verify(Some(&token(&c))).unwrap_err().to_string();
            assert!(e.contains(why), "{e}");
        };
        refused(
            Claims {
                iat: None,
                ..fine.clone()
            },
            "no iat",
        );
        refused(
            Claims {
                iat: Some(now - 2 * 86_400),
                ..fine.clone()
            },
            "older than",
        );
        refused(
            Claims {
                exp: now + 36_500 * 86_400,
                ..fine.clone()
            },
            "valid for longer",
        );
        refused(
            Claims {
                iat: Some(now + 3600),
                ..fine.clone()
            },
            "in the future",
        );
        // What mint makes passes; a 100-year one does not.
        assert!(v
            .verify(Some(&format!(
                "Bearer {}",
                mint(&secret, &TenantId::parse("acme").unwrap(), "x", 3600)
            )))
            .is_ok());
        let century = mint(
            &secret,
            &TenantId::parse("acme").unwrap(),
            "x",
            36_500 * 86_400,
        );
        assert!(v.verify(Some(&format!("Bearer {century}"))).is_err());
        // An issuer and an audience, once configured, are required and checked.
        let v = Verifier::new(&secret, idp());
        refused_by(&v, &token(&fine), "iss");
        let other = Claims {
            iss: Some("https://evil.example".into()),
            aud: Some("roomflow".into()),
            ..fine.clone()
        };
        refused_by(&v, &token(&other), "Issuer");
        let wrong_aud = Claims {
            iss: Some("https://idp.example".into()),
            aud: Some("someone-else".into()),
            ..fine.clone()
        };
        refused_by(&v, &token(&wrong_aud), "Audience");
        let right = Claims {
            iss: Some("https://idp.example".into()),
            aud: Some("roomflow".into()),
            ..fine.clone()
        };
        assert!(v.verify(Some(&token(&right))).is_ok());
    }

    fn refused_by(v: &Verifier, token: &str, why: &str) {
        let e = v.verify(Some(token)).unwrap_err().to_string();
        assert!(e.to_lowercase().contains(&why.to_lowercase()), "{e}");
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
