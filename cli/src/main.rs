//! `roomflow`: the one binary. Subcommands run the pipeline, the query service, the
//! jobs and the simulator; all read one config tree (see `config.rs`).

mod config;
mod forecast;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

use rf_jobs::bench::{
    bench, export, live, percentile, replay, service_bench, BenchOptions, LiveOptions, Noise,
    ServiceBenchOptions,
};
use rf_jobs::simulate::{simulate, FleetSpec, SimulateOptions};
use rf_pipelines::{run, Metrics, RunOptions, Settings};
use rf_schemas::registry::RegistryClient;
use rf_schemas::tenant::{AlertRule, AlertTarget};
use rf_schemas::{TenantId, Tier};

use crate::config::Config;

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
    /// Run the read-only HTTP query service.
    Serve,
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
    /// Forecast a series (CSV `timestamp,value`) with roomflow's forecaster: the next
    /// --horizon steps with 95% intervals, or with --holdout, its MASE and the
    /// seasonal-naive forecast's on the last seasons.
    Forecast(ForecastArgs),
    /// Judge each row of a CSV series (timestamp,value) as the pipeline judges a closed
    /// hour: against the weekly pattern learnt from the rows before it. Prints the
    /// expectation, its 95% interval, the anomaly score (0 to 1) and a label.
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
}

#[derive(Args)]
struct RunArgs {
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

#[derive(Subcommand)]
enum DeadletterCommand {
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

#[derive(Subcommand)]
enum TenantCommand {
    /// Create tenants in their region: topics (readings with 12 partitions, compacted
    /// rooms, dead letters) on the region's broker, the ClickHouse database and tables in
    /// the region's ClickHouse, the schemas, and the entry in the tenant registry
    /// (roomflow.tenants, mirrored to rf_platform.tenants). A running pipeline serving the
    /// region picks the tenant up within pipeline.discover_secs. Idempotent: what exists
    /// is kept, an existing entry too (change it with `update`).
    Create {
        /// Tenant ids (`^[a-z][a-z0-9-]{1,39}$`).
        #[arg(required = true)]
        tenants: Vec<TenantId>,
        #[command(flatten)]
        fields: TenantFields,
    },
    /// List every tenant: id, name, tier, region and status.
    List,
    /// Show a tenant's entry (alert URLs masked) and where its resources are.
    Describe {
        /// The tenant.
        tenant: TenantId,
        /// Print the registry entry as JSON instead.
        #[arg(long)]
        json: bool,
    },
    /// Change a tenant's entry; the region never changes.
    Update {
        /// The tenant.
        tenant: TenantId,
        #[command(flatten)]
        fields: TenantFields,
        /// Remove every alert target.
        #[arg(long, conflicts_with = "alerts")]
        clear_alerts: bool,
    },
    /// Mark a tenant deleted: pipelines stop serving it from their next start, and its
    /// data is erased after the grace period.
    Delete {
        /// The tenant.
        tenant: TenantId,
    },
    /// API keys for integrations (`X-Api-Key`): kept as SHA-256 hashes only.
    #[command(subcommand)]
    Apikey(ApikeyCommand),
    /// Where the tenant's data lives: its topics, ClickHouse tables and Redis keys in
    /// every configured region, as JSON. Exits with 1 if any is outside its region.
    ResidencyReport {
        /// The tenant.
        tenant: TenantId,
    },
    /// Send a test message to each of the tenant's alert targets (disabled ones too) and
    /// show what each answered. Exits with 1 if any did not acknowledge.
    TestAlerts {
        /// The tenant.
        tenant: TenantId,
    },
}

#[derive(Subcommand)]
enum ApikeyCommand {
    /// Create a key and print it, once: only its hash is kept.
    Create {
        /// The tenant the key reads.
        tenant: TenantId,
        /// What the key is for.
        #[arg(long)]
        name: String,
    },
    /// List a tenant's keys (ids and names, never the keys).
    List {
        /// The tenant.
        tenant: TenantId,
    },
    /// Revoke a key: query services refuse it within service.directory_refresh_secs.
    Revoke {
        /// The tenant.
        tenant: TenantId,
        /// The key's id, as `list` shows it.
        key_id: String,
    },
}

/// A tenant's settings, for `create` and `update`.
#[derive(Args)]
struct TenantFields {
    /// The name people see (created with the id).
    #[arg(long = "name")]
    display_name: Option<String>,
    /// The customer's industry.
    #[arg(long)]
    industry: Option<String>,
    /// free, standard or enterprise (created standard); rate limits follow it.
    #[arg(long)]
    tier: Option<Tier>,
    /// Where the tenant's data lives (created in regions.home); fixed once created.
    #[arg(long)]
    region: Option<String>,
    /// How long the tenant's rows are kept (created with 730).
    #[arg(long, value_name = "DAYS")]
    retention_days: Option<u32>,
    /// An alert destination, KIND=URL with KIND slack, teams or webhook; repeatable;
    /// replaces the list. A webhook gets a signing secret, printed here.
    #[arg(long = "alert", value_name = "KIND=URL")]
    alerts: Vec<AlertTarget>,
    /// What alerts are about; repeatable; replaces the list (created with
    /// capacity_breach, sensor_fault, unusual_occupancy>=high and weekly_digest).
    /// RULE[>=SEVERITY][/COOLDOWN_MINUTES] with RULE capacity_breach, sensor_fault,
    /// unusual_occupancy or any_anomaly, or weekly_digest[:BELOW-ABOVE] (fractions of
    /// capacity: weekly utilization under BELOW, peak over ABOVE).
    #[arg(long = "alert-rule", value_name = "RULE")]
    alert_rules: Vec<AlertRule>,
}

impl TenantFields {
    fn spec(self, clear_alerts: bool) -> rf_jobs::tenant::TenantSpec {
        rf_jobs::tenant::TenantSpec {
            display_name: self.display_name,
            industry: self.industry,
            tier: self.tier,
            region: self.region,
            retention_days: self.retention_days,
            alert_targets: (clear_alerts || !self.alerts.is_empty()).then_some(self.alerts),
            alert_rules: (!self.alert_rules.is_empty()).then_some(self.alert_rules),
        }
    }
}

#[derive(Args)]
struct ReportArgs {
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

#[derive(Subcommand)]
enum JobCommand {
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
enum JobKindArgs {
    /// Erase a deleted tenant everywhere once its grace period (jobs.erasure_grace_days)
    /// passed, ending with a JSON verification report; the worker submits it by itself
    /// when the grace period ends.
    Erase {
        /// The tenant.
        #[arg(long)]
        tenant: TenantId,
    },
    /// Retention and downsampling of a tenant's tables: partitions past the tenant's
    /// retention_days are dropped, 15-minute windows and readings past
    /// jobs.retention.keep_15m_days and hours past keep_1h_days deleted.
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
struct SimulateArgs {
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

#[derive(Args)]
struct ForecastArgs {
    /// CSV with a `timestamp,value` header; RFC 3339 timestamps with a zone, whose
    /// wall-clock time places each value in the season (an office's local hours).
    #[arg(long)]
    input: PathBuf,
    /// Steps to forecast after the last row.
    #[arg(long, default_value_t = 336)]
    horizon: usize,
    /// Steps in a season: 168 for hours of a week, 7 for days of a week.
    #[arg(long, default_value_t = 168)]
    period: usize,
    /// Length of a step, e.g. 1h or 1d.
    #[arg(long, default_value = "1h")]
    step: String,
    /// Instead of forecasting: hold out the last this many seasons, forecast each from
    /// everything before it, and print the MASE of the forecaster and of the
    /// seasonal-naive forecast (the value one season before).
    #[arg(long, default_value_t = 0)]
    holdout: usize,
    /// The least spread a value is learnt with: one beyond 3 spreads of its forecast is
    /// learnt as if at that bound, as in the pipeline (half a person plus 2% of the
    /// capacity there).
    #[arg(long, default_value_t = 0.5)]
    floor: f64,
}

#[derive(Args)]
struct DetectArgs {
    /// CSV with a `timestamp,value` header; RFC 3339 timestamps with a zone, whose
    /// wall-clock time places each value in the season.
    #[arg(long)]
    input: PathBuf,
    /// Steps in a season: 168 for hours of a week, 7 for days of a week.
    #[arg(long, default_value_t = 168)]
    period: usize,
    /// Length of a step, e.g. 1h or 1d.
    #[arg(long, default_value = "1h")]
    step: String,
    /// The smallest spread a value is judged with, in the series' units: the pipeline
    /// uses half a person plus 2% of the room's or office's capacity.
    #[arg(long, default_value_t = 0.5)]
    floor: f64,
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
    /// Instead of minting one: revoke every token of the tenant issued until now (a
    /// leaked token, an employee who left). The query service refuses them within
    /// service.directory_refresh_secs; tokens minted afterwards work.
    #[arg(long, conflicts_with_all = ["subject", "ttl"])]
    revoke: bool,
}

#[derive(Args)]
struct BenchArgs {
    /// Readings in the backlog.
    #[arg(long, default_value_t = 1_000_000)]
    readings: u64,
    /// Rooms in the simulated fleet (one tenant, ten offices).
    #[arg(long, default_value_t = 1_000)]
    rooms: usize,
    /// Live mode instead of a backlog: publish --rate readings a second for --duration
    /// while the pipeline runs, and report reading-to-Redis and final-row delays. Event
    /// time runs rate × 60 / rooms times faster than the wall clock.
    #[arg(long, conflicts_with = "readings")]
    live: bool,
    /// Instead of using the broker: write the backlog as CSV files under this folder and
    /// replay them through roomflow's operators (decode, windows; no sinks), for a
    /// comparison with other engines replaying the same files (bench/peers/run.sh).
    #[arg(long, value_name = "DIR", conflicts_with = "live")]
    files: Option<PathBuf>,
    /// Live mode: run it twice, the second time beside a tenant flooding this many
    /// malformed messages a second, and compare the quiet tenant's delays.
    #[arg(long, value_name = "PER_SEC", requires = "live")]
    noise_rate: Option<u64>,
    /// Live mode: run it twice, the second time beside a tenant with a backlog of this
    /// many readings to replay, and compare the quiet tenant's delays.
    #[arg(
        long,
        value_name = "READINGS",
        requires = "live",
        conflicts_with = "noise_rate"
    )]
    noise_backlog: Option<u64>,
    /// Live mode: run it twice, the second time beside a backfill job recomputing a
    /// tenant's history of this many readings, and compare the quiet tenant's delays.
    #[arg(
        long,
        value_name = "READINGS",
        requires = "live",
        conflicts_with_all = ["noise_rate", "noise_backlog"]
    )]
    noise_backfill: Option<u64>,
    /// Live mode: run it twice, the second time beside a tenant publishing this many
    /// readings a second through outages of its own (the registry hangs for its new
    /// schema id, then its region's ClickHouse hangs), and compare the quiet tenant's
    /// delays.
    #[arg(
        long,
        value_name = "PER_SEC",
        requires = "live",
        conflicts_with_all = ["noise_rate", "noise_backlog", "noise_backfill"]
    )]
    noise_outage: Option<u64>,
    /// Readings per second in live mode.
    #[arg(long, default_value_t = 100_000, requires = "live")]
    rate: u64,
    /// Live mode: how long it publishes (default 60s). Service mode: how long each
    /// endpoint is held at each connection count (default 10s). E.g. 30s, 5m.
    #[arg(long, value_parser = parse_duration)]
    duration: Option<Duration>,
    /// Query-service mode: load a throwaway tenant of --rooms rooms (250 to an office)
    /// with --days of windows into ClickHouse and live occupancy into Redis, start the
    /// service in this process, hold every endpoint under each --connections count for
    /// --duration, and report p50/p95/p99 per endpoint. Request log lines are off unless
    /// RUST_LOG asks for them; audit rows are written as always.
    #[arg(long, conflicts_with_all = ["live", "files", "readings"])]
    service: bool,
    /// Service mode: days of history (15m room windows are kept for 30 of them).
    #[arg(long, default_value_t = 365, requires = "service")]
    days: u32,
    /// Service mode: concurrent keep-alive connections, comma-separated, e.g. 100,1000.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "100,1000",
        requires = "service"
    )]
    connections: Vec<usize>,
    /// Service mode: offer each endpoint this many requests a second, spread over the
    /// connections, latency counted from when each request was due. Without it every
    /// connection sends its next request as soon as the last is answered (capacity).
    #[arg(long, value_name = "PER_SEC", requires = "service")]
    request_rate: Option<u64>,
    /// Timely worker threads (overrides pipeline.workers).
    #[arg(long, short)]
    workers: Option<usize>,
    /// Keep the throwaway benchmark tenant's topics and database.
    #[arg(long)]
    keep: bool,
    /// Service mode: measure the tenant an earlier `--service --keep` run kept (its
    /// rooms and days are read from its data) instead of loading a new one.
    #[arg(long, value_name = "TENANT", requires = "service")]
    reuse: Option<TenantId>,
    /// Service mode: hold only the endpoints whose name contains one of these,
    /// comma-separated, e.g. "office series,occupancy".
    #[arg(long, value_delimiter = ',', requires = "service")]
    endpoints: Vec<String>,
    /// Service mode: hold every endpoint again beside a second tenant (same portfolio)
    /// flooding the heaviest endpoints over this many connections, and report the
    /// measured tenant's p95 alone and beside it.
    #[arg(
        long,
        value_name = "CONNECTIONS",
        requires = "service",
        conflicts_with = "reuse"
    )]
    noisy: Option<usize>,
    /// Skip the broker's and the operators' ceilings (they hold the backlog in memory,
    /// about 160 bytes a reading).
    #[arg(long)]
    no_ceilings: bool,
}

fn main() {
    let cli = Cli::parse();
    // The service benchmark's hundred thousand requests are not logged line by line.
    let quiet_requests = matches!(&cli.command, Command::Bench(b) if b.service);
    init_logging(&cli.log, quiet_requests);
    if let Err(error) = dispatch(cli) {
        eprintln!("error: {error:#}");
        std::process::exit(1);
    }
}

fn init_logging(format: &str, quiet_requests: bool) {
    let default = if quiet_requests {
        "info,rdkafka=warn,rf_service=warn"
    } else {
        "info,rdkafka=warn"
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("RUST_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if format == "json" {
        builder.json().flatten_event(true).init();
    } else {
        builder.init();
    }
}

fn dispatch(cli: Cli) -> anyhow::Result<()> {
    let config = Config::load(cli.config.as_deref())?;
    match cli.command {
        Command::Run(args) => run_pipeline(config, args),
        Command::Serve => runtime()?.block_on(async {
            rf_service::serve(&config.service, &config.service_stores(), async {
                if let Err(error) = tokio::signal::ctrl_c().await {
                    tracing::warn!(%error, "cannot listen for Ctrl-C");
                }
            })
            .await
            .map_err(anyhow::Error::msg)
        }),
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
        Command::Forecast(args) => forecast::forecast(&forecast::ForecastOptions {
            input: &args.input,
            horizon: args.horizon,
            period: args.period,
            step_secs: parse_duration(&args.step).context("--step")?.as_secs() as i64,
            holdout: args.holdout,
            floor: args.floor,
        }),
        Command::Detect(args) => forecast::detect(&forecast::DetectOptions {
            input: &args.input,
            period: args.period,
            step_secs: parse_duration(&args.step).context("--step")?.as_secs() as i64,
            floor: args.floor,
        }),
        Command::Report(args) => write_report(&config, args),
        Command::Job(command) => job_command(&config, command),
        Command::Jobs => {
            let stop = shutdown_flag()?;
            if let Some(worker) =
                rf_jobs::queue::worker::Worker::start(&config.settings(), &config.jobs, &stop)
            {
                worker.run();
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
                rf_service::mint_with(
                    &config.service.jwt_secret,
                    &config.service.token_policy(),
                    &args.tenant,
                    &args.subject,
                    ttl.as_secs()
                )
            );
            Ok(())
        }
        Command::Bench(args) => run_bench(config, args),
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

fn run_pipeline(mut config: Config, args: RunArgs) -> anyhow::Result<()> {
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
            std::thread::spawn(move || {
                if let Some(worker) = rf_jobs::queue::worker::Worker::start(&settings, &jobs, &stop)
                {
                    worker.run();
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

fn run_simulate(config: Config, args: SimulateArgs) -> anyhow::Result<()> {
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
    let report = simulate(&config.kafka, &config.registry, &options, shutdown_flag()?)?;
    println!(
        "published {} room versions and {} readings in {:.1} s ({:.0} readings/s)",
        report.rooms,
        report.readings,
        report.elapsed.as_secs_f64(),
        report.readings as f64 / report.elapsed.as_secs_f64().max(1e-9)
    );
    Ok(())
}

fn run_bench(mut config: Config, args: BenchArgs) -> anyhow::Result<()> {
    if let Some(w) = args.workers {
        config.pipeline.workers = w;
    }
    config.validate()?;
    if args.live {
        return run_live_bench(&config, &args);
    }
    if args.service {
        return run_service_bench(&config, &args);
    }
    if let Some(dir) = &args.files {
        return run_files_bench(&config, &args, dir);
    }
    let options = BenchOptions {
        readings: args.readings,
        rooms: args.rooms,
        keep: args.keep,
        ceilings: !args.no_ceilings,
    };
    let report = runtime()?.block_on(bench(&config.settings(), &options))?;
    let (load, run, s) = (&report.load, &report.run, &report.run.stats);
    let rate = |n: u64, d: Duration| n as f64 / d.as_secs_f64().max(1e-9);
    println!(
        "roomflow bench: tenant {}, {} rooms, {} workers",
        report.tenant, args.rooms, config.pipeline.workers
    );
    println!(
        "load      {} readings in {:.1} s = {:.0} readings/s into the broker",
        load.readings,
        load.elapsed.as_secs_f64(),
        rate(load.readings, load.elapsed)
    );
    let latency = |l: &[f64]| {
        format!(
            "epoch latency p50 {:.0} ms, p95 {:.0} ms, p99 {:.0} ms, max {:.0} ms over {} epochs",
            percentile(l, 50.0) * 1e3,
            percentile(l, 95.0) * 1e3,
            percentile(l, 99.0) * 1e3,
            percentile(l, 100.0) * 1e3,
            l.len()
        )
    };
    let mib = |b: u64| b as f64 / 1048576.0;
    println!(
        "pipeline  {} readings in {:.1} s = {:.0} readings/s end to end (broker → decode → 15m/1h/1d room and office windows → ClickHouse, Redis, commits)",
        load.readings,
        run.elapsed.as_secs_f64(),
        rate(load.readings, run.elapsed)
    );
    println!("          {}", latency(&s.latencies));
    if let Some((c, m)) = &report.ceilings {
        println!(
        "broker    {} readings in {:.1} s = {:.0} readings/s ({:.0} MB/s): plain consumers, one per worker, nothing else (the broker's ceiling)",
        c.readings,
        c.elapsed.as_secs_f64(),
        rate(c.readings, c.elapsed),
        c.bytes as f64 / 1e6 / c.elapsed.as_secs_f64().max(1e-9)
    );
        println!(
        "compute   {} readings in {:.1} s = {:.0} readings/s: the same operators fed from memory, no sinks ({} rows for ClickHouse; the pipeline's own ceiling)",
        m.readings,
        m.elapsed.as_secs_f64(),
        rate(m.readings, m.elapsed),
        m.rows
    );
        println!(
            "          {}; peak RSS {:.0} MiB incl. {:.0} MiB of records in memory",
            latency(&m.latencies),
            mib(m.peak_rss),
            mib(m.buffer)
        );
    }
    println!(
        "output    {} room rows, {} office rows, {} live keys, {} dead letters",
        s.room_rows, s.office_rows, s.live_keys, s.dead_letters
    );
    println!(
        "accounts  {} consumed = {} counted + {} replaced + {} dead letters + {} in open 15m windows",
        s.consumed, s.counted, s.replaced, s.dead_letters, s.pending
    );
    println!(
        "state     {} readings of open 15m windows and {} final 15m windows summed up, held at the end",
        s.held, s.chunks
    );
    println!(
        "memory    peak RSS {:.0} MiB during the pipeline run",
        mib(report.peak_rss)
    );
    if let (Some(first), Some(last)) = (run.memory.first(), run.memory.last()) {
        let samples: Vec<String> = run
            .memory
            .iter()
            .map(|(n, rss)| format!("{:.0}M: {:.0} MiB", *n as f64 / 1e6, mib(*rss)))
            .collect();
        println!("          RSS by readings consumed: {}", samples.join(", "));
        println!(
            "          RSS after {:.0}M readings vs after {:.0}M: {:+.1}%",
            last.0 as f64 / 1e6,
            first.0 as f64 / 1e6,
            (mib(last.1) / mib(first.1) - 1.0) * 100.0
        );
    }
    Ok(())
}

fn run_files_bench(config: &Config, args: &BenchArgs, dir: &Path) -> anyhow::Result<()> {
    let started = Instant::now();
    let written = export(dir, args.readings, args.rooms)?;
    println!(
        "files     {written} readings of {} rooms written under {} in {:.1} s",
        args.rooms,
        dir.display(),
        started.elapsed().as_secs_f64()
    );
    let p = &config.pipeline;
    let report = replay(dir, &config.settings().registry, p)?;
    let m = &report.compute;
    let total = report.load + m.elapsed;
    println!(
        "roomflow  {} readings in {:.2} s = {:.0} readings/s: read and parse the files, frame them as on the topic ({:.2} s), decode, 15m/1h/1d room and office windows ({:.2} s) on {} workers; {} rows for ClickHouse",
        m.readings,
        total.as_secs_f64(),
        m.readings as f64 / total.as_secs_f64().max(1e-9),
        report.load.as_secs_f64(),
        m.elapsed.as_secs_f64(),
        p.workers,
        m.rows
    );
    Ok(())
}

fn run_live_bench(config: &Config, args: &BenchArgs) -> anyhow::Result<()> {
    let mut options = LiveOptions {
        rate: args.rate,
        rooms: args.rooms,
        duration: args.duration.unwrap_or(Duration::from_secs(60)),
        keep: args.keep,
        noise: None,
        backfill: config.jobs.backfill.clone(),
    };
    let runtime = runtime()?;
    let quiet = runtime.block_on(live(&config.settings(), &options))?;
    print_live(config, args, &quiet);
    let noise = match (
        args.noise_rate,
        args.noise_backlog,
        args.noise_backfill,
        args.noise_outage,
    ) {
        (Some(rate), ..) => Noise::Malformed(rate),
        (_, Some(readings), ..) => Noise::Backlog(readings),
        (_, _, Some(readings), _) => Noise::Backfill(readings),
        (.., Some(rate)) => Noise::Outage(rate),
        _ => return Ok(()),
    };
    options.noise = Some(noise);
    let noisy = runtime.block_on(live(&config.settings(), &options))?;
    println!();
    print_live(config, args, &noisy);
    let p99 = |r: &rf_jobs::bench::LiveReport| percentile(&r.publish_to_redis, 99.0);
    println!(
        "\nnoisy neighbour: the quiet tenant's reading published → Redis p99 {:.0} ms alone, {:.0} ms beside a tenant {noise}: {:.2}x",
        p99(&quiet) * 1e3,
        p99(&noisy) * 1e3,
        p99(&noisy) / p99(&quiet).max(1e-9)
    );
    Ok(())
}

fn run_service_bench(config: &Config, args: &BenchArgs) -> anyhow::Result<()> {
    let options = ServiceBenchOptions {
        rooms: args.rooms,
        days: args.days,
        connections: args.connections.clone(),
        duration: args.duration.unwrap_or(Duration::from_secs(10)),
        rate: args.request_rate,
        keep: args.keep,
        reuse: args.reuse.clone(),
        only: args.endpoints.clone(),
        noisy: args.noisy,
    };
    let report = runtime()?.block_on(service_bench(
        &config.settings(),
        &config.service,
        &config.service_stores(),
        &options,
    ))?;
    println!(
        "roomflow bench --service: tenant {}, {} rooms in {} offices, {} days of history",
        report.tenant, report.rooms, report.offices, report.days
    );
    let days = report.days;
    let how = if options.reuse.is_some() {
        "kept by an earlier run".to_owned()
    } else {
        format!(
            "and every live key loaded in {:.0} s",
            report.load.as_secs_f64()
        )
    };
    println!(
        "load      {} window rows (rooms: 15m for {} days, 1h and 1d for {days}; offices: all three for {days}) {how}; {:.2} GiB on disk; merges settled after {:.0} s",
        report.rows,
        days.min(30),
        report.disk_bytes as f64 / (1u64 << 30) as f64,
        report.settle.as_secs_f64()
    );
    let mut level = None;
    for e in &report.endpoints {
        if level != Some(e.connections) {
            level = Some(e.connections);
            let load = match options.rate {
                Some(r) => format!("{r} requests/s offered; ms from request due to answer read"),
                None => "each connection sending as soon as answered; ms from request sent to answer read".into(),
            };
            println!(
                "\n{} connections, {:.0} s per endpoint, {load}; cached: answers from the response cache; uncached p95: the others",
                e.connections,
                options.duration.as_secs_f64()
            );
            println!(
                "{:<48} {:>9} {:>8} {:>8} {:>8} {:>8} {:>7} {:>13}  failures",
                "endpoint", "requests", "req/s", "p50", "p95", "p99", "cached", "uncached p95"
            );
        }
        let l = &e.latencies;
        let cached = 1.0 - e.misses.len() as f64 / (l.len() as f64).max(1.0);
        let failures: Vec<String> = e
            .failures
            .iter()
            .map(|(w, n)| format!("{n}× {w}"))
            .collect();
        let name = match e.beside_noisy {
            Some(_) => format!("{}, beside noisy", e.endpoint),
            None => e.endpoint.to_string(),
        };
        println!(
            "{:<48} {:>9} {:>8.0} {:>8.1} {:>8.1} {:>8.1} {:>6.0}% {:>13.1}  {}",
            name,
            l.len(),
            l.len() as f64 / e.elapsed.as_secs_f64().max(1e-9),
            percentile(l, 50.0),
            percentile(l, 95.0),
            percentile(l, 99.0),
            cached * 100.0,
            percentile(&e.misses, 95.0),
            if failures.is_empty() {
                "none".into()
            } else {
                failures.join(", ")
            }
        );
    }
    if let Some(flood) = options.noisy {
        println!(
            "\nnoisy neighbour: a second tenant floods {} over {flood} connections (no rate limit); the measured tenant's p95, ms",
            rf_jobs::bench::HEAVIEST.join("; ")
        );
        println!(
            "{:<34} {:>9} {:>9} {:>7} {:>14}",
            "endpoint", "alone", "beside", "ratio", "noisy answers"
        );
        for pair in report.endpoints.windows(2) {
            let [beside, alone] = pair else { continue };
            if beside.beside_noisy.is_none() || alone.beside_noisy.is_some() {
                continue;
            }
            let (a, b) = (
                percentile(&alone.latencies, 95.0),
                percentile(&beside.latencies, 95.0),
            );
            println!(
                "{:<34} {:>9.1} {:>9.1} {:>6.2}x {:>14}",
                alone.endpoint,
                a,
                b,
                b / a.max(1e-9),
                beside.noisy_answers
            );
        }
    }
    println!(
        "\nmemory    peak RSS {:.0} MiB (the service and the load generator, one process)",
        report.peak_rss as f64 / 1048576.0
    );
    Ok(())
}

fn print_live(config: &Config, args: &BenchArgs, report: &rf_jobs::bench::LiveReport) {
    let (p, s) = (&report.published, &report.run.stats);
    let ms = |l: &[f64], q: f64| percentile(l, q) * 1e3;
    println!(
        "roomflow bench --live: tenant {}, {} rooms, {} workers, event time {:.0}x the wall clock",
        report.tenant, args.rooms, config.pipeline.workers, report.speed
    );
    println!(
        "published {} readings in {:.1} s = {:.0} readings/s (asked {})",
        p.readings,
        p.elapsed.as_secs_f64(),
        p.readings as f64 / p.elapsed.as_secs_f64().max(1e-9),
        args.rate
    );
    println!(
        "consumed  {} readings; {} room rows, {} office rows, {} live keys, {} dead letters",
        s.consumed, s.room_rows, s.office_rows, s.live_keys, s.dead_letters
    );
    let l = &s.latencies;
    println!(
        "latency   reading consumed → Redis (and ClickHouse, commits) acknowledged, worst reading per epoch: p50 {:.0} ms, p95 {:.0} ms, p99 {:.0} ms, max {:.0} ms over {} epochs",
        ms(l, 50.0), ms(l, 95.0), ms(l, 99.0), ms(l, 100.0), l.len()
    );
    let r = &report.publish_to_redis;
    println!(
        "          reading published → Redis acknowledged (waiting in the broker included), oldest reading of the tenant per epoch: p50 {:.0} ms, p95 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        ms(r, 50.0), ms(r, 95.0), ms(r, 99.0), ms(r, 100.0)
    );
    let f = &report.final_delays;
    println!(
        "final     reading that closes a window published → final ClickHouse row acknowledged, beyond the allowed lateness ({:.0} ms of wall clock here): p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms over {} epochs",
        report.lateness_wall * 1e3, ms(f, 50.0), ms(f, 99.0), ms(f, 100.0), f.len()
    );
    let mib = |b: u64| b as f64 / 1048576.0;
    let samples: Vec<String> = report
        .run
        .memory
        .iter()
        .map(|(n, rss)| format!("{:.1}M: {:.0} MiB", *n as f64 / 1e6, mib(*rss)))
        .collect();
    println!(
        "memory    peak RSS {:.0} MiB (pipeline and publisher); by readings consumed: {}",
        mib(report.peak_rss),
        samples.join(", ")
    );
    if let Some((tenant, sent)) = &report.noise {
        println!(
            "noise     tenant {tenant} sent {sent} messages; {} dead letters written in all",
            s.dead_letters
        );
    }
    if let Some((read, took, finished)) = report.backfilled {
        println!(
            "backfill  read {read} records in {:.1} s = {:.0} records/s beside the live pipeline; {}",
            took.as_secs_f64(),
            read as f64 / took.as_secs_f64().max(1e-9),
            if finished {
                "it ended before the publishing did"
            } else {
                "it was still running when the publishing ended, and was stopped"
            }
        );
    }
}

fn tenant_command(config: &Config, command: TenantCommand) -> anyhow::Result<()> {
    use rf_jobs::tenant;
    let settings = config.settings();
    match command {
        TenantCommand::Create { tenants, fields } => runtime()?.block_on(async {
            let spec = fields.spec(false);
            for id in &tenants {
                let created = tenant::create(&settings, id, &spec)
                    .await
                    .with_context(|| format!("creating tenant {id}"))?;
                let subjects: Vec<String> = created
                    .schemas
                    .iter()
                    .map(|r| format!("{} (id {})", r.subject, r.id))
                    .collect();
                println!(
                    "tenant {id} in region {}: topics created {:?}, database {}, schemas {}",
                    created.config.region,
                    created.topics_created,
                    created.database,
                    subjects.join(", ")
                );
                let a = &created.analyst;
                // Shown this once: only hashes are kept.
                if let Some(password) = &a.clickhouse_password {
                    println!("  ClickHouse analyst user {} password {password} (read-only, {} only)", a.clickhouse_user, created.database);
                }
                if let Some(why) = &a.clickhouse_missing {
                    eprintln!("  no ClickHouse analyst user: {why}");
                }
                if let Some(password) = &a.redis_password {
                    println!("  Redis analyst user {} password {password} (reads {}* only)", a.redis_user, id.redis_prefix());
                }
                print_secrets(&spec, &created.config);
            }
            Ok(())
        }),
        TenantCommand::List => {
            println!("{:<40} {:<28} {:<10} {:<10} status", "tenant", "name", "tier", "region");
            for (id, entry) in tenant::list(&config.kafka)? {
                match entry {
                    Some(c) => println!(
                        "{:<40} {:<28} {:<10} {:<10} {}",
                        id.as_str(),
                        c.display_name,
                        c.tier.as_str(),
                        c.region,
                        if c.is_deleted() { "deleted" } else { "active" }
                    ),
                    None => println!(
                        "{:<40} {:<28} {:<10} {:<10} active (no registry entry)",
                        id.as_str(),
                        "-", "standard", config.regions.home
                    ),
                }
            }
            Ok(())
        }
        TenantCommand::Describe { tenant, json } => {
            let mut entry = runtime()?.block_on(tenant::opened(&settings, &tenant))?;
            for target in &mut entry.alert_targets {
                target.url = target.masked_url();
                if target.secret.is_some() {
                    target.secret = Some("***".into());
                }
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&entry)?);
            } else {
                print!("{}", render_tenant(&settings, &tenant, &entry));
            }
            Ok(())
        }
        TenantCommand::Update {
            tenant,
            fields,
            clear_alerts,
        } => runtime()?.block_on(async {
            let spec = fields.spec(clear_alerts);
            let entry = tenant::update(&settings, &tenant, &spec).await?;
            print!("{}", render_tenant(&settings, &tenant, &entry));
            print_secrets(&spec, &entry);
            Ok(())
        }),
        TenantCommand::Delete { tenant } => runtime()?.block_on(async {
            let entry = tenant::delete(&settings, &tenant).await?;
            println!(
                "tenant {tenant} deleted at {}; pipelines stop serving it at their next start, and its data is erased after the grace period",
                format_ms(entry.deleted_ms.unwrap_or_default())
            );
            Ok(())
        }),
        TenantCommand::Apikey(command) => runtime()?.block_on(async {
            use rf_jobs::apikey;
            let entry = tenant::entry(&settings, match &command {
                ApikeyCommand::Create { tenant, .. }
                | ApikeyCommand::List { tenant }
                | ApikeyCommand::Revoke { tenant, .. } => tenant,
            })?;
            if entry.is_deleted() {
                anyhow::bail!("tenant {} is deleted", entry.tenant);
            }
            match command {
                ApikeyCommand::Create { tenant, name } => {
                    let (key, listed) = apikey::create(&config.clickhouse, &tenant, &name).await?;
                    println!("{key}");
                    eprintln!(
                        "API key {} ({}) for tenant {tenant}: shown this once; only its hash is kept",
                        listed.key_id, listed.name
                    );
                }
                ApikeyCommand::List { tenant } => {
                    println!("{:<14} {:<20} {:<22} status", "key id", "created", "name");
                    for k in apikey::list(&config.clickhouse, &tenant).await? {
                        let status = if k.revoked == 1 {
                            format!("revoked {}", format_ms(i64::from(k.revoked_at) * 1000))
                        } else {
                            "active".into()
                        };
                        println!(
                            "{:<14} {:<20} {:<22} {status}",
                            k.key_id,
                            format_ms(i64::from(k.created_at) * 1000),
                            k.name
                        );
                    }
                }
                ApikeyCommand::Revoke { tenant, key_id } => {
                    let k = apikey::revoke(&config.clickhouse, &tenant, &key_id).await?;
                    println!(
                        "API key {} of tenant {tenant} revoked at {}",
                        k.key_id,
                        format_ms(i64::from(k.revoked_at) * 1000)
                    );
                }
            }
            Ok(())
        }),
        TenantCommand::TestAlerts { tenant } => {
            use rf_sinks::webhook::{Alert, Outcome, Target};
            let entry = runtime()?.block_on(tenant::opened(&settings, &tenant))?;
            if entry.alert_targets.is_empty() {
                anyhow::bail!("tenant {tenant} has no alert targets: add some with tenant update --alert");
            }
            let delivery = config.alerts.delivery()?;
            let alert = Alert::test(&tenant, &config.alerts.service_url);
            let now = chrono::Utc::now().timestamp();
            let mut failed = 0;
            for t in &entry.alert_targets {
                let target = Target {
                    kind: t.kind,
                    url: rf_sinks::Secret::new(t.url.clone()),
                    secret: rf_sinks::Secret::new(t.secret.clone().unwrap_or_default()),
                };
                let outcome = match delivery.send(&target, &alert, now) {
                    Outcome::Delivered => "delivered".to_string(),
                    Outcome::Retry { reason, .. } => format!("failed, would be retried: {reason}"),
                    Outcome::Rejected { reason } => format!("refused: {reason}"),
                };
                failed += usize::from(!outcome.starts_with("delivered"));
                let disabled = if t.disabled.is_some() { " (disabled)" } else { "" };
                println!("{} {}{disabled}: {outcome}", t.kind.label(), t.masked_url());
            }
            if failed > 0 {
                anyhow::bail!("{failed} of {} alert targets did not acknowledge", entry.alert_targets.len());
            }
            Ok(())
        }
        TenantCommand::ResidencyReport { tenant } => runtime()?.block_on(async {
            let report = tenant::residency_report(&settings, &tenant).await?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            if !report.violations.is_empty() {
                anyhow::bail!(
                    "tenant {tenant}'s data was found outside region {}: {}",
                    report.region,
                    report.violations.join("; ")
                );
            }
            Ok(())
        }),
    }
}

fn render_tenant(settings: &Settings, tenant: &TenantId, c: &rf_schemas::TenantConfig) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let region = settings.region(&c.region);
    let _ = writeln!(s, "tenant      {tenant}");
    let _ = writeln!(s, "name        {}", c.display_name);
    let _ = writeln!(
        s,
        "industry    {}",
        if c.industry.is_empty() {
            "-"
        } else {
            &c.industry
        }
    );
    let _ = writeln!(s, "tier        {}", c.tier.as_str());
    match &region {
        Some(r) => {
            let _ = writeln!(
                s,
                "region      {} (brokers {}, ClickHouse {})",
                c.region, r.brokers, r.clickhouse.url
            );
        }
        None => {
            let _ = writeln!(s, "region      {} (not configured here)", c.region);
        }
    }
    let _ = writeln!(s, "retention   {} days", c.retention_days);
    if c.alert_targets.is_empty() {
        let _ = writeln!(s, "alerts      -");
    }
    for t in &c.alert_targets {
        let signed = if t.secret.is_some() { ", signed" } else { "" };
        let state = match &t.disabled {
            Some(d) => format!(
                " DISABLED since {} ({}); add it again once it works",
                format_ms(d.at_ms),
                d.reason
            ),
            None => String::new(),
        };
        let _ = writeln!(
            s,
            "alerts      {} {} (id {}{signed}){state}",
            t.kind.label(),
            t.masked_url(),
            t.id()
        );
    }
    let rules: Vec<String> = c.alert_rules.iter().map(ToString::to_string).collect();
    let _ = writeln!(
        s,
        "alert rules {}",
        if rules.is_empty() {
            "-".into()
        } else {
            rules.join(", ")
        }
    );
    let _ = writeln!(s, "created     {}", format_ms(c.created_ms));
    let _ = writeln!(s, "updated     {}", format_ms(c.updated_ms));
    if let Some(at) = c.deleted_ms {
        let _ = writeln!(s, "deleted     {}", format_ms(at));
    }
    let _ = writeln!(
        s,
        "topics      {}, {}, {}",
        tenant.readings_topic(),
        tenant.rooms_topic(),
        tenant.deadletter_topic()
    );
    let _ = writeln!(s, "database    {}", tenant.clickhouse_db());
    let _ = writeln!(s, "redis keys  {}*", tenant.redis_prefix());
    s
}

/// The signing secrets of the webhooks just given: their receivers need them to verify.
fn print_secrets(spec: &rf_jobs::tenant::TenantSpec, entry: &rf_schemas::TenantConfig) {
    let given = spec.alert_targets.iter().flatten();
    for t in given.filter(|t| t.kind == rf_schemas::tenant::AlertKind::Webhook) {
        let secret = entry
            .alert_targets
            .iter()
            .find(|e| e.url == t.url)
            .and_then(|e| e.secret.as_deref());
        if let Some(secret) = secret {
            println!(
                "  webhook {} signing secret {secret} (x-roomflow-signature: v1=HMAC-SHA256 of \"<x-roomflow-timestamp>.<body>\")",
                t.masked_url()
            );
        }
    }
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

fn render_inspection(tenant: &TenantId, found: &rf_jobs::deadletter::Inspection) -> String {
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

/// Whole UTC days from `--from` up to `--to` (default: the 28 days before today).
fn report_days(from: Option<&str>, to: Option<&str>) -> anyhow::Result<(i64, i64)> {
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

fn replay_dead_letters(
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

/// A backfill's range, ms: `to` defaults to now, and neither may be in the future.
fn backfill_range(from: &str, to: Option<&str>) -> anyhow::Result<(i64, i64)> {
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

fn job_command(config: &Config, command: JobCommand) -> anyhow::Result<()> {
    use rf_jobs::queue::{self, JobKind};
    let kafka = &config.kafka;
    match command {
        JobCommand::Submit { kind, follow } => {
            let (tenant, kind) = match kind {
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
            };
            if kind != JobKind::Erase {
                rf_jobs::tenant::entry(&config.settings(), &tenant)?;
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

fn state_of(tail: &rf_jobs::queue::StatusTail, s: &rf_jobs::queue::JobStatus) -> String {
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
fn follow_job(kafka: &rf_pipelines::KafkaConfig, id: &str) -> anyhow::Result<()> {
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

fn write_report(config: &Config, args: ReportArgs) -> anyhow::Result<()> {
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

fn format_day(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map_or_else(|| ms.to_string(), |t| t.format("%Y-%m-%d").to_string())
}

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
