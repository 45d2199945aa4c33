//! Registering the project's Avro schemas under each tenant's subjects.

use apache_avro::schema_compatibility::SchemaCompatibility;
use apache_avro::Schema;

use rf_pipelines::CompatibilityCheck;
use rf_schemas::registry::RegistryClient;
use rf_schemas::{TenantId, LATER_SCHEMAS, SUBJECT_SCHEMAS};

use crate::JobError;

/// One subject's outcome.
#[derive(Debug)]
pub struct Registered {
    /// `<topic>-value`.
    pub subject: String,
    /// The schema id the registry gave.
    pub id: u32,
    /// The schema registered.
    pub schema: String,
}

/// Registers the project's schemas for every tenant, in two passes (see [`register`]):
/// first the schemas every tenant started with, then the later versions, so that the ids
/// of the first pass never change when versions are added.
pub fn register_all(
    registry: &RegistryClient,
    tenants: &[TenantId],
    check: CompatibilityCheck,
) -> Result<Vec<Registered>, JobError> {
    let mut done = register(registry, tenants, &SUBJECT_SCHEMAS, check)?;
    done.extend(register(registry, tenants, &LATER_SCHEMAS, check)?);
    Ok(done)
}

/// Registers `schemas` (topic prefix, Avro schema) for every tenant, in a fixed order (the
/// local registry hands out ids in registration order). A schema that cannot read what
/// every registered version of its subject wrote (not BACKWARD compatible) is refused
/// with the reason, and nothing after it is registered. The same schema again returns
/// its existing id.
pub fn register(
    registry: &RegistryClient,
    tenants: &[TenantId],
    schemas: &[(&str, &str)],
    check: CompatibilityCheck,
) -> Result<Vec<Registered>, JobError> {
    let mut tenants = tenants.to_vec();
    tenants.sort();
    let mut done = Vec::new();
    for tenant in &tenants {
        for &(prefix, schema) in schemas {
            let subject = format!("{prefix}{tenant}-value");
            check_backward(registry, &subject, schema)?;
            if check == CompatibilityCheck::Roomflow {
                registry.set_compatibility(&subject, "NONE")?;
            }
            let id = registry.register(&subject, schema)?;
            done.push(Registered {
                subject,
                id,
                schema: schema.to_owned(),
            });
        }
    }
    Ok(done)
}

/// Whether `schema` can read data written with every version registered under `subject`.
pub fn check_backward(
    registry: &RegistryClient,
    subject: &str,
    schema: &str,
) -> Result<(), JobError> {
    let reader = Schema::parse_str(schema).map_err(|e| JobError::Incompatible {
        subject: subject.to_owned(),
        reason: format!("the new schema does not parse: {e}"),
    })?;
    for version in registry.versions(subject)? {
        let text = registry.schema_at(subject, version)?;
        let writer = Schema::parse_str(&text).map_err(|e| JobError::Incompatible {
            subject: subject.to_owned(),
            reason: format!("version {version} in the registry does not parse: {e}"),
        })?;
        if let Err(e) = SchemaCompatibility::can_read(&writer, &reader) {
            return Err(JobError::Incompatible {
                subject: subject.to_owned(),
                reason: format!(
                    "not BACKWARD compatible: it cannot read what version {version} wrote: {e}"
                ),
            });
        }
    }
    Ok(())
}
