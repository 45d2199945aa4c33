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

/// Readings of every room of `fleet` every 15 minutes over the last `days` days.
fn readings(fleet: &Fleet, v1: u32, v2: u32, now: i64, days: i64) -> Vec<(String, Vec<u8>, i64)> {
    let mut out = Vec::new();
    let start = (now - days * DAY) / (15 * MIN) * (15 * MIN);
    for ts in (start..now - MIN).step_by(15 * 60_000) {
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
        let publisher =
            rf_jobs::calendar::publish::Publisher::new(&s.kafka, &s.registry, tenant).unwrap();
        for room in &fleet.tenants[0].1 {
            for b in fleet.bookings(room, now - days * DAY, now) {
                publisher.publish(&b).unwrap();
            }
        }
        publisher.flush().unwrap();
        let heads: Vec<rf_jobs::headcount::Heads> = fleet.tenants[0]
            .1
            .iter()
            .map(|r| r.version.office_id.clone())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .map(|office_id| rf_jobs::headcount::Heads {
                day: (now / DAY) as u16,
                office_id,
                department: String::new(),
                heads: 40,
                source: "csv".into(),
                version: 1,
            })
            .collect();
        rf_jobs::headcount::store(&s.clickhouse, tenant, &heads)
            .await
            .unwrap();
    }
    provision(tenant, &fleet, &readings(&fleet, v1, v2, now, days)).await;
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
