//! Reports: `roomflow report`.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use rf_schemas::TenantId;

use crate::config::Config;
use crate::{parse_time, runtime, DAY};

#[derive(Args)]
pub(crate) struct ReportArgs {
    /// The tenant.
    tenant: TenantId,
    /// The first day: a date (2026-11-01) or an age (28d) [default: 28 days before --to].
    #[arg(long)]
    from: Option<String>,
    /// The day after the last: a date or an age [default: today, so the last day is
    /// yesterday].
    #[arg(long)]
    to: Option<String>,
    /// The folder to write `<tenant>-<from>-<to>.csv` and `.html` into.
    #[arg(long, default_value = ".")]
    out: PathBuf,
}

pub(crate) fn write_report(config: &Config, args: ReportArgs) -> anyhow::Result<()> {
    let (from, to) = report_days(args.from.as_deref(), args.to.as_deref())?;
    let settings = config.settings();
    let entry = rf_jobs::tenant::entry(&settings, &args.tenant)?;
    let region = settings.region(&entry.region).with_context(|| {
        format!(
            "tenant {}'s region {} is not configured here",
            args.tenant, entry.region
        )
    })?;
    let report = runtime()?.block_on(rf_jobs::report::gather(
        &region.clickhouse,
        &args.tenant,
        &entry.display_name,
        (from, to),
    ))?;
    if report.days.is_empty() {
        anyhow::bail!(
            "tenant {} has no final day windows from {} to {}",
            args.tenant,
            format_day(from),
            format_day(to)
        );
    }
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("--out: cannot create {}", args.out.display()))?;
    let stem = format!(
        "{}-{}-{}",
        args.tenant,
        format_day(from),
        format_day(to - DAY)
    );
    for (ext, body) in [
        ("csv", rf_jobs::report::render::csv(&report)),
        ("html", rf_jobs::report::render::html(&report)),
    ] {
        let path = args.out.join(format!("{stem}.{ext}"));
        std::fs::write(&path, body)
            .with_context(|| format!("--out: cannot write {}", path.display()))?;
        println!("{}", path.display());
    }
    Ok(())
}

/// Whole UTC days from `--from` up to `--to` (default: the 28 days before today).
pub(crate) fn report_days(from: Option<&str>, to: Option<&str>) -> anyhow::Result<(i64, i64)> {
    let now = rf_schemas::unix_ms();
    let day = |ms: i64| ms.div_euclid(DAY) * DAY;
    let to = match to {
        Some(s) => day(parse_time(s, now).context("--to")?),
        None => day(now),
    };
    let from = match from {
        Some(s) => day(parse_time(s, now).context("--from")?),
        None => to - 28 * DAY,
    };
    if from >= to {
        anyhow::bail!("--from: must be a day before --to");
    }
    if to - from > 366 * DAY {
        anyhow::bail!("--from: a report covers at most 366 days");
    }
    Ok((from, to))
}

pub(crate) fn format_day(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map_or_else(|| ms.to_string(), |t| t.format("%Y-%m-%d").to_string())
}
