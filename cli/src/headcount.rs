//! `roomflow headcount`: people per office from the HR system, aggregates only.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use serde::Deserialize;

use rf_jobs::calendar::http::Http;
use rf_jobs::headcount::{self, Counts, Mapping};
use rf_schemas::TenantId;

use crate::config::Config;

#[derive(Subcommand)]
pub(crate) enum HeadcountCommand {
    /// Count a CSV export (one row per person, or per office with a headcount column)
    /// into the tenant's headcount for a day. Only the location and department columns
    /// are read; every other column is dropped.
    Import(ImportArgs),
    /// Count the people of Workday (a RaaS custom report) or SuccessFactors (OData
    /// EmpJob) into today's headcount, as a connector file says. Run it daily.
    Sync(HrSyncArgs),
}

#[derive(Args)]
pub(crate) struct ImportArgs {
    /// The tenant.
    #[arg(long)]
    tenant: TenantId,
    /// The CSV file.
    #[arg(long, value_name = "FILE")]
    file: PathBuf,
    /// The column holding the location (or office id).
    #[arg(long, default_value = "office_id")]
    location_field: String,
    /// The column holding the department, to count per department too.
    #[arg(long)]
    department_field: Option<String>,
    /// A location and its office id, `Location=office` (repeat); without any, locations
    /// are office ids.
    #[arg(long = "map", value_name = "LOCATION=OFFICE")]
    map: Vec<String>,
    /// The day the counts are for (YYYY-MM-DD, UTC); default today.
    #[arg(long)]
    day: Option<String>,
}

#[derive(Args)]
pub(crate) struct HrSyncArgs {
    /// The tenant.
    #[arg(long)]
    tenant: TenantId,
    /// The connector file (TOML); see docs/bookings.md.
    #[arg(long, value_name = "FILE")]
    connector: PathBuf,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HrConnector {
    /// `workday` or `successfactors`.
    provider: String,
    /// Workday: the report's RaaS URL. SuccessFactors: the API server.
    url: String,
    user: String,
    /// The password, sealed (`roomflow keys seal --field password`).
    password: Option<String>,
    /// Or a file holding it (mode 0600).
    password_file: Option<PathBuf>,
    location_field: String,
    department_field: Option<String>,
    #[serde(default)]
    locations: BTreeMap<String, String>,
}

fn day_number(day: Option<&str>) -> anyhow::Result<u16> {
    let date = match day {
        Some(d) => chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d")
            .with_context(|| format!("--day: {d:?} is not YYYY-MM-DD"))?,
        None => chrono::Utc::now().date_naive(),
    };
    let days = (date - chrono::NaiveDate::default()).num_days();
    u16::try_from(days).map_err(|_| anyhow::anyhow!("--day: {date} is outside 1970 to 2149"))
}

fn store(
    config: &Config,
    tenant: &TenantId,
    counts: &Counts,
    day: u16,
    source: &str,
) -> anyhow::Result<()> {
    let version = rf_schemas::unix_ms() as u64;
    let rows = counts.rows(day, source, version);
    crate::runtime()?
        .block_on(headcount::store(&config.clickhouse, tenant, &rows))
        .with_context(|| format!("writing {tenant}'s headcount"))?;
    let total: u32 = counts.heads.values().sum();
    println!(
        "{tenant}: {total} people in {} offices/departments stored; {} in locations no office maps to, {} without a location",
        rows.len(),
        counts.unmapped,
        counts.without_location
    );
    Ok(())
}

pub(crate) fn run_headcount(config: Config, command: HeadcountCommand) -> anyhow::Result<()> {
    match command {
        HeadcountCommand::Import(a) => {
            let mut locations = BTreeMap::new();
            for m in &a.map {
                let (location, office) = m
                    .split_once('=')
                    .with_context(|| format!("--map: {m:?} is not LOCATION=OFFICE"))?;
                locations.insert(location.to_owned(), office.to_owned());
            }
            let mapping = Mapping {
                locations,
                location_field: a.location_field.clone(),
                department_field: a.department_field.clone(),
            };
            let text = std::fs::read_to_string(&a.file)
                .with_context(|| format!("--file {}", a.file.display()))?;
            let counts = headcount::from_csv(&text, &mapping)
                .map_err(|e| anyhow::anyhow!("--file {}: {e}", a.file.display()))?;
            store(
                &config,
                &a.tenant,
                &counts,
                day_number(a.day.as_deref())?,
                "csv",
            )
        }
        HeadcountCommand::Sync(a) => {
            let c: HrConnector = crate::calendar::connector_file(&a.connector)?;
            let mapping = Mapping {
                locations: c.locations.clone(),
                location_field: c.location_field.clone(),
                department_field: c.department_field.clone(),
            };
            let secret = crate::calendar::credential(
                &config,
                &a.tenant,
                "password",
                c.password.as_deref(),
                c.password_file.as_deref(),
            )?;
            let http = match c.provider.as_str() {
                "workday" => Http::new(a.tenant.as_str(), "workday"),
                "successfactors" => Http::new(a.tenant.as_str(), "successfactors"),
                other => anyhow::bail!("provider: {other:?} is neither workday nor successfactors"),
            };
            let counts = if c.provider == "workday" {
                headcount::workday(&http, &c.url, &c.user, &secret, &mapping)
            } else {
                headcount::successfactors(&http, &c.url, &c.user, &secret, &mapping)
            };
            crate::calendar::audit(&config, &a.tenant, &http);
            let counts = counts.map_err(|e| anyhow::anyhow!(e))?;
            store(&config, &a.tenant, &counts, day_number(None)?, &c.provider)
        }
    }
}
