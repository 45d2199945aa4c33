//! `roomflow bench --service`: the query service over a portfolio with history. Loads a
//! throwaway tenant of `rooms` rooms (250 to an office) with `days` of windows into
//! ClickHouse and their live occupancy into Redis, starts the service in this process,
//! then holds each endpoint under `connections` concurrent keep-alive connections, each
//! sending its next request as soon as the last is answered, and reports latency
//! percentiles per endpoint.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use futures_util::{stream, StreamExt, TryStreamExt};
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use indicatif::{ProgressBar, ProgressStyle};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::Deserialize;

use rf_pipelines::metrics::peak_rss_bytes;
use rf_pipelines::Settings;
use rf_schemas::{TenantId, Tier};
use rf_service::{ServiceConfig, Stores};

use crate::{drop_tenant, reset_peak_rss, throwaway_tenant};
use rf_jobs::JobError;

/// Rooms to an office: 50,000 rooms make the 200 offices of a large customer.
const ROOMS_PER_OFFICE: usize = 250;
/// Rooms on a floor.
const ROOMS_PER_FLOOR: usize = 25;
/// How long `15m` room windows are kept (the retention default of the other
/// granularities is longer than any benchmark's history).
const QUARTER_HOUR_DAYS: u32 = 30;
/// Rows per `INSERT … SELECT`, so the load shows progress.
const ROWS_PER_INSERT: u64 = 5_000_000;

/// The benchmark's shape.
#[derive(Clone, Debug)]
pub struct ServiceBenchOptions {
    /// Rooms of the portfolio.
    pub rooms: usize,
    /// Days of history.
    pub days: u32,
    /// Concurrent connections, one run of every endpoint for each.
    pub connections: Vec<usize>,
    /// How long each endpoint is held at each connection count.
    pub duration: Duration,
    /// Requests a second offered to each endpoint, spread evenly over the connections,
    /// with latency counted from when a request was due (so a slow answer is not hidden
    /// by the requests it delayed); `None`: each connection sends its next request as
    /// soon as the last is answered, which measures capacity.
    pub rate: Option<u64>,
    /// Keep the throwaway tenant's database, keys and topics afterwards.
    pub keep: bool,
    /// Measure a tenant kept by an earlier run instead of loading one; its portfolio
    /// (rooms, days, newest window) is read from its data, and it is kept again.
    pub reuse: Option<TenantId>,
    /// Hold only the endpoints whose name contains one of these (all when empty).
    pub only: Vec<String>,
    /// Hold every endpoint a second time while a second tenant, with a portfolio of the
    /// same size, floods the heaviest endpoints over this many connections: how much a
    /// noisy neighbour slows the measured tenant.
    pub noisy: Option<usize>,
}

/// One endpoint held at one connection count.
#[derive(Debug)]
pub struct EndpointReport {
    /// What was asked.
    pub endpoint: &'static str,
    /// Concurrent connections.
    pub connections: usize,
    /// From the first request to the last answer.
    pub elapsed: Duration,
    /// Milliseconds to every successful answer.
    pub latencies: Vec<f64>,
    /// Milliseconds to the successful answers not served from the response cache.
    pub misses: Vec<f64>,
    /// Answers that were not a success, by status (or connection error), with counts.
    pub failures: BTreeMap<String, u64>,
    /// Connections of a second tenant flooding the heaviest endpoints meanwhile, if any.
    pub beside_noisy: Option<usize>,
    /// The noisy tenant's answers meanwhile (successful ones).
    pub noisy_answers: u64,
}

/// What the benchmark measured.
#[derive(Debug)]
pub struct ServiceBenchReport {
    /// The throwaway tenant.
    pub tenant: TenantId,
    /// Rooms and offices of its portfolio.
    pub rooms: usize,
    /// Offices.
    pub offices: usize,
    /// Window rows loaded into ClickHouse.
    pub rows: u64,
    /// How long loading took (zero when reused).
    pub load: Duration,
    /// How long ClickHouse then took to finish merging the tenant's parts: the
    /// endpoints are measured on a quiet server.
    pub settle: Duration,
    /// Days of history.
    pub days: u32,
    /// The tenant's database on disk, bytes.
    pub disk_bytes: u64,
    /// Every endpoint at every connection count.
    pub endpoints: Vec<EndpointReport>,
    /// Peak resident memory of this process (the service and the load generator)
    /// while the endpoints were held, bytes.
    pub peak_rss: u64,
}

/// Runs the benchmark: `service` as configured, but with the benchmark tenant's tier
/// (enterprise) allowed every request, so the limiter still runs but never refuses.
pub async fn service_bench(
    settings: &Settings,
    service: &ServiceConfig,
    stores: &Stores,
    options: &ServiceBenchOptions,
) -> Result<ServiceBenchReport, JobError> {
    if options.rooms == 0 || options.days == 0 || options.connections.contains(&0) {
        return Err(JobError::Invalid(
            "--rooms, --days and every --connections must be at least 1".into(),
        ));
    }
    if let Some(unknown) = options
        .only
        .iter()
        .find(|o| !ENDPOINTS.iter().any(|e| e.name.contains(o.as_str())))
    {
        let names: Vec<&str> = ENDPOINTS.iter().map(|e| e.name).collect();
        return Err(JobError::Invalid(format!(
            "--endpoints: no endpoint is named like '{unknown}'; they are: {}",
            names.join("; ")
        )));
    }
    if let Some(tenant) = &options.reuse {
        let clickhouse = rf_sinks::clickhouse::client(&settings.clickhouse);
        let portfolio = Portfolio::of(&clickhouse, tenant).await?;
        if options.noisy.is_some() {
            return Err(JobError::Invalid(
                "--noisy loads a second tenant: it does not go with --reuse".into(),
            ));
        }
        return measure(settings, service, stores, options, &portfolio, tenant, None).await;
    }
    let portfolio = Portfolio::new(options.rooms, options.days);
    let spec = rf_jobs::tenant::TenantSpec {
        display_name: Some("roomflow bench (service)".into()),
        tier: Some(Tier::Enterprise),
        ..Default::default()
    };
    let tenant = throwaway_tenant(settings, "svcbench", spec.clone()).await?;
    let noisy = match options.noisy {
        Some(_) => Some(throwaway_tenant(settings, "svcnoisy", spec).await?),
        None => None,
    };
    let outcome = measure(
        settings,
        service,
        stores,
        options,
        &portfolio,
        &tenant,
        noisy.as_ref(),
    )
    .await;
    if !options.keep {
        drop_tenant(settings, &tenant).await?;
    }
    if let Some(noisy) = &noisy {
        drop_tenant(settings, noisy).await?;
    }
    outcome
}

async fn measure(
    settings: &Settings,
    service: &ServiceConfig,
    stores: &Stores,
    options: &ServiceBenchOptions,
    portfolio: &Portfolio,
    tenant: &TenantId,
    noisy: Option<&TenantId>,
) -> Result<ServiceBenchReport, JobError> {
    let started = Instant::now();
    let clickhouse = rf_sinks::clickhouse::client(&settings.clickhouse);
    let rows = if options.reuse.is_some() {
        portfolio.rows(&clickhouse, tenant).await?
    } else {
        let rows = portfolio.load(&clickhouse, tenant).await?;
        portfolio.live(&clickhouse, &settings.redis, tenant).await?;
        rows
    };
    if let Some(noisy) = noisy {
        portfolio.load(&clickhouse, noisy).await?;
        portfolio.live(&clickhouse, &settings.redis, noisy).await?;
        settled(&clickhouse, noisy).await?;
    }
    let load = started.elapsed();
    let settle = settled(&clickhouse, tenant).await?;
    let disk_bytes = clickhouse
        .query("SELECT sum(bytes_on_disk) FROM system.parts WHERE database = ? AND active")
        .bind(tenant.clickhouse_db())
        .fetch_one::<u64>()
        .await
        .map_err(ch)?;
    let (key, listed) = rf_jobs::apikey::create(
        &settings.clickhouse,
        tenant,
        "bench",
        rf_schemas::tenant::Role::Analyst,
    )
    .await?;
    let noisy_key = match noisy {
        Some(t) => Some(
            rf_jobs::apikey::create(
                &settings.clickhouse,
                t,
                "bench",
                rf_schemas::tenant::Role::Analyst,
            )
            .await?
            .0,
        ),
        None => None,
    };

    let mut config = service.clone();
    config
        .rate_limits
        .insert("enterprise".into(), crate::unlimited());
    let (listener, addr) = crate::loopback().await?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let stores = stores.clone();
    let server = tokio::spawn(async move {
        rf_service::serve_on(listener, &config, &stores, async {
            let _ = stopped.await;
        })
        .await
    });

    reset_peak_rss();
    let mut endpoints = Vec::new();
    for &connections in &options.connections {
        let chosen = ENDPOINTS.iter().filter(|e| {
            options.only.is_empty() || options.only.iter().any(|o| e.name.contains(o.as_str()))
        });
        for endpoint in chosen {
            if let (Some(flood), Some(noisy_key)) = (options.noisy, noisy_key.as_deref()) {
                // A run to warm what the service keeps in memory (not reported), then one
                // beside a tenant sending its heaviest requests as fast as they are
                // answered, then one alone; each on other rooms and ranges.
                let pace = Pace::new(options.duration, options.rate, connections);
                hold(addr, &key, endpoint, portfolio, connections, pace, 2 << 32).await;
                let pace = Pace::new(options.duration, options.rate, connections);
                let flooding = Pace::new(options.duration, None, flood);
                let (mut report, noise) = tokio::join!(
                    hold(addr, &key, endpoint, portfolio, connections, pace, 1 << 32),
                    flood_heaviest(addr, noisy_key, portfolio, flood, flooding),
                );
                report.beside_noisy = Some(flood);
                report.noisy_answers = noise;
                endpoints.push(report);
            }
            let pace = Pace::new(options.duration, options.rate, connections);
            let report = hold(addr, &key, endpoint, portfolio, connections, pace, 0);
            endpoints.push(report.await);
        }
    }
    let peak_rss = peak_rss_bytes();
    let _ = stop.send(());
    server
        .await
        .map_err(|e| JobError::Invalid(format!("service task failed: {e}")))?
        .map_err(JobError::Invalid)?;
    if options.reuse.is_some() {
        rf_jobs::apikey::revoke(&settings.clickhouse, tenant, &listed.key_id).await?;
    }
    Ok(ServiceBenchReport {
        tenant: tenant.clone(),
        rooms: portfolio.rooms,
        offices: portfolio.offices,
        rows,
        load,
        settle,
        days: portfolio.days,
        disk_bytes,
        endpoints,
        peak_rss,
    })
}

/// The benchmark tenant's offices and rooms: room `r` is `room-<r>` in office
/// `office-<r / 250>`, on floor `(r mod 250) / 25`.
#[derive(Debug)]
struct Portfolio {
    rooms: usize,
    offices: usize,
    days: u32,
    /// The start of the current hour, seconds: the newest windows end here.
    now: i64,
}

impl Portfolio {
    fn new(rooms: usize, days: u32) -> Self {
        let now = chrono::Utc::now().timestamp();
        Self {
            rooms,
            offices: rooms.div_ceil(ROOMS_PER_OFFICE),
            days,
            now: now - now % 3600,
        }
    }

    /// The portfolio of a tenant an earlier run kept: its rooms, and its days of history
    /// up to its newest window.
    async fn of(client: &clickhouse::Client, tenant: &TenantId) -> Result<Self, JobError> {
        let db = tenant.clickhouse_db();
        let (rooms, first, last) = client
            .query(&format!(
                "SELECT (SELECT count() FROM {db}.rooms), toInt64(min(window_start)), toInt64(max(window_end)) \
                 FROM {db}.office_utilization WHERE granularity = '1d'"
            ))
            .fetch_one::<(u64, i64, i64)>()
            .await
            .map_err(|e| JobError::Invalid(format!("tenant {tenant} has no benchmark data to reuse: {e}")))?;
        if rooms == 0 || last <= first {
            return Err(JobError::Invalid(format!(
                "tenant {tenant} has no benchmark data to reuse (keep one with --keep)"
            )));
        }
        Ok(Self {
            rooms: rooms as usize,
            offices: (rooms as usize).div_ceil(ROOMS_PER_OFFICE),
            days: ((last - first) / 86_400) as u32,
            now: last,
        })
    }

    /// Window rows of the tenant's room and office tables.
    async fn rows(&self, client: &clickhouse::Client, tenant: &TenantId) -> Result<u64, JobError> {
        let db = tenant.clickhouse_db();
        client
            .query(&format!(
                "SELECT (SELECT count() FROM {db}.room_utilization) + (SELECT count() FROM {db}.office_utilization)"
            ))
            .fetch_one::<u64>()
            .await
            .map_err(ch)
    }

    /// Writes the rooms' metadata and their windows, and the offices' windows, with
    /// ClickHouse generating the rows. Returns how many window rows there are.
    async fn load(&self, client: &clickhouse::Client, tenant: &TenantId) -> Result<u64, JobError> {
        let db = tenant.clickhouse_db();
        client
            .query(&self.rooms_sql(&db))
            .execute()
            .await
            .map_err(ch)?;
        let mut inserts = Vec::new();
        for (label, step) in [("15m", 900), ("1h", 3600), ("1d", 86_400)] {
            let days = if label == "15m" {
                self.days.min(QUARTER_HOUR_DAYS)
            } else {
                self.days
            };
            // A slice of about a month at a time, every room's windows in it, in key
            // order: each insert fills one or two monthly partitions, cheap to merge.
            let windows = u64::from(days) * 86_400 / step;
            let per_slice = (30 * 86_400 / step).clamp(1, windows);
            let oldest = self.window_end(step) - (windows * step) as i64;
            let mut done = 0;
            while done < windows {
                let slice = per_slice.min(windows - done);
                let start = oldest + (done * step) as i64;
                let per_insert = (ROWS_PER_INSERT / slice).max(1);
                let mut first = 0;
                while first < self.rooms as u64 {
                    let count = per_insert.min(self.rooms as u64 - first);
                    let sql =
                        self.room_windows_sql(&db, (label, step), (start, slice), first, count);
                    inserts.push((sql, count * slice));
                    first += count;
                }
                done += slice;
            }
            let windows = u64::from(self.days) * 86_400 / step;
            inserts.push((
                self.office_windows_sql(&db, label, step, windows),
                self.offices as u64 * windows,
            ));
        }
        let total: u64 = inserts.iter().map(|(_, rows)| rows).sum();
        let bar = ProgressBar::new(total).with_style(
            ProgressStyle::with_template(
                "loading history {bar:30} {human_pos}/{human_len} rows, {per_sec}, eta {eta}",
            )
            .expect("a valid template"),
        );
        // Two at a time: ClickHouse generates one insert on one core.
        stream::iter(inserts)
            .map(|(sql, rows)| {
                let bar = bar.clone();
                async move {
                    client.query(&sql).execute().await.map_err(ch)?;
                    bar.inc(rows);
                    Ok::<_, JobError>(())
                }
            })
            .buffer_unordered(2)
            .try_collect::<Vec<()>>()
            .await?;
        // The daily table, as the pipeline writes it from final day windows (the
        // generated days are UTC days).
        client
            .query(&format!(
                "INSERT INTO {db}.room_days SELECT toDate(window_start), office_id, room_id, \
                 window_start, window_end, samples, avg_people, peak_people, occupied_ratio, \
                 capacity, utilization, version FROM {db}.room_utilization WHERE granularity = '1d'"
            ))
            .execute()
            .await
            .map_err(ch)?;
        bar.finish_and_clear();
        Ok(total)
    }

    fn rooms_sql(&self, db: &str) -> String {
        format!(
            "INSERT INTO {db}.rooms SELECT concat('room-', toString(number)), {office}, \
             concat('Office ', toString(intDiv(number, {ROOMS_PER_OFFICE}))), \
             ['emea', 'amer', 'apac'][o % 3 + 1], ['GB', 'US', 'SG'][o % 3 + 1], \
             ['Europe/London', 'America/New_York', 'Asia/Singapore'][o % 3 + 1], \
             toInt32(intDiv(number % {ROOMS_PER_OFFICE}, {ROOMS_PER_FLOOR})), \
             concat('Room ', toString(number)), \
             CAST(['DESK', 'MEETING', 'FOCUS', 'OPEN_SPACE', 'COLLAB'][number % 5 + 1] AS \
             Enum8('DESK' = 1, 'MEETING' = 2, 'FOCUS' = 3, 'OPEN_SPACE' = 4, 'COLLAB' = 5, 'OTHER' = 6)), \
             toUInt32({capacity}), toFloat32({capacity} * 3), toFloat64({capacity} * 450), \
             toDateTime({from}), toUInt64(1) \
             FROM (SELECT number, intDiv(number, {ROOMS_PER_OFFICE}) AS o FROM numbers({rooms}))",
            office = office_id("number"),
            capacity = capacity("number"),
            from = self.now - i64::from(self.days) * 86_400,
            rooms = self.rooms,
        )
    }

    /// `count` rooms from `first`, each with `windows` windows of (`label`, `step`
    /// seconds) from `start`: busy on weekday office hours, each room to its own degree.
    fn room_windows_sql(
        &self,
        db: &str,
        (label, step): (&str, u64),
        (start, windows): (i64, u64),
        first: u64,
        count: u64,
    ) -> String {
        format!(
            "INSERT INTO {db}.room_utilization SELECT '{label}', {office}, concat('room-', toString(r)), \
             toDateTime(t), toDateTime(t + {step}), toUInt32({samples}), u * cap, \
             toUInt32(ceil(u * cap * 1.3)), least(1., u * 1.4), toUInt32(cap), u, \
             toUInt8(1), toUInt64(1), now() \
             FROM (SELECT r, t, cap, {u} AS u FROM (SELECT {first} + intDiv(number, {windows}) AS r, \
             {start} + (number % {windows}) * {step} AS t, {capacity} AS cap FROM numbers({rows})))",
            office = office_id("r"),
            samples = step / 60,
            u = utilization("r", step),
            capacity = capacity("r"),
            rows = count * windows,
        )
    }

    /// Every office with the last `windows` windows of `step` seconds.
    fn office_windows_sql(&self, db: &str, label: &str, step: u64, windows: u64) -> String {
        let start = self.window_end(step) - (windows * step) as i64;
        format!(
            "INSERT INTO {db}.office_utilization SELECT '{label}', concat('office-', toString(o)), \
             toDateTime(t), toDateTime(t + {step}), toUInt32({ROOMS_PER_OFFICE}), u * cap, \
             ceil(u * cap * 1.3), toUInt32(cap), u, toUInt8(1), toUInt64(1), now() \
             FROM (SELECT o, t, cap, {u} AS u FROM (SELECT intDiv(number, {windows}) AS o, \
             {start} + (number % {windows}) * {step} AS t, {ROOMS_PER_OFFICE} * 6 AS cap \
             FROM numbers({rows})))",
            u = utilization("o", step),
            rows = self.offices as u64 * windows,
        )
    }

    /// Where the newest window of `step` seconds ends: now's hour, or today's midnight.
    fn window_end(&self, step: u64) -> i64 {
        self.now - self.now % step as i64
    }

    /// Every room's live hash, and every office's over its rooms, with the capacity of
    /// the metadata just written.
    async fn live(
        &self,
        client: &clickhouse::Client,
        redis: &rf_sinks::config::RedisConfig,
        tenant: &TenantId,
    ) -> Result<(), JobError> {
        #[derive(clickhouse::Row, Deserialize)]
        struct Room {
            room_id: String,
            office_id: String,
            capacity: u32,
        }
        let rooms: Vec<Room> = client
            .query(&format!(
                "SELECT room_id, office_id, capacity FROM {}.rooms",
                tenant.clickhouse_db()
            ))
            .fetch_all()
            .await
            .map_err(ch)?;
        let rerr = |e: redis::RedisError| JobError::Invalid(format!("redis: {e}"));
        let mut conn = rf_sinks::redis::connect(redis)
            .await
            .map_err(|e| JobError::Invalid(e.to_string()))?;
        let ts = self.now * 1000;
        let mut rng = SmallRng::seed_from_u64(7);
        let mut offices: HashMap<&str, (u64, u64)> = HashMap::new();
        for chunk in rooms.chunks(1000) {
            let mut pipe = redis::pipe();
            for room in chunk {
                let people = rng.random_range(0..=room.capacity);
                let office = offices.entry(&room.office_id).or_default();
                office.0 += u64::from(people);
                office.1 += u64::from(room.capacity);
                pipe.hset_multiple(
                    rf_sinks::redis::room_key(tenant, &room.room_id),
                    &[
                        ("office_id", room.office_id.clone()),
                        ("people", people.to_string()),
                        ("ts", ts.to_string()),
                        ("capacity", room.capacity.to_string()),
                        ("utilization", ratio(people.into(), room.capacity.into())),
                    ],
                )
                .ignore();
            }
            pipe.query_async::<()>(&mut conn).await.map_err(rerr)?;
        }
        let mut pipe = redis::pipe();
        for (office, (people, capacity)) in &offices {
            pipe.hset_multiple(
                rf_sinks::redis::office_key(tenant, office),
                &[
                    ("people", people.to_string()),
                    ("capacity", capacity.to_string()),
                    ("rooms_reporting", ROOMS_PER_OFFICE.to_string()),
                    ("utilization", ratio(*people, *capacity)),
                    ("ts", ts.to_string()),
                ],
            )
            .ignore();
        }
        pipe.query_async::<()>(&mut conn).await.map_err(rerr)
    }

    fn room(&self, rng: &mut SmallRng) -> usize {
        rng.random_range(0..self.rooms)
    }

    fn office(&self, rng: &mut SmallRng) -> usize {
        rng.random_range(0..self.offices)
    }

    /// One of `office`'s floors (the last office may have fewer rooms).
    fn floor(&self, office: usize, rng: &mut SmallRng) -> usize {
        let rooms = (self.rooms - office * ROOMS_PER_OFFICE).min(ROOMS_PER_OFFICE);
        rng.random_range(0..rooms.div_ceil(ROOMS_PER_FLOOR))
    }

    /// A range of `days` days ending at a random midnight of the history (and at most
    /// `within` days back), as `from=…&to=…`.
    fn range(&self, rng: &mut SmallRng, days: u32, within: u32) -> String {
        let today = self.now - self.now % 86_400;
        let back = i64::from(within.min(self.days).saturating_sub(days));
        let to = today - rng.random_range(0..=back) * 86_400;
        let from = to - i64::from(days) * 86_400;
        format!("from={}&to={}", iso(from), iso(to))
    }

    /// `from_date=…&to_date=…`: `days` local days ending at a random date of the history.
    fn dates(&self, rng: &mut SmallRng, days: u32) -> String {
        let today = self.now - self.now % 86_400;
        let back = i64::from(self.days.saturating_sub(days));
        let to = today - rng.random_range(0..=back) * 86_400;
        let from = to - i64::from(days) * 86_400;
        format!("from_date={}&to_date={}", &iso(from)[..10], &iso(to)[..10])
    }

    /// `to=` a random midnight at least `days` into the history.
    fn to(&self, rng: &mut SmallRng, days: u32) -> String {
        let today = self.now - self.now % 86_400;
        let back = i64::from(self.days.saturating_sub(days));
        iso(today - rng.random_range(0..=back) * 86_400)
    }
}

/// Waits until ClickHouse has no merge of `tenant`'s parts running (loading leaves many
/// parts behind), then compacts its closed months as the daily retention job does;
/// returns how long that took.
async fn settled(client: &clickhouse::Client, tenant: &TenantId) -> Result<Duration, JobError> {
    let started = Instant::now();
    let bar =
        ProgressBar::new_spinner().with_message("waiting for ClickHouse to merge the history");
    bar.enable_steady_tick(Duration::from_millis(200));
    loop {
        let merging = client
            .query("SELECT count() FROM system.merges WHERE database = ?")
            .bind(tenant.clickhouse_db())
            .fetch_one::<u64>()
            .await
            .map_err(ch)?;
        if merging == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let now = rf_schemas::unix_ms();
    for (table, month, _) in rf_jobs::retention::compactions(client, tenant, now).await? {
        bar.set_message(format!(
            "compacting {table} {month}, as the daily retention does"
        ));
        rf_jobs::retention::compact(client, tenant, &table, month).await?;
    }
    bar.finish_and_clear();
    Ok(started.elapsed())
}

/// ClickHouse's office id of room `r` (an expression).
fn office_id(r: &str) -> String {
    format!("concat('office-', toString(intDiv({r}, {ROOMS_PER_OFFICE})))")
}

/// Room `r`'s capacity, 1 to 12 (an expression).
fn capacity(r: &str) -> String {
    format!("(1 + intHash64({r}) % 12)")
}

/// The utilization of entity `e` in the window of `step` seconds starting at `t` (an
/// expression): each entity busy to its own degree on weekday office hours (UTC), the
/// days averaging that over 24 hours, every window with its own noise.
fn utilization(e: &str, step: u64) -> String {
    let degree = format!("(0.15 + (intHash64({e}) % 70) / 100.)");
    // In steps of 1/64: readings average whole people, and the rows compress.
    let noise = format!("(0.5 + (intHash64({e} * 1000003 + t) % 64) / 64.)");
    let weekday = "toDayOfWeek(toDateTime(t)) <= 5";
    if step >= 86_400 {
        format!("if({weekday}, {degree} * {noise} * 10 / 24, 0.)")
    } else {
        format!(
            "if({weekday} AND toHour(toDateTime(t)) >= 8 AND toHour(toDateTime(t)) < 18, \
             least(1., {degree} * {noise}), 0.)"
        )
    }
}

fn ratio(people: u64, capacity: u64) -> String {
    if capacity == 0 {
        "0".into()
    } else {
        (people as f64 / capacity as f64).to_string()
    }
}

fn iso(secs: i64) -> String {
    chrono::DateTime::from_timestamp(secs, 0)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

fn ch(e: clickhouse::error::Error) -> JobError {
    JobError::from(e)
}

/// An endpoint and how each request of it picks its parameters.
struct Endpoint {
    name: &'static str,
    path: fn(&Portfolio, &mut SmallRng) -> String,
}

/// Every endpoint of the service, in the order they are held. Parameters are random
/// over the whole portfolio and history, so most answers are not cached.
const ENDPOINTS: &[Endpoint] = &[
    Endpoint {
        name: "room occupancy",
        path: |p, rng| format!("/v1/rooms/room-{}/occupancy", p.room(rng)),
    },
    Endpoint {
        name: "office occupancy",
        path: |p, rng| format!("/v1/offices/office-{}/occupancy", p.office(rng)),
    },
    Endpoint {
        name: "offices, a page of 100",
        path: |p, rng| match p.office(rng) {
            0 => "/v1/offices?limit=100".into(),
            o => format!("/v1/offices?limit=100&cursor=office-{o}"),
        },
    },
    Endpoint {
        name: "an office's rooms, a page of 100",
        path: |p, rng| format!("/v1/offices/office-{}/rooms?limit=100", p.office(rng)),
    },
    Endpoint {
        name: "room series, 1 day of 15m",
        path: |p, rng| {
            let range = p.range(rng, 1, QUARTER_HOUR_DAYS);
            let room = p.room(rng);
            format!("/v1/rooms/room-{room}/utilization?granularity=15m&{range}")
        },
    },
    Endpoint {
        name: "room series, 30 days of 1h",
        path: |p, rng| {
            let range = p.range(rng, 30, u32::MAX);
            let room = p.room(rng);
            format!("/v1/rooms/room-{room}/utilization?granularity=1h&{range}")
        },
    },
    Endpoint {
        name: "office series, 90 days of 1h",
        path: |p, rng| {
            let range = p.range(rng, 90, u32::MAX);
            let office = p.office(rng);
            format!("/v1/offices/office-{office}/utilization?granularity=1h&{range}")
        },
    },
    Endpoint {
        name: "floor series, 7 days of 1h",
        path: |p, rng| {
            let range = p.range(rng, 7, u32::MAX);
            let office = p.office(rng);
            let floor = p.floor(office, rng);
            format!("/v1/offices/office-{office}/utilization?granularity=1h&floor={floor}&{range}")
        },
    },
    Endpoint {
        name: "office heatmap, 4 weeks",
        path: |p, rng| {
            let to = p.to(rng, 28);
            format!(
                "/v1/offices/office-{}/heatmap?weeks=4&to={to}",
                p.office(rng)
            )
        },
    },
    Endpoint {
        name: "under-used rooms, 30 days",
        path: |p, rng| {
            format!(
                "/v1/insights/underused?days=30&threshold=0.2&to={}",
                p.to(rng, 30)
            )
        },
    },
    Endpoint {
        name: "office ranking, 30 days",
        path: |p, rng| format!("/v1/offices/ranking?days=30&to={}", p.to(rng, 30)),
    },
    Endpoint {
        name: "office ranking by meeting rooms, 30 days",
        path: |p, rng| {
            let to = p.to(rng, 30);
            format!("/v1/offices/ranking?days=30&to={to}&kind=MEETING")
        },
    },
    Endpoint {
        name: "an office's meeting rooms' heatmap, 4 weeks",
        path: |p, rng| {
            let to = p.to(rng, 28);
            let office = p.office(rng);
            format!("/v1/offices/office-{office}/heatmap?weeks=4&to={to}&kind=MEETING")
        },
    },
    Endpoint {
        name: "a region's meeting rooms, 90 days day by day",
        path: |p, rng| {
            let dates = p.dates(rng, 90);
            let region = ["emea", "amer", "apac"][rng.random_range(0..3)];
            format!("/v1/portfolio/days?{dates}&region={region}&kind=MEETING")
        },
    },
    Endpoint {
        name: "changes, week over week per office",
        path: |p, rng| {
            let to = p.to(rng, 14);
            format!("/v1/insights/changes?compare=week&to_date={}", &to[..10])
        },
    },
    Endpoint {
        name: "changes, month over month per kind",
        path: |p, rng| {
            let to = p.to(rng, 62);
            format!(
                "/v1/insights/changes?compare=month&by=kind&to_date={}",
                &to[..10]
            )
        },
    },
    Endpoint {
        name: "ask: how busy was an office last week",
        path: |p, rng| ask(&format!("How busy was Office {} last week?", p.office(rng))),
    },
    Endpoint {
        name: "ask: an office on Tuesdays",
        path: |p, rng| {
            ask(&format!(
                "How busy is Office {} on Tuesdays?",
                p.office(rng)
            ))
        },
    },
    Endpoint {
        name: "ask: compare two offices last month",
        path: |p, rng| {
            let (a, b) = (p.office(rng), p.office(rng));
            ask(&format!("Compare Office {a} and Office {b} last month"))
        },
    },
    Endpoint {
        name: "ask: an office yesterday afternoon",
        path: |p, rng| {
            ask(&format!(
                "How busy was Office {} yesterday afternoon?",
                p.office(rng)
            ))
        },
    },
    Endpoint {
        name: "ask: when is an office busiest",
        path: |p, rng| ask(&format!("When is Office {} busiest?", p.office(rng))),
    },
    Endpoint {
        name: "ask: busiest offices last month",
        path: |_, rng| {
            let region = ["EMEA", "AMER", "APAC"][rng.random_range(0..3)];
            ask(&format!(
                "Which offices in {region} were busiest last month?"
            ))
        },
    },
    Endpoint {
        name: "ask: meeting rooms of an office under 20% last month",
        path: |p, rng| {
            ask(&format!(
                "Which meeting rooms in Office {} were under 20% last month?",
                p.office(rng)
            ))
        },
    },
];

/// `GET /v1/ask` of `question`.
fn ask(question: &str) -> String {
    let mut q = String::new();
    for b in question.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' => q.push(b as char),
            b' ' => q.push('+'),
            _ => q.push_str(&format!("%{b:02X}")),
        }
    }
    format!("/v1/ask?q={q}&parser=builtin")
}

/// What one connection saw.
#[derive(Default)]
struct Sample {
    latencies: Vec<f64>,
    misses: Vec<f64>,
    failures: BTreeMap<String, u64>,
}

impl Sample {
    fn fail(&mut self, what: String) {
        *self.failures.entry(what).or_default() += 1;
    }
}

/// When the requests of a connection are sent.
#[derive(Clone, Copy)]
struct Pace {
    /// No request is sent from this on.
    deadline: Instant,
    /// Open loop: the first connection's first request is due at `start`, each
    /// connection's next one `interval` after its last, the connections staggered.
    open: Option<(Instant, Duration)>,
    connections: usize,
}

impl Pace {
    fn new(duration: Duration, rate: Option<u64>, connections: usize) -> Self {
        let start = Instant::now();
        Self {
            deadline: start + duration,
            open: rate.map(|r| {
                let interval = Duration::from_secs_f64(connections as f64 / r.max(1) as f64);
                (start, interval)
            }),
            connections,
        }
    }

    /// When request `n` of connection `c` is due (`None`: as soon as it can go).
    fn due(&self, c: usize, n: u32) -> Option<Instant> {
        self.open.map(|(start, interval)| {
            start + interval.mul_f64(c as f64 / self.connections as f64) + interval * n
        })
    }
}

/// Holds `endpoint` under `connections` connections at `pace`.
async fn hold(
    addr: SocketAddr,
    key: &str,
    endpoint: &'static Endpoint,
    portfolio: &Portfolio,
    connections: usize,
    pace: Pace,
    seed: u64,
) -> EndpointReport {
    let started = Instant::now();
    let samples: Vec<Sample> = stream::iter(0..connections)
        .map(|c| connection(addr, key, endpoint, portfolio, seed + c as u64, pace))
        .buffer_unordered(connections)
        .collect()
        .await;
    let elapsed = started.elapsed();
    let mut report = EndpointReport {
        endpoint: endpoint.name,
        connections,
        elapsed,
        latencies: Vec::new(),
        misses: Vec::new(),
        failures: BTreeMap::new(),
        beside_noisy: None,
        noisy_answers: 0,
    };
    for sample in samples {
        report.latencies.extend(sample.latencies);
        report.misses.extend(sample.misses);
        for (what, count) in sample.failures {
            *report.failures.entry(what).or_default() += count;
        }
    }
    report
}

/// The endpoints a noisy tenant floods (`--noisy`): the heaviest ones it may call.
pub const HEAVIEST: [&str; 3] = [
    "office series, 90 days of 1h",
    "under-used rooms, 30 days",
    "office ranking, 30 days",
];

/// `connections` connections of another tenant, each sending the heaviest endpoints in
/// turn as fast as they are answered; returns how many were answered.
async fn flood_heaviest(
    addr: SocketAddr,
    key: &str,
    portfolio: &Portfolio,
    connections: usize,
    pace: Pace,
) -> u64 {
    let heaviest: Vec<&'static Endpoint> = ENDPOINTS
        .iter()
        .filter(|e| HEAVIEST.contains(&e.name))
        .collect();
    stream::iter(0..connections)
        .map(|c| {
            let endpoint = heaviest[c % heaviest.len()];
            connection(addr, key, endpoint, portfolio, 1 << 33 | c as u64, pace)
        })
        .buffer_unordered(connections)
        .map(|sample| sample.latencies.len() as u64)
        .fold(0, |sum, n| async move { sum + n })
        .await
}

/// One keep-alive connection sending requests at `pace`.
async fn connection(
    addr: SocketAddr,
    key: &str,
    endpoint: &Endpoint,
    portfolio: &Portfolio,
    seed: u64,
    pace: Pace,
) -> Sample {
    let mut sample = Sample::default();
    let stream = match tokio::net::TcpStream::connect(addr).await {
        Ok(stream) => stream,
        Err(e) => {
            sample.fail(format!("connect: {e}"));
            return sample;
        }
    };
    let _ = stream.set_nodelay(true);
    let (mut sender, conn) = match hyper::client::conn::http1::handshake(TokioIo::new(stream)).await
    {
        Ok(pair) => pair,
        Err(e) => {
            sample.fail(format!("handshake: {e}"));
            return sample;
        }
    };
    tokio::spawn(conn);
    let mut rng = SmallRng::seed_from_u64(seed);
    let c = (seed & 0xffff_ffff) as usize;
    for n in 0.. {
        let due = pace.due(c, n);
        if due.unwrap_or_else(Instant::now) >= pace.deadline {
            break;
        }
        if Instant::now() >= pace.deadline {
            // Open loop, fallen behind: what was due is not sent, but counted.
            let late = (n..).take_while(|&m| pace.due(c, m).is_some_and(|d| d < pace.deadline));
            sample.failures.insert(
                "not sent: the service fell behind".into(),
                late.count() as u64,
            );
            break;
        }
        if let Some(due) = due {
            tokio::time::sleep_until(due.into()).await;
        }
        let request = hyper::Request::get((endpoint.path)(portfolio, &mut rng))
            .header(hyper::header::HOST, addr.to_string())
            .header("x-api-key", key)
            .body(Empty::<Bytes>::new())
            .expect("a valid request");
        if let Err(e) = sender.ready().await {
            sample.fail(format!("connection: {e}"));
            break;
        }
        let sent = due.unwrap_or_else(Instant::now);
        let response = match sender.send_request(request).await {
            Ok(response) => response,
            Err(e) => {
                sample.fail(format!("connection: {e}"));
                break;
            }
        };
        let status = response.status();
        let hit = response
            .headers()
            .get("x-cache")
            .is_some_and(|v| v.as_bytes() == b"hit");
        if let Err(e) = response.into_body().collect().await {
            sample.fail(format!("body: {e}"));
            break;
        }
        let ms = sent.elapsed().as_secs_f64() * 1000.0;
        if !status.is_success() {
            sample.fail(status.as_u16().to_string());
            continue;
        }
        sample.latencies.push(ms);
        if !hit {
            sample.misses.push(ms);
        }
    }
    sample
}
