//! Benchmarks: `roomflow bench`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::Args;
use rf_bench::{
    bench, export, live, percentile, replay, service_bench, BenchOptions, LiveOptions, Noise,
    ServiceBenchOptions,
};
use rf_schemas::TenantId;

use crate::config::Config;
use crate::{parse_duration, runtime};

#[derive(Args)]
pub(crate) struct BenchArgs {
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
    pub(crate) service: bool,
    /// Gateway mode: publish a throwaway tenant's --rooms rooms, run the query service
    /// (its ingest endpoint) and the pipeline in this process, post JSON batches of
    /// --batch readings over --senders keep-alive connections for --duration (default
    /// 30s), and report readings/s accepted, request latency and the delay from the
    /// gateway's acknowledgement to Redis.
    #[arg(long, conflicts_with_all = ["live", "files", "readings", "service"])]
    pub(crate) gateway: bool,
    /// Gateway mode: concurrent connections posting batches.
    #[arg(long, default_value_t = 16, requires = "gateway")]
    senders: usize,
    /// Gateway mode: readings in one request.
    #[arg(long, default_value_t = 500, requires = "gateway")]
    batch: usize,
    /// Gateway mode: offer this many readings a second in all (spread over the senders)
    /// instead of sending as fast as answered.
    #[arg(long, value_name = "PER_SEC", requires = "gateway")]
    gateway_rate: Option<u64>,
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

pub(crate) fn run_bench(mut config: Config, args: BenchArgs) -> anyhow::Result<()> {
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
    if args.gateway {
        return run_gateway_bench(&config, &args);
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
        "memory    peak RSS {:.0} MiB during the pipeline run ({:.0} MiB when it started, left by loading the backlog in this process)",
        mib(report.peak_rss),
        mib(report.start_rss)
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

pub(crate) fn run_files_bench(config: &Config, args: &BenchArgs, dir: &Path) -> anyhow::Result<()> {
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

pub(crate) fn run_live_bench(config: &Config, args: &BenchArgs) -> anyhow::Result<()> {
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
    let p99 = |r: &rf_bench::LiveReport| percentile(&r.publish_to_redis, 99.0);
    println!(
        "\nnoisy neighbour: the quiet tenant's reading published → Redis p99 {:.0} ms alone, {:.0} ms beside a tenant {noise}: {:.2}x",
        p99(&quiet) * 1e3,
        p99(&noisy) * 1e3,
        p99(&noisy) / p99(&quiet).max(1e-9)
    );
    Ok(())
}

fn run_gateway_bench(config: &Config, args: &BenchArgs) -> anyhow::Result<()> {
    let options = rf_bench::GatewayOptions {
        rooms: args.rooms,
        senders: args.senders,
        batch: args.batch,
        rate: args.gateway_rate,
        duration: args.duration.unwrap_or(Duration::from_secs(30)),
        keep: args.keep,
    };
    let report = runtime()?.block_on(rf_bench::gateway_bench(
        &config.settings(),
        &config.service,
        &config.service_stores(),
        &options,
    ))?;
    let secs = report.elapsed.as_secs_f64().max(1e-9);
    let ms = |v: &[f64], p: f64| percentile(v, p);
    let offered = match args.gateway_rate {
        Some(rate) => format!("{rate} readings/s offered"),
        None => "each as fast as answered".into(),
    };
    println!(
        "roomflow bench --gateway: tenant {}, {} rooms, {} senders posting {} readings a request ({offered}) for {:.0} s",
        report.tenant, args.rooms, args.senders, args.batch, secs
    );
    println!(
        "gateway   {} readings accepted in {} requests = {:.0} readings/s ({:.0} requests/s); request p50 {:.1} ms, p95 {:.1} ms, p99 {:.1} ms",
        report.accepted,
        report.requests,
        report.accepted as f64 / secs,
        report.requests as f64 / secs,
        ms(&report.latencies, 50.0),
        ms(&report.latencies, 95.0),
        ms(&report.latencies, 99.0)
    );
    println!(
        "pipeline  {} readings consumed; acknowledged by the gateway → in Redis p50 {:.0} ms, p95 {:.0} ms, p99 {:.0} ms over {} epochs",
        report.run.stats.consumed,
        ms(&report.ack_to_redis, 50.0),
        ms(&report.ack_to_redis, 95.0),
        ms(&report.ack_to_redis, 99.0),
        report.ack_to_redis.len()
    );
    if !report.failures.is_empty() {
        println!(
            "failures  {} (first: {})",
            report.failures.len(),
            report.failures[0]
        );
    }
    println!(
        "memory    peak RSS {:.0} MiB (service, pipeline and senders, one process)",
        report.peak_rss as f64 / 1048576.0
    );
    Ok(())
}

pub(crate) fn run_service_bench(config: &Config, args: &BenchArgs) -> anyhow::Result<()> {
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
            rf_bench::HEAVIEST.join("; ")
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

pub(crate) fn print_live(config: &Config, args: &BenchArgs, report: &rf_bench::LiveReport) {
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
