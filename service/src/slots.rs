//! A region's ClickHouse query slots, shared fairly: a request first takes one of its
//! tenant's own slots (at most `per_tenant` at once), then one of the region's. A tenant
//! flooding its heaviest queries waits behind itself and leaves the other slots to the
//! other tenants.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use rf_schemas::TenantId;

/// The slots of one region.
pub struct Slots {
    region: Semaphore,
    per_tenant: usize,
    /// One semaphore per tenant that has queried; tenants are the platform's (unknown
    /// ones are refused before), so this holds at most one entry per tenant.
    tenants: Mutex<HashMap<TenantId, Arc<Semaphore>>>,
}

/// A slot held: a tenant's and the region's, given back when dropped.
pub struct Slot<'a> {
    _tenant: OwnedSemaphorePermit,
    _region: tokio::sync::SemaphorePermit<'a>,
}

impl Slots {
    /// `total` slots in the region, at most `per_tenant` of them for any one tenant.
    pub fn new(total: usize, per_tenant: usize) -> Self {
        Self {
            region: Semaphore::new(total),
            per_tenant: per_tenant.clamp(1, total.max(1)),
            tenants: Mutex::default(),
        }
    }

    /// Waits for one of `tenant`'s slots, then for one of the region's.
    pub async fn take(&self, tenant: &TenantId) -> Slot<'_> {
        let own = {
            let mut tenants = self.tenants.lock().unwrap_or_else(|e| e.into_inner());
            tenants
                .entry(tenant.clone())
                .or_insert_with(|| Arc::new(Semaphore::new(self.per_tenant)))
                .clone()
        };
        // Neither semaphore is ever closed.
        let tenant_permit = own.acquire_owned().await.expect("never closed");
        let region_permit = self.region.acquire().await.expect("never closed");
        Slot {
            _tenant: tenant_permit,
            _region: region_permit,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_flooding_tenant_leaves_slots_to_the_others() {
        let slots = Slots::new(4, 2);
        let (noisy, quiet) = (
            TenantId::parse("noisy").unwrap(),
            TenantId::parse("quiet").unwrap(),
        );
        let a = slots.take(&noisy).await;
        let b = slots.take(&noisy).await;
        // A third query of the noisy tenant waits for its own slots...
        let third = tokio::time::timeout(Duration::from_millis(50), slots.take(&noisy)).await;
        assert!(third.is_err(), "over its share");
        // ...while the quiet tenant gets one at once.
        let q = tokio::time::timeout(Duration::from_millis(50), slots.take(&quiet))
            .await
            .expect("a slot of its own");
        assert_eq!(slots.region.available_permits(), 1);
        drop((a, q));
        let again = tokio::time::timeout(Duration::from_millis(50), slots.take(&noisy)).await;
        assert!(again.is_ok(), "a slot given back is taken again");
        drop(b);
    }

    #[test]
    fn the_share_is_at_least_one_and_at_most_the_total() {
        assert_eq!(Slots::new(8, 0).per_tenant, 1);
        assert_eq!(Slots::new(2, 5).per_tenant, 2);
    }
}
