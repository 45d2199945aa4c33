//! Alert delivery. The pipeline writes every anomaly revision to the outbox topic
//! `roomflow.alerts` before it commits the epoch's offsets; the dispatcher reads it,
//! applies each tenant's rules (from the tenant registry) and delivers to the tenant's
//! targets:
//!
//! - an anomaly goes to each target once, under the first rule it matches; its
//!   revisions and replays are recognized by their group (tenant, target, rule, entity)
//!   and window start, and dropped;
//! - within a rule's cooldown, later anomalies of the same entity are held and grouped
//!   into one message sent when the cooldown ends;
//! - a failed attempt is retried with exponential backoff and jitter (`Retry-After`
//!   honoured) for up to 24 hours; a target failing for 24 hours is disabled in the
//!   registry, logged and counted;
//! - the weekly digest is sent on Mondays from the tenant's day windows in ClickHouse.
//!
//! What the dispatcher remembers is written to `roomflow.alert-state` before it commits
//! its outbox offsets and after every delivery, so a restart neither loses nor re-sends
//! an alert (short of a crash between a target's acknowledgement and that write, which
//! the idempotency key covers).

pub mod digest;
pub mod ledger;

use rf_schemas::unix_ms as now_ms;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};

use rf_operators::Anomaly;
use rf_schemas::alerts::{AlertRule, AlertTarget, Disabled};
use rf_schemas::tenant::TENANTS_TOPIC;
use rf_schemas::{TenantConfig, TenantId};
use rf_sinks::webhook::{outbox, Alert, Delivery, Network, Outcome, Target};
use rf_sinks::Secret;

use crate::config::InvalidSetting;
use crate::metrics::Metrics;
use crate::secrets::{DataKeys, SecretError, Vault};
use crate::{tenants, PipelineError, Settings};
use ledger::{group_key, target_key, Ledger, Offer, Settled};

/// The compacted topic of the dispatcher's state.
pub const STATE_TOPIC: &str = "roomflow.alert-state";

/// How alerts are delivered.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertsConfig {
    /// Whether `roomflow run` delivers alerts (on process 0 of a cluster).
    pub enabled: bool,
    /// The query service's address as the tenants' people reach it: messages link to it.
    pub service_url: String,
    /// One attempt's timeout, seconds.
    pub timeout_secs: u64,
    /// An alert is retried this long; a target failing this long is disabled, seconds.
    pub give_up_after_secs: u64,
    /// An anomaly that ended longer ago than this is not sent (a replayed backlog),
    /// seconds.
    pub max_age_secs: u64,
    /// The weekly digest of the last week (Monday to Sunday, UTC) is sent on Mondays
    /// from this hour, UTC.
    pub digest_hour_utc: u32,
    /// How often the tenant registry is read again for rules and targets, seconds.
    pub registry_refresh_secs: u64,
    /// Networks alerts may go to although they are internal (this machine, private,
    /// link-local, shared address space), e.g. `["10.20.0.0/16"]` for an on-premises
    /// webhook receiver. Empty: only public addresses, whatever a target's name resolves
    /// to. Cloud metadata addresses belong in none of them.
    pub allowed_networks: Vec<String>,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            service_url: "http://127.0.0.1:18080".into(),
            timeout_secs: 5,
            give_up_after_secs: 24 * 3600,
            max_age_secs: 24 * 3600,
            digest_hour_utc: 8,
            registry_refresh_secs: 30,
            allowed_networks: Vec::new(),
        }
    }
}

impl AlertsConfig {
    /// Checks each field's range.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        let invalid = |field, problem: &str| {
            Err(InvalidSetting {
                field,
                problem: problem.into(),
            })
        };
        if !self.service_url.starts_with("http://") && !self.service_url.starts_with("https://") {
            return invalid("alerts.service_url", "must start with http:// or https://");
        }
        if !(1..=60).contains(&self.timeout_secs) {
            return invalid("alerts.timeout_secs", "must be between 1 and 60");
        }
        if !(1..=7 * 24 * 3600).contains(&self.give_up_after_secs) {
            return invalid(
                "alerts.give_up_after_secs",
                "must be between 1 and 604800 (a week)",
            );
        }
        if self.max_age_secs == 0 {
            return invalid("alerts.max_age_secs", "must be at least 1");
        }
        if self.digest_hour_utc > 23 {
            return invalid("alerts.digest_hour_utc", "must be between 0 and 23");
        }
        if !(1..=3600).contains(&self.registry_refresh_secs) {
            return invalid("alerts.registry_refresh_secs", "must be between 1 and 3600");
        }
        self.networks()?;
        Ok(())
    }

    /// The internal networks alerts may go to.
    pub fn networks(&self) -> Result<Vec<Network>, InvalidSetting> {
        self.allowed_networks
            .iter()
            .map(|n| {
                n.parse().map_err(|problem| InvalidSetting {
                    field: "alerts.allowed_networks",
                    problem,
                })
            })
            .collect()
    }

    /// A client that delivers alerts under these settings.
    pub fn delivery(&self) -> Result<Delivery, InvalidSetting> {
        Ok(Delivery::new(
            Duration::from_secs(self.timeout_secs),
            self.networks()?,
        ))
    }
}

/// What one round of the dispatcher did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Round {
    /// Outbox records read.
    pub read: usize,
    /// Attempts whose outcome came back.
    pub attempts: usize,
    /// Messages waiting for delivery or held by a cooldown.
    pub pending: usize,
    /// Deliveries still in flight.
    pub in_flight: usize,
}

/// An attempt's outcome, from a delivery thread.
struct Attempt {
    /// The target key.
    target: String,
    /// The group; `None` marks the end of the target's thread.
    group: Option<String>,
    tenant: TenantId,
    kind: &'static str,
    outcome: Outcome,
}

/// Reads the outbox and delivers alerts; see the module documentation.
pub struct Dispatcher {
    settings: Settings,
    metrics: Metrics,
    ledger: Ledger,
    consumer: BaseConsumer,
    producer: FutureProducer,
    runtime: tokio::runtime::Runtime,
    vault: Vault,
    delivery: Arc<Delivery>,
    tenants: BTreeMap<TenantId, TenantConfig>,
    registry_read: Option<Instant>,
    /// Per tenant, the week whose digest was looked at.
    digested: HashMap<TenantId, i64>,
    /// Per tenant, when reading its week last failed: tried again a minute later.
    digest_failed: HashMap<TenantId, Instant>,
    /// Tenants whose digest waits for an office's week to end and become final, until, ms.
    digest_wait: HashMap<TenantId, i64>,
    /// Per tenant, the day (its end, ms) whose no-show check was done.
    no_shows_checked: HashMap<TenantId, i64>,
    /// Targets with a delivery thread running.
    in_flight: HashSet<String>,
    attempts: (mpsc::SyncSender<Attempt>, mpsc::Receiver<Attempt>),
    retired: Instant,
}

impl Dispatcher {
    /// Creates the outbox and state topics if missing, reads the state back and joins the
    /// consumer group `<kafka.group_id>.alerts`.
    pub fn new(settings: &Settings, metrics: Metrics) -> Result<Self, PipelineError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| PipelineError::Dataflow(format!("cannot start a runtime: {e}")))?;
        runtime.block_on(ensure_topics(settings))?;
        let kerr = |e: rdkafka::error::KafkaError| PipelineError::kafka("alerts", e);
        let producer: FutureProducer = {
            let _guard = runtime.enter();
            let mut c = settings.kafka.client_config();
            c.set("enable.idempotence", "true");
            c.create().map_err(kerr)?
        };
        let give_up = Duration::from_secs(settings.alerts.give_up_after_secs);
        let mut ledger = Ledger::new(give_up);
        let group = format!("{}.alerts", settings.kafka.group_id);
        read_compacted(settings, STATE_TOPIC, &group, |key, value| {
            if let Err(error) = ledger.restore(key, value) {
                tracing::warn!(%error, "alert state unreadable; its group starts afresh");
            }
        })?;
        let consumer: BaseConsumer = settings
            .kafka
            .client_config()
            .set("group.id", &group)
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .create()
            .map_err(kerr)?;
        consumer.subscribe(&[outbox::TOPIC]).map_err(kerr)?;
        tracing::info!(
            groups = ledger.len(),
            pending = ledger.pending(),
            "alert dispatcher started"
        );
        Ok(Self {
            metrics,
            ledger,
            consumer,
            producer,
            runtime,
            delivery: Arc::new(settings.alerts.delivery()?),
            tenants: BTreeMap::new(),
            vault: Vault::new(&settings.secrets, &settings.clickhouse)?,
            registry_read: None,
            digested: HashMap::new(),
            digest_failed: HashMap::new(),
            digest_wait: HashMap::new(),
            no_shows_checked: HashMap::new(),
            in_flight: HashSet::new(),
            attempts: mpsc::sync_channel(1024),
            retired: Instant::now(),
            settings: settings.clone(),
        })
    }

    /// Runs rounds until `stop` is set, then waits for deliveries in flight (at most one
    /// timeout) and writes the state.
    pub fn run(mut self, stop: &AtomicBool) {
        while !stop.load(Ordering::Relaxed) {
            if let Err(error) = self.round(now_ms()) {
                tracing::warn!(error = %rf_schemas::chain(&error), "alert dispatch failed; trying again");
                std::thread::sleep(Duration::from_secs(1));
            }
        }
        let deadline = Instant::now() + Duration::from_secs(self.settings.alerts.timeout_secs + 1);
        while !self.in_flight.is_empty() && Instant::now() < deadline {
            if let Ok(attempt) = self.attempts.1.recv_timeout(Duration::from_millis(100)) {
                self.settle(attempt, now_ms());
            }
        }
        if let Err(error) = self.flush() {
            tracing::warn!(error = %rf_schemas::chain(&error), "alert state not written at stop; a restart resends from the last state written");
        }
    }

    /// One round at `now` (ms): read the registry if due, take new outbox records,
    /// look at digests, release cooled-down groups, persist, commit, and deliver what is
    /// due; outcomes of earlier deliveries are settled.
    pub fn round(&mut self, now: i64) -> Result<Round, PipelineError> {
        self.refresh_registry();
        let mut round = Round::default();
        let mut offsets: BTreeMap<i32, i64> = BTreeMap::new();
        let mut wait = Duration::from_millis(100);
        while round.read < 1000 {
            let Some(message) = self.consumer.poll(wait) else {
                break;
            };
            wait = Duration::ZERO;
            let m = message.map_err(|e| PipelineError::kafka("alerts", e))?;
            offsets.insert(m.partition(), m.offset() + 1);
            round.read += 1;
            match m.payload().map(outbox::decode) {
                Some(Ok(anomaly)) => self.take(&anomaly, now),
                Some(Err(error)) => {
                    self.count("-", "-", "unreadable");
                    tracing::warn!(offset = m.offset(), %error, "unreadable outbox record; skipped");
                }
                None => self.count("-", "-", "unreadable"),
            }
        }
        self.digests(now);
        self.no_shows(now);
        self.ledger.release(now);
        // What was taken is on record before the outbox offsets move past it.
        self.flush()?;
        if !offsets.is_empty() {
            let mut tpl = TopicPartitionList::new();
            for (p, o) in offsets {
                tpl.add_partition_offset(outbox::TOPIC, p, Offset::Offset(o))
                    .map_err(|e| PipelineError::kafka("alerts: an outbox offset", e))?;
            }
            self.consumer
                .commit(&tpl, CommitMode::Sync)
                .map_err(|e| PipelineError::kafka("alerts: committing", e))?;
        }
        while let Ok(attempt) = self.attempts.1.try_recv() {
            self.settle(attempt, now);
            round.attempts += 1;
        }
        self.disable_failing(now);
        if self.retired.elapsed() > Duration::from_secs(600) {
            self.retired = Instant::now();
            let horizon = (self.settings.alerts.max_age_secs as i64 * 1000).max(digest::WEEK);
            let tenants = &self.tenants;
            self.ledger.retire(now - horizon - 86_400_000, |target| {
                find_target(tenants, target).is_some()
            });
        }
        self.deliver(now);
        self.flush()?;
        round.pending = self.ledger.pending();
        round.in_flight = self.in_flight.len();
        self.metrics.alerts_pending.set(round.pending as i64);
        Ok(round)
    }

    fn refresh_registry(&mut self) {
        let every = Duration::from_secs(self.settings.alerts.registry_refresh_secs);
        if self.registry_read.is_some_and(|at| at.elapsed() < every) {
            return;
        }
        self.registry_read = Some(Instant::now());
        let found = match tenants::load(&self.settings.kafka) {
            Ok(found) => found,
            Err(error) => {
                tracing::warn!(error = %rf_schemas::chain(&error), "cannot read the tenant registry; alerts use the last one read");
                return;
            }
        };
        match self.open(found) {
            Ok(opened) => self.tenants = opened,
            Err(error) => {
                tracing::warn!(error = %rf_schemas::chain(&error), "cannot read the tenants' data keys; alerts use the last registry read");
                return;
            }
        }
        // A target added again after it was disabled starts afresh.
        for (tenant, config) in &self.tenants {
            for t in config.alert_targets.iter().filter(|t| t.disabled.is_none()) {
                let key = target_key(tenant.as_str(), &t.id());
                if self
                    .ledger
                    .disabled_at(&key)
                    .is_some_and(|at| config.updated_ms > at)
                {
                    tracing::info!(tenant = %tenant, target = %key, "alert target enabled again");
                    self.ledger.enable(&key);
                }
            }
        }
    }

    /// Offers one anomaly to each of its tenant's active targets under the first rule it
    /// matches.
    fn take(&mut self, a: &Anomaly, now: i64) {
        let Some(config) = self
            .tenants
            .get(&a.tenant)
            .filter(|c| serves(&self.settings, c))
        else {
            return;
        };
        let Some(rule) = config
            .alert_rules
            .iter()
            .find(|r| r.matches(a.kind.label(), a.severity))
        else {
            return;
        };
        if a.window_end < now - self.settings.alerts.max_age_secs as i64 * 1000 {
            self.count(a.tenant.as_str(), "-", "too_old");
            return;
        }
        let entity = format!("{}/{}", a.entity_kind.label(), a.entity_id);
        let cooldown = rule.cooldown_minutes() as i64 * 60_000;
        let service = &self.settings.alerts.service_url;
        let mut grouped = Vec::new();
        for t in &config.alert_targets {
            let target = target_key(a.tenant.as_str(), &t.id());
            if t.disabled.is_some() || self.ledger.disabled_at(&target).is_some() {
                continue;
            }
            let key = group_key(a.tenant.as_str(), &t.id(), rule.name(), &entity);
            let alert = Alert::of(rule.name(), a, service);
            if self
                .ledger
                .offer(&key, a.window_start, alert, cooldown, now)
                == Offer::Held
            {
                grouped.push(t.kind.label());
            }
        }
        for kind in grouped {
            self.count(a.tenant.as_str(), kind, "grouped");
        }
    }

    /// Offers each tenant's weekly digest once it is due.
    fn digests(&mut self, now: i64) {
        let week = digest::digest_week(now, self.settings.alerts.digest_hour_utc);
        let due: Vec<(TenantId, TenantConfig)> = self
            .tenants
            .iter()
            .filter(|(t, c)| {
                serves(&self.settings, c)
                    && c.alert_targets.iter().any(|t| t.disabled.is_none())
                    && self.digested.get(*t) != Some(&week)
                    && self
                        .digest_failed
                        .get(*t)
                        .is_none_or(|at| at.elapsed() > Duration::from_secs(60))
                    && self.digest_wait.get(*t).is_none_or(|until| now >= *until)
            })
            .map(|(t, c)| (t.clone(), c.clone()))
            .collect();
        for (tenant, config) in due {
            let Some((below, above)) = config.alert_rules.iter().find_map(|r| match r {
                AlertRule::WeeklyDigest { below, above } => Some((*below, *above)),
                _ => None,
            }) else {
                self.digested.insert(tenant, week);
                continue;
            };
            let Some(region) = self.settings.region(&config.region) else {
                self.digested.insert(tenant, week);
                continue;
            };
            // Every office's Sunday ended, and its day window is final: past the
            // allowed lateness, with a few minutes for the pipeline to write it.
            let ends = self
                .runtime
                .block_on(digest::week_ends(&region.clickhouse, &tenant, week));
            let settle = self.settings.pipeline.allowed_lateness_secs as i64 * 1000 + 600_000;
            match ends {
                Ok(ends) if now < ends + settle => {
                    self.digest_wait.insert(tenant, ends + settle);
                    continue;
                }
                Ok(_) => {}
                Err(error) => {
                    tracing::warn!(tenant = %tenant, %error, "cannot read the offices' zones for the digest; trying again in a minute");
                    self.digest_failed.insert(tenant, Instant::now());
                    continue;
                }
            }
            let weeks =
                self.runtime
                    .block_on(digest::office_weeks(&region.clickhouse, &tenant, week));
            let offices = match weeks {
                Ok(offices) => offices,
                Err(error) => {
                    tracing::warn!(tenant = %tenant, %error, "cannot read the week for the digest; trying again in a minute");
                    self.digest_failed.insert(tenant, Instant::now());
                    continue;
                }
            };
            self.digested.insert(tenant.clone(), week);
            let service = &self.settings.alerts.service_url;
            let Some(alert) = Alert::digest(&tenant, week, &offices, (below, above), service)
            else {
                continue;
            };
            for t in config.alert_targets.iter().filter(|t| t.disabled.is_none()) {
                let key = group_key(
                    tenant.as_str(),
                    &t.id(),
                    "weekly_digest",
                    &format!("tenant/{tenant}"),
                );
                self.ledger.offer(&key, week, alert.clone(), 0, now);
            }
        }
    }

    /// Once a day (at the digest hour, UTC), offers an alert for each booked room whose
    /// no-show rate over the last 7 days passes the tenant's `no_show_rate` rule; a room
    /// alerted is not again for a week.
    fn no_shows(&mut self, now: i64) {
        let hour = self.settings.alerts.digest_hour_utc as i64 * 3_600_000;
        let day_end = (now - hour).div_euclid(86_400_000) * 86_400_000;
        let due: Vec<(TenantId, TenantConfig, f64, u32)> = self
            .tenants
            .iter()
            .filter(|(t, c)| {
                serves(&self.settings, c)
                    && c.alert_targets.iter().any(|t| t.disabled.is_none())
                    && self.no_shows_checked.get(*t) != Some(&day_end)
            })
            .filter_map(|(t, c)| {
                c.alert_rules.iter().find_map(|r| match r {
                    AlertRule::NoShowRate { rate, min_meetings } => {
                        Some((t.clone(), c.clone(), *rate, *min_meetings))
                    }
                    _ => None,
                })
            })
            .collect();
        for (tenant, config, rate, min_meetings) in due {
            let Some(region) = self.settings.region(&config.region) else {
                continue;
            };
            let rooms = self.runtime.block_on(digest::frequent_no_shows(
                &region.clickhouse,
                &tenant,
                day_end,
                rate,
                min_meetings,
            ));
            let rooms = match rooms {
                Ok(rooms) => rooms,
                Err(error) => {
                    tracing::warn!(tenant = %tenant, %error, "cannot read the no-shows; trying again next round");
                    continue;
                }
            };
            self.no_shows_checked.insert(tenant.clone(), day_end);
            let service = &self.settings.alerts.service_url;
            for (office, room, meetings, no_shows) in rooms {
                let alert = Alert::no_shows(
                    &tenant,
                    &office,
                    &room,
                    (meetings, no_shows),
                    rate,
                    day_end,
                    service,
                );
                for t in config.alert_targets.iter().filter(|t| t.disabled.is_none()) {
                    let key = group_key(
                        tenant.as_str(),
                        &t.id(),
                        "no_show_rate",
                        &format!("room/{room}"),
                    );
                    self.ledger
                        .offer(&key, day_end, alert.clone(), digest::WEEK, now);
                }
            }
        }
    }

    /// Starts a delivery thread for each target with due messages and none running.
    fn deliver(&mut self, now: i64) {
        let mut by_target: BTreeMap<String, Vec<(String, Alert)>> = BTreeMap::new();
        for (group, alert) in self.ledger.due(now) {
            let target = ledger_target(&group);
            if !self.in_flight.contains(&target) {
                by_target.entry(target).or_default().push((group, alert));
            }
        }
        for (target_key, alerts) in by_target {
            let Some((tenant, t)) = find_target(&self.tenants, &target_key) else {
                continue;
            };
            let target = Target {
                kind: t.kind,
                url: Secret::new(t.url.clone()),
                secret: Secret::new(t.secret.clone().unwrap_or_default()),
            };
            let kind = t.kind.label();
            self.in_flight.insert(target_key.clone());
            let delivery = self.delivery.clone();
            let results = self.attempts.0.clone();
            std::thread::spawn(move || {
                for (group, alert) in alerts {
                    let outcome = delivery.send(&target, &alert, now_ms() / 1000);
                    let failed = outcome != Outcome::Delivered;
                    let attempt = Attempt {
                        target: target_key.clone(),
                        group: Some(group),
                        tenant: tenant.clone(),
                        kind,
                        outcome,
                    };
                    if results.send(attempt).is_err() || failed {
                        // The rest wait for their own retry time: a failing target gets
                        // one attempt per round, not one per alert.
                        break;
                    }
                }
                // The receiver outlives every thread but at a stop, when nothing is left to tell.
                let _ = results.send(Attempt {
                    target: target_key,
                    group: None,
                    tenant,
                    kind,
                    outcome: Outcome::Delivered,
                });
            });
        }
    }

    fn settle(&mut self, attempt: Attempt, now: i64) {
        let Attempt {
            target,
            group,
            tenant,
            kind,
            outcome,
        } = attempt;
        let Some(group) = group else {
            // The thread ended: its target may get a new one.
            self.in_flight.remove(&target);
            return;
        };
        let jitter = jitter(now, &group);
        let label = match self.ledger.settle(&group, &outcome, now, jitter) {
            Settled::Delivered => "delivered",
            Settled::Retry(at) => {
                if let Outcome::Retry { reason, .. } = &outcome {
                    tracing::warn!(tenant = %tenant, group = %group, %reason, in_secs = (at - now) / 1000, "alert delivery failed; retrying");
                }
                "retried"
            }
            Settled::Dropped(reason) => {
                tracing::warn!(tenant = %tenant, group = %group, %reason, "alert dropped");
                "dropped"
            }
            Settled::Stale => return,
        };
        self.count(tenant.as_str(), kind, label);
    }

    /// Disables targets failing for the give-up period, in the registry too, and reports
    /// them.
    fn disable_failing(&mut self, now: i64) {
        let period = self.settings.alerts.give_up_after_secs as i64 * 1000;
        for (key, reason) in self.ledger.disable_failing(now, period) {
            let Some((tenant, target)) = find_target(&self.tenants, &key) else {
                continue;
            };
            tracing::error!(
                tenant = %tenant,
                target = %key,
                kind = target.kind.label(),
                url = %target.masked_url(),
                %reason,
                "alert target disabled: its deliveries failed for the whole give-up period; add it again once it works"
            );
            self.metrics
                .alert_targets_disabled
                .with_label_values(&[tenant.as_str()])
                .inc();
            if let Err(error) = self.mark_disabled(&tenant, &key, now, &reason) {
                tracing::warn!(tenant = %tenant, error = %rf_schemas::chain(&error), "cannot mark the target disabled in the registry");
            }
        }
    }

    /// The registry entries with their secrets opened. A tenant whose secrets do not open
    /// keeps the entry read before (or has none): its alerts wait, other tenants' go.
    fn open(
        &self,
        mut found: BTreeMap<TenantId, TenantConfig>,
    ) -> Result<BTreeMap<TenantId, TenantConfig>, SecretError> {
        if found.values().all(DataKeys::is_open) {
            return Ok(found);
        }
        let keys = self.runtime.block_on(self.vault.keys(None))?;
        found.retain(|tenant, config| match keys.open(config) {
            Ok(()) => true,
            Err(error) => {
                tracing::error!(tenant = %tenant, %error, "the tenant's alert targets cannot be opened");
                false
            }
        });
        for (tenant, config) in &self.tenants {
            found
                .entry(tenant.clone())
                .or_insert_with(|| config.clone());
        }
        Ok(found)
    }

    /// Writes the tenant's registry entry with the target marked disabled.
    fn mark_disabled(
        &mut self,
        tenant: &TenantId,
        key: &str,
        now: i64,
        reason: &str,
    ) -> Result<(), PipelineError> {
        let Some(mut config) = self.tenants.get(tenant).cloned() else {
            return Ok(());
        };
        for t in &mut config.alert_targets {
            if target_key(tenant.as_str(), &t.id()) == key {
                t.disabled = Some(Disabled {
                    at_ms: now,
                    reason: reason.to_string(),
                });
            }
        }
        config.updated_ms = now.max(config.updated_ms + 1);
        let sealed = self.runtime.block_on(self.vault.seal(&config))?;
        let value = serde_json::to_vec(&sealed).expect("a tenant entry serializes");
        let record = FutureRecord::to(TENANTS_TOPIC)
            .key(tenant.as_str())
            .payload(&value);
        let timeout = Duration::from_secs(self.settings.kafka.timeout_secs);
        self.runtime
            .block_on(self.producer.send(record, timeout))
            .map_err(|(e, _)| PipelineError::kafka("tenant registry", e))?;
        self.tenants.insert(tenant.clone(), config);
        Ok(())
    }

    /// Writes the changed state records and waits for the broker.
    fn flush(&mut self) -> Result<(), PipelineError> {
        let dirty = self.ledger.take_dirty();
        if dirty.is_empty() {
            return Ok(());
        }
        let keys: Vec<String> = dirty.iter().map(|(k, _)| k.clone()).collect();
        let timeout = Duration::from_secs(self.settings.kafka.timeout_secs);
        let producer = &self.producer;
        let written = self.runtime.block_on(async {
            let sends = dirty.iter().map(|(key, value)| {
                let mut record = FutureRecord::<str, [u8]>::to(STATE_TOPIC).key(key.as_str());
                if let Some(v) = value {
                    record = record.payload(v.as_slice());
                }
                producer.send(record, timeout)
            });
            for result in futures_util::future::join_all(sends).await {
                result.map_err(|(e, _)| PipelineError::kafka("writing the alert state", e))?;
            }
            Ok(())
        });
        if written.is_err() {
            // Written again with the next flush; offsets are not committed before.
            self.ledger.redirty(keys);
        }
        written
    }

    fn count(&self, tenant: &str, kind: &str, outcome: &str) {
        self.metrics
            .alerts
            .with_label_values(&[tenant, kind, outcome])
            .inc();
    }
}

/// Whether this deployment delivers the tenant's alerts: it serves the tenant's region
/// (and the tenant, when given a list), and the tenant is not deleted.
fn serves(settings: &Settings, config: &TenantConfig) -> bool {
    let listed = &settings.pipeline.tenants;
    !config.is_deleted()
        && (listed.is_empty() || listed.contains(&config.tenant))
        && settings
            .served_regions()
            .iter()
            .any(|r| r.name == config.region)
}

/// The target key (`<tenant>/<target id>`) of a group key.
fn ledger_target(group: &str) -> String {
    group.splitn(3, '/').take(2).collect::<Vec<_>>().join("/")
}

/// The tenant and registry entry of a target key.
fn find_target<'a>(
    tenants: &'a BTreeMap<TenantId, TenantConfig>,
    key: &str,
) -> Option<(TenantId, &'a AlertTarget)> {
    let (tenant, id) = key.split_once('/')?;
    let tenant = TenantId::parse(tenant).ok()?;
    let config = tenants.get(&tenant)?;
    let target = config.alert_targets.iter().find(|t| t.id() == id)?;
    Some((tenant, target))
}

/// A number in [0, 1) that differs between alerts and attempts: the retry jitter.
fn jitter(now: i64, group: &str) -> f64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (now, group).hash(&mut h);
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// Creates the outbox (kept 7 days) and the state topic (compacted) if missing.
pub async fn ensure_topics(settings: &Settings) -> Result<(), PipelineError> {
    use crate::topics::{create, TopicSpec};
    let week = TopicSpec {
        config: &[("retention.ms", "604800000")],
        ..TopicSpec::new(outbox::TOPIC, 1)
    };
    create(&settings.kafka, &[week, TopicSpec::compacted(STATE_TOPIC)]).await?;
    Ok(())
}

/// Reads a compacted topic from its start to its end, calling `f` with each record's key
/// and value (`None`: a tombstone).
fn read_compacted(
    settings: &Settings,
    topic: &str,
    group: &str,
    mut f: impl FnMut(&str, Option<&[u8]>),
) -> Result<(), PipelineError> {
    crate::topics::read_to_end(&settings.kafka, topic, group, |m| {
        if let Some(key) = m.key().and_then(|k| std::str::from_utf8(k).ok()) {
            f(key, m.payload());
        }
    })
}

/// Runs a dispatcher on its own thread until `stop` is set; what it could not start with
/// is logged, and it tries again a minute later.
pub fn spawn(
    settings: &Settings,
    metrics: Metrics,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<()> {
    let settings = settings.clone();
    std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            match Dispatcher::new(&settings, metrics.clone()) {
                Ok(dispatcher) => return dispatcher.run(&stop),
                Err(error) => {
                    tracing::error!(error = %rf_schemas::chain(&error), "the alert dispatcher cannot start; trying again in a minute");
                    let until = Instant::now() + Duration::from_secs(60);
                    while Instant::now() < until && !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(Duration::from_millis(200));
                    }
                }
            }
        }
    })
}
