//! Tenant administration: `roomflow tenant …`.

use anyhow::Context;
use clap::{Args, Subcommand};
use rf_pipelines::Settings;
use rf_schemas::tenant::{AlertRule, AlertTarget};
use rf_schemas::{TenantId, Tier};

use crate::config::Config;
use crate::{format_ms, runtime};

#[derive(Subcommand)]
pub(crate) enum TenantCommand {
    /// Create tenants in their region: topics (readings with 12 partitions, compacted
    /// rooms, dead letters) on the region's broker, the ClickHouse database and tables in
    /// the region's ClickHouse, the schemas, and the entry in the tenant registry
    /// (roomflow.tenants, mirrored to rf_platform.tenants). A running pipeline serving the
    /// region picks the tenant up within pipeline.discover_secs. Idempotent: what exists
    /// is kept, an existing entry too (change it with `update`).
    Create {
        /// Tenant ids (`^[a-z][a-z0-9-]{1,39}$`).
        #[arg(required = true)]
        tenants: Vec<TenantId>,
        #[command(flatten)]
        fields: TenantFields,
        /// Also create each tenant's producer principal on a broker with SASL/SCRAM and an
        /// authorizer: the user `<tenant>-producer` (kafka.security.mechanism if SCRAM,
        /// else SCRAM-SHA-512), its password printed once, allowed only to write the
        /// tenant's readings and rooms topics. Refused, and nothing created, where the
        /// broker has no authorizer. roomflow's own principal needs ALTER on the cluster.
        #[arg(long)]
        producer_principal: bool,
    },
    /// A tenant's producer principal: give it a new password, or delete it.
    #[command(subcommand)]
    ProducerPrincipal(PrincipalCommand),
    /// List every tenant: id, name, tier, region and status.
    List,
    /// Show a tenant's entry (alert URLs masked) and where its resources are.
    Describe {
        /// The tenant.
        tenant: TenantId,
        /// Print the registry entry as JSON instead.
        #[arg(long)]
        json: bool,
    },
    /// Change a tenant's entry; the region never changes.
    Update {
        /// The tenant.
        tenant: TenantId,
        #[command(flatten)]
        fields: TenantFields,
        /// Remove every alert target.
        #[arg(long, conflicts_with = "alerts")]
        clear_alerts: bool,
    },
    /// Mark a tenant deleted: pipelines stop serving it from their next start, and its
    /// data is erased after the grace period.
    Delete {
        /// The tenant.
        tenant: TenantId,
    },
    /// API keys for integrations (`X-Api-Key`): kept as SHA-256 hashes only.
    #[command(subcommand)]
    Apikey(ApikeyCommand),
    /// Where the tenant's data lives: its topics, ClickHouse tables and Redis keys in
    /// every configured region, as JSON. Exits with 1 if any is outside its region.
    ResidencyReport {
        /// The tenant.
        tenant: TenantId,
    },
    /// Send a test message to each of the tenant's alert targets (disabled ones too) and
    /// show what each answered. Exits with 1 if any did not acknowledge.
    TestAlerts {
        /// The tenant.
        tenant: TenantId,
    },
}

#[derive(Subcommand)]
pub(crate) enum PrincipalCommand {
    /// Give `<tenant>-producer` a new password, printed once; the old one stops working
    /// for new connections (change the sensors' and gateways' settings first).
    Rotate {
        /// The tenant.
        tenant: TenantId,
    },
    /// Delete `<tenant>-producer`'s credential: its producers can no longer connect.
    Delete {
        /// The tenant.
        tenant: TenantId,
    },
}

#[derive(Subcommand)]
pub(crate) enum ApikeyCommand {
    /// Create a key and print it, once: only its hash is kept.
    Create {
        /// The tenant the key reads.
        tenant: TenantId,
        /// What the key is for.
        #[arg(long)]
        name: String,
        /// What the key may do: viewer (reads), analyst (also rankings, under-used rooms,
        /// exports), admin (also manages the tenant) or ingest (only sends readings to
        /// POST /v1/ingest: a sensor gateway's key).
        #[arg(long, default_value = "analyst")]
        role: rf_schemas::tenant::Role,
        /// An ingest key's site: the only office it sends readings of (repeatable; a
        /// reading of another office is refused as office_mismatch) [default: any].
        #[arg(long = "office")]
        offices: Vec<String>,
    },
    /// List a tenant's keys (ids and names, never the keys).
    List {
        /// The tenant.
        tenant: TenantId,
    },
    /// Revoke a key: query services refuse it within service.directory_refresh_secs.
    Revoke {
        /// The tenant.
        tenant: TenantId,
        /// The key's id, as `list` shows it.
        key_id: String,
    },
}

/// A tenant's settings, for `create` and `update`.
#[derive(Args)]
pub(crate) struct TenantFields {
    /// The name people see (created with the id).
    #[arg(long = "name")]
    display_name: Option<String>,
    /// The customer's industry.
    #[arg(long)]
    industry: Option<String>,
    /// free, standard or enterprise (created standard); rate limits follow it.
    #[arg(long)]
    tier: Option<Tier>,
    /// Where the tenant's data lives (created in regions.home); fixed once created.
    #[arg(long)]
    region: Option<String>,
    /// How long the tenant's rows are kept (created with 730).
    #[arg(long, value_name = "DAYS")]
    retention_days: Option<u32>,
    /// An alert destination, KIND=URL with KIND slack, teams or webhook; repeatable;
    /// replaces the list. A webhook gets a signing secret, printed here.
    #[arg(long = "alert", value_name = "KIND=URL")]
    alerts: Vec<AlertTarget>,
    /// What alerts are about; repeatable; replaces the list (created with
    /// capacity_breach, sensor_fault, unusual_occupancy>=high and weekly_digest).
    /// RULE[>=SEVERITY][/COOLDOWN_MINUTES] with RULE capacity_breach, sensor_fault,
    /// unusual_occupancy or any_anomaly, or weekly_digest[:BELOW-ABOVE] (fractions of
    /// capacity: weekly utilization under BELOW, peak over ABOVE).
    #[arg(long = "alert-rule", value_name = "RULE")]
    alert_rules: Vec<AlertRule>,
    /// Contribute to cross-tenant benchmarks (on), or stop (off): the next computation
    /// leaves the tenant out. Only tenants that contribute see the benchmarks; the
    /// registry keeps when consent was given.
    #[arg(long, value_name = "on|off", value_parser = on_off)]
    benchmarks: Option<bool>,
    /// Capacity breaches (anomalies and alerts) from this share of capacity, 0.5 to 2:
    /// 0.8 flags rooms and offices over 80% of their seats (default 1: over capacity).
    #[arg(long = "breach-at", value_name = "SHARE")]
    capacity_breach_at: Option<f64>,
}

fn on_off(v: &str) -> Result<bool, String> {
    match v {
        "on" => Ok(true),
        "off" => Ok(false),
        _ => Err(format!("{v:?}: expected on or off")),
    }
}

impl TenantFields {
    fn spec(self, clear_alerts: bool) -> rf_jobs::tenant::TenantSpec {
        rf_jobs::tenant::TenantSpec {
            display_name: self.display_name,
            industry: self.industry,
            tier: self.tier,
            region: self.region,
            retention_days: self.retention_days,
            alert_targets: (clear_alerts || !self.alerts.is_empty()).then_some(self.alerts),
            alert_rules: (!self.alert_rules.is_empty()).then_some(self.alert_rules),
            benchmarks: self.benchmarks,
            capacity_breach_at: self.capacity_breach_at,
        }
    }
}

pub(crate) fn tenant_command(config: &Config, command: TenantCommand) -> anyhow::Result<()> {
    use rf_jobs::principal::{self, Removed, Scram};
    use rf_jobs::tenant;
    let settings = config.settings();
    match command {
        TenantCommand::Create {
            tenants,
            fields,
            producer_principal,
        } => runtime()?.block_on(async {
            let spec = fields.spec(false);
            for id in &tenants {
                let created = tenant::create(&settings, id, &spec)
                    .await
                    .with_context(|| format!("creating tenant {id}"))?;
                let subjects: Vec<String> = created
                    .schemas
                    .iter()
                    .map(|r| format!("{} (id {})", r.subject, r.id))
                    .collect();
                println!(
                    "tenant {id} in region {}: topics created {:?}, database {}, schemas {}",
                    created.config.region,
                    created.topics_created,
                    created.database,
                    subjects.join(", ")
                );
                let a = &created.analyst;
                // Shown this once: only hashes are kept.
                if let Some(password) = &a.clickhouse_password {
                    println!("  ClickHouse analyst user {} password {password} (read-only, {} only)", a.clickhouse_user, created.database);
                }
                if let Some(why) = &a.clickhouse_missing {
                    eprintln!("  no ClickHouse analyst user: {why}");
                }
                if let Some(password) = &a.redis_password {
                    println!("  Redis analyst user {} password {password} (reads {}* only)", a.redis_user, id.redis_prefix());
                }
                print_secrets(&spec, &created.config);
                if producer_principal {
                    let kafka = tenant::region_kafka(&settings, id).await?;
                    let p = principal::create(&kafka, id, Scram::of(&kafka))
                        .await
                        .with_context(|| format!("--producer-principal of tenant {id}"))?;
                    match &p.password {
                        Some(password) => println!("  producer principal {} ({}) password {password} (shown once)", p.user, p.mechanism.name()),
                        None => println!("  producer principal {} ({}) exists; its password is unchanged (`roomflow tenant producer-principal rotate {id}` gives a new one)", p.user, p.mechanism.name()),
                    }
                    for acl in &p.acls {
                        println!("    {acl}");
                    }
                }
            }
            Ok(())
        }),
        TenantCommand::ProducerPrincipal(command) => runtime()?.block_on(async {
            match command {
                PrincipalCommand::Rotate { tenant: id } => {
                    let kafka = tenant::region_kafka(&settings, &id).await?;
                    let mechanism = Scram::of(&kafka);
                    let password = principal::rotate(&kafka, &id, mechanism).await?;
                    let user = principal::producer_user(&id);
                    println!("producer principal {user} ({}) password {password} (shown once)", mechanism.name());
                }
                PrincipalCommand::Delete { tenant: id } => {
                    let kafka = tenant::region_kafka(&settings, &id).await?;
                    let user = principal::producer_user(&id);
                    match principal::remove(&kafka, &id).await? {
                        Removed::Deleted => println!("producer principal {user} deleted; its ACLs remain and allow nothing without it"),
                        Removed::Absent => println!("producer principal {user} has no credential: nothing to delete"),
                        Removed::Unsupported(why) => println!("the broker keeps no SCRAM credentials ({why}): nothing to delete"),
                    }
                }
            }
            Ok(())
        }),
        TenantCommand::List => {
            println!("{:<40} {:<28} {:<10} {:<10} status", "tenant", "name", "tier", "region");
            for (id, entry) in tenant::list(&config.kafka)? {
                match entry {
                    Some(c) => println!(
                        "{:<40} {:<28} {:<10} {:<10} {}",
                        id.as_str(),
                        c.display_name,
                        c.tier.as_str(),
                        c.region,
                        if c.is_deleted() { "deleted" } else { "active" }
                    ),
                    None => println!(
                        "{:<40} {:<28} {:<10} {:<10} active (no registry entry)",
                        id.as_str(),
                        "-", "standard", config.regions.home
                    ),
                }
            }
            Ok(())
        }
        TenantCommand::Describe { tenant, json } => {
            let mut entry = runtime()?.block_on(tenant::opened(&settings, &tenant))?;
            for target in &mut entry.alert_targets {
                target.url = target.masked_url();
                if target.secret.is_some() {
                    target.secret = Some("***".into());
                }
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&entry)?);
            } else {
                print!("{}", render_tenant(&settings, &tenant, &entry));
            }
            Ok(())
        }
        TenantCommand::Update {
            tenant,
            fields,
            clear_alerts,
        } => runtime()?.block_on(async {
            let spec = fields.spec(clear_alerts);
            let entry = tenant::update(&settings, &tenant, &spec).await?;
            print!("{}", render_tenant(&settings, &tenant, &entry));
            print_secrets(&spec, &entry);
            Ok(())
        }),
        TenantCommand::Delete { tenant } => runtime()?.block_on(async {
            let entry = tenant::delete(&settings, &tenant).await?;
            println!(
                "tenant {tenant} deleted at {}; pipelines stop serving it at their next start, and its data is erased after the grace period",
                format_ms(entry.deleted_ms.unwrap_or_default())
            );
            Ok(())
        }),
        TenantCommand::Apikey(command) => runtime()?.block_on(async {
            use rf_jobs::apikey;
            let entry = tenant::entry(&settings, match &command {
                ApikeyCommand::Create { tenant, .. }
                | ApikeyCommand::List { tenant }
                | ApikeyCommand::Revoke { tenant, .. } => tenant,
            })?;
            if entry.is_deleted() {
                anyhow::bail!("tenant {} is deleted", entry.tenant);
            }
            match command {
                ApikeyCommand::Create { tenant, name, role, offices } => {
                    let (key, listed) =
                        apikey::create_for_sites(&config.clickhouse, &tenant, &name, role, &offices).await?;
                    println!("{key}");
                    eprintln!(
                        "API key {} ({}, {role}) for tenant {tenant}: shown this once; only its hash is kept",
                        listed.key_id, listed.name
                    );
                }
                ApikeyCommand::List { tenant } => {
                    println!("{:<14} {:<20} {:<22} {:<8} status", "key id", "created", "name", "role");
                    for k in apikey::list(&config.clickhouse, &tenant).await? {
                        let status = if k.revoked == 1 {
                            format!("revoked {}", format_ms(i64::from(k.revoked_at) * 1000))
                        } else if k.offices.is_empty() {
                            "active".into()
                        } else {
                            format!("active, offices {}", k.offices.join(","))
                        };
                        println!(
                            "{:<14} {:<20} {:<22} {:<8} {status}",
                            k.key_id,
                            format_ms(i64::from(k.created_at) * 1000),
                            k.name,
                            k.role
                        );
                    }
                }
                ApikeyCommand::Revoke { tenant, key_id } => {
                    let k = apikey::revoke(&config.clickhouse, &tenant, &key_id).await?;
                    println!(
                        "API key {} of tenant {tenant} revoked at {}",
                        k.key_id,
                        format_ms(i64::from(k.revoked_at) * 1000)
                    );
                }
            }
            Ok(())
        }),
        TenantCommand::TestAlerts { tenant } => {
            use rf_sinks::webhook::{Alert, Outcome, Target};
            let entry = runtime()?.block_on(tenant::opened(&settings, &tenant))?;
            if entry.alert_targets.is_empty() {
                anyhow::bail!("tenant {tenant} has no alert targets: add some with tenant update --alert");
            }
            let delivery = config.alerts.delivery()?;
            let alert = Alert::test(&tenant, &config.alerts.service_url);
            let now = chrono::Utc::now().timestamp();
            let mut failed = 0;
            for t in &entry.alert_targets {
                let target = Target {
                    kind: t.kind,
                    url: rf_sinks::Secret::new(t.url.clone()),
                    secret: rf_sinks::Secret::new(t.secret.clone().unwrap_or_default()),
                };
                let outcome = match delivery.send(&target, &alert, now) {
                    Outcome::Delivered => "delivered".to_string(),
                    Outcome::Retry { reason, .. } => format!("failed, would be retried: {reason}"),
                    Outcome::Rejected { reason } => format!("refused: {reason}"),
                };
                failed += usize::from(!outcome.starts_with("delivered"));
                let disabled = if t.disabled.is_some() { " (disabled)" } else { "" };
                println!("{} {}{disabled}: {outcome}", t.kind.label(), t.masked_url());
            }
            if failed > 0 {
                anyhow::bail!("{failed} of {} alert targets did not acknowledge", entry.alert_targets.len());
            }
            Ok(())
        }
        TenantCommand::ResidencyReport { tenant } => runtime()?.block_on(async {
            let report = tenant::residency_report(&settings, &tenant).await?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            if !report.violations.is_empty() {
                anyhow::bail!(
                    "tenant {tenant}'s data was found outside region {}: {}",
                    report.region,
                    report.violations.join("; ")
                );
            }
            Ok(())
        }),
    }
}

pub(crate) fn render_tenant(
    settings: &Settings,
    tenant: &TenantId,
    c: &rf_schemas::TenantConfig,
) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let region = settings.region(&c.region);
    let _ = writeln!(s, "tenant      {tenant}");
    let _ = writeln!(s, "name        {}", c.display_name);
    let _ = writeln!(
        s,
        "industry    {}",
        if c.industry.is_empty() {
            "-"
        } else {
            &c.industry
        }
    );
    let _ = writeln!(s, "tier        {}", c.tier.as_str());
    match &region {
        Some(r) => {
            let _ = writeln!(
                s,
                "region      {} (brokers {}, ClickHouse {})",
                c.region, r.brokers, r.clickhouse.url
            );
        }
        None => {
            let _ = writeln!(s, "region      {} (not configured here)", c.region);
        }
    }
    let _ = writeln!(s, "retention   {} days", c.retention_days);
    if c.alert_targets.is_empty() {
        let _ = writeln!(s, "alerts      -");
    }
    for t in &c.alert_targets {
        let signed = if t.secret.is_some() { ", signed" } else { "" };
        let state = match &t.disabled {
            Some(d) => format!(
                " DISABLED since {} ({}); add it again once it works",
                format_ms(d.at_ms),
                d.reason
            ),
            None => String::new(),
        };
        let _ = writeln!(
            s,
            "alerts      {} {} (id {}{signed}){state}",
            t.kind.label(),
            t.masked_url(),
            t.id()
        );
    }
    let rules: Vec<String> = c.alert_rules.iter().map(ToString::to_string).collect();
    let _ = writeln!(
        s,
        "alert rules {}",
        if rules.is_empty() {
            "-".into()
        } else {
            rules.join(", ")
        }
    );
    let _ = writeln!(s, "created     {}", format_ms(c.created_ms));
    let _ = writeln!(s, "updated     {}", format_ms(c.updated_ms));
    if let Some(at) = c.deleted_ms {
        let _ = writeln!(s, "deleted     {}", format_ms(at));
    }
    let _ = writeln!(
        s,
        "topics      {}, {}, {}, {}",
        tenant.readings_topic(),
        tenant.rooms_topic(),
        tenant.bookings_topic(),
        tenant.deadletter_topic()
    );
    let _ = writeln!(s, "database    {}", tenant.clickhouse_db());
    let _ = writeln!(s, "redis keys  {}*", tenant.redis_prefix());
    s
}

/// The signing secrets of the webhooks just given: their receivers need them to verify.
pub(crate) fn print_secrets(spec: &rf_jobs::tenant::TenantSpec, entry: &rf_schemas::TenantConfig) {
    let given = spec.alert_targets.iter().flatten();
    for t in given.filter(|t| t.kind == rf_schemas::tenant::AlertKind::Webhook) {
        let secret = entry
            .alert_targets
            .iter()
            .find(|e| e.url == t.url)
            .and_then(|e| e.secret.as_deref());
        if let Some(secret) = secret {
            println!(
                "  webhook {} signing secret {secret} (x-roomflow-signature: v1=HMAC-SHA256 of \"<x-roomflow-timestamp>.<body>\")",
                t.masked_url()
            );
        }
    }
}
