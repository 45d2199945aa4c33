//! The audit trail: every data access as a JSON log line (the `request answered` line,
//! with tenant, subject, route, parameters, status, duration and correlation id) and as
//! a row of the tenant's `audit` table, in its region's ClickHouse, written in batches
//! off the request path.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::time::Duration;

use clickhouse::Row;
use prometheus::IntCounter;
use serde::Serialize;
use tokio::sync::mpsc;

use rf_schemas::TenantId;

use crate::limits::Quota;

/// Who a request was answered for, once its credential was checked.
#[derive(Clone, Debug)]
pub struct Who {
    /// The tenant.
    pub tenant: TenantId,
    /// The token's `sub`, or `apikey:<key id>`.
    pub subject: String,
    /// The served region's index.
    pub region: usize,
}

/// What a request's handlers tell the middleware around them.
#[derive(Default)]
pub struct Scope {
    /// The rate-limit quota, once counted.
    pub quota: Cell<Option<Quota>>,
    /// The caller, once authenticated.
    pub who: RefCell<Option<Who>>,
    /// Whether the response came from the cache, if the route caches.
    pub cache_hit: Cell<Option<bool>>,
    /// The signed-in user of the request's session, when it carries no other credential.
    pub session: RefCell<Option<crate::web::SessionUser>>,
    /// An admin write's change, for the audit row's `query` (secrets never in it).
    pub change: RefCell<Option<String>>,
    /// The request's correlation id.
    pub request_id: String,
}

tokio::task_local! {
    /// The request being answered.
    pub static SCOPE: Scope;
}

/// Keeps `quota` for the response's headers (outside a request: nowhere).
pub fn remember_quota(quota: Quota) {
    let _ = SCOPE.try_with(|s| s.quota.set(Some(quota)));
}

/// The correlation id of the request being answered.
pub fn request_id() -> Option<String> {
    SCOPE.try_with(|s| s.request_id.clone()).ok()
}

/// Notes whether the response came from the cache (outside a request: nowhere).
pub fn remember_cache(hit: bool) {
    let _ = SCOPE.try_with(|s| s.cache_hit.set(Some(hit)));
}

/// Keeps the session's user for [`crate::routes::caller`] (outside a request: nowhere).
pub fn remember_session(user: crate::web::SessionUser) {
    let _ = SCOPE.try_with(|s| *s.session.borrow_mut() = Some(user));
}

/// The session's user, if the request has one.
pub fn session() -> Option<crate::web::SessionUser> {
    SCOPE
        .try_with(|s| s.session.borrow().clone())
        .ok()
        .flatten()
}

/// Records what an admin write changed, `key=value` pairs, in the audit row's `query`.
pub fn remember_change(pairs: &[(&str, &str)]) {
    let encoded: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", v.replace(['&', '=', '\n'], " ")))
        .collect();
    let _ = SCOPE.try_with(|s| *s.change.borrow_mut() = Some(encoded.join("&")));
}

/// Records what a request did in the audit row's `query`, as is (a question's text, plan
/// and references, as JSON).
pub fn remember_detail(detail: String) {
    let _ = SCOPE.try_with(|s| *s.change.borrow_mut() = Some(detail));
}

/// Keeps the authenticated caller for the audit row (outside a request: nowhere).
pub fn remember_caller(who: Who) {
    let _ = SCOPE.try_with(|s| *s.who.borrow_mut() = Some(who));
}

/// One audited request.
#[derive(Clone, Debug, Row, Serialize)]
pub struct AuditRow {
    /// When it was answered, seconds.
    pub ts: u32,
    /// The same, ms.
    pub ts_ms: u64,
    /// The tenant.
    pub tenant: String,
    /// Who asked.
    pub subject: String,
    /// The route's pattern.
    pub route: String,
    /// The path asked for.
    pub path: String,
    /// The query string.
    pub query: String,
    /// The answer's status.
    pub status: u16,
    /// How long answering took.
    pub duration_ms: f64,
    /// The correlation id.
    pub request_id: String,
}

/// Most rows waiting to be written; past it, rows are dropped (and counted): the log
/// lines keep them.
const QUEUE: usize = 100_000;

/// Hands audit rows to the writer.
#[derive(Clone)]
pub struct AuditLog {
    sender: mpsc::Sender<(usize, AuditRow)>,
    dropped: IntCounter,
}

impl AuditLog {
    /// Starts the writer over the served regions' ClickHouse clients; it ends once every
    /// handle is dropped and what they queued is written.
    pub fn start(
        regions: Vec<clickhouse::Client>,
        dropped: IntCounter,
    ) -> (Self, tokio::task::JoinHandle<()>) {
        let (sender, receiver) = mpsc::channel(QUEUE);
        let writer = tokio::spawn(write_batches(regions, receiver, dropped.clone()));
        (Self { sender, dropped }, writer)
    }

    /// Queues one row of the served region `region`.
    pub fn record(&self, region: usize, row: AuditRow) {
        if self.sender.try_send((region, row)).is_err() {
            self.dropped.inc();
        }
    }
}

/// Writes what arrived, every second, one insert per tenant.
async fn write_batches(
    regions: Vec<clickhouse::Client>,
    mut receiver: mpsc::Receiver<(usize, AuditRow)>,
    dropped: IntCounter,
) {
    let mut batch: Vec<(usize, AuditRow)> = Vec::new();
    loop {
        let open = receiver.recv_many(&mut batch, 10_000).await > 0;
        if !open {
            return;
        }
        // Gather what else comes within a second.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
        while batch.len() < 10_000 {
            match tokio::time::timeout_at(deadline, receiver.recv_many(&mut batch, 10_000)).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
        let mut by_tenant: BTreeMap<(usize, String), Vec<AuditRow>> = BTreeMap::new();
        for (region, row) in batch.drain(..) {
            by_tenant
                .entry((region, row.tenant.clone()))
                .or_default()
                .push(row);
        }
        for ((region, tenant), rows) in by_tenant {
            let Ok(id) = TenantId::parse(&tenant) else {
                continue;
            };
            let client = regions[region].clone().with_database(id.clickhouse_db());
            if let Err(error) = insert(&client, &rows).await {
                dropped.inc_by(rows.len() as u64);
                tracing::warn!(tenant = %tenant, %error, rows = rows.len(), "audit rows not written; the log lines keep them");
            }
        }
    }
}

async fn insert(client: &clickhouse::Client, rows: &[AuditRow]) -> clickhouse::error::Result<()> {
    let mut insert = client.insert::<AuditRow>("audit").await?;
    for row in rows {
        insert.write(row).await?;
    }
    insert.end().await
}
