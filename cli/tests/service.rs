//! The query service against the local stack: rate limits shared by several `serve`
//! processes.

mod common;

use rf_jobs::simulate::{Fleet, FleetSpec};
use rf_service::limits::{Limit, TierLimits};
use rf_service::ServiceConfig;

use common::*;

/// Status, headers and JSON body (null if none) of a GET with a bearer token.
fn get_full(url: &str, token: &str) -> (u16, Vec<(String, String)>, serde_json::Value) {
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .new_agent();
    let response = agent
        .get(url)
        .header("Authorization", format!("Bearer {token}"))
        .call()
        .unwrap();
    let headers = response
        .headers()
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_str().unwrap_or_default().to_owned()))
        .collect();
    let status = response.status().as_u16();
    (
        status,
        headers,
        response.into_body().read_json().unwrap_or_default(),
    )
}

/// Status and headers of a GET with a bearer token.
fn get(url: &str, token: &str) -> (u16, Vec<(String, String)>) {
    let (status, headers, _) = get_full(url, token);
    (status, headers)
}

fn header<'h>(headers: &'h [(String, String)], name: &str) -> Option<&'h str> {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_are_per_tenant_shared_by_every_process_and_answer_429() {
    let tenant = fresh_tenant("limits");
    let other = fresh_tenant("limits-other");
    let s = settings(&tenant);
    stack_is_up(&s);
    create_tenant(&tenant).await;
    create_tenant(&other).await;
    let mut config = ServiceConfig::default();
    let tight = TierLimits {
        general: Limit {
            requests: 3,
            window_secs: 60,
        },
        analytics: Limit {
            requests: 1,
            window_secs: 60,
        },
        ingest: Limit {
            requests: 1,
            window_secs: 60,
        },
    };
    config.rate_limits.insert("standard".into(), tight);
    // Two processes of the same region.
    let (a, b) = (serve(&config, &s).await, serve(&config, &s).await);
    let token = rf_service::mint(&config.jwt_secret, &tenant, "limits", 300);
    let path = "/v1/offices/nowhere/occupancy";
    let results = tokio::task::spawn_blocking(move || {
        [&a, &b, &a, &b]
            .iter()
            .map(|base| get(&format!("{base}{path}"), &token))
            .collect::<Vec<_>>()
    })
    .await
    .unwrap();
    let remaining: Vec<Option<&str>> = results[..3]
        .iter()
        .map(|(_, h)| header(h, "ratelimit-remaining"))
        .collect();
    assert_eq!(remaining, [Some("2"), Some("1"), Some("0")]);
    assert!(
        results[..3].iter().all(|(status, _)| *status == 404),
        "counted, then answered"
    );
    let (status, headers) = &results[3];
    assert_eq!(*status, 429);
    let retry: u64 = header(headers, "retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    assert_eq!(header(headers, "ratelimit-limit"), Some("3"));

    // Another tenant has its own count; analytics (a range over seven days) its own limit.
    let c = serve(&config, &settings(&other)).await;
    let token = rf_service::mint(&config.jwt_secret, &other, "limits", 300);
    let long =
        "/v1/rooms/r1/utilization?granularity=1d&from=2026-01-01T00:00:00Z&to=2026-02-01T00:00:00Z";
    let short =
        "/v1/rooms/r1/utilization?granularity=1h&from=2026-01-01T00:00:00Z&to=2026-01-02T00:00:00Z";
    let statuses = tokio::task::spawn_blocking(move || {
        [long, long, short]
            .iter()
            .map(|path| get(&format!("{c}{path}"), &token).0)
            .collect::<Vec<_>>()
    })
    .await
    .unwrap();
    assert_eq!(
        statuses,
        [404, 429, 404],
        "one analytics request, then general ones"
    );
}

/// Status and JSON body of a GET with a bearer token.
fn get_json(url: &str, token: &str) -> (u16, serde_json::Value) {
    let (status, _, body) = get_full(url, token);
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn portfolio_endpoints_answer_from_the_tenants_stores() {
    let tenant = fresh_tenant("portfolio");
    let s = settings(&tenant);
    stack_is_up(&s);
    let fleet = Fleet::new(&FleetSpec {
        tenants: vec![tenant.clone()],
        offices: 3,
        rooms: 18,
        seed: 3,
    });
    let (reading_id, _) = create_tenant(&tenant).await;
    // 18:00 to 01:00 UTC: London's day ends, and becomes final.
    let readings = messy_stream(&fleet, 7 * 60, reading_id, &mut Rng(9));
    provision(&tenant, &fleet, &readings).await;
    run_until_caught_up(&s).await;

    let config = ServiceConfig::default();
    let base = serve(&config, &s).await;
    let token = rf_service::mint(&config.jwt_secret, &tenant, "portfolio", 300);
    let rooms: Vec<rf_schemas::RoomVersion> = fleet.tenants[0]
        .1
        .iter()
        .map(|r| r.version.clone())
        .collect();
    let db = tenant.clickhouse_db();
    let expected_series = clickhouse_lines(&format!(
        "SELECT office_id, count() FROM {db}.office_utilization FINAL WHERE granularity = '1h' GROUP BY office_id ORDER BY office_id"
    ));
    let expected_ranking = clickhouse_lines(&format!(
        "SELECT office_id FROM {db}.office_utilization FINAL WHERE granularity = '1d' \
         GROUP BY office_id ORDER BY avg(utilization) DESC, office_id"
    ));
    // The under-used rooms count final days only: the stream crosses London's midnight.
    let rooms_with_days = clickhouse_lines(&format!(
        "SELECT count(DISTINCT room_id) FROM {db}.room_utilization FINAL \
         WHERE granularity = '1d' AND final = 1"
    ));
    assert_ne!(rooms_with_days, ["0"], "some rooms have a final day");
    // Each room's hours, as ClickHouse has them: the truth for the series below.
    let room_hours = clickhouse_lines(&format!(
        "SELECT room_id, groupArray(toString(utilization)) FROM \
         (SELECT room_id, utilization FROM {db}.room_utilization FINAL \
          WHERE granularity = '1h' ORDER BY room_id, window_start) GROUP BY room_id ORDER BY room_id"
    ));
    tokio::task::spawn_blocking(move || {
        let get = |path: &str| get_json(&format!("{base}{path}"), &token);
        // Offices, a page at a time.
        let mut offices = Vec::new();
        let mut cursor = String::new();
        loop {
            let (status, page) = get(&format!("/v1/offices?limit=2&cursor={cursor}"));
            assert_eq!(status, 200, "{page}");
            offices.extend(page["offices"].as_array().unwrap().iter().cloned());
            match page["next_cursor"].as_str() {
                Some(next) => cursor = next.to_owned(),
                None => break,
            }
        }
        let ids: std::collections::BTreeSet<String> =
            rooms.iter().map(|r| r.office_id.clone()).collect();
        let listed: Vec<&str> = offices
            .iter()
            .map(|o| o["office_id"].as_str().unwrap())
            .collect();
        assert_eq!(listed, ids.iter().map(String::as_str).collect::<Vec<_>>());

        // Each office's rooms and capacity match the fleet's metadata.
        for office in &offices {
            let id = office["office_id"].as_str().unwrap();
            let mine: Vec<_> = rooms.iter().filter(|r| r.office_id == id).collect();
            let capacity: u64 = mine.iter().map(|r| u64::from(r.capacity)).sum();
            assert_eq!(
                office["rooms"].as_u64(),
                Some(mine.len() as u64),
                "{office}"
            );
            assert_eq!(office["capacity"].as_u64(), Some(capacity), "{office}");
            let (status, listed) = get(&format!("/v1/offices/{id}/rooms"));
            assert_eq!(status, 200);
            assert_eq!(listed["rooms"].as_array().unwrap().len(), mine.len());
        }

        // A room's live state; an office's series, whole and by floor.
        let room = &rooms[0];
        let (status, live) = get(&format!("/v1/rooms/{}/occupancy", room.room_id));
        assert_eq!(status, 200, "{live}");
        assert_eq!(live["office_id"], room.office_id.as_str());
        let range = "granularity=1h&from=2026-03-28T00:00:00Z&to=2026-03-30T00:00:00Z";
        for line in &expected_series {
            let (office, count) = line.split_once('\t').unwrap();
            let (status, series) = get(&format!("/v1/offices/{office}/utilization?{range}"));
            assert_eq!(status, 200, "{series}");
            assert_eq!(
                series["windows"].as_array().unwrap().len().to_string(),
                count
            );
        }
        let (status, floor) = get(&format!(
            "/v1/offices/{}/utilization?{range}&floor={}",
            room.office_id, room.floor
        ));
        assert_eq!(status, 200, "{floor}");
        let windows = floor["windows"].as_array().unwrap();
        assert!(!windows.is_empty());
        assert!(windows
            .iter()
            .all(|w| w["utilization"].as_f64().unwrap() >= 0.0));

        // Clear 4xx answers naming the parameter.
        for (path, parameter) in [
            ("/v1/offices?limit=0", "limit"),
            ("/v1/offices?cursor=a%20b", "cursor"),
            (
                &format!("/v1/offices/{}/utilization?floor=9999", room.office_id),
                "floor",
            ),
            (
                &format!("/v1/offices/{}/utilization?granularity=2h", room.office_id),
                "granularity",
            ),
        ] {
            let (status, body) = get(path);
            assert_eq!(
                (status, body["parameter"].as_str()),
                (400, Some(parameter)),
                "{path}"
            );
        }
        assert_eq!(get("/v1/offices/nowhere/rooms").0, 404);
        assert_eq!(get("/v1/rooms/nowhere/occupancy").0, 404);
        // Analytics over the stream's days (to: the day after).
        let to = "to=2026-03-30T00:00:00Z";
        let (status, ranking) = get(&format!("/v1/offices/ranking?days=7&{to}"));
        assert_eq!(status, 200, "{ranking}");
        let ranked: Vec<&str> = ranking["offices"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["office_id"].as_str().unwrap())
            .collect();
        assert_eq!(ranked, expected_ranking);
        let (status, under) = get(&format!("/v1/insights/underused?days=7&threshold=1&{to}"));
        assert_eq!(status, 200, "{under}");
        assert_eq!(under["rooms_below"].to_string(), rooms_with_days[0]);
        let listed = under["rooms"].as_array().unwrap();
        let savings: Vec<f64> = listed
            .iter()
            .map(|r| r["monthly_saving"].as_f64().unwrap_or(0.0))
            .collect();
        assert!(
            savings.windows(2).all(|w| w[0] >= w[1]),
            "the costliest first"
        );
        let total: f64 = savings.iter().sum();
        assert!((under["monthly_saving"].as_f64().unwrap() - total).abs() < 1e-6);
        let (status, heat) = get(&format!(
            "/v1/offices/{}/heatmap?weeks=1&{to}",
            room.office_id
        ));
        assert_eq!(status, 200, "{heat}");
        let grid = heat["utilization"].as_array().unwrap();
        assert_eq!(grid.len(), 7);
        assert!(grid.iter().all(|day| day.as_array().unwrap().len() == 24));
        let seen = grid
            .iter()
            .flat_map(|day| day.as_array().unwrap())
            .filter(|c| !c.is_null())
            .count();
        assert!(
            seen > 0 && heat["hours_seen"].as_u64().unwrap() >= seen as u64,
            "{heat}"
        );
        assert_eq!(get("/v1/offices/ranking?days=0").1["parameter"], "days");
        assert_eq!(
            get("/v1/insights/underused?threshold=2").1["parameter"],
            "threshold"
        );
        assert_eq!(get("/v1/offices/nowhere/heatmap").0, 404);

        let (status, spec) = get("/openapi.json");
        assert_eq!(status, 200);
        assert_eq!(spec["openapi"], "3.0.3");
    })
    .await
    .unwrap();

    // Every authenticated request is in the tenant's audit table, with its parameters.
    let audited = |filter: &str| {
        clickhouse_lines(&format!(
            "SELECT count() FROM {db}.audit WHERE tenant = '{tenant}' AND subject = 'portfolio' {filter}"
        ))[0]
            .parse::<u64>()
            .unwrap()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while audited("") < 20 {
        assert!(
            std::time::Instant::now() < deadline,
            "audit rows did not arrive"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let heatmaps =
        "AND route = '/v1/offices/{office_id}/heatmap' AND status = 200 AND request_id != ''";
    assert_eq!(audited(heatmaps), 1);
    let rejected = "AND status = 400 AND query = 'limit=0'";
    assert_eq!(
        audited(rejected),
        1,
        "bad requests of an authenticated caller too"
    );

    // Without a memory cache every request reads: requests for rooms of the same range
    // that wait for the tenant's one analytics slot are read by one query, and each
    // must get exactly its own room's windows.
    let mut uncached = ServiceConfig {
        memory_cache_mib: 0,
        cache_ttl_secs: 0,
        ..ServiceConfig::default()
    };
    for limits in uncached.rate_limits.values_mut() {
        limits.analytics.requests = 1000;
    }
    let uncached_base = serve(&uncached, &s).await;
    let uncached_token = rf_service::mint(&uncached.jwt_secret, &tenant, "portfolio", 300);
    let range = "granularity=1h&from=2026-03-20T00:00:00Z&to=2026-03-30T00:00:00Z";
    let mut answers = Vec::new();
    for line in (0..3).flat_map(|_| room_hours.clone()) {
        let room = line.split_once('\t').unwrap().0;
        let url = format!("{uncached_base}/v1/rooms/{room}/utilization?{range}");
        let token = uncached_token.clone();
        answers.push(tokio::task::spawn_blocking(move || {
            (line, get_json(&url, &token))
        }));
    }
    for answer in answers {
        let (line, (status, series)) = answer.await.unwrap();
        assert_eq!(status, 200, "{series}");
        let (room, hours) = line.split_once('\t').unwrap();
        assert_eq!(series["room_id"], room);
        let want: Vec<f64> = hours
            .trim_matches(|c| c == '[' || c == ']')
            .split(',')
            .map(|h| h.trim_matches('\'').parse().unwrap())
            .collect();
        let got: Vec<f64> = series["windows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| w["utilization"].as_f64().unwrap())
            .collect();
        assert_eq!(got.len(), want.len(), "{room}: {series}");
        assert!(
            got.iter().zip(&want).all(|(g, w)| (g - w).abs() < 1e-12),
            "{room}: {got:?} != {want:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rs256_tokens_from_a_jwks_file_are_the_only_ones_accepted() {
    let tenant = fresh_tenant("rs256");
    let s = settings(&tenant);
    stack_is_up(&s);
    create_tenant(&tenant).await;
    let testdata = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata");
    let config = ServiceConfig {
        jwks: testdata
            .join("jwt-test-rs256.jwks.json")
            .display()
            .to_string(),
        ..idp_config()
    };
    let base = serve(&config, &s).await;
    let rs = rs256_token(&tenant);
    let hs = rf_service::mint(&ServiceConfig::default().jwt_secret, &tenant, "x", 300);
    let statuses = tokio::task::spawn_blocking(move || {
        let url = format!("{base}/v1/offices/nowhere/occupancy");
        [get(&url, &rs).0, get(&url, &hs).0]
    })
    .await
    .unwrap();
    assert_eq!(
        statuses,
        [404, 401],
        "RS256 passes (nothing there), HS256 does not"
    );
}

/// A token for `tenant` signed with the test RSA key, key id `roomflow-test-1`.
/// A service taking RS256 tokens of the test identity provider (its JWKS to be set).
fn idp_config() -> ServiceConfig {
    ServiceConfig {
        jwt_algorithm: rf_service::JwtAlgorithm::Rs256,
        jwt_issuer: IDP_ISSUER.into(),
        jwt_audience: IDP_AUDIENCE.into(),
        ..Default::default()
    }
}

const IDP_ISSUER: &str = "https://idp.test.roomflow";
const IDP_AUDIENCE: &str = "roomflow-api";

fn rs256_token(tenant: &rf_schemas::TenantId) -> String {
    let testdata = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata");
    let pem = std::fs::read(testdata.join("jwt-test-rs256.pem")).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = rf_service::auth::Claims {
        sub: "app".into(),
        tenant: tenant.to_string(),
        exp: now + 300,
        nbf: now - 1,
        scope: rf_service::READ_SCOPE.into(),
        iat: Some(now - 1),
        iss: Some(IDP_ISSUER.into()),
        aud: Some(IDP_AUDIENCE.into()),
        role: None,
    };
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some("roomflow-test-1".into());
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(&pem).unwrap();
    jsonwebtoken::encode(&header, &claims, &key).unwrap()
}

/// A key rotated in at the identity provider is accepted once the service reads the JWKS
/// again, without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_added_to_the_jwks_is_accepted_without_a_restart() {
    let tenant = fresh_tenant("jwks");
    let s = settings(&tenant);
    stack_is_up(&s);
    create_tenant(&tenant).await;
    let testdata = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata");
    let current = std::fs::read_to_string(testdata.join("jwt-test-rs256.jwks.json")).unwrap();
    // Before the rotation the provider publishes the same key under another id only.
    let before = current.replace("roomflow-test-1", "roomflow-test-0");
    let jwks = std::env::temp_dir().join(format!("roomflow-{tenant}.jwks.json"));
    std::fs::write(&jwks, &before).unwrap();
    let config = ServiceConfig {
        jwks: jwks.display().to_string(),
        jwks_refresh_secs: 1,
        ..idp_config()
    };
    let base = serve(&config, &s).await;
    let token = rs256_token(&tenant);
    let url = format!("{base}/v1/offices/nowhere/occupancy");
    let status = |url: String, token: String| async move {
        tokio::task::spawn_blocking(move || get(&url, &token).0)
            .await
            .unwrap()
    };
    assert_eq!(
        status(url.clone(), token.clone()).await,
        401,
        "an unknown key id"
    );
    std::fs::write(&jwks, &current).unwrap();
    let mut seen = 401;
    for _ in 0..100 {
        seen = status(url.clone(), token.clone()).await;
        if seen != 401 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    std::fs::remove_file(&jwks).unwrap();
    assert_eq!(seen, 404, "the rotated-in key passes (nothing there)");
}

/// Status and body text of a GET with the given headers.
fn fetch(url: &str, headers: &[(&str, String)]) -> (u16, String) {
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .new_agent();
    let mut request = agent.get(url);
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let response = request.call().unwrap();
    let status = response.status().as_u16();
    (
        status,
        response.into_body().read_to_string().unwrap_or_default(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_credential_parameter_or_id_reaches_another_tenants_data() {
    use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
    let a = fresh_tenant("iso-a");
    let b = fresh_tenant("iso-b");
    let mut s = settings(&a);
    s.pipeline.tenants.push(b.to_string());
    stack_is_up(&s);
    let fleet = |t: &rf_schemas::TenantId, offices| {
        Fleet::new(&FleetSpec {
            tenants: vec![t.clone()],
            offices,
            rooms: 9,
            seed: 4,
        })
    };
    let (fa, fb) = (fleet(&a, 2), fleet(&b, 3));
    for (t, f) in [(&a, &fa), (&b, &fb)] {
        let (reading_id, _) = create_tenant(t).await;
        let readings = messy_stream(f, 2 * 60, reading_id, &mut Rng(5));
        provision(t, f, &readings).await;
    }
    run_until_caught_up(&s).await;
    // An office and a room only b has.
    let a_offices: Vec<String> = fa.tenants[0]
        .1
        .iter()
        .map(|r| r.version.office_id.clone())
        .collect();
    let b_only = fb.tenants[0]
        .1
        .iter()
        .map(|r| &r.version)
        .find(|v| !a_offices.contains(&v.office_id))
        .unwrap()
        .clone();
    let a_room = fa.tenants[0].1[0].version.clone();

    let config = ServiceConfig::default();
    let base = serve(&config, &s).await;
    let secret = config.jwt_secret.clone();
    let token = rf_service::mint(&secret, &a, "iso", 300);
    tokio::task::spawn_blocking(move || {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let claims = |tenant: &str, exp: u64, nbf: u64, scope: &str| rf_service::auth::Claims {
            sub: "iso".into(),
            tenant: tenant.into(),
            exp,
            nbf,
            scope: scope.into(),
            iat: Some(nbf.min(now)),
            iss: None,
            aud: None,
            role: None,
        };
        let key = EncodingKey::from_secret(secret.expose().as_bytes());
        let hs = |c: &rf_service::auth::Claims| encode(&Header::default(), c, &key).unwrap();
        let bad_tokens = [
            (
                "expired",
                hs(&claims(a.as_str(), now - 3600, now - 7200, "read")),
            ),
            (
                "not yet valid",
                hs(&claims(a.as_str(), now + 7200, now + 3600, "read")),
            ),
            (
                "no read scope",
                hs(&claims(a.as_str(), now + 300, now, "write")),
            ),
            (
                "injected tenant",
                hs(&claims("iso-a' OR '1'='1", now + 300, now, "read")),
            ),
            (
                "wrong key",
                encode(
                    &Header::default(),
                    &claims(a.as_str(), now + 300, now, "read"),
                    &EncodingKey::from_secret(b"another-key-entirely"),
                )
                .unwrap(),
            ),
            (
                "wrong algorithm",
                encode(
                    &Header::new(Algorithm::HS384),
                    &claims(a.as_str(), now + 300, now, "read"),
                    &key,
                )
                .unwrap(),
            ),
            (
                "alg none",
                format!(
                    "{}.{}.",
                    b64(r#"{"alg":"none","typ":"JWT"}"#),
                    b64(&format!(
                        r#"{{"sub":"x","tenant":"{a}","exp":{},"nbf":0,"scope":"read"}}"#,
                        now + 300
                    ))
                ),
            ),
            (
                "forged signature",
                format!("{}x", &token[..token.len() - 1]),
            ),
            ("garbage", "not.a.token".to_owned()),
        ];
        let office = &a_room.office_id;
        let room = &a_room.room_id;
        let endpoints = [
            "/v1/offices".to_owned(),
            format!("/v1/offices/{office}/rooms"),
            format!("/v1/offices/{office}/occupancy"),
            format!("/v1/offices/{office}/utilization"),
            format!("/v1/offices/{office}/heatmap"),
            "/v1/offices/ranking".to_owned(),
            "/v1/insights/underused".to_owned(),
            format!("/v1/rooms/{room}/occupancy"),
            format!("/v1/rooms/{room}/utilization"),
        ];
        let bearer = |t: &str| vec![("Authorization", format!("Bearer {t}"))];
        for path in &endpoints {
            let url = format!("{base}{path}");
            assert!(fetch(&url, &bearer(&token)).0 < 500, "{path}");
            assert_eq!(fetch(&url, &[]).0, 401, "{path} without a credential");
            for (what, bad) in &bad_tokens {
                assert_eq!(
                    fetch(&url, &bearer(bad)).0,
                    401,
                    "{path} with a token {what}"
                );
            }
            let key = vec![(rf_service::API_KEY, "rfk_000000000000_guess".to_owned())];
            assert_eq!(fetch(&url, &key).0, 401, "{path} with a made-up API key");
        }
        // b's ids with a's token: nothing.
        for path in [
            format!("/v1/offices/{}/rooms", b_only.office_id),
            format!("/v1/offices/{}/occupancy", b_only.office_id),
            format!("/v1/offices/{}/utilization", b_only.office_id),
            format!(
                "/v1/offices/{}/heatmap?to=2026-03-30T00:00:00Z",
                b_only.office_id
            ),
            format!("/v1/rooms/{}/occupancy", b_only.room_id),
        ] {
            assert_eq!(
                fetch(&format!("{base}{path}"), &bearer(&token)).0,
                404,
                "{path}"
            );
        }
        // Hostile and absurd values in every parameter: never 5xx, never b's data (some
        // are valid values, e.g. `-1` as a cursor).
        let hostile = [
            "x' OR '1'='1",
            "1; DROP TABLE rooms --",
            "../../etc/passwd",
            "%00",
            "-1",
            "NaN",
            "99999999999999999999",
            "9999-99-99T99:99:99Z",
            &"a".repeat(5000),
        ];
        for value in hostile {
            let v = urlencode(value);
            for path in [
                format!("/v1/offices/{v}/rooms"),
                format!("/v1/offices/{v}/occupancy"),
                format!("/v1/rooms/{v}/utilization"),
                format!("/v1/offices?limit={v}"),
                format!("/v1/offices?cursor={v}"),
                format!("/v1/offices/{office}/utilization?granularity={v}"),
                format!("/v1/offices/{office}/utilization?from={v}"),
                format!("/v1/offices/{office}/utilization?floor={v}"),
                format!("/v1/offices/{office}/heatmap?weeks={v}"),
                format!("/v1/offices/ranking?days={v}"),
                format!("/v1/insights/underused?threshold={v}"),
                format!("/v1/insights/underused?to={v}"),
            ] {
                let (status, body) = fetch(&format!("{base}{path}"), &bearer(&token));
                assert!(status < 500, "{path}: {status} {body}");
                assert!(!body.contains(&b_only.office_id), "{path} leaked b: {body}");
            }
        }
        let huge = format!(
            "{base}/v1/rooms/{room}/utilization?from=1970-01-01T00:00:00Z&to=2100-01-01T00:00:00Z"
        );
        let (status, body) = fetch(&huge, &bearer(&token));
        assert_eq!(status, 400, "{body}");
        assert!(body.contains("\"parameter\":\"to\""), "{body}");
    })
    .await
    .unwrap();
}

/// Base64url without padding, for hand-made tokens.
fn b64(s: &str) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in s.as_bytes().chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

/// Percent-encodes everything but unreserved characters.
fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cached_responses_never_outlive_a_write() {
    let tenant = fresh_tenant("cache");
    let s = settings(&tenant);
    stack_is_up(&s);
    let fleet = Fleet::new(&FleetSpec {
        tenants: vec![tenant.clone()],
        offices: 1,
        rooms: 6,
        seed: 8,
    });
    let (reading_id, _) = create_tenant(&tenant).await;
    let stream = messy_stream(&fleet, 4 * 60, reading_id, &mut Rng(3));
    let split = START + 2 * 60 * MIN;
    let (first, later): (Vec<_>, Vec<_>) = stream.into_iter().partition(|(_, _, ts)| *ts < split);
    provision(&tenant, &fleet, &first).await;
    run_until_caught_up(&s).await;

    let config = ServiceConfig::default();
    let base = serve(&config, &s).await;
    let token = rf_service::mint(&config.jwt_secret, &tenant, "cache", 300);
    let office = fleet.tenants[0].1[0].version.office_id.clone();
    let range = "from=2026-03-28T00:00:00Z&to=2026-03-29T00:00:00Z";
    let url = format!("{base}/v1/offices/{office}/utilization?granularity=15m&{range}");
    // (X-Cache, windows, body) of one request.
    let get = |url: String| {
        let token = token.clone();
        async move {
            tokio::task::spawn_blocking(move || {
                let (_, headers, body) = get_full(&url, &token);
                let cache = header(&headers, "x-cache").map(str::to_owned);
                (cache, body["windows"].as_array().unwrap().len(), body)
            })
            .await
            .unwrap()
        }
    };
    let series = || get(url.clone());
    let miss = series().await;
    let hit = series().await;
    assert_eq!(miss.0.as_deref(), Some("miss"));
    assert_eq!(hit.0.as_deref(), Some("hit"));
    assert_eq!(hit.2, miss.2, "the cached answer is the answer");

    // The pipeline counted its writes by the month of their windows: March 2026 only.
    let redis = redis::Client::open(admin(&s.redis.url)).unwrap();
    let mut conn = redis.get_multiplexed_async_connection().await.unwrap();
    let march = rf_sinks::redis::month_generation_key(&tenant, 202603);
    let april = rf_sinks::redis::month_generation_key(&tenant, 202604);
    let history = rf_sinks::redis::history_generation_key(&tenant);
    let generation = |key: &String| {
        let (key, mut conn) = (key.clone(), conn.clone());
        async move {
            redis::cmd("GET")
                .arg(key)
                .query_async::<Option<u64>>(&mut conn)
                .await
                .unwrap()
        }
    };
    assert!(generation(&march).await.unwrap_or(0) > 0);
    assert_eq!(generation(&april).await, None);
    assert!(
        generation(&history).await.unwrap_or(0) > 0,
        "room metadata was mirrored"
    );
    // Writes to another month, and room metadata changes, leave an office's own series
    // cached; a floor's (which rooms are on it) is read again after the metadata change.
    let floor = get(format!("{url}&floor=1")).await;
    assert_eq!(floor.0.as_deref(), Some("miss"));
    assert!(floor.1 > 0);
    assert_eq!(
        get(format!("{url}&floor=1")).await.0.as_deref(),
        Some("hit")
    );
    for key in [&april, &history] {
        redis::cmd("INCR")
            .arg(key)
            .query_async::<u64>(&mut conn)
            .await
            .unwrap();
    }
    assert_eq!(series().await.0.as_deref(), Some("hit"));
    let floor_again = get(format!("{url}&floor=1")).await;
    assert_eq!(floor_again.0.as_deref(), Some("miss"));
    assert_eq!(floor_again.2, floor.2);

    // More readings of the same range: the pipeline's write makes the cache miss again,
    // and the answer has the new windows.
    let producer: rdkafka::producer::FutureProducer = s.kafka.client_config().create().unwrap();
    produce_all(&producer, &tenant.readings_topic(), &later).await;
    run_until_caught_up(&s).await;
    let db = tenant.clickhouse_db();
    let windows: usize = clickhouse_lines(&format!(
        "SELECT count() FROM {db}.office_utilization FINAL WHERE granularity = '15m' AND office_id = '{office}'"
    ))[0]
        .parse()
        .unwrap();
    let after = series().await;
    assert_eq!(after.0.as_deref(), Some("miss"));
    assert!(
        after.1 > miss.1,
        "{} windows before, {} after",
        miss.1,
        after.1
    );
    assert_eq!(after.1, windows);

    // A change no counter announces (an operator's SQL, a job): what the process keeps is
    // also keyed by its month's ClickHouse parts, checked every `cache_ttl_secs`, so the
    // change is seen within that, while an unchanged chunk is not read again.
    let checked = ServiceConfig {
        cache_ttl_secs: 1,
        ..ServiceConfig::default()
    };
    let checked_url = url.replacen(&base, &serve(&checked, &s).await, 1);
    let series = || get(checked_url.clone());
    assert_eq!(series().await.0.as_deref(), Some("miss"));
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let unchanged = series().await;
    assert_eq!(
        unchanged.0.as_deref(),
        Some("hit"),
        "its parts are the same"
    );
    assert_eq!(unchanged.1, windows);
    let first_window = &clickhouse_lines(&format!(
        "SELECT toUInt32(min(window_start)) FROM {db}.office_utilization \
         WHERE granularity = '15m' AND office_id = '{office}'"
    ))[0];
    clickhouse_lines(&format!(
        "ALTER TABLE {db}.office_utilization DELETE WHERE office_id = '{office}' \
         AND granularity = '15m' AND toUInt32(window_start) = {first_window}"
    ));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while clickhouse_lines(&format!(
        "SELECT count() FROM system.mutations WHERE database = '{db}' AND NOT is_done"
    ))[0]
        != "0"
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the mutation is not done"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let left: usize = clickhouse_lines(&format!(
        "SELECT count() FROM {db}.office_utilization FINAL WHERE granularity = '15m' AND office_id = '{office}'"
    ))[0]
        .parse()
        .unwrap();
    assert_eq!(left, windows - 1, "the operator deleted a window");
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let changed = series().await;
    assert_eq!(changed.0.as_deref(), Some("miss"), "its parts changed");
    assert_eq!(changed.1, left);
}

/// The service benchmark on a small portfolio: every endpoint answers every request
/// (none fails, none is left out), and the throwaway tenant is gone afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_benchmark_gets_an_answer_from_every_endpoint() {
    let s = settings(&fresh_tenant("svcbench-unused"));
    stack_is_up(&s);
    let options = rf_bench::ServiceBenchOptions {
        rooms: 600,
        days: 40,
        connections: vec![3],
        duration: std::time::Duration::from_millis(500),
        rate: None,
        keep: false,
        reuse: None,
        only: Vec::new(),
        noisy: None,
    };
    let report =
        rf_bench::service_bench(&s, &ServiceConfig::default(), &service_stores(&s), &options)
            .await
            .unwrap();
    assert_eq!((report.rooms, report.offices), (600, 3));
    // Rooms: 15m for 30 days, 1h and 1d for 40; offices: all three for 40.
    assert_eq!(
        report.rows,
        600 * (30 * 96 + 40 * 24 + 40) + 3 * 40 * (96 + 24 + 1)
    );
    assert_eq!(
        report.endpoints.len(),
        23,
        "sixteen endpoints and seven kinds of question"
    );
    for e in &report.endpoints {
        assert!(e.failures.is_empty(), "{}: {:?}", e.endpoint, e.failures);
        assert!(!e.latencies.is_empty(), "{}: no answer", e.endpoint);
    }
    let left = clickhouse_lines(&format!(
        "SELECT name FROM system.databases WHERE name = '{}'",
        report.tenant.clickhouse_db()
    ));
    assert!(left.is_empty(), "the benchmark tenant's database is left");

    // Beside a noisy tenant: each endpoint is held again while the second tenant's
    // heaviest requests are answered, and both tenants are gone afterwards.
    let noisy = rf_bench::ServiceBenchOptions {
        rooms: 300,
        only: vec!["office occupancy".into(), "office series".into()],
        noisy: Some(2),
        ..options
    };
    let report =
        rf_bench::service_bench(&s, &ServiceConfig::default(), &service_stores(&s), &noisy)
            .await
            .unwrap();
    let beside: Vec<_> = report
        .endpoints
        .iter()
        .filter(|e| e.beside_noisy == Some(2))
        .collect();
    assert_eq!((report.endpoints.len(), beside.len()), (4, 2));
    for e in &report.endpoints {
        assert!(e.failures.is_empty(), "{}: {:?}", e.endpoint, e.failures);
    }
    assert!(
        beside.iter().all(|e| e.noisy_answers > 0),
        "the neighbour was answered"
    );
    let left = clickhouse_lines(
        "SELECT name FROM system.databases WHERE name LIKE 'rf_svcnoisy_%' OR name LIKE 'rf_svcbench_%'",
    );
    assert!(left.is_empty(), "{left:?}");
}
