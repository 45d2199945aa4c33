//! Questions in plain language on the real local stack: a simulated portfolio of four
//! offices with sixteen days of readings, bookings and headcount goes through the pipeline;
//! the query service answers questions of every kind, and each answer's numbers are
//! checked against its result and its references, which are fetched again with the
//! caller's own token. Another tenant's offices are never mentioned, a viewer is refused
//! an analyst's answer, every question lands in the audit table, and `roomflow ask`
//! answers as the API does.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{Datelike, Timelike};
use serde_json::Value;

use common::*;
use rf_jobs::simulate::{Fleet, FleetSpec};
use rf_schemas::tenant::Role;
use rf_schemas::TenantId;
use rf_service::ServiceConfig;

const MIN: i64 = 60_000;
const DAY: i64 = 86_400_000;

/// Creates `tenant` with `offices` offices of 12 rooms, `days` of readings and, when
/// asked, their bookings and 40 people per office.
async fn portfolio(tenant: &TenantId, offices: usize, days: i64, bookings: bool) -> Fleet {
    let fleet = Fleet::new(&FleetSpec {
        tenants: vec![tenant.clone()],
        offices,
        rooms: 12 * offices,
        seed: 11,
    });
    let s = settings(tenant);
    let (v1, _) = create_tenant(tenant).await;
    let v2 = reading_v2_id(&s, tenant);
    let now = rf_schemas::unix_ms();
    if bookings {
        publish_bookings(&s, tenant, &fleet, (now - days * DAY, now));
        store_headcount(&s, tenant, &fleet, 40, now).await;
    }
    let readings = fleet_readings(&fleet, (v1, v2), (now - days * DAY, now), 15 * MIN);
    provision(tenant, &fleet, &readings).await;
    fleet
}

/// GET `url` with a bearer token: status and JSON body (off the async runtime).
async fn get(url: String, token: String) -> (u16, Value) {
    tokio::task::spawn_blocking(move || {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .new_agent();
        let mut response = agent
            .get(&url)
            .header("Authorization", format!("Bearer {token}"))
            .call()
            .unwrap();
        let status = response.status().as_u16();
        (status, response.body_mut().read_json().unwrap_or_default())
    })
    .await
    .unwrap()
}

fn ask_url(base: &str, q: &str) -> String {
    let mut url = url::Url::parse(&format!("{base}/v1/ask")).unwrap();
    url.query_pairs_mut().append_pair("q", q);
    url.to_string()
}

/// Everything an answer shows: its sentence and its table's cells.
fn said(answer: &Value) -> String {
    let mut text = answer["answer"].as_str().unwrap_or("").to_owned();
    for row in answer["table"]["rows"].as_array().into_iter().flatten() {
        for cell in row.as_array().unwrap() {
            text.push('\n');
            text.push_str(cell.as_str().unwrap());
        }
    }
    text
}

/// The mean utilization of a series' windows whose local date in `zone` is in
/// `[from, to)`, on `weekdays` (0 = Monday; all if empty) and in `hours`.
fn mean_of(
    series: &Value,
    zone: chrono_tz::Tz,
    dates: (chrono::NaiveDate, chrono::NaiveDate),
    weekdays: &[u32],
    hours: Option<(u32, u32)>,
) -> (f64, usize) {
    let mut sum = 0.0;
    let mut n = 0;
    for w in series["windows"].as_array().unwrap() {
        let start = chrono::DateTime::parse_from_rfc3339(w["start"].as_str().unwrap())
            .unwrap()
            .with_timezone(&zone);
        let date = start.date_naive();
        let weekday = date.weekday().num_days_from_monday();
        let in_hours = hours.is_none_or(|(a, b)| (a..b).contains(&start.hour()));
        if date >= dates.0
            && date < dates.1
            && (weekdays.is_empty() || weekdays.contains(&weekday))
            && in_hours
        {
            sum += w["utilization"].as_f64().unwrap();
            n += 1;
        }
    }
    (if n > 0 { sum / n as f64 } else { 0.0 }, n)
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn questions_are_answered_from_the_tenants_own_numbers() {
    let tenant = fresh_tenant("ask");
    let other = fresh_tenant("askother");
    let s = settings(&tenant);
    stack_is_up(&s);
    // lon, nyc, sin, ber; the other tenant also has sfo and syd.
    let fleet = portfolio(&tenant, 4, 16, true).await;
    portfolio(&other, 6, 1, false).await;
    let mut both = s.clone();
    both.pipeline.tenants = vec![tenant.to_string(), other.to_string()];
    let report = run_until_caught_up(&both).await;
    assert!(report.stats.counted > 0);

    // The test asks and fetches more than a tenant's analytics limit allows a minute.
    let mut config = ServiceConfig::default();
    for limits in config.rate_limits.values_mut() {
        limits.analytics.requests = 10_000;
    }
    let base = serve(&config, &s).await;
    let policy = config.token_policy();
    let analyst = rf_service::auth::mint_as(
        &config.jwt_secret,
        &policy,
        &tenant,
        "exec@example.com",
        600,
        Some(Role::Analyst),
    );
    let viewer = rf_service::auth::mint_as(
        &config.jwt_secret,
        &policy,
        &tenant,
        "fm@example.com",
        600,
        Some(Role::Viewer),
    );
    let ask = |q: &str, token: &str| get(ask_url(&base, q), token.to_owned());

    let london: chrono_tz::Tz = "Europe/London".parse().unwrap();
    let today = chrono::Utc::now().with_timezone(&london).date_naive();
    let monday = today - chrono::Duration::days(i64::from(today.weekday().num_days_from_monday()));
    let last_week = (monday - chrono::Duration::days(7), monday);

    // Every kind of operation, and what each answer's plan must be.
    let cases: &[(&str, &str)] = &[
        ("How busy was London last week?", "utilization"),
        ("How busy is New York on Tuesdays?", "utilization"),
        ("How busy was Singapore yesterday afternoon?", "utilization"),
        ("How busy is EMEA this week?", "utilization"),
        ("Compare London and New Yrok this week", "compare"),
        ("Which offices were busiest last week?", "ranking"),
        (
            "Which meeting rooms in EMEA were under 20% last week?",
            "underused",
        ),
        ("When is London busiest?", "heatmap"),
        ("When will Berlin pass 80% at peak?", "forecast"),
        ("Any anomalies this week?", "anomalies"),
        ("Which rooms are booked but empty most often?", "ghosts"),
        ("Do we have too many seats in London?", "seats"),
    ];
    let mut answers = BTreeMap::new();
    for (q, op) in cases {
        let (status, answer) = ask(q, &analyst).await;
        assert_eq!(status, 200, "{q}: {answer}");
        assert_eq!(answer["outcome"], "answer", "{q}: {answer:#}");
        assert_eq!(answer["plan"]["op"], *op, "{q}: {answer:#}");
        assert_eq!(answer["understood_by"], "builtin");
        let confidence = answer["confidence"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&confidence), "{q}: {confidence}");
        // Every number said is in the executed result…
        let unsupported = rf_service::ask::check::unsupported(&said(&answer), &answer["result"]);
        assert!(
            unsupported.is_empty(),
            "{q}: {unsupported:?} not in the result of {answer:#}"
        );
        // …and every reference answers the same caller with what the plan used.
        let references = answer["references"].as_array().unwrap();
        assert!(!references.is_empty(), "{q}");
        for r in references {
            let (status, body) = get(
                format!("{base}{}", r["endpoint"].as_str().unwrap()),
                analyst.clone(),
            )
            .await;
            assert!(
                status == 200 || status == 404,
                "{q}: {} gave {status}: {body}",
                r["endpoint"]
            );
        }
        answers.insert(*q, answer);
    }

    // The numbers, recomputed from the references' own answers.
    let london_week = &answers["How busy was London last week?"];
    assert_eq!(london_week["plan"]["period"], "last_week");
    let endpoint = london_week["references"][0]["endpoint"].as_str().unwrap();
    assert!(
        endpoint.starts_with("/v1/offices/lon/utilization?granularity=1d&from="),
        "{endpoint}"
    );
    let (_, series) = get(format!("{base}{endpoint}"), analyst.clone()).await;
    let (mean, days) = mean_of(&series, london, last_week, &[], None);
    assert_eq!(
        days,
        london_week["result"]["windows"].as_u64().unwrap() as usize
    );
    assert!(days >= 5, "last week's London days: {days}");
    assert!(close(
        mean,
        london_week["result"]["mean_utilization"].as_f64().unwrap()
    ));
    assert!(london_week["answer"]
        .as_str()
        .unwrap()
        .contains(&format!("{:.0}%", mean * 100.0)));

    let tuesdays = &answers["How busy is New York on Tuesdays?"];
    assert_eq!(
        tuesdays["plan"]["when"]["weekdays"],
        serde_json::json!(["tue"])
    );
    let endpoint = tuesdays["references"][0]["endpoint"].as_str().unwrap();
    let (_, series) = get(format!("{base}{endpoint}"), analyst.clone()).await;
    let new_york: chrono_tz::Tz = "America/New_York".parse().unwrap();
    let ny_today = chrono::Utc::now().with_timezone(&new_york).date_naive();
    let (mean, n) = mean_of(
        &series,
        new_york,
        (ny_today - chrono::Duration::days(28), ny_today),
        &[1],
        None,
    );
    assert!(n >= 1, "a Tuesday in sixteen days");
    assert_eq!(n, tuesdays["result"]["windows"].as_u64().unwrap() as usize);
    assert!(close(
        mean,
        tuesdays["result"]["mean_utilization"].as_f64().unwrap()
    ));

    let afternoon = &answers["How busy was Singapore yesterday afternoon?"];
    assert_eq!(
        afternoon["plan"]["when"]["hours"],
        serde_json::json!([12, 17])
    );
    let endpoint = afternoon["references"][0]["endpoint"].as_str().unwrap();
    assert!(endpoint.contains("granularity=1h"), "{endpoint}");
    let (_, series) = get(format!("{base}{endpoint}"), analyst.clone()).await;
    let singapore: chrono_tz::Tz = "Asia/Singapore".parse().unwrap();
    let sg_today = chrono::Utc::now().with_timezone(&singapore).date_naive();
    let (mean, n) = mean_of(
        &series,
        singapore,
        (sg_today - chrono::Duration::days(1), sg_today),
        &[],
        Some((12, 17)),
    );
    assert_eq!(n, 5, "five afternoon hours");
    assert!(close(
        mean,
        afternoon["result"]["mean_utilization"].as_f64().unwrap()
    ));

    let compared = &answers["Compare London and New Yrok this week"];
    assert_eq!(
        compared["plan"]["scope"]["offices"],
        serde_json::json!(["lon", "nyc"])
    );
    assert!(
        compared["notes"].to_string().contains("yrok"),
        "the typo is noted: {compared}"
    );
    assert!(compared["confidence"].as_f64().unwrap() < 1.0);
    assert_eq!(compared["references"].as_array().unwrap().len(), 2);

    let ranking = &answers["Which offices were busiest last week?"];
    let endpoint = ranking["references"][0]["endpoint"].as_str().unwrap();
    assert!(
        endpoint.contains(&format!(
            "from_date={}&to_date={}",
            last_week.0, last_week.1
        )),
        "{endpoint}"
    );
    let (_, ranked) = get(format!("{base}{endpoint}"), analyst.clone()).await;
    let listed: Vec<&str> = ranked["offices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["office_id"].as_str().unwrap())
        .collect();
    assert_eq!(listed.len(), 4, "{ranked}");
    let said_offices: Vec<&str> = ranking["result"]["offices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["office_id"].as_str().unwrap())
        .collect();
    assert_eq!(said_offices, listed, "busiest first, as the ranking");

    let underused = &answers["Which meeting rooms in EMEA were under 20% last week?"];
    let endpoint = underused["references"][0]["endpoint"].as_str().unwrap();
    assert!(
        endpoint.contains("region=EMEA")
            && endpoint.contains("kind=MEETING")
            && endpoint.contains("threshold=0.2"),
        "{endpoint}"
    );
    let emea_meeting: Vec<&str> = fleet.tenants[0]
        .1
        .iter()
        .filter(|r| r.version.region == "EMEA" && r.version.kind == rf_schemas::RoomKind::Meeting)
        .map(|r| r.version.room_id.as_str())
        .collect();
    for room in underused["result"]["rooms"].as_array().unwrap() {
        assert!(
            emea_meeting.contains(&room["room_id"].as_str().unwrap()),
            "{room}"
        );
        assert!(room["utilization"].as_f64().unwrap() < 0.2);
    }
    let (_, below) = get(format!("{base}{endpoint}"), analyst.clone()).await;
    assert_eq!(below["rooms_below"], underused["result"]["rooms_below"]);

    // A name that fits rooms of several offices is asked back, never guessed.
    let mut by_name: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for r in &fleet.tenants[0].1 {
        by_name
            .entry(r.version.name.as_str())
            .or_default()
            .push(r.version.room_id.as_str());
    }
    let (name, ids) = by_name
        .iter()
        .find(|(_, ids)| ids.len() >= 2)
        .expect("a room name in two offices");
    let (_, back) = ask(&format!("How busy was {name} last week?"), &analyst).await;
    assert_eq!(back["outcome"], "clarify", "{back}");
    let mut offered: Vec<&str> = back["options"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_str().unwrap())
        .collect();
    offered.sort();
    let mut expected = ids.clone();
    expected.sort();
    assert_eq!(offered, expected);
    assert!(
        back["answer"].as_str().unwrap().starts_with("Which "),
        "{back}"
    );

    // Another tenant's offices do not exist for this one.
    for q in [
        "How busy is Sydney?",
        "Compare San Francisco and London",
        "When will Sydney pass 80%?",
    ] {
        let (status, answer) = ask(q, &analyst).await;
        assert_eq!(status, 200);
        assert_eq!(answer["outcome"], "out_of_scope", "{q}: {answer}");
        assert!(
            answer.get("result").is_none() && answer.get("references").is_none(),
            "{q}: {answer}"
        );
    }
    let (_, weather) = ask("What's the weather in London?", &analyst).await;
    assert_eq!(weather["outcome"], "out_of_scope");
    assert!(
        weather["answer"].as_str().unwrap().contains("I can answer"),
        "{weather}"
    );
    // Nothing any answer said names the other tenant or its offices.
    let everything = serde_json::to_string(&answers).unwrap();
    for word in [other.as_str(), "Sydney", "San Francisco", "syd", "sfo"] {
        assert!(!everything.contains(word), "{word} in an answer");
    }

    // A viewer asks, and is told the operation needs an analyst.
    let (status, refused) = ask("Which rooms are underused?", &viewer).await;
    assert_eq!(status, 200);
    assert_eq!(refused["outcome"], "refused", "{refused}");
    assert!(
        refused["answer"].as_str().unwrap().contains("analyst"),
        "{refused}"
    );
    let (_, viewed) = ask("How busy was London last week?", &viewer).await;
    assert_eq!(viewed["answer"], london_week["answer"]);
    // A question counts once against the tenant's analytics limit, however many
    // operations its plan runs (a comparison runs two).
    let remaining = |q: &str| {
        let url = ask_url(&base, q);
        let token = analyst.clone();
        tokio::task::spawn_blocking(move || {
            let response = ureq::get(&url)
                .header("Authorization", format!("Bearer {token}"))
                .call()
                .unwrap();
            response
                .headers()
                .get("ratelimit-remaining")
                .unwrap()
                .to_str()
                .unwrap()
                .parse::<i64>()
                .unwrap()
        })
    };
    let first = remaining("Compare London and New York this week")
        .await
        .unwrap();
    let second = remaining("Compare London and Singapore last week")
        .await
        .unwrap();
    assert_eq!(first - second, 1, "one question, one analytics request");
    // Bad input gets a clear answer.
    let (status, body) = get(format!("{base}/v1/ask"), analyst.clone()).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["parameter"], "q");
    let (status, _) = get(ask_url(&base, &"busy ".repeat(200)), analyst.clone()).await;
    assert_eq!(status, 400);

    // `roomflow ask` answers as the API does, and is audited too.
    let out = tokio::task::spawn_blocking({
        let tenant = tenant.to_string();
        move || {
            std::process::Command::new(env!("CARGO_BIN_EXE_roomflow"))
                .args(["ask", "--tenant", &tenant, "How busy was London last week?"])
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{printed}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        printed.starts_with(london_week["answer"].as_str().unwrap()),
        "{printed}"
    );
    assert!(
        printed.contains("from: GET /v1/offices/lon/utilization?granularity=1d"),
        "{printed}"
    );

    // Every question is in the tenant's audit table: the question, the plan, the
    // references.
    let db = tenant.clickhouse_db();
    let asked = cases.len() + 9;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let rows = loop {
        let rows = clickhouse_lines(&format!(
            "SELECT subject, query FROM {db}.audit WHERE route = '/v1/ask' ORDER BY ts_ms"
        ));
        if rows.len() >= asked || std::time::Instant::now() > deadline {
            break rows;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert!(
        rows.len() >= asked,
        "{} audit rows of {asked}: {rows:#?}",
        rows.len()
    );
    let row = rows
        .iter()
        .find(|r| r.contains("Which meeting rooms in EMEA"))
        .expect("the question's row");
    assert!(row.starts_with("exec@example.com\t"), "{row}");
    let detail: Value = serde_json::from_str(
        row.split_once('\t')
            .unwrap()
            .1
            .replace("\\\\", "\\")
            .as_str(),
    )
    .unwrap();
    assert_eq!(detail["plan"]["op"], "underused");
    assert!(detail["references"][0]
        .as_str()
        .unwrap()
        .starts_with("/v1/insights/underused?"));
    assert!(
        rows.iter().any(|r| r.starts_with("cli:")),
        "the CLI's question: {rows:#?}"
    );
}

/// What the fake language model replies.
#[derive(Clone, Copy, Debug)]
enum Mode {
    /// A valid plan of London yesterday.
    Good,
    /// An operation that does not exist.
    Invalid,
    /// A threshold the question does not say (the question says 20%).
    Invented,
    /// Words and numbers of its own instead of a tool call.
    Prose,
    /// An office the tenant does not have.
    Foreign,
}

/// A local stand-in for an OpenAI-compatible chat-completions endpoint (`/openai`) and
/// Anthropic's Messages API (`/anthropic`): checks the key, records every request body,
/// and replies as `mode` says in each provider's own shape.
async fn fake_provider(
    mode: std::sync::Arc<std::sync::Mutex<Mode>>,
    seen: std::sync::Arc<std::sync::Mutex<Vec<Value>>>,
) -> String {
    use axum::http::{HeaderMap, StatusCode};
    let reply = move |anthropic: bool| {
        let (mode, seen) = (mode.clone(), seen.clone());
        move |headers: HeaderMap, body: axum::Json<Value>| async move {
            let key = if anthropic {
                headers.get("x-api-key").and_then(|v| v.to_str().ok()) == Some("fake-key")
                    && headers.contains_key("anthropic-version")
            } else {
                headers.get("authorization").and_then(|v| v.to_str().ok())
                    == Some("Bearer fake-key")
            };
            if !key {
                return (
                    StatusCode::UNAUTHORIZED,
                    axum::Json(serde_json::json!({ "error": "bad key" })),
                );
            }
            seen.lock().unwrap().push(body.0);
            let plan = match *mode.lock().unwrap() {
                Mode::Good => {
                    serde_json::json!({ "op": "utilization", "scope": { "offices": ["lon"] }, "period": "yesterday" })
                }
                Mode::Invalid => serde_json::json!({ "op": "drop_table", "scope": {} }),
                Mode::Invented => {
                    serde_json::json!({ "op": "underused", "scope": {}, "period": "last_week", "threshold": 0.35 })
                }
                Mode::Foreign => {
                    serde_json::json!({ "op": "utilization", "scope": { "offices": ["zzz-other"] }, "period": "yesterday" })
                }
                Mode::Prose => Value::Null,
            };
            let arguments = serde_json::json!({ "outcome": "plan", "plan": plan });
            let prose = "London was 73% busy yesterday, with 41 people at its peak.";
            let body = match (anthropic, plan.is_null()) {
                (false, false) => {
                    serde_json::json!({ "choices": [{ "message": { "role": "assistant", "tool_calls": [
                    { "id": "c1", "type": "function", "function": { "name": "plan", "arguments": arguments.to_string() } }
                ] } }] })
                }
                (false, true) => {
                    serde_json::json!({ "choices": [{ "message": { "role": "assistant", "content": prose } }] })
                }
                (true, false) => {
                    serde_json::json!({ "content": [{ "type": "tool_use", "id": "t1", "name": "plan", "input": arguments }] })
                }
                (true, true) => {
                    serde_json::json!({ "content": [{ "type": "text", "text": prose }] })
                }
            };
            (StatusCode::OK, axum::Json(body))
        }
    };
    let router = axum::Router::new()
        .route(
            "/openai/v1/chat/completions",
            axum::routing::post(reply(false)),
        )
        .route("/anthropic/v1/messages", axum::routing::post(reply(true)));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    base
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_language_model_only_plans_and_its_bad_plans_are_refused() {
    let tenant = fresh_tenant("askllm");
    let s = settings(&tenant);
    stack_is_up(&s);
    portfolio(&tenant, 2, 2, false).await;
    let report = run_until_caught_up(&s).await;
    assert!(report.stats.counted > 0);

    let mode = std::sync::Arc::new(std::sync::Mutex::new(Mode::Good));
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let provider = fake_provider(mode.clone(), seen.clone()).await;
    let mut openai = ServiceConfig::default();
    for limits in openai.rate_limits.values_mut() {
        limits.analytics.requests = 10_000;
    }
    openai.ask.llm.provider = "openai".into();
    openai.ask.llm.url = format!("{provider}/openai/v1/chat/completions");
    openai.ask.llm.model = "fake-model".into();
    openai.ask.llm.api_key = rf_sinks::Secret::new("fake-key");
    openai.validate().unwrap();
    let mut anthropic = openai.clone();
    anthropic.ask.llm.provider = "anthropic".into();
    anthropic.ask.llm.url = format!("{provider}/anthropic/v1/messages");
    let token = rf_service::mint(&openai.jwt_secret, &tenant, "exec", 600);

    for config in [&openai, &anthropic] {
        let base = serve(config, &s).await;
        let ask = |q: &str, parser: &str| {
            let mut url = url::Url::parse(&format!("{base}/v1/ask")).unwrap();
            url.query_pairs_mut()
                .append_pair("q", q)
                .append_pair("parser", parser);
            get(url.to_string(), token.clone())
        };
        *mode.lock().unwrap() = Mode::Good;
        let (status, answer) = ask("How busy was London yesterday?", "llm").await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["outcome"], "answer", "{answer:#}");
        assert_eq!(answer["understood_by"], "llm");
        assert_eq!(answer["plan"]["op"], "utilization");
        // The built-in parser makes the same plan: the model is trusted as much.
        assert_eq!(answer["confidence"], 0.95);
        assert!(rf_service::ask::check::unsupported(&said(&answer), &answer["result"]).is_empty());
        let (_, builtin) = ask("How busy was London yesterday?", "builtin").await;
        assert_eq!(
            builtin["answer"], answer["answer"],
            "the same plan, the same answer"
        );

        for (bad, why) in [
            (Mode::Invalid, "not valid"),
            (Mode::Invented, "does not say"),
            (Mode::Prose, "instead of making a plan"),
            (Mode::Foreign, "not valid"),
        ] {
            *mode.lock().unwrap() = bad;
            let (status, refused) = ask("Which rooms were under 20% last week?", "llm").await;
            assert_eq!(status, 200);
            assert_eq!(refused["outcome"], "refused", "{bad:?}: {refused}");
            let text = refused["answer"].as_str().unwrap();
            assert!(text.contains(why), "{bad:?}: {text}");
            // Nothing of the model's reaches the answer: no number at all.
            assert!(!text.chars().any(|c| c.is_ascii_digit()), "{bad:?}: {text}");
            assert!(refused.get("result").is_none());
        }
    }

    // By default the model is asked only what the built-in parser cannot plan.
    let base = serve(&openai, &s).await;
    let before = seen.lock().unwrap().len();
    *mode.lock().unwrap() = Mode::Good;
    let (_, parsed) = get(
        ask_url(&base, "How busy was London last week?"),
        token.clone(),
    )
    .await;
    assert_eq!(parsed["understood_by"], "builtin");
    assert_eq!(seen.lock().unwrap().len(), before, "not sent to the model");
    let (_, fallback) = get(
        ask_url(
            &base,
            "Tell me about footfall chez nous in the British capital",
        ),
        token.clone(),
    )
    .await;
    assert_eq!(fallback["understood_by"], "llm", "{fallback}");
    assert_eq!(fallback["outcome"], "answer");
    assert_eq!(seen.lock().unwrap().len(), before + 1);
    // Who someone is, or what roomflow has no data on, is never sent to the model.
    for q in [
        "Who was in London yesterday?",
        "What's the weather in London?",
    ] {
        let (_, settled) = get(ask_url(&base, q), token.clone()).await;
        assert_eq!(settled["outcome"], "out_of_scope", "{q}: {settled}");
    }
    assert_eq!(
        seen.lock().unwrap().len(),
        before + 1,
        "not sent to the model"
    );
    // A refused fallback keeps the built-in parser's answer.
    *mode.lock().unwrap() = Mode::Invented;
    let (_, kept) = get(
        ask_url(
            &base,
            "Tell me about footfall chez nous in the British capital",
        ),
        token.clone(),
    )
    .await;
    assert_eq!(kept["outcome"], "out_of_scope", "{kept}");

    // The model is sent the question and the tenant's names, never a reading or a result.
    for body in seen.lock().unwrap().iter() {
        let messages = body["messages"].as_array().unwrap();
        let user = messages.iter().find(|m| m["role"] == "user").unwrap();
        let content: Value = serde_json::from_str(user["content"].as_str().unwrap()).unwrap();
        let keys: Vec<&String> = content.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["names", "question", "today"]);
        let names: Vec<&String> = content["names"].as_object().unwrap().keys().collect();
        assert_eq!(names, ["offices", "regions", "room_kinds", "rooms"]);
        for office in content["names"]["offices"].as_array().unwrap() {
            let fields: Vec<&String> = office.as_object().unwrap().keys().collect();
            assert_eq!(fields, ["country", "floors", "id", "name", "region"]);
        }
        let sent = user["content"].as_str().unwrap();
        for word in [
            "utilization",
            "avg_people",
            "peak_people",
            "capacity",
            "monthly_cost",
            "readings",
            "headcount",
        ] {
            assert!(!sent.contains(word), "{word} sent to the model: {sent}");
        }
        assert!(body["tools"].is_array() && body["model"] == "fake-model");
    }
}
