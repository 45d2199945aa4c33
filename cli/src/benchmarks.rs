//! `roomflow benchmarks`: the cross-tenant benchmarks' computation.

use std::time::Duration;

use clap::{Args, Subcommand};

use crate::config::Config;

#[derive(Subcommand)]
pub(crate) enum BenchmarksCommand {
    /// Compute the cohorts of the tenants that opted in (`roomflow tenant update T
    /// --benchmarks on`) over the last --days local days, from their final room days:
    /// by industry, region and kind of room, the quartiles of utilization, peak
    /// utilization and ghost-booking rate across tenants. A cohort is published only
    /// with at least 5 tenants and none holding over half its rooms, its figures noised
    /// and rounded to a percentage point; no row names a tenant. Writes a new run to
    /// rf_platform.benchmarks, which GET /v1/benchmarks reads.
    Compute(ComputeArgs),
}

#[derive(Args)]
pub(crate) struct ComputeArgs {
    /// The local days before today to cover (7 to 366).
    #[arg(long, default_value_t = 28)]
    days: u32,
    /// Compute again every this many seconds (until Ctrl-C) instead of once.
    #[arg(long, value_name = "SECS")]
    every: Option<u64>,
}

pub(crate) fn run_benchmarks(config: Config, command: BenchmarksCommand) -> anyhow::Result<()> {
    let BenchmarksCommand::Compute(args) = command;
    if args.every == Some(0) {
        anyhow::bail!("--every: must be at least 1 second");
    }
    let settings = config.settings();
    let runtime = crate::runtime()?;
    loop {
        let today = chrono::Utc::now().date_naive();
        let run = runtime.block_on(rf_jobs::benchmarks::compute(&settings, args.days, today))?;
        println!(
            "run {}: local days {} to {} (exclusive), {} tenants contributing, {} cohort figures published, {} held back",
            run.run, run.from, run.to, run.contributors, run.published, run.suppressed
        );
        let Some(every) = args.every else {
            return Ok(());
        };
        std::thread::sleep(Duration::from_secs(every));
    }
}
