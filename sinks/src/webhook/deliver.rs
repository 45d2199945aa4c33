//! Sending one alert to one target, and when to try again: a 5 s timeout, retries with
//! exponential backoff and full jitter for up to 24 hours, `Retry-After` honoured on 429
//! and 503.

use std::time::Duration;

use rf_schemas::tenant::AlertKind;

use crate::config::Secret;
use crate::webhook::guard::{Guard, Network, Refused};
use crate::webhook::message::{signature, Alert};

/// One alert target of a tenant.
#[derive(Clone, Debug)]
pub struct Target {
    /// What it takes.
    pub kind: AlertKind,
    /// Its URL (a secret: Slack's and Teams' URLs are the credential).
    pub url: Secret,
    /// The key generic webhooks are signed with.
    pub secret: Secret,
}

/// What one attempt came to.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// The target acknowledged it (2xx).
    Delivered,
    /// It may work later: a timeout, a connection failure, 408, 429 or 5xx; `after` is the
    /// target's own `Retry-After`.
    Retry {
        /// The wait the target asked for.
        after: Option<Duration>,
        /// What went wrong.
        reason: String,
    },
    /// It never will: another 4xx (a wrong URL, a revoked webhook).
    Rejected {
        /// What went wrong.
        reason: String,
    },
}

/// An HTTP client for alerts.
pub struct Delivery {
    agent: ureq::Agent,
}

/// The header of a generic webhook's signature.
pub const SIGNATURE_HEADER: &str = "x-roomflow-signature";
/// The header of the time (Unix seconds) the signature covers.
pub const TIMESTAMP_HEADER: &str = "x-roomflow-timestamp";
/// The header carrying the alert's idempotency key.
pub const IDEMPOTENCY_HEADER: &str = "idempotency-key";

impl Delivery {
    /// A client giving up on an attempt after `timeout` (5 s in production), sending
    /// only to public addresses and to those in `allowed`. It follows no redirect (a 3xx
    /// is the target's answer) and uses no proxy from the environment.
    pub fn new(timeout: Duration, allowed: Vec<Network>) -> Self {
        let config = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .max_redirects(0)
            .proxy(None)
            .build();
        let agent = ureq::Agent::with_parts(
            config,
            ureq::unversioned::transport::DefaultConnector::default(),
            Guard::new(allowed),
        );
        Self { agent }
    }

    /// One attempt to send `alert` to `target`; `now` (Unix seconds) stamps signatures.
    pub fn send(&self, target: &Target, alert: &Alert, now: i64) -> Outcome {
        let body = match target.kind {
            AlertKind::Slack => alert.slack(),
            AlertKind::Teams => alert.teams(),
            AlertKind::Webhook => alert.webhook(),
        }
        .to_string();
        let mut request = self
            .agent
            .post(target.url.expose())
            .header("content-type", "application/json")
            .header(IDEMPOTENCY_HEADER, &alert.key);
        // A webhook added before secrets were made has none: it is sent unsigned.
        if target.kind == AlertKind::Webhook && !target.secret.expose().is_empty() {
            let signed = signature(target.secret.expose(), now, body.as_bytes());
            request = request
                .header(TIMESTAMP_HEADER, now.to_string())
                .header(SIGNATURE_HEADER, signed);
        }
        match request.send(body.as_bytes()) {
            Ok(response) => {
                let status = response.status().as_u16();
                let after = response
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(Duration::from_secs);
                match status {
                    200..=299 => Outcome::Delivered,
                    408 | 429 | 500..=599 => Outcome::Retry {
                        after,
                        reason: format!("HTTP {status}"),
                    },
                    _ => Outcome::Rejected {
                        reason: format!("HTTP {status}"),
                    },
                }
            }
            // An internal address is refused the same way whatever listens there: the
            // answer says nothing of the network behind it.
            Err(ureq::Error::Other(e)) if e.downcast_ref::<Refused>().is_some() => {
                Outcome::Rejected {
                    reason: e.to_string(),
                }
            }
            // The URL never appears in the reason: for Slack and Teams it is the secret.
            Err(error) => Outcome::Retry {
                after: None,
                reason: match error {
                    ureq::Error::Timeout(_) => "no answer within the timeout".into(),
                    ureq::Error::ConnectionFailed | ureq::Error::Io(_) => {
                        "the connection failed".into()
                    }
                    other => format!("the request failed ({})", kind_of(&other)),
                },
            },
        }
    }
}

fn kind_of(error: &ureq::Error) -> &'static str {
    match error {
        ureq::Error::HostNotFound => "host not found",
        ureq::Error::Tls(_) => "TLS",
        _ => "transport",
    }
}

/// When to try a failing alert again.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Retries {
    /// The first attempt, ms.
    pub first: i64,
    /// Attempts so far.
    pub attempts: u32,
    /// How long after the first attempt the alert is given up, ms.
    pub give_up_ms: i64,
}

/// The first wait; each attempt doubles it, up to [`MAX_WAIT`].
pub const FIRST_WAIT: Duration = Duration::from_secs(1);
/// The longest wait between two attempts.
pub const MAX_WAIT: Duration = Duration::from_secs(3600);
/// How long an alert is retried, and a target may fail, before they are given up.
pub const GIVE_UP_AFTER: Duration = Duration::from_secs(24 * 3600);

impl Retries {
    /// An alert first tried at `now` (ms), given up `give_up` later.
    pub fn new(now: i64, give_up: Duration) -> Self {
        Self {
            first: now,
            attempts: 0,
            give_up_ms: give_up.as_millis() as i64,
        }
    }

    /// After a failed attempt at `now` (ms): when to try next (ms), at least the target's
    /// `Retry-After`, else a random moment up to the doubled wait (full jitter, so that
    /// many alerts failing together do not retry together); `None` once the give-up
    /// period (24 hours) passed.
    /// `jitter` is uniform in [0, 1).
    pub fn next(&mut self, now: i64, after: Option<Duration>, jitter: f64) -> Option<i64> {
        self.attempts += 1;
        let ceiling = FIRST_WAIT
            .saturating_mul(1 << self.attempts.min(20))
            .min(MAX_WAIT);
        let wait = ceiling.mul_f64(jitter.clamp(0.0, 1.0)).max(FIRST_WAIT / 2);
        let wait = after.map_or(wait, |a| a.max(wait).min(GIVE_UP_AFTER));
        let at = now + wait.as_millis() as i64;
        (at - self.first <= self.give_up_ms).then_some(at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_with_jitter_honour_retry_after_and_end_after_a_day() {
        let mut r = Retries::new(0, GIVE_UP_AFTER);
        let waits: Vec<i64> = (0..5).map(|_| r.next(0, None, 0.999).unwrap()).collect();
        assert_eq!(waits, [1998, 3996, 7992, 15984, 31968]);
        let mut r = Retries::new(0, GIVE_UP_AFTER);
        assert_eq!(
            r.next(0, None, 0.0),
            Some(500),
            "never sooner than half a second"
        );
        assert_eq!(
            r.next(0, Some(Duration::from_secs(120)), 0.5),
            Some(120_000),
            "Retry-After wins over a shorter backoff"
        );
        let mut r = Retries::new(0, GIVE_UP_AFTER);
        let mut now = 0;
        let mut attempts = 0;
        while let Some(at) = r.next(now, None, 0.999) {
            now = at;
            attempts += 1;
        }
        assert!(
            now <= 24 * 3_600_000 && attempts > 20,
            "{attempts} attempts over a day"
        );
    }
}
