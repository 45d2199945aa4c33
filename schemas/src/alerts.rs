//! A tenant's alerts as its registry entry keeps them: where they go (Slack, Teams,
//! signed webhooks) and what they are about (rules).

use std::fmt;

use serde::{Deserialize, Serialize};

/// How much attention an anomaly deserves.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth a look.
    #[default]
    Low,
    /// Worth acting on.
    Medium,
    /// Act now.
    High,
}

impl Severity {
    /// The value of its ClickHouse Enum8.
    pub fn enum_value(self) -> i8 {
        self as i8 + 1
    }

    /// The contract's label.
    pub fn label(self) -> &'static str {
        match self {
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
        }
    }

    /// Parses a label.
    pub fn from_label(s: &str) -> Option<Self> {
        [Self::Low, Self::Medium, Self::High]
            .into_iter()
            .find(|v| v.label() == s)
    }
}

/// One destination of a tenant's alerts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AlertTarget {
    /// What receives them.
    pub kind: AlertKind,
    /// The webhook URL: a secret (it lets anyone post), so it is masked when shown.
    pub url: String,
    /// The key a generic webhook's bodies are signed with (HMAC-SHA256); made when the
    /// target is added and shown once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// Set once deliveries to the target failed for 24 hours: it gets nothing more until
    /// it is added again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled: Option<Disabled>,
}

/// Why and since when a target gets no alerts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Disabled {
    /// When, ms since the Unix epoch.
    pub at_ms: i64,
    /// The last failure.
    pub reason: String,
}

/// The kinds of alert receivers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertKind {
    /// A Slack incoming webhook.
    Slack,
    /// A Microsoft Teams Workflows webhook.
    Teams,
    /// Any HTTPS endpoint, signed with HMAC-SHA256.
    Webhook,
}

impl AlertKind {
    /// The kind's name in configs and metrics.
    pub fn label(self) -> &'static str {
        match self {
            Self::Slack => "slack",
            Self::Teams => "teams",
            Self::Webhook => "webhook",
        }
    }
}

/// A target URL's form: `https://host[:port]/…`, or `http://127.0.0.1:port/…` for a
/// receiver on the delivering machine; no credentials before the host, whose `@` would
/// hide the real one (`http://127.0.0.1@10.0.0.5/`). Where the host resolves to is judged
/// when an alert is sent (internal addresses only through `alerts.allowed_networks`).
fn check_target_url(url: &str) -> Result<(), String> {
    let bad = |why: &str| Err(format!("alert target url {url:?}: {why}"));
    let (scheme, rest) = match url.split_once("://") {
        Some(("https", rest)) => ("https", rest),
        Some(("http", rest)) => ("http", rest),
        _ => return bad("must be https:// (or http://127.0.0.1 for local receivers)"),
    };
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    if authority.contains('@') {
        return bad("must not carry credentials before the host");
    }
    let host = authority.rsplit_once(':').map_or(authority, |(h, _)| h);
    let host_ok = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-'));
    if !host_ok {
        return bad("the host must be a DNS name or an IPv4 address");
    }
    if scheme == "http" && host != "127.0.0.1" {
        return bad("must be https:// (or http://127.0.0.1 for local receivers)");
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return bad("must not contain spaces or control characters");
    }
    Ok(())
}

impl std::str::FromStr for AlertTarget {
    type Err = String;
    /// Parses `kind=url`, e.g. `slack=https://hooks.slack.com/services/…`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (kind, url) = s
            .split_once('=')
            .ok_or_else(|| format!("alert target {s:?}: expected kind=url"))?;
        let kind = match kind {
            "slack" => AlertKind::Slack,
            "teams" => AlertKind::Teams,
            "webhook" => AlertKind::Webhook,
            _ => {
                return Err(format!(
                    "alert target kind {kind:?}: expected slack, teams or webhook"
                ))
            }
        };
        check_target_url(url)?;
        Ok(Self {
            kind,
            url: url.to_owned(),
            secret: None,
            disabled: None,
        })
    }
}

impl AlertTarget {
    /// The URL with everything after the host hidden: fit to print and log.
    pub fn masked_url(&self) -> String {
        let after_scheme = self.url.find("://").map_or(0, |i| i + 3);
        match self.url[after_scheme..].find('/') {
            Some(i) => format!("{}/***", &self.url[..after_scheme + i]),
            None => self.url.clone(),
        }
    }

    /// A short stable name of the target (the first 12 hex digits of its URL's SHA-256):
    /// it keys delivery state and labels logs without showing the URL.
    pub fn id(&self) -> String {
        use sha2::Digest;
        sha2::Sha256::digest(self.url.as_bytes())[..6]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

/// Minutes between two messages of one rule about one room, office or sensor, unless a
/// rule says otherwise.
pub const DEFAULT_COOLDOWN_MINUTES: u32 = 60;

fn default_cooldown() -> u32 {
    DEFAULT_COOLDOWN_MINUTES
}

fn default_high() -> Severity {
    Severity::High
}

fn default_below() -> f64 {
    0.1
}

fn default_above() -> f64 {
    0.9
}

fn default_no_show_rate() -> f64 {
    0.3
}

fn default_min_meetings() -> u32 {
    5
}

/// What a tenant is alerted about. An anomaly is sent once per target, under the first
/// rule it matches; later anomalies of the same entity under the same rule within the
/// cooldown are grouped into one message sent when it ends.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "on", rename_all = "snake_case")]
pub enum AlertRule {
    /// A room or office above its capacity.
    CapacityBreach {
        /// The least severity sent.
        #[serde(default)]
        min_severity: Severity,
        /// Minutes between two messages about one entity.
        #[serde(default = "default_cooldown")]
        cooldown_minutes: u32,
    },
    /// A stuck or silent sensor, or implausible counts.
    SensorFault {
        /// The least severity sent.
        #[serde(default)]
        min_severity: Severity,
        /// Minutes between two messages about one entity.
        #[serde(default = "default_cooldown")]
        cooldown_minutes: u32,
    },
    /// Occupancy far from a room's or office's usual pattern for that hour of the week.
    UnusualOccupancy {
        /// The least severity sent.
        #[serde(default = "default_high")]
        min_severity: Severity,
        /// Minutes between two messages about one entity.
        #[serde(default = "default_cooldown")]
        cooldown_minutes: u32,
    },
    /// Any anomaly at least this severe.
    AnyAnomaly {
        /// The least severity sent.
        #[serde(default = "default_high")]
        min_severity: Severity,
        /// Minutes between two messages about one entity.
        #[serde(default = "default_cooldown")]
        cooldown_minutes: u32,
    },
    /// Every Monday: the offices whose last week's utilization was below `below`, or
    /// whose peak went above `above` of their capacity.
    WeeklyDigest {
        /// Weekly utilization (mean people over capacity, all hours) under this is listed.
        #[serde(default = "default_below")]
        below: f64,
        /// A week's peak people over capacity above this is listed.
        #[serde(default = "default_above")]
        above: f64,
    },
    /// Daily: a booked room whose meetings of the last 7 days were no-shows at least
    /// this often (nobody seen in a meeting's first 15 minutes), once a week per room.
    NoShowRate {
        /// The share of meetings that were no-shows.
        #[serde(default = "default_no_show_rate")]
        rate: f64,
        /// Fewer meetings than this in the 7 days say nothing.
        #[serde(default = "default_min_meetings")]
        min_meetings: u32,
    },
}

impl AlertRule {
    /// The rules of a tenant that does not say: breaches, sensor faults, high-severity
    /// unusual occupancy and the weekly digest.
    pub fn defaults() -> Vec<Self> {
        [
            "capacity_breach",
            "sensor_fault",
            "unusual_occupancy",
            "weekly_digest",
        ]
        .iter()
        .map(|s| s.parse().expect("default rules parse"))
        .collect()
    }

    /// The rule's name: part of each alert's idempotency key.
    pub fn name(&self) -> &'static str {
        match self {
            Self::CapacityBreach { .. } => "capacity_breach",
            Self::SensorFault { .. } => "sensor_fault",
            Self::UnusualOccupancy { .. } => "unusual_occupancy",
            Self::AnyAnomaly { .. } => "any_anomaly",
            Self::WeeklyDigest { .. } => "weekly_digest",
            Self::NoShowRate { .. } => "no_show_rate",
        }
    }

    /// Whether an anomaly of kind `kind` (the contract's label) and `severity` is this
    /// rule's.
    pub fn matches(&self, kind: &str, severity: Severity) -> bool {
        let (kinds, min): (&[&str], Severity) = match self {
            Self::CapacityBreach { min_severity, .. } => (&["capacity_breach"], *min_severity),
            Self::SensorFault { min_severity, .. } => (
                &["stuck_sensor", "silent_sensor", "implausible_value"],
                *min_severity,
            ),
            Self::UnusualOccupancy { min_severity, .. } => (&["occupancy"], *min_severity),
            Self::AnyAnomaly { min_severity, .. } => return severity >= *min_severity,
            Self::WeeklyDigest { .. } | Self::NoShowRate { .. } => return false,
        };
        severity >= min && kinds.contains(&kind)
    }

    /// Minutes between two messages about one entity (a week for the digest).
    pub fn cooldown_minutes(&self) -> u32 {
        match self {
            Self::CapacityBreach {
                cooldown_minutes, ..
            }
            | Self::SensorFault {
                cooldown_minutes, ..
            }
            | Self::UnusualOccupancy {
                cooldown_minutes, ..
            }
            | Self::AnyAnomaly {
                cooldown_minutes, ..
            } => *cooldown_minutes,
            Self::WeeklyDigest { .. } | Self::NoShowRate { .. } => 7 * 24 * 60,
        }
    }

    /// Checks thresholds and cooldowns; the message names the rule.
    pub fn validate(&self) -> Result<(), String> {
        match self {
            Self::WeeklyDigest { below, above }
                if !(0.0..=10.0).contains(below) || !(0.0..=10.0).contains(above) =>
            {
                return Err(format!(
                    "alert rule {self}: below and above are fractions of capacity between 0 and 10"
                ));
            }
            Self::WeeklyDigest { .. } => {}
            Self::NoShowRate { rate, min_meetings }
                if !(*rate > 0.0 && *rate <= 1.0) || *min_meetings == 0 =>
            {
                return Err(format!(
                    "alert rule {self}: the rate is a share of meetings above 0 and at most 1, and at least 1 meeting is needed"
                ));
            }
            Self::NoShowRate { .. } => {}
            _ if !(1..=7 * 24 * 60).contains(&self.cooldown_minutes()) => {
                return Err(format!(
                    "alert rule {self}: the cooldown must be between 1 and 10080 minutes (a week)"
                ))
            }
            _ => {}
        }
        Ok(())
    }
}

/// `name[>=severity][/cooldown_minutes]`, or `weekly_digest[:below-above]`.
impl fmt::Display for AlertRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::WeeklyDigest { below, above } => write!(f, "weekly_digest:{below}-{above}"),
            Self::NoShowRate { rate, min_meetings } => {
                write!(f, "no_show_rate:{rate}/{min_meetings}")
            }
            Self::CapacityBreach {
                min_severity,
                cooldown_minutes,
            }
            | Self::SensorFault {
                min_severity,
                cooldown_minutes,
            }
            | Self::UnusualOccupancy {
                min_severity,
                cooldown_minutes,
            }
            | Self::AnyAnomaly {
                min_severity,
                cooldown_minutes,
            } => write!(
                f,
                "{}>={}/{cooldown_minutes}",
                self.name(),
                min_severity.label()
            ),
        }
    }
}

impl std::str::FromStr for AlertRule {
    type Err = String;
    /// Parses what [`Display`](fmt::Display) prints; left-out parts take their defaults.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |why: &str| format!("alert rule {s:?}: {why}");
        if let Some(rest) = s.strip_prefix("no_show_rate") {
            let (rate, min_meetings) = match rest.strip_prefix(':') {
                None if rest.is_empty() => (default_no_show_rate(), default_min_meetings()),
                None => {
                    return Err(bad(
                        "expected no_show_rate or no_show_rate:RATE[/MIN_MEETINGS]",
                    ))
                }
                Some(spec) => {
                    let (r, m) = spec.split_once('/').unwrap_or((spec, ""));
                    let rate = r
                        .parse::<f64>()
                        .map_err(|_| bad(&format!("{r:?} is not a share, e.g. 0.3")))?;
                    let min = if m.is_empty() {
                        default_min_meetings()
                    } else {
                        m.parse::<u32>()
                            .map_err(|_| bad(&format!("{m:?} is not a number of meetings")))?
                    };
                    (rate, min)
                }
            };
            let rule = Self::NoShowRate { rate, min_meetings };
            rule.validate()?;
            return Ok(rule);
        }
        if let Some(rest) = s.strip_prefix("weekly_digest") {
            let (below, above) = match rest.strip_prefix(':') {
                None if rest.is_empty() => (default_below(), default_above()),
                None => return Err(bad("expected weekly_digest or weekly_digest:BELOW-ABOVE")),
                Some(range) => {
                    let (b, a) = range
                        .split_once('-')
                        .ok_or_else(|| bad("expected weekly_digest:BELOW-ABOVE, e.g. 0.1-0.9"))?;
                    let number = |v: &str| {
                        v.parse::<f64>()
                            .map_err(|_| bad(&format!("{v:?} is not a number")))
                    };
                    (number(b)?, number(a)?)
                }
            };
            let rule = Self::WeeklyDigest { below, above };
            rule.validate()?;
            return Ok(rule);
        }
        let (rest, cooldown) =
            match s.split_once('/') {
                Some((r, c)) => (
                    r,
                    Some(c.parse::<u32>().map_err(|_| {
                        bad(&format!("the cooldown {c:?} is not a number of minutes"))
                    })?),
                ),
                None => (s, None),
            };
        let (name, severity) = match rest.split_once(">=") {
            Some((n, v)) => (
                n,
                Some(Severity::from_label(v).ok_or_else(|| {
                    bad(&format!("severity {v:?}: expected low, medium or high"))
                })?),
            ),
            None => (rest, None),
        };
        let cooldown_minutes = cooldown.unwrap_or(DEFAULT_COOLDOWN_MINUTES);
        let rule = match name {
            "capacity_breach" => Self::CapacityBreach {
                min_severity: severity.unwrap_or_default(),
                cooldown_minutes,
            },
            "sensor_fault" => Self::SensorFault {
                min_severity: severity.unwrap_or_default(),
                cooldown_minutes,
            },
            "unusual_occupancy" => Self::UnusualOccupancy {
                min_severity: severity.unwrap_or(Severity::High),
                cooldown_minutes,
            },
            "any_anomaly" => Self::AnyAnomaly {
                min_severity: severity.unwrap_or(Severity::High),
                cooldown_minutes,
            },
            _ => return Err(bad(
                "expected capacity_breach, sensor_fault, unusual_occupancy, any_anomaly, weekly_digest or no_show_rate",
            )),
        };
        rule.validate()?;
        Ok(rule)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_parse_print_and_match() {
        let rule: AlertRule = "unusual_occupancy>=medium/30".parse().unwrap();
        assert_eq!(
            rule,
            AlertRule::UnusualOccupancy {
                min_severity: Severity::Medium,
                cooldown_minutes: 30
            }
        );
        assert_eq!(rule.to_string().parse::<AlertRule>().unwrap(), rule);
        assert!(rule.matches("occupancy", Severity::High));
        assert!(!rule.matches("occupancy", Severity::Low));
        assert!(!rule.matches("capacity_breach", Severity::High));
        let faults: AlertRule = "sensor_fault".parse().unwrap();
        assert!(faults.matches("silent_sensor", Severity::Low));
        assert_eq!(faults.cooldown_minutes(), 60);
        let digest: AlertRule = "weekly_digest:0.2-0.8".parse().unwrap();
        assert_eq!(
            digest,
            AlertRule::WeeklyDigest {
                below: 0.2,
                above: 0.8
            }
        );
        assert_eq!(digest.to_string().parse::<AlertRule>().unwrap(), digest);
        for bad in [
            "breach",
            "sensor_fault>=urgent",
            "sensor_fault/0",
            "sensor_fault/soon",
            "weekly_digest:0.2",
            "weekly_digest:a-b",
            "no_show_rate:1.5",
            "no_show_rate:0.3/0",
            "no_show_rate:often",
            "no_show_rates",
        ] {
            assert!(bad.parse::<AlertRule>().is_err(), "{bad}");
        }
        let rule: AlertRule = "no_show_rate:0.4/8".parse().unwrap();
        assert_eq!(
            rule,
            AlertRule::NoShowRate {
                rate: 0.4,
                min_meetings: 8
            }
        );
        assert_eq!(rule.to_string().parse::<AlertRule>().unwrap(), rule);
        assert!(!rule.matches("occupancy", Severity::High));
        let default: AlertRule = "no_show_rate".parse().unwrap();
        assert_eq!(
            default,
            AlertRule::NoShowRate {
                rate: 0.3,
                min_meetings: 5
            }
        );
    }

    #[test]
    fn rules_default_when_an_entry_has_none() {
        let json = r#"[{"on":"any_anomaly"},{"on":"weekly_digest","below":0.05}]"#;
        let rules: Vec<AlertRule> = serde_json::from_str(json).unwrap();
        assert_eq!(
            rules,
            [
                AlertRule::AnyAnomaly {
                    min_severity: Severity::High,
                    cooldown_minutes: 60
                },
                AlertRule::WeeklyDigest {
                    below: 0.05,
                    above: 0.9
                }
            ]
        );
        assert_eq!(
            AlertRule::defaults()
                .iter()
                .map(|r| r.to_string())
                .collect::<Vec<_>>(),
            [
                "capacity_breach>=low/60",
                "sensor_fault>=low/60",
                "unusual_occupancy>=high/60",
                "weekly_digest:0.1-0.9"
            ]
        );
    }

    #[test]
    fn bad_alert_targets_are_refused_and_ids_hide_urls() {
        assert!("slack".parse::<AlertTarget>().is_err());
        assert!("pager=https://x".parse::<AlertTarget>().is_err());
        assert!("teams=http://example.com/hook"
            .parse::<AlertTarget>()
            .is_err());
        for smuggled in [
            "webhook=http://127.0.0.1@10.0.0.5/",
            "webhook=https://user:pw@hooks.example.com/x",
            "webhook=http://127.0.0.1.nip.io/x",
            "webhook=https://[::1]/x",
            "webhook=https:///x",
            "webhook=https://a b/x",
            "webhook=ftp://127.0.0.1/x",
        ] {
            assert!(smuggled.parse::<AlertTarget>().is_err(), "{smuggled}");
        }
        let local: AlertTarget = "webhook=http://127.0.0.1:9000/hook".parse().unwrap();
        assert_eq!(local.id().len(), 12);
        assert!(!local.url.contains(&local.id()));
        let other: AlertTarget = "webhook=http://127.0.0.1:9000/other".parse().unwrap();
        assert_ne!(local.id(), other.id());
    }
}
