//! `roomflow restore`: an empty stack rebuilt from a backup.

use clap::Args;

use crate::config::Config;
use crate::runtime;

#[derive(Args)]
pub(crate) struct RestoreArgs {
    /// Where the backups are: a directory or s3://bucket/prefix [default: jobs.backup.url].
    #[arg(long)]
    from: Option<String>,
    /// The backup's id (e.g. 20261207T093000Z) [default: the latest complete one].
    #[arg(long)]
    backup: Option<String>,
    /// Only list the complete backups, oldest first.
    #[arg(long)]
    list: bool,
}

/// Restores (or lists) backups; prints a JSON report of every count checked.
pub(crate) fn restore(config: &Config, args: RestoreArgs) -> anyhow::Result<()> {
    let mut backup = config.jobs.backup.clone();
    let from = args.from.is_some();
    if let Some(url) = args.from {
        backup.url = url;
    }
    backup.validate().map_err(|e| match from {
        true => anyhow::anyhow!("{}", e.replace("jobs.backup.url", "--from")),
        false => anyhow::anyhow!(e),
    })?;
    let scratch = config.jobs.output_dir.join(".restore-staging");
    let backups = rf_jobs::backup::Backups::open(&backup, &scratch)?;
    let rt = runtime()?;
    if args.list {
        for id in rt.block_on(backups.list())? {
            println!("{id}");
        }
        return Ok(());
    }
    let settings = config.settings();
    let restored = rt.block_on(rf_jobs::backup::restore::restore(
        &settings,
        &backups,
        args.backup.as_deref(),
        |line| eprintln!("{line}"),
    ))?;
    println!("{}", serde_json::to_string_pretty(&restored)?);
    Ok(())
}
