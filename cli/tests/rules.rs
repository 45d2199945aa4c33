//! The alert rules in `deploy/prometheus` name only metrics roomflow exports: renaming a
//! metric without its rules fails here (promtool checks and unit-tests the rules
//! themselves in `deploy/local/test.sh`).

use std::collections::{BTreeSet, HashSet};

#[test]
fn the_alert_rules_name_only_metrics_roomflow_exports() {
    let rules = include_str!("../../deploy/prometheus/roomflow.rules.yml");
    let mut exported: HashSet<String> = rf_pipelines::Metrics::new().names().into_iter().collect();
    exported.extend(rf_service::METRICS.iter().map(|m| m.to_string()));
    let named: BTreeSet<&str> = rules
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("rf_"))
        .map(|w| w.trim_end_matches("_bucket"))
        .collect();
    let unknown: Vec<&&str> = named.iter().filter(|n| !exported.contains(**n)).collect();
    assert!(
        unknown.is_empty(),
        "the rules name {unknown:?}, which roomflow does not export"
    );
    for family in [
        "rf_api_requests_total",
        "rf_consumer_lag",
        "rf_epoch_latency_seconds",
        "rf_dead_letters_total",
        "rf_alert_targets_disabled_total",
        "rf_readings_counted_total",
        "rf_jobs_finished_total",
        "rf_job_worker_heartbeat_seconds",
    ] {
        assert!(named.contains(family), "no rule watches {family}");
    }
}
