//! Headcount on the real stack: Workday (RaaS JSON) and SuccessFactors (OData v2, two
//! pages) fakes serve person-level records; what is stored is a count per office, no
//! person-level field reaches any table, and the seats endpoint sets the headcount
//! against the pipeline's busiest day.

mod common;

use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use rf_jobs::calendar::http::Http;
use rf_jobs::headcount::{self, Mapping};
use rf_service::ServiceConfig;

use common::{
    assert_accounts, clickhouse_lines, create_tenant, fresh_tenant, get_with_token,
    run_until_caught_up, serve, settings, stack_is_up, two_rooms_two_days_ago,
};

const MIN: i64 = 60_000;
const HOUR: i64 = 60 * MIN;

/// The HR system's password: long enough that no sealed value holds it by chance.
const PASSWORD: &str = "hr-pass-7f3a9c";

/// Basic auth `hr:hr-pass-7f3a9c`, else 401.
fn authorized(headers: &HeaderMap) -> bool {
    headers.get("authorization").and_then(|v| v.to_str().ok())
        == Some("Basic aHI6aHItcGFzcy03ZjNhOWM=")
}

fn person(i: usize, location: &str) -> serde_json::Value {
    json!({
        "Employee_ID": format!("E{i:05}"),
        "Legal_Name": format!("Person Secretname{i}"),
        "Email": format!("person{i}@acme.example"),
        "Salary": 123_456,
        "Location": {"descriptor": location, "id": "LOC-1"},
        "Department": "Sales",
    })
}

async fn workday(headers: HeaderMap) -> Response {
    if !authorized(&headers) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let mut entries: Vec<_> = (0..8).map(|i| person(i, "London Office")).collect();
    entries.push(person(8, "Atlantis"));
    Json(json!({"Report_Entry": entries})).into_response()
}

async fn successfactors(
    headers: HeaderMap,
    axum::extract::Query(q): axum::extract::Query<std::collections::BTreeMap<String, String>>,
) -> Response {
    if !authorized(&headers) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    assert!(q["$select"] == "location,department", "{q:?}");
    let host = headers["host"].to_str().unwrap().to_owned();
    let job = |i: usize| {
        json!({"userId": format!("u{i}"), "firstName": format!("Secretname{i}"),
               "location": "London Office", "department": if i.is_multiple_of(2) { "Sales" } else { "Ops" }})
    };
    if q.contains_key("$skiptoken") {
        Json(json!({"d": {"results": [job(3), job(4)]}})).into_response()
    } else {
        let next =
            format!("http://{host}/odata/v2/EmpJob?$skiptoken=3&$select=location,department");
        Json(json!({"d": {"results": [job(0), job(1), job(2)], "__next": next}})).into_response()
    }
}

/// A log sink the test reads.
#[derive(Clone, Default)]
struct Logs(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn serve_hr() -> String {
    let app = Router::new()
        .route("/ccx/service/customreport2/acme/heads", get(workday))
        .route("/odata/v2/EmpJob", get(successfactors));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            axum::serve(listener, app).await.unwrap();
        });
    });
    format!("http://{addr}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hr_headcount_is_counted_at_the_edge_and_sets_seats_against_the_busiest_day() {
    let tenant = fresh_tenant("heads");
    let s = settings(&tenant);
    stack_is_up(&s);
    let ids = create_tenant(&tenant).await;

    // The HR systems.
    let base = serve_hr();
    let mapping = Mapping {
        locations: [("London Office".to_string(), "lon".to_string())].into(),
        location_field: "Location".into(),
        department_field: None,
    };
    // Every log line the connectors write, at every level, as JSON.
    let logs = Logs::default();
    let writer = logs.clone();
    let (wd, sf, calls) = tokio::task::spawn_blocking(move || {
        let subscriber = tracing_subscriber::fmt()
            .json()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(move || writer.clone())
            .finish();
        let _guard = tracing::subscriber::set_default(subscriber);
        let http = Http::new("heads", "test");
        let wd = headcount::workday(
            &http,
            &format!("{base}/ccx/service/customreport2/acme/heads"),
            "hr",
            PASSWORD,
            &mapping,
        );
        let sf_mapping = Mapping {
            location_field: "location".into(),
            department_field: Some("department".into()),
            ..mapping
        };
        let sf = headcount::successfactors(&http, &base, "hr", PASSWORD, &sf_mapping);
        let refused = headcount::workday(
            &http,
            &format!("{base}/ccx/service/customreport2/acme/heads"),
            "hr",
            "wrong",
            &sf_mapping,
        );
        assert!(refused.unwrap_err().contains("refused"));
        (wd.unwrap(), sf.unwrap(), http.take_calls())
    })
    .await
    .unwrap();
    // Every call audited in the tenant's audit table, without its query string.
    rf_jobs::calendar::http::audit(&s.clickhouse, &tenant, "test", "run-1", &calls)
        .await
        .unwrap();
    let audited = clickhouse_lines(&format!(
        "SELECT subject, route, status, query FROM {}.audit ORDER BY ts_ms FORMAT TSV",
        tenant.clickhouse_db()
    ));
    let statuses: Vec<&str> = audited
        .iter()
        .map(|l| l.split('\t').nth(2).unwrap())
        .collect();
    assert_eq!(statuses, ["200", "200", "200", "401"], "{audited:#?}");
    assert!(
        audited
            .iter()
            .all(|l| l.starts_with("connector:test\tGET http://") && l.ends_with('\t')),
        "{audited:#?}"
    );
    assert_eq!(wd.heads, [(("lon".to_string(), String::new()), 8)].into());
    assert_eq!(wd.unmapped, 1);
    let by_department: Vec<u32> = sf.heads.values().copied().collect();
    assert_eq!(by_department, [2, 3], "Ops, Sales: {:?}", sf.heads);

    // Yesterday's Workday count, today's SuccessFactors count: the latest day is used.
    let today = (chrono::Utc::now().timestamp_millis() / (24 * HOUR)) as u16;
    let mut rows = wd.rows(today - 1, "workday", 1);
    rows.extend(sf.rows(today, "successfactors", 2));
    headcount::store(&s.clickhouse, &tenant, &rows)
        .await
        .unwrap();

    // Occupancy: two days ago, lon-a holds 3 people from 9:00 to 12:00, lon-b nobody.
    let people = |room: &str, _| Some(if room == "lon-a" { 3 } else { 0 });
    let t0 = two_rooms_two_days_ago(&s, &tenant, ids, people).await;
    assert_accounts(&run_until_caught_up(&s).await);

    // Nothing of a person in the logs or the tenant's database (no metric counts people:
    // the connectors have none).
    let logged = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(
        logged.contains("connector call"),
        "the calls are logged: {logged}"
    );
    for secret in ["Secretname", "E0000", "acme.example", "123456", "\"u3\""] {
        assert!(!logged.contains(secret), "{secret} logged: {logged}");
    }
    let db = tenant.clickhouse_db();
    for table in clickhouse_lines(&format!(
        "SELECT name FROM system.tables WHERE database = '{db}'"
    )) {
        let dump = clickhouse_lines(&format!("SELECT * FROM {db}.{table} FORMAT TSV")).join("\n");
        for secret in ["Secretname", "E0000", "acme.example", "123456", "u3"] {
            assert!(!dump.contains(secret), "{secret} in {table}");
        }
    }

    let config = ServiceConfig::default();
    let service = serve(&config, &s).await;
    let token = rf_service::mint(&config.jwt_secret, &tenant, "seats", 300);
    let body = get_with_token(format!("{service}/v1/insights/seats?days=7"), token).await;
    let lon = &body["offices"][0];
    assert_eq!(lon["office_id"], "lon", "{body}");
    assert_eq!(lon["headcount"], 5, "{body}");
    assert_eq!(lon["seats"], 12, "{body}");
    assert_eq!(lon["peak_present"], 3.0, "{body}");
    assert_eq!(lon["peak_share_of_headcount"], 0.6, "{body}");
    assert_eq!(lon["seats_needed"], 4.0, "{body}");
    assert_eq!(lon["seats_releasable"], 8.0, "{body}");
    let peak_day = chrono::DateTime::from_timestamp_millis(t0)
        .unwrap()
        .format("%Y-%m-%d")
        .to_string();
    assert_eq!(
        lon["recommendation"],
        format!("London has 5 people and 12 seats but uses at most 3 on its busiest day ({peak_day}): 67% of seats could go, keeping 10% above that peak"),
        "{body}"
    );
}

/// `roomflow` with the local stack's defaults.
fn roomflow(args: &[&str], stdin: &str) -> std::process::Output {
    use std::io::Write;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_roomflow"))
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// The operator's way: the HR password sealed under the tenant's data key sits in the
/// connector file; `roomflow headcount sync` opens it, counts, stores and audits. A plain
/// password in the file is refused, naming the field.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sealed_password_syncs_the_hr_system_and_a_plain_one_is_refused() {
    let tenant = fresh_tenant("sealed");
    let s = settings(&tenant);
    stack_is_up(&s);
    create_tenant(&tenant).await;
    let base = serve_hr();
    let (tenant_arg, dir) = (tenant.to_string(), tempdir());
    let out = tokio::task::spawn_blocking(move || {
        let sealed = roomflow(
            &["keys", "seal", "--tenant", &tenant_arg, "--field", "password"],
            &format!("{PASSWORD}\n"),
        );
        assert!(sealed.status.success(), "{}", String::from_utf8_lossy(&sealed.stderr));
        let sealed = String::from_utf8(sealed.stdout).unwrap().trim().to_owned();
        assert!(sealed.starts_with("sealed:") && !sealed.contains(PASSWORD), "{sealed}");
        let connector = |password: &str| {
            let path = dir.join(format!("hr-{}.toml", password.len()));
            let text = format!(
                "provider = \"workday\"\nurl = \"{base}/ccx/service/customreport2/acme/heads\"\nuser = \"hr\"\npassword = \"{password}\"\nlocation_field = \"Location\"\n[locations]\n\"London Office\" = \"lon\"\n"
            );
            std::fs::write(&path, text).unwrap();
            path.display().to_string()
        };
        let plain = roomflow(&["headcount", "sync", "--tenant", &tenant_arg, "--connector", &connector(PASSWORD)], "");
        assert!(!plain.status.success());
        let err = String::from_utf8_lossy(&plain.stderr);
        assert!(err.contains("password: not sealed"), "{err}");
        let out = roomflow(&["headcount", "sync", "--tenant", &tenant_arg, "--connector", &connector(&sealed)], "");
        std::fs::remove_dir_all(&dir).unwrap();
        out
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("8 people"), "{stdout}");
    let db = tenant.clickhouse_db();
    let stored = clickhouse_lines(&format!(
        "SELECT office_id, heads, source FROM {db}.headcount FORMAT TSV"
    ));
    assert_eq!(stored, ["lon\t8\tworkday"]);
    let audited = clickhouse_lines(&format!(
        "SELECT subject, status FROM {db}.audit FORMAT TSV"
    ));
    assert_eq!(audited, ["connector:workday\t200"]);
}

fn tempdir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("rf-hr-{}", rf_schemas::unix_micros()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
