//! The Grafana dashboard in `deploy/grafana` is valid JSON and queries only metrics the
//! pipeline and the query service export.

use std::collections::BTreeSet;

#[test]
fn the_dashboard_queries_only_exported_metrics() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../deploy/grafana/roomflow.json"
    );
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut exported: BTreeSet<String> = rf_pipelines::Metrics::new().names().into_iter().collect();
    exported.extend(rf_service::METRICS.iter().map(|m| m.to_string()));

    let panels = dashboard["panels"].as_array().unwrap();
    assert!(panels.len() >= 10);
    let mut used = BTreeSet::new();
    for panel in panels {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            for word in expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
                if let Some(name) = word.strip_prefix("rf_") {
                    let name = format!("rf_{name}");
                    let base = ["_bucket", "_count", "_sum"]
                        .iter()
                        .find_map(|s| name.strip_suffix(s))
                        .unwrap_or(&name)
                        .to_owned();
                    used.insert(base);
                }
            }
        }
    }
    let unknown: Vec<_> = used.difference(&exported).collect();
    assert!(unknown.is_empty(), "not exported: {unknown:?}");
    assert!(used.contains("rf_consumer_lag") && used.contains("rf_epoch_latency_seconds"));
}
