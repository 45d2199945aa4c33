//! Tenant erasure on the real local stack: a tenant with topics, rows, live keys,
//! checkpoints, an API key, analyst users and a finished job is deleted; once its grace
//! period passed the worker submits its erasure, which removes it everywhere and ends
//! with a verification report that finds nothing of it.

mod common;

use std::time::Duration;

use rdkafka::producer::FutureProducer;

use common::*;
use rf_jobs::queue::worker::{JobsConfig, Worker};
use rf_jobs::queue::{self, JobKind, JobState, JobStatus};
use rf_pipelines::secrets::{SecretError, Vault};
use rf_pipelines::Settings;

const T0: i64 = 1_767_571_200_000; // 2026-01-05T00:00:00Z
const HOUR: i64 = 3_600_000;

/// Runs worker steps until the job `id` ended.
fn run_job(worker: &mut Worker, id: &str) -> JobStatus {
    let deadline = std::time::Instant::now() + Duration::from_secs(180);
    loop {
        assert!(std::time::Instant::now() < deadline, "job {id} ended");
        if let Some(status) = worker.step(Duration::from_secs(1)).unwrap() {
            if status.spec.id == id {
                return status;
            }
        }
    }
}

fn worker(s: &Settings, out: &std::path::Path) -> Worker {
    let config = JobsConfig {
        output_dir: out.to_path_buf(),
        erasure_grace_days: 0,
        cold: rf_jobs::cold::ColdConfig {
            url: out.join("cold").join("{region}").display().to_string(),
            ..Default::default()
        },
        ..Default::default()
    };
    Worker::new(s, &config).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erased_tenant_leaves_nothing_behind_and_the_report_says_so() {
    let tenant = fresh_tenant("erase");
    let mut s = settings(&tenant);
    stack_is_up(&s);
    // A platform key file of its own, as production has.
    let key_file = std::env::temp_dir().join(format!("rf-{tenant}.keys"));
    std::fs::write(&key_file, rf_pipelines::secrets::generate_key_line()).unwrap();
    set_mode(&key_file, 0o600);
    s.secrets.key_file = key_file.display().to_string();
    let (reading_id, room_id) = create_tenant(&tenant).await;
    let producer: FutureProducer = s.kafka.client_config().create().unwrap();
    let rooms = [london_room("r1", 10)];
    produce_all(
        &producer,
        &tenant.rooms_topic(),
        &room_records(&rooms, room_id, T0),
    )
    .await;
    let readings = minute_readings(reading_id, (T0, T0 + 3 * HOUR), &["r1"], |_, _| Some(2));
    produce_all(&producer, &tenant.readings_topic(), &readings).await;
    assert_accounts(&run_until_caught_up(&s).await);
    assert!(
        rf_jobs::erase::committed_offsets(&s.kafka, &tenant).unwrap() > 0,
        "the pipeline committed offsets"
    );
    rf_jobs::apikey::create(
        &s.clickhouse,
        &tenant,
        "dashboard",
        rf_schemas::tenant::Role::Analyst,
    )
    .await
    .unwrap();
    // A webhook: its URL and signing secret never reach the registry topic in the clear.
    let hook = "https://hooks.example.com/roomflow/erase-test-token";
    let spec = rf_jobs::tenant::TenantSpec {
        alert_targets: Some(vec![format!("webhook={hook}").parse().unwrap()]),
        ..Default::default()
    };
    rf_jobs::tenant::update(&s, &tenant, &spec).await.unwrap();
    let opened = rf_jobs::tenant::opened(&s, &tenant).await.unwrap();
    assert_eq!(opened.alert_targets[0].url, hook);
    let secret = opened.alert_targets[0].secret.clone().unwrap();
    let stored = registry_records(&s, &tenant);
    assert!(
        stored.iter().any(|r| r.contains("sealed:v1:")),
        "{stored:?}"
    );
    for r in &stored {
        assert!(
            !r.contains("erase-test-token") && !r.contains(&secret),
            "{r}"
        );
    }
    let db = tenant.clickhouse_db();
    assert_eq!(
        clickhouse_lines(&format!("SELECT count() > 0 FROM {db}.room_utilization")),
        ["1"]
    );
    assert!(!redis_state(&s.redis.url, &tenant).await.is_empty());
    let out = std::env::temp_dir().join(format!("rf-{tenant}"));

    // A job's files, as a report of the tenant's leaves them.
    let files = out.join(format!("report-{tenant}-1767571200000"));
    std::fs::create_dir_all(&files).unwrap();
    std::fs::write(files.join("report.csv"), "day,utilization\n").unwrap();
    // Months in the cold tier, in every region, and another tenant's, which stays.
    let cold = out.join("cold");
    let regions: Vec<String> = s.regions().into_iter().map(|r| r.name).collect();
    for region in &regions {
        let month = cold.join(region).join(tenant.as_str()).join("202401");
        std::fs::create_dir_all(&month).unwrap();
        std::fs::write(month.join("manifest.json"), "{}").unwrap();
        std::fs::write(month.join("room_days.parquet"), "PAR1").unwrap();
    }
    let neighbour = cold
        .join(&regions[0])
        .join(format!("{tenant}x"))
        .join("202401");
    std::fs::create_dir_all(&neighbour).unwrap();
    std::fs::write(neighbour.join("manifest.json"), "{}").unwrap();
    let registry = rf_schemas::registry::RegistryClient::new(
        &s.registry.url,
        std::time::Duration::from_secs(5),
    );
    let subject = format!("{}-value", tenant.readings_topic());
    assert_eq!(registry.versions(&subject).unwrap().len(), 1);

    // Not deleted yet: refused.
    let early = queue::submit(&s.kafka, &s.clickhouse, &tenant, JobKind::Erase)
        .await
        .unwrap()
        .spec
        .id;
    let (s2, out2, t2) = (s.clone(), out.clone(), tenant.clone());
    let (refused, erased, again) = tokio::task::spawn_blocking(move || {
        let mut w = worker(&s2, &out2);
        let refused = run_job(&mut w, &early);
        // Deleted, and the grace period (0 days here) passed: the worker submits it.
        tokio::runtime::Runtime::new()
            .unwrap()
            .block_on(rf_jobs::tenant::delete(&s2, &t2))
            .unwrap();
        assert_eq!(w.schedule_erasures().unwrap(), std::slice::from_ref(&t2));
        assert!(w.schedule_erasures().unwrap().is_empty(), "once");
        let id = rf_jobs::queue::read(&s2.kafka)
            .unwrap()
            .statuses
            .values()
            .find(|st| st.spec.tenant == t2.as_str() && st.state == JobState::Queued)
            .unwrap()
            .spec
            .id
            .clone();
        let erased = run_job(&mut w, &id);
        // Running it again is harmless.
        let rerun = tokio::runtime::Runtime::new()
            .unwrap()
            .block_on(queue::submit(
                &s2.kafka,
                &s2.clickhouse,
                &t2,
                JobKind::Erase,
            ))
            .unwrap()
            .spec
            .id;
        let again = run_job(&mut w, &rerun);
        (refused, erased, again)
    })
    .await
    .unwrap();
    assert_eq!(refused.state, JobState::Failed);
    assert!(
        refused.message.contains("is not deleted"),
        "{}",
        refused.message
    );
    assert_eq!(erased.state, JobState::Succeeded, "{erased:#?}");
    assert_eq!(erased.done, erased.total);
    assert!(
        erased
            .message
            .starts_with("erased; verified: nothing of the tenant remains live;"),
        "{}",
        erased.message
    );
    assert_eq!(again.state, JobState::Succeeded, "{again:#?}");

    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&erased.outputs[0]).unwrap()).unwrap();
    assert_eq!(report["clean"], true, "{report:#}");
    let checks = report["checks"].as_array().unwrap();
    assert!(
        checks.len() >= 12,
        "every store of every region: {report:#}"
    );
    assert!(checks.iter().all(|c| c["found"] == 0));
    assert!(checks
        .iter()
        .any(|c| c["what"] == "committed offsets of the tenant's readings partitions"));
    assert_eq!(
        rf_jobs::erase::committed_offsets(&s.kafka, &tenant).unwrap(),
        0,
        "the group's offsets went with the topic"
    );
    // What waits for compaction is counted and said, not called gone: at least the
    // tenant's registry entries before its tombstone.
    let waiting = report["expiring"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["store"] == "roomflow.tenants")
        .unwrap();
    assert!(waiting["found"].as_u64().unwrap() >= 1, "{report:#}");
    assert!(!files.exists(), "the tenant's job files are gone");
    let cold_checks: Vec<_> = checks
        .iter()
        .filter(|c| c["store"].as_str().unwrap().contains(" cold tier "))
        .collect();
    assert_eq!(
        cold_checks.len(),
        regions.len(),
        "each region's cold tier: {report:#}"
    );
    for region in &regions {
        assert!(
            !cold.join(region).join(tenant.as_str()).exists(),
            "the tenant's cold months are gone from {region}"
        );
    }
    assert!(
        neighbour.join("manifest.json").exists(),
        "another tenant's stay"
    );
    assert!(
        registry.versions(&subject).unwrap().is_empty(),
        "and its schema subjects"
    );

    // Looked at independently of the report.
    assert_eq!(
        clickhouse_lines(&format!(
            "SELECT count() FROM system.databases WHERE name = '{db}'"
        )),
        ["0"]
    );
    assert_eq!(
        clickhouse_lines(&format!(
            "SELECT count() FROM rf_platform.api_keys WHERE tenant = '{tenant}'"
        )),
        ["0"]
    );
    assert!(redis_state(&s.redis.url, &tenant).await.is_empty());
    assert!(!rf_jobs::tenant::registry(&s.kafka)
        .unwrap()
        .contains_key(&tenant));
    // Its data keys are gone, so the registry records that wait for compaction hold
    // ciphertext nobody can open any more, with the platform key or without.
    assert_eq!(
        clickhouse_lines(&format!(
            "SELECT count() FROM rf_platform.tenant_keys WHERE tenant = '{tenant}'"
        )),
        ["0"]
    );
    let vault = Vault::new(&s.secrets, &s.clickhouse).unwrap();
    let mut sealed = 0;
    for record in registry_records(&s, &tenant) {
        let mut entry: rf_schemas::TenantConfig = serde_json::from_str(&record).unwrap();
        if entry.alert_targets.is_empty() {
            continue;
        }
        sealed += 1;
        let error = vault.open(&mut entry).await.unwrap_err();
        assert!(matches!(error, SecretError::NoDataKey { .. }), "{error}");
    }
    assert!(
        sealed >= 1,
        "the records with the webhook wait for compaction"
    );
    std::fs::remove_dir_all(&out).unwrap();
    std::fs::remove_file(&key_file).unwrap();
}

/// The values of every record of `tenant` in the registry topic, oldest first.
fn registry_records(s: &Settings, tenant: &rf_schemas::TenantId) -> Vec<String> {
    read_topic(&s.kafka, rf_schemas::tenant::TENANTS_TOPIC, 1)
        .into_iter()
        .filter(|(key, _, _)| key.as_deref() == Some(tenant.as_str().as_bytes()))
        .filter_map(|(_, value, _)| Some(String::from_utf8(value?).unwrap()))
        .collect()
}

fn set_mode(path: &std::path::Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}
