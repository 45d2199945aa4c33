//! Registering the project's Avro schemas under each tenant's subjects.

use rf_schemas::registry::RegistryClient;
use rf_schemas::{TenantId, SUBJECT_SCHEMAS};

use crate::JobError;

/// One subject's outcome.
#[derive(Debug)]
pub struct Registered {
    /// `<topic>-value`.
    pub subject: String,
    /// The schema id the registry gave.
    pub id: u32,
}

/// Registers the project's schemas for every tenant; see [`register`].
pub fn register_all(
    registry: &RegistryClient,
    tenants: &[TenantId],
) -> Result<Vec<Registered>, JobError> {
    register(registry, tenants, &SUBJECT_SCHEMAS)
}

/// Registers `schemas` (topic prefix, Avro schema) for every tenant, in a fixed order (the
/// local registry hands out ids in registration order). A change that is not compatible
/// with the subject's latest version is refused with the registry's reason, and nothing
/// after it is registered.
pub fn register(
    registry: &RegistryClient,
    tenants: &[TenantId],
    schemas: &[(&str, &str)],
) -> Result<Vec<Registered>, JobError> {
    let mut tenants = tenants.to_vec();
    tenants.sort();
    let mut done = Vec::new();
    for tenant in &tenants {
        for &(prefix, schema) in schemas {
            let subject = format!("{prefix}{tenant}-value");
            // The registry itself checks compatibility (BACKWARD by default) and refuses
            // with its reason; the same schema again returns its existing id.
            let id = registry.register(&subject, schema)?;
            done.push(Registered { subject, id });
        }
    }
    Ok(done)
}
