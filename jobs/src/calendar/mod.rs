//! Calendar connectors: the bookings of room resources' calendars in Microsoft 365
//! (Microsoft Graph) and Google Workspace (Calendar API), as [`Booking`] versions for
//! `bookings.<tenant>`.
//!
//! Only times leave a connector. The providers' events are read into types that have no
//! field for a subject, an organizer, attendees or a body, so those are dropped as the
//! response is parsed; the event id is hashed with the calendar into the booking id.
//!
//! A sync walks each room's calendar: the first one lists the events from
//! `backfill_days` back to `ahead_days` ahead, page by page, and keeps the provider's
//! cursor (Graph's delta link, Google's sync token); the next ones ask only for what
//! changed since. When the provider expired the cursor (HTTP 410), the calendar is
//! listed anew, and bookings known before but no longer listed are cancelled. A 401
//! gets a fresh token and one more try; 429 and 503 wait as `Retry-After` says.

pub mod google;
pub mod graph;
pub mod http;
pub mod publish;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use rf_schemas::Booking;

/// How long an event may be: longer ones (all-week holds) are not meetings.
const MAX_EVENT_MS: i64 = rf_schemas::booking::MAX_BOOKING_MS;
/// Most full listings of one calendar in one sync (a provider that expires every cursor
/// it hands out must not keep the connector busy forever).
const MAX_RESYNCS: u32 = 3;

/// One room and the calendar of its resource.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RoomCalendar {
    /// The room in roomflow's metadata.
    pub room_id: String,
    /// Its office.
    pub office_id: String,
    /// The resource calendar: Graph's room mailbox (user id or address), Google's
    /// resource calendar id.
    pub calendar: String,
}

/// What one event became.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// The event is (now) at these times.
    Event {
        /// The provider's event id.
        id: String,
        /// ms.
        start: i64,
        /// ms.
        end: i64,
        /// When it was last changed, ms.
        modified: i64,
    },
    /// The event was deleted or cancelled.
    Removed {
        /// The provider's event id.
        id: String,
    },
}

/// One page of a calendar's events.
#[derive(Debug)]
pub struct Page {
    /// The events, only times kept.
    pub changes: Vec<Change>,
    /// Events skipped (all-day, over a day long, times that do not parse).
    pub skipped: u32,
    /// Where the listing goes on.
    pub next: Next,
}

/// Where a listing goes on after a page.
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    /// Another page, at this cursor.
    Page(String),
    /// The listing is complete; this cursor asks for what changes from now on.
    Done(String),
}

/// What asking for a page gave.
#[derive(Debug)]
pub enum Fetched {
    /// A page.
    Page(Page),
    /// The token was refused (401): a fresh one may help.
    Unauthorized,
    /// The cursor expired (410): the calendar must be listed anew.
    Expired,
}

/// Why a sync failed.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The provider could not be reached or kept throttling.
    #[error(transparent)]
    Http(#[from] http::HttpError),
    /// The provider refused the credentials, or answered something unexpected.
    #[error("{0}")]
    Provider(String),
}

/// A calendar provider, as the sync sees it.
pub trait Provider {
    /// Its name, for bookings' `source` and the audit: `graph` or `google`.
    fn name(&self) -> &'static str;
    /// A bearer token, a fresh one if `refresh`, else the cached one while it has over a
    /// minute left.
    fn token(&mut self, refresh: bool) -> Result<String, SyncError>;
    /// The cursor of a full listing of `calendar`'s events over `[from, to)` (ms).
    fn first(&self, calendar: &str, from: i64, to: i64) -> String;
    /// One page at `cursor`.
    fn fetch(&self, calendar: &str, cursor: &str, token: &str) -> Result<Fetched, SyncError>;
}

/// What the connector remembers between syncs, per calendar.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
pub struct SyncState {
    /// By calendar.
    pub calendars: BTreeMap<String, CalendarState>,
}

/// One calendar's cursor and the bookings it knows.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
pub struct CalendarState {
    /// Where the next incremental sync starts.
    pub cursor: Option<String>,
    /// Bookings published, by booking id: (version, start, end, cancelled).
    pub known: BTreeMap<String, (i64, i64, i64, bool)>,
}

/// What one sync did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// Calendars walked.
    pub calendars: usize,
    /// Pages read.
    pub pages: u32,
    /// Booking versions published.
    pub published: u32,
    /// Events skipped (all-day, too long, unreadable times).
    pub skipped: u32,
    /// Full listings after an expired cursor.
    pub resyncs: u32,
    /// Tokens refreshed after a 401.
    pub refreshed: u32,
}

/// The booking id of `event` in `calendar`: neither reaches the topic.
pub fn booking_id(calendar: &str, event: &str) -> String {
    let digest = Sha256::new()
        .chain_update(calendar.as_bytes())
        .chain_update([0])
        .chain_update(event.as_bytes())
        .finalize();
    digest[..16].iter().map(|b| format!("{b:02x}")).collect()
}

/// Syncs every room of `rooms` once, publishing each new booking version; `state` moves
/// on as each calendar completes, so a failure loses nothing done before it.
pub fn sync(
    provider: &mut dyn Provider,
    rooms: &[RoomCalendar],
    state: &mut SyncState,
    window: (i64, i64),
    publish: &mut dyn FnMut(Booking) -> Result<(), SyncError>,
) -> Result<SyncReport, SyncError> {
    let mut report = SyncReport::default();
    for room in rooms {
        sync_one(provider, room, state, window, publish, &mut report)?;
        report.calendars += 1;
    }
    Ok(report)
}

fn sync_one(
    provider: &mut dyn Provider,
    room: &RoomCalendar,
    state: &mut SyncState,
    (from, to): (i64, i64),
    publish: &mut dyn FnMut(Booking) -> Result<(), SyncError>,
    report: &mut SyncReport,
) -> Result<(), SyncError> {
    let calendar = &room.calendar;
    let saved = state.calendars.entry(calendar.clone()).or_default();
    let mut full = saved.cursor.is_none();
    let mut cursor = saved
        .cursor
        .clone()
        .unwrap_or_else(|| provider.first(calendar, from, to));
    let mut known = saved.known.clone();
    let mut seen = std::collections::BTreeSet::new();
    let mut resyncs = 0;
    let mut refreshed = false;
    let mut token = provider.token(false)?;
    loop {
        let page = match provider.fetch(calendar, &cursor, &token)? {
            Fetched::Page(page) => page,
            Fetched::Unauthorized if !refreshed => {
                refreshed = true;
                report.refreshed += 1;
                token = provider.token(true)?;
                continue;
            }
            Fetched::Unauthorized => {
                return Err(SyncError::Provider(format!(
                    "{}: the provider refused a fresh token for calendar {calendar}",
                    provider.name()
                )))
            }
            Fetched::Expired if resyncs < MAX_RESYNCS => {
                resyncs += 1;
                report.resyncs += 1;
                tracing::info!(calendar = %calendar, connector = provider.name(), "cursor expired; listing the calendar anew");
                full = true;
                seen.clear();
                cursor = provider.first(calendar, from, to);
                continue;
            }
            Fetched::Expired => {
                return Err(SyncError::Provider(format!(
                    "{}: calendar {calendar} expired its cursor {MAX_RESYNCS} times in one sync",
                    provider.name()
                )))
            }
        };
        refreshed = false;
        report.pages += 1;
        report.skipped += page.skipped;
        for change in page.changes {
            let (booking_id, times, modified) = match change {
                Change::Event {
                    id,
                    start,
                    end,
                    modified,
                } => {
                    let booking_id = booking_id(calendar, &id);
                    seen.insert(booking_id.clone());
                    (booking_id, (start, end, false), modified)
                }
                Change::Removed { id } => {
                    let booking_id = booking_id(calendar, &id);
                    match known.get(&booking_id) {
                        Some(&(_, start, end, false)) => {
                            (booking_id, (start, end, true), rf_schemas::unix_ms())
                        }
                        // Never published, or cancelled already.
                        _ => continue,
                    }
                }
            };
            if let Some(b) = version(room, provider.name(), &known, booking_id, times, modified) {
                publish_one(b, &mut known, publish, report)?;
            }
        }
        match page.next {
            Next::Page(next) => cursor = next,
            Next::Done(next) => {
                if full {
                    // Bookings of the listed period that the listing no longer has were
                    // deleted while the cursor was expired.
                    let gone: Vec<(String, i64, i64)> = known
                        .iter()
                        .filter(|(id, v)| !v.3 && v.1 >= from && v.1 < to && !seen.contains(*id))
                        .map(|(id, v)| (id.clone(), v.1, v.2))
                        .collect();
                    for (id, start, end) in gone {
                        let now = rf_schemas::unix_ms();
                        let times = (start, end, true);
                        if let Some(b) = version(room, provider.name(), &known, id, times, now) {
                            publish_one(b, &mut known, publish, report)?;
                        }
                    }
                }
                // Bookings that ended before the backfill window are forgotten.
                known.retain(|_, v| v.2 >= from);
                let saved = state.calendars.entry(calendar.clone()).or_default();
                saved.cursor = Some(next);
                saved.known = known;
                return Ok(());
            }
        }
    }
}

fn publish_one(
    b: Booking,
    known: &mut BTreeMap<String, (i64, i64, i64, bool)>,
    publish: &mut dyn FnMut(Booking) -> Result<(), SyncError>,
    report: &mut SyncReport,
) -> Result<(), SyncError> {
    known.insert(
        b.booking_id.clone(),
        (b.version, b.start_ts, b.end_ts, b.cancelled),
    );
    publish(b)?;
    report.published += 1;
    Ok(())
}

/// The next version of a booking at `(start, end, cancelled)`, or `None` if that is what
/// was published last. Versions follow the provider's modification time and always grow.
fn version(
    room: &RoomCalendar,
    source: &'static str,
    known: &BTreeMap<String, (i64, i64, i64, bool)>,
    booking_id: String,
    (start, end, cancelled): (i64, i64, bool),
    modified: i64,
) -> Option<Booking> {
    let version = match known.get(&booking_id) {
        Some(&(_, s, e, c)) if (s, e, c) == (start, end, cancelled) => return None,
        Some(&(v, ..)) => modified.max(v + 1),
        None => modified,
    };
    let booking = Booking {
        booking_id,
        version,
        office_id: room.office_id.clone(),
        room_id: room.room_id.clone(),
        start_ts: start,
        end_ts: end,
        cancelled,
        source: source.to_owned(),
    };
    match booking.validate() {
        Ok(()) => Some(booking),
        Err(why) => {
            tracing::warn!(room = %room.room_id, %why, "event skipped");
            None
        }
    }
}

impl Page {
    /// An empty page going on at `next`.
    fn new(next: Next) -> Self {
        Self {
            changes: Vec::new(),
            skipped: 0,
            next,
        }
    }

    /// Adds an event: removed, or at its times if they parse and are a meeting (not
    /// all-day, at most a day), else skipped. `modified` is RFC 3339 (now if absent).
    fn add(
        &mut self,
        id: String,
        removed: bool,
        times: Option<(i64, i64)>,
        modified: Option<&str>,
    ) {
        if removed {
            return self.changes.push(Change::Removed { id });
        }
        let modified = modified
            .and_then(|m| chrono::DateTime::parse_from_rfc3339(m).ok())
            .map_or_else(rf_schemas::unix_ms, |d| d.timestamp_millis());
        match times {
            Some((start, end)) if end > start && end - start <= MAX_EVENT_MS => {
                self.changes.push(Change::Event {
                    id,
                    start,
                    end,
                    modified,
                })
            }
            _ => self.skipped += 1,
        }
    }
}

/// A page request's answer as JSON, or, for 401 and 410, what the sync does instead.
pub(crate) fn read_page<T: serde::de::DeserializeOwned>(
    answer: &oauth2::http::Response<Vec<u8>>,
    what: &str,
) -> Result<Result<T, Fetched>, SyncError> {
    match answer.status().as_u16() {
        200 => serde_json::from_slice(answer.body())
            .map(Ok)
            .map_err(|e| SyncError::Provider(format!("{what}: {e}"))),
        401 => Ok(Err(Fetched::Unauthorized)),
        410 => Ok(Err(Fetched::Expired)),
        status => Err(SyncError::Provider(format!("{what}: HTTP {status}"))),
    }
}

/// A provider's bearer token and when it expires.
#[derive(Default)]
pub(crate) struct Token(Option<(String, std::time::Instant)>);

impl Token {
    /// The token, unless `refresh` or it has under a minute left.
    pub(crate) fn fresh(&self, refresh: bool) -> Option<String> {
        let (token, until) = self.0.as_ref()?;
        let left = until.saturating_duration_since(std::time::Instant::now());
        (!refresh && left > std::time::Duration::from_secs(60)).then(|| token.clone())
    }

    /// Keeps `token` for `lifetime`; returns it.
    pub(crate) fn keep(&mut self, token: String, lifetime: std::time::Duration) -> String {
        self.0 = Some((token.clone(), std::time::Instant::now() + lifetime));
        token
    }
}

/// `ms` as the providers' UTC time (`2026-12-07T09:00:00Z`).
fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn booking_ids_hide_the_event_and_depend_on_the_calendar() {
        let a = booking_id("room-a@x", "AAMkAD=");
        assert_eq!(a.len(), 32);
        assert!(!a.contains("AAMk"));
        assert_ne!(a, booking_id("room-b@x", "AAMkAD="));
        assert_eq!(a, booking_id("room-a@x", "AAMkAD="));
    }
}
