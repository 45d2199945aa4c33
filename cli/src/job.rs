//! Durable jobs: `roomflow job …`.

use std::time::Duration;

use anyhow::Context;
use clap::Subcommand;
use rf_schemas::TenantId;

use crate::config::Config;
use crate::report::report_days;
use crate::{format_ms, parse_time, runtime};

#[derive(Subcommand)]
pub(crate) enum JobCommand {
    /// Submit a job; prints its id.
    Submit {
        #[command(subcommand)]
        kind: JobKindArgs,
        /// Follow it with a progress bar until it ends.
        #[arg(long, global = true)]
        follow: bool,
    },
    /// Every job, newest first.
    List {
        /// Only this tenant's.
        #[arg(long)]
        tenant: Option<TenantId>,
    },
    /// A job's status and progress.
    Status {
        /// The job id.
        id: String,
        /// Follow it with a progress bar until it ends.
        #[arg(long)]
        follow: bool,
    },
    /// Ask a job to stop: a queued one never starts, a running one stops at its next step.
    Cancel {
        /// The job id.
        id: String,
    },
    /// A job's log lines.
    Logs {
        /// The job id.
        id: String,
    },
}

#[derive(Subcommand)]
pub(crate) enum JobKindArgs {
    /// Back up into jobs.backup.url, with a manifest of SHA-256 checksums written last:
    /// the platform's compacted topics, each tenant's rooms, bookings and dead-letter
    /// topics and its readings from where the pipeline resumes, every ClickHouse table,
    /// and the schemas the records name. Without --tenant: the whole platform (the worker
    /// also makes one every jobs.backup.every_hours). `roomflow restore` rebuilds an
    /// empty stack from it.
    Backup {
        /// Only this tenant, and only its records and rows of the platform's (repeatable).
        #[arg(long)]
        tenant: Vec<TenantId>,
    },
    /// Erase a deleted tenant everywhere once its grace period (jobs.erasure_grace_days)
    /// passed, ending with a JSON verification report; the worker submits it by itself
    /// when the grace period ends.
    Erase {
        /// The tenant.
        #[arg(long)]
        tenant: TenantId,
    },
    /// Retention and downsampling of a tenant's tables: partitions past the tenant's
    /// retention_days are dropped (with a cold tier, jobs.cold.url, its months are
    /// exported to Parquet and checked first), 15-minute windows and readings past
    /// jobs.retention.keep_15m_days and hours past keep_1h_days deleted, and cold
    /// months past jobs.cold.keep_days deleted.
    Retention {
        /// The tenant.
        #[arg(long)]
        tenant: TenantId,
        /// Only list what would go (in the job's logs).
        #[arg(long)]
        dry_run: bool,
    },
    /// Recompute a tenant's windows starting in [--from, --to) from its readings topic
    /// with the room metadata as it is now (after a correction), beside the live
    /// pipeline; rows the recomputation no longer produces (a room withdrawn or moved)
    /// are then removed. Anomalies, forecasts and live state stay as they are.
    Backfill {
        /// The tenant.
        #[arg(long)]
        tenant: TenantId,
        /// The first window start: a time (2026-11-24T09:00:00Z), a date or an age (7d).
        #[arg(long)]
        from: String,
        /// The end: windows starting from here on stay as they are [default: now].
        #[arg(long)]
        to: Option<String>,
    },
    /// Bring a month of a tenant's cold tier (jobs.cold.url) back into ClickHouse: each
    /// Parquet file's SHA-256 is checked against the month's manifest before its rows go
    /// in. Retention leaves the month hot for --keep-days, then returns it to the tier.
    RestoreCold {
        /// The tenant.
        #[arg(long)]
        tenant: TenantId,
        /// The month, e.g. 2024-03.
        #[arg(long)]
        month: String,
        /// Days the month stays hot.
        #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=3650))]
        keep_days: u32,
    },
    /// A utilization report (CSV and HTML) into the worker's jobs.output_dir.
    Report {
        /// The tenant.
        #[arg(long)]
        tenant: TenantId,
        /// The first day: a date or an age [default: 28 days before --to].
        #[arg(long)]
        from: Option<String>,
        /// The day after the last: a date or an age [default: today].
        #[arg(long)]
        to: Option<String>,
    },
}

pub(crate) fn job_command(config: &Config, command: JobCommand) -> anyhow::Result<()> {
    use rf_jobs::queue::{self, JobKind};
    let kafka = &config.kafka;
    match command {
        JobCommand::Submit { kind, follow } => {
            let (tenant, kind) = match kind {
                JobKindArgs::Backup { tenant } => {
                    if config.jobs.backup.url.is_empty() {
                        anyhow::bail!("jobs.backup.url: empty; say where backups go (a directory or s3://bucket/prefix)");
                    }
                    let tenants = tenant.iter().map(ToString::to_string).collect();
                    (queue::platform(), JobKind::Backup { tenants })
                }
                JobKindArgs::Erase { tenant } => (tenant, JobKind::Erase),
                JobKindArgs::Retention { tenant, dry_run } => {
                    (tenant, JobKind::Retention { dry_run })
                }
                JobKindArgs::Report { tenant, from, to } => {
                    let (from, to) = report_days(from.as_deref(), to.as_deref())?;
                    (tenant, JobKind::Report { from, to })
                }
                JobKindArgs::Backfill { tenant, from, to } => {
                    let (from, to) = backfill_range(&from, to.as_deref())?;
                    (tenant, JobKind::Backfill { from, to })
                }
                JobKindArgs::RestoreCold {
                    tenant,
                    month,
                    keep_days,
                } => {
                    let month = rf_jobs::cold::parse_month(&month).map_err(anyhow::Error::msg)?;
                    (tenant, JobKind::RestoreCold { month, keep_days })
                }
            };
            match &kind {
                JobKind::Erase => {}
                JobKind::Backup { tenants } => {
                    for t in tenants {
                        rf_jobs::tenant::entry(&config.settings(), &TenantId::parse(t)?)?;
                    }
                }
                _ => {
                    rf_jobs::tenant::entry(&config.settings(), &tenant)?;
                }
            }
            let status =
                runtime()?.block_on(queue::submit(kafka, &config.clickhouse, &tenant, kind))?;
            println!("{}", status.spec.id);
            if follow {
                follow_job(kafka, &status.spec.id)?;
            }
            Ok(())
        }
        JobCommand::List { tenant } => {
            let tail = queue::read(kafka)?;
            let mut jobs: Vec<_> = tail
                .statuses
                .values()
                .filter(|s| tenant.as_ref().is_none_or(|t| s.spec.tenant == t.as_str()))
                .collect();
            jobs.sort_by_key(|s| std::cmp::Reverse(s.spec.submitted_ms));
            println!(
                "{:<48} {:<8} {:<10} {:<9} {:<20} message",
                "id", "kind", "state", "progress", "submitted"
            );
            for s in jobs {
                println!(
                    "{:<48} {:<8} {:<10} {:<9} {:<20} {}",
                    s.spec.id,
                    s.spec.kind.name(),
                    state_of(&tail, s),
                    format!("{}/{}", s.done, s.total),
                    format_ms(s.spec.submitted_ms),
                    s.message
                );
            }
            Ok(())
        }
        JobCommand::Status { id, follow } => {
            if follow {
                return follow_job(kafka, &id);
            }
            let tail = queue::read(kafka)?;
            let s = tail
                .statuses
                .get(&id)
                .with_context(|| format!("no job {id:?}"))?;
            println!("job       {}", s.spec.id);
            println!("tenant    {}", s.spec.tenant);
            println!("kind      {}", serde_json::to_string(&s.spec.kind)?);
            println!("state     {}", state_of(&tail, s));
            println!("progress  {}/{} {}", s.done, s.total, s.unit);
            println!("attempts  {}", s.attempts);
            println!("submitted {}", format_ms(s.spec.submitted_ms));
            if let Some(at) = s.started_ms {
                println!("started   {}", format_ms(at));
            }
            if let Some(at) = s.finished_ms {
                println!("finished  {}", format_ms(at));
            }
            if !s.message.is_empty() {
                println!("message   {}", s.message);
            }
            for o in &s.outputs {
                println!("output    {o}");
            }
            Ok(())
        }
        JobCommand::Cancel { id } => {
            let status = runtime()?.block_on(queue::cancel(kafka, &id))?;
            println!(
                "job {id} ({}) asked to stop: a queued job never starts, a running one stops at its next step",
                status.state.label()
            );
            Ok(())
        }
        JobCommand::Logs { id } => {
            let tail = queue::read(kafka)?;
            let s = tail
                .statuses
                .get(&id)
                .with_context(|| format!("no job {id:?}"))?;
            for line in &s.logs {
                println!("{line}");
            }
            Ok(())
        }
    }
}

pub(crate) fn state_of(tail: &rf_jobs::queue::StatusTail, s: &rf_jobs::queue::JobStatus) -> String {
    let cancelling = !s.state.is_final() && tail.cancels.contains(&s.spec.id);
    let unattended = match s.state {
        rf_jobs::queue::JobState::Queued => tail.no_worker_warning(rf_schemas::unix_ms()),
        _ => None,
    };
    format!(
        "{}{}{}",
        s.state.label(),
        if cancelling {
            " (cancel requested)"
        } else {
            ""
        },
        unattended.map_or_else(String::new, |w| format!(" ({w})"))
    )
}

/// Shows a job's progress (rate and ETA) until it ends; fails if it did not succeed.
pub(crate) fn follow_job(kafka: &rf_pipelines::KafkaConfig, id: &str) -> anyhow::Result<()> {
    use rf_jobs::queue::{JobState, StatusTail};
    let mut tail = StatusTail::new(kafka, "roomflow-job-reader")?;
    tail.catch_up(Duration::from_secs(kafka.timeout_secs))?;
    let bar = indicatif::ProgressBar::new(0).with_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} {msg:12} [{bar:40}] {pos}/{len} {per_sec} eta {eta}",
        )
        .expect("a valid template")
        .progress_chars("=> "),
    );
    let mut warned = false;
    loop {
        let s = tail
            .statuses
            .get(id)
            .with_context(|| format!("no job {id:?}"))?;
        bar.set_length(s.total);
        bar.set_position(s.done);
        bar.set_message(s.state.label());
        if s.state == JobState::Queued {
            // Said once each time the workers go missing.
            let warning = tail.no_worker_warning(rf_schemas::unix_ms());
            if let Some(w) = warning.as_ref().filter(|_| !warned) {
                bar.println(format!("warning: {w}"));
            }
            warned = warning.is_some();
        }
        if s.state.is_final() {
            bar.finish();
            let s = s.clone();
            println!("{} {}: {}", s.spec.id, s.state.label(), s.message);
            for o in &s.outputs {
                println!("  {o}");
            }
            if s.state != JobState::Succeeded {
                anyhow::bail!("job {id} {}", s.state.label());
            }
            return Ok(());
        }
        bar.tick();
        tail.poll(Duration::from_millis(500))?;
    }
}

/// A backfill's range, ms: `to` defaults to now, and neither may be in the future.
pub(crate) fn backfill_range(from: &str, to: Option<&str>) -> anyhow::Result<(i64, i64)> {
    let now = rf_schemas::unix_ms();
    let to = match to {
        Some(s) => parse_time(s, now).context("--to")?,
        None => now,
    };
    let from = parse_time(from, now).context("--from")?;
    if to > now {
        anyhow::bail!("--to: is in the future; the live pipeline writes what comes");
    }
    if from >= to {
        anyhow::bail!("--from: must be before --to");
    }
    Ok((from, to))
}
