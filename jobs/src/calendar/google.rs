//! Google Workspace: a resource calendar's events, with a token for a service account's
//! signed JWT (`jsonwebtoken`, RS256).
//!
//! Least privilege: the scope asked for is `calendar.events.readonly`, and the fields
//! asked for are the events' ids, status, start, end and update time (`fields=`); the
//! rest of an answer is not parsed.

use std::time::Duration;

use oauth2::http::{header, Request};
use serde::{Deserialize, Serialize};

use super::graph::url_escape;
use super::http::{get, Http};
use super::{read_page, rfc3339, Fetched, Next, Page, Provider, SyncError, Token};

/// The scope a sync needs.
pub const SCOPE: &str = "https://www.googleapis.com/auth/calendar.events.readonly";
const FIELDS: &str = "items(id,status,start,end,updated),nextPageToken,nextSyncToken";

/// A service account: the fields of Google's JSON key file that a sync uses.
#[derive(Clone, Deserialize)]
pub struct ServiceAccount {
    /// The account.
    pub client_email: String,
    /// Its RSA private key, PEM.
    pub private_key: String,
    /// Where tokens come from: `https://oauth2.googleapis.com/token`.
    pub token_uri: String,
}

impl std::fmt::Debug for ServiceAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceAccount")
            .field("client_email", &self.client_email)
            .field("token_uri", &self.token_uri)
            .finish_non_exhaustive()
    }
}

/// Where a tenant's Google Workspace is.
#[derive(Clone, Debug)]
pub struct GoogleConfig {
    /// The service account.
    pub account: ServiceAccount,
    /// The user the account acts as (domain-wide delegation), if any.
    pub subject: Option<String>,
    /// `https://www.googleapis.com/calendar/v3`.
    pub api: String,
}

/// The Google Calendar connector.
pub struct Google {
    config: GoogleConfig,
    http: Http,
    token: Token,
}

impl Google {
    /// A connector for `config`, calling through `http`.
    pub fn new(config: GoogleConfig, http: Http) -> Self {
        Self {
            config,
            http,
            token: Token::default(),
        }
    }
}

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    scope: &'a str,
    aud: &'a str,
    iat: i64,
    exp: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    sub: Option<&'a str>,
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    expires_in: Option<u64>,
}

#[derive(Deserialize)]
struct EventsPage {
    #[serde(default)]
    items: Vec<Event>,
    #[serde(rename = "nextPageToken")]
    next_page: Option<String>,
    #[serde(rename = "nextSyncToken")]
    next_sync: Option<String>,
}

/// An event: times only.
#[derive(Deserialize)]
struct Event {
    id: String,
    status: Option<String>,
    start: Option<When>,
    end: Option<When>,
    updated: Option<String>,
}

#[derive(Deserialize)]
struct When {
    /// Absent on all-day events, which carry `date`.
    #[serde(rename = "dateTime")]
    date_time: Option<String>,
}

fn millis(w: &When) -> Option<i64> {
    let t = chrono::DateTime::parse_from_rfc3339(w.date_time.as_deref()?).ok()?;
    Some(t.timestamp_millis())
}

/// `url` with `name` set to `value` (replacing it if present).
fn with_param(url: &str, name: &str, value: &str) -> String {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let mut parts: Vec<String> = query
        .split('&')
        .filter(|p| !p.is_empty() && !p.starts_with(&format!("{name}=")))
        .map(str::to_owned)
        .collect();
    parts.push(format!("{name}={}", url_escape(value)));
    format!("{base}?{}", parts.join("&"))
}

impl Google {
    fn base(&self, calendar: &str) -> String {
        format!(
            "{}/calendars/{}/events?singleEvents=true&showDeleted=true&maxResults=250&fields={}",
            self.config.api.trim_end_matches('/'),
            url_escape(calendar),
            url_escape(FIELDS)
        )
    }
}

impl Provider for Google {
    fn name(&self) -> &'static str {
        "google"
    }

    fn token(&mut self, refresh: bool) -> Result<String, SyncError> {
        if let Some(token) = self.token.fresh(refresh) {
            return Ok(token);
        }
        let a = &self.config.account;
        let now = rf_schemas::unix_ms() / 1000;
        let claims = Claims {
            iss: &a.client_email,
            scope: SCOPE,
            aud: &a.token_uri,
            iat: now,
            exp: now + 3600,
            sub: self.config.subject.as_deref(),
        };
        let key = jsonwebtoken::EncodingKey::from_rsa_pem(a.private_key.as_bytes())
            .map_err(|e| SyncError::Provider(format!("google private_key: {e}")))?;
        let assertion = jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256),
            &claims,
            &key,
        )
        .map_err(|e| SyncError::Provider(format!("google assertion: {e}")))?;
        let form = format!(
            "grant_type={}&assertion={assertion}",
            url_escape("urn:ietf:params:oauth:grant-type:jwt-bearer")
        );
        let request = Request::post(&a.token_uri)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(form.into_bytes())
            .map_err(|e| SyncError::Provider(format!("google token_uri: {e}")))?;
        let answer = self.http.send(request)?;
        if answer.status() != 200 {
            return Err(SyncError::Provider(format!(
                "google token: HTTP {}",
                answer.status().as_u16()
            )));
        }
        let t: TokenAnswer = serde_json::from_slice(answer.body())
            .map_err(|e| SyncError::Provider(format!("google token: {e}")))?;
        let lifetime = Duration::from_secs(t.expires_in.unwrap_or(3600));
        Ok(self.token.keep(t.access_token, lifetime))
    }

    fn first(&self, calendar: &str, from: i64, to: i64) -> String {
        let url = with_param(&self.base(calendar), "timeMin", &rfc3339(from));
        with_param(&url, "timeMax", &rfc3339(to))
    }

    fn fetch(&self, calendar: &str, cursor: &str, token: &str) -> Result<Fetched, SyncError> {
        let answer = self
            .http
            .send(get(cursor, token).map_err(SyncError::Provider)?)?;
        let page: EventsPage = match read_page(&answer, "google events page")? {
            Ok(page) => page,
            Err(instead) => return Ok(instead),
        };
        let next = match (page.next_page, page.next_sync) {
            (Some(p), _) => Next::Page(with_param(cursor, "pageToken", &p)),
            (None, Some(s)) => Next::Done(with_param(&self.base(calendar), "syncToken", &s)),
            (None, None) => {
                return Err(SyncError::Provider(
                    "google events page without a page or sync token".into(),
                ))
            }
        };
        let mut out = Page::new(next);
        for e in page.items {
            let times = e
                .start
                .as_ref()
                .and_then(millis)
                .zip(e.end.as_ref().and_then(millis));
            let removed = e.status.as_deref() == Some("cancelled");
            out.add(e.id, removed, times, e.updated.as_deref());
        }
        Ok(Fetched::Page(out))
    }
}
