//! Which tenants a worker's source must not read for now, and why: the faults of one
//! tenant (a schema the registry has not given yet, stores that do not acknowledge) hold
//! back that tenant's partitions only, while the worker's other tenants flow on.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use rf_schemas::TenantId;

/// Why a tenant is paused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Why {
    /// The decoder holds the tenant's records until the registry gives a schema.
    Schema = 1,
    /// The tenant's stores are behind: too many of its epochs wait for acknowledgement.
    Sinks = 2,
    /// A store refused the tenant's rows for good: nothing more is read until an operator
    /// fixes the cause and restarts (the offsets stay where the failure was).
    Quarantine = 4,
}

/// The paused tenants of one worker, shared by its operators (one thread: no locks).
#[derive(Clone, Debug, Default)]
pub struct Paused(Rc<RefCell<HashMap<TenantId, u8>>>);

impl Paused {
    /// Pauses `tenant` for `why` (or lifts that reason); it stays paused while any
    /// reason holds.
    pub fn set(&self, tenant: &TenantId, why: Why, on: bool) {
        let mut map = self.0.borrow_mut();
        if on {
            *map.entry(tenant.clone()).or_default() |= why as u8;
        } else if let Some(bits) = map.get_mut(tenant) {
            *bits &= !(why as u8);
            if *bits == 0 {
                map.remove(tenant);
            }
        }
    }

    /// Whether `tenant` is paused for any reason.
    pub fn contains(&self, tenant: &TenantId) -> bool {
        self.0.borrow().contains_key(tenant)
    }

    /// Whether `tenant` is paused for `why`.
    pub fn is(&self, tenant: &TenantId, why: Why) -> bool {
        self.0
            .borrow()
            .get(tenant)
            .is_some_and(|bits| bits & why as u8 != 0)
    }

    /// Whether no tenant is paused.
    pub fn is_empty(&self) -> bool {
        self.0.borrow().is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tenant_stays_paused_while_any_reason_holds() {
        let (p, t) = (Paused::default(), TenantId::parse("acme").unwrap());
        p.set(&t, Why::Schema, true);
        p.set(&t, Why::Sinks, true);
        p.set(&t, Why::Schema, false);
        assert!(p.contains(&t) && p.is(&t, Why::Sinks) && !p.is(&t, Why::Schema));
        p.set(&t, Why::Sinks, false);
        assert!(!p.contains(&t) && p.is_empty());
    }
}
