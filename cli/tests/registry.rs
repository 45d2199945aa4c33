//! Schema registration against the real local registry.

use std::time::Duration;

use rf_jobs::schemas::{register, register_all};
use rf_jobs::JobError;
use rf_pipelines::{CompatibilityCheck, RegistryConfig};
use rf_schemas::registry::{RegistryClient, RegistryError};
use rf_schemas::{TenantId, OCCUPANCY_READING_AVSC};

/// The local stack's setting: the stand-in registry's own check is wrong.
const CHECK: CompatibilityCheck = CompatibilityCheck::Roomflow;

fn client() -> RegistryClient {
    let c = RegistryConfig::default();
    RegistryClient::new(&c.url, Duration::from_secs(c.timeout_secs))
}

fn fresh_tenant(tag: &str) -> TenantId {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    TenantId::parse(&format!("reg-{tag}-{}", nanos % 1_000_000_000)).unwrap()
}

#[test]
fn registering_is_idempotent_and_ids_resolve_to_the_schema() {
    let registry = client();
    let tenant = fresh_tenant("idem");
    let first = register_all(&registry, std::slice::from_ref(&tenant), CHECK)
        .expect("the local registry is up (deploy/local/stack.sh start)");
    let second = register_all(&registry, std::slice::from_ref(&tenant), CHECK).unwrap();
    // v1 and the room schema, then v2 of the readings and the booking schema.
    assert_eq!(first.len(), 4);
    assert_eq!(first[3].subject, format!("bookings.{tenant}-value"));
    let ids = |r: &[rf_jobs::schemas::Registered]| {
        r.iter()
            .map(|x| (x.subject.clone(), x.id))
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(&first), ids(&second));
    assert_eq!(first[0].subject, format!("occupancy.{tenant}-value"));
    let text = registry.schema_by_id(first[0].id).unwrap();
    assert!(text.contains("OccupancyReading"));
    assert!(matches!(
        registry.schema_by_id(999_999),
        Err(RegistryError::UnknownId(999_999))
    ));
}

#[test]
fn an_incompatible_change_is_refused_with_the_reason() {
    let registry = client();
    let tenant = fresh_tenant("compat");
    register_all(&registry, std::slice::from_ref(&tenant), CHECK).unwrap();
    // A new field without a default cannot read old readings: not BACKWARD compatible.
    let breaking = OCCUPANCY_READING_AVSC.replace(
        r#"{"name": "people_count", "type": "int", "doc": "People in the room at ts."},"#,
        r#"{"name": "people_count", "type": "int", "doc": "People in the room at ts."}, {"name": "badge_count", "type": "int"},"#,
    );
    assert_ne!(breaking, OCCUPANCY_READING_AVSC);
    for check in [CompatibilityCheck::Roomflow, CompatibilityCheck::Registry] {
        let err = register(
            &registry,
            std::slice::from_ref(&tenant),
            &[("occupancy.", &breaking)],
            check,
        )
        .unwrap_err();
        let JobError::Incompatible { subject, reason } = &err else {
            panic!("expected a refusal, got {err:?}");
        };
        assert_eq!(subject, &format!("occupancy.{tenant}-value"));
        assert!(
            reason.contains("not BACKWARD compatible") && reason.contains("badge_count"),
            "the reason names the rule and the field: {reason}"
        );
    }
    // The refused change left the subject as it was: registering v1 again still works.
    let again = register_all(&registry, &[tenant], CHECK).unwrap();
    assert_eq!(again.len(), 4);
}
