//! Tenants: provisioning (topics, ClickHouse database, schemas) in the tenant's region, and
//! the tenant registry, a compacted topic (`roomflow.tenants`) mirrored into ClickHouse
//! (`rf_platform.tenants`).

use rf_pipelines::topics::TopicSpec;
use rf_schemas::unix_ms as now_ms;
pub(crate) use rf_sinks::endpoint::redact;
use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde::Serialize;

use rf_pipelines::secrets::Vault;
use rf_pipelines::{KafkaConfig, Region, Settings};
use rf_schemas::registry::RegistryClient;
use rf_schemas::tenant::{
    AlertKind, AlertRule, AlertTarget, DEFAULT_RETENTION_DAYS, TENANTS_TOPIC,
};
use rf_schemas::{TenantConfig, TenantId, Tier};
use rf_sinks::config::{ClickHouseConfig, RedisConfig};

use crate::analyst::{self, AnalystAccess};
use crate::schemas::{register_all, Registered};
use crate::JobError;

/// Partitions of a new tenant's readings topic: offices spread over them, and they bound
/// how many workers can share the tenant.
pub const READINGS_PARTITIONS: i32 = 12;

/// What to set on a tenant; `None` leaves a field as it is (or at its default on create).
#[derive(Clone, Debug, Default)]
pub struct TenantSpec {
    /// The name people see (default: the id).
    pub display_name: Option<String>,
    /// The customer's industry.
    pub industry: Option<String>,
    /// The service tier (default: standard).
    pub tier: Option<Tier>,
    /// The region (default: the home region); fixed once created.
    pub region: Option<String>,
    /// Retention of the tenant's rows, days (default 730).
    pub retention_days: Option<u32>,
    /// Where alerts go (replaces the list; a target listed again keeps its signing secret
    /// and is enabled again).
    pub alert_targets: Option<Vec<AlertTarget>>,
    /// What alerts are about (replaces the list).
    pub alert_rules: Option<Vec<AlertRule>>,
    /// Whether the tenant contributes to cross-tenant benchmarks (opting in again keeps
    /// the time it was first given).
    pub benchmarks: Option<bool>,
    /// The share of capacity above which rooms and offices are in breach (0.5 to 2).
    pub capacity_breach_at: Option<f64>,
}

/// What `create` made.
#[derive(Debug)]
pub struct Created {
    /// Topics created now (existing ones are left as they are).
    pub topics_created: Vec<String>,
    /// The ClickHouse database.
    pub database: String,
    /// The registered subjects.
    pub schemas: Vec<Registered>,
    /// The registry entry (an existing one is kept as it was).
    pub config: TenantConfig,
    /// The analysts' users (passwords only when made now).
    pub analyst: AnalystAccess,
}

/// Creates whatever of `tenant`'s resources is missing, in its region, and its registry
/// entry; running it twice is harmless. A deleted tenant cannot be created again until it
/// is erased.
pub async fn create(
    settings: &Settings,
    tenant: &TenantId,
    spec: &TenantSpec,
) -> Result<Created, JobError> {
    if let Some(why) = tenant.reserved() {
        return Err(JobError::Invalid(why));
    }
    let existing = match registry(&settings.kafka)?.remove(tenant) {
        Some(entry) => Some(open(settings, entry).await?),
        None => None,
    };
    if let Some(entry) = existing.as_ref().filter(|e| e.is_deleted()) {
        let at = chrono::DateTime::from_timestamp_millis(entry.deleted_ms.unwrap_or_default())
            .map_or_else(String::new, |t| {
                t.format(" on %Y-%m-%d %H:%M:%SZ").to_string()
            });
        return Err(JobError::Invalid(format!(
            "tenant {tenant} was deleted{at} and awaits erasure; it cannot be created again before"
        )));
    }
    let is_new = existing.is_none();
    let config = match existing {
        Some(entry) => entry,
        // Provisioned before the registry: its data is in the home region already.
        None if with_topics(&settings.kafka)?.contains(tenant) => {
            let mut config = defaults(settings, tenant);
            let home = config.region.clone();
            apply(&mut config, spec)?;
            if config.region != home {
                return Err(JobError::Invalid(format!(
                    "--region: tenant {tenant} has data in the home region {home} already; a region never changes"
                )));
            }
            config
        }
        None => {
            let mut config = defaults(settings, tenant);
            apply(&mut config, spec)?;
            config
        }
    };
    if spec.region.as_ref().is_some_and(|r| *r != config.region) {
        return Err(JobError::Invalid(format!(
            "tenant {tenant} exists in region {}; a region never changes",
            config.region
        )));
    }
    // The registry entry first and the topics last: a running pipeline picks a tenant up
    // when its readings topic appears, and by then knows its region and finds its database.
    let region = region_of(settings, &config)?;
    if is_new {
        put(settings, &config).await?;
    }
    let client = rf_sinks::clickhouse::client(&region.clickhouse);
    for statement in rf_schemas::tenant_ddl(tenant) {
        client.query(&statement).execute().await?;
    }

    let analyst = analyst::provision(&region.clickhouse, &region.redis, tenant).await?;

    let check = settings.registry.compatibility_check;
    let registry = RegistryClient::new(
        &settings.registry.url,
        Duration::from_secs(settings.registry.timeout_secs),
    );
    let owner = tenant.clone();
    let schemas = tokio::task::spawn_blocking(move || register_all(&registry, &[owner], check))
        .await
        .map_err(|e| JobError::Invalid(format!("registration task failed: {e}")))??;
    let region_kafka = KafkaConfig {
        brokers: region.brokers.clone(),
        ..settings.kafka.clone()
    };
    let topics_created = create_topics(&region_kafka, tenant).await?;
    Ok(Created {
        topics_created,
        database: tenant.clickhouse_db(),
        schemas,
        config,
        analyst,
    })
}

async fn create_topics(kafka: &KafkaConfig, tenant: &TenantId) -> Result<Vec<String>, JobError> {
    let (readings, rooms, bookings, deadletter) = (
        tenant.readings_topic(),
        tenant.rooms_topic(),
        tenant.bookings_topic(),
        tenant.deadletter_topic(),
    );
    let topics = [
        TopicSpec::new(&readings, READINGS_PARTITIONS),
        TopicSpec::compacted(&rooms),
        TopicSpec::compacted(&bookings),
        TopicSpec::new(&deadletter, 3),
    ];
    Ok(rf_pipelines::topics::create(kafka, &topics).await?)
}

/// The broker settings of `tenant`'s region: the home region's security, its own brokers.
pub async fn region_kafka(settings: &Settings, tenant: &TenantId) -> Result<KafkaConfig, JobError> {
    let config = opened(settings, tenant).await?;
    let region = region_of(settings, &config)?;
    Ok(KafkaConfig {
        brokers: region.brokers.clone(),
        ..settings.kafka.clone()
    })
}

/// Changes `tenant`'s registry entry; the region cannot change (its data would stay behind).
pub async fn update(
    settings: &Settings,
    tenant: &TenantId,
    spec: &TenantSpec,
) -> Result<TenantConfig, JobError> {
    let mut config = opened(settings, tenant).await?;
    if config.is_deleted() {
        return Err(JobError::Invalid(format!(
            "tenant {tenant} is deleted; it can no longer change"
        )));
    }
    if spec.region.as_ref().is_some_and(|r| *r != config.region) {
        return Err(JobError::Invalid(format!(
            "--region: tenant {tenant} lives in {}; a region never changes (its data would stay behind): erase the tenant and create it anew",
            config.region
        )));
    }
    apply(&mut config, spec)?;
    config.updated_ms = now_ms().max(config.updated_ms + 1);
    put(settings, &config).await?;
    Ok(config)
}

/// Marks `tenant` deleted: the pipeline no longer serves it from its next start, and the
/// erasure job removes its data after the grace period. Deleting twice keeps the first
/// time.
pub async fn delete(settings: &Settings, tenant: &TenantId) -> Result<TenantConfig, JobError> {
    let mut config = entry(settings, tenant)?;
    if !config.is_deleted() {
        let now = now_ms().max(config.updated_ms + 1);
        config.deleted_ms = Some(now);
        config.updated_ms = now;
        put(settings, &config).await?;
    }
    Ok(config)
}

/// Removes `tenant` from the registry and its mirror altogether (a tombstone): for tenants
/// whose data is gone.
pub async fn forget(settings: &Settings, tenant: &TenantId) -> Result<(), JobError> {
    send(&settings.kafka, tenant, None).await?;
    let client = rf_sinks::clickhouse::client(&settings.clickhouse);
    client
        .query("ALTER TABLE rf_platform.tenants DELETE WHERE tenant = ?")
        .bind(tenant.as_str())
        .execute()
        .await
        .map_err(JobError::from)
}

/// `tenant`'s registry entry; a tenant with topics but no entry (provisioned before the
/// registry) gets one, in the home region, the first time it is asked for.
pub fn entry(settings: &Settings, tenant: &TenantId) -> Result<TenantConfig, JobError> {
    if let Some(config) = registry(&settings.kafka)?.remove(tenant) {
        return Ok(config);
    }
    if with_topics(&settings.kafka)?.contains(tenant) {
        return Ok(defaults(settings, tenant));
    }
    Err(JobError::Invalid(format!(
        "no tenant {tenant}; create it with `roomflow tenant create {tenant}`"
    )))
}

/// `tenant`'s registry entry with its secrets opened (webhook URLs and signing secrets
/// are sealed in the registry topic).
pub async fn opened(settings: &Settings, tenant: &TenantId) -> Result<TenantConfig, JobError> {
    open(settings, entry(settings, tenant)?).await
}

async fn open(settings: &Settings, mut config: TenantConfig) -> Result<TenantConfig, JobError> {
    Vault::new(&settings.secrets, &settings.clickhouse)?
        .open(&mut config)
        .await?;
    Ok(config)
}

/// Platform key rotation: wraps every data key under the key file's first key, then
/// writes again, sealed, every registry entry that still holds plain-text secrets.
/// Returns how many keys and entries it changed.
pub async fn reseal(settings: &Settings) -> Result<(usize, usize), JobError> {
    let vault = Vault::new(&settings.secrets, &settings.clickhouse)?;
    let rewrapped = vault.rewrap().await?;
    let mut resealed = 0;
    for (_, config) in registry(&settings.kafka)? {
        let sealed = vault.seal(&config).await?;
        if sealed != config {
            let json = serde_json::to_vec(&sealed).expect("a tenant config serializes");
            let tenant = config.id().map_err(|e| JobError::Invalid(e.to_string()))?;
            send(&settings.kafka, &tenant, Some(&json)).await?;
            resealed += 1;
        }
    }
    Ok((rewrapped, resealed))
}

/// Every registry entry, deleted ones included, as stored: webhook URLs and signing
/// secrets sealed (see [`opened`]).
pub fn registry(kafka: &KafkaConfig) -> Result<BTreeMap<TenantId, TenantConfig>, JobError> {
    Ok(rf_pipelines::tenants::load(kafka)?)
}

/// Every tenant: the registry's entries, and tenants that only have topics (provisioned
/// before the registry), as `(id, entry if any)`.
pub fn list(kafka: &KafkaConfig) -> Result<Vec<(TenantId, Option<TenantConfig>)>, JobError> {
    let mut all: BTreeMap<TenantId, Option<TenantConfig>> = registry(kafka)?
        .into_iter()
        .map(|(t, c)| (t, Some(c)))
        .collect();
    for tenant in with_topics(kafka)? {
        all.entry(tenant).or_insert(None);
    }
    Ok(all.into_iter().collect())
}

/// Every tenant with a readings topic on the broker.
pub fn with_topics(kafka: &KafkaConfig) -> Result<Vec<TenantId>, JobError> {
    let consumer: BaseConsumer = kafka.client_config().create()?;
    let metadata = consumer
        .fetch_metadata(None, Duration::from_secs(kafka.timeout_secs))
        .map_err(|e| JobError::kafka(format!("cannot list topics at {}", kafka.brokers), e))?;
    let mut tenants: Vec<TenantId> = metadata
        .topics()
        .iter()
        .filter_map(|t| t.name().strip_prefix(rf_schemas::tenant::READINGS_PREFIX))
        .filter_map(|t| TenantId::parse(t).ok())
        .collect();
    tenants.sort();
    Ok(tenants)
}

/// A new entry: named by its id, standard tier, the home region, default retention.
fn defaults(settings: &Settings, tenant: &TenantId) -> TenantConfig {
    let now = now_ms();
    TenantConfig {
        tenant: tenant.to_string(),
        display_name: tenant.to_string(),
        industry: String::new(),
        tier: Tier::Standard,
        region: settings.regions.home.clone(),
        retention_days: DEFAULT_RETENTION_DAYS,
        alert_targets: Vec::new(),
        alert_rules: AlertRule::defaults(),
        created_ms: now,
        updated_ms: now,
        deleted_ms: None,
        benchmarks_opt_in_ms: None,
        capacity_breach_at: None,
    }
}

fn apply(config: &mut TenantConfig, spec: &TenantSpec) -> Result<(), JobError> {
    if let Some(name) = &spec.display_name {
        if name.trim().is_empty() || name.len() > 200 {
            return Err(JobError::Invalid(
                "--name: must be 1 to 200 characters".into(),
            ));
        }
        config.display_name = name.trim().to_owned();
    }
    if let Some(industry) = &spec.industry {
        config.industry = industry.trim().to_owned();
    }
    if let Some(at) = spec.capacity_breach_at {
        if !(0.5..=2.0).contains(&at) {
            return Err(JobError::Invalid(
                "--breach-at: must be a share of capacity between 0.5 and 2".into(),
            ));
        }
        config.capacity_breach_at = (at != 1.0).then_some(at);
    }
    match spec.benchmarks {
        Some(true) => {
            config.benchmarks_opt_in_ms.get_or_insert_with(now_ms);
        }
        Some(false) => config.benchmarks_opt_in_ms = None,
        None => {}
    }
    if let Some(tier) = spec.tier {
        config.tier = tier;
    }
    if let Some(region) = &spec.region {
        config.region = region.clone();
    }
    if let Some(days) = spec.retention_days {
        if !(1..=36_500).contains(&days) {
            return Err(JobError::Invalid(
                "--retention-days: must be between 1 and 36500".into(),
            ));
        }
        config.retention_days = days;
    }
    if let Some(targets) = &spec.alert_targets {
        let mut seen = std::collections::HashSet::new();
        let mut new = Vec::with_capacity(targets.len());
        for t in targets {
            if !seen.insert(&t.url) {
                return Err(JobError::Invalid(format!(
                    "--alert: {} is listed twice",
                    t.masked_url()
                )));
            }
            let old = config.alert_targets.iter().find(|o| o.url == t.url);
            let mut t = t.clone();
            t.disabled = None;
            if t.kind == AlertKind::Webhook {
                t.secret = old
                    .and_then(|o| o.secret.clone())
                    .or_else(|| Some(signing_secret()));
            }
            new.push(t);
        }
        config.alert_targets = new;
    }
    if let Some(rules) = &spec.alert_rules {
        config.alert_rules = rules.clone();
    }
    Ok(())
}

/// A new webhook signing secret: 32 random bytes, hex.
fn signing_secret() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn region_of(settings: &Settings, config: &TenantConfig) -> Result<Region, JobError> {
    settings.region(&config.region).ok_or_else(|| {
        let known: Vec<String> = settings.regions().into_iter().map(|r| r.name).collect();
        JobError::Invalid(format!(
            "--region: {:?} is not a configured region ({})",
            config.region,
            known.join(", ")
        ))
    })
}

/// Writes `config` to the registry topic, its secrets sealed, then to its ClickHouse
/// mirror.
async fn put(settings: &Settings, config: &TenantConfig) -> Result<(), JobError> {
    let tenant = config.id().map_err(|e| JobError::Invalid(e.to_string()))?;
    let sealed = Vault::new(&settings.secrets, &settings.clickhouse)?
        .seal(config)
        .await?;
    let json = serde_json::to_vec(&sealed).expect("a tenant config serializes");
    send(&settings.kafka, &tenant, Some(&json)).await?;
    mirror(&settings.clickhouse, config).await
}

async fn send(
    kafka: &KafkaConfig,
    tenant: &TenantId,
    value: Option<&[u8]>,
) -> Result<(), JobError> {
    rf_pipelines::topics::create(kafka, &[TopicSpec::compacted(TENANTS_TOPIC)]).await?;
    let producer: FutureProducer = kafka
        .client_config()
        .set("enable.idempotence", "true")
        .create()?;
    let key = tenant.as_str();
    let mut record = FutureRecord::<str, [u8]>::to(TENANTS_TOPIC).key(key);
    if let Some(value) = value {
        record = record.payload(value);
    }
    producer
        .send(record, Duration::from_secs(kafka.timeout_secs))
        .await
        .map_err(|(e, _)| JobError::kafka(format!("cannot write to {TENANTS_TOPIC}"), e))?;
    Ok(())
}

#[derive(clickhouse::Row, Serialize)]
struct TenantRow<'a> {
    tenant: &'a str,
    display_name: &'a str,
    industry: &'a str,
    tier: &'a str,
    region: &'a str,
    retention_days: u32,
    alert_targets: u32,
    created_at: u32,
    updated_at: u32,
    deleted: u8,
    deleted_at: u32,
    version: u64,
}

/// Mirrors one registry entry into `rf_platform.tenants` (creating the table if needed).
pub async fn mirror(clickhouse: &ClickHouseConfig, config: &TenantConfig) -> Result<(), JobError> {
    let client = crate::platform(clickhouse).await?;
    let ch = |e: clickhouse::error::Error| JobError::from(e);
    let secs = |ms: i64| (ms / 1000).clamp(0, u32::MAX as i64) as u32;
    let mut insert = client
        .clone()
        .with_database("rf_platform")
        .insert::<TenantRow>("tenants")
        .await
        .map_err(ch)?;
    insert
        .write(&TenantRow {
            tenant: &config.tenant,
            display_name: &config.display_name,
            industry: &config.industry,
            tier: config.tier.as_str(),
            region: &config.region,
            retention_days: config.retention_days,
            alert_targets: config.alert_targets.len() as u32,
            created_at: secs(config.created_ms),
            updated_at: secs(config.updated_ms),
            deleted: u8::from(config.is_deleted()),
            deleted_at: config.deleted_ms.map_or(0, secs),
            version: config.updated_ms.max(0) as u64,
        })
        .await
        .map_err(ch)?;
    insert.end().await.map_err(ch)?;
    client
        .query(
            "INSERT INTO rf_platform.benchmark_consent (tenant, opted_in, opted_in_at, version) \
             VALUES (?, ?, toDateTime(?), ?)",
        )
        .bind(&config.tenant)
        .bind(u8::from(config.benchmarks_opt_in_ms.is_some()))
        .bind(config.benchmarks_opt_in_ms.map_or(0, secs))
        .bind(config.updated_ms.max(0) as u64)
        .execute()
        .await
        .map_err(ch)
}

/// Where a tenant's data lives, store by store, over every configured region.
#[derive(Debug, Serialize)]
pub struct Residency {
    /// The tenant.
    pub tenant: String,
    /// Its region.
    pub region: String,
    /// What each region holds of it.
    pub regions: Vec<RegionHoldings>,
    /// Data found outside the tenant's region; empty when residency holds.
    pub violations: Vec<String>,
}

/// What one region holds of a tenant.
#[derive(Debug, Serialize)]
pub struct RegionHoldings {
    /// The region.
    pub region: String,
    /// Whether it is the tenant's.
    pub home_of_tenant: bool,
    /// The region's brokers and the tenant's topics there with their message counts.
    pub brokers: String,
    /// Topic → messages (high - low watermark, summed over partitions).
    pub topics: BTreeMap<String, i64>,
    /// The region's ClickHouse and the tenant's tables there with their row counts.
    pub clickhouse: String,
    /// `database.table` → rows.
    pub tables: BTreeMap<String, u64>,
    /// The region's Redis and how many `rf:<tenant>:` keys it holds.
    pub redis: String,
    /// Keys of the tenant there.
    pub redis_keys: u64,
}

/// Looks in every configured region's broker, ClickHouse and Redis for `tenant`'s data.
pub async fn residency_report(
    settings: &Settings,
    tenant: &TenantId,
) -> Result<Residency, JobError> {
    let config = entry(settings, tenant)?;
    let mut regions = Vec::new();
    let mut violations = Vec::new();
    let home_brokers = region_of(settings, &config)?.brokers;
    for region in settings.regions() {
        let home_of_tenant = region.name == config.region;
        let kafka = KafkaConfig {
            brokers: region.brokers.clone(),
            ..settings.kafka.clone()
        };
        let topics = tenant_topics(&kafka, tenant)?;
        let tables = tenant_tables(&region.clickhouse, tenant).await?;
        let redis_keys = tenant_keys(&region.redis, tenant).await?;
        if !home_of_tenant {
            if region.brokers != home_brokers && !topics.is_empty() {
                violations.push(format!(
                    "{}: topics {:?} on {}",
                    region.name,
                    topics.keys(),
                    region.brokers
                ));
            }
            if !tables.is_empty() {
                violations.push(format!(
                    "{}: tables {:?} in ClickHouse {}",
                    region.name,
                    tables.keys(),
                    region.clickhouse.url
                ));
            }
            if redis_keys > 0 {
                violations.push(format!(
                    "{}: {redis_keys} Redis keys in {}",
                    region.name,
                    redact(&region.redis.url)
                ));
            }
        }
        regions.push(RegionHoldings {
            region: region.name,
            home_of_tenant,
            brokers: region.brokers,
            topics,
            clickhouse: region.clickhouse.url,
            tables,
            redis: redact(&region.redis.url),
            redis_keys,
        });
    }
    Ok(Residency {
        tenant: tenant.to_string(),
        region: config.region,
        regions,
        violations,
    })
}

pub(crate) fn tenant_topics(
    kafka: &KafkaConfig,
    tenant: &TenantId,
) -> Result<BTreeMap<String, i64>, JobError> {
    let consumer: BaseConsumer = kafka.client_config().create()?;
    let timeout = Duration::from_secs(kafka.timeout_secs);
    let metadata = consumer
        .fetch_metadata(None, timeout)
        .map_err(|e| JobError::kafka(format!("cannot list topics at {}", kafka.brokers), e))?;
    let names = [
        tenant.readings_topic(),
        tenant.rooms_topic(),
        tenant.bookings_topic(),
        tenant.deadletter_topic(),
    ];
    let mut topics = BTreeMap::new();
    for t in metadata
        .topics()
        .iter()
        .filter(|t| names.iter().any(|n| n == t.name()))
    {
        let mut messages = 0;
        for p in t.partitions() {
            let (low, high) = consumer
                .fetch_watermarks(t.name(), p.id(), timeout)
                .map_err(|e| JobError::kafka(format!("cannot read {}", t.name()), e))?;
            messages += high - low;
        }
        topics.insert(t.name().to_owned(), messages);
    }
    Ok(topics)
}

pub(crate) async fn tenant_tables(
    clickhouse: &ClickHouseConfig,
    tenant: &TenantId,
) -> Result<BTreeMap<String, u64>, JobError> {
    let client = rf_sinks::clickhouse::client(clickhouse);
    let ch = |e: clickhouse::error::Error| JobError::clickhouse(clickhouse.url.clone(), e);
    let db = tenant.clickhouse_db();
    let names: Vec<String> = client
        .query("SELECT name FROM system.tables WHERE database = ? ORDER BY name")
        .bind(&db)
        .fetch_all()
        .await
        .map_err(ch)?;
    let mut tables = BTreeMap::new();
    for name in names {
        let rows: u64 = client
            .query(&format!("SELECT count() FROM {db}.{name}"))
            .fetch_one()
            .await
            .map_err(ch)?;
        tables.insert(format!("{db}.{name}"), rows);
    }
    // The platform's tables name tenants too, but hold no sensor data: not counted here.
    Ok(tables)
}

pub(crate) async fn tenant_keys(redis: &RedisConfig, tenant: &TenantId) -> Result<u64, JobError> {
    let (mut conn, rerr) = redis_conn(redis).await?;
    let keys = rf_sinks::redis::tenant_keys(&mut conn, tenant)
        .await
        .map_err(rerr)?;
    Ok(keys.len() as u64)
}

/// A connection to `redis` as the jobs' user, and how to report its errors (URL
/// redacted).
pub(crate) async fn redis_conn(
    redis: &RedisConfig,
) -> Result<
    (
        redis::aio::MultiplexedConnection,
        impl Fn(redis::RedisError) -> JobError + '_,
    ),
    JobError,
> {
    let url = redis.jobs_connection();
    let rerr = move |e: redis::RedisError| JobError::Invalid(format!("redis {}: {e}", redact(url)));
    let client = redis::Client::open(url).map_err(rerr)?;
    let conn = client
        .get_multiplexed_async_connection()
        .await
        .map_err(rerr)?;
    Ok((conn, rerr))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_are_checked_and_applied() {
        let mut c = TenantConfig {
            tenant: "acme".into(),
            display_name: "acme".into(),
            industry: String::new(),
            tier: Tier::Standard,
            region: "default".into(),
            retention_days: DEFAULT_RETENTION_DAYS,
            alert_targets: Vec::new(),
            alert_rules: AlertRule::defaults(),
            created_ms: 0,
            updated_ms: 0,
            deleted_ms: None,
            benchmarks_opt_in_ms: None,
            capacity_breach_at: None,
        };
        let spec = TenantSpec {
            display_name: Some(" Acme Corp ".into()),
            tier: Some(Tier::Enterprise),
            retention_days: Some(90),
            ..Default::default()
        };
        apply(&mut c, &spec).unwrap();
        assert_eq!(
            (c.display_name.as_str(), c.tier, c.retention_days),
            ("Acme Corp", Tier::Enterprise, 90)
        );
        let bad = TenantSpec {
            retention_days: Some(0),
            ..Default::default()
        };
        assert!(apply(&mut c, &bad)
            .unwrap_err()
            .to_string()
            .starts_with("--retention-days"));
        let bad = TenantSpec {
            display_name: Some("  ".into()),
            ..Default::default()
        };
        assert!(apply(&mut c, &bad)
            .unwrap_err()
            .to_string()
            .starts_with("--name"));
    }

    #[test]
    fn webhooks_get_a_secret_that_stays_and_listing_a_target_again_enables_it() {
        let mut c = defaults(&Settings::default(), &TenantId::parse("acme").unwrap());
        let hook: AlertTarget = "webhook=https://hooks.example.com/in".parse().unwrap();
        let slack: AlertTarget = "slack=https://hooks.slack.com/services/x".parse().unwrap();
        let spec = TenantSpec {
            alert_targets: Some(vec![hook.clone(), slack.clone()]),
            ..Default::default()
        };
        apply(&mut c, &spec).unwrap();
        let secret = c.alert_targets[0]
            .secret
            .clone()
            .expect("a webhook is signed");
        assert_eq!(secret.len(), 64);
        assert_eq!(c.alert_targets[1].secret, None, "Slack's URL is its secret");
        c.alert_targets[0].disabled = Some(rf_schemas::alerts::Disabled {
            at_ms: 1,
            reason: "HTTP 500".into(),
        });
        apply(&mut c, &spec).unwrap();
        assert_eq!(c.alert_targets[0].secret.as_deref(), Some(secret.as_str()));
        assert_eq!(c.alert_targets[0].disabled, None);
        let twice = TenantSpec {
            alert_targets: Some(vec![hook.clone(), hook]),
            ..Default::default()
        };
        assert!(apply(&mut c, &twice)
            .unwrap_err()
            .to_string()
            .contains("listed twice"));
    }
}
