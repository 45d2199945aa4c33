//! A region's ClickHouse query slots, shared fairly: a request first takes one of its
//! tenant's own slots (at most `per_tenant` at once, of which at most `analytics` for
//! analytics requests), then one of the region's. A tenant flooding its heaviest queries
//! waits behind itself and leaves the other slots to the other tenants.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use rf_schemas::TenantId;

use crate::limits::Class;

/// The slots of one region.
pub struct Slots {
    region: Semaphore,
    per_tenant: usize,
    analytics: usize,
    /// Semaphores per tenant that has queried (all its queries, its analytics ones);
    /// tenants are the platform's (unknown ones are refused before), so this holds at
    /// most one entry per tenant.
    tenants: Mutex<HashMap<TenantId, TenantSlots>>,
}

/// A tenant's slots: for all its queries, and for its analytics ones.
type TenantSlots = (Arc<Semaphore>, Arc<Semaphore>);

/// A slot held: a tenant's (and its analytics one, for such a query) and the region's,
/// given back when dropped.
pub struct Slot<'a> {
    _analytics: Option<OwnedSemaphorePermit>,
    _tenant: OwnedSemaphorePermit,
    _region: tokio::sync::SemaphorePermit<'a>,
}

impl Slots {
    /// `total` slots in the region, at most `per_tenant` of them for any one tenant, of
    /// which at most `analytics` for its analytics requests.
    pub fn new(total: usize, per_tenant: usize, analytics: usize) -> Self {
        let per_tenant = per_tenant.clamp(1, total.max(1));
        Self {
            region: Semaphore::new(total),
            per_tenant,
            analytics: analytics.clamp(1, per_tenant),
            tenants: Mutex::default(),
        }
    }

    /// Waits for one of `tenant`'s analytics slots (for such a request), then one of its
    /// slots, then one of the region's.
    pub async fn take(&self, tenant: &TenantId, class: Class) -> Slot<'_> {
        let (own, analytics) = {
            let mut tenants = self.tenants.lock().unwrap_or_else(|e| e.into_inner());
            tenants
                .entry(tenant.clone())
                .or_insert_with(|| {
                    (
                        Arc::new(Semaphore::new(self.per_tenant)),
                        Arc::new(Semaphore::new(self.analytics)),
                    )
                })
                .clone()
        };
        // No semaphore is ever closed.
        let analytics_permit = match class {
            Class::Analytics => Some(analytics.acquire_owned().await.expect("never closed")),
            Class::General | Class::Ingest => None,
        };
        let tenant_permit = own.acquire_owned().await.expect("never closed");
        let region_permit = self.region.acquire().await.expect("never closed");
        Slot {
            _analytics: analytics_permit,
            _tenant: tenant_permit,
            _region: region_permit,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const SOON: Duration = Duration::from_millis(50);

    #[tokio::test]
    async fn a_flooding_tenant_leaves_slots_to_the_others() {
        let slots = Slots::new(4, 2, 2);
        let (noisy, quiet) = (
            TenantId::parse("noisy").unwrap(),
            TenantId::parse("quiet").unwrap(),
        );
        let a = slots.take(&noisy, Class::General).await;
        let b = slots.take(&noisy, Class::General).await;
        // A third query of the noisy tenant waits for its own slots...
        let third = tokio::time::timeout(SOON, slots.take(&noisy, Class::General)).await;
        assert!(third.is_err(), "over its share");
        // ...while the quiet tenant gets one at once.
        let q = tokio::time::timeout(SOON, slots.take(&quiet, Class::General))
            .await
            .expect("a slot of its own");
        assert_eq!(slots.region.available_permits(), 1);
        drop((a, q));
        let again = tokio::time::timeout(SOON, slots.take(&noisy, Class::General)).await;
        assert!(again.is_ok(), "a slot given back is taken again");
        drop(b);
    }

    #[tokio::test]
    async fn a_tenant_runs_one_analytics_query_at_a_time_beside_quick_ones() {
        let slots = Slots::new(8, 2, 1);
        let t = TenantId::parse("noisy").unwrap();
        let heavy = slots.take(&t, Class::Analytics).await;
        let second = tokio::time::timeout(SOON, slots.take(&t, Class::Analytics)).await;
        assert!(second.is_err(), "one analytics query at a time");
        let quick = tokio::time::timeout(SOON, slots.take(&t, Class::General))
            .await
            .expect("a quick query beside it");
        drop(heavy);
        let next = tokio::time::timeout(SOON, slots.take(&t, Class::Analytics)).await;
        assert!(next.is_ok(), "the next once the first ended");
        drop(quick);
    }

    #[test]
    fn the_shares_are_at_least_one_and_at_most_the_total() {
        assert_eq!(Slots::new(8, 0, 0).per_tenant, 1);
        assert_eq!(Slots::new(2, 5, 5).per_tenant, 2);
        assert_eq!(Slots::new(8, 2, 5).analytics, 2);
        assert_eq!(Slots::new(8, 2, 0).analytics, 1);
    }
}
