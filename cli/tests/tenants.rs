//! The tenant registry and data residency, against the local stack's two regions: "us"
//! (the home stores) and "eu" (the second ClickHouse and Redis).

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::producer::FutureProducer;

use rf_jobs::simulate::{Fleet, FleetSpec};
use rf_jobs::tenant::{self, TenantSpec};
use rf_pipelines::source::Topology;
use rf_pipelines::{run, Metrics, RegionStores, RunOptions, Settings};
use rf_schemas::{TenantId, Tier};

use common::*;

const EU_CLICKHOUSE: &str = "http://127.0.0.1:18124";
/// The eu region's Redis, as its pipeline's user (tests read it as administrator).
const EU_REDIS: &str = "redis://rf-pipeline:roomflow-local-development-only@127.0.0.1:16380/0";

/// Home region "us" on the default stores, "eu" on the second region's.
fn two_regions(group: &str) -> Settings {
    let mut s = Settings::default();
    s.kafka.group_id = format!("test-{group}");
    s.pipeline.metrics_listen = String::new();
    s.pipeline.workers = 2;
    s.pipeline.discover_secs = 1;
    s.regions.home = "us".into();
    let mut eu = RegionStores::default();
    eu.clickhouse.url = EU_CLICKHOUSE.into();
    eu.redis = rf_sinks::config::RedisConfig::local(16380);
    s.regions.remote.insert("eu".into(), eu);
    s
}

fn in_region(region: &str) -> TenantSpec {
    TenantSpec {
        region: Some(region.into()),
        ..Default::default()
    }
}

fn query(url: &str, sql: &str) -> String {
    clickhouse_at(url, sql).trim().to_owned()
}

fn has_database(url: &str, tenant: &TenantId) -> bool {
    query(
        url,
        &format!(
            "SELECT count() FROM system.databases WHERE name = '{}'",
            tenant.clickhouse_db()
        ),
    ) == "1"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_registry_creates_describes_updates_and_deletes_tenants() {
    let t = fresh_tenant("reg");
    let s = two_regions(t.as_str());
    stack_is_up(&s);
    let spec = TenantSpec {
        display_name: Some("Registry Test Corp".into()),
        industry: Some("insurance".into()),
        tier: Some(Tier::Enterprise),
        region: Some("eu".into()),
        retention_days: Some(400),
        alert_targets: Some(vec!["teams=https://example.webhook.office.com/flow/secret"
            .parse()
            .unwrap()]),
        alert_rules: Some(vec!["sensor_fault>=medium/30".parse().unwrap()]),
        benchmarks: None,
        capacity_breach_at: Some(0.8),
    };
    let created = tenant::create(&s, &t, &spec).await.unwrap();
    assert_eq!(created.config.region, "eu");
    assert!(has_database(EU_CLICKHOUSE, &t), "the database is in eu");
    assert!(!has_database("http://127.0.0.1:18123", &t), "and not in us");
    // Twice is harmless and keeps the entry.
    let again = tenant::create(&s, &t, &TenantSpec::default())
        .await
        .unwrap();
    assert_eq!(again.config, created.config);

    let listed = tenant::list(&s.kafka).unwrap();
    let (_, entry) = listed.iter().find(|(id, _)| *id == t).expect("listed");
    let entry = entry.as_ref().expect("registered");
    assert_eq!(
        entry
            .alert_rules
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        ["sensor_fault>=medium/30"]
    );
    assert_eq!(
        (
            entry.display_name.as_str(),
            entry.tier,
            entry.retention_days
        ),
        ("Registry Test Corp", Tier::Enterprise, 400)
    );
    assert_eq!(entry.capacity_breach_at, Some(0.8));
    let wrong = TenantSpec {
        capacity_breach_at: Some(0.1),
        ..Default::default()
    };
    let refused = tenant::update(&s, &t, &wrong).await.unwrap_err();
    assert!(refused.to_string().contains("--breach-at"), "{refused}");

    let moved = tenant::update(&s, &t, &in_region("us")).await.unwrap_err();
    assert!(moved.to_string().contains("never changes"), "{moved}");
    let renamed = TenantSpec {
        display_name: Some("Renamed Corp".into()),
        alert_targets: Some(Vec::new()),
        ..Default::default()
    };
    let updated = tenant::update(&s, &t, &renamed).await.unwrap();
    assert_eq!(updated.display_name, "Renamed Corp");
    assert!(updated.alert_targets.is_empty());
    assert_eq!(updated.retention_days, 400, "fields not given stay");
    assert_eq!(updated.capacity_breach_at, Some(0.8));
    assert!(updated.updated_ms > created.config.updated_ms);

    // The pipeline serves it in eu, until it is deleted.
    let mut only = s.clone();
    only.pipeline.tenants = vec![t.to_string()];
    let topology = Topology::discover(&only).unwrap();
    let region = topology.region_of(&t).expect("served");
    assert_eq!(topology.regions[region], "eu");
    let mut us_only = only.clone();
    us_only.regions.serve = vec!["us".into()];
    let refused = Topology::discover(&us_only).unwrap_err().to_string();
    assert!(refused.contains("region eu"), "{refused}");

    let deleted = tenant::delete(&s, &t).await.unwrap();
    assert!(deleted.is_deleted());
    let still = tenant::delete(&s, &t).await.unwrap();
    assert_eq!(
        still.deleted_ms, deleted.deleted_ms,
        "deleting twice keeps the first time"
    );
    assert!(
        Topology::discover(&only).is_err(),
        "a deleted tenant is not served"
    );
    let recreate = tenant::create(&s, &t, &TenantSpec::default())
        .await
        .unwrap_err();
    assert!(recreate.to_string().contains("deleted"), "{recreate}");
    assert!(tenant::update(&s, &t, &renamed).await.is_err());

    // The ClickHouse mirror has the latest revision.
    let mirrored = query(
        "http://127.0.0.1:18123",
        &format!(
            "SELECT display_name, tier, region, retention_days, deleted FROM rf_platform.tenants FINAL WHERE tenant = '{t}'"
        ),
    );
    assert_eq!(mirrored, "Renamed Corp\tenterprise\teu\t400\t1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_created_while_running_are_served_and_stay_in_their_region() {
    let us = fresh_tenant("res-us");
    let eu = fresh_tenant("res-eu");
    let s = two_regions(eu.as_str());
    stack_is_up(&s);

    // The pipeline starts before either tenant exists.
    let shutdown = Arc::new(AtomicBool::new(false));
    let _stop_on_failure = StopOnDrop(shutdown.clone());
    let metrics = Metrics::new();
    let running = tokio::task::spawn_blocking({
        let (s, metrics, shutdown) = (s.clone(), metrics.clone(), shutdown.clone());
        move || {
            let options = RunOptions {
                until_caught_up: false,
                shutdown,
                memory_every: None,
                ..Default::default()
            };
            run(&s, options, metrics)
        }
    });

    let producer: FutureProducer = s.kafka.client_config().create().unwrap();
    let mut expected = Vec::new();
    for (tenant, region, clickhouse) in [
        (&us, "us", "http://127.0.0.1:18123"),
        (&eu, "eu", EU_CLICKHOUSE),
    ] {
        let (reading_id, room_id) = create_tenant_with(&s, tenant, &in_region(region)).await;
        let fleet = fleet(tenant);
        let rooms = room_records(
            fleet.tenants[0].1.iter().map(|r| &r.version),
            room_id,
            START,
        );
        produce_all(&producer, &tenant.rooms_topic(), &rooms).await;
        // Room metadata first, as an onboarding would: the running pipeline mirrors it
        // into the tenant's region once it has picked the tenant up.
        wait_until(&format!("{tenant}'s rooms in {region}"), || {
            has_database(clickhouse, tenant)
                && query(
                    clickhouse,
                    &format!(
                        "SELECT uniqExact(room_id) FROM {}.rooms",
                        tenant.clickhouse_db()
                    ),
                ) == rooms.len().to_string()
        })
        .await;
        let readings = messy_stream(&fleet, 3 * 60, reading_id, &mut Rng(7));
        produce_all(&producer, &tenant.readings_topic(), &readings).await;
        expected.push((tenant.clone(), readings.len() as u64));
    }
    wait_until("every reading consumed", || {
        expected.iter().all(|(tenant, n)| {
            let consumed: u64 = (0..12)
                .map(|p| {
                    metrics
                        .consumed
                        .with_label_values(&[tenant.as_str(), &p.to_string()])
                        .get()
                })
                .sum();
            consumed >= *n
        })
    })
    .await;
    shutdown.store(true, Ordering::Relaxed);
    let report = running.await.unwrap().expect("the pipeline runs");
    assert_accounts(&report);

    // Each tenant's rows and live state are in its region's stores, and only there.
    let rows = |url: &str, t: &TenantId| {
        query(
            url,
            &format!("SELECT count() FROM {}.room_utilization", t.clickhouse_db()),
        )
        .parse::<u64>()
        .unwrap()
    };
    assert!(rows(EU_CLICKHOUSE, &eu) > 0);
    assert!(rows("http://127.0.0.1:18123", &us) > 0);
    assert!(
        !has_database("http://127.0.0.1:18123", &eu),
        "eu rows reached us"
    );
    assert!(!has_database(EU_CLICKHOUSE, &us), "us rows reached eu");
    let us_redis = s.redis.url.clone();
    assert!(!redis_state(EU_REDIS, &eu).await.is_empty());
    assert!(
        redis_state(&us_redis, &eu).await.is_empty(),
        "eu keys in us"
    );
    assert!(!redis_state(&us_redis, &us).await.is_empty());
    assert!(redis_state(EU_REDIS, &us).await.is_empty(), "us keys in eu");

    let report = tenant::residency_report(&s, &eu).await.unwrap();
    assert!(report.violations.is_empty(), "{:?}", report.violations);
    let held: Vec<(&str, bool, u64)> = report
        .regions
        .iter()
        .map(|r| (r.region.as_str(), !r.tables.is_empty(), r.redis_keys))
        .collect();
    assert_eq!(held[0].0, "us");
    assert_eq!((held[0].1, held[0].2), (false, 0), "nothing of eu's in us");
    assert_eq!(held[1].0, "eu");
    assert!(held[1].1 && held[1].2 > 0, "{held:?}");
    assert!(report.regions[1].tables[&format!("{}.room_utilization", eu.clickhouse_db())] > 0);

    // The query service reads each tenant from its region, by token or API key.
    let offices = |t: &TenantId| -> std::collections::BTreeSet<String> {
        fleet(t).tenants[0]
            .1
            .iter()
            .map(|r| r.version.office_id.clone())
            .collect()
    };
    let eu_office = offices(&eu).into_iter().next().unwrap();
    // An office only us has: eu's own office of the same name would be eu's.
    let us_office = offices(&us)
        .difference(&offices(&eu))
        .next()
        .unwrap()
        .clone();
    let config = rf_service::ServiceConfig {
        directory_refresh_secs: 1,
        ..Default::default()
    };
    let base = serve(&config, &s).await;
    let mut us_only = s.clone();
    us_only.regions.serve = vec!["us".into()];
    let us_base = serve(&config, &us_only).await;
    let token = rf_service::mint(&config.jwt_secret, &eu, "residency", 300);
    let (key, listed) = rf_jobs::apikey::create(
        &s.clickhouse,
        &eu,
        "dashboard",
        rf_schemas::tenant::Role::Analyst,
    )
    .await
    .unwrap();
    let get = |base: &str, path: &str, header: (&'static str, String)| {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .new_agent();
        let response = agent
            .get(format!("{base}{path}"))
            .header(header.0, header.1)
            .call()
            .unwrap();
        response.status().as_u16()
    };
    let bearer = || ("Authorization", format!("Bearer {token}"));
    let api_key = || (rf_service::API_KEY, key.clone());
    let eu_path = format!("/v1/offices/{eu_office}/occupancy");
    assert_eq!(
        get(&base, &eu_path, bearer()),
        200,
        "eu's live state, from eu's Redis"
    );
    assert_eq!(
        get(&us_base, &eu_path, bearer()),
        421,
        "a us-only service refuses eu"
    );
    wait_until("the new API key", || get(&base, &eu_path, api_key()) == 200).await;
    let us_path = format!("/v1/offices/{us_office}/occupancy");
    assert_eq!(
        get(&base, &us_path, api_key()),
        404,
        "eu's key reads eu only"
    );
    assert_eq!(
        get(&base, &eu_path, (rf_service::API_KEY, format!("{key}x"))),
        401
    );
    let stored = query(
        "http://127.0.0.1:18123",
        &format!(
            "SELECT sha256 FROM rf_platform.api_keys FINAL WHERE key_id = '{}'",
            listed.key_id
        ),
    );
    assert_eq!(
        stored,
        rf_schemas::tenant::api_key_hash(&key),
        "only the hash is kept"
    );
    rf_jobs::apikey::revoke(&s.clickhouse, &eu, &listed.key_id)
        .await
        .unwrap();
    wait_until("the revocation", || get(&base, &eu_path, api_key()) == 401).await;
    tenant::delete(&s, &eu).await.unwrap();
    wait_until("the deletion", || get(&base, &eu_path, bearer()) == 403).await;
}

/// The fleet of a test tenant: us tenants have one office more than eu ones.
fn fleet(tenant: &TenantId) -> Fleet {
    Fleet::new(&FleetSpec {
        tenants: vec![tenant.clone()],
        offices: if tenant.as_str().starts_with("res-us") {
            3
        } else {
            2
        },
        rooms: 12,
        seed: 5,
    })
}

/// Polls `done` until it holds; fails after two minutes (the stack is shared and slow
/// machines are slow, but nothing here takes that long).
async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn analysts_read_their_own_tenant_only() {
    let a = fresh_tenant("anl-a");
    let b = fresh_tenant("anl-b");
    let mut s = two_regions(a.as_str());
    stack_is_up(&s);
    let data = std::env::var("ROOMFLOW_DATA")
        .unwrap_or_else(|_| format!("{}/../.data", env!("CARGO_MANIFEST_DIR")));
    s.clickhouse.analyst_users_dir = format!("{data}/clickhouse/users.d");
    let mut access = Vec::new();
    for t in [&a, &b] {
        let created = tenant::create(&s, t, &TenantSpec::default()).await.unwrap();
        let analyst = created.analyst;
        assert!(analyst.clickhouse_missing.is_none(), "{analyst:?}");
        access.push((
            analyst.clickhouse_user,
            analyst.clickhouse_password.expect("made now"),
            analyst.redis_user,
            analyst.redis_password.expect("made now"),
        ));
    }
    let again = tenant::create(&s, &a, &TenantSpec::default())
        .await
        .unwrap();
    assert!(
        again.analyst.clickhouse_password.is_none(),
        "passwords are shown once"
    );

    let (ch_user, ch_password, redis_user, redis_password) = &access[0];
    let as_analyst = |sql: &str| {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .new_agent();
        let mut response = agent
            .post("http://127.0.0.1:18123/")
            .query("user", ch_user)
            .query("password", ch_password)
            .send(sql)
            .unwrap();
        let body = response.body_mut().read_to_string().unwrap();
        (response.status().as_u16(), body)
    };
    // The server reads its users.d within seconds.
    let own = format!("SELECT count() FROM {}.rooms", a.clickhouse_db());
    wait_until("the analyst user", || as_analyst(&own).0 == 200).await;
    let (status, body) = as_analyst(&format!("SELECT count() FROM {}.rooms", b.clickhouse_db()));
    assert_ne!(status, 200, "{body}");
    assert!(body.contains("Access denied"), "{body}");
    let (status, body) = as_analyst(&format!(
        "INSERT INTO {}.audit (tenant) VALUES ('x')",
        a.clickhouse_db()
    ));
    assert!(status != 200 && body.contains("readonly"), "{body}");
    let (_, databases) = as_analyst("SELECT name FROM system.databases ORDER BY name");
    assert_eq!(databases.trim(), format!("{}\nsystem", a.clickhouse_db()));
    // Limits: a result past max_result_rows fails; memory, time and concurrency are set.
    // (The answer streams: the limit's error ends a 200 response's body.)
    let (_, body) = as_analyst("SELECT number FROM system.numbers LIMIT 2000000");
    let tail = &body[body.len().saturating_sub(300)..];
    assert!(tail.contains("Limit for result exceeded"), "{tail}");
    assert!(
        !body.contains("\n1999999\n"),
        "the result stopped at the limit"
    );
    let (_, settings) = as_analyst(
        "SELECT name, value FROM system.settings WHERE name IN ('readonly', 'max_memory_usage', \
         'max_execution_time', 'max_concurrent_queries_for_user') ORDER BY name FORMAT TSV",
    );
    assert_eq!(
        settings.trim(),
        "max_concurrent_queries_for_user\t4\nmax_execution_time\t30\nmax_memory_usage\t2147483648\nreadonly\t1"
    );
    // An hourly quota of its own, not the shared default.
    let file = std::fs::read_to_string(format!("{}/{ch_user}.xml", s.clickhouse.analyst_users_dir))
        .unwrap();
    assert!(
        file.contains(&format!("<quota>{ch_user}</quota>"))
            && file.contains("<queries>3600</queries>"),
        "{file}"
    );

    // Redis: a's keys by name, nothing of b's, no listing, no writes.
    let host = s.redis.url.rsplit_once('@').map(|(_, host)| host).unwrap();
    let url = format!("redis://{redis_user}:{redis_password}@{host}");
    let client = redis::Client::open(url).unwrap();
    let conn = client.get_multiplexed_async_connection().await.unwrap();
    let try_cmd = |cmd: redis::Cmd| {
        let mut conn = conn.clone();
        async move { cmd.query_async::<redis::Value>(&mut conn).await }
    };
    assert!(try_cmd(
        redis::cmd("HGETALL")
            .arg(format!("{}room:x", a.redis_prefix()))
            .clone()
    )
    .await
    .is_ok());
    for denied in [
        redis::cmd("HGETALL")
            .arg(format!("{}room:x", b.redis_prefix()))
            .clone(),
        redis::cmd("KEYS").arg("*").clone(),
        redis::cmd("SCAN").arg(0).clone(),
        redis::cmd("SET")
            .arg(format!("{}x", a.redis_prefix()))
            .arg(1)
            .clone(),
    ] {
        let error = try_cmd(denied).await.unwrap_err();
        assert!(
            error.to_string().to_lowercase().contains("noperm"),
            "{error}"
        );
    }
}
