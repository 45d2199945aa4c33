//! `roomflow serve`, with the tenant administration its admin endpoints call, and
//! `roomflow dev-idp`, the local stack's development identity provider.

use std::sync::Arc;

use clap::Args;
use serde_json::{json, Value};

use rf_jobs::{apikey, tenant, JobError};
use rf_pipelines::Settings;
use rf_schemas::tenant::{AlertKind, AlertRule, AlertTarget, Role};
use rf_schemas::{TenantConfig, TenantId};
use rf_service::admin::{Admin, AdminError, Change, Pending};

use crate::config::Config;
use crate::runtime;

/// The admin endpoints' actions, done as the CLI's `tenant` commands do them.
struct TenantAdmin {
    settings: Settings,
    alerts: rf_pipelines::alerts::AlertsConfig,
}

fn unavailable(e: impl std::fmt::Display) -> AdminError {
    AdminError::Unavailable(e.to_string())
}

/// A job's error as the endpoint answers it: a refusal names `field`.
fn job(field: &'static str) -> impl Fn(JobError) -> AdminError {
    move |e| match e {
        JobError::Invalid(m) => AdminError::Invalid(field, m),
        other => unavailable(other),
    }
}

fn iso(secs: u32) -> String {
    chrono::DateTime::from_timestamp(i64::from(secs), 0)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// A registry entry as the admin sees it: alert URLs masked, secrets never.
fn entry_json(entry: &TenantConfig) -> Value {
    let targets: Vec<Value> = entry
        .alert_targets
        .iter()
        .enumerate()
        .map(|(index, t)| {
            json!({
                "index": index,
                "kind": t.kind.label(),
                "url": t.masked_url(),
                "disabled": t.disabled.is_some(),
            })
        })
        .collect();
    json!({
        "tenant": entry.tenant,
        "display_name": entry.display_name,
        "industry": entry.industry,
        "tier": entry.tier.as_str(),
        "region": entry.region,
        "retention_days": entry.retention_days,
        "alert_targets": targets,
        "alert_rules": entry.alert_rules.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "capacity_breach_at": entry.capacity_breach_at.unwrap_or(1.0),
        "benchmarks_opted_in_at": entry.benchmarks_opt_in_ms.map(|ms| iso((ms / 1000).clamp(0, i64::from(u32::MAX)) as u32)),
    })
}

impl TenantAdmin {
    async fn opened(&self, tenant: &TenantId) -> Result<TenantConfig, AdminError> {
        let entry = tenant::opened(&self.settings, tenant)
            .await
            .map_err(unavailable)?;
        if entry.is_deleted() {
            return Err(AdminError::NotFound(format!("tenant {tenant} is deleted")));
        }
        Ok(entry)
    }

    async fn update(
        &self,
        tenant: &TenantId,
        spec: tenant::TenantSpec,
    ) -> Result<TenantConfig, AdminError> {
        tenant::update(&self.settings, tenant, &spec)
            .await
            .map_err(job("body"))
    }
}

impl Admin for TenantAdmin {
    fn keys<'a>(&'a self, tenant: &'a TenantId) -> Pending<'a, Value> {
        Box::pin(async move {
            let keys = apikey::list(&self.settings.clickhouse, tenant)
                .await
                .map_err(unavailable)?;
            Ok(keys
                .iter()
                .map(|k| {
                    json!({
                        "key_id": k.key_id,
                        "name": k.name,
                        "role": k.role,
                        "offices": k.offices,
                        "created_at": iso(k.created_at),
                        "revoked_at": (k.revoked == 1).then(|| iso(k.revoked_at)),
                    })
                })
                .collect())
        })
    }

    fn create_key<'a>(
        &'a self,
        tenant: &'a TenantId,
        name: &'a str,
        role: Role,
        offices: &'a [String],
    ) -> Pending<'a, Value> {
        Box::pin(async move {
            let field = if offices.is_empty() {
                "name"
            } else {
                "offices"
            };
            let (key, listed) =
                apikey::create_for_sites(&self.settings.clickhouse, tenant, name, role, offices)
                    .await
                    .map_err(job(field))?;
            Ok(json!({
                "key": key,
                "key_id": listed.key_id,
                "name": listed.name,
                "role": listed.role,
                "offices": listed.offices,
                "created_at": iso(listed.created_at),
            }))
        })
    }

    fn revoke_key<'a>(&'a self, tenant: &'a TenantId, key_id: &'a str) -> Pending<'a, Value> {
        Box::pin(async move {
            let revoked = apikey::revoke(&self.settings.clickhouse, tenant, key_id)
                .await
                .map_err(|e| match e {
                    JobError::Invalid(m) => AdminError::NotFound(m),
                    other => unavailable(other),
                })?;
            Ok(json!({ "key_id": revoked.key_id, "revoked_at": iso(revoked.revoked_at) }))
        })
    }

    fn tenant<'a>(&'a self, tenant: &'a TenantId) -> Pending<'a, Value> {
        Box::pin(async move { Ok(entry_json(&self.opened(tenant).await?)) })
    }

    fn change<'a>(&'a self, tenant: &'a TenantId, change: Change) -> Pending<'a, Value> {
        Box::pin(async move {
            let mut spec = tenant::TenantSpec::default();
            let mut added = None;
            match change {
                Change::Settings {
                    display_name,
                    industry,
                    retention_days,
                    benchmarks,
                    capacity_breach_at,
                } => {
                    if display_name
                        .as_ref()
                        .is_some_and(|n| n.trim().is_empty() || n.len() > 100)
                    {
                        return Err(AdminError::Invalid(
                            "display_name",
                            "must be 1 to 100 characters".into(),
                        ));
                    }
                    if capacity_breach_at.is_some_and(|at| !(0.5..=2.0).contains(&at)) {
                        return Err(AdminError::Invalid(
                            "capacity_breach_at",
                            "must be a share of capacity between 0.5 and 2".into(),
                        ));
                    }
                    spec.display_name = display_name;
                    spec.industry = industry;
                    spec.retention_days = retention_days;
                    spec.benchmarks = benchmarks;
                    spec.capacity_breach_at = capacity_breach_at;
                }
                Change::Rules(rules) => {
                    let parsed: Result<Vec<AlertRule>, String> =
                        rules.iter().map(|r| r.parse()).collect();
                    spec.alert_rules =
                        Some(parsed.map_err(|e| AdminError::Invalid("alert_rules", e))?);
                }
                Change::AddTarget(target) => {
                    let target: AlertTarget =
                        target.parse().map_err(|e| AdminError::Invalid("url", e))?;
                    let mut targets = self.opened(tenant).await?.alert_targets;
                    if targets.iter().any(|t| t.url == target.url) {
                        return Err(AdminError::Invalid(
                            "url",
                            "the tenant already has this alert target".into(),
                        ));
                    }
                    if targets.len() >= 20 {
                        return Err(AdminError::Invalid(
                            "url",
                            "a tenant has at most 20 alert targets".into(),
                        ));
                    }
                    added = Some(target.url.clone());
                    targets.push(target);
                    spec.alert_targets = Some(targets);
                }
                Change::RemoveTarget(index) => {
                    let mut targets = self.opened(tenant).await?.alert_targets;
                    if index >= targets.len() {
                        return Err(AdminError::NotFound(format!("no alert target {index}")));
                    }
                    targets.remove(index);
                    spec.alert_targets = Some(targets);
                }
            }
            let entry = self.update(tenant, spec).await?;
            let mut answer = entry_json(&entry);
            // A new webhook's signing secret, shown this once.
            let secret = added.and_then(|url| {
                entry
                    .alert_targets
                    .iter()
                    .find(|t| t.url == url && t.kind == AlertKind::Webhook)
                    .and_then(|t| t.secret.clone())
            });
            if let Some(secret) = secret {
                answer["signing_secret"] = json!(secret);
            }
            Ok(answer)
        })
    }

    fn test_alerts<'a>(&'a self, tenant: &'a TenantId) -> Pending<'a, Value> {
        Box::pin(async move {
            use rf_sinks::webhook::{Alert, Outcome, Target};
            let entry = self.opened(tenant).await?;
            if entry.alert_targets.is_empty() {
                return Err(AdminError::Invalid(
                    "alert_targets",
                    "the tenant has no alert targets; add one first".into(),
                ));
            }
            let delivery = self.alerts.delivery().map_err(unavailable)?;
            let alert = Alert::test(tenant, &self.alerts.service_url);
            let targets = entry.alert_targets.clone();
            // Delivery blocks (a webhook may take its whole timeout): off the runtime.
            let results = tokio::task::spawn_blocking(move || {
                let now = chrono::Utc::now().timestamp();
                targets
                    .iter()
                    .enumerate()
                    .map(|(index, t)| {
                        let target = Target {
                            kind: t.kind,
                            url: rf_sinks::Secret::new(t.url.clone()),
                            secret: rf_sinks::Secret::new(t.secret.clone().unwrap_or_default()),
                        };
                        let (delivered, outcome) = match delivery.send(&target, &alert, now) {
                            Outcome::Delivered => (true, "delivered".to_string()),
                            Outcome::Retry { reason, .. } => (false, format!("failed: {reason}")),
                            Outcome::Rejected { reason } => (false, format!("refused: {reason}")),
                        };
                        json!({
                            "index": index,
                            "kind": t.kind.label(),
                            "url": t.masked_url(),
                            "delivered": delivered,
                            "outcome": outcome,
                        })
                    })
                    .collect::<Vec<_>>()
            })
            .await
            .map_err(unavailable)?;
            Ok(Value::Array(results))
        })
    }
}

/// `roomflow serve`.
pub(crate) fn serve(config: &Config) -> anyhow::Result<()> {
    let settings = config.settings();
    let admin: Arc<dyn Admin> = Arc::new(TenantAdmin {
        settings: settings.clone(),
        alerts: config.alerts.clone(),
    });
    runtime()?.block_on(async {
        let gateway = rf_service::ingest::Gateway::connect(
            settings.kafka.client_config(),
            rf_schemas::registry::RegistryClient::new(
                &settings.registry.url,
                std::time::Duration::from_secs(settings.registry.timeout_secs),
            ),
            std::time::Duration::from_secs(config.service.ingest.ack_timeout_secs),
        )
        .map_err(anyhow::Error::msg)?;
        let listener = tokio::net::TcpListener::bind(&config.service.listen)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.service.listen))?;
        rf_service::serve_with(
            listener,
            &config.service,
            &config.service_stores(),
            rf_service::Backends {
                admin: Some(admin),
                gateway: Some(gateway),
            },
            async {
                if let Err(error) = tokio::signal::ctrl_c().await {
                    tracing::warn!(%error, "cannot listen for Ctrl-C");
                }
            },
        )
        .await
        .map_err(anyhow::Error::msg)
    })
}

/// `roomflow dev-idp`'s arguments.
#[derive(Args)]
pub(crate) struct DevIdpArgs {
    /// Where to listen: loopback only (the provider signs anyone in as anyone).
    #[arg(long, default_value = "127.0.0.1:18088")]
    listen: std::net::SocketAddr,
    /// The client id it knows (service.web.oidc_client_id).
    #[arg(long, default_value = rf_service::web::DEV_CLIENT_ID)]
    client_id: String,
    /// Redirect URLs the client may use (service.web.redirect_url); repeatable.
    #[arg(long = "redirect-url", default_value = rf_service::web::DEV_REDIRECT_URL)]
    redirect_urls: Vec<String>,
    /// The tenant its sign-in page suggests.
    #[arg(long, default_value = "acme")]
    tenant: String,
}

/// `roomflow dev-idp`.
pub(crate) fn dev_idp(args: DevIdpArgs) -> anyhow::Result<()> {
    let config = rf_service::web::devidp::DevIdpConfig {
        listen: args.listen,
        client_id: args.client_id,
        redirect_urls: args.redirect_urls,
        tenant: args.tenant,
    };
    runtime()?.block_on(async {
        rf_service::web::devidp::serve(config, async {
            if let Err(error) = tokio::signal::ctrl_c().await {
                tracing::warn!(%error, "cannot listen for Ctrl-C");
            }
        })
        .await
        .map_err(anyhow::Error::from)
    })
}
