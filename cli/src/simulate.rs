//! The sensor fleet simulator: `roomflow simulate`.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use rf_jobs::simulate::{simulate, FleetSpec, SimulateOptions};
use rf_schemas::TenantId;

use crate::config::Config;
use crate::{forecast, parse_time, shutdown_flag};

#[derive(Args)]
pub(crate) struct SimulateArgs {
    /// Tenants to simulate, comma separated (they must exist: `roomflow tenant create`).
    #[arg(long, value_delimiter = ',', default_value = "acme,globex")]
    tenants: Vec<TenantId>,
    /// Offices per tenant, placed in cities around the world (their time zones matter).
    #[arg(long, default_value_t = 3)]
    offices: usize,
    /// Rooms per tenant.
    #[arg(long, default_value_t = 500)]
    rooms: usize,
    /// Start of history: RFC 3339 time or date (e.g. 2026-11-02), or an age like 7d.
    #[arg(long)]
    from: Option<String>,
    /// End of history (exclusive): like --from; default now.
    #[arg(long)]
    to: Option<String>,
    /// After history, keep publishing live readings until Ctrl-C.
    #[arg(long)]
    live: bool,
    /// Simulated minutes per real minute in live mode.
    #[arg(long, default_value_t = 1.0)]
    speed: f64,
    /// Seed: the same seed gives the same fleet and readings.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Publish nothing: write the first tenant's first office's hourly occupancy (people,
    /// averaged over each hour) from --from to --to to this CSV, for `roomflow forecast`.
    #[arg(long, value_name = "FILE")]
    series: Option<PathBuf>,
}

pub(crate) fn run_simulate(config: Config, args: SimulateArgs) -> anyhow::Result<()> {
    let now = rf_schemas::unix_ms();
    let to = match &args.to {
        Some(t) => parse_time(t, now).context("--to")?,
        None => now,
    };
    let from = match &args.from {
        Some(t) => parse_time(t, now).context("--from")?,
        None => to,
    };
    if args.rooms == 0 || args.offices == 0 {
        anyhow::bail!("--rooms and --offices must be at least 1");
    }
    let spec = FleetSpec {
        tenants: args.tenants,
        offices: args.offices,
        rooms: args.rooms,
        seed: args.seed,
    };
    if let Some(path) = &args.series {
        return forecast::series(&spec, from, to, path);
    }
    let options = SimulateOptions {
        spec,
        from,
        to,
        live: args.live,
        speed: args.speed,
        progress: true,
    };
    store_headcount(&config, &options.spec, to);
    let report = simulate(&config.kafka, &config.registry, &options, shutdown_flag()?)?;
    println!(
        "published {} room versions, {} bookings and {} readings in {:.1} s ({:.0} readings/s)",
        report.rooms,
        report.bookings,
        report.readings,
        report.elapsed.as_secs_f64(),
        report.readings as f64 / report.elapsed.as_secs_f64().max(1e-9)
    );
    Ok(())
}

/// Stores the fleet's headcount for the days of its history and the one after, as the
/// HR connectors would; a ClickHouse that cannot take it is reported and the readings
/// go on.
fn store_headcount(config: &Config, spec: &FleetSpec, until: i64) {
    let fleet = rf_jobs::simulate::Fleet::new(spec);
    let last = (until.div_euclid(86_400_000) + 1) as u16;
    let version = rf_schemas::unix_ms() as u64;
    let Ok(runtime) = crate::runtime() else {
        return;
    };
    for (tenant, offices) in fleet.headcount() {
        let rows: Vec<rf_jobs::headcount::Heads> = (last.saturating_sub(1)..=last)
            .flat_map(|day| {
                offices
                    .iter()
                    .map(move |(office, heads)| rf_jobs::headcount::Heads {
                        day,
                        office_id: office.clone(),
                        department: String::new(),
                        heads: *heads,
                        source: "simulator".into(),
                        version,
                    })
            })
            .collect();
        if let Err(e) = runtime.block_on(rf_jobs::headcount::store(
            &config.clickhouse,
            &tenant,
            &rows,
        )) {
            eprintln!("warning: {tenant}'s simulated headcount was not stored: {e}");
        }
    }
}
