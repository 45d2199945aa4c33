//! Tenant erasure (the right to erasure): after a deleted tenant's grace period, its data
//! is removed from every store of every region, then each store is checked and a JSON
//! verification report says what, if anything, remains. Every step can run again.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use serde::Serialize;

use rf_pipelines::{KafkaConfig, Settings};
use rf_schemas::TenantId;

use crate::cold::{ColdConfig, ColdStore};
use crate::principal::Removed;
use crate::tenant::{redact, redis_conn, tenant_keys, tenant_tables, tenant_topics};
use crate::JobError;

/// The erasure steps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// The tenant's topics, in every region.
    Topics,
    /// Its databases.
    Databases,
    /// Its Redis keys.
    RedisKeys,
    /// Its analysts' ClickHouse and Redis users, and its producer principal.
    Users,
    /// Its rows in `rf_platform`, data keys first.
    PlatformRows,
    /// Tombstones for its keys in the platform's compacted topics.
    CompactedTopics,
    /// Its schema subjects.
    SchemaSubjects,
    /// Its job files.
    JobFiles,
    /// Its months in the cold tier, in every region.
    ColdFiles,
    /// Its registry entry.
    Registry,
}

impl Step {
    /// Every step, in order.
    pub const ALL: [Self; 10] = [
        Self::Topics,
        Self::Databases,
        Self::RedisKeys,
        Self::Users,
        Self::PlatformRows,
        Self::CompactedTopics,
        Self::SchemaSubjects,
        Self::JobFiles,
        Self::ColdFiles,
        Self::Registry,
    ];
}

/// Compacted topics whose keys name tenants: the tenant's keys get tombstones.
const COMPACTED: [&str; 3] = [
    "roomflow.alert-state",
    "roomflow.checkpoints",
    crate::queue::STATUS_TOPIC,
];

/// Topics that are not compacted: a tenant's records there expire with the topic's
/// retention and are reported, not removed.
const EXPIRING: [(&str, &str); 2] = [
    (rf_sinks::webhook::outbox::TOPIC, "7 days"),
    (crate::queue::JOBS_TOPIC, "the broker's default retention"),
];

/// One check of the verification report.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Check {
    /// Where.
    pub store: String,
    /// What was looked for.
    pub what: String,
    /// How many were found.
    pub found: u64,
}

/// The verification report.
#[derive(Clone, Debug, Serialize)]
pub struct Verification {
    /// The tenant.
    pub tenant: String,
    /// When it was checked, ms.
    pub checked_ms: i64,
    /// Every check.
    pub checks: Vec<Check>,
    /// Records that expire with their topic's retention.
    pub expiring: Vec<Check>,
    /// What is kept on purpose.
    pub kept: Vec<String>,
    /// Whether nothing was found.
    pub clean: bool,
}

fn kafka_err(what: &str) -> impl Fn(rdkafka::error::KafkaError) -> JobError + '_ {
    move |e| JobError::kafka(what.to_string(), e)
}

fn region_kafka(settings: &Settings, brokers: &str) -> KafkaConfig {
    KafkaConfig {
        brokers: brokers.to_string(),
        ..settings.kafka.clone()
    }
}

/// Runs `step` for `tenant`; `job` is the erasure job's id (its own status and report
/// are kept), `files` the jobs' output folder, `cold` the cold tier. Returns a line
/// saying what went.
pub async fn step(
    settings: &Settings,
    files: &Path,
    cold: &ColdConfig,
    tenant: &TenantId,
    job: &str,
    step: Step,
) -> Result<String, JobError> {
    // A reserved id's names are the platform's: erasing them would erase every tenant's.
    if let Some(why) = tenant.reserved() {
        return Err(JobError::Invalid(why));
    }
    let regions = settings.regions();
    match step {
        Step::Topics => {
            let mut deleted = 0;
            for r in &regions {
                let kafka = region_kafka(settings, &r.brokers);
                let found = tenant_topics(&kafka, tenant)?;
                if found.is_empty() {
                    continue;
                }
                let admin: AdminClient<DefaultClientContext> = kafka
                    .client_config()
                    .create()
                    .map_err(kafka_err("erasure"))?;
                let names: Vec<&str> = found.keys().map(String::as_str).collect();
                let options = AdminOptions::new()
                    .operation_timeout(Some(Duration::from_secs(kafka.timeout_secs)));
                for result in admin
                    .delete_topics(&names, &options)
                    .await
                    .map_err(kafka_err("deleting topics"))?
                {
                    match result {
                        Ok(_) => deleted += 1,
                        Err((topic, code)) => {
                            return Err(JobError::Topics(format!("cannot delete {topic}: {code}")))
                        }
                    }
                }
            }
            Ok(format!("deleted {deleted} topics"))
        }
        Step::Databases => {
            for r in &regions {
                rf_sinks::clickhouse::client(&r.clickhouse)
                    .query(&format!(
                        "DROP DATABASE IF EXISTS {}",
                        tenant.clickhouse_db()
                    ))
                    .execute()
                    .await?;
            }
            Ok(format!(
                "dropped {} in {} regions",
                tenant.clickhouse_db(),
                regions.len()
            ))
        }
        Step::RedisKeys => {
            let mut deleted = 0;
            for r in &regions {
                let (mut conn, rerr) = redis_conn(&r.redis).await?;
                let keys = rf_sinks::redis::tenant_keys(&mut conn, tenant)
                    .await
                    .map_err(&rerr)?;
                for chunk in keys.chunks(500) {
                    let n: u64 = redis::cmd("DEL")
                        .arg(chunk)
                        .query_async(&mut conn)
                        .await
                        .map_err(&rerr)?;
                    deleted += n;
                }
            }
            Ok(format!("deleted {deleted} Redis keys"))
        }
        Step::Users => {
            let (ch_user, _) = crate::analyst::user_names(tenant);
            for r in &regions {
                crate::analyst::remove_redis_user(&r.redis, tenant).await?;
                if r.clickhouse.analyst_users_dir.is_empty() {
                    let client = rf_sinks::clickhouse::client(&r.clickhouse);
                    for statement in [
                        format!("DROP QUOTA IF EXISTS {ch_user}"),
                        format!("DROP USER IF EXISTS {ch_user}"),
                    ] {
                        match client.query(&statement).execute().await {
                            Ok(()) => {}
                            // A server without SQL user management (18.16 answers
                            // "syntax error") never had an analyst user made this way.
                            Err(e) if is_syntax_error(&e) => {}
                            Err(e) => {
                                return Err(JobError::clickhouse(
                                    format!("region {}: {statement}", r.name),
                                    e,
                                ))
                            }
                        }
                    }
                } else {
                    let file = std::path::Path::new(&r.clickhouse.analyst_users_dir)
                        .join(format!("{ch_user}.xml"));
                    match std::fs::remove_file(&file) {
                        Ok(()) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(e) => {
                            return Err(JobError::Invalid(format!(
                                "cannot remove {}: {e}",
                                file.display()
                            )))
                        }
                    }
                }
            }
            // Its producer principal: a tenant created again with this id must not find
            // the old sensors' credentials valid.
            let mut principals = 0;
            for r in &regions {
                let kafka = region_kafka(settings, &r.brokers);
                if crate::principal::remove(&kafka, tenant).await? == Removed::Deleted {
                    principals += 1;
                }
            }
            Ok(format!(
                "removed the analysts' ClickHouse and Redis users and {principals} producer principal credentials"
            ))
        }
        Step::PlatformRows => {
            let client = crate::platform(&settings.clickhouse).await?;
            // The data keys first: from then on, the tenant's webhook URLs and secrets
            // in earlier registry records are ciphertext nobody can open.
            for (table, extra) in [
                ("tenant_keys", ""),
                ("api_keys", ""),
                ("roles", ""),
                ("token_revocations", ""),
                ("benchmark_consent", ""),
                ("tenants", ""),
                ("jobs", " AND id != ?"),
            ] {
                let mut q = client
                    .query(&format!(
                        "ALTER TABLE rf_platform.{table} DELETE WHERE tenant = ?{extra}"
                    ))
                    .bind(tenant.as_str());
                if !extra.is_empty() {
                    q = q.bind(job);
                }
                q.execute().await?;
            }
            wait_for_mutations(&settings.clickhouse).await?;
            Ok(
                "deleted the tenant's data keys (its sealed secrets are unreadable), API keys, token revocations, registry mirror and job rows"
                    .into(),
            )
        }
        Step::CompactedTopics => {
            let mut tombstones = 0;
            for topic in COMPACTED {
                let keys = live_keys(&settings.kafka, topic, |k| {
                    names_tenant(topic, k, tenant, job)
                })?;
                tombstones += keys.len();
                tombstone(&settings.kafka, topic, &keys).await?;
            }
            Ok(format!(
                "{tombstones} tombstones in the platform's compacted topics"
            ))
        }
        Step::SchemaSubjects => {
            let client = registry_client(settings);
            let subjects = tenant_subjects(tenant);
            let deleted = tokio::task::spawn_blocking(move || {
                subjects
                    .iter()
                    .map(|s| client.delete_subject(s))
                    .collect::<Result<Vec<()>, _>>()
            })
            .await
            .map_err(|e| JobError::Invalid(format!("registry task failed: {e}")))??;
            Ok(format!(
                "deleted {} schema subjects permanently",
                deleted.len()
            ))
        }
        Step::JobFiles => {
            let dirs = job_dirs(files, tenant)?;
            for dir in &dirs {
                std::fs::remove_dir_all(dir).map_err(|e| {
                    JobError::Invalid(format!("cannot remove {}: {e}", dir.display()))
                })?;
            }
            Ok(format!("removed the files of {} jobs", dirs.len()))
        }
        Step::ColdFiles => {
            let mut deleted = 0;
            for r in &regions {
                if let Some(store) = ColdStore::open(cold, &r.name, &files.join(".cold-staging"))? {
                    deleted += store.delete(tenant, None).await?;
                }
            }
            Ok(format!("deleted {deleted} files of the cold tier"))
        }
        Step::Registry => {
            crate::tenant::forget(settings, tenant).await?;
            Ok("removed from the tenant registry".into())
        }
    }
}

/// The tenant of a job id (`<kind>-<tenant>-<ms>`; kinds have no `-`).
pub(crate) fn job_tenant(id: &str) -> Option<&str> {
    let (rest, ms) = id.rsplit_once('-')?;
    let (_, tenant) = rest.split_once('-')?;
    ms.chars().all(|c| c.is_ascii_digit()).then_some(tenant)
}

/// Every step at once, with no grace period and no report: for throwaway tenants (the
/// benchmarks', which write no job files and have no cold months).
pub async fn all_steps(settings: &Settings, tenant: &TenantId) -> Result<(), JobError> {
    let no_cold = ColdConfig {
        url: String::new(),
        ..Default::default()
    };
    for s in Step::ALL {
        step(settings, Path::new(""), &no_cold, tenant, "", s).await?;
    }
    Ok(())
}

fn registry_client(settings: &Settings) -> rf_schemas::registry::RegistryClient {
    rf_schemas::registry::RegistryClient::new(
        &settings.registry.url,
        Duration::from_secs(settings.registry.timeout_secs),
    )
}

/// The tenant's schema subjects: `<topic>-value` of its readings and rooms topics.
fn tenant_subjects(tenant: &TenantId) -> Vec<String> {
    [
        tenant.readings_topic(),
        tenant.rooms_topic(),
        tenant.bookings_topic(),
    ]
    .map(|topic| format!("{topic}-value"))
    .to_vec()
}

/// The output folders of the tenant's jobs under `files` (`<files>/<job id>/`), but those
/// of erasures: they hold the reports that prove it (only the tenant's id is in them).
fn job_dirs(files: &Path, tenant: &TenantId) -> Result<Vec<PathBuf>, JobError> {
    if files.as_os_str().is_empty() {
        return Ok(Vec::new());
    }
    let entries = match std::fs::read_dir(files) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(JobError::Invalid(format!(
                "cannot read {}: {e}",
                files.display()
            )))
        }
    };
    let mut dirs = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let erasure = name.starts_with("erase-");
        if !erasure && job_tenant(&name) == Some(tenant.as_str()) && entry.path().is_dir() {
            dirs.push(entry.path());
        }
    }
    Ok(dirs)
}

/// Whether a key of `topic` names `tenant` (the erasure job `job`'s own are kept).
fn names_tenant(topic: &str, key: &str, tenant: &TenantId, job: &str) -> bool {
    let t = tenant.as_str();
    match topic {
        // `group/<tenant>/…` and `target/<tenant>/…`.
        "roomflow.alert-state" => key.split('/').nth(1) == Some(t),
        // `<group>/occupancy.<tenant>/<partition>`.
        "roomflow.checkpoints" => key.contains(&format!("/{}/", tenant.readings_topic())),
        // Job ids, and cancel requests `cancel/<id>`.
        crate::queue::STATUS_TOPIC | crate::queue::JOBS_TOPIC => {
            let id = key.strip_prefix("cancel/").unwrap_or(key);
            id != job && job_tenant(id) == Some(t)
        }
        // The outbox: keyed by tenant.
        _ => key == t,
    }
}

async fn wait_for_mutations(
    clickhouse: &rf_sinks::config::ClickHouseConfig,
) -> Result<(), JobError> {
    let client = rf_sinks::clickhouse::client(clickhouse);
    loop {
        let running: u64 = client
            .query("SELECT count() FROM system.mutations WHERE database = 'rf_platform' AND is_done = 0")
            .fetch_one()
            .await?;
        if running == 0 {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The keys of a compacted topic whose latest record is not a tombstone and that
/// `wanted` accepts.
fn live_keys(
    kafka: &KafkaConfig,
    topic: &str,
    wanted: impl Fn(&str) -> bool,
) -> Result<Vec<String>, JobError> {
    let mut live = BTreeMap::new();
    scan(kafka, topic, |key, has_value| {
        if wanted(key) {
            live.insert(key.to_string(), has_value);
        }
    })?;
    Ok(live
        .into_iter()
        .filter(|(_, l)| *l)
        .map(|(k, _)| k)
        .collect())
}

/// Reads a topic from its start to its end, calling `f` with each keyed record's key
/// and whether it has a value.
fn scan(kafka: &KafkaConfig, topic: &str, mut f: impl FnMut(&str, bool)) -> Result<(), JobError> {
    rf_pipelines::topics::read_to_end(kafka, topic, "roomflow-erasure", |m| {
        if let Some(key) = m.key().and_then(|k| std::str::from_utf8(k).ok()) {
            f(key, m.payload().is_some());
        }
    })?;
    Ok(())
}

async fn tombstone(kafka: &KafkaConfig, topic: &str, keys: &[String]) -> Result<(), JobError> {
    if keys.is_empty() {
        return Ok(());
    }
    let producer: FutureProducer = kafka.client_config().create().map_err(kafka_err(topic))?;
    let timeout = Duration::from_secs(kafka.timeout_secs);
    for key in keys {
        producer
            .send(FutureRecord::<str, [u8]>::to(topic).key(key), timeout)
            .await
            .map_err(|(e, _)| JobError::kafka(format!("tombstone in {topic}"), e))?;
    }
    Ok(())
}

/// How many of the tenant's readings partitions have an offset the pipeline's consumer
/// group committed (asked without joining the group).
pub fn committed_offsets(kafka: &KafkaConfig, tenant: &TenantId) -> Result<u64, JobError> {
    let topic = tenant.readings_topic();
    let consumer: BaseConsumer = kafka
        .consumer_config(&kafka.group_id)
        .create()
        .map_err(kafka_err(&topic))?;
    let mut partitions = TopicPartitionList::new();
    for p in 0..crate::tenant::READINGS_PARTITIONS {
        partitions.add_partition(&topic, p);
    }
    let committed = consumer
        .committed_offsets(partitions, Duration::from_secs(kafka.timeout_secs))
        .map_err(kafka_err(&topic))?;
    let elements = committed.elements();
    let found = elements
        .iter()
        .filter(|e| matches!(e.offset(), Offset::Offset(_)));
    Ok(found.count() as u64)
}

/// Looks for the tenant in every store of every region, its schema subjects and job
/// files; lists the earlier records naming it that still wait in the platform's topics.
pub async fn verify(
    settings: &Settings,
    files: &Path,
    cold: &ColdConfig,
    tenant: &TenantId,
    job: &str,
    now: i64,
) -> Result<Verification, JobError> {
    let mut checks = Vec::new();
    let mut check = |store: String, what: &str, found: u64| {
        checks.push(Check {
            store,
            what: what.to_string(),
            found,
        })
    };
    for r in settings.regions() {
        let kafka = region_kafka(settings, &r.brokers);
        let topics = tenant_topics(&kafka, tenant)?;
        check(
            format!("{} broker {}", r.name, r.brokers),
            "topics of the tenant",
            topics.len() as u64,
        );
        let tables = tenant_tables(&r.clickhouse, tenant).await?;
        check(
            format!("{} ClickHouse {}", r.name, r.clickhouse.url),
            "tables of the tenant",
            tables.len() as u64,
        );
        let keys = tenant_keys(&r.redis, tenant).await?;
        let redis = format!("{} Redis {}", r.name, redact(r.redis.jobs_connection()));
        check(redis.clone(), "keys rf:<tenant>:*", keys);
        let (ch_user, redis_user) = crate::analyst::user_names(tenant);
        check(
            redis,
            "the analysts' ACL user",
            redis_user_exists(&r.redis, &redis_user).await?,
        );
        let file = !r.clickhouse.analyst_users_dir.is_empty()
            && std::path::Path::new(&r.clickhouse.analyst_users_dir)
                .join(format!("{ch_user}.xml"))
                .exists();
        check(
            format!("{} ClickHouse {}", r.name, r.clickhouse.url),
            "the analysts' users.d file",
            u64::from(file),
        );
        // The server itself, which may still hold a user whose file went.
        check(
            format!("{} ClickHouse {}", r.name, r.clickhouse.url),
            "the analysts' user (asked of the server)",
            u64::from(clickhouse_user_exists(&r.clickhouse, &ch_user).await?),
        );
        if let Some(store) = ColdStore::open(cold, &r.name, &files.join(".cold-staging"))? {
            check(
                format!("{} cold tier {}", r.name, store.location),
                "files under <tenant>/ (Parquet months and manifests)",
                store.objects(tenant).await?.len() as u64,
            );
        }
    }
    // The broker drops a group's offsets with the topic; asked, not assumed.
    check(
        format!(
            "broker {} group {}",
            settings.kafka.brokers, settings.kafka.group_id
        ),
        "committed offsets of the tenant's readings partitions",
        committed_offsets(&settings.kafka, tenant)?,
    );
    let client = rf_sinks::clickhouse::client(&settings.clickhouse);
    for table in [
        "tenant_keys",
        "tenants",
        "api_keys",
        "roles",
        "token_revocations",
        "benchmark_consent",
        "jobs",
    ] {
        // The erasure job's own row stays.
        let rows: u64 = client
            .query(&format!(
                "SELECT count() FROM rf_platform.{table} WHERE tenant = ? AND {} != ?",
                if table == "jobs" { "id" } else { "tenant" }
            ))
            .bind(tenant.as_str())
            .bind(job)
            .fetch_one()
            .await?;
        check(
            "home ClickHouse".into(),
            &format!("rf_platform.{table} rows"),
            rows,
        );
    }
    // One read of each compacted topic: the tenant's keys still live (in the registry
    // topic, its entry), and its earlier records, which a reader from the start still
    // sees until the broker compacts them away some time after their tombstones.
    let mut expiring = Vec::new();
    let tenants_topic = rf_schemas::tenant::TENANTS_TOPIC;
    for topic in COMPACTED.into_iter().chain([tenants_topic]) {
        let (mut latest, mut with_value) = (BTreeMap::new(), 0u64);
        scan(&settings.kafka, topic, |key, has_value| {
            let named = match topic {
                t if t == tenants_topic => key == tenant.as_str(),
                _ => names_tenant(topic, key, tenant, job),
            };
            if named {
                with_value += u64::from(has_value);
                latest.insert(key.to_owned(), has_value);
            }
        })?;
        let live = latest.values().filter(|l| **l).count() as u64;
        let what = match topic {
            t if t == tenants_topic => "the registry entry",
            _ => "live keys naming the tenant",
        };
        check(topic.into(), what, live);
        let sealed = if topic == tenants_topic {
            "; the webhook URLs and secrets in them are sealed under the tenant's data keys, \
             which are deleted, so they are unreadable now"
        } else {
            ""
        };
        expiring.push(Check {
            store: topic.to_string(),
            what: format!(
                "earlier records of the tenant, gone when the broker compacts the topic \
                 (after its tombstones, within the topic's segment.ms and \
                 min.cleanable.dirty.ratio){sealed}"
            ),
            found: with_value - live,
        });
    }
    let client = registry_client(settings);
    let subjects = tenant_subjects(tenant);
    let versions = tokio::task::spawn_blocking(move || {
        subjects
            .into_iter()
            .map(|s| client.versions(&s).map(|v| (s, v.len() as u64)))
            .collect::<Result<Vec<_>, _>>()
    })
    .await
    .map_err(|e| JobError::Invalid(format!("registry task failed: {e}")))??;
    for (subject, found) in versions {
        check(
            format!("schema registry {}", settings.registry.url),
            &format!("versions of subject {subject}"),
            found,
        );
    }
    check(
        format!("job files {}", files.display()),
        "folders of the tenant's jobs",
        job_dirs(files, tenant)?.len() as u64,
    );
    for (topic, retention) in EXPIRING {
        let mut found = 0;
        scan(&settings.kafka, topic, |key, _| {
            found += u64::from(names_tenant(topic, key, tenant, job));
        })?;
        expiring.push(Check {
            store: topic.to_string(),
            what: format!("records of the tenant, gone within {retention}"),
            found,
        });
    }
    let clean = checks.iter().all(|c| c.found == 0);
    Ok(Verification {
        tenant: tenant.to_string(),
        checked_ms: now,
        checks,
        expiring,
        kept: vec![format!(
            "the status of erasure job {job} (its id names the tenant): the record that it was erased"
        )],
        clean,
    })
}

/// Whether the server at `config` knows `user`: from `system.users` where the server has
/// SQL user management, else by logging in as `user` with a wrong password, which a
/// server of 18.16 answers with "unknown user" (192) only if it has no such user.
async fn clickhouse_user_exists(
    config: &rf_sinks::config::ClickHouseConfig,
    user: &str,
) -> Result<bool, JobError> {
    let listed = rf_sinks::clickhouse::client(config)
        .query("SELECT count() FROM system.users WHERE name = ?")
        .bind(user)
        .fetch_one::<u64>()
        .await;
    match listed {
        Ok(n) => return Ok(n > 0),
        // 18.16: no system.users (60), or not in the statement's grammar.
        Err(clickhouse::error::Error::BadResponse(m))
            if m.contains("Code: 60") || m.contains("Code: 62") => {}
        Err(e) => return Err(JobError::from(e)),
    }
    let probe = rf_sinks::config::ClickHouseConfig {
        user: user.to_owned(),
        password: rf_sinks::Secret::new("a-wrong-password-for-the-erasure-check"),
        ..config.clone()
    };
    match rf_sinks::clickhouse::client(&probe)
        .query("SELECT 1")
        .fetch_one::<u8>()
        .await
    {
        Err(clickhouse::error::Error::BadResponse(m)) if m.contains("Code: 192") => Ok(false),
        Err(clickhouse::error::Error::BadResponse(m))
            if m.contains("Code: 193") || m.contains("Code: 516") =>
        {
            Ok(true)
        }
        Ok(_) => Ok(true),
        Err(e) => Err(JobError::clickhouse(format!("checking for user {user}"), e)),
    }
}

/// A statement the server does not parse: it predates the statement (18.16 and SQL users).
fn is_syntax_error(e: &clickhouse::error::Error) -> bool {
    matches!(e, clickhouse::error::Error::BadResponse(m) if m.contains("Code: 62"))
}

async fn redis_user_exists(
    redis: &rf_sinks::config::RedisConfig,
    user: &str,
) -> Result<u64, JobError> {
    let (mut conn, rerr) = redis_conn(redis).await?;
    let users: Vec<String> = redis::cmd("ACL")
        .arg("USERS")
        .query_async(&mut conn)
        .await
        .map_err(rerr)?;
    Ok(u64::from(users.iter().any(|u| u == user)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_matched_to_exactly_one_tenant() {
        let acme = TenantId::parse("acme").unwrap();
        let job = "erase-acme-3";
        for (topic, key, mine) in [
            (
                "roomflow.alert-state",
                "group/acme/abc/capacity_breach/room/r1",
                true,
            ),
            ("roomflow.alert-state", "target/acme-eu/abc", false),
            ("roomflow.checkpoints", "pipeline/occupancy.acme/3", true),
            (
                "roomflow.checkpoints",
                "pipeline/occupancy.acme-eu/3",
                false,
            ),
            (
                crate::queue::STATUS_TOPIC,
                "report-acme-1767571200000",
                true,
            ),
            (crate::queue::STATUS_TOPIC, "cancel/report-acme-1", true),
            (crate::queue::STATUS_TOPIC, "report-acme-eu-1", false),
            (crate::queue::STATUS_TOPIC, job, false),
            (rf_sinks::webhook::outbox::TOPIC, "acme", true),
            (rf_sinks::webhook::outbox::TOPIC, "acme-eu", false),
        ] {
            assert_eq!(names_tenant(topic, key, &acme, job), mine, "{topic} {key}");
        }
    }
}
