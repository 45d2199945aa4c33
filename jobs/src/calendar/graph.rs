//! Microsoft Graph: a room mailbox's `calendarView/delta`, with an app-only token from
//! the OAuth 2.0 client credentials grant (`oauth2`).
//!
//! Least privilege: grant the app `Calendars.ReadBasic.All` (no bodies, no attendees)
//! and restrict it to the room mailboxes with an application access policy. The sync
//! asks for start, end and the cancellation flag only (`$select`); whatever else an
//! answer carries is not parsed.

use std::time::Duration;

use oauth2::basic::BasicClient;
use oauth2::{AuthType, AuthUrl, ClientId, ClientSecret, Scope, TokenResponse, TokenUrl};
use serde::Deserialize;

use super::http::{get, Http};
use super::{read_page, rfc3339, Fetched, Next, Page, Provider, SyncError, Token};

/// Where a tenant's Microsoft 365 is.
#[derive(Clone, Debug)]
pub struct GraphConfig {
    /// The directory (Entra tenant) id.
    pub directory: String,
    /// The app registration's client id.
    pub client_id: String,
    /// Its client secret.
    pub client_secret: String,
    /// `https://login.microsoftonline.com` (a fake one in tests).
    pub authority: String,
    /// `https://graph.microsoft.com/v1.0`.
    pub api: String,
}

/// The Graph connector.
pub struct Graph {
    config: GraphConfig,
    http: Http,
    token: Token,
}

impl Graph {
    /// A connector for `config`, calling through `http`.
    pub fn new(config: GraphConfig, http: Http) -> Self {
        Self {
            config,
            http,
            token: Token::default(),
        }
    }
}

#[derive(Deserialize)]
struct DeltaPage {
    #[serde(default)]
    value: Vec<Event>,
    #[serde(rename = "@odata.nextLink")]
    next_link: Option<String>,
    #[serde(rename = "@odata.deltaLink")]
    delta_link: Option<String>,
}

/// An event: times only; the rest of the JSON is never read.
#[derive(Deserialize)]
struct Event {
    id: String,
    #[serde(rename = "@removed")]
    removed: Option<serde_json::Value>,
    #[serde(rename = "isCancelled", default)]
    cancelled: bool,
    start: Option<DateTimeTimeZone>,
    end: Option<DateTimeTimeZone>,
    #[serde(rename = "lastModifiedDateTime")]
    modified: Option<String>,
    #[serde(rename = "isAllDay", default)]
    all_day: bool,
}

#[derive(Deserialize)]
struct DateTimeTimeZone {
    #[serde(rename = "dateTime")]
    date_time: String,
    #[serde(rename = "timeZone")]
    time_zone: String,
}

/// Graph's `dateTime` (no offset) in `timeZone` (asked for as UTC; IANA names read too).
fn millis(t: &DateTimeTimeZone) -> Option<i64> {
    let naive = chrono::NaiveDateTime::parse_from_str(&t.date_time, "%Y-%m-%dT%H:%M:%S%.f").ok()?;
    if t.time_zone.eq_ignore_ascii_case("UTC") {
        return Some(naive.and_utc().timestamp_millis());
    }
    let zone: chrono_tz::Tz = t.time_zone.parse().ok()?;
    naive
        .and_local_timezone(zone)
        .earliest()
        .map(|d| d.timestamp_millis())
}

impl Provider for Graph {
    fn name(&self) -> &'static str {
        "graph"
    }

    fn token(&mut self, refresh: bool) -> Result<String, SyncError> {
        if let Some(token) = self.token.fresh(refresh) {
            return Ok(token);
        }
        let c = &self.config;
        let base = format!(
            "{}/{}/oauth2/v2.0",
            c.authority.trim_end_matches('/'),
            c.directory
        );
        let bad = |e: oauth2::url::ParseError| SyncError::Provider(format!("graph authority: {e}"));
        let client = BasicClient::new(ClientId::new(c.client_id.clone()))
            .set_client_secret(ClientSecret::new(c.client_secret.clone()))
            // Microsoft's documented form: the secret in the request body.
            .set_auth_type(AuthType::RequestBody)
            .set_auth_uri(AuthUrl::new(format!("{base}/authorize")).map_err(bad)?)
            .set_token_uri(TokenUrl::new(format!("{base}/token")).map_err(bad)?);
        let answer = client
            .exchange_client_credentials()
            .add_scope(Scope::new("https://graph.microsoft.com/.default".into()))
            .request(&self.http)
            .map_err(|e| SyncError::Provider(format!("graph token: {}", rf_schemas::chain(&e))))?;
        let lifetime = answer.expires_in().unwrap_or(Duration::from_secs(3600));
        Ok(self
            .token
            .keep(answer.access_token().secret().clone(), lifetime))
    }

    fn first(&self, calendar: &str, from: i64, to: i64) -> String {
        format!(
            "{}/users/{}/calendarView/delta?startDateTime={}&endDateTime={}&$select=start,end,isCancelled,isAllDay,lastModifiedDateTime",
            self.config.api.trim_end_matches('/'),
            url_escape(calendar),
            rfc3339(from),
            rfc3339(to)
        )
    }

    fn fetch(&self, _calendar: &str, cursor: &str, token: &str) -> Result<Fetched, SyncError> {
        let mut request = get(cursor, token).map_err(SyncError::Provider)?;
        let headers = request.headers_mut();
        headers.insert(
            "Prefer",
            "outlook.timezone=\"UTC\", odata.maxpagesize=100"
                .parse()
                .expect("a valid header"),
        );
        let answer = self.http.send(request)?;
        let page: DeltaPage = match read_page(&answer, "graph delta page")? {
            Ok(page) => page,
            Err(instead) => return Ok(instead),
        };
        let next = match (page.next_link, page.delta_link) {
            (Some(next), _) => Next::Page(next),
            (None, Some(delta)) => Next::Done(delta),
            (None, None) => {
                return Err(SyncError::Provider(
                    "graph delta page without a next or delta link".into(),
                ))
            }
        };
        let mut out = Page::new(next);
        for e in page.value {
            let times = e
                .start
                .as_ref()
                .and_then(millis)
                .zip(e.end.as_ref().and_then(millis))
                .filter(|_| !e.all_day);
            let removed = e.removed.is_some() || e.cancelled;
            out.add(e.id, removed, times, e.modified.as_deref());
        }
        Ok(Fetched::Page(out))
    }
}

/// Percent-encodes a path segment (mailbox addresses hold `@`, ids may hold `/`).
pub(crate) fn url_escape(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'@' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
