//! Dead letters: `roomflow deadletter …`.

use anyhow::Context;
use clap::Subcommand;
use rf_schemas::TenantId;

use crate::config::Config;
use crate::job::follow_job;
use crate::{format_ms, parse_time, runtime};

#[derive(Subcommand)]
pub(crate) enum DeadletterCommand {
    /// Count a tenant's dead letters by reason and hour, and show the first ones of each
    /// reason with their detail, their source offset and the reading where it decodes.
    Inspect {
        /// The tenant.
        tenant: TenantId,
        /// Only letters written since: RFC 3339 time or date, or an age like 24h.
        #[arg(long)]
        since: Option<String>,
        /// Examples per reason.
        #[arg(long, default_value_t = 3)]
        examples: usize,
    },
    /// Count again the readings of a tenant's dead letters whose cause was fixed (room
    /// metadata published late or corrected, a schema registered late): finds the letters
    /// with --reason that decode now and whose room has a version in effect at their time
    /// (as the live pipeline mirrored it to ClickHouse), and submits a backfill job of the
    /// windows holding them. The windows are recomputed from the readings topic, so what
    /// was counted already is not counted twice.
    Replay {
        /// The tenant.
        tenant: TenantId,
        /// The letters' reason: unknown_room, office_mismatch, unknown_schema or
        /// incompatible_schema.
        #[arg(long)]
        reason: String,
        /// Only letters written since: RFC 3339 time or date, or an age like 24h.
        #[arg(long)]
        since: Option<String>,
        /// Follow the backfill job with a progress bar until it ends.
        #[arg(long)]
        follow: bool,
    },
}

pub(crate) fn render_inspection(
    tenant: &TenantId,
    found: &rf_jobs::deadletter::Inspection,
) -> String {
    use std::fmt::Write;
    let time = format_ms;
    let mut s = String::new();
    let topic = tenant.deadletter_topic();
    let _ = writeln!(s, "{topic}: {} dead letters", found.total);
    if found.total == 0 {
        return s;
    }
    let _ = writeln!(
        s,
        "\n{:<20} {:>8}  {:<21} {:<21}",
        "reason", "count", "first", "last"
    );
    for (reason, (n, first, last)) in &found.reasons {
        let _ = writeln!(
            s,
            "{reason:<20} {n:>8}  {:<21} {:<21}",
            time(*first),
            time(*last)
        );
    }
    let reasons: Vec<&String> = found.reasons.keys().collect();
    let _ = write!(s, "\n{:<17}", "hour (UTC)");
    for r in &reasons {
        let _ = write!(s, " {:>w$}", r, w = r.len().max(6));
    }
    let _ = writeln!(s);
    for (hour, counts) in &found.hours {
        let _ = write!(s, "{:<17}", &time(*hour)[..16]);
        for r in &reasons {
            let n = counts.get(*r).copied().unwrap_or(0);
            let _ = write!(s, " {:>w$}", n, w = r.len().max(6));
        }
        let _ = writeln!(s);
    }
    for (reason, examples) in &found.examples {
        let _ = writeln!(s, "\n{reason}:");
        for e in examples {
            let _ = writeln!(
                s,
                "  {} partition {} offset {}: {}",
                time(e.at),
                e.source.0,
                e.source.1,
                e.detail
            );
            match &e.reading {
                Some(r) => {
                    let _ = writeln!(
                        s,
                        "    reading: sensor {} office {} room {} ts {} people {}",
                        r.sensor_id,
                        r.office_id,
                        r.room_id,
                        time(r.ts),
                        r.people_count
                    );
                }
                None => {
                    let _ = writeln!(s, "    (the bytes do not decode with a known schema)");
                }
            }
        }
    }
    s
}

pub(crate) fn replay_dead_letters(
    config: &Config,
    tenant: &TenantId,
    reason: &str,
    since: Option<&str>,
    follow: bool,
) -> anyhow::Result<()> {
    use rf_jobs::deadletter::{plan_replay, replayable, rooms};
    let reason = replayable(reason)?;
    let now = rf_schemas::unix_ms();
    let since = since
        .map(|s| parse_time(s, now))
        .transpose()
        .context("--since")?;
    let settings = config.settings();
    let entry = rf_jobs::tenant::entry(&settings, tenant)?;
    let region = settings
        .region(&entry.region)
        .with_context(|| format!("region {} is not configured here", entry.region))?;
    let runtime = runtime()?;
    let rooms = runtime.block_on(rooms(&region.clickhouse, tenant))?;
    let progress = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let plan = plan_replay(
        &config.kafka,
        &config.registry,
        tenant,
        reason,
        since,
        &rooms,
        progress,
    )?;
    println!(
        "{} {reason} letters: {} fixed, {} not yet",
        plan.letters,
        plan.fixed,
        plan.letters - plan.fixed
    );
    for (why, n) in &plan.unfixed {
        println!("  {n:>8}  {why}");
    }
    let Some((from, to)) = plan.range else {
        println!("nothing to replay");
        return Ok(());
    };
    let kind = rf_jobs::queue::JobKind::Backfill { from, to };
    let status = runtime.block_on(rf_jobs::queue::submit(
        &config.kafka,
        &config.clickhouse,
        tenant,
        kind,
    ))?;
    println!(
        "backfill of windows starting from {} to {}: job {}",
        rf_jobs::backfill::day(from),
        rf_jobs::backfill::day(to),
        status.spec.id
    );
    if follow {
        follow_job(&config.kafka, &status.spec.id)?;
    }
    Ok(())
}
