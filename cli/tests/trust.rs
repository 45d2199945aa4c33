//! Trust boundaries on the real stack: what one wrong or hostile sensor, tenant id,
//! token or peer sends changes nobody else's results.

mod common;

use rdkafka::producer::FutureProducer;

use common::{
    assert_accounts, create_tenant, fresh_tenant, london_room, minute_readings, produce_all,
    read_topic, room_records, run_until_caught_up, serve, settings, stack_is_up,
};

const MIN: i64 = 60_000;

/// One sensor whose clock runs 50 minutes ahead (its `ts` and its record timestamp
/// both), among 180 honest readings of the last hour: before, it moved its partition's
/// watermark and 149 honest readings were dead-lettered as `late`. Now it is
/// `future_timestamp`, judged against the pipeline's own clock, and every honest reading
/// is counted or waits in an open window. (A timestamp past what a calendar holds, which
/// panicked a worker, needs a broker without a timestamp cap; the local one refuses it,
/// so `operators/tests/hostile.rs` feeds it to the operators directly.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sensor_clock_ahead_of_the_pipeline_hurts_no_honest_reading() {
    let tenant = fresh_tenant("clock");
    let s = settings(&tenant);
    stack_is_up(&s);
    let (reading_id, room_id) = create_tenant(&tenant).await;
    let producer: FutureProducer = s.kafka.client_config().create().unwrap();
    let rooms = ["lon-a", "lon-b", "lon-c"].map(|id| london_room(id, 4));
    produce_all(
        &producer,
        &tenant.rooms_topic(),
        &room_records(&rooms, room_id, 1_704_067_200_000),
    )
    .await;

    let now = chrono::Utc::now().timestamp_millis() / MIN * MIN;
    let honest = minute_readings(
        reading_id,
        (now - 60 * MIN, now),
        &["lon-a", "lon-b", "lon-c"],
        |_, _| Some(2),
    );
    assert_eq!(honest.len(), 180);
    let liar = |ts: i64| {
        let r = &minute_readings(reading_id, (ts, ts + 1), &["lon-a"], |_, _| Some(3))[0];
        (r.0.clone(), r.1.clone(), ts)
    };
    // The liar comes after the first five honest minutes; all share one partition.
    let mut records = honest[..15].to_vec();
    records.push(liar(now + 50 * MIN));
    records.extend_from_slice(&honest[15..]);
    produce_all(&producer, &tenant.readings_topic(), &records).await;

    let report = run_until_caught_up(&s).await;
    assert_accounts(&report);
    assert_eq!(report.stats.consumed, 181);
    assert_eq!(report.stats.dead_letters, 1, "{:?}", report.stats);
    assert_eq!(report.stats.counted + report.stats.pending, 180);
    let letters = read_topic(&s.kafka, &tenant.deadletter_topic(), 1);
    let got: Vec<(&str, &str)> = letters
        .iter()
        .map(|(_, _, h)| (h["rf-source-offset"].as_str(), h["rf-reason"].as_str()))
        .collect();
    assert_eq!(got, [("15", "future_timestamp")]);
    let detail = &letters[0].2["rf-detail"];
    assert!(detail.contains("pipeline's clock"), "{detail}");
}

/// The status of a GET with a bearer token, off the async runtime.
async fn status(url: String, token: String) -> u16 {
    tokio::task::spawn_blocking(move || {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .new_agent();
        agent
            .get(&url)
            .header("Authorization", format!("Bearer {token}"))
            .call()
            .unwrap()
            .status()
            .as_u16()
    })
    .await
    .unwrap()
}

/// Waits (up to 20 s) until a GET answers `want`; returns the last status.
async fn answers(url: &str, token: &str, want: u16) -> u16 {
    let mut last = 0;
    for _ in 0..100 {
        last = status(url.to_owned(), token.to_owned()).await;
        if last == want {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    last
}

async fn redis_keys(url: &str, pattern: &str) -> Vec<String> {
    let client = redis::Client::open(common::admin(url)).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    redis::cmd("KEYS")
        .arg(pattern)
        .query_async(&mut conn)
        .await
        .unwrap()
}

/// A validly signed token is worth nothing for a tenant the platform does not have
/// (never created, or erased), nor once its tenant revoked it; before, a token for a
/// tenant that was never created was answered with 200 and made Redis keys.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_of_unknown_erased_or_revoked_tenants_are_refused() {
    let tenant = fresh_tenant("tokens");
    let ghost = fresh_tenant("ghost");
    let s = settings(&tenant);
    stack_is_up(&s);
    create_tenant(&tenant).await;
    let config = rf_service::ServiceConfig {
        directory_refresh_secs: 1,
        ..Default::default()
    };
    let base = serve(&config, &s).await;
    let url = format!("{base}/v1/offices");
    let mint = |t: &rf_schemas::TenantId| rf_service::mint(&config.jwt_secret, t, "trust", 300);

    assert_eq!(status(url.clone(), mint(&tenant)).await, 200);
    assert_eq!(
        status(url.clone(), mint(&ghost)).await,
        401,
        "never created"
    );
    let redis = &s.redis.url;
    assert_eq!(
        redis_keys(redis, &format!("{}*", ghost.redis_prefix())).await,
        Vec::<String>::new(),
        "a refused caller makes no keys"
    );

    // Revoked: every token issued before the revocation, not the ones after.
    let before = mint(&tenant);
    rf_jobs::apikey::revoke_tokens(&s.clickhouse, &tenant, "test")
        .await
        .unwrap();
    assert_eq!(answers(&url, &before, 401).await, 401, "revoked");
    tokio::time::sleep(std::time::Duration::from_millis(2_100)).await;
    assert_eq!(
        status(url.clone(), mint(&tenant)).await,
        200,
        "minted after"
    );

    // Erased: the tenant is gone, and so is what its tokens reach.
    rf_jobs::erase::all_steps(&s, &tenant).await.unwrap();
    assert_eq!(answers(&url, &mint(&tenant), 401).await, 401, "erased");
}

/// `roomflow token` mints nothing the service would refuse: no 100-year tokens.
#[test]
fn the_cli_refuses_a_token_lifetime_past_the_maximum_age() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_roomflow"))
        .args(["token", "--tenant", "acme", "--ttl", "36500d"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--ttl") && stderr.contains("jwt_max_age_secs"),
        "{stderr}"
    );
    let ok = std::process::Command::new(env!("CARGO_BIN_EXE_roomflow"))
        .args(["token", "--tenant", "acme", "--ttl", "7d"])
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
}

/// A tenant id whose names are the platform's is refused before anything is made:
/// before, `tenant create platform` succeeded, its database was `rf_platform`, and its
/// analyst user was granted the platform's tables.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_id_that_names_the_platform_is_refused() {
    let platform = rf_schemas::TenantId::parse("platform").unwrap();
    let s = settings(&platform);
    stack_is_up(&s);
    let refused = rf_jobs::tenant::create(&s, &platform, &Default::default())
        .await
        .expect_err("reserved");
    assert!(refused.to_string().contains("rf_platform"), "{refused}");
    let erase = rf_jobs::erase::step(
        &s,
        std::path::Path::new(""),
        &Default::default(),
        &platform,
        "no-job",
        rf_jobs::erase::Step::Topics,
    )
    .await;
    assert!(erase.is_err(), "nor is anything erased under it");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_roomflow"))
        .args(["tenant", "create", "platform"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("reserved"), "{stderr}");
}

/// A write that can never succeed (here, a column the table lost) is not retried while
/// lag grows: the tenant is quarantined at once (its partitions paused, its offsets left
/// where the failure was), and the run says which tenant, which table and why. Before,
/// it stopped the whole pipeline: now a healthy tenant served beside it gets every row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_permanent_sink_error_quarantines_its_tenant_only_and_says_where() {
    let (tenant, healthy) = (fresh_tenant("broken"), fresh_tenant("healthy"));
    let mut s = settings(&tenant);
    s.pipeline.tenants.push(healthy.to_string());
    stack_is_up(&s);
    let (reading_id, room_id) = create_tenant(&tenant).await;
    let (healthy_reading, healthy_room) = create_tenant(&healthy).await;
    let db = tenant.clickhouse_db();
    common::clickhouse_lines(&format!(
        "ALTER TABLE {db}.room_utilization DROP COLUMN occupied_ratio"
    ));
    let producer: FutureProducer = s.kafka.client_config().create().unwrap();
    let rooms = ["lon-a"].map(|id| london_room(id, 4));
    let t0 = 1_767_603_600_000; // 2026-01-05T09:00:00Z
    for (t, reading_id, room_id) in [
        (&tenant, reading_id, room_id),
        (&healthy, healthy_reading, healthy_room),
    ] {
        produce_all(
            &producer,
            &t.rooms_topic(),
            &room_records(&rooms, room_id, 1_704_067_200_000),
        )
        .await;
        let readings = minute_readings(reading_id, (t0, t0 + 30 * MIN), &["lon-a"], |_, _| Some(1));
        produce_all(&producer, &t.readings_topic(), &readings).await;
    }

    let run = tokio::task::spawn_blocking(move || {
        let options = rf_pipelines::RunOptions {
            until_caught_up: true,
            ..Default::default()
        };
        rf_pipelines::run(&s, options, rf_pipelines::Metrics::new())
    });
    let failed = tokio::time::timeout(std::time::Duration::from_secs(120), run)
        .await
        .expect("a permanent error is not retried for minutes")
        .unwrap()
        .expect_err("the run says a tenant was quarantined");
    let message = failed.to_string();
    for part in [
        tenant.as_str(),
        "room_utilization",
        "permanent",
        "quarantined",
    ] {
        assert!(message.contains(part), "{part}: {message}");
    }
    assert!(!message.contains(healthy.as_str()), "{message}");
    let samples = common::clickhouse_lines(&format!(
        "SELECT sum(samples) FROM {}.room_utilization FINAL WHERE granularity = '15m'",
        healthy.clickhouse_db()
    ));
    assert_eq!(
        samples,
        ["30"],
        "every reading of the healthy tenant is written"
    );
    // A tenant whose table cannot take rows would be quarantined by the demo's pipeline
    // too (it serves every tenant of this stack): it goes.
    rf_jobs::erase::all_steps(&settings(&tenant), &tenant)
        .await
        .unwrap();
}

/// Each component reaches Redis as its own user with the least rights it needs: the
/// pipeline only writes the live keys and counters, the query service reads them and
/// writes only its caches and rate limits, the jobs delete and manage analysts' users.
/// None can run administrative commands, and none reaches keys outside `rf:`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_component_has_its_own_redis_user_with_least_rights() {
    let tenant = fresh_tenant("redis-roles");
    let s = settings(&tenant);
    stack_is_up(&s);
    let (pipeline, service, jobs) = (
        s.redis.url.as_str(),
        s.redis.service_connection(),
        s.redis.jobs_connection(),
    );
    assert!(pipeline != service && service != jobs && pipeline != jobs);
    let key = |name: &str| format!("{}{name}", tenant.redis_prefix());
    let (room, generation, cache, limit) = (
        key("room:r1"),
        key("generation"),
        key("cache:q"),
        key("ratelimit:general"),
    );
    let all = key("*");
    let allowed: [(&str, &str, Vec<&str>); 7] = [
        ("pipeline", pipeline, vec!["HSET", &room, "people", "1"]),
        ("pipeline", pipeline, vec!["INCR", &generation]),
        ("service", service, vec!["HGETALL", &room]),
        ("service", service, vec!["SET", &cache, "{}", "EX", "60"]),
        ("service", service, vec!["INCR", &limit]),
        ("jobs", jobs, vec!["SCAN", "0", "MATCH", &all]),
        ("jobs", jobs, vec!["DEL", &cache]),
    ];
    for (who, url, args) in allowed {
        redis_as(url, &args)
            .await
            .unwrap_or_else(|e| panic!("{who} may {args:?}: {e}"));
    }
    let refused: [(&str, &str, Vec<&str>); 11] = [
        ("pipeline", pipeline, vec!["HGETALL", &room]),
        ("pipeline", pipeline, vec!["KEYS", "rf:*"]),
        ("pipeline", pipeline, vec!["HSET", "elsewhere", "a", "1"]),
        (
            "pipeline",
            pipeline,
            vec!["ACL", "SETUSER", "intruder", "on", ">x", "+@all"],
        ),
        ("service", service, vec!["SET", &room, "planted"]),
        ("service", service, vec!["INCR", &generation]),
        ("service", service, vec!["DEL", &room]),
        ("service", service, vec!["KEYS", "rf:*"]),
        ("jobs", jobs, vec!["FLUSHALL"]),
        ("jobs", jobs, vec!["CONFIG", "SET", "appendonly", "yes"]),
        ("jobs", jobs, vec!["CLIENT", "KILL", "ID", "1"]),
    ];
    for (who, url, args) in refused {
        let e = redis_as(url, &args)
            .await
            .expect_err(&format!("{who} may not {args:?}"));
        assert!(e.to_uppercase().contains("NOPERM"), "{who} {args:?}: {e}");
    }
    let mut left = redis_keys(&s.redis.url, &all).await;
    left.sort();
    assert_eq!(left, [generation, limit, room]);
    assert!(redis_keys(&s.redis.url, "elsewhere").await.is_empty());
}

/// Runs one command as the user of `url`.
async fn redis_as(url: &str, args: &[&str]) -> Result<(), String> {
    let client = redis::Client::open(url).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    cmd.query_async::<redis::Value>(&mut conn)
        .await
        .map(drop)
        .map_err(|e| e.to_string())
}

/// The local stack's Redis takes no connection without a password: its `default` user
/// is off, so a tenant's analyst user (or anyone on the host) cannot fall back to it and
/// read or plant other tenants' keys.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_refuses_connections_without_a_user() {
    let s = settings(&fresh_tenant("redis-auth"));
    stack_is_up(&s);
    let anonymous = s
        .redis
        .url
        .rsplit_once('@')
        .map(|(_, host)| format!("redis://{host}"))
        .expect("the configured URL names roomflow's user");
    let client = redis::Client::open(anonymous).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let refused = redis::cmd("GET")
        .arg("rf:any:generation")
        .query_async::<Option<String>>(&mut conn)
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("NOAUTH"), "{refused}");
    assert_eq!(
        redis_keys(&s.redis.url, "rf:no-such-tenant:*").await.len(),
        0
    );
}
