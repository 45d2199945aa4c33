//! `roomflow calendar sync`: a tenant's room calendars into `bookings.<tenant>`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use serde::Deserialize;

use rf_jobs::calendar::google::{Google, GoogleConfig, ServiceAccount};
use rf_jobs::calendar::graph::{Graph, GraphConfig};
use rf_jobs::calendar::http::Http;
use rf_jobs::calendar::publish::Publisher;
use rf_jobs::calendar::{sync, Provider, RoomCalendar, SyncState};
use rf_schemas::TenantId;

use crate::config::Config;

#[derive(Subcommand)]
pub(crate) enum CalendarCommand {
    /// Read the room calendars a connector file names (Microsoft 365 or Google
    /// Workspace) and publish their bookings, times only, to bookings.<tenant>. The first
    /// sync lists --backfill-days back to --ahead-days ahead; later ones only changes.
    Sync(SyncArgs),
}

#[derive(Args)]
pub(crate) struct SyncArgs {
    /// The tenant.
    #[arg(long)]
    tenant: TenantId,
    /// The connector file (TOML): provider, credentials' files, rooms and calendars.
    /// See docs/bookings.md.
    #[arg(long, value_name = "FILE")]
    connector: PathBuf,
    /// Where the sync keeps its cursors (delta links, sync tokens).
    #[arg(long, value_name = "FILE")]
    state: Option<PathBuf>,
    /// Days back the first sync lists.
    #[arg(long, default_value_t = 7)]
    backfill_days: u32,
    /// Days ahead every sync covers.
    #[arg(long, default_value_t = 28)]
    ahead_days: u32,
    /// Sync again every this many seconds until Ctrl-C; 0: once.
    #[arg(long, default_value_t = 0)]
    every: u64,
}

/// The connector file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Connector {
    /// `graph` or `google`.
    provider: String,
    graph: Option<GraphFile>,
    google: Option<GoogleFile>,
    rooms: Vec<RoomCalendar>,
}

/// The connector file fields `roomflow keys seal` seals.
pub(crate) const SEALED_FIELDS: [&str; 3] =
    ["graph.client_secret", "google.service_account", "password"];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GraphFile {
    directory: String,
    client_id: String,
    /// The client secret, sealed (`roomflow keys seal --field graph.client_secret`).
    client_secret: Option<String>,
    /// Or a file holding it (mode 0600).
    client_secret_file: Option<PathBuf>,
    #[serde(default = "graph_authority")]
    authority: String,
    #[serde(default = "graph_api")]
    api: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GoogleFile {
    /// Google's JSON key of the service account, sealed (`roomflow keys seal --field
    /// google.service_account`).
    service_account: Option<String>,
    /// Or the file holding it (mode 0600).
    service_account_file: Option<PathBuf>,
    subject: Option<String>,
    #[serde(default = "google_api")]
    api: String,
}

fn graph_authority() -> String {
    "https://login.microsoftonline.com".into()
}
fn graph_api() -> String {
    "https://graph.microsoft.com/v1.0".into()
}
fn google_api() -> String {
    "https://www.googleapis.com/calendar/v3".into()
}

/// Reads a connector file (TOML), naming the field a mistake is in.
pub(crate) fn connector_file<T: serde::de::DeserializeOwned>(path: &Path) -> anyhow::Result<T> {
    if !path.is_file() {
        anyhow::bail!("--connector: {} is not a file", path.display());
    }
    figment::Figment::from(<figment::providers::Toml as figment::providers::Format>::file(path))
        .extract()
        .with_context(|| format!("--connector {}", path.display()))
}

/// A credential: `sealed` (by `roomflow keys seal`), opened with the tenant's data key,
/// or read from `file`; exactly one of them. A plain value never sits in a file.
pub(crate) fn credential(
    config: &Config,
    tenant: &TenantId,
    field: &str,
    sealed: Option<&str>,
    file: Option<&Path>,
) -> anyhow::Result<String> {
    match (sealed, file) {
        (Some(value), None) => {
            if !value.starts_with("sealed:") {
                anyhow::bail!("{field}: not sealed; seal it with `roomflow keys seal --tenant {tenant} --field {field}` or use {field}_file");
            }
            let settings = config.settings();
            let vault = rf_pipelines::secrets::Vault::new(&settings.secrets, &settings.clickhouse)?;
            crate::runtime()?
                .block_on(vault.open_value(tenant, field, value))
                .with_context(|| format!("{field}: cannot be opened with {tenant}'s keys"))
        }
        (None, Some(path)) => secret_file(path, &format!("{field}_file")),
        _ => anyhow::bail!("{field}: give either {field} (sealed) or {field}_file"),
    }
}

/// Reads a credentials file, refusing one others can read.
pub(crate) fn secret_file(path: &Path, field: &str) -> anyhow::Result<String> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).with_context(|| format!("{field}: {}", path.display()))?;
    if meta.permissions().mode() & 0o077 != 0 {
        anyhow::bail!(
            "{field}: {} is readable by others; chmod 600 it",
            path.display()
        );
    }
    let text =
        std::fs::read_to_string(path).with_context(|| format!("{field}: {}", path.display()))?;
    Ok(text.trim().to_owned())
}

/// The connector the file names, and the HTTP client its calls go through (kept to
/// audit them).
fn provider(
    config: &Config,
    c: &Connector,
    tenant: &TenantId,
) -> anyhow::Result<(Box<dyn Provider>, Http)> {
    match c.provider.as_str() {
        "graph" => {
            let g = c
                .graph
                .as_ref()
                .context("graph: provider is graph but there is no [graph] section")?;
            let config = GraphConfig {
                directory: g.directory.clone(),
                client_id: g.client_id.clone(),
                client_secret: credential(
                    config,
                    tenant,
                    "graph.client_secret",
                    g.client_secret.as_deref(),
                    g.client_secret_file.as_deref(),
                )?,
                authority: g.authority.clone(),
                api: g.api.clone(),
            };
            let http = Http::new(tenant.as_str(), "graph");
            Ok((Box::new(Graph::new(config, http.clone())), http))
        }
        "google" => {
            let g = c
                .google
                .as_ref()
                .context("google: provider is google but there is no [google] section")?;
            let key = credential(
                config,
                tenant,
                "google.service_account",
                g.service_account.as_deref(),
                g.service_account_file.as_deref(),
            )?;
            let account: ServiceAccount = serde_json::from_str(&key)
                .context("google.service_account_file: not a service account key")?;
            let config = GoogleConfig {
                account,
                subject: g.subject.clone(),
                api: g.api.clone(),
            };
            let http = Http::new(tenant.as_str(), "google");
            Ok((Box::new(Google::new(config, http.clone())), http))
        }
        other => anyhow::bail!("provider: {other:?} is neither graph nor google"),
    }
}

pub(crate) fn run_calendar(config: Config, command: CalendarCommand) -> anyhow::Result<()> {
    let CalendarCommand::Sync(args) = command;
    let connector: Connector = connector_file(&args.connector)?;
    if connector.rooms.is_empty() {
        anyhow::bail!("rooms: the connector names no room calendar");
    }
    let (mut provider, http) = provider(&config, &connector, &args.tenant)?;
    let state_path = args.state.clone().unwrap_or_else(|| {
        PathBuf::from(format!(
            ".data/calendar/{}-{}.json",
            args.tenant,
            provider.name()
        ))
    });
    let mut state: SyncState = match std::fs::read_to_string(&state_path) {
        Ok(text) => serde_json::from_str(&text)
            .with_context(|| format!("--state {}: not a sync state", state_path.display()))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => SyncState::default(),
        Err(e) => return Err(e).with_context(|| format!("--state {}", state_path.display())),
    };

    let publisher = Publisher::new(&config.kafka, &config.registry, &args.tenant)?;
    let stop = crate::shutdown_flag()?;
    loop {
        let now = rf_schemas::unix_ms();
        let window = (
            now - i64::from(args.backfill_days) * 86_400_000,
            now + i64::from(args.ahead_days) * 86_400_000,
        );
        let mut publish = |b: rf_schemas::Booking| publisher.publish(&b);
        let report = sync(
            provider.as_mut(),
            &connector.rooms,
            &mut state,
            window,
            &mut publish,
        );
        publisher.flush()?;
        // The cursors are kept only once their bookings are acknowledged.
        if let Some(dir) = state_path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(&state_path, serde_json::to_vec(&state)?)?;
        audit(&config, &args.tenant, &http);
        let report = report.with_context(|| format!("syncing {}'s calendars", args.tenant))?;
        println!(
            "{}: {} calendars, {} pages, {} booking versions published, {} events skipped, {} full resyncs",
            provider.name(),
            report.calendars,
            report.pages,
            report.published,
            report.skipped,
            report.resyncs
        );
        if args.every == 0 {
            return Ok(());
        }
        let until = std::time::Instant::now() + Duration::from_secs(args.every);
        while std::time::Instant::now() < until {
            if stop.load(std::sync::atomic::Ordering::Relaxed) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// Writes the calls `http` made into the tenant's `audit` table; a ClickHouse that
/// cannot take them is reported (the log lines keep them).
pub(crate) fn audit(config: &Config, tenant: &TenantId, http: &Http) {
    let calls = http.take_calls();
    let run = format!("{}-{}", http.connector(), rf_schemas::unix_ms());
    let written = crate::runtime().map_err(|e| e.to_string()).and_then(|rt| {
        rt.block_on(rf_jobs::calendar::http::audit(
            &config.clickhouse,
            tenant,
            http.connector(),
            &run,
            &calls,
        ))
        .map_err(|e| e.to_string())
    });
    if let Err(e) = written {
        eprintln!(
            "warning: {} connector calls were not written to {tenant}'s audit table: {e}",
            calls.len()
        );
    }
}
