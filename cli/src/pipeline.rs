//! The pipeline: `roomflow run`.

use anyhow::Context;
use clap::Args;
use rf_pipelines::{run, Metrics, RunOptions};
use rf_schemas::TenantId;

use crate::config::Config;
use crate::shutdown_flag;

#[derive(Args)]
pub(crate) struct RunArgs {
    /// Timely worker threads (overrides pipeline.workers).
    #[arg(long, short)]
    workers: Option<usize>,
    /// Only these tenants (repeatable; overrides pipeline.tenants).
    #[arg(long = "tenant", value_name = "TENANT")]
    tenants: Vec<TenantId>,
    /// Stop once every partition is consumed to where it ended at start.
    #[arg(long)]
    until_caught_up: bool,
    /// This process's index in a cluster of pipeline processes (overrides
    /// pipeline.process). Every process gets the same hosts and worker count.
    #[arg(long, short = 'p')]
    process: Option<usize>,
    /// Number of processes of a cluster on this machine, listening on
    /// 127.0.0.1:18200, :18201, … (instead of a host file).
    #[arg(long, short = 'n', conflicts_with = "hostfile")]
    processes: Option<usize>,
    /// File with one `host:port` per line, one line per process in process order
    /// (overrides pipeline.hosts).
    #[arg(long, short = 'H', value_name = "FILE")]
    hostfile: Option<std::path::PathBuf>,
}

pub(crate) fn run_pipeline(mut config: Config, args: RunArgs) -> anyhow::Result<()> {
    if let Some(w) = args.workers {
        config.pipeline.workers = w;
    }
    if !args.tenants.is_empty() {
        config.pipeline.tenants = args.tenants.iter().map(ToString::to_string).collect();
    }
    if let Some(p) = args.process {
        config.pipeline.process = p;
    }
    if let Some(n) = args.processes {
        if n == 0 {
            anyhow::bail!("--processes: must be at least 1");
        }
        config.pipeline.hosts = (0..n)
            .map(|i| format!("127.0.0.1:{}", rf_pipelines::CLUSTER_BASE_PORT as usize + i))
            .collect();
    }
    if let Some(path) = &args.hostfile {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("--hostfile: cannot read {}", path.display()))?;
        config.pipeline.hosts = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(String::from)
            .collect();
    }
    config.validate()?;
    let metrics = Metrics::new();
    if !config.pipeline.metrics_listen.is_empty() {
        metrics
            .serve(&config.pipeline.metrics_listen)
            .with_context(|| {
                format!(
                    "pipeline.metrics_listen: cannot listen on {}",
                    config.pipeline.metrics_listen
                )
            })?;
    }
    let shutdown = shutdown_flag()?;
    // A long-running pipeline delivers alerts too (process 0 of a cluster does); a
    // catch-up run leaves them in the outbox for the next long-running one.
    let dispatcher =
        (config.alerts.enabled && !args.until_caught_up && config.pipeline.process == 0).then(
            || rf_pipelines::alerts::spawn(&config.settings(), metrics.clone(), shutdown.clone()),
        );
    let jobs = (config.jobs.in_pipeline && !args.until_caught_up && config.pipeline.process == 0)
        .then(|| {
            let (settings, jobs, stop) = (config.settings(), config.jobs.clone(), shutdown.clone());
            let metrics = metrics.clone();
            std::thread::spawn(move || {
                if let Some(worker) = rf_jobs::queue::worker::Worker::start(&settings, &jobs, &stop)
                {
                    worker.with_metrics(metrics).run();
                }
            })
        });
    let options = RunOptions {
        until_caught_up: args.until_caught_up,
        shutdown: shutdown.clone(),
        memory_every: None,
        ..Default::default()
    };
    let result = run(&config.settings(), options, metrics);
    shutdown.store(true, std::sync::atomic::Ordering::Relaxed);
    for (name, thread) in [("alert dispatcher", dispatcher), ("job worker", jobs)] {
        if thread.is_some_and(|t| t.join().is_err()) {
            tracing::error!("the {name} panicked");
        }
    }
    let report = result?;
    let s = &report.stats;
    println!(
        "pipeline stopped after {:.1} s: {} tenants, {} epochs, {} room rows, {} office rows, {} live keys, \
         {} readings consumed = {} counted + {} replaced + {} dead letters + {} in open 15m windows",
        report.elapsed.as_secs_f64(),
        report.tenants,
        s.epochs,
        s.room_rows,
        s.office_rows,
        s.live_keys,
        s.consumed,
        s.counted,
        s.replaced,
        s.dead_letters,
        s.pending
    );
    Ok(())
}
