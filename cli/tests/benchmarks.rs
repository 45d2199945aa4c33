//! Cross-tenant benchmarks on the real stack: tenants opt in through the registry, the
//! computation publishes a cohort only under the disclosure rule (five tenants, none over
//! half the rooms), one tenant leaving suppresses it, and neither the published rows nor
//! an answer of `GET /v1/benchmarks` carries a tenant id.

mod common;

use rf_jobs::tenant::TenantSpec;
use rf_schemas::TenantId;

use common::*;

/// `rooms` EMEA meeting rooms of `tenant` with final days over the 10 days before
/// `today`, each at `utilization` (peak twice that).
fn days(tenant: &TenantId, today: chrono::NaiveDate, rooms: u32, utilization: f64) {
    let spec = DayRooms {
        office: "lon",
        region: "EMEA",
        country: "GB",
        zone: "Europe/London",
        floor: 1,
        kind: "MEETING",
        rooms,
    };
    store_room_days(
        tenant,
        &spec,
        today - chrono::Days::new(10),
        10,
        utilization,
    );
}

fn opt(on: bool) -> TenantSpec {
    TenantSpec {
        benchmarks: Some(on),
        ..Default::default()
    }
}

/// The published rows of the latest run, tab-separated, every column.
fn latest_rows() -> Vec<String> {
    clickhouse_lines(
        "SELECT * FROM rf_platform.benchmarks WHERE run = (SELECT max(run) FROM rf_platform.benchmark_runs)",
    )
}

fn get(url: &str, token: &str) -> serde_json::Value {
    let (status, body) = status_and_json(url, token);
    assert_eq!(status, 200, "{body}");
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn benchmarks_publish_only_what_reveals_no_tenant() {
    let tenants: Vec<TenantId> = (0..6).map(|i| fresh_tenant(&format!("bm{i}"))).collect();
    let s = settings(&tenants[0]);
    stack_is_up(&s);
    // An industry of this run alone: other runs' tenants may still be opted in.
    let industry = format!("Finance {}", tenants[0].as_str().replace('-', " "));
    let cohort = industry.to_lowercase();
    let today = chrono::Utc::now().date_naive();
    for (i, t) in tenants.iter().enumerate() {
        let spec = TenantSpec {
            industry: Some(industry.clone()),
            ..Default::default()
        };
        rf_jobs::tenant::create(&s, t, &spec).await.unwrap();
        days(t, today, 4, 0.2 + 0.05 * i as f64);
    }
    let update = |t: usize, on: bool| {
        let (s, t) = (s.clone(), tenants[t].clone());
        async move { rf_jobs::tenant::update(&s, &t, &opt(on)).await.unwrap() }
    };
    // Four opted in: nothing of the cohort is published.
    for t in 0..4 {
        let entry = update(t, true).await;
        assert!(
            entry.benchmarks_opt_in_ms.is_some(),
            "consent is kept with its time"
        );
    }
    let run = rf_jobs::benchmarks::compute(&s, 28, today).await.unwrap();
    assert!(run.contributors >= 4);
    let mine = |rows: &[String]| -> Vec<String> {
        rows.iter()
            .filter(|r| r.split('\t').nth(1) == Some(cohort.as_str()))
            .cloned()
            .collect()
    };
    assert!(
        mine(&latest_rows()).is_empty(),
        "four tenants publish nothing"
    );

    // The fifth: the cohort's figures appear, for every key of it.
    update(4, true).await;
    let run = rf_jobs::benchmarks::compute(&s, 28, today).await.unwrap();
    let rows = latest_rows();
    let published = mine(&rows);
    // utilization and peak for (EMEA or all) × (MEETING or all); no bookings.
    assert_eq!(published.len(), 8, "{published:?}");
    for row in &rows {
        for t in &tenants {
            assert!(!row.contains(t.as_str()), "a row names {t}: {row}");
        }
    }
    let fields: Vec<&str> = published
        .iter()
        .find(|r| r.contains("\tEMEA\tMEETING\tutilization\t"))
        .unwrap()
        .split('\t')
        .collect();
    assert_eq!(fields[5], "5", "five tenants");
    let (p25, p50, p75): (f64, f64, f64) = (
        fields[6].parse().unwrap(),
        fields[7].parse().unwrap(),
        fields[8].parse().unwrap(),
    );
    for p in [p25, p50, p75] {
        assert!(
            (p * 100.0 - (p * 100.0).round()).abs() < 1e-6,
            "rounded: {p}"
        );
        // The tenants' figures are 0.20 to 0.40; noise moves a quartile about one rank.
        assert!((0.0..=0.8).contains(&p), "{p}");
    }
    assert!(p25 <= p50 && p50 <= p75);

    // A contributing tenant sees where it stands; a non-contributing one sees nothing.
    let config = rf_service::ServiceConfig::default();
    let base = serve(&config, &s).await;
    let token = |t: &TenantId| rf_service::mint(&config.jwt_secret, t, "cfo", 300);
    let (url, inside, outside) = (
        format!("{base}/v1/benchmarks"),
        token(&tenants[2]),
        token(&tenants[5]),
    );
    let (answer, refused) = tokio::task::spawn_blocking({
        let url = url.clone();
        move || (get(&url, &inside), get(&url, &outside))
    })
    .await
    .unwrap();
    assert_eq!(answer["opted_in"], true);
    assert_eq!(answer["industry"], cohort.as_str());
    assert_eq!(answer["run"]["to_date"], today.to_string());
    let listed = answer["cohorts"].as_array().unwrap();
    let emea = listed
        .iter()
        .find(|c| {
            c["industry"] == cohort.as_str()
                && c["region"] == "EMEA"
                && c["kind"] == "MEETING"
                && c["metric"] == "utilization"
        })
        .unwrap_or_else(|| panic!("{answer}"));
    assert!(
        (emea["yours"].as_f64().unwrap() - 0.3).abs() < 1e-9,
        "{emea}"
    );
    assert_eq!(emea["p50"].as_f64().unwrap(), p50);
    let position = emea["position"].as_str().unwrap();
    assert_eq!(
        position,
        rf_schemas::benchmark::position(
            0.3,
            &rf_schemas::benchmark::Cohort {
                industry: cohort.clone(),
                region: "EMEA".into(),
                kind: "MEETING".into(),
                metric: "utilization",
                tenants: 5,
                p25,
                p50,
                p75,
            }
        )
    );
    let text = answer.to_string();
    for t in &tenants {
        assert!(!text.contains(t.as_str()), "the answer names {t}");
    }
    assert_eq!(refused["opted_in"], false);
    assert!(refused["cohorts"].as_array().unwrap().is_empty());

    // One of the five revokes: the cohort is suppressed, not revealed by difference.
    let entry = update(4, false).await;
    assert_eq!(entry.benchmarks_opt_in_ms, None);
    rf_jobs::benchmarks::compute(&s, 28, today).await.unwrap();
    assert!(mine(&latest_rows()).is_empty(), "four again: nothing");
    let after = tokio::task::spawn_blocking({
        let (url, inside) = (url.clone(), token(&tenants[2]));
        move || get(&url, &inside)
    })
    .await
    .unwrap();
    assert!(
        !after["cohorts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["industry"] == cohort.as_str()),
        "{after}"
    );

    // Six tenants, one holding over half the rooms: suppressed.
    update(4, true).await;
    days(&tenants[5], today, 30, 0.5);
    update(5, true).await;
    rf_jobs::benchmarks::compute(&s, 28, today).await.unwrap();
    assert!(
        mine(&latest_rows()).is_empty(),
        "30 of 50 rooms: a dominant tenant suppresses the cohort"
    );
    assert!(run.published >= 8);

    for t in 0..6 {
        update(t, false).await;
    }
    for t in &tenants {
        clickhouse_lines(&format!("DROP DATABASE IF EXISTS {}", t.clickhouse_db()));
    }
}
