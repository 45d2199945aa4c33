//! `roomflow`: the one binary. Subcommands run the pipeline, the query service, the
//! jobs and the simulator; all read one config tree (see `config.rs`).

mod ask;
mod bench;
mod benchmarks;
mod calendar;
mod config;
mod deadletter;
mod detect;
mod forecast;
mod headcount;
mod job;
mod pipeline;
mod report;
mod restore;
mod series;
mod serve;
mod simulate;
mod tenant;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

use rf_schemas::registry::RegistryClient;
use rf_schemas::TenantId;

use crate::config::Config;
use bench::*;
use deadletter::*;
use job::*;
use pipeline::*;
use report::*;
use simulate::*;
use tenant::*;

// The window state churns through many small allocations in a sliding pattern; glibc's
// allocator fragments under it and the resident size creeps up, mimalloc's stays flat.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Office occupancy sensors in, trustworthy space utilization out.
///
/// Every command reads one config: built-in defaults that match the local stack
/// (deploy/local), then the TOML file given with --config, then environment variables
/// named ROOMFLOW_<SECTION>__<FIELD> (e.g. ROOMFLOW_KAFKA__BROKERS=10.0.0.5:9092).
#[derive(Parser)]
#[command(name = "roomflow", version, propagate_version = true)]
struct Cli {
    /// TOML config file.
    #[arg(
        long,
        short,
        global = true,
        env = "ROOMFLOW_CONFIG",
        value_name = "FILE"
    )]
    config: Option<PathBuf>,
    /// Log format: `text` for people, `json` for log pipelines.
    #[arg(long, global = true, env = "ROOMFLOW_LOG", default_value = "text", value_parser = ["text", "json"])]
    log: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the pipeline: consume every tenant's readings, compute windows, write
    /// ClickHouse, Redis and dead letters, commit offsets after the sinks acknowledge.
    Run(RunArgs),
    /// Run the HTTP query service and the web app (at /, sign-in through
    /// service.web.oidc_issuer): read endpoints for every role, the tenant admin's
    /// endpoints (/v1/admin/…) for admins.
    Serve,
    /// Run the local stack's development identity provider (OpenID Connect with PKCE) on
    /// loopback, so the web app's sign-in works offline: its page signs you in as a
    /// facilities manager (viewer), an executive (analyst) or a tenant admin (admin) of
    /// any tenant. Never for production: it refuses any address but loopback.
    DevIdp(serve::DevIdpArgs),
    /// Create, list, describe, update and delete tenants; report where their data lives.
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// Manage the Avro schemas in the registry.
    #[command(subcommand)]
    Schemas(SchemasCommand),
    /// Publish a simulated sensor fleet: room metadata, history, then live readings.
    Simulate(SimulateArgs),
    /// Look into a tenant's dead letters.
    #[command(subcommand)]
    Deadletter(DeadletterCommand),
    /// Sync room calendars (Microsoft 365, Google Workspace) into bookings.<tenant>.
    #[command(subcommand)]
    Calendar(calendar::CalendarCommand),
    /// People per office from the HR system (Workday, SuccessFactors or a CSV file),
    /// counted at the edge: no person-level field is kept.
    #[command(subcommand)]
    Headcount(headcount::HeadcountCommand),
    /// Cross-tenant benchmarks of the tenants that opted in, published only where no
    /// tenant's own figures can show.
    #[command(subcommand)]
    Benchmarks(benchmarks::BenchmarksCommand),
    /// Ask a question in plain language ("Which meeting rooms in EMEA were under 20% last
    /// month?"): it becomes a typed plan of the query service's own operations, runs on
    /// the tenant's data, and the answer carries the plan, the endpoints that reproduce
    /// each number, and a confidence. --eval scores the built-in parser.
    Ask(ask::AskArgs),
    /// Mint a bearer token for the query service.
    Token(TokenArgs),
    /// Write a tenant's utilization report over whole days (UTC): every office's days as
    /// CSV, and a one-page HTML report with charts (weekly trend, hour-of-week heatmap,
    /// least-used rooms and what releasing them would save).
    Report(ReportArgs),
    /// Submit, list, follow, cancel and read the logs of durable jobs.
    #[command(subcommand)]
    Job(JobCommand),
    /// Run the job worker: take submitted jobs in order and run each (until Ctrl-C).
    Jobs,
    /// Rebuild an empty stack (or a tenant erased from it) from a backup made by `job
    /// submit backup`: every file's checksum is checked first, then the tables' rows
    /// are inserted, the topics produced again (checkpoints and dead letters translated
    /// to the new offsets), the tenants provisioned, and every count and schema checked.
    /// Start the pipeline afterwards: it resumes where the backup's checkpoints were.
    Restore(restore::RestoreArgs),
    /// Forecast a series (CSV `timestamp,value`) as the pipeline does: seasonal naive,
    /// AutoETS and MSTL compared on the series' last horizons, the best (or the mean of
    /// the best two) forecasting the next --horizon steps with conformal 95% intervals.
    /// With --holdout, evaluate a file or folder against the seasonal-naive forecast.
    Forecast(ForecastArgs),
    /// Judge each step of a CSV series (timestamp,value) as the pipeline judges a closed
    /// hour: against what the steps before it showed. Prints the expectation, its 95%
    /// interval, a calibrated score (0 to 1) and a label: warmup, normal, spike, drop,
    /// level_shift, stuck or silent. With --evaluate, score it on labelled series.
    Detect(DetectArgs),
    /// Load a backlog into the broker, run the pipeline over it, report readings/s,
    /// epoch latency percentiles and peak memory.
    Bench(BenchArgs),
    /// The platform keys that tenants' webhook URLs and signing secrets are encrypted
    /// under (secrets.key_file).
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Show the effective config (secrets masked), or check it and exit.
    Config {
        /// Only validate; print nothing on success.
        #[arg(long)]
        check: bool,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Print a new platform key line (`<id> <64 hex digits>`) for the key file. To
    /// rotate: put it first in the file on every machine, run `keys rewrap`, then remove
    /// the old line.
    Generate,
    /// Wrap every tenant's data key under the key file's first key, and seal registry
    /// entries still held in plain text (written before encryption at rest).
    Rewrap,
    /// Seal a connector credential read from standard input under the tenant's data key,
    /// for a connector file (`client_secret`, `service_account`, `password`): print the
    /// sealed value. Only this tenant's connectors open it; erasing the tenant makes it
    /// unreadable.
    Seal {
        /// The tenant.
        #[arg(long)]
        tenant: TenantId,
        /// The connector file field it is for: graph.client_secret,
        /// google.service_account or password.
        #[arg(long)]
        field: String,
    },
}

#[derive(Subcommand)]
enum SchemasCommand {
    /// Register every schema of the project for the given tenants (default: all), in a
    /// fixed order; a change that is not BACKWARD compatible is refused with the
    /// registry's reason.
    Register {
        /// Only these tenants (repeatable).
        #[arg(long = "tenant", value_name = "TENANT")]
        tenants: Vec<TenantId>,
    },
}

#[derive(Args)]
struct ForecastArgs {
    /// CSV with a `timestamp,value` header; RFC 3339 timestamps with a zone, whose
    /// wall-clock time places each value in its seasons (an office's local hours). With
    /// --holdout, a folder of such files is evaluated as a whole.
    #[arg(long)]
    input: PathBuf,
    /// Steps to forecast after the last row [default: two of the shortest season, or 12].
    #[arg(long)]
    horizon: Option<usize>,
    /// A season in steps (repeatable, e.g. --period 24 --period 168) [default: from the
    /// step and length: a day and a week of hours, a week and a year of days, a year of
    /// weeks, months or quarters, each when the series holds two of it].
    #[arg(long = "period", value_name = "STEPS")]
    periods: Vec<usize>,
    /// Length of a step, e.g. 1h or 1d [default: the commonest gap between rows].
    #[arg(long)]
    step: Option<String>,
    /// Instead of forecasting: hold out the last this many horizons of each series,
    /// forecast each from everything before it, and print the MASE of the forecaster, of
    /// the seasonal-naive forecast and of roomflow's forecaster before, the 95%
    /// intervals' coverage and the CPU per forecast.
    #[arg(long, default_value_t = 0)]
    holdout: usize,
    /// With --holdout: one line per series too.
    #[arg(long, short)]
    verbose: bool,
    /// The methods compared: all (naive, seasonal naive, smoothing, AutoETS, MSTL), or
    /// fast (those without a fit to optimize: what the pipeline compares per room).
    #[arg(long, value_enum, default_value = "all")]
    candidates: CandidatesArg,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum CandidatesArg {
    All,
    Fast,
}

#[derive(Args)]
struct DetectArgs {
    /// CSV with a `timestamp,value` header; RFC 3339 timestamps with a zone, whose
    /// wall-clock time places each value in its seasons. With --evaluate, a folder of such
    /// files, each with a `label` column (1 where an anomaly starts) or --inject.
    #[arg(long)]
    input: PathBuf,
    /// A season in steps (repeatable) [default: from the step and length, as forecast].
    #[arg(long = "period", value_name = "STEPS")]
    periods: Vec<usize>,
    /// Length of a step, e.g. 5m, 1h or 1d [default: the commonest gap between rows].
    #[arg(long)]
    step: Option<String>,
    /// The smallest spread a value is judged with, in the series' units (the pipeline
    /// uses half a person plus 2% of the capacity) [default: a millionth of the values'
    /// mean size; never less than a tenth of the typical change from one step to the
    /// next].
    #[arg(long)]
    floor: Option<f64>,
    /// Scores are calibrated per series: 0.999 is a one-in-a-thousand step of the
    /// series itself. From this score on, a step is labelled with its kind.
    #[arg(long, default_value_t = 0.999)]
    threshold: f64,
    /// Instead of printing each step: score the detector on the labelled series of
    /// --input with the Numenta Anomaly Benchmark's windowed scoring (standard profile),
    /// beside roomflow's detector before, a rolling z-score and augurs' changepoint
    /// detection.
    #[arg(long)]
    evaluate: bool,
    /// With --evaluate and series without labels: inject this many anomalies into each
    /// (spikes, drops, level shifts, stuck runs and gaps in turn).
    #[arg(long, default_value_t = 0)]
    inject: usize,
    /// The seed the injected anomalies are drawn with.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

#[derive(Args)]
struct TokenArgs {
    /// The tenant the token reads.
    #[arg(long)]
    tenant: TenantId,
    /// Who it is for (the `sub` claim).
    #[arg(long, default_value = "cli")]
    subject: String,
    /// Lifetime, e.g. 24h or 30d; at most service.jwt_max_age_secs (30 days by default).
    #[arg(long, default_value = "24h")]
    ttl: String,
    /// What it may do: viewer (reads), analyst (also rankings, under-used rooms,
    /// exports) or admin (also the tenant's administration).
    #[arg(long, default_value = "analyst")]
    role: rf_schemas::tenant::Role,
    /// Instead of minting one: revoke every token of the tenant issued until now (a
    /// leaked token, an employee who left). The query service refuses them within
    /// service.directory_refresh_secs; tokens minted afterwards work.
    #[arg(long, conflicts_with_all = ["subject", "ttl", "role"])]
    revoke: bool,
}

fn main() {
    let cli = Cli::parse();
    // The service benchmark's hundred thousand requests are not logged line by line.
    let quiet_requests = matches!(&cli.command, Command::Bench(b) if b.service || b.gateway);
    let default_filter = if quiet_requests {
        "info,rdkafka=warn,rf_service=warn"
    } else {
        "info,rdkafka=warn"
    };
    let outcome = Config::load(cli.config.as_deref()).and_then(|config| {
        let component = match &cli.command {
            Command::Run(_) => "run",
            Command::Serve => "serve",
            Command::Jobs => "jobs",
            _ => "cli",
        };
        let telemetry = rf_pipelines::telemetry::init(
            cli.log == "json",
            default_filter,
            &config.telemetry,
            component,
        )
        .map_err(anyhow::Error::msg)?;
        let done = dispatch(cli, config);
        // The last traces are sent before the process ends.
        drop(telemetry);
        done
    });
    if let Err(error) = outcome {
        // Output piped into `head` that stopped reading is not a failure.
        let closed = error
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe);
        if closed {
            return;
        }
        eprintln!("error: {error:#}");
        std::process::exit(1);
    }
}

fn dispatch(cli: Cli, config: Config) -> anyhow::Result<()> {
    match cli.command {
        Command::Run(args) => run_pipeline(config, args),
        Command::Serve => serve::serve(&config),
        Command::DevIdp(args) => serve::dev_idp(args),
        Command::Tenant(command) => tenant_command(&config, command),
        Command::Schemas(SchemasCommand::Register { tenants }) => {
            let tenants = if tenants.is_empty() {
                rf_jobs::tenant::with_topics(&config.kafka)?
            } else {
                tenants
            };
            let registry = RegistryClient::new(
                &config.registry.url,
                Duration::from_secs(config.registry.timeout_secs),
            );
            let check = config.registry.compatibility_check;
            for r in rf_jobs::schemas::register_all(&registry, &tenants, check)? {
                println!("{} -> schema id {}", r.subject, r.id);
            }
            Ok(())
        }
        Command::Simulate(args) => run_simulate(config, args),
        Command::Calendar(command) => calendar::run_calendar(config, command),
        Command::Headcount(command) => headcount::run_headcount(config, command),
        Command::Benchmarks(command) => benchmarks::run_benchmarks(config, command),
        Command::Forecast(args) => forecast::forecast(&forecast::ForecastOptions {
            input: &args.input,
            horizon: args.horizon,
            periods: args.periods,
            step_secs: step_secs(args.step.as_deref())?,
            holdout: args.holdout,
            verbose: args.verbose,
            candidates: match args.candidates {
                CandidatesArg::All => rf_models::forecast::Candidates::All,
                CandidatesArg::Fast => rf_models::forecast::Candidates::Fast,
            },
        }),
        Command::Detect(args) => detect::detect(&detect::DetectOptions {
            input: &args.input,
            periods: args.periods,
            step_secs: step_secs(args.step.as_deref())?,
            floor: args.floor,
            threshold: args.threshold,
            evaluate: args.evaluate,
            inject: args.inject,
            seed: args.seed,
        }),
        Command::Report(args) => write_report(&config, args),
        Command::Job(command) => job_command(&config, command),
        Command::Restore(args) => restore::restore(&config, args),
        Command::Jobs => {
            let stop = shutdown_flag()?;
            let metrics = rf_pipelines::Metrics::new();
            let listen = &config.jobs.metrics_listen;
            if !listen.is_empty() {
                metrics
                    .serve(listen)
                    .with_context(|| format!("jobs.metrics_listen: cannot listen on {listen}"))?;
            }
            if let Some(worker) =
                rf_jobs::queue::worker::Worker::start(&config.settings(), &config.jobs, &stop)
            {
                worker.with_metrics(metrics).run();
            }
            Ok(())
        }
        Command::Deadletter(DeadletterCommand::Inspect {
            tenant,
            since,
            examples,
        }) => {
            let now = rf_schemas::unix_ms();
            let since = since
                .map(|s| parse_time(&s, now))
                .transpose()
                .context("--since")?;
            let progress = std::io::IsTerminal::is_terminal(&std::io::stderr());
            let found = rf_jobs::deadletter::inspect(
                &config.kafka,
                &config.registry,
                &tenant,
                since,
                examples,
                progress,
            )?;
            print!("{}", render_inspection(&tenant, &found));
            Ok(())
        }
        Command::Deadletter(DeadletterCommand::Replay {
            tenant,
            reason,
            since,
            follow,
        }) => replay_dead_letters(&config, &tenant, &reason, since.as_deref(), follow),
        Command::Token(args) if args.revoke => {
            let not_before = runtime()?.block_on(rf_jobs::apikey::revoke_tokens(
                &config.clickhouse,
                &args.tenant,
                "roomflow token --revoke",
            ))?;
            let at = chrono::DateTime::from_timestamp(i64::from(not_before), 0).unwrap_or_default();
            println!(
                "revoked every token of tenant {} issued before {}",
                args.tenant,
                at.format("%Y-%m-%dT%H:%M:%SZ")
            );
            Ok(())
        }
        Command::Token(args) => {
            if config.service.jwt_algorithm != rf_service::JwtAlgorithm::Hs256 {
                anyhow::bail!(
                    "service.jwt_algorithm is RS256: tokens come from the identity provider, not from roomflow"
                );
            }
            let ttl = parse_duration(&args.ttl).context("--ttl")?;
            let max = config.service.jwt_max_age_secs;
            if ttl.as_secs() > max {
                anyhow::bail!(
                    "--ttl: {} exceeds service.jwt_max_age_secs ({max} s); the service would refuse the token",
                    args.ttl
                );
            }
            println!(
                "{}",
                rf_service::auth::mint_as(
                    &config.service.jwt_secret,
                    &config.service.token_policy(),
                    &args.tenant,
                    &args.subject,
                    ttl.as_secs(),
                    Some(args.role)
                )
            );
            Ok(())
        }
        Command::Bench(args) => run_bench(config, args),
        Command::Ask(args) => ask::run(&config, args),
        Command::Keys(KeysCommand::Generate) => {
            println!("{}", rf_pipelines::secrets::generate_key_line());
            Ok(())
        }
        Command::Keys(KeysCommand::Rewrap) => {
            let (rewrapped, resealed) =
                runtime()?.block_on(rf_jobs::tenant::reseal(&config.settings()))?;
            println!("{rewrapped} data keys wrapped again, {resealed} registry entries sealed");
            Ok(())
        }
        Command::Keys(KeysCommand::Seal { tenant, field }) => {
            if !calendar::SEALED_FIELDS.contains(&field.as_str()) {
                anyhow::bail!(
                    "--field: {field:?} is none of {}",
                    calendar::SEALED_FIELDS.join(", ")
                );
            }
            let mut plain = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut plain)
                .context("reading the credential from standard input")?;
            let plain = plain.trim();
            if plain.is_empty() {
                anyhow::bail!("standard input: no credential to seal");
            }
            let settings = config.settings();
            let vault = rf_pipelines::secrets::Vault::new(&settings.secrets, &settings.clickhouse)?;
            println!(
                "{}",
                runtime()?.block_on(vault.seal_value(&tenant, &field, plain))?
            );
            Ok(())
        }
        Command::Config { check } => {
            if !check {
                print!("{}", render_masked(&config)?);
            }
            Ok(())
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// A flag set by Ctrl-C or SIGTERM, for commands that stop gracefully.
fn shutdown_flag() -> anyhow::Result<Arc<AtomicBool>> {
    let flag = Arc::new(AtomicBool::new(false));
    let set = flag.clone();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            rt.block_on(async {
                let mut term =
                    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    {
                        Ok(term) => term,
                        Err(error) => return tracing::warn!(%error, "cannot listen for SIGTERM"),
                    };
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
                tracing::info!("stopping: finishing what is under way");
                set.store(true, Ordering::Relaxed);
            });
        })?;
    Ok(flag)
}

fn format_ms(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).map_or_else(
        || ms.to_string(),
        |t| t.format("%Y-%m-%d %H:%M:%SZ").to_string(),
    )
}

fn render_masked(config: &Config) -> anyhow::Result<String> {
    // Printed as JSON; secrets serialize as themselves, so they are masked first.
    let mut value = serde_json::to_value(config)?;
    let mask = |value: &mut serde_json::Value, path: &[&str]| {
        let mut v = Some(value);
        for key in path {
            v = v.and_then(|v| v.get_mut(*key));
        }
        if let Some(v) = v.filter(|v| v.as_str().is_some_and(|s| !s.is_empty())) {
            *v = serde_json::Value::String("***".into());
        }
    };
    for path in [
        &["clickhouse", "password"][..],
        &["service", "jwt_secret"],
        &["kafka", "security", "password"],
        &["kafka", "security", "key_password"],
        &["kafka", "security", "client_secret"],
    ] {
        mask(&mut value, path);
    }
    for region in config.regions.remote.keys() {
        mask(
            &mut value,
            &["regions", "remote", region, "clickhouse", "password"],
        );
    }
    redact_urls(&mut value);
    Ok(format!("{:#}\n", value))
}

/// Replaces the password of every URL in `value` (Redis, registry, webhooks) by `***`.
fn redact_urls(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::String(s) if s.contains("://") => {
            *s = rf_sinks::endpoint::redact(s);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(redact_urls),
        serde_json::Value::Object(fields) => fields.values_mut().for_each(redact_urls),
        _ => {}
    }
}

/// `--step`, in seconds, when given.
fn step_secs(step: Option<&str>) -> anyhow::Result<Option<i64>> {
    step.map(|s| Ok(parse_duration(s).context("--step")?.as_secs() as i64))
        .transpose()
}

/// `7d`, `12h`, `30m`, `45s`.
fn parse_duration(s: &str) -> anyhow::Result<Duration> {
    let (n, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = n
        .parse()
        .with_context(|| format!("{s:?} is not a duration like 7d, 12h, 30m"))?;
    let secs = match unit {
        "d" => 86_400,
        "h" => 3_600,
        "m" => 60,
        "s" => 1,
        _ => anyhow::bail!("{s:?} is not a duration like 7d, 12h, 30m"),
    };
    Ok(Duration::from_secs(n * secs))
}

const DAY: i64 = 86_400_000;

/// An RFC 3339 time, a date (midnight UTC), or an age before `now` like `7d`.
fn parse_time(s: &str, now: i64) -> anyhow::Result<i64> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(t.timestamp_millis());
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Ok(d
            .and_time(chrono::NaiveTime::MIN)
            .and_utc()
            .timestamp_millis());
    }
    let age = parse_duration(s).with_context(|| {
        format!("{s:?} is not a time (2026-11-24T09:00:00Z), a date or an age (7d)")
    })?;
    Ok(now - age.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_output_masks_every_secret() {
        let mut config = Config::default();
        config.kafka.security.password = rf_sinks::Secret::new("kafka-pass");
        config.kafka.security.client_secret = rf_sinks::Secret::new("oidc-secret");
        config.clickhouse.password = rf_sinks::Secret::new("ch-pass");
        config.redis.url = "redis://rf-pipeline:redis-pass@127.0.0.1:16379/0".into();
        config.registry.url = "https://registry:registry-pass@127.0.0.1:18081".into();
        let mut eu = rf_pipelines::RegionStores::default();
        eu.clickhouse.password = rf_sinks::Secret::new("eu-pass");
        eu.redis.url = "rediss://:eu-redis-pass@127.0.0.1:6380/0".into();
        config.regions.remote.insert("eu".into(), eu);
        let shown = render_masked(&config).unwrap();
        for secret in [
            "kafka-pass",
            "oidc-secret",
            "ch-pass",
            "eu-pass",
            "redis-pass",
            "registry-pass",
            "eu-redis-pass",
        ] {
            assert!(!shown.contains(secret), "{secret} shown:\n{shown}");
        }
        assert!(shown.contains("***"));
        assert!(
            shown.contains("redis://rf-pipeline:***@127.0.0.1:16379/0"),
            "{shown}"
        );
    }

    #[test]
    fn durations_and_times() {
        assert_eq!(parse_duration("7d").unwrap(), Duration::from_secs(604_800));
        assert_eq!(parse_duration("30m").unwrap(), Duration::from_secs(1_800));
        assert!(parse_duration("7").is_err());
        assert!(parse_duration("d").is_err());
        assert!(parse_duration("3w").is_err());
        assert_eq!(parse_time("2026-11-24", 0).unwrap(), 1_795_478_400_000);
        assert_eq!(
            parse_time("2026-11-24T09:00:00+01:00", 0).unwrap(),
            1_795_478_400_000 + 8 * 3_600_000
        );
        assert_eq!(
            parse_time("1h", 10_000_000).unwrap(),
            10_000_000 - 3_600_000
        );
    }

    #[test]
    fn the_cli_is_well_formed() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
