//! Backups and disaster recovery. A backup holds, with a manifest of sizes and SHA-256
//! checksums written last:
//! - the platform's compacted topics (tenants, checkpoints, alert state, job status) and
//!   the alert outbox's undelivered tail;
//! - each tenant's rooms, bookings and dead-letter topics, and its readings from where
//!   the pipeline's checkpoints resume;
//! - the rows of `rf_platform` and of each tenant's database;
//! - the schemas the backed-up records name, by id.
//!
//! Checkpoints are read first: everything they account for is in ClickHouse before they
//! are written, so the backup is what a crash at that moment leaves, which the pipeline
//! resumes from exactly. A restore rebuilds an empty stack from it: topics are produced
//! again (offsets start afresh: checkpoints and dead letters are translated), rows
//! inserted, the tenants provisioned again, and every count and schema checked.
//!
//! Layout under the configured URL: `<id>/manifest.json`, `<id>/topics/<topic>.jsonl`,
//! `<id>/clickhouse/<database>.<table>.tsv`; `<id>` is the UTC start time.

pub mod restore;
pub mod tables;
pub mod topics;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path as FsPath, PathBuf};

use futures_util::StreamExt;
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutPayload};
use rdkafka::message::Message;
use serde::{Deserialize, Serialize};

use rf_pipelines::{KafkaConfig, Region, Settings};
use rf_schemas::TenantId;

use crate::store::Store;
use crate::JobError;

/// The platform's compacted topics: every one is backed up whole (or its tenants' keys).
pub const COMPACTED_PLATFORM: [&str; 4] = [
    rf_schemas::tenant::TENANTS_TOPIC,
    rf_pipelines::checkpoint::TOPIC,
    rf_pipelines::alerts::STATE_TOPIC,
    crate::queue::STATUS_TOPIC,
];

/// Where backups go and how often the worker makes one.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct BackupConfig {
    /// A directory (a path, or `file:///…`) or an S3 bucket (`s3://bucket/prefix`).
    /// Empty: no backups.
    pub url: String,
    /// The object store's settings, as for `jobs.cold.options`.
    pub options: BTreeMap<String, String>,
    /// The worker submits a backup of the whole platform this often, hours (0: only when
    /// someone submits one). The recovery point is at most this old, plus a backup's
    /// duration.
    pub every_hours: u32,
}

impl BackupConfig {
    /// Checks the fields; the message names the one that is wrong.
    pub fn validate(&self) -> Result<(), String> {
        crate::store::validate("jobs.backup", &self.url, &self.options)?;
        if self.every_hours > 0 && self.url.is_empty() {
            return Err(
                "jobs.backup.every_hours: backups are scheduled but jobs.backup.url is empty"
                    .into(),
            );
        }
        Ok(())
    }
}

/// A backup's manifest.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Its format.
    pub format: u32,
    /// Its id: the UTC time it started, `YYYYMMDDTHHMMSSZ`.
    pub id: String,
    /// The job that made it.
    pub job: String,
    /// When it started and ended, ms.
    pub started_ms: i64,
    /// When it ended, ms.
    pub finished_ms: i64,
    /// The tenants it holds.
    pub tenants: Vec<String>,
    /// Whether it holds the whole platform (else only these tenants' records and rows
    /// of the platform's topics and tables).
    pub whole_platform: bool,
    /// Topics.
    pub topics: Vec<TopicBackup>,
    /// Tables.
    pub tables: Vec<TableBackup>,
    /// Every schema the backed-up records name, by id.
    pub schemas: BTreeMap<u32, String>,
}

/// A backed-up topic.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TopicBackup {
    /// Its name.
    pub name: String,
    /// Its partitions.
    pub partitions: i32,
    /// Whether it is compacted.
    pub compacted: bool,
    /// What was taken of each partition.
    pub parts: Vec<PartBackup>,
    /// Its file, `topics/<name>.jsonl`.
    pub file: String,
    /// The file's size.
    pub bytes: u64,
    /// The file's SHA-256, hex.
    pub sha256: String,
}

/// What a backup took of a partition.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PartBackup {
    /// The partition.
    pub partition: i32,
    /// The first offset read.
    pub from_offset: i64,
    /// The partition's end when it was read.
    pub to_offset: i64,
    /// Records kept.
    pub records: u64,
}

/// A backed-up table.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TableBackup {
    /// Its database.
    pub database: String,
    /// Its name.
    pub table: String,
    /// Its columns, name and type.
    pub columns: Vec<(String, String)>,
    /// Its `CREATE` statement, for people: a restore creates tables with its own schema.
    pub create: String,
    /// The rows taken, as SQL (only the tenants' rows of a platform table); empty: all.
    pub filter: String,
    /// Rows.
    pub rows: u64,
    /// Its file, `clickhouse/<database>.<table>.tsv`.
    pub file: String,
    /// The file's size.
    pub bytes: u64,
    /// The file's SHA-256, hex.
    pub sha256: String,
}

/// The backups under a URL.
pub struct Backups {
    files: Store,
    /// Where files are staged on their way.
    scratch: PathBuf,
}

fn backup_err(what: impl std::fmt::Display) -> JobError {
    JobError::Backup(what.to_string())
}

impl Backups {
    /// The backups under `config.url`; `scratch` is a local directory for files on their
    /// way (made when needed, emptied after).
    pub fn open(config: &BackupConfig, scratch: &FsPath) -> Result<Self, JobError> {
        if config.url.is_empty() {
            return Err(backup_err(
                "jobs.backup.url is empty: there is nowhere to keep backups",
            ));
        }
        Ok(Self {
            files: crate::store::open("jobs.backup", &config.url, &config.options)
                .map_err(backup_err)?,
            scratch: scratch.to_path_buf(),
        })
    }

    /// Where they are.
    pub fn location(&self) -> &str {
        &self.files.location
    }

    /// The complete backups (those with a manifest), oldest first.
    pub async fn list(&self) -> Result<Vec<String>, JobError> {
        let mut ids = Vec::new();
        let mut listed = self.files.store.list(None);
        while let Some(meta) = listed.next().await {
            let meta = meta.map_err(backup_err)?;
            let parts: Vec<String> = meta
                .location
                .parts()
                .map(|p| p.as_ref().to_string())
                .collect();
            if let [id, name] = parts.as_slice() {
                if name == "manifest.json" {
                    ids.push(id.clone());
                }
            }
        }
        ids.sort();
        Ok(ids)
    }

    /// A backup's manifest (the latest when `id` is `None`), its names checked.
    pub async fn manifest(&self, id: Option<&str>) -> Result<Manifest, JobError> {
        let id = match id {
            Some(id) => id.to_string(),
            None => self.list().await?.pop().ok_or_else(|| {
                backup_err(format!("there is no backup in {}", self.files.location))
            })?,
        };
        if !id.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(backup_err(format!(
                "--backup: {id:?} is not a backup id like 20261207T093000Z"
            )));
        }
        let path = Path::from(format!("{id}/manifest.json"));
        let bytes = match self.files.store.get(&path).await {
            Ok(got) => got.bytes().await.map_err(backup_err)?,
            Err(object_store::Error::NotFound { .. }) => {
                return Err(backup_err(format!(
                    "backup {id} is not in {} (or is incomplete: it has no manifest)",
                    self.files.location
                )))
            }
            Err(e) => return Err(backup_err(e)),
        };
        let manifest: Manifest =
            serde_json::from_slice(&bytes).map_err(|e| backup_err(format!("{path}: {e}")))?;
        manifest.check()?;
        Ok(manifest)
    }

    fn staging(&self, name: &str) -> Result<PathBuf, JobError> {
        std::fs::create_dir_all(&self.scratch)
            .map_err(|e| backup_err(format!("cannot create {}: {e}", self.scratch.display())))?;
        Ok(self.scratch.join(name))
    }

    /// Uploads a staged file to `<id>/<name>` (removing the staged copy); its size and
    /// SHA-256, read back.
    async fn put(&self, staged: &FsPath, id: &str, name: &str) -> Result<(u64, String), JobError> {
        let outcome = self
            .files
            .upload(staged, &Path::from(format!("{id}/{name}")))
            .await;
        let _ = std::fs::remove_file(staged);
        outcome.map_err(backup_err)
    }

    /// Downloads `<id>/<name>` into the staging directory, checked against its size and
    /// SHA-256.
    async fn get(
        &self,
        id: &str,
        name: &str,
        bytes: u64,
        sha256: &str,
    ) -> Result<PathBuf, JobError> {
        let staged = self.staging(&name.replace('/', "-"))?;
        self.files
            .download(&Path::from(format!("{id}/{name}")), &staged, bytes, sha256)
            .await
            .map_err(|e| backup_err(format!("{e}; nothing was restored")))?;
        Ok(staged)
    }
}

impl Manifest {
    /// Refuses names that roomflow could not have written: they reach SQL, topics and
    /// paths, and a bucket is not trusted to hold only what roomflow put there.
    pub fn check(&self) -> Result<(), JobError> {
        let ident = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
                && !s.starts_with(|c: char| c.is_ascii_digit())
        };
        let tenants: BTreeSet<String> = self.tenants.iter().cloned().collect();
        for t in &self.tenants {
            TenantId::parse(t).map_err(|e| backup_err(format!("manifest {}: {e}", self.id)))?;
        }
        for t in &self.topics {
            let tenant_topic = t.name.split_once('.').is_some_and(|(prefix, tenant)| {
                ["occupancy", "rooms", "bookings", "deadletter"].contains(&prefix)
                    && tenants.contains(tenant)
            });
            let known = tenant_topic
                || COMPACTED_PLATFORM.contains(&t.name.as_str())
                || t.name == rf_sinks::webhook::outbox::TOPIC;
            if !known
                || t.file != format!("topics/{}.jsonl", t.name)
                || !(1..=1024).contains(&t.partitions)
            {
                return Err(backup_err(format!(
                    "manifest {}: topic {:?} is not one roomflow backs up",
                    self.id, t.name
                )));
            }
        }
        for t in &self.tables {
            let db_known = t.database == "rf_platform"
                || self
                    .tenants
                    .iter()
                    .any(|id| TenantId::parse(id).is_ok_and(|id| id.clickhouse_db() == t.database));
            let ok = db_known
                && ident(&t.table)
                && t.columns.iter().all(|(c, _)| ident(c))
                && t.file == format!("clickhouse/{}.{}.tsv", t.database, t.table)
                && t.filter
                    == platform_filter(&self.tenants, self.whole_platform, &t.database, &t.columns);
            if !ok {
                return Err(backup_err(format!(
                    "manifest {}: table {}.{} is not one roomflow backs up",
                    self.id, t.database, t.table
                )));
            }
        }
        Ok(())
    }
}

/// The rows of a platform table a backup of `tenants` takes: those whose `tenant` is one
/// of them (a platform table without that column only in a backup of the whole platform).
fn platform_filter(
    tenants: &[String],
    whole: bool,
    db: &str,
    columns: &[(String, String)],
) -> String {
    if whole || db != "rf_platform" {
        return String::new();
    }
    if !columns.iter().any(|(c, _)| c == "tenant") {
        return "0".into();
    }
    let quoted: Vec<String> = tenants.iter().map(|t| format!("'{t}'")).collect();
    format!("tenant IN ({})", quoted.join(", "))
}

/// Which tenant a platform topic's record is about (`None`: the platform's own).
fn record_tenant(topic: &str, m: &rdkafka::message::BorrowedMessage<'_>) -> Option<String> {
    let key = std::str::from_utf8(m.key()?).ok()?;
    match topic {
        t if t == rf_schemas::tenant::TENANTS_TOPIC || t == rf_sinks::webhook::outbox::TOPIC => {
            Some(key.to_string())
        }
        t if t == rf_pipelines::checkpoint::TOPIC => {
            // <group>/<topic>/<partition>
            let (rest, _) = key.rsplit_once('/')?;
            let (_, topic) = rest.rsplit_once('/')?;
            topic
                .strip_prefix(rf_schemas::tenant::READINGS_PREFIX)
                .map(str::to_string)
        }
        t if t == rf_pipelines::alerts::STATE_TOPIC => {
            let rest = key.split_once('/')?.1;
            Some(rest.split_once('/')?.0.to_string())
        }
        _ => {
            let id = key.strip_prefix("cancel/").unwrap_or(key);
            crate::erase::job_tenant(id).map(str::to_string)
        }
    }
}

/// A tenant's region: its registry entry's, or the home region.
pub(crate) fn tenant_region(
    settings: &Settings,
    config: Option<&rf_schemas::TenantConfig>,
) -> Result<Region, JobError> {
    let name = config.map_or(settings.regions.home.as_str(), |c| c.region.as_str());
    settings
        .region(name)
        .ok_or_else(|| backup_err(format!("region {name:?} is not configured here")))
}

fn region_kafka(settings: &Settings, region: &Region) -> KafkaConfig {
    KafkaConfig {
        brokers: region.brokers.clone(),
        ..settings.kafka.clone()
    }
}

/// A backup being made: planned (checkpoints read), then taken one unit at a time.
pub struct Backup<'a> {
    settings: &'a Settings,
    backups: &'a Backups,
    manifest: Manifest,
    units: Vec<Unit>,
    /// Where each partition of each readings topic starts (the checkpoints' least).
    resume: BTreeMap<String, BTreeMap<i32, i64>>,
    /// Registry entries, by tenant.
    configs: BTreeMap<String, rf_schemas::TenantConfig>,
    /// Schema ids seen in the tenants' records.
    schema_ids: BTreeSet<u32>,
}

/// One step of a backup.
#[derive(Clone, Debug)]
pub enum Unit {
    /// A topic of the home broker or of a tenant's region.
    Topic {
        /// Its name.
        name: String,
        /// The tenant whose topic it is (`None`: the platform's).
        tenant: Option<String>,
    },
    /// A table.
    Table {
        /// Its database.
        database: String,
        /// Its name.
        table: String,
        /// The tenant whose database it is (`None`: `rf_platform`).
        tenant: Option<String>,
    },
}

impl std::fmt::Display for Unit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Topic { name, .. } => write!(f, "topic {name}"),
            Self::Table {
                database, table, ..
            } => write!(f, "table {database}.{table}"),
        }
    }
}

impl<'a> Backup<'a> {
    /// Plans a backup of `scope` (every tenant when empty, with the whole platform):
    /// reads the checkpoints first, then lists what to take.
    pub async fn plan(
        settings: &'a Settings,
        backups: &'a Backups,
        scope: &[TenantId],
        job: &str,
    ) -> Result<Self, JobError> {
        let started_ms = rf_schemas::unix_ms();
        let id = chrono::DateTime::from_timestamp_millis(started_ms)
            .map(|t| t.format("%Y%m%dT%H%M%SZ").to_string())
            .unwrap_or_default();
        let whole = scope.is_empty();
        let listed = crate::tenant::list(&settings.kafka)?;
        let mut configs = BTreeMap::new();
        let mut tenants = Vec::new();
        for (tenant, config) in listed {
            if whole || scope.contains(&tenant) {
                if let Some(c) = config {
                    configs.insert(tenant.to_string(), c);
                }
                tenants.push(tenant.to_string());
            }
        }
        for t in scope {
            if !tenants.contains(&t.to_string()) {
                return Err(backup_err(format!("--tenant: there is no tenant {t}")));
            }
        }
        let mut backup = Self {
            settings,
            backups,
            manifest: Manifest {
                format: 1,
                id,
                job: job.to_string(),
                started_ms,
                tenants,
                whole_platform: whole,
                ..Manifest::default()
            },
            units: Vec::new(),
            resume: BTreeMap::new(),
            configs,
            schema_ids: BTreeSet::new(),
        };
        // The checkpoints first: what they account for is written everywhere already.
        backup.topic(rf_pipelines::checkpoint::TOPIC, None).await?;
        let mut units: Vec<Unit> = COMPACTED_PLATFORM
            .iter()
            .filter(|t| **t != rf_pipelines::checkpoint::TOPIC)
            .chain([&rf_sinks::webhook::outbox::TOPIC])
            .map(|t| Unit::Topic {
                name: t.to_string(),
                tenant: None,
            })
            .collect();
        let home = settings
            .region(&settings.regions.home)
            .ok_or_else(|| backup_err("the home region is not configured"))?;
        let platform = crate::platform(&home.clickhouse).await?;
        for table in tables::tables(&platform, "rf_platform").await? {
            units.push(Unit::Table {
                database: "rf_platform".into(),
                table,
                tenant: None,
            });
        }
        for tenant in backup.manifest.tenants.clone() {
            let id = TenantId::parse(&tenant).map_err(|e| backup_err(e.to_string()))?;
            for topic in [
                id.readings_topic(),
                id.rooms_topic(),
                id.bookings_topic(),
                id.deadletter_topic(),
            ] {
                units.push(Unit::Topic {
                    name: topic,
                    tenant: Some(tenant.clone()),
                });
            }
            let region = tenant_region(settings, backup.configs.get(&tenant))?;
            let client = rf_sinks::clickhouse::client(&region.clickhouse);
            let db = id.clickhouse_db();
            for table in tables::tables(&client, &db).await? {
                units.push(Unit::Table {
                    database: db.clone(),
                    table,
                    tenant: Some(tenant.clone()),
                });
            }
        }
        backup.units = units;
        Ok(backup)
    }

    /// Its id.
    pub fn id(&self) -> &str {
        &self.manifest.id
    }

    /// What is left to take, in order.
    pub fn units(&self) -> Vec<Unit> {
        self.units.clone()
    }

    /// Takes one unit; a line saying what was taken.
    pub async fn take(&mut self, unit: &Unit) -> Result<String, JobError> {
        match unit {
            Unit::Topic { name, tenant } => {
                let t = self.topic(name, tenant.as_deref()).await?;
                Ok(format!("{name}: {} records, {} bytes", t.0, t.1))
            }
            Unit::Table {
                database,
                table,
                tenant,
            } => {
                let region = match tenant {
                    Some(t) => tenant_region(self.settings, self.configs.get(t))?,
                    None => tenant_region(self.settings, None)?,
                };
                let client = rf_sinks::clickhouse::client(&region.clickhouse);
                let columns: Vec<(String, String)> = client
                    .query("SELECT name, type FROM system.columns WHERE database = ? AND table = ?")
                    .bind(database)
                    .bind(table)
                    .fetch_all()
                    .await?;
                let filter = platform_filter(
                    &self.manifest.tenants,
                    self.manifest.whole_platform,
                    database,
                    &columns,
                );
                let name = format!("clickhouse/{database}.{table}.tsv");
                let staged = self
                    .backups
                    .staging(&format!("{}-{database}.{table}.tsv", self.manifest.id))?;
                let mut t = tables::dump(&client, database, table, &filter, &staged).await?;
                t.filter = filter;
                (t.bytes, t.sha256) = self.backups.put(&staged, &self.manifest.id, &name).await?;
                t.file = name;
                let line = format!("{database}.{table}: {} rows, {} bytes", t.rows, t.bytes);
                self.manifest.tables.push(t);
                Ok(line)
            }
        }
    }

    /// Backs up a topic; its records and bytes.
    async fn topic(&mut self, name: &str, tenant: Option<&str>) -> Result<(u64, u64), JobError> {
        let settings = self.settings;
        let kafka = match tenant {
            Some(t) => region_kafka(settings, &tenant_region(settings, self.configs.get(t))?),
            None => settings.kafka.clone(),
        };
        let from = if name == rf_sinks::webhook::outbox::TOPIC {
            // What the dispatcher has not taken yet.
            let group = format!("{}.alerts", settings.kafka.group_id);
            topics::committed(&kafka, &group, name)?
        } else {
            self.resume.get(name).cloned().unwrap_or_default()
        };
        let tenants: BTreeSet<String> = self.manifest.tenants.iter().cloned().collect();
        let whole = self.manifest.whole_platform;
        let is_checkpoints = name == rf_pipelines::checkpoint::TOPIC;
        let mut latest: BTreeMap<String, (String, i32, i64)> = BTreeMap::new();
        let mut ids = BTreeSet::new();
        let staged = self
            .backups
            .staging(&format!("{}-{name}.jsonl", self.manifest.id))?;
        let dumped = topics::dump(&kafka, name, &from, &staged, |m| {
            if tenant.is_some() {
                if name.starts_with(rf_schemas::tenant::DEADLETTER_PREFIX) {
                    return true;
                }
                // Avro values in the Confluent wire format name their schema.
                if let Some(v) = m.payload().filter(|v| v.len() > 5 && v[0] == 0) {
                    ids.insert(u32::from_be_bytes([v[1], v[2], v[3], v[4]]));
                }
                return true;
            }
            let keep = whole || record_tenant(name, m).is_some_and(|t| tenants.contains(&t));
            if keep && is_checkpoints {
                note_resume(m, &mut latest);
            }
            keep
        })?;
        let Some(mut t) = dumped else {
            let _ = std::fs::remove_file(&staged);
            return Ok((0, 0));
        };
        if is_checkpoints {
            // Each partition resumes from the least of its groups' latest checkpoints.
            for (topic, partition, offset) in latest.into_values() {
                let at = self
                    .resume
                    .entry(topic)
                    .or_default()
                    .entry(partition)
                    .or_insert(offset);
                *at = (*at).min(offset);
            }
        }
        self.schema_ids.extend(ids);
        t.compacted = COMPACTED_PLATFORM.contains(&name)
            || name.starts_with(rf_schemas::tenant::ROOMS_PREFIX)
            || name.starts_with("bookings.");
        let file = format!("topics/{name}.jsonl");
        (t.bytes, t.sha256) = self.backups.put(&staged, &self.manifest.id, &file).await?;
        t.file = file;
        let records = t.parts.iter().map(|p| p.records).sum();
        let bytes = t.bytes;
        self.manifest.topics.push(t);
        Ok((records, bytes))
    }

    /// Records the schemas its records name, writes the manifest (the backup is complete
    /// from then on) and returns it.
    pub async fn finish(mut self) -> Result<Manifest, JobError> {
        let registry = rf_schemas::registry::RegistryClient::new(
            &self.settings.registry.url,
            std::time::Duration::from_secs(self.settings.registry.timeout_secs),
        );
        let ids = std::mem::take(&mut self.schema_ids);
        // Records that do not decode may name ids that never existed: those are left
        // out (their readings stay dead letters, as they were).
        let schemas = tokio::task::spawn_blocking(move || {
            let mut known = BTreeMap::new();
            for id in ids {
                match registry.schema_by_id(id) {
                    Ok(schema) => {
                        known.insert(id, schema);
                    }
                    Err(rf_schemas::registry::RegistryError::UnknownId(_)) => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(known)
        })
        .await
        .map_err(backup_err)??;
        self.manifest.schemas = schemas;
        self.manifest.finished_ms = rf_schemas::unix_ms();
        let body = serde_json::to_vec_pretty(&self.manifest).map_err(backup_err)?;
        let path = Path::from(format!("{}/manifest.json", self.manifest.id));
        self.backups
            .files
            .store
            .put(&path, PutPayload::from(body))
            .await
            .map_err(backup_err)?;
        Ok(self.manifest)
    }
}

/// Notes a checkpoint's resume offset by its key (`<group>/<topic>/<partition>`): the
/// latest per key counts, and a tombstone removes it.
fn note_resume(
    m: &rdkafka::message::BorrowedMessage<'_>,
    latest: &mut BTreeMap<String, (String, i32, i64)>,
) {
    let Some(key) = m.key().and_then(|k| std::str::from_utf8(k).ok()) else {
        return;
    };
    let resume = m
        .payload()
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(rf_pipelines::checkpoint::Resume::decode);
    let (Some((rest, partition)), Some(r)) = (key.rsplit_once('/'), resume) else {
        latest.remove(key);
        return;
    };
    let (Some((_, topic)), Ok(partition)) = (rest.rsplit_once('/'), partition.parse::<i32>())
    else {
        return;
    };
    latest.insert(key.to_string(), (topic.to_string(), partition, r.offset));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> Manifest {
        Manifest {
            format: 1,
            id: "20261207T093000Z".into(),
            tenants: vec!["acme".into()],
            topics: vec![TopicBackup {
                name: "occupancy.acme".into(),
                partitions: 12,
                file: "topics/occupancy.acme.jsonl".into(),
                ..TopicBackup::default()
            }],
            tables: vec![
                TableBackup {
                    database: "rf_acme".into(),
                    table: "readings".into(),
                    columns: vec![("ts".into(), "DateTime".into())],
                    file: "clickhouse/rf_acme.readings.tsv".into(),
                    ..TableBackup::default()
                },
                TableBackup {
                    database: "rf_platform".into(),
                    table: "tenants".into(),
                    columns: vec![("tenant".into(), "String".into())],
                    filter: "tenant IN ('acme')".into(),
                    file: "clickhouse/rf_platform.tenants.tsv".into(),
                    ..TableBackup::default()
                },
            ],
            ..Manifest::default()
        }
    }

    #[test]
    fn a_manifest_names_only_what_roomflow_backs_up() {
        assert!(manifest().check().is_ok());
        let hostile: [fn(&mut Manifest); 6] = [
            |m| m.topics[0].name = "occupancy.globex".into(),
            |m| m.topics[0].file = "../../etc/passwd".into(),
            |m| m.tables[0].database = "system".into(),
            |m| m.tables[0].columns[0].0 = "ts; DROP TABLE x".into(),
            |m| m.tables[1].filter = "1 = 1) OR (1".into(),
            |m| m.tenants[0] = "Acme Corp".into(),
        ];
        for (i, change) in hostile.iter().enumerate() {
            let mut m = manifest();
            change(&mut m);
            assert!(m.check().is_err(), "change {i} refused");
        }
    }

    #[test]
    fn offsets_translate_to_the_restored_records() {
        let mut o = topics::Offsets::default();
        o.push(3, &[100, 101, 105, 106]);
        assert_eq!(o.translate(3, 100), 0);
        assert_eq!(o.translate(3, 105), 2);
        assert_eq!(o.translate(3, 103), 2, "a gap: the next restored record");
        assert_eq!(o.translate(3, 107), 4, "the end");
        assert_eq!(o.translate(3, 50), 0);
        assert!(o.contains(3, 106) && !o.contains(3, 104) && !o.contains(2, 100));
    }

    #[test]
    fn scheduled_backups_need_a_place() {
        let config = BackupConfig {
            every_hours: 24,
            ..BackupConfig::default()
        };
        assert!(config
            .validate()
            .unwrap_err()
            .starts_with("jobs.backup.every_hours"));
        let config = BackupConfig {
            url: "ftp://x".into(),
            ..BackupConfig::default()
        };
        assert!(config
            .validate()
            .unwrap_err()
            .starts_with("jobs.backup.url"));
    }
}
