//! The web app in a real browser on the real stack: Debian's Chromium, headless, driven
//! through chromedriver (WebDriver), signs in through the development identity provider
//! (`roomflow dev-idp`) to `roomflow serve`, both run as the binary users run, over a
//! tenant whose readings the pipeline computes here. Every page is compared with the API's
//! answers for the same tenant and period, and saved as a screenshot under
//! `target/tmp/web-screenshots/`.

mod common;

use std::collections::BTreeMap;
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fantoccini::actions::{InputSource, KeyAction, KeyActions};
use fantoccini::{Client, ClientBuilder, Locator};
use rdkafka::producer::FutureProducer;
use serde_json::{json, Value};

use common::*;
use rf_jobs::simulate::{Fleet, FleetSpec};
use rf_pipelines::{run, Metrics, RunOptions};
use rf_schemas::TenantId;

/// A child process, killed when dropped.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn roomflow(args: &[&str], config: &std::path::Path, log: &std::path::Path) -> Process {
    let log = std::fs::File::create(log).unwrap();
    Process(
        // RF_WEB_BIN: another build, e.g. a release one for the portfolio-scale timings.
        Command::new(std::env::var("RF_WEB_BIN").unwrap_or(env!("CARGO_BIN_EXE_roomflow").into()))
            .args(args)
            .arg("--config")
            .arg(config)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("roomflow starts"),
    )
}

/// Waits until `url` answers 200.
async fn answering(url: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let target = url.to_owned();
        let ok = tokio::task::spawn_blocking(move || ureq::get(&target).call().is_ok())
            .await
            .unwrap();
        if ok {
            return;
        }
        assert!(Instant::now() < deadline, "{url} did not answer");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The development identity provider and `roomflow serve` (the binary) for `tenant`, with
/// `service` lines added to `[service]` and `more` config after, and chromedriver; all
/// stopped when dropped.
struct Web {
    base: String,
    driver_port: u16,
    _processes: Vec<Process>,
}

impl Web {
    async fn start(tenant: &TenantId, service: &str, more: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("rf-web-{tenant}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (idp_port, service_port, driver_port) = (free_port(), free_port(), free_port());
        let base = format!("http://127.0.0.1:{service_port}");
        let config = dir.join("roomflow.toml");
        std::fs::write(
            &config,
            format!(
                "[service]\nlisten = \"127.0.0.1:{service_port}\"\n{service}\n\
                 [service.web]\noidc_issuer = \"http://127.0.0.1:{idp_port}\"\nredirect_url = \"{base}/auth/callback\"\n{more}\n"
            ),
        )
        .unwrap();
        let listen = format!("127.0.0.1:{idp_port}");
        let callback = format!("{base}/auth/callback");
        let idp = [
            "dev-idp",
            "--listen",
            &listen,
            "--redirect-url",
            &callback,
            "--tenant",
            tenant.as_str(),
        ];
        let processes = vec![
            roomflow(&idp, &config, &dir.join("idp.log")),
            roomflow(&["serve"], &config, &dir.join("serve.log")),
            Process(
                Command::new("chromedriver")
                    .arg(format!("--port={driver_port}"))
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("chromedriver is installed (deploy/local/install.sh)"),
            ),
        ];
        answering(&format!("http://{listen}/.well-known/openid-configuration")).await;
        answering(&format!("{base}/healthz")).await;
        answering(&format!("http://127.0.0.1:{driver_port}/status")).await;
        Self {
            base,
            driver_port,
            _processes: processes,
        }
    }
}

/// Types `question` into the Ask page, asks, and waits for its answer.
async fn ask_on_page(c: &Client, question: &str) {
    let input = c.find(Locator::Css("#question")).await.unwrap();
    input.clear().await.unwrap();
    input.send_keys(question).await.unwrap();
    c.find(Locator::Css("#ask-button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let answered = format!(
        "return document.querySelector('#answer')?.getAttribute('data-answered') === {question:?};"
    );
    until(c, "the answer", &answered).await;
}

/// Saves the page as `name`.png and checks it with axe-core's WCAG 2 A and AA rules.
async fn looked_at(c: &Client, name: &str) {
    screenshot(c, name).await;
    let violations = accessibility(c).await;
    assert!(
        violations.is_empty(),
        "accessibility of {name}: {violations:?}"
    );
}

/// Nothing on the page is wider than the window.
async fn fits_the_width(c: &Client, what: &str) {
    let fits = js(
        c,
        "return document.documentElement.scrollWidth <= window.innerWidth + 1;",
    )
    .await;
    assert_eq!(fits, json!(true), "{what} fits the window's width");
}

/// The page's accessibility violations by axe-core's WCAG 2 A and AA rules (installed by
/// deploy/local/install.sh), as "rule: how many elements".
async fn accessibility(c: &Client) -> Vec<String> {
    let axe = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../.data/npm/node_modules/axe-core/axe.min.js");
    let source = std::fs::read_to_string(&axe)
        .unwrap_or_else(|e| panic!("{axe:?}: {e}; deploy/local/install.sh installs axe-core"));
    if js(c, "return typeof window.axe === 'undefined';").await == json!(true) {
        c.execute(&source, vec![]).await.unwrap();
    }
    let found = c
        .execute_async(
            "const done = arguments[arguments.length - 1];\
             axe.run(document, { runOnly: ['wcag2a', 'wcag2aa'] })\
               .then(r => done(r.violations.map(v => `${v.id}: ${v.nodes.length} (${v.nodes[0].target})`)))\
               .catch(e => done([`axe failed: ${e}`]));",
            vec![],
        )
        .await
        .unwrap();
    serde_json::from_value(found).unwrap()
}

/// The browser's console messages since the last call (chromedriver's log endpoint).
#[derive(Debug)]
struct BrowserLog;

impl fantoccini::wd::WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base: &url::Url,
        session: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/se/log", session.unwrap_or_default()))
    }
    fn method_and_body(&self, _: &url::Url) -> (axum::http::Method, Option<String>) {
        (
            axum::http::Method::POST,
            Some(r#"{"type":"browser"}"#.into()),
        )
    }
}

/// Console errors since the last call.
async fn console_errors(c: &Client) -> Vec<String> {
    let log = c.issue_cmd(BrowserLog).await.unwrap();
    log.as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["level"] == "SEVERE")
        .map(|e| e["message"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// Runs `script` (a function body; `return …`) in the page.
async fn js(c: &Client, script: &str) -> Value {
    c.execute(script, vec![]).await.unwrap()
}

/// Waits until `script` returns true (a page still loading, or another page, is false).
async fn until(c: &Client, what: &str, script: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let guarded = format!("try {{ {script} }} catch (e) {{ return false; }}");
    loop {
        let done = c.execute(&guarded, vec![]).await.unwrap_or_default();
        if done == json!(true) {
            return;
        }
        if Instant::now() > deadline {
            let shot = shots().join(format!("timeout-{}.png", what.replace(' ', "-")));
            std::fs::write(&shot, c.screenshot().await.unwrap()).unwrap();
            let log = c.issue_cmd(BrowserLog).await;
            panic!(
                "timed out waiting for {what} (screenshot {shot:?}); the browser's log: {log:?}"
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until every panel of the view is filled; returns the latest panel's time, ms
/// since the page's navigation began.
async fn settled(c: &Client, view: &str) -> f64 {
    until(
        c,
        &format!("the {view} view"),
        &format!(
            "const v = document.querySelector('#view'); return v.dataset.view === '{view}' && [...v.querySelectorAll('section.card')].every(s => s.dataset.ready === 'true') && v.querySelectorAll('section.card').length > 0;"
        ),
    )
    .await;
    js(
        c,
        "return Math.max(...[...document.querySelectorAll('#view section.card')].map(s => Number(s.dataset.readyMs)));",
    )
    .await
    .as_f64()
    .unwrap()
}

fn shots() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("web-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn screenshot(c: &Client, name: &str) {
    let png = c.screenshot().await.unwrap();
    std::fs::write(shots().join(format!("{name}.png")), png).unwrap();
}

/// A headless Chromium at 1280×800.
async fn browser(port: u16) -> Client {
    let profile = std::env::temp_dir().join(format!("rf-chromium-{}-{port}", std::process::id()));
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": "/usr/bin/chromium",
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-quic", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--window-size=1280,800",
                format!("--user-data-dir={}", profile.display()),
            ],
        }),
    );
    caps.insert("goog:loggingPrefs".into(), json!({ "browser": "ALL" }));
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    ClientBuilder::new(connector)
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{port}/"))
        .await
        .expect("chromedriver gives a session")
}

/// Signs in through the development identity provider as `persona` of `tenant`.
async fn sign_in(c: &Client, base: &str, tenant: &TenantId, persona: &str) {
    c.goto(base).await.unwrap();
    c.wait()
        .at_most(Duration::from_secs(30))
        .for_element(Locator::Id("sign-in"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let field = c
        .wait()
        .at_most(Duration::from_secs(30))
        .for_element(Locator::Id("tenant"))
        .await
        .unwrap();
    field.clear().await.unwrap();
    field.send_keys(tenant.as_str()).await.unwrap();
    c.find(Locator::Css(&format!("button[value='{persona}']")))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

async fn sign_out(c: &Client) {
    c.find(Locator::Id("sign-out"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    c.wait()
        .at_most(Duration::from_secs(30))
        .for_element(Locator::Id("sign-in"))
        .await
        .unwrap();
}

/// An HTTP call with the browser's session cookie (or none).
fn call(method: &str, url: &str, cookie: Option<&str>, headers: &[(&str, &str)]) -> (u16, String) {
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .new_agent();
    let mut request = axum::http::Request::builder().method(method).uri(url);
    if let Some(cookie) = cookie {
        request = request.header("cookie", cookie);
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let mut response = agent.run(request.body(Vec::new()).unwrap()).unwrap();
    let status = response.status().as_u16();
    (
        status,
        response.body_mut().read_to_string().unwrap_or_default(),
    )
}

/// The session cookie of the browser, as a `Cookie` header.
async fn cookie(c: &Client) -> String {
    c.get_all_cookies()
        .await
        .unwrap()
        .iter()
        .map(|k| format!("{}={}", k.name(), k.value()))
        .collect::<Vec<_>>()
        .join("; ")
}

fn get(url: &str, cookie: &str) -> Value {
    let (status, body) = call("GET", url, Some(cookie), &[]);
    assert_eq!(status, 200, "{url}: {body}");
    serde_json::from_str(&body).unwrap()
}

/// `u` as the page shows a share.
fn pct(u: f64) -> String {
    format!("{:.1}%", u * 100.0)
}

/// The text of the table cells matching `selector`, row by row.
async fn cells(c: &Client, selector: &str) -> Vec<Vec<String>> {
    let rows = js(
        c,
        &format!(
            "return [...document.querySelectorAll('{selector} tbody tr')].map(r => [...r.cells].map(td => td.textContent.trim()));"
        ),
    )
    .await;
    serde_json::from_value(rows).unwrap()
}

/// Provisions `tenant` with a fleet and its recent readings; the fleet and the id of the
/// readings' v1 schema.
async fn provision_recent(tenant: &TenantId, offices: usize, seed: u64) -> (Fleet, u32) {
    let fleet = Fleet::new(&FleetSpec {
        tenants: vec![tenant.clone()],
        offices,
        rooms: 24 * offices,
        seed,
    });
    let s = settings(tenant);
    let (v1, _) = create_tenant(tenant).await;
    let v2 = reading_v2_id(&s, tenant);
    let now = rf_schemas::unix_ms();
    // The meeting rooms' bookings (the simulator's: most used blocks booked, some booked
    // and empty) and a headcount per office, as the calendar and HR connectors write them.
    publish_bookings(&s, tenant, &fleet, (now - 36 * 3_600_000, now));
    store_headcount(&s, tenant, &fleet, 40, now).await;
    let readings = fleet_readings(&fleet, (v1, v2), (now - 36 * 3_600_000, now), 600_000);
    provision(tenant, &fleet, &readings).await;
    (fleet, v1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_web_app_signs_in_each_role_and_shows_the_apis_numbers() {
    let tenant = fresh_tenant("web");
    let other = fresh_tenant("webother");
    let s = settings(&tenant);
    stack_is_up(&s);
    let (fleet, v1) = provision_recent(&tenant, 2, 5).await;
    let (other_fleet, _) = provision_recent(&other, 3, 6).await;

    // The pipeline, live, for both tenants.
    let mut both = s.clone();
    both.pipeline.tenants = vec![tenant.to_string(), other.to_string()];
    let shutdown = Arc::new(AtomicBool::new(false));
    let _stop = StopOnDrop(shutdown.clone());
    let pipeline = tokio::task::spawn_blocking({
        let shutdown = shutdown.clone();
        move || {
            let options = RunOptions {
                until_caught_up: false,
                shutdown,
                memory_every: None,
                ..Default::default()
            };
            run(&both, options, Metrics::new())
        }
    });

    // The identity provider, the service (the binary, with its admin), chromedriver, and
    // a webhook receiver.
    let web = Web::start(
        &tenant,
        "directory_refresh_secs = 1",
        "[alerts]\nallowed_networks = [\"127.0.0.1\"]",
    )
    .await;
    let (base, driver_port) = (web.base.clone(), web.driver_port);
    let hooks = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let hook_url = {
        let hooks = hooks.clone();
        let router = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |body: String| {
                let hooks = hooks.clone();
                async move {
                    hooks.lock().unwrap().push(body);
                    "ok"
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, router).await });
        url
    };
    // Every room's live state and today's windows are in before the pages are looked at.
    let rooms = fleet.tenants[0].1.len();
    let deadline = Instant::now() + Duration::from_secs(120);
    while redis_state(&s.redis.url, &tenant).await.len() < rooms {
        assert!(
            Instant::now() < deadline,
            "the pipeline wrote the rooms' live state"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // …and so are today's windows of every room (the pages' "today" panels).
    let db = tenant.clickhouse_db();
    loop {
        let rows = clickhouse_lines(&format!(
            "SELECT uniqExact(room_id) FROM {db}.room_utilization WHERE granularity = '1d' AND window_end > now()"
        ));
        if rows.first().and_then(|n| n.parse::<usize>().ok()) >= Some(rooms) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the pipeline wrote today's windows"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let c = browser(driver_port).await;
    let mut timings: Vec<(String, f64)> = Vec::new();

    // ---- a facilities manager (viewer) -----------------------------------------------
    sign_in(&c, &base, &tenant, "facilities").await;
    let first = settled(&c, "live").await;
    timings.push(("first render, live (viewer)".into(), first));
    let session = cookie(&c).await;
    let me = get(&format!("{base}/auth/me"), &session);
    assert_eq!(me["role"], "viewer");
    assert_eq!(me["tenant"], tenant.as_str());
    let nav = js(
        &c,
        "return [...document.querySelectorAll('#nav a')].map(a => a.textContent);",
    )
    .await;
    assert_eq!(
        nav,
        json!(["Live", "Portfolio", "Ask"]),
        "a viewer sees no Admin"
    );
    let office = js(&c, "return document.querySelector('#pick-office').value;").await;
    let office = office.as_str().unwrap().to_owned();
    let occupancy = get(&format!("{base}/v1/offices/{office}/occupancy"), &session);
    let shown = js(
        &c,
        "return document.querySelector('[data-kpi=people]').textContent;",
    )
    .await;
    assert_eq!(
        shown,
        json!(occupancy["people"].as_i64().unwrap().to_string()),
        "people now"
    );
    let shown_rooms = cells(&c, "#rooms-table").await;
    let office_rooms = fleet.tenants[0]
        .1
        .iter()
        .filter(|r| r.version.office_id == office)
        .count();
    assert_eq!(
        shown_rooms.len(),
        office_rooms,
        "every room of the office is on screen"
    );
    let today = get(&format!("{base}/v1/offices/{office}/today"), &session);
    let busiest = cells(&c, "#busiest").await;
    assert_eq!(busiest[0][0], today["rooms"][0]["name"].as_str().unwrap());
    assert_eq!(
        busiest[0][2],
        pct(today["rooms"][0]["utilization"].as_f64().unwrap())
    );
    let heat = get(
        &format!("{base}/v1/offices/{office}/heatmap?weeks=4"),
        &session,
    );
    let heat_rows = cells(&c, "#heatmap").await;
    for (d, row) in heat["utilization"].as_array().unwrap().iter().enumerate() {
        for (h, u) in row.as_array().unwrap().iter().enumerate() {
            let expected = u.as_f64().map_or("–".to_string(), pct);
            assert_eq!(heat_rows[d][h + 1], expected, "heatmap day {d} hour {h}");
        }
    }
    // Booked versus used: the chart's table holds the API's day rows.
    let booked = get(
        &format!("{base}/v1/offices/{office}/bookings?days=14&granularity=1d"),
        &session,
    );
    let booked_rows = cells(&c, "#bookings-table").await;
    let windows = booked["windows"].as_array().unwrap();
    assert!(!windows.is_empty(), "{booked}");
    assert_eq!(booked_rows.len(), windows.len());
    let hours = |v: &Value| format!("{:.1}", v.as_f64().unwrap() / 60.0);
    for (row, w) in booked_rows.iter().zip(windows) {
        assert_eq!(row[1], hours(&w["booked_minutes"]));
        assert_eq!(row[3], hours(&w["ghost_minutes"]));
        assert_eq!(row[6], w["no_shows"].to_string());
    }
    js(
        &c,
        "document.querySelector('#bookings').scrollIntoView(); return 0;",
    )
    .await;
    screenshot(&c, "live-bookings").await;
    js(&c, "window.scrollTo(0, 0); return 0;").await;
    let charts = js(&c, "return [...document.querySelectorAll('svg.chart')].every(s => s.getAttribute('role') === 'img' && s.getAttribute('aria-label'));").await;
    assert_eq!(
        charts,
        json!(true),
        "every chart is labelled for screen readers"
    );
    looked_at(&c, "live-viewer").await;

    // The server decides: a viewer's session cannot reach analytics or admin endpoints,
    // and another tenant's ids give nothing.
    let csrf = me["csrf_token"].as_str().unwrap().to_owned();
    for (method, path) in [
        ("GET", "/v1/admin/apikeys".to_string()),
        ("GET", "/v1/admin/users".to_string()),
        ("POST", "/v1/admin/alerts/test".to_string()),
        ("GET", "/v1/insights/underused".to_string()),
        ("GET", "/v1/offices/ranking".to_string()),
    ] {
        let (status, body) = call(
            method,
            &format!("{base}{path}"),
            Some(&session),
            &[("x-csrf-token", &csrf)],
        );
        assert_eq!(status, 403, "a viewer's {method} {path}: {body}");
    }
    let theirs = other_fleet.tenants[0]
        .1
        .iter()
        .find(|r| {
            !fleet.tenants[0]
                .1
                .iter()
                .any(|m| m.version.office_id == r.version.office_id)
        })
        .expect("the other tenant has an office this one lacks");
    for path in [
        format!("/v1/offices/{}/occupancy", theirs.version.office_id),
        format!("/v1/offices/{}/today", theirs.version.office_id),
        format!("/v1/rooms/{}/occupancy", theirs.version.room_id),
    ] {
        let (status, body) = call("GET", &format!("{base}{path}"), Some(&session), &[]);
        assert_eq!(status, 404, "another tenant's {path}: {body}");
    }
    // Without a session or with a forged cookie, nothing.
    let (status, _) = call("GET", &format!("{base}/v1/offices"), None, &[]);
    assert_eq!(status, 401);
    let (status, _) = call(
        "GET",
        &format!("{base}/v1/offices"),
        Some("rf_session=forged"),
        &[],
    );
    assert_eq!(status, 401);

    // Live: a reading produced to Kafka is on screen within moments.
    let producer: FutureProducer = s.kafka.client_config().create().unwrap();
    let room = fleet.tenants[0]
        .1
        .iter()
        .find(|r| r.version.office_id == office && !r.v2)
        .expect("a v1 sensor in the office");
    let mut latencies = Vec::new();
    for people in [room.version.capacity as i32, 0, 1] {
        let mut r = fleet.reading(room, rf_schemas::unix_ms() / 60_000 * 60_000);
        r.ts = rf_schemas::unix_ms();
        r.people_count = people;
        let produced = Instant::now();
        produce_all(
            &producer,
            &tenant.readings_topic(),
            &[(office.clone(), framed(v1, &r), r.ts)],
        )
        .await;
        let want = format!("{people}/{}", room.version.capacity);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let text = js(
                &c,
                &format!("const t = document.querySelector('[data-room=\"{}\"] b'); return t ? t.textContent : null;", room.version.room_id),
            )
            .await;
            if text == json!(want) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the tile of {} shows {want} (shows {text})",
                room.version.room_id
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        latencies.push(produced.elapsed().as_millis());
    }
    println!("live: reading produced → on screen, ms: {latencies:?}");
    timings.push((
        "live reading → screen, max of 3".into(),
        *latencies.iter().max().unwrap() as f64,
    ));
    screenshot(&c, "live-viewer-updated").await;

    // Keyboard: the first Tab reaches the skip link, which moves focus to the content.
    c.goto(&format!("{base}/#/live/{office}")).await.unwrap();
    settled(&c, "live").await;
    let tab = KeyActions::new("keyboard".into())
        .then(KeyAction::Down { value: '\u{E004}' })
        .then(KeyAction::Up { value: '\u{E004}' });
    c.perform_actions(tab).await.unwrap();
    assert_eq!(
        js(&c, "return document.activeElement.className;").await,
        json!("skip")
    );
    c.find(Locator::Css(".skip"))
        .await
        .unwrap()
        .send_keys("\u{E007}")
        .await
        .unwrap();
    assert_eq!(
        js(&c, "return document.activeElement.id;").await,
        json!("view")
    );
    assert_eq!(
        js(&c, "return location.hash;").await,
        json!(format!("#/live/{office}"))
    );
    let errors = console_errors(&c).await;
    assert!(errors.is_empty(), "console errors: {errors:?}");
    sign_out(&c).await;

    // ---- a real-estate executive (analyst) --------------------------------------------
    sign_in(&c, &base, &tenant, "executive").await;
    let first = settled(&c, "portfolio").await;
    timings.push(("first render, portfolio (analyst)".into(), first));
    let session = cookie(&c).await;
    let from = js(&c, "return document.querySelector('#from').value;").await;
    let to = js(&c, "return document.querySelector('#to').value;").await;
    let (from, to) = (from.as_str().unwrap(), to.as_str().unwrap());
    let range = format!("from={from}T00:00:00.000Z&to={to}T00:00:00.000Z");
    let trend = get(
        &format!("{base}/v1/portfolio/utilization?granularity=1d&{range}"),
        &session,
    );
    let trend_rows = cells(&c, "#trend-table").await;
    let windows = trend["windows"].as_array().unwrap();
    assert!(!windows.is_empty());
    assert_eq!(trend_rows.len(), windows.len());
    for (row, w) in trend_rows.iter().zip(windows) {
        assert_eq!(row[1], pct(w["utilization"].as_f64().unwrap()));
    }
    let days = (chrono::NaiveDate::parse_from_str(to, "%Y-%m-%d").unwrap()
        - chrono::NaiveDate::parse_from_str(from, "%Y-%m-%d").unwrap())
    .num_days();
    let ranking = get(
        &format!("{base}/v1/offices/ranking?days={days}&to={to}T00:00:00.000Z"),
        &session,
    );
    let ranked = cells(&c, "#ranking-table").await;
    assert_eq!(ranked.len(), ranking["offices"].as_array().unwrap().len());
    for (row, o) in ranked.iter().zip(ranking["offices"].as_array().unwrap()) {
        assert_eq!(row[2], pct(o["utilization"].as_f64().unwrap()));
    }
    let underused = get(
        &format!(
            "{base}/v1/insights/underused?days={days}&to={to}T00:00:00.000Z&threshold=0.2&limit=20"
        ),
        &session,
    );
    let saving = js(&c, "return document.querySelector('#saving').textContent;").await;
    let expected = underused["monthly_saving"].as_f64().unwrap().round() as i64;
    assert_eq!(
        saving.as_str().unwrap().replace(',', ""),
        expected.to_string()
    );
    let csv_href = js(
        &c,
        "return document.querySelector('#csv').getAttribute('href');",
    )
    .await;
    let (status, csv) = call(
        "GET",
        &format!("{base}{}", csv_href.as_str().unwrap()),
        Some(&session),
        &[],
    );
    assert_eq!(status, 200);
    assert!(
        csv.starts_with("room_id,office_id,name,capacity,utilization,days,monthly_saving\n"),
        "{csv}"
    );
    assert_eq!(
        csv.lines().count() - 1,
        underused["rooms_below"].as_u64().unwrap().min(1000) as usize
    );
    // Booked but empty, and seats against headcount, as the API gives them.
    let ghosts = get(
        &format!("{base}/v1/insights/ghost-bookings?days={days}&to={to}T00:00:00.000Z&limit=10"),
        &session,
    );
    let ghost_rows = cells(&c, "#ghosts-table").await;
    let ranked_rooms = ghosts["rooms"].as_array().unwrap();
    assert!(!ranked_rooms.is_empty(), "{ghosts}");
    assert_eq!(ghost_rows.len(), ranked_rooms.len());
    for (row, r) in ghost_rows.iter().zip(ranked_rooms) {
        assert_eq!(row[0], r["name"].as_str().unwrap());
        assert!(row[3].starts_with(&pct(r["ghost_share"].as_f64().unwrap())));
    }
    let seats = get(
        &format!("{base}/v1/insights/seats?days={days}&to={to}T00:00:00.000Z"),
        &session,
    );
    let advice = js(&c, "return [...document.querySelectorAll('#seats-recommendations li')].map(li => li.textContent);").await;
    let expected: Vec<Value> = seats["offices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["recommendation"].clone())
        .collect();
    assert!(!expected.is_empty(), "{seats}");
    assert_eq!(advice, Value::Array(expected));
    js(
        &c,
        "document.querySelector('#ghosts').scrollIntoView(); return 0;",
    )
    .await;
    screenshot(&c, "portfolio-bookings").await;
    js(&c, "window.scrollTo(0, 0); return 0;").await;
    looked_at(&c, "portfolio-analyst").await;

    // A later view: zoom to hours; every panel again within the measured time.
    let clicked = js(&c, "return performance.now();").await.as_f64().unwrap();
    c.find(Locator::Css(".seg button:nth-child(2)"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    until(&c, "the 1h trend", "return document.querySelector('.seg button:nth-child(2)').getAttribute('aria-pressed') === 'true';").await;
    let later = settled(&c, "portfolio").await;
    timings.push(("later view, zoom to 1h (analyst)".into(), later - clicked));
    let hourly = get(
        &format!("{base}/v1/portfolio/utilization?granularity=1h&{range}"),
        &session,
    );
    assert_eq!(
        cells(&c, "#trend-table").await.len(),
        hourly["windows"].as_array().unwrap().len()
    );
    let clicked = js(&c, "return performance.now();").await.as_f64().unwrap();
    c.find(Locator::Css("#nav a[href='#/live']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let later = settled(&c, "live").await;
    timings.push(("later view, portfolio → live".into(), later - clicked));

    // A phone: nothing wider than the screen.
    c.set_window_size(390, 844).await.unwrap();
    c.goto(&format!("{base}/#/portfolio")).await.unwrap();
    settled(&c, "portfolio").await;
    fits_the_width(&c, "the portfolio").await;
    looked_at(&c, "portfolio-phone").await;
    c.goto(&format!("{base}/#/live/{office}")).await.unwrap();
    settled(&c, "live").await;
    fits_the_width(&c, "the live view").await;
    screenshot(&c, "live-phone").await;
    c.set_window_size(1280, 800).await.unwrap();

    // A question in plain language: the page shows the API's answer, its table and the
    // requests behind it; a name that fits two rooms is asked back, and a choice answers.
    c.goto(&format!("{base}/#/ask")).await.unwrap();
    until(
        &c,
        "the ask page",
        "return !!document.querySelector('#question');",
    )
    .await;
    let question = "Which offices were busiest yesterday?";
    ask_on_page(&c, question).await;
    let encoded: String = url::form_urlencoded::byte_serialize(question.as_bytes()).collect();
    let expected = get(&format!("{base}/v1/ask?q={encoded}"), &session);
    assert_eq!(expected["outcome"], "answer", "{expected}");
    let answer_text = "return document.querySelector('#answer-text').textContent;";
    assert_eq!(js(&c, answer_text).await, expected["answer"]);
    let rows: Vec<Vec<String>> = serde_json::from_value(expected["table"]["rows"].clone()).unwrap();
    assert_eq!(cells(&c, "#answer-table").await, rows);
    let references = js(&c, "return [...document.querySelectorAll('#answer-references a')].map(a => a.getAttribute('href'));").await;
    let endpoints: Vec<&Value> = expected["references"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r["endpoint"])
        .collect();
    assert_eq!(
        references.as_array().unwrap().iter().collect::<Vec<_>>(),
        endpoints
    );
    js(
        &c,
        "document.querySelector('#answer-how').open = true; return 0;",
    )
    .await;
    looked_at(&c, "ask").await;
    let mut by_name: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for r in &fleet.tenants[0].1 {
        by_name
            .entry(r.version.name.as_str())
            .or_default()
            .push(r.version.office_id.as_str());
    }
    if let Some((name, _)) = by_name.iter().find(|(_, offices)| offices.len() >= 2) {
        let question = format!("How busy was {name} yesterday?");
        ask_on_page(&c, &question).await;
        let back = js(&c, answer_text).await;
        assert!(back.as_str().unwrap().starts_with("Which "), "{back}");
        c.find(Locator::Css("#answer .examples button"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        until(&c, "the chosen room's answer", &format!("const a = document.querySelector('#answer')?.getAttribute('data-answered') ?? ''; return a.endsWith(' yesterday?') && a !== {question:?};")).await;
        let chosen = js(&c, answer_text).await;
        assert!(!chosen.as_str().unwrap().starts_with("Which "), "{chosen}");
        screenshot(&c, "ask-chosen").await;
    }
    c.set_window_size(390, 844).await.unwrap();
    fits_the_width(&c, "the ask page").await;
    c.set_window_size(1280, 800).await.unwrap();
    let errors = console_errors(&c).await;
    assert!(errors.is_empty(), "console errors: {errors:?}");
    sign_out(&c).await;

    // ---- a tenant admin -----------------------------------------------------------------
    sign_in(&c, &base, &tenant, "admin").await;
    settled(&c, "portfolio").await;
    c.goto(&format!("{base}/#/admin")).await.unwrap();
    let first = settled(&c, "admin").await;
    timings.push(("admin view".into(), first));
    let session = cookie(&c).await;
    let users = cells(&c, "#users-table").await;
    assert_eq!(users.len(), 3, "the three personas signed in: {users:?}");

    // A key, created and revoked through the page; it reads, then it does not.
    c.find(Locator::Id("key-name"))
        .await
        .unwrap()
        .send_keys("bi-dashboard")
        .await
        .unwrap();
    c.find(Locator::Css("#key-role option[value='viewer']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    c.find(Locator::Id("create-key"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    until(
        &c,
        "the new key",
        "return !!document.querySelector('#key-secret code');",
    )
    .await;
    let key = js(
        &c,
        "return document.querySelector('#key-secret code').textContent;",
    )
    .await;
    let key = key.as_str().unwrap().to_owned();
    let key_id = key
        .trim_start_matches("rfk_")
        .split('_')
        .next()
        .unwrap()
        .to_owned();
    let (status, _) = call(
        "GET",
        &format!("{base}/v1/offices"),
        None,
        &[("x-api-key", &key)],
    );
    assert_eq!(status, 200, "the new key reads");
    let (status, _) = call(
        "GET",
        &format!("{base}/v1/offices/ranking"),
        None,
        &[("x-api-key", &key)],
    );
    assert_eq!(status, 403, "a viewer key is no analyst");
    screenshot(&c, "admin").await;
    c.find(Locator::Id(&format!("revoke-{key_id}")))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    c.accept_alert().await.unwrap();
    until(&c, "the revoked key", &format!("return !document.querySelector('#revoke-{key_id}') && document.querySelector('#keys-table') !== null;")).await;
    settled(&c, "admin").await;
    let (status, _) = call(
        "GET",
        &format!("{base}/v1/offices"),
        None,
        &[("x-api-key", &key)],
    );
    assert_eq!(status, 401, "the revoked key reads nothing");

    // An alert target, added through the page, and a test message to it.
    c.find(Locator::Css("#target-kind option[value='webhook']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    c.find(Locator::Id("target-url"))
        .await
        .unwrap()
        .send_keys(&hook_url)
        .await
        .unwrap();
    c.find(Locator::Id("add-target"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    until(
        &c,
        "the new target",
        "return !!document.querySelector('#targets-table');",
    )
    .await;
    settled(&c, "admin").await;
    c.find(Locator::Id("send-test"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    until(
        &c,
        "the test's outcome",
        "return !!document.querySelector('#test-results table');",
    )
    .await;
    let outcome = cells(&c, "#test-results").await;
    assert_eq!(outcome[0][2], "delivered", "{outcome:?}");
    assert_eq!(hooks.lock().unwrap().len(), 1, "the receiver got the test");
    looked_at(&c, "admin-alerts").await;

    // Settings: capacity alerts from 80% of the seats, and benchmarks, through the page.
    let breach = c.find(Locator::Id("breach-at")).await.unwrap();
    breach.clear().await.unwrap();
    breach.send_keys("80").await.unwrap();
    c.find(Locator::Id("benchmarks"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    c.find(Locator::Css("#settings form button[type='submit']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    until(
        &c,
        "the saved settings",
        "return document.querySelector('#settings').innerText.includes('Contributing to benchmarks since');",
    )
    .await;
    settled(&c, "admin").await;
    let entry = rf_jobs::tenant::entry(&s, &tenant).unwrap();
    assert_eq!(entry.capacity_breach_at, Some(0.8));
    assert!(
        entry.benchmarks_opt_in_ms.is_some(),
        "consent kept with its time"
    );
    assert_eq!(
        c.find(Locator::Id("breach-at"))
            .await
            .unwrap()
            .prop("value")
            .await
            .unwrap()
            .as_deref(),
        Some("80")
    );
    looked_at(&c, "admin-settings").await;

    // Writes without the page's CSRF token, or from another site, are refused.
    let (status, _) = call(
        "POST",
        &format!("{base}/v1/admin/alerts/test"),
        Some(&session),
        &[],
    );
    assert_eq!(status, 403);
    let csrf = get(&format!("{base}/auth/me"), &session)["csrf_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, _) = call(
        "POST",
        &format!("{base}/v1/admin/alerts/test"),
        Some(&session),
        &[("x-csrf-token", &csrf), ("sec-fetch-site", "cross-site")],
    );
    assert_eq!(status, 403);

    // The audit table has every change, with who made it.
    let deadline = Instant::now() + Duration::from_secs(30);
    let rows = loop {
        let rows = clickhouse_lines(&format!(
            "SELECT route, status, query FROM {db}.audit WHERE subject = 'user:admin@{tenant}' AND match(query, '^(POST|DELETE|PUT|PATCH) ') ORDER BY ts_ms FORMAT TSV"
        ));
        // The key's creation and revocation, the target, the test, the settings and the
        // refused test.
        if rows.len() >= 6 || Instant::now() > deadline {
            break rows;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let has = |route: &str, status: &str, part: &str| {
        rows.iter().any(|r| {
            let f: Vec<&str> = r.split('\t').collect();
            f[0] == route && f[1] == status && f[2].contains(part)
        })
    };
    assert!(
        has("/v1/admin/apikeys", "201", &format!("key_id={key_id}")),
        "{rows:?}"
    );
    assert!(
        has(
            "/v1/admin/apikeys/{key_id}",
            "200",
            &format!("key_id={key_id}")
        ),
        "{rows:?}"
    );
    assert!(
        has("/v1/admin/alerts/targets", "201", "host=127.0.0.1"),
        "{rows:?}"
    );
    assert!(has("/v1/admin/alerts/test", "200", "POST"), "{rows:?}");
    assert!(
        has("/v1/admin/tenant", "200", "capacity_breach_at=0.8")
            && has("/v1/admin/tenant", "200", "benchmarks=on"),
        "{rows:?}"
    );
    assert!(
        has("/v1/admin/alerts/test", "403", "POST"),
        "the refused writes too: {rows:?}"
    );
    assert!(
        !rows.iter().any(|r| r.contains(&key)),
        "no key in the audit"
    );
    let errors = console_errors(&c).await;
    assert!(errors.is_empty(), "console errors: {errors:?}");

    // Someone the provider gives no roomflow role is not let in.
    sign_out(&c).await;
    sign_in(&c, &base, &tenant, "visitor").await;
    until(
        &c,
        "the refusal",
        "return document.body.textContent.includes('No roomflow role');",
    )
    .await;
    screenshot(&c, "refused").await;

    for (what, ms) in &timings {
        println!("timing: {what}: {ms:.0} ms");
    }
    c.close().await.unwrap();
    shutdown.store(true, std::sync::atomic::Ordering::Relaxed);
    pipeline.await.unwrap().expect("the pipeline ran");
}

/// Each panel's time to filled, ms since `since` (the page's navigation start: 0).
async fn panel_times(c: &Client, since: f64) -> Vec<(String, f64)> {
    let times = js(
        c,
        "return [...document.querySelectorAll('#view section.card')].map(s => [s.id, Number(s.dataset.readyMs)]);",
    )
    .await;
    let times: Vec<(String, f64)> = serde_json::from_value(times).unwrap();
    times.into_iter().map(|(id, t)| (id, t - since)).collect()
}

/// The pages at portfolio scale: signs in to a kept benchmark tenant (50,000 rooms, a
/// year: `roomflow bench --service --rooms 50000 --days 365 --keep`) as an executive and
/// an admin, and prints when each panel of each view was filled, cold and warm. A
/// benchmark, not a check: run it with
/// `RF_WEB_TENANT=<tenant> RF_WEB_BIN=target/release/roomflow cargo test -p roomflow
/// --test web -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "a benchmark over a kept 50k-room tenant (RF_WEB_TENANT)"]
async fn render_times_at_portfolio_scale() {
    let tenant = TenantId::parse(
        &std::env::var("RF_WEB_TENANT").expect("RF_WEB_TENANT names the kept tenant"),
    )
    .unwrap();
    let web = Web::start(&tenant, "", "").await;
    let (base, driver_port) = (web.base.clone(), web.driver_port);
    let c = browser(driver_port).await;
    let report = |what: &str, times: &[(String, f64)]| {
        let worst = times.iter().map(|t| t.1).fold(0.0, f64::max);
        let each: Vec<String> = times.iter().map(|(id, t)| format!("{id} {t:.0}")).collect();
        println!(
            "render: {what}: every panel in {worst:.0} ms ({})",
            each.join(", ")
        );
    };

    sign_in(&c, &base, &tenant, "executive").await;
    settled(&c, "portfolio").await;
    report(
        "first render, portfolio (cold)",
        &panel_times(&c, 0.0).await,
    );
    for (what, button) in [("zoom to 1h", 2), ("zoom to 1d", 3)] {
        let clicked = js(&c, "return performance.now();").await.as_f64().unwrap();
        c.find(Locator::Css(&format!(".seg button:nth-child({button})")))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        until(&c, what, &format!("return document.querySelector('.seg button:nth-child({button})').getAttribute('aria-pressed') === 'true';")).await;
        settled(&c, "portfolio").await;
        report(
            &format!("later view, {what}"),
            &panel_times(&c, clicked).await,
        );
    }
    let clicked = js(&c, "return performance.now();").await.as_f64().unwrap();
    js(&c, "const r = document.querySelector('#region'); r.value = r.options[1].value; r.dispatchEvent(new Event('change')); return true;").await;
    until(
        &c,
        "a region",
        "return document.querySelector('#region').selectedIndex === 1;",
    )
    .await;
    settled(&c, "portfolio").await;
    report("later view, one region", &panel_times(&c, clicked).await);
    let clicked = js(&c, "return performance.now();").await.as_f64().unwrap();
    c.find(Locator::Css("#nav a[href='#/live']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    settled(&c, "live").await;
    report(
        "later view, portfolio → live",
        &panel_times(&c, clicked).await,
    );
    // A new page (the query string makes it one), its answers cached by now.
    c.goto(&format!("{base}/?again#/portfolio")).await.unwrap();
    settled(&c, "portfolio").await;
    report(
        "page load again, portfolio (warm)",
        &panel_times(&c, 0.0).await,
    );
    sign_out(&c).await;
    sign_in(&c, &base, &tenant, "admin").await;
    settled(&c, "portfolio").await;
    let clicked = js(&c, "return performance.now();").await.as_f64().unwrap();
    c.find(Locator::Css("#nav a[href='#/admin']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    settled(&c, "admin").await;
    report("later view, admin", &panel_times(&c, clicked).await);
    screenshot(&c, "admin-50k").await;
    c.close().await.unwrap();
}

/// What the hostile provider's token endpoint sends.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Token {
    Good,
    WrongAudience,
    WrongNonce,
    WrongIssuer,
    Expired,
    Hs256,
    AlgNone,
    UnknownTenant,
    NoRole,
}

/// A provider that can lie: its discovery and keys are right, its ID tokens as `mode`.
async fn hostile_provider(mode: Arc<std::sync::Mutex<Token>>, tenant: TenantId) -> String {
    use axum::extract::{Form, Query, State};
    use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!("http://{}", listener.local_addr().unwrap());
    let nonce = Arc::new(std::sync::Mutex::new(String::new()));
    type Shared = (
        String,
        Arc<std::sync::Mutex<Token>>,
        Arc<std::sync::Mutex<String>>,
        TenantId,
    );
    let state: Shared = (issuer.clone(), mode, nonce, tenant);
    let router = axum::Router::new()
        .route(
            "/.well-known/openid-configuration",
            axum::routing::get(|State((issuer, ..)): State<Shared>| async move {
                axum::Json(json!({
                    "issuer": issuer,
                    "authorization_endpoint": format!("{issuer}/authorize"),
                    "token_endpoint": format!("{issuer}/token"),
                    "jwks_uri": format!("{issuer}/jwks"),
                    "response_types_supported": ["code"],
                    "subject_types_supported": ["public"],
                    "id_token_signing_alg_values_supported": ["RS256"],
                }))
            }),
        )
        .route(
            "/jwks",
            axum::routing::get(|| async {
                (
                    [("content-type", "application/json")],
                    include_str!("../../testdata/jwt-test-rs256.jwks.json"),
                )
            }),
        )
        .route(
            "/authorize",
            axum::routing::get(
                |State((_, _, nonce, _)): State<Shared>, Query(q): Query<HashMap<String, String>>| async move {
                    *nonce.lock().unwrap() = q["nonce"].clone();
                    let to = format!("{}?code=c0de&state={}", q["redirect_uri"], q["state"]);
                    axum::response::Redirect::to(&to)
                },
            ),
        )
        .route(
            "/token",
            axum::routing::post(
                |State((issuer, mode, nonce, tenant)): State<Shared>, Form(_): Form<HashMap<String, String>>| async move {
                    let mode = *mode.lock().unwrap();
                    let now = chrono::Utc::now().timestamp();
                    let mut claims = json!({
                        "iss": issuer, "aud": "roomflow-local", "sub": "mallory", "iat": now,
                        "exp": now + 300, "nonce": *nonce.lock().unwrap(), "tenant": tenant.as_str(),
                        "roles": ["roomflow-admin"], "name": "Mallory",
                    });
                    match mode {
                        Token::WrongAudience => claims["aud"] = json!("someone-else"),
                        Token::WrongNonce => claims["nonce"] = json!("replayed"),
                        Token::WrongIssuer => claims["iss"] = json!("https://evil.example"),
                        Token::Expired => claims["exp"] = json!(now - 3600),
                        Token::UnknownTenant => claims["tenant"] = json!("no-such-tenant"),
                        Token::NoRole => claims["roles"] = json!(["staff"]),
                        _ => {}
                    }
                    let rsa = EncodingKey::from_rsa_pem(include_bytes!("../../testdata/jwt-test-rs256.pem")).unwrap();
                    let mut header = Header::new(Algorithm::RS256);
                    header.kid = Some("roomflow-test-1".into());
                    let id_token = match mode {
                        Token::Hs256 => encode(
                            &Header::new(Algorithm::HS256),
                            &claims,
                            &EncodingKey::from_secret(include_bytes!("../../testdata/jwt-test-rs256.jwks.json")),
                        )
                        .unwrap(),
                        Token::AlgNone => {
                            use base64::Engine;
                            let b = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
                            format!("{}.{}.", b(&json!({"alg": "none", "typ": "JWT"})), b(&claims))
                        }
                        _ => encode(&header, &claims, &rsa).unwrap(),
                    };
                    axum::Json(json!({
                        "access_token": "at", "token_type": "Bearer", "expires_in": 300, "id_token": id_token,
                    }))
                },
            ),
        )
        .with_state(state);
    tokio::spawn(async move { axum::serve(listener, router).await });
    issuer
}

/// One sign-in through the service: its callback's status, and whether the session is
/// signed in afterwards.
fn sign_in_over_http(base: &str) -> (u16, bool) {
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .new_agent();
    let login = agent.get(&format!("{base}/auth/login")).call().unwrap();
    let cookie: String = login
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok()?.split(';').next().map(str::to_owned))
        .collect::<Vec<_>>()
        .join("; ");
    let to_provider = login.headers()["location"].to_str().unwrap().to_owned();
    let back = agent.get(&to_provider).call().unwrap();
    let callback = back.headers()["location"].to_str().unwrap().to_owned();
    let answer = agent
        .get(&callback)
        .header("cookie", &cookie)
        .call()
        .unwrap();
    let status = answer.status().as_u16();
    let mut cookies = vec![cookie];
    for v in answer.headers().get_all("set-cookie") {
        if let Some(c) = v.to_str().ok().and_then(|v| v.split(';').next()) {
            cookies.push(c.to_owned());
        }
    }
    // The latest value of each cookie.
    let mut jar: Vec<(String, String)> = Vec::new();
    for c in cookies.iter().flat_map(|c| c.split("; ")) {
        if let Some((k, v)) = c.split_once('=') {
            jar.retain(|(name, _)| name != k);
            jar.push((k.to_owned(), v.to_owned()));
        }
    }
    let jar: Vec<String> = jar.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let mut me = agent
        .get(&format!("{base}/auth/me"))
        .header("cookie", &jar.join("; "))
        .call()
        .unwrap();
    let me: Value = serde_json::from_str(&me.body_mut().read_to_string().unwrap()).unwrap();
    (status, me["signed_in"] == json!(true))
}

/// An identity provider that lies gets nobody in: tokens for another audience, with a
/// replayed nonce, from another issuer, expired, signed with HS256 (the JWKS as the key)
/// or not at all, naming a tenant the platform does not have, or no mapped role.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lying_identity_provider_signs_nobody_in() {
    let tenant = fresh_tenant("webidp");
    stack_is_up(&settings(&tenant));
    create_tenant(&tenant).await;
    let mode = Arc::new(std::sync::Mutex::new(Token::Good));
    let issuer = hostile_provider(mode.clone(), tenant.clone()).await;
    let dir = std::env::temp_dir().join(format!("rf-web-idp-{tenant}"));
    std::fs::create_dir_all(&dir).unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let config = dir.join("roomflow.toml");
    std::fs::write(
        &config,
        format!(
            "[service]\nlisten = \"127.0.0.1:{port}\"\n[service.web]\noidc_issuer = \"{issuer}\"\nredirect_url = \"{base}/auth/callback\"\n"
        ),
    )
    .unwrap();
    let _service = roomflow(&["serve"], &config, &dir.join("serve.log"));
    answering(&format!("{base}/healthz")).await;
    for (token, signed_in) in [
        (Token::Good, true),
        (Token::WrongAudience, false),
        (Token::WrongNonce, false),
        (Token::WrongIssuer, false),
        (Token::Expired, false),
        (Token::Hs256, false),
        (Token::AlgNone, false),
        (Token::UnknownTenant, false),
        (Token::NoRole, false),
    ] {
        *mode.lock().unwrap() = token;
        let base = base.clone();
        let (status, session) = tokio::task::spawn_blocking(move || sign_in_over_http(&base))
            .await
            .unwrap();
        assert_eq!(session, signed_in, "{token:?}: signed in");
        assert_eq!(
            status,
            if signed_in { 303 } else { 403 },
            "{token:?}: the callback's status"
        );
    }
}
