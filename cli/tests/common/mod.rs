//! Helpers shared by the tests that run against the local stack.

#![allow(dead_code)] // each test binary uses its own subset

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

use rf_jobs::simulate::Fleet;
use rf_pipelines::{run, KafkaConfig, Metrics, RunOptions, RunReport, Settings};
use rf_schemas::framing::frame_header;
use rf_schemas::{Reading, RoomVersion, TenantId};

/// Readings of every room of the fleet's first tenant every `step` ms from `from` (down
/// to a whole step) to a minute before `to`, framed with the v1 or v2 schema id as each
/// sensor speaks.
pub fn fleet_readings(
    fleet: &Fleet,
    (v1, v2): (u32, u32),
    (from, to): (i64, i64),
    step: i64,
) -> Vec<(String, Vec<u8>, i64)> {
    let mut out = Vec::new();
    for ts in (from / step * step..to - 60_000).step_by(step as usize) {
        for room in &fleet.tenants[0].1 {
            let r = fleet.reading(room, ts);
            let framed = if room.v2 {
                framed_v2(v2, &r)
            } else {
                framed(v1, &r)
            };
            out.push((r.office_id.clone(), framed, r.ts));
        }
    }
    out
}

/// Publishes the bookings the simulator makes for the fleet's first tenant's rooms in
/// `[from, to)` (ms), as the calendar connectors publish them.
pub fn publish_bookings(s: &Settings, tenant: &TenantId, fleet: &Fleet, (from, to): (i64, i64)) {
    let publisher =
        rf_jobs::calendar::publish::Publisher::new(&s.kafka, &s.registry, tenant).unwrap();
    for room in &fleet.tenants[0].1 {
        for b in fleet.bookings(room, from, to) {
            publisher.publish(&b).unwrap();
        }
    }
    publisher.flush().unwrap();
}

/// Stores `heads` people in each office of the fleet's first tenant on the day of `now`
/// (ms), as the HR connectors write them.
pub async fn store_headcount(s: &Settings, tenant: &TenantId, fleet: &Fleet, heads: u32, now: i64) {
    let offices: BTreeSet<String> = fleet.tenants[0]
        .1
        .iter()
        .map(|r| r.version.office_id.clone())
        .collect();
    let rows: Vec<rf_jobs::headcount::Heads> = offices
        .into_iter()
        .map(|office_id| rf_jobs::headcount::Heads {
            day: (now / 86_400_000) as u16,
            office_id,
            department: String::new(),
            heads,
            source: "csv".into(),
            version: 1,
        })
        .collect();
    rf_jobs::headcount::store(&s.clickhouse, tenant, &rows)
        .await
        .unwrap();
}

/// Rooms of one office and kind, written as the pipeline would: their metadata, and a
/// final day each in `[first, first + days)` at `utilization` (peak twice that, 10
/// seats). Rooms are `<office>-<kind>-<n>` on `floor`.
pub struct DayRooms<'a> {
    pub office: &'a str,
    pub region: &'a str,
    pub country: &'a str,
    pub zone: &'a str,
    pub floor: i32,
    pub kind: &'a str,
    pub rooms: u32,
}

/// Stores `spec`'s rooms and their final days (see [`DayRooms`]).
pub fn store_room_days(
    tenant: &TenantId,
    spec: &DayRooms,
    first: chrono::NaiveDate,
    days: u32,
    utilization: f64,
) {
    let db = tenant.clickhouse_db();
    let DayRooms {
        office,
        region,
        country,
        zone,
        floor,
        kind,
        rooms,
    } = spec;
    let zone_of: chrono_tz::Tz = zone.parse().unwrap();
    let midnight = |d: chrono::NaiveDate| {
        use chrono::TimeZone;
        zone_of
            .from_local_datetime(&d.and_time(chrono::NaiveTime::MIN))
            .earliest()
            .unwrap()
            .timestamp()
    };
    let prefix = format!("{office}-{}", kind.to_lowercase());
    clickhouse_lines(&format!(
        "INSERT INTO {db}.rooms SELECT concat('{prefix}-', toString(number)), '{office}', \
         'Office {office}', '{region}', '{country}', '{zone}', toInt32({floor}), \
         concat('Room {prefix} ', toString(number)), \
         CAST('{kind}' AS Enum8('DESK' = 1, 'MEETING' = 2, 'FOCUS' = 3, 'OPEN_SPACE' = 4, 'COLLAB' = 5, 'OTHER' = 6)), \
         toUInt32(10), toNullable(toFloat32(20)), toNullable(toFloat64(1000)), toDateTime(0), toUInt64(1) \
         FROM numbers({rooms})"
    ));
    let values: Vec<String> = (0..*rooms)
        .flat_map(|r| (0..days).map(move |d| (r, d)))
        .map(|(r, d)| {
            let day = first + chrono::Days::new(u64::from(d));
            let (start, end) = (midnight(day), midnight(day + chrono::Days::new(1)));
            format!(
                "('{day}', '{office}', '{prefix}-{r}', {start}, {end}, 1440, {people}, {peak}, 0.5, 10, {utilization}, 1)",
                people = utilization * 10.0,
                peak = (utilization * 20.0).round(),
            )
        })
        .collect();
    clickhouse_lines(&format!(
        "INSERT INTO {db}.room_days (day, office_id, room_id, window_start, window_end, samples, \
         avg_people, peak_people, occupied_ratio, capacity, utilization, version) VALUES {}",
        values.join(", ")
    ));
}

/// Status and JSON body of a GET with a bearer token (run it off the async runtime).
pub fn status_and_json(url: &str, token: &str) -> (u16, serde_json::Value) {
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .new_agent();
    let mut response = agent
        .get(url)
        .header("Authorization", format!("Bearer {token}"))
        .call()
        .unwrap();
    (
        response.status().as_u16(),
        response.body_mut().read_json().unwrap(),
    )
}

/// A token of `config`'s service for `who` of `tenant` with `role`, for 5 minutes.
pub fn token_with_role(
    config: &rf_service::ServiceConfig,
    tenant: &TenantId,
    who: &str,
    role: rf_schemas::tenant::Role,
) -> String {
    let policy = config.token_policy();
    rf_service::auth::mint_as(&config.jwt_secret, &policy, tenant, who, 300, Some(role))
}

/// Sets a live pipeline's shutdown flag when dropped: a test that fails while its
/// pipeline runs on a blocking thread then ends instead of waiting for it forever.
pub struct StopOnDrop(pub Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// A tenant id no other test run uses.
pub fn fresh_tenant(tag: &str) -> TenantId {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    TenantId::parse(&format!(
        "{tag}-{}-{}",
        std::process::id(),
        nanos % 1_000_000_000
    ))
    .unwrap()
}

/// Settings for a pipeline serving only `tenant`, with its own consumer group.
pub fn settings(tenant: &TenantId) -> Settings {
    let mut s = Settings::default();
    s.kafka.group_id = format!("test-{tenant}");
    s.pipeline.tenants = vec![tenant.to_string()];
    s.pipeline.metrics_listen = String::new();
    s.pipeline.workers = 2;
    s
}

/// The stores of `s`'s served regions, for the query service.
pub fn service_stores(s: &Settings) -> rf_service::Stores {
    let served = s.served_regions().into_iter();
    rf_service::Stores::new(
        &s.regions.home,
        &s.clickhouse,
        served.map(|r| (r.name, r.clickhouse, r.redis.as_service())),
    )
}

/// Starts a query service for `s`'s stores in this process; returns its base URL.
pub async fn serve(config: &rf_service::ServiceConfig, s: &Settings) -> String {
    let router = rf_service::app(config, &service_stores(s)).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    base
}

/// Fails with a clear message when the local stack is not running.
pub fn stack_is_up(s: &Settings) {
    let probe: BaseConsumer = s.kafka.client_config().create().unwrap();
    if probe.fetch_metadata(None, Duration::from_secs(5)).is_err() {
        panic!(
            "no broker at {}: start the local stack with deploy/local/stack.sh start",
            s.kafka.brokers
        );
    }
}

/// A tenant (`tag`) whose fleet of `offices` and `rooms` sent `minutes` of a messy stream
/// ([`messy_stream`]), run through the pipeline undisturbed: the reference a disturbed
/// run of the same stream is compared with.
pub struct Reference {
    /// The tenant.
    pub tenant: TenantId,
    /// Its fleet (room metadata).
    pub fleet: Fleet,
    /// The stream, framed.
    pub readings: Vec<(String, Vec<u8>, i64)>,
    /// The readings' schema id.
    pub reading_id: u32,
    /// The run's report, its accounts checked.
    pub report: RunReport,
}

/// Makes a [`Reference`]: `(offices, rooms, seed)` shape the fleet, `rng` the stream.
pub async fn reference(
    tag: &str,
    (offices, rooms, seed): (usize, usize, u64),
    minutes: i64,
    rng: u64,
) -> Reference {
    let tenant = fresh_tenant(tag);
    stack_is_up(&settings(&tenant));
    let fleet = Fleet::new(&rf_jobs::simulate::FleetSpec {
        tenants: vec![tenant.clone()],
        offices,
        rooms,
        seed,
    });
    let (reading_id, _) = create_tenant(&tenant).await;
    let readings = messy_stream(&fleet, minutes, reading_id, &mut Rng(rng));
    provision(&tenant, &fleet, &readings).await;
    let report = run_until_caught_up(&settings(&tenant)).await;
    assert_accounts(&report);
    Reference {
        tenant,
        fleet,
        readings,
        reading_id,
        report,
    }
}

/// Runs the pipeline in this process until it has caught up, off the async runtime.
pub async fn run_until_caught_up(s: &Settings) -> RunReport {
    let s = s.clone();
    tokio::task::spawn_blocking(move || run_caught_up(&s))
        .await
        .unwrap()
}

/// The contract's accounting: every consumed reading is counted, replaced by a later
/// revision, dead-lettered, or still in an open 15m window.
pub fn assert_accounts(report: &RunReport) {
    let st = &report.stats;
    assert_eq!(
        st.consumed,
        st.counted + st.replaced + st.dead_letters + st.pending,
        "{st:?}"
    );
}

fn run_caught_up(s: &Settings) -> RunReport {
    let options = RunOptions {
        until_caught_up: true,
        shutdown: Arc::new(AtomicBool::new(false)),
        memory_every: None,
        ..Default::default()
    };
    run(s, options, Metrics::new()).expect("the pipeline runs")
}

/// Produces records in order and waits for each delivery.
pub async fn produce_all(
    producer: &FutureProducer,
    topic: &str,
    records: &[(String, Vec<u8>, i64)],
) {
    let mut pending = Vec::new();
    for (key, value, ts) in records {
        let record = FutureRecord::to(topic)
            .key(key)
            .payload(value)
            .timestamp(*ts);
        pending.push(
            producer
                .send_result(record)
                .map_err(|(e, _)| e)
                .expect("enqueued"),
        );
        if pending.len() >= 10_000 {
            for d in pending.drain(..) {
                d.await.unwrap().map_err(|(e, _)| e).expect("delivered");
            }
        }
    }
    for d in pending {
        d.await.unwrap().map_err(|(e, _)| e).expect("delivered");
    }
}

/// A record as read back: key, value, headers.
pub type Letter = (Option<Vec<u8>>, Option<Vec<u8>>, HashMap<String, String>);

/// Reads every message of `topic` (all partitions), waiting for at least `want`.
pub fn read_topic(kafka: &KafkaConfig, topic: &str, want: usize) -> Vec<Letter> {
    let consumer: BaseConsumer = kafka
        .client_config()
        .set("group.id", "test-reader")
        .create()
        .unwrap();
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(5))
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in metadata.topics()[0].partitions() {
        tpl.add_partition_offset(topic, p.id(), Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(500)) {
            Some(Ok(m)) => {
                let headers = m
                    .headers()
                    .map(|h| {
                        h.iter()
                            .map(|h| {
                                (
                                    h.key.to_owned(),
                                    String::from_utf8_lossy(h.value.unwrap_or_default())
                                        .into_owned(),
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                out.push((
                    m.key().map(<[u8]>::to_vec),
                    m.payload().map(<[u8]>::to_vec),
                    headers,
                ));
            }
            Some(Err(e)) => panic!("reading {topic}: {e}"),
            None if out.len() >= want => break,
            None => {}
        }
    }
    out
}

/// The distinct dead letters of a tenant as (reason, partition, offset).
pub fn dead_letter_set(
    kafka: &KafkaConfig,
    tenant: &TenantId,
    want: usize,
) -> BTreeSet<(String, String, i64)> {
    read_topic(kafka, &tenant.deadletter_topic(), want)
        .into_iter()
        .map(|(_, _, h)| {
            (
                h["rf-reason"].clone(),
                h["rf-source-partition"].clone(),
                h["rf-source-offset"].parse().unwrap(),
            )
        })
        .collect()
}

/// Runs a query over the local ClickHouse's HTTP interface and returns its
/// tab-separated lines.
pub fn clickhouse_lines(sql: &str) -> Vec<String> {
    let body = clickhouse_at("http://127.0.0.1:18123/", sql);
    body.lines().map(str::to_owned).collect()
}

/// Runs a query over the HTTP interface of the ClickHouse at `url`; returns the body.
pub fn clickhouse_at(url: &str, sql: &str) -> String {
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .new_agent();
    let mut response = agent.post(url).send(sql).unwrap();
    let body = response.body_mut().read_to_string().unwrap();
    assert_eq!(response.status().as_u16(), 200, "{sql}: {body}");
    body
}

/// Runs `deploy/local/stack.sh` with `args`, for the tests that stop and start shared
/// services.
pub fn stack(args: &[&str]) {
    let script =
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/local/stack.sh");
    let status = std::process::Command::new("bash")
        .arg(script)
        .args(args)
        .status()
        .unwrap();
    assert!(status.success(), "stack.sh {args:?}");
}

/// The latest revision of every room and office window of a tenant, without the
/// `version` and `updated_at` columns (they differ between runs by design).
pub fn window_rows(tenant: &TenantId) -> (Vec<String>, Vec<String>) {
    let db = tenant.clickhouse_db();
    let rooms = clickhouse_lines(&format!(
        "SELECT granularity, office_id, room_id, window_start, window_end, samples, avg_people, peak_people, \
         occupied_ratio, capacity, utilization, final FROM {db}.room_utilization FINAL \
         ORDER BY granularity, office_id, room_id, window_start"
    ));
    let offices = clickhouse_lines(&format!(
        "SELECT granularity, office_id, window_start, window_end, rooms_reporting, avg_people, peak_people, \
         capacity, utilization, final FROM {db}.office_utilization FINAL ORDER BY granularity, office_id, window_start"
    ));
    (rooms, offices)
}

/// Two tenants' [`window_rows`] are the same, or the message shows a few that differ.
pub fn assert_same_windows(want: &(Vec<String>, Vec<String>), got: &(Vec<String>, Vec<String>)) {
    for (what, want, got) in [("room", &want.0, &got.0), ("office", &want.1, &got.1)] {
        let missing: Vec<_> = want.iter().filter(|r| !got.contains(r)).take(5).collect();
        let extra: Vec<_> = got.iter().filter(|r| !want.contains(r)).take(5).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "{what} rows: {} vs {}; missing {missing:#?}; unexpected {extra:#?}",
            want.len(),
            got.len()
        );
    }
}

/// Every live room and office hash of a tenant, keyed without the tenant prefix.
/// The same local Redis as `url`, as its administrator: components' own users may not
/// read what tests look at (the pipeline's only writes).
pub fn admin(url: &str) -> String {
    let host = url.rsplit_once('@').map_or(url, |(_, host)| host);
    let host = host.strip_prefix("redis://").unwrap_or(host);
    format!("redis://roomflow:roomflow-local-development-only@{host}")
}

pub async fn redis_state(
    url: &str,
    tenant: &TenantId,
) -> BTreeMap<String, BTreeMap<String, String>> {
    let client = redis::Client::open(admin(url)).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let prefix = tenant.redis_prefix();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut conn)
        .await
        .unwrap();
    let mut state = BTreeMap::new();
    // The live hashes; not the generation counter or the service's cache and limits.
    let live = |k: &&String| {
        ["room:", "office:"]
            .iter()
            .any(|p| k[prefix.len()..].starts_with(p))
    };
    for key in keys.iter().filter(live) {
        let hash: BTreeMap<String, String> = redis::cmd("HGETALL")
            .arg(key)
            .query_async(&mut conn)
            .await
            .unwrap();
        state.insert(key[prefix.len()..].to_owned(), hash);
    }
    state
}

pub const MIN: i64 = 60_000;
/// 2026-03-28T18:00:00Z, a Saturday: the input spans London's spring-forward day.
pub const START: i64 = 1_774_720_800_000;

/// xorshift64*: a small, seeded generator, so a failing run can be replayed.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

pub fn framed(id: u32, r: &Reading) -> Vec<u8> {
    let mut v = Vec::new();
    frame_header(id, &mut v);
    r.encode_v1(&mut v);
    v
}

/// `r` as a reading of an upgraded sensor (`OccupancyReading` v2), framed with `id`.
pub fn framed_v2(id: u32, r: &Reading) -> Vec<u8> {
    let mut v = Vec::new();
    frame_header(id, &mut v);
    r.encode_v2(&mut v);
    v
}

/// The fleet's readings minute by minute, messed up: about 10% arrive 1 to 3 minutes
/// late (out of order, within the allowed lateness), 0.5% arrive 30 minutes late (past
/// it), 1.5% are followed by a revision with the same key, 0.2% are replaced by bytes
/// that do not decode.
pub fn messy_stream(
    fleet: &Fleet,
    minutes: i64,
    schema_id: u32,
    rng: &mut Rng,
) -> Vec<(String, Vec<u8>, i64)> {
    let rooms = &fleet.tenants[0].1;
    let mut out = Vec::new();
    let mut delayed: Vec<(i64, Reading)> = Vec::new();
    for m in 0..minutes + 40 {
        let now = START + m * MIN;
        if m < minutes {
            for room in rooms {
                let r = fleet.reading(room, now);
                let u = rng.unit();
                if u < 0.10 {
                    delayed.push((m + 1 + (rng.next() % 3) as i64, r));
                } else if u < 0.105 {
                    delayed.push((m + 30, r));
                } else if u < 0.107 {
                    out.push((
                        r.office_id.clone(),
                        b"\x00\x00\x00\x00garbage".to_vec(),
                        now + 1_000,
                    ));
                } else {
                    if u < 0.122 {
                        let revision = Reading {
                            people_count: r.people_count + 1,
                            ..r.clone()
                        };
                        delayed.push((m + 1, revision));
                    }
                    out.push((r.office_id.clone(), framed(schema_id, &r), now + 1_000));
                }
            }
        }
        let (due, rest): (Vec<_>, Vec<_>) = delayed.into_iter().partition(|(at, _)| *at <= m);
        delayed = rest;
        for (_, r) in due {
            out.push((r.office_id.clone(), framed(schema_id, &r), now + 1_000));
        }
    }
    out
}

/// Creates `tenant` and returns the ids of its readings and rooms schemas.
pub async fn create_tenant(tenant: &TenantId) -> (u32, u32) {
    create_tenant_on(&settings(tenant), tenant).await
}

/// Creates `tenant` on the stores `s` names.
pub async fn create_tenant_on(s: &Settings, tenant: &TenantId) -> (u32, u32) {
    create_tenant_with(s, tenant, &Default::default()).await
}

/// Creates `tenant` as `spec` says; returns the ids of its readings and rooms schemas.
pub async fn create_tenant_with(
    s: &Settings,
    tenant: &TenantId,
    spec: &rf_jobs::tenant::TenantSpec,
) -> (u32, u32) {
    let created = rf_jobs::tenant::create(s, tenant, spec)
        .await
        .expect("tenant created");
    let id = |prefix: &str| {
        created
            .schemas
            .iter()
            .find(|r| r.subject.starts_with(prefix))
            .unwrap()
            .id
    };
    (id("occupancy."), id("rooms."))
}

/// The schema id of `OccupancyReading` v2 under `tenant`'s readings subject (registered
/// by [`create_tenant`]; registering it again returns its id).
pub fn reading_v2_id(s: &Settings, tenant: &TenantId) -> u32 {
    let client = rf_schemas::registry::RegistryClient::new(
        &s.registry.url,
        Duration::from_secs(s.registry.timeout_secs),
    );
    let v2 = [("occupancy.", rf_schemas::OCCUPANCY_READING_V2_AVSC)];
    let registered = rf_jobs::schemas::register(
        &client,
        std::slice::from_ref(tenant),
        &v2,
        s.registry.compatibility_check,
    )
    .expect("v2 is registered");
    registered[0].id
}

/// Room versions as records of the rooms topic, framed with `schema_id`.
pub fn room_records<'a>(
    versions: impl IntoIterator<Item = &'a RoomVersion>,
    schema_id: u32,
    ts: i64,
) -> Vec<(String, Vec<u8>, i64)> {
    let schema = apache_avro::Schema::parse_str(rf_schemas::ROOM_AVSC).unwrap();
    versions
        .into_iter()
        .map(|v| {
            let mut value = Vec::new();
            frame_header(schema_id, &mut value);
            value.extend(v.encode(&schema));
            (v.key(), value, ts)
        })
        .collect()
}

/// Creates `tenant` and publishes the fleet's room metadata, then `readings`.
pub async fn provision(tenant: &TenantId, fleet: &Fleet, readings: &[(String, Vec<u8>, i64)]) {
    provision_on(&settings(tenant), tenant, fleet, readings).await;
}

/// [`provision`] on the stores `s` names.
pub async fn provision_on(
    s: &Settings,
    tenant: &TenantId,
    fleet: &Fleet,
    readings: &[(String, Vec<u8>, i64)],
) {
    let (_, room_id) = create_tenant_on(s, tenant).await;
    let producer: FutureProducer = s.kafka.client_config().create().unwrap();
    let rooms = room_records(
        fleet.tenants[0].1.iter().map(|r| &r.version),
        room_id,
        START,
    );
    produce_all(&producer, &tenant.rooms_topic(), &rooms).await;
    produce_all(&producer, &tenant.readings_topic(), readings).await;
}

/// Room `id` of office `lon` (London), a meeting room with `capacity`, in effect since 2024.
pub fn london_room(id: &str, capacity: u32) -> RoomVersion {
    RoomVersion {
        room_id: id.into(),
        office_id: "lon".into(),
        office_name: "London".into(),
        region: "EMEA".into(),
        country_code: "GB".into(),
        timezone: chrono_tz::Europe::London,
        floor: 1,
        name: id.into(),
        kind: rf_schemas::RoomKind::Meeting,
        capacity,
        area_m2: None,
        monthly_cost: None,
        effective_from: 1_704_067_200_000,
    }
}

/// One reading a minute from `from` to `to` (ms) of each of office `lon`'s `rooms`
/// (sensor `s-<room>`), as `people(room, ts)` says (`None`: no reading), framed.
pub fn minute_readings(
    schema_id: u32,
    (from, to): (i64, i64),
    rooms: &[&str],
    people: impl Fn(&str, i64) -> Option<i32>,
) -> Vec<(String, Vec<u8>, i64)> {
    let mut out = Vec::new();
    for ts in (from..to).step_by(60_000) {
        for id in rooms {
            let Some(n) = people(id, ts) else { continue };
            let r = Reading {
                sensor_id: format!("s-{id}"),
                office_id: "lon".into(),
                room_id: id.to_string(),
                ts,
                people_count: n,
                temperature: None,
                humidity: None,
                co2_ppm: None,
                battery_pct: None,
            };
            out.push(("lon".to_string(), framed(schema_id, &r), ts));
        }
    }
    out
}

/// Submits a job of `kind` for `tenant` and runs it with a job worker of default
/// settings; returns its final status.
pub async fn run_job(
    s: &Settings,
    tenant: &TenantId,
    kind: rf_jobs::queue::JobKind,
) -> rf_jobs::queue::JobStatus {
    let id = rf_jobs::queue::submit(&s.kafka, &s.clickhouse, tenant, kind)
        .await
        .unwrap()
        .spec
        .id;
    take_job(s, Default::default(), id, Default::default()).await
}

/// Runs a job worker with `config`, stopping when `stop` is set, until it returns job
/// `id`'s status: its final one, or `queued` when the worker stopped during it.
pub async fn take_job(
    s: &Settings,
    config: rf_jobs::queue::worker::JobsConfig,
    id: String,
    stop: Arc<AtomicBool>,
) -> rf_jobs::queue::JobStatus {
    let s = s.clone();
    tokio::task::spawn_blocking(move || {
        let metrics = rf_pipelines::Metrics::new();
        let mut worker = rf_jobs::queue::worker::Worker::new(&s, &config)
            .unwrap()
            .stop_on(stop)
            .with_metrics(metrics.clone());
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            assert!(Instant::now() < deadline, "job {id} ended");
            if let Some(status) = worker.step(Duration::from_secs(1)).unwrap() {
                if status.spec.id == id {
                    // Counted once as it ended here (rf_jobs_finished_total), by a worker
                    // showing it is alive.
                    let (kind, state) = (status.spec.kind.name(), status.state.label());
                    let ended = metrics
                        .jobs_finished
                        .with_label_values(&[kind, state])
                        .get();
                    assert_eq!(ended, u64::from(status.state.is_final()), "{kind} {state}");
                    assert!(metrics.job_worker_heartbeat.get() > 1_700_000_000);
                    return status;
                }
            }
        }
    })
    .await
    .unwrap()
}

/// Two meeting rooms of office `lon` (`lon-a`, `lon-b`, 6 seats) published, and three
/// hours of their minute readings from 9:00 UTC (London's winter time) two days ago,
/// as `people(room, ts)` says, with one more reading the next day that makes that day
/// final; returns 9:00 of that day (ms).
pub async fn two_rooms_two_days_ago(
    s: &Settings,
    tenant: &TenantId,
    (reading_id, room_id): (u32, u32),
    people: impl Fn(&str, i64) -> Option<i32>,
) -> i64 {
    const HOUR: i64 = 3_600_000;
    let producer: FutureProducer = s.kafka.client_config().create().unwrap();
    let rooms = ["lon-a", "lon-b"].map(|id| london_room(id, 6));
    let versions = room_records(&rooms, room_id, 1_704_067_200_000);
    produce_all(&producer, &tenant.rooms_topic(), &versions).await;
    let day = 24 * HOUR;
    let t0 = (chrono::Utc::now().timestamp_millis() / day - 2) * day + 9 * HOUR;
    let mut readings =
        minute_readings(reading_id, (t0, t0 + 3 * HOUR), &["lon-a", "lon-b"], people);
    let next_day = t0 - 9 * HOUR + day + 30 * 60_000;
    readings.extend(minute_readings(
        reading_id,
        (next_day, next_day + 1),
        &["lon-b"],
        |_, _| Some(0),
    ));
    produce_all(&producer, &tenant.readings_topic(), &readings).await;
    t0
}

/// The JSON a GET with a bearer token answers (off the async runtime); panics on an
/// error status.
pub async fn get_with_token(url: String, token: String) -> serde_json::Value {
    tokio::task::spawn_blocking(move || {
        ureq::get(&url)
            .header("Authorization", format!("Bearer {token}"))
            .call()
            .unwrap()
            .body_mut()
            .read_json()
            .unwrap()
    })
    .await
    .unwrap()
}

/// The Prometheus text a service at `base` exposes (off the async runtime).
pub async fn metrics_text(base: String) -> String {
    tokio::task::spawn_blocking(move || {
        ureq::get(&format!("{base}/metrics"))
            .call()
            .unwrap()
            .body_mut()
            .read_to_string()
            .unwrap()
    })
    .await
    .unwrap()
}

/// The repository's root.
pub fn repo_root() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A broker of a test's own (nisshi on SQLite storage in a folder), killed when dropped
/// (also when the test fails).
pub struct Broker(std::process::Child);

impl Broker {
    /// Starts nisshi on `dir`'s storage at `port` with `args` added, once the port can be
    /// bound again (a killed broker leaves it in TIME_WAIT for up to a minute).
    pub fn start(dir: &std::path::Path, port: u16, args: &[&str]) -> Broker {
        use std::process::{Command, Stdio};
        use std::time::{Duration, Instant};
        let deadline = Instant::now() + Duration::from_secs(120);
        while std::net::TcpListener::bind(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "port {port} stays taken");
            std::thread::sleep(Duration::from_millis(500));
        }
        let url = format!("tcp://127.0.0.1:{port}");
        let log = std::fs::File::options()
            .create(true)
            .append(true)
            .open(dir.join("broker.log"))
            .unwrap();
        let child = Command::new(nisshi())
            .args(["broker", "--listener-url", &url])
            .args(["--advertised-listener-url", &url])
            .args(["--storage-engine", "sqlite://nisshi.db"])
            .args(args)
            .env_remove("STORAGE_ENGINE")
            .env_remove("LISTENER_URL")
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("nisshi starts");
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "the private broker does not listen"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        Broker(child)
    }

    /// Kills it now.
    pub fn kill(self) {}
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The broker binary the local stack installed.
pub fn nisshi() -> std::path::PathBuf {
    let out = std::process::Command::new("bash")
        .arg("-c")
        .arg("source deploy/local/env.sh && echo \"$NISSHI_BIN\"")
        .current_dir(repo_root())
        .output()
        .unwrap();
    std::path::PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}
