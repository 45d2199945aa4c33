//! The cold tier on the real local stack, in a directory and in an S3 bucket (moto's
//! server): retention exports a month past the tenant's retention to Parquet with a
//! manifest of checksums and drops it; the files check against the manifest when read
//! independently; a tampered file is refused and restores nothing from it; a restore
//! brings back exactly the rows that went, and its hold keeps them from the next
//! retention; cold months past `keep_days` are deleted.

mod common;

use common::*;
use rf_jobs::cold::{ColdConfig, ColdStore, Manifest};
use rf_jobs::queue::worker::JobsConfig;
use rf_jobs::queue::{JobKind, JobState, JobStatus};
use rf_pipelines::Settings;
use rf_schemas::TenantId;
use sha2::Digest;

const DAY: i64 = 86_400;
const S3: &str = "http://127.0.0.1:19900";

/// The tables a cold month holds, with the column their months are of.
const TABLES: [(&str, &str); 6] = [
    ("room_utilization", "window_start"),
    ("office_utilization", "window_start"),
    ("room_days", "day"),
    ("anomalies", "window_start"),
    ("audit", "ts"),
    ("booking_usage", "window_start"),
];

/// Every row of `month` in the cold tables, as ClickHouse returns them (merged, for the
/// replacing tables), sorted.
fn month_rows(db: &str, month: u32) -> Vec<String> {
    let mut rows = Vec::new();
    for (table, column) in TABLES {
        let last = if table == "audit" { "" } else { " FINAL" };
        for line in clickhouse_lines(&format!(
            "SELECT * FROM {db}.{table}{last} WHERE toYYYYMM({column}) = {month}"
        )) {
            rows.push(format!("{table}\t{line}"));
        }
    }
    rows.sort();
    rows
}

fn insert_old_month(db: &str, t: i64) {
    let end = t + DAY;
    for sql in [
        // Two versions of one room's day: the later one wins, before and after.
        format!("INSERT INTO {db}.room_utilization VALUES ('1d', 'lon', 'r1', toDateTime({t}), toDateTime({end}), 1440, 0.1, 3, 0.3333333333333333, 10, 0.01, 1, 1, toDateTime({t}))"),
        format!("INSERT INTO {db}.room_utilization VALUES ('1d', 'lon', 'r1', toDateTime({t}), toDateTime({end}), 1440, 0.2, 4, 0.5, 10, 0.02, 1, 2, toDateTime({t}))"),
        format!("INSERT INTO {db}.room_utilization VALUES ('1d', 'lon', 'r2', toDateTime({t}), toDateTime({end}), 1440, 1e-7, 1, 0.001, 4, 2.5e-8, 1, 1, toDateTime({t}))"),
        format!("INSERT INTO {db}.office_utilization VALUES ('1d', 'lon', toDateTime({t}), toDateTime({end}), 2, 0.3, 5, 14, 0.021, 1, 1, toDateTime({t}))"),
        format!("INSERT INTO {db}.room_days VALUES (toDate(toDateTime({t})), 'lon', 'r1', toDateTime({t}), toDateTime({end}), 1440, 0.2, 4, 0.5, 10, 0.02, 2)"),
        format!("INSERT INTO {db}.anomalies VALUES ('capacity_breach', 'room', 'r1', 'lon', 'r1', toDateTime({t}), toDateTime({end}), 1.5, 'high', '{{\"note\":\"tab\\there, line\\nthere, back\\\\slash\"}}', 0, 1, toDateTime({t}))"),
        format!("INSERT INTO {db}.audit VALUES (toDateTime({t}), {t}000, 'x', 'analyst-é', '/v1/offices/{{id}}', '/v1/offices/lon', 'from=2024-01-01&q=?', 200, 12.5, 'req-1')"),
        format!("INSERT INTO {db}.booking_usage VALUES ('1d', 'lon', 'r1', toDateTime({t}), toDateTime({end}), 60, 30, 30, 0, 5, 2, 1, 0, 0, 1, toDateTime({t}))"),
        // Readings go after 30 days, by design, and are not kept.
        format!("INSERT INTO {db}.readings (office_id, room_id, sensor_id, ts, ts_ms, people_count, schema_id, source_partition, version) VALUES ('lon', 'r1', 's1', toDateTime({t}), {t}000, 1, 1, 0, 1)"),
    ] {
        let answer = clickhouse_lines(&sql);
        assert!(answer.is_empty(), "{sql}: {answer:?}");
    }
}

fn config(out: &std::path::Path, cold: ColdConfig) -> JobsConfig {
    JobsConfig {
        output_dir: out.to_path_buf(),
        cold,
        ..Default::default()
    }
}

async fn job(s: &Settings, tenant: &TenantId, config: &JobsConfig, kind: JobKind) -> JobStatus {
    let id = rf_jobs::queue::submit(&s.kafka, &s.clickhouse, tenant, kind)
        .await
        .unwrap()
        .spec
        .id;
    take_job(s, config.clone(), id, Default::default()).await
}

/// Where a stored file's bytes are read and written behind roomflow's back.
trait Behind {
    fn read(&self, key: &str) -> Vec<u8>;
    fn write(&self, key: &str, bytes: &[u8]);
}

struct Dir(std::path::PathBuf);

impl Behind for Dir {
    fn read(&self, key: &str) -> Vec<u8> {
        std::fs::read(self.0.join(key)).unwrap()
    }
    fn write(&self, key: &str, bytes: &[u8]) {
        std::fs::write(self.0.join(key), bytes).unwrap()
    }
}

/// The bucket through its own S3 client, under `prefix`.
struct Bucket(object_store::aws::AmazonS3, String);

impl Behind for Bucket {
    fn read(&self, key: &str) -> Vec<u8> {
        use object_store::ObjectStoreExt;
        let path = object_store::path::Path::from(format!("{}/{key}", self.1));
        let got = futures_executor(self.0.get(&path)).unwrap();
        futures_executor(got.bytes()).unwrap().to_vec()
    }
    fn write(&self, key: &str, bytes: &[u8]) {
        use object_store::ObjectStoreExt;
        let path = object_store::path::Path::from(format!("{}/{key}", self.1));
        futures_executor(
            self.0
                .put(&path, bytes::Bytes::copy_from_slice(bytes).into()),
        )
        .unwrap();
    }
}

/// Runs a future to its end from the test's own thread.
fn futures_executor<F: std::future::Future>(f: F) -> F::Output {
    tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(f))
}

async fn round_trip(tag: &str, cold: ColdConfig, behind: &dyn Behind) {
    let tenant = fresh_tenant(tag);
    let s = settings(&tenant);
    stack_is_up(&s);
    create_tenant(&tenant).await;
    let db = tenant.clickhouse_db();
    let out = std::env::temp_dir().join(format!("rf-{tenant}"));
    let jobs = config(&out, cold.clone());
    let now = chrono::Utc::now().timestamp();
    // Mid-month, 800 days ago: the month is past the tenant's 730 days of retention.
    let old = (now - 800 * DAY) / DAY * DAY;
    let month: u32 = clickhouse_lines(&format!("SELECT toYYYYMM(toDateTime({old}))"))[0]
        .parse()
        .unwrap();
    insert_old_month(&db, old);
    let yesterday = (now - DAY) / DAY * DAY;
    clickhouse_lines(&format!(
        "INSERT INTO {db}.room_days VALUES (toDate(toDateTime({yesterday})), 'lon', 'r1', toDateTime({yesterday}), toDateTime({}), 1440, 0.2, 4, 0.5, 10, 0.02, 1)",
        yesterday + DAY
    ));
    let before = month_rows(&db, month);
    assert_eq!(before.len(), 7, "{before:#?}");

    // Retention: the month is exported, checked, named in its manifest, then dropped.
    let done = job(&s, &tenant, &jobs, JobKind::Retention { dry_run: false }).await;
    assert_eq!(done.state, JobState::Succeeded, "{done:#?}");
    assert!(
        done.message.contains("; 6 partitions kept in "),
        "{}",
        done.message
    );
    assert!(
        month_rows(&db, month).is_empty(),
        "the month left ClickHouse"
    );
    assert_eq!(
        clickhouse_lines(&format!("SELECT count() FROM {db}.readings")),
        ["0"]
    );
    assert_eq!(
        clickhouse_lines(&format!("SELECT count() FROM {db}.room_days")),
        ["1"],
        "this month stays"
    );
    let store = ColdStore::open(&cold, &s.regions.home, &out.join("staging"))
        .unwrap()
        .unwrap();
    let manifest: Manifest = store.manifest(&tenant, month).await.unwrap().unwrap();
    let mut tables: Vec<&str> = manifest.files.iter().map(|f| f.table.as_str()).collect();
    tables.sort();
    assert_eq!(
        tables,
        [
            "anomalies",
            "audit",
            "booking_usage",
            "office_utilization",
            "room_days",
            "room_utilization"
        ]
    );
    let key = |file: &str| format!("{tenant}/{month}/{file}");
    for f in &manifest.files {
        // Read without roomflow: the bytes are what the manifest says.
        let bytes = behind.read(&key(&f.file));
        assert_eq!(bytes.len() as u64, f.bytes, "{}", f.file);
        let sha: String = sha2::Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(sha, f.sha256, "{}", f.file);
        assert!(bytes.starts_with(b"PAR1") && bytes.ends_with(b"PAR1"));
        let local = out.join(&f.file);
        std::fs::write(&local, &bytes).unwrap();
        assert_eq!(rf_jobs::cold::parquet::rows_in(&local).unwrap(), f.rows);
    }
    let rows: u64 = manifest.files.iter().map(|f| f.rows).sum();
    assert!(rows >= 7, "every stored row, versions included: {rows}");
    assert!(done
        .logs
        .iter()
        .any(|l| l.contains("exported partition") && l.contains("SHA-256")));

    // A file changed behind the manifest's back is refused; the good ones are not
    // enough to call the month restored.
    let days = manifest
        .files
        .iter()
        .find(|f| f.table == "room_days")
        .unwrap();
    let good = behind.read(&key(&days.file));
    let mut bad = good.clone();
    let middle = bad.len() / 2;
    bad[middle] ^= 0x55;
    behind.write(&key(&days.file), &bad);
    let restore = JobKind::RestoreCold {
        month,
        keep_days: 30,
    };
    let refused = job(&s, &tenant, &jobs, restore.clone()).await;
    assert_eq!(refused.state, JobState::Failed, "{refused:#?}");
    assert!(
        refused.message.contains("room_days.parquet") && refused.message.contains("SHA-256"),
        "{}",
        refused.message
    );
    assert_eq!(
        clickhouse_lines(&format!(
            "SELECT count() FROM {db}.room_days WHERE toYYYYMM(day) = {month}"
        )),
        ["0"]
    );

    // Mended, the same restore runs again over what the first one left.
    behind.write(&key(&days.file), &good);
    let restored = job(&s, &tenant, &jobs, restore.clone()).await;
    assert_eq!(restored.state, JobState::Succeeded, "{restored:#?}");
    assert!(
        restored
            .message
            .starts_with(&format!("restored month {month}: {rows} rows in 6 tables")),
        "{}",
        restored.message
    );
    assert_eq!(month_rows(&db, month), before, "exactly the rows that went");

    // Held: the next retention leaves the month.
    let kept = job(&s, &tenant, &jobs, JobKind::Retention { dry_run: false }).await;
    assert_eq!(kept.state, JobState::Succeeded, "{kept:#?}");
    assert!(
        kept.logs
            .iter()
            .any(|l| l.contains(&format!("kept month {month}"))),
        "{:#?}",
        kept.logs
    );
    assert_eq!(month_rows(&db, month), before);

    // A month that is not cold: refused, naming the months that are.
    let absent = job(
        &s,
        &tenant,
        &jobs,
        JobKind::RestoreCold {
            month: 199001,
            keep_days: 1,
        },
    )
    .await;
    assert_eq!(absent.state, JobState::Failed);
    assert!(
        absent
            .message
            .contains(&format!("its cold months: [{month}]")),
        "{}",
        absent.message
    );

    // Past the cold tier's keep, a cold month goes.
    let short = config(
        &out,
        ColdConfig {
            keep_days: 1,
            ..cold.clone()
        },
    );
    let expired = job(&s, &tenant, &short, JobKind::Retention { dry_run: false }).await;
    assert_eq!(expired.state, JobState::Succeeded, "{expired:#?}");
    assert!(
        store.months(&tenant).await.unwrap().is_empty(),
        "{expired:#?}"
    );
    assert!(store.objects(&tenant).await.unwrap().is_empty());
    std::fs::remove_dir_all(&out).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_month_goes_cold_in_a_directory_and_comes_back_exactly() {
    let root = std::env::temp_dir().join(format!("rf-cold-{}", std::process::id()));
    let cold = ColdConfig {
        url: root.join("{region}").display().to_string(),
        ..Default::default()
    };
    let home = rf_pipelines::Settings::default().regions.home;
    round_trip("colddir", cold, &Dir(root.join(&home))).await;
    std::fs::remove_dir_all(&root).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_month_goes_cold_in_an_s3_bucket_and_comes_back_exactly() {
    let bucket = format!("rf-cold-{}", std::process::id());
    let made = ureq::put(format!("{S3}/{bucket}")).send_empty();
    assert!(made.is_ok(), "the local S3 server (moto) is up: {made:?}");
    let options = [
        ("aws_endpoint", S3),
        ("aws_allow_http", "true"),
        ("aws_region", "us-east-1"),
        ("aws_access_key_id", "roomflow-local"),
        ("aws_secret_access_key", "roomflow-local"),
    ];
    let cold = ColdConfig {
        url: format!("s3://{bucket}/tier/{{region}}"),
        options: options
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..Default::default()
    };
    let mut client = object_store::aws::AmazonS3Builder::new().with_bucket_name(&bucket);
    for (k, v) in options {
        client = client.with_config(k.parse().unwrap(), v);
    }
    let home = rf_pipelines::Settings::default().regions.home;
    let behind = Bucket(client.build().unwrap(), format!("tier/{home}"));
    round_trip("colds3", cold, &behind).await;
}
