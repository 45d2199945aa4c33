//! What the dispatcher remembers, per group (a tenant's target, a rule and an entity) and
//! per target, kept in the compacted topic `roomflow.alert-state` so that a restart
//! neither sends an alert twice nor forgets one it was retrying.
//!
//! Pure: every call is given the time, so the rules are tested without waiting.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use rf_sinks::webhook::{Alert, Outcome, Retries};

/// One group's state.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Group {
    /// The newest window start taken; an older or equal one is a revision or a replay.
    pub seen: i64,
    /// When a message was last released, ms.
    pub last_sent: Option<i64>,
    /// The minimum time between two released messages, ms.
    pub cooldown_ms: i64,
    /// Alerts held back by the cooldown, grouped into one.
    pub held: Option<Held>,
    /// The message being delivered.
    pub sending: Option<Sending>,
    /// Last change, ms: an idle group is retired.
    pub touched: i64,
}

/// Alerts of a group held back by its cooldown.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Held {
    /// The latest of them: the one sent.
    pub alert: Alert,
    /// How many were held.
    pub count: u32,
    /// When the first was held, ms.
    pub since: i64,
}

/// A message on its way.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Sending {
    /// What is sent.
    pub alert: Alert,
    /// Its attempts so far.
    pub retries: Retries,
    /// The next attempt, ms.
    pub next_at: i64,
}

/// One target's health.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Health {
    /// The first failure since the last delivery, ms.
    pub failing_since: Option<i64>,
    /// The last failure.
    pub last_error: String,
    /// When the target was disabled, ms.
    pub disabled_at: Option<i64>,
}

/// What became of an offered alert.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Offer {
    /// Its group had it (or a newer one) already.
    Duplicate,
    /// It is to be sent now.
    Send,
    /// The cooldown holds it back; it is grouped into the next message.
    Held,
}

/// What an attempt's outcome means for its alert.
#[derive(Clone, Debug, PartialEq)]
pub enum Settled {
    /// Acknowledged.
    Delivered,
    /// To be tried again at this time, ms.
    Retry(i64),
    /// Refused for good, or failing past the retry period: dropped.
    Dropped(String),
    /// Nothing was being sent any more (its target was disabled meanwhile).
    Stale,
}

/// The state of every group and target, and what changed since the last flush.
#[derive(Debug)]
pub struct Ledger {
    /// How long one alert is retried, ms.
    give_up: Duration,
    groups: BTreeMap<String, Group>,
    health: BTreeMap<String, Health>,
    dirty: BTreeSet<String>,
}

/// How often revisions of an alerted episode refresh its group's idle time, ms.
const TOUCH_EVERY_MS: i64 = 3_600_000;

/// The state topic's key prefixes.
const GROUP: &str = "group/";
const TARGET: &str = "target/";

/// A group's key: `<tenant>/<target id>/<rule>/<entity kind>/<entity id>`.
pub fn group_key(tenant: &str, target: &str, rule: &str, entity: &str) -> String {
    format!("{tenant}/{target}/{rule}/{entity}")
}

/// A target's key: `<tenant>/<target id>`.
pub fn target_key(tenant: &str, target: &str) -> String {
    format!("{tenant}/{target}")
}

/// The target key of a group key.
fn target_of(group: &str) -> &str {
    let mut slashes = group.match_indices('/').map(|(i, _)| i);
    match (slashes.next(), slashes.next()) {
        (Some(_), Some(end)) => &group[..end],
        _ => group,
    }
}

impl Ledger {
    /// An empty ledger retrying each alert for `give_up`.
    pub fn new(give_up: Duration) -> Self {
        Self {
            give_up,
            groups: BTreeMap::new(),
            health: BTreeMap::new(),
            dirty: BTreeSet::new(),
        }
    }

    /// Offers a matching alert of the group `key`, about a window starting at
    /// `window_start`, at `now`.
    pub fn offer(
        &mut self,
        key: &str,
        window_start: i64,
        alert: Alert,
        cooldown_ms: i64,
        now: i64,
    ) -> Offer {
        let g = self.groups.entry(key.to_string()).or_insert(Group {
            seen: i64::MIN,
            ..Group::default()
        });
        if window_start <= g.seen {
            // A lasting episode's revisions keep its group from retiring while it goes on.
            if now - g.touched > TOUCH_EVERY_MS {
                g.touched = now;
                self.dirty.insert(format!("{GROUP}{key}"));
            }
            return Offer::Duplicate;
        }
        g.seen = window_start;
        g.touched = now;
        g.cooldown_ms = cooldown_ms;
        self.dirty.insert(format!("{GROUP}{key}"));
        let cooling = g.sending.is_some() || g.last_sent.is_some_and(|at| now - at < g.cooldown_ms);
        if cooling {
            let held = g.held.get_or_insert(Held {
                alert: alert.clone(),
                count: 0,
                since: now,
            });
            held.alert = alert;
            held.count += 1;
            return Offer::Held;
        }
        g.last_sent = Some(now);
        g.sending = Some(Sending {
            alert,
            retries: Retries::new(now, self.give_up),
            next_at: now,
        });
        Offer::Send
    }

    /// Turns held alerts whose cooldown ended into one message each.
    pub fn release(&mut self, now: i64) {
        for (key, g) in &mut self.groups {
            let free =
                g.sending.is_none() && g.last_sent.is_none_or(|at| now - at >= g.cooldown_ms);
            if !free {
                continue;
            }
            if let Some(held) = g.held.take() {
                // The first held one is counted by the message itself.
                let alert = held.alert.grouped(held.count - 1, held.since);
                g.last_sent = Some(now);
                g.touched = now;
                g.sending = Some(Sending {
                    alert,
                    retries: Retries::new(now, self.give_up),
                    next_at: now,
                });
                self.dirty.insert(format!("{GROUP}{key}"));
            }
        }
    }

    /// Messages due at `now`: (group key, alert).
    pub fn due(&self, now: i64) -> Vec<(String, Alert)> {
        self.groups
            .iter()
            .filter_map(|(key, g)| {
                let s = g.sending.as_ref().filter(|s| s.next_at <= now)?;
                Some((key.clone(), s.alert.clone()))
            })
            .collect()
    }

    /// Records an attempt's outcome for the group `key`; `jitter` is uniform in [0, 1).
    pub fn settle(&mut self, key: &str, outcome: &Outcome, now: i64, jitter: f64) -> Settled {
        let Some(g) = self.groups.get_mut(key) else {
            return Settled::Stale;
        };
        let Some(sending) = g.sending.as_mut() else {
            return Settled::Stale;
        };
        g.touched = now;
        self.dirty.insert(format!("{GROUP}{key}"));
        let target = target_of(key).to_string();
        let settled = match outcome {
            Outcome::Delivered => {
                g.sending = None;
                let h = self.health.entry(target.clone()).or_default();
                if h.failing_since.take().is_some() {
                    self.dirty.insert(format!("{TARGET}{target}"));
                }
                return Settled::Delivered;
            }
            Outcome::Retry { after, reason } => match sending.retries.next(now, *after, jitter) {
                Some(at) => {
                    sending.next_at = at;
                    (Settled::Retry(at), reason)
                }
                None => {
                    g.sending = None;
                    (
                        Settled::Dropped(format!("still failing after 24 hours: {reason}")),
                        reason,
                    )
                }
            },
            Outcome::Rejected { reason } => {
                g.sending = None;
                (Settled::Dropped(format!("refused: {reason}")), reason)
            }
        };
        let (settled, reason) = settled;
        let h = self.health.entry(target.clone()).or_default();
        h.failing_since.get_or_insert(now);
        h.last_error = reason.clone();
        self.dirty.insert(format!("{TARGET}{target}"));
        settled
    }

    /// Targets failing for at least `period_ms` at `now` and not yet disabled: they are
    /// disabled now, and their groups' held and pending messages dropped. Returns
    /// (target key, last error).
    pub fn disable_failing(&mut self, now: i64, period_ms: i64) -> Vec<(String, String)> {
        let mut disabled = Vec::new();
        for (target, h) in &mut self.health {
            if h.disabled_at.is_none() && h.failing_since.is_some_and(|t| now - t >= period_ms) {
                h.disabled_at = Some(now);
                self.dirty.insert(format!("{TARGET}{target}"));
                disabled.push((target.clone(), h.last_error.clone()));
            }
        }
        for (target, _) in &disabled {
            for (key, g) in &mut self.groups {
                if target_of(key) == target && (g.held.is_some() || g.sending.is_some()) {
                    g.held = None;
                    g.sending = None;
                    self.dirty.insert(format!("{GROUP}{key}"));
                }
            }
        }
        disabled
    }

    /// Whether the target is disabled, and since when.
    pub fn disabled_at(&self, target: &str) -> Option<i64> {
        self.health.get(target).and_then(|h| h.disabled_at)
    }

    /// Gives a target added again after it was disabled a fresh start.
    pub fn enable(&mut self, target: &str) {
        if self.health.remove(target).is_some() {
            self.dirty.insert(format!("{TARGET}{target}"));
        }
    }

    /// Drops the groups of targets `keep` rejects (removed from the registry) and groups
    /// idle since before `idle_before` with nothing held or pending.
    pub fn retire(&mut self, idle_before: i64, keep: impl Fn(&str) -> bool) {
        let dirty = &mut self.dirty;
        self.groups.retain(|key, g| {
            let idle = g.touched < idle_before && g.held.is_none() && g.sending.is_none();
            let kept = !idle && keep(target_of(key));
            if !kept {
                dirty.insert(format!("{GROUP}{key}"));
            }
            kept
        });
        self.health.retain(|target, _| {
            let kept = keep(target);
            if !kept {
                dirty.insert(format!("{TARGET}{target}"));
            }
            kept
        });
    }

    /// Marks state records as changed again: their write failed.
    pub fn redirty(&mut self, keys: impl IntoIterator<Item = String>) {
        self.dirty.extend(keys);
    }

    /// The state records changed since the last call: (key, JSON, or `None` for a
    /// tombstone).
    pub fn take_dirty(&mut self) -> Vec<(String, Option<Vec<u8>>)> {
        std::mem::take(&mut self.dirty)
            .into_iter()
            .map(|key| {
                let value = if let Some(g) = key.strip_prefix(GROUP) {
                    self.groups.get(g).map(serde_json::to_vec)
                } else {
                    let t = key.strip_prefix(TARGET).unwrap_or(&key);
                    self.health.get(t).map(serde_json::to_vec)
                };
                let value = value.map(|v| v.expect("state serializes"));
                (key, value)
            })
            .collect()
    }

    /// Applies one state record read back at start; an unreadable one is skipped
    /// (its group starts afresh) and reported.
    pub fn restore(&mut self, key: &str, value: Option<&[u8]>) -> Result<(), String> {
        let bad = |e: serde_json::Error| format!("state {key}: {e}");
        if let Some(g) = key.strip_prefix(GROUP) {
            match value {
                None => self.groups.remove(g).map(drop).unwrap_or_default(),
                Some(v) => {
                    self.groups
                        .insert(g.to_string(), serde_json::from_slice(v).map_err(bad)?);
                }
            }
        } else if let Some(t) = key.strip_prefix(TARGET) {
            match value {
                None => self.health.remove(t).map(drop).unwrap_or_default(),
                Some(v) => {
                    self.health
                        .insert(t.to_string(), serde_json::from_slice(v).map_err(bad)?);
                }
            }
        }
        Ok(())
    }

    /// Groups held in memory.
    pub fn len(&self) -> usize {
        self.groups.len()
    }

    /// Whether no group is.
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// Messages waiting for delivery or held back.
    pub fn pending(&self) -> usize {
        self.groups
            .values()
            .filter(|g| g.sending.is_some() || g.held.is_some())
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rf_operators::{Anomaly, AnomalyKind, EntityKind, Severity};
    use rf_schemas::TenantId;

    const MIN: i64 = 60_000;

    fn alert(start: i64) -> Alert {
        let a = Anomaly {
            tenant: TenantId::parse("acme").unwrap(),
            kind: AnomalyKind::CapacityBreach,
            entity_kind: EntityKind::Room,
            entity_id: "r1".into(),
            office_id: "lon".into(),
            room_id: "r1".into(),
            window_start: start,
            window_end: start + 20 * MIN,
            score: 1.0,
            severity: Severity::High,
            details: "{}".into(),
            ongoing: false,
        };
        Alert::of("capacity_breach", &a, "http://127.0.0.1:18080")
    }

    const KEY: &str = "acme/abc/capacity_breach/room/r1";

    fn retry() -> Outcome {
        Outcome::Retry {
            after: None,
            reason: "HTTP 500".into(),
        }
    }

    #[test]
    fn revisions_and_replays_are_not_sent_again() {
        let mut l = Ledger::new(Duration::from_secs(24 * 3600));
        assert_eq!(l.offer(KEY, 0, alert(0), 60 * MIN, 0), Offer::Send);
        assert_eq!(l.offer(KEY, 0, alert(0), 60 * MIN, MIN), Offer::Duplicate);
        assert_eq!(l.due(0).len(), 1);
        assert_eq!(
            l.settle(KEY, &Outcome::Delivered, 0, 0.5),
            Settled::Delivered
        );
        assert!(l.due(10 * MIN).is_empty());
        // After a restart, from the persisted records.
        let mut back = Ledger::new(Duration::from_secs(24 * 3600));
        for (key, value) in l.take_dirty() {
            back.restore(&key, value.as_deref()).unwrap();
        }
        assert_eq!(back.offer(KEY, 0, alert(0), 60 * MIN, 0), Offer::Duplicate);
        assert!(back.due(0).is_empty());
    }

    #[test]
    fn a_flapping_room_sends_one_message_per_cooldown() {
        let mut l = Ledger::new(Duration::from_secs(24 * 3600));
        assert_eq!(l.offer(KEY, 0, alert(0), 60 * MIN, 0), Offer::Send);
        l.settle(KEY, &Outcome::Delivered, 0, 0.5);
        for i in 1..=5 {
            let at = i * 10 * MIN;
            assert_eq!(l.offer(KEY, at, alert(at), 60 * MIN, at), Offer::Held);
        }
        l.release(59 * MIN);
        assert!(l.due(59 * MIN).is_empty(), "still cooling down");
        l.release(60 * MIN);
        let due = l.due(60 * MIN);
        assert_eq!(due.len(), 1);
        assert_eq!(
            due[0].1.data["grouped"], 4,
            "the latest, standing for 4 more"
        );
        assert_eq!(due[0].1.data["from"], 50 * MIN);
    }

    #[test]
    fn failures_retry_then_drop_and_a_target_failing_a_day_is_disabled() {
        let mut l = Ledger::new(Duration::from_secs(24 * 3600));
        l.offer(KEY, 0, alert(0), 60 * MIN, 0);
        let Settled::Retry(at) = l.settle(KEY, &retry(), 0, 0.5) else {
            panic!("a 500 is retried");
        };
        assert!(l.due(at - 1).is_empty() && l.due(at).len() == 1);
        assert!(l.disable_failing(at, 24 * 60 * MIN).is_empty());
        let day = 24 * 60 * MIN;
        assert!(matches!(
            l.settle(KEY, &retry(), day + 1, 0.5),
            Settled::Dropped(_)
        ));
        // Another alert of the target is held by nothing now, but the target is failing.
        let other = "acme/abc/capacity_breach/room/r2";
        assert_eq!(l.offer(other, 0, alert(0), 60 * MIN, day), Offer::Send);
        assert_eq!(
            l.disable_failing(day + 1, day),
            [("acme/abc".to_string(), "HTTP 500".to_string())]
        );
        assert!(l.due(day + 2).is_empty(), "a disabled target's messages go");
        assert_eq!(l.disabled_at("acme/abc"), Some(day + 1));
        assert!(l.disable_failing(day + 2, day).is_empty(), "reported once");
        l.enable("acme/abc");
        assert_eq!(l.disabled_at("acme/abc"), None);
    }

    #[test]
    fn a_delivery_clears_failures_and_refusals_are_dropped() {
        let mut l = Ledger::new(Duration::from_secs(24 * 3600));
        l.offer(KEY, 0, alert(0), 0, 0);
        l.settle(KEY, &retry(), 0, 0.5);
        l.settle(KEY, &Outcome::Delivered, 1000, 0.5);
        assert!(l.disable_failing(48 * 60 * MIN, 60 * MIN).is_empty());
        l.offer(KEY, MIN, alert(MIN), 0, MIN);
        let refused = Outcome::Rejected {
            reason: "HTTP 404".into(),
        };
        assert_eq!(
            l.settle(KEY, &refused, MIN, 0.5),
            Settled::Dropped("refused: HTTP 404".into())
        );
        assert!(l.due(2 * MIN).is_empty());
    }

    #[test]
    fn idle_groups_and_removed_targets_retire_with_tombstones() {
        let mut l = Ledger::new(Duration::from_secs(24 * 3600));
        l.offer(KEY, 0, alert(0), 0, 0);
        l.settle(KEY, &Outcome::Delivered, 0, 0.5);
        l.offer("acme/def/capacity_breach/room/r1", 0, alert(0), 0, 0);
        l.take_dirty();
        l.retire(10 * MIN, |t| t != "acme/def");
        assert!(l.is_empty());
        let dirty = l.take_dirty();
        assert_eq!(dirty.len(), 2);
        assert!(dirty.iter().all(|(_, v)| v.is_none()));
    }
}
