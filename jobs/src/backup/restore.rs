//! Rebuilding an empty stack from a backup.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::producer::FutureProducer;
use serde::Serialize;

use rf_pipelines::checkpoint::Resume;
use rf_pipelines::topics::{create, TopicSpec};
use rf_pipelines::Settings;
use rf_schemas::TenantId;

use super::topics::{self, Offsets, Record};
use super::{
    backup_err, region_kafka, tables, tenant_region, Backups, Manifest, TableBackup, TopicBackup,
};
use crate::queue::{JobState, JobStatus};
use crate::JobError;

/// What a restore did, every count checked.
#[derive(Clone, Debug, Serialize)]
pub struct Restored {
    /// The backup.
    pub backup: String,
    /// The tenants.
    pub tenants: Vec<String>,
    /// Records produced, by topic.
    pub topics: BTreeMap<String, u64>,
    /// Dead letters left out: the resumed pipeline writes them again.
    pub dead_letters_rewritten_by_replay: u64,
    /// Rows inserted, by table.
    pub tables: BTreeMap<String, u64>,
    /// Schemas found in the registry as the backup recorded them.
    pub schemas_checked: usize,
    /// How long it took, ms.
    pub took_ms: u64,
}

/// Restores the backup `id` (the latest when `None`) into the stack `settings` names,
/// which must not hold any of it yet; `say` hears each step.
pub async fn restore(
    settings: &Settings,
    backups: &Backups,
    id: Option<&str>,
    mut say: impl FnMut(&str),
) -> Result<Restored, JobError> {
    let started = Instant::now();
    let manifest = backups.manifest(id).await?;
    let id = manifest.id.clone();
    say(&format!(
        "backup {id}: {} tenants, {} topics, {} tables",
        manifest.tenants.len(),
        manifest.topics.len(),
        manifest.tables.len()
    ));
    // Every file is fetched and checked before anything is written.
    let mut files = BTreeMap::new();
    for (name, bytes, sha) in manifest
        .topics
        .iter()
        .map(|t| (&t.file, t.bytes, &t.sha256))
        .chain(
            manifest
                .tables
                .iter()
                .map(|t| (&t.file, t.bytes, &t.sha256)),
        )
    {
        files.insert(name.clone(), backups.get(&id, name, bytes, sha).await?);
    }
    say(&format!(
        "{} files fetched, every checksum right",
        files.len()
    ));
    let outcome = apply(settings, &manifest, &files, &mut say).await;
    for f in files.values() {
        let _ = std::fs::remove_file(f);
    }
    let mut restored = outcome?;
    restored.took_ms = started.elapsed().as_millis() as u64;
    Ok(restored)
}

async fn apply(
    settings: &Settings,
    manifest: &Manifest,
    files: &BTreeMap<String, std::path::PathBuf>,
    say: &mut impl FnMut(&str),
) -> Result<Restored, JobError> {
    let tenants: Vec<TenantId> = manifest
        .tenants
        .iter()
        .map(|t| TenantId::parse(t).map_err(|e| backup_err(e.to_string())))
        .collect::<Result<_, _>>()?;
    // The registry entries in the backup say where each tenant lives.
    let registry = manifest
        .topics
        .iter()
        .find(|t| t.name == rf_schemas::tenant::TENANTS_TOPIC);
    let mut configs: BTreeMap<String, rf_schemas::TenantConfig> = BTreeMap::new();
    if let Some(t) = registry {
        for r in topics::read(&files[&t.file])? {
            match r
                .value()
                .map(|v| serde_json::from_slice::<rf_schemas::TenantConfig>(&v))
            {
                Some(Ok(c)) => {
                    configs.insert(c.tenant.clone(), c);
                }
                Some(Err(_)) => {}
                None => {
                    if let Some(k) = r.key().and_then(|k| String::from_utf8(k).ok()) {
                        configs.remove(&k);
                    }
                }
            }
        }
    }
    let region_of_db = |db: &str| {
        let tenant = manifest
            .tenants
            .iter()
            .find(|t| TenantId::parse(t).is_ok_and(|t| t.clickhouse_db() == db));
        tenant_region(settings, tenant.and_then(|t| configs.get(t)))
    };
    let kafka_of_topic = |topic: &TopicBackup| {
        let tenant = topic
            .name
            .split_once('.')
            .map(|(_, t)| t)
            .filter(|t| configs.contains_key(*t) || manifest.tenants.iter().any(|m| m == t));
        match tenant.filter(|_| !topic.name.starts_with("roomflow.")) {
            Some(t) => Ok::<_, JobError>(region_kafka(
                settings,
                &tenant_region(settings, configs.get(t))?,
            )),
            None => Ok(settings.kafka.clone()),
        }
    };

    // Nothing of it may be there already.
    let live = crate::tenant::registry(&settings.kafka)?;
    for t in &tenants {
        if live.contains_key(t) {
            return Err(backup_err(format!(
                "tenant {t} exists in this stack: a restore only rebuilds what is missing (erase it first, or restore into an empty stack)"
            )));
        }
    }
    for t in manifest
        .topics
        .iter()
        .filter(|t| !t.name.starts_with("roomflow."))
    {
        let held: i64 = topics::ends(&kafka_of_topic(t)?, &t.name)?.map_or(0, |e| e.values().sum());
        if held > 0 {
            return Err(backup_err(format!(
                "topic {} holds {held} records: a restore only fills empty topics",
                t.name
            )));
        }
    }
    for t in &manifest.tables {
        let client = rf_sinks::clickhouse::client(&region_of_db(&t.database)?.clickhouse);
        let held = tables::count(&client, t).await?;
        if held > 0 {
            return Err(backup_err(format!(
                "{}.{} holds {held} of the rows the backup has: a restore only fills empty tables",
                t.database, t.table
            )));
        }
    }

    // ClickHouse: this roomflow's tables, then the rows.
    let mut restored_tables = BTreeMap::new();
    let home = tenant_region(settings, None)?;
    crate::platform(&home.clickhouse).await?;
    for t in &tenants {
        let region = tenant_region(settings, configs.get(t.as_str()))?;
        let client = rf_sinks::clickhouse::client(&region.clickhouse);
        for statement in rf_schemas::tenant_ddl(t) {
            client.query(&statement).execute().await?;
        }
    }
    for t in &manifest.tables {
        let client = rf_sinks::clickhouse::client(&region_of_db(&t.database)?.clickhouse);
        check_known(&client, t).await?;
        tables::load(&client, t, &files[&t.file]).await?;
        let now = tables::count(&client, t).await?;
        if now != t.rows {
            return Err(backup_err(format!(
                "{}.{}: {now} rows after the restore, the backup has {}",
                t.database, t.table, t.rows
            )));
        }
        restored_tables.insert(format!("{}.{}", t.database, t.table), now);
    }
    say(&format!("{} tables restored", restored_tables.len()));

    // Topics: the tenants' own first, whose new offsets the others refer to.
    let producer: FutureProducer = settings
        .kafka
        .client_config()
        .set("enable.idempotence", "true")
        .create()
        .map_err(|e| JobError::kafka("restoring", e))?;
    let mut offsets: BTreeMap<String, Offsets> = BTreeMap::new();
    let mut counts = BTreeMap::new();
    let order = |t: &&TopicBackup| match t.name.as_str() {
        n if n.starts_with("deadletter.") => 1,
        n if n == rf_sinks::webhook::outbox::TOPIC => 2,
        n if n == rf_pipelines::alerts::STATE_TOPIC => 3,
        n if n == crate::queue::STATUS_TOPIC => 4,
        n if n == rf_pipelines::checkpoint::TOPIC => 5,
        n if n == rf_schemas::tenant::TENANTS_TOPIC => 6,
        _ => 0,
    };
    let mut ordered: Vec<&TopicBackup> = manifest.topics.iter().collect();
    ordered.sort_by_key(order);
    let checkpoints = checkpoint_records(manifest, files)?;
    let mut replayed_dead_letters = 0;
    let mut settled: Vec<JobStatus> = Vec::new();
    for t in ordered {
        let kafka = kafka_of_topic(t)?;
        let config: &[(&str, &str)] = if t.compacted {
            &[("cleanup.policy", "compact")]
        } else {
            &[]
        };
        create(
            &kafka,
            &[TopicSpec {
                name: &t.name,
                partitions: t.partitions,
                config,
            }],
        )
        .await?;
        let mut records = topics::read(&files[&t.file])?;
        if t.name.starts_with("deadletter.") {
            let before = records.len();
            records = dead_letters(
                records,
                &offsets,
                &checkpoints,
                &settings.kafka.group_id,
                &manifest.id,
            );
            replayed_dead_letters += (before - records.len()) as u64;
        } else if t.name == rf_pipelines::checkpoint::TOPIC {
            for r in &mut records {
                translate_checkpoint(r, &offsets);
            }
        } else if t.name == crate::queue::STATUS_TOPIC {
            settled = records
                .iter_mut()
                .filter_map(|r| settle_job(r, manifest))
                .collect();
        }
        let producer = if kafka.brokers == settings.kafka.brokers {
            producer.clone()
        } else {
            kafka
                .client_config()
                .set("enable.idempotence", "true")
                .create()
                .map_err(|e| JobError::kafka("restoring", e))?
        };
        let before: i64 = topics::ends(&kafka, &t.name)?
            .unwrap_or_default()
            .values()
            .sum();
        let moved = topics::produce(&producer, &kafka, &t.name, &records).await?;
        // Every record is there: a tenant's topic holds exactly these; the platform's,
        // which others may write meanwhile, at least these more.
        let added = topics::ends(&kafka, &t.name)?
            .unwrap_or_default()
            .values()
            .sum::<i64>()
            - before;
        let shared = t.name.starts_with("roomflow.");
        let want = records.len() as i64;
        if added < want || (!shared && added != want) {
            return Err(backup_err(format!(
                "{}: {added} records more after the restore, {want} were produced",
                t.name
            )));
        }
        counts.insert(t.name.clone(), records.len() as u64);
        offsets.insert(t.name.clone(), moved);
    }
    for status in &settled {
        crate::queue::mirror(&home.clickhouse, status).await?;
    }
    say(&format!("{} topics restored", counts.len()));

    // The tenants provisioned again (analysts' users, schemas), then the schemas checked.
    for t in &tenants {
        if configs.get(t.as_str()).is_some_and(|c| !c.is_deleted()) {
            crate::tenant::create(settings, t, &crate::tenant::TenantSpec::default()).await?;
        }
    }
    let registry = rf_schemas::registry::RegistryClient::new(
        &settings.registry.url,
        Duration::from_secs(settings.registry.timeout_secs),
    );
    let schemas = manifest.schemas.clone();
    let checked = tokio::task::spawn_blocking(move || {
        for (id, text) in &schemas {
            let now = registry.schema_by_id(*id).map_err(|e| {
                backup_err(format!(
                    "schema {id}, which restored records name, is not in the registry ({e}); restore the registry's own backup (Confluent: its _schemas topic) before this one"
                ))
            })?;
            if !same_schema(&now, text) {
                return Err(backup_err(format!(
                    "schema {id} in the registry is not the one the restored records were written with; restore the registry's own backup before this one"
                )));
            }
        }
        Ok(schemas.len())
    })
    .await
    .map_err(backup_err)??;
    say(&format!("{checked} schemas checked"));
    Ok(Restored {
        backup: manifest.id.clone(),
        tenants: manifest.tenants.clone(),
        topics: counts,
        dead_letters_rewritten_by_replay: replayed_dead_letters,
        tables: restored_tables,
        schemas_checked: checked,
        took_ms: 0,
    })
}

/// Refuses a table this roomflow does not create: a backup made by another version
/// is restored by that version.
async fn check_known(client: &clickhouse::Client, t: &TableBackup) -> Result<(), JobError> {
    if !tables::exists(client, &t.database, &t.table).await? {
        return Err(backup_err(format!(
            "{}.{} is in the backup but this roomflow has no such table; restore with the version that made it",
            t.database, t.table
        )));
    }
    Ok(())
}

/// Two schema texts are the same schema: equal as JSON.
fn same_schema(a: &str, b: &str) -> bool {
    match (
        serde_json::from_str::<serde_json::Value>(a),
        serde_json::from_str::<serde_json::Value>(b),
    ) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// The latest checkpoint per key, as backed up.
fn checkpoint_records(
    manifest: &Manifest,
    files: &BTreeMap<String, std::path::PathBuf>,
) -> Result<BTreeMap<String, Resume>, JobError> {
    let mut latest = BTreeMap::new();
    if let Some(t) = manifest
        .topics
        .iter()
        .find(|t| t.name == rf_pipelines::checkpoint::TOPIC)
    {
        for r in topics::read(&files[&t.file])? {
            let Some(key) = r.key().and_then(|k| String::from_utf8(k).ok()) else {
                continue;
            };
            match r
                .value()
                .and_then(|v| String::from_utf8(v).ok())
                .and_then(|v| Resume::decode(&v))
            {
                Some(resume) => latest.insert(key, resume),
                None => latest.remove(&key),
            };
        }
    }
    Ok(latest)
}

/// A checkpoint's offsets moved to the restored topics'.
fn translate_checkpoint(r: &mut Record, offsets: &BTreeMap<String, Offsets>) {
    let Some(key) = r.key().and_then(|k| String::from_utf8(k).ok()) else {
        return;
    };
    let Some(mut resume) = r
        .value()
        .and_then(|v| String::from_utf8(v).ok())
        .and_then(|v| Resume::decode(&v))
    else {
        return;
    };
    let Some((rest, partition)) = key.rsplit_once('/') else {
        return;
    };
    let (Some((_, topic)), Ok(partition)) = (rest.rsplit_once('/'), partition.parse::<i32>())
    else {
        return;
    };
    let Some(readings) = offsets.get(topic) else {
        return;
    };
    resume.offset = readings.translate(partition, resume.offset);
    resume.processed_until = readings.translate(partition, resume.processed_until);
    if let Some(rooms) = topic
        .strip_prefix(rf_schemas::tenant::READINGS_PREFIX)
        .and_then(|t| offsets.get(&format!("{}{t}", rf_schemas::tenant::ROOMS_PREFIX)))
    {
        for (p, o) in &mut resume.rooms {
            *o = rooms.translate(*p, *o);
        }
    }
    r.v = Some(base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        resume.encode(),
    ));
}

/// Dead letters with their source offsets moved to the restored readings topic's; those
/// the resumed pipeline writes again (at or past its checkpoint's `processed_until`) are
/// left out, and those older than the restored readings say which backup they predate.
fn dead_letters(
    records: Vec<Record>,
    offsets: &BTreeMap<String, Offsets>,
    checkpoints: &BTreeMap<String, Resume>,
    group: &str,
    backup: &str,
) -> Vec<Record> {
    records
        .into_iter()
        .filter_map(|mut r| {
            let (Some(topic), Some(partition), Some(offset)) = (
                r.header("rf-source-topic"),
                r.header("rf-source-partition")
                    .and_then(|p| p.parse::<i32>().ok()),
                r.header("rf-source-offset")
                    .and_then(|o| o.parse::<i64>().ok()),
            ) else {
                return Some(r);
            };
            let Some(readings) = offsets.get(&topic) else {
                return Some(r);
            };
            let done = checkpoints
                .get(&format!("{group}/{topic}/{partition}"))
                .map_or(i64::MIN, |c| c.processed_until);
            if offset >= done {
                return None;
            }
            if readings.contains(partition, offset) {
                r.set_header(
                    "rf-source-offset",
                    &readings.translate(partition, offset).to_string(),
                );
            } else {
                r.set_header("rf-offset-before-restore", backup);
            }
            Some(r)
        })
        .collect()
}

/// A job that had not ended when the backup was made cannot go on: it is marked failed,
/// and the backup's own job succeeded.
fn settle_job(r: &mut Record, manifest: &Manifest) -> Option<JobStatus> {
    let mut status = r
        .value()
        .and_then(|v| serde_json::from_slice::<JobStatus>(&v).ok())?;
    if status.state.is_final() {
        return None;
    }
    let now = rf_schemas::unix_ms();
    if status.spec.id == manifest.job {
        status.state = JobState::Succeeded;
        status.message = format!(
            "backup {} made; this stack was restored from it",
            manifest.id
        );
    } else {
        status.message = format!(
            "the stack was restored from backup {} while this job was {}; submit it again",
            manifest.id,
            status.state.label()
        );
        status.state = JobState::Failed;
    }
    status.finished_ms = Some(now);
    status.log(now, status.message.clone());
    status.updated_ms = now.max(status.updated_ms + 1);
    let v = serde_json::to_vec(&status).ok()?;
    r.v = Some(base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        v,
    ));
    Some(status)
}
