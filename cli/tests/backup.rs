//! Backup and restore on the real local stack. A tenant's pipeline runs over the first
//! half of a messy stream (late readings, revisions, bytes that do not decode); the
//! tenant is backed up (`job submit backup --tenant`), then erased everywhere (topics,
//! database, platform rows, checkpoints, registry entry, schema subjects) and restored
//! from the backup; its pipeline resumes with the second half. Its final rows, stored
//! readings and dead letters equal those of a tenant that got the whole stream
//! undisturbed: nothing lost, nothing counted twice.

mod common;

use std::collections::BTreeMap;

use rdkafka::producer::FutureProducer;

use common::*;
use rf_jobs::backup::restore::restore;
use rf_jobs::backup::{BackupConfig, Backups};
use rf_jobs::queue::worker::JobsConfig;
use rf_jobs::queue::{JobKind, JobState};
use rf_schemas::TenantId;

/// Dead letters by reason.
fn reasons(s: &rf_pipelines::Settings, tenant: &TenantId, want: usize) -> BTreeMap<String, usize> {
    let mut by = BTreeMap::new();
    for (_, _, h) in read_topic(&s.kafka, &tenant.deadletter_topic(), want) {
        *by.entry(h["rf-reason"].clone()).or_default() += 1;
    }
    by
}

/// The stored readings: how many, and their people.
fn stored(tenant: &TenantId) -> Vec<String> {
    let db = tenant.clickhouse_db();
    clickhouse_lines(&format!(
        "SELECT count(), sum(people_count) FROM {db}.readings FINAL"
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restored_tenant_resumes_as_if_nothing_happened() {
    // 20 hours of London from 18:00 UTC: the first half ends past midnight, so the first
    // day's windows are final and the checkpoints resume after its readings.
    let Reference {
        tenant: clean,
        fleet,
        readings,
        reading_id,
        report: reference,
    } = common::reference("steady", (1, 20, 23), 20 * 60, 0xbac).await;
    let moved = fresh_tenant("restored");

    // The first half, processed; then the backup.
    let s = settings(&moved);
    let (first, second) = readings.split_at(readings.len() / 2);
    provision_on(&s, &moved, &fleet, first).await;
    assert_accounts(&run_until_caught_up(&s).await);
    let dir = std::env::temp_dir().join(format!("rf-backup-{moved}"));
    let config = JobsConfig {
        output_dir: dir.join("out"),
        backup: BackupConfig {
            url: dir.join("backups").display().to_string(),
            ..Default::default()
        },
        ..Default::default()
    };
    let kind = JobKind::Backup {
        tenants: vec![moved.to_string()],
    };
    let platform = rf_jobs::queue::platform();
    let job = rf_jobs::queue::submit(&s.kafka, &s.clickhouse, &platform, kind)
        .await
        .unwrap()
        .spec
        .id;
    let status = take_job(&s, config.clone(), job, Default::default()).await;
    assert_eq!(status.state, JobState::Succeeded, "{status:#?}");
    let id = status.outputs[0].rsplit('/').next().unwrap().to_string();
    let backups = Backups::open(&config.backup, &dir.join("scratch")).unwrap();
    assert_eq!(backups.list().await.unwrap(), std::slice::from_ref(&id));
    let manifest = backups.manifest(Some(&id)).await.unwrap();
    assert_eq!(manifest.tenants, [moved.to_string()]);
    assert!(!manifest.whole_platform);
    let topic = |name: &str| manifest.topics.iter().find(|t| t.name == name).unwrap();
    let tail = topic(&moved.readings_topic());
    let (kept, ends): (u64, i64) = (
        tail.parts.iter().map(|p| p.records).sum(),
        tail.parts.iter().map(|p| p.to_offset).sum(),
    );
    eprintln!("readings kept: {kept} of {ends}, from where the checkpoints resume");
    assert!(kept > 0 && ends == first.len() as i64);
    assert!(
        kept < first.len() as u64,
        "the readings before the checkpoints are not needed"
    );
    assert!(topic("roomflow.checkpoints").parts[0].records > 0);
    assert!(topic("roomflow.tenants").parts[0].records > 0);
    assert!(manifest.schemas.contains_key(&reading_id));
    let rows = |table: &str| {
        let db = moved.clickhouse_db();
        let t = manifest
            .tables
            .iter()
            .find(|t| t.database == db && t.table == table);
        t.unwrap().rows
    };
    assert!(rows("room_utilization") > 0 && rows("readings") > 0);
    // Only this tenant's rows of the platform's tables, none of a table without tenants.
    for t in manifest
        .tables
        .iter()
        .filter(|t| t.database == "rf_platform")
    {
        assert!(
            t.filter == format!("tenant IN ('{moved}')") || (t.filter == "0" && t.rows == 0),
            "{}: {}",
            t.table,
            t.filter
        );
    }

    // The tenant destroyed everywhere.
    rf_jobs::erase::all_steps(&s, &moved).await.unwrap();
    let databases = format!(
        "SELECT count() FROM system.databases WHERE name = '{}'",
        moved.clickhouse_db()
    );
    assert_eq!(clickhouse_lines(&databases), ["0"]);
    assert!(!rf_jobs::tenant::registry(&s.kafka)
        .unwrap()
        .contains_key(&moved));

    // A backup with one byte changed restores nothing.
    let damaged = dir.join("damaged");
    copy_dir(&dir.join("backups"), &damaged);
    let file = damaged.join(&id).join("topics/roomflow.checkpoints.jsonl");
    let mut bytes = std::fs::read(&file).unwrap();
    bytes[10] ^= 1;
    std::fs::write(&file, bytes).unwrap();
    let damaged = Backups::open(
        &BackupConfig {
            url: damaged.display().to_string(),
            ..Default::default()
        },
        &dir.join("scratch"),
    )
    .unwrap();
    let refused = restore(&s, &damaged, None, |_| {}).await.unwrap_err();
    let refused = rf_schemas::chain(&refused);
    assert!(
        refused.contains("SHA-256") && refused.contains("nothing was restored"),
        "{refused}"
    );
    assert_eq!(clickhouse_lines(&databases), ["0"]);

    // Restored, then resumed with the second half.
    let restored = restore(&s, &backups, Some(&id), |line| eprintln!("{line}"))
        .await
        .unwrap();
    eprintln!("{}", serde_json::to_string_pretty(&restored).unwrap());
    assert_eq!(restored.topics[&moved.readings_topic()], kept);
    assert_eq!(restored.schemas_checked, manifest.schemas.len());
    let again = restore(&s, &backups, None, |_| {}).await.unwrap_err();
    let again = rf_schemas::chain(&again);
    assert!(again.contains("exists in this stack"), "{again}");
    let producer: FutureProducer = s.kafka.client_config().create().unwrap();
    produce_all(&producer, &moved.readings_topic(), second).await;
    // The resumed run reads the restored readings again to rebuild its open windows
    // (what it wrote before is not written twice), so its own accounts are not the
    // stream's: the results below are.
    let resumed = run_until_caught_up(&s).await;
    assert_eq!(resumed.stats.consumed, kept + second.len() as u64);

    let (want, got) = (window_rows(&clean), window_rows(&moved));
    assert_same_windows(&want, &got);
    assert_eq!(stored(&moved), stored(&clean), "every reading stored once");
    let letters = reference.stats.dead_letters as usize;
    assert!(letters > 0);
    assert_eq!(
        reasons(&s, &moved, letters),
        reasons(&s, &clean, letters),
        "every dead letter written once"
    );

    std::fs::remove_dir_all(&dir).unwrap();
    for t in [&clean, &moved] {
        rf_jobs::erase::all_steps(&s, t).await.unwrap();
    }
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}
