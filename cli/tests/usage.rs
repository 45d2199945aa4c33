//! Usage per tenant, for billing and capacity planning: the query service counts each
//! tenant's requests, and the job worker measures each tenant's bytes in ClickHouse.

mod common;

use common::*;
use rf_service::ServiceConfig;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_tenants_requests_and_storage_are_measured() {
    let tenant = fresh_tenant("usage");
    let s = settings(&tenant);
    stack_is_up(&s);
    create_tenant(&tenant).await;
    let spec = DayRooms {
        office: "lon",
        region: "EMEA",
        country: "GB",
        zone: "Europe/London",
        floor: 1,
        kind: "MEETING",
        rooms: 20,
    };
    let first = chrono::Utc::now().date_naive() - chrono::Days::new(10);
    store_room_days(&tenant, &spec, first, 10, 0.4);

    // Storage: what ClickHouse says the tenant's database holds.
    let db = tenant.clickhouse_db();
    let on_disk: i64 = clickhouse_lines(&format!(
        "SELECT sum(bytes_on_disk) FROM system.parts WHERE active AND database = '{db}'"
    ))[0]
        .parse()
        .unwrap();
    assert!(on_disk > 0);
    let measured = {
        let s = s.clone();
        let tenant = tenant.clone();
        tokio::task::spawn_blocking(move || {
            let metrics = rf_pipelines::Metrics::new();
            let mut worker = rf_jobs::queue::worker::Worker::new(&s, &Default::default())
                .unwrap()
                .with_metrics(metrics.clone());
            worker.measure_storage().unwrap();
            metrics
                .tenant_storage
                .with_label_values(&[tenant.as_str(), "clickhouse"])
                .get()
        })
        .await
        .unwrap()
    };
    assert_eq!(measured, on_disk);

    // Requests: each answered request of the tenant's credentials counts, whatever its
    // status; requests without a valid credential count for nobody.
    let config = ServiceConfig::default();
    let base = serve(&config, &s).await;
    let token = rf_service::mint(&config.jwt_secret, &tenant, "usage", 300);
    let asked = base.clone();
    tokio::task::spawn_blocking(move || {
        let base = asked;
        assert_eq!(
            status_and_json(&format!("{base}/v1/offices"), &token).0,
            200
        );
        assert_eq!(
            status_and_json(&format!("{base}/v1/offices/nowhere/rooms"), &token).0,
            404
        );
        assert_eq!(
            status_and_json(&format!("{base}/v1/offices"), "not-a-token").0,
            401
        );
    })
    .await
    .unwrap();
    let metrics = metrics_text(base).await;
    let line = format!("rf_api_tenant_requests_total{{tenant=\"{tenant}\"}} 2");
    assert!(metrics.contains(&line), "{line} in\n{metrics}");
}
