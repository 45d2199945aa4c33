//! Which tenants a worker's source must not read for now, and why: the faults of one
//! tenant (a schema the registry has not given yet, stores that do not acknowledge) hold
//! back that tenant's partitions only, while the worker's other tenants flow on.

use std::cell::{Cell, RefCell};
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

impl Why {
    /// Every reason, with its name in metrics and logs.
    pub const ALL: [(Why, &'static str); 3] = [
        (Why::Schema, "schema"),
        (Why::Sinks, "sinks"),
        (Why::Quarantine, "quarantine"),
    ];
}

/// The paused tenants of one worker, shared by its operators (one thread: no locks).
#[derive(Clone, Debug, Default)]
pub struct Paused(Rc<Shared>);

#[derive(Debug, Default)]
struct Shared {
    tenants: RefCell<HashMap<TenantId, u8>>,
    /// Counts changes, so that watchers look only when something changed.
    changes: Cell<u64>,
}

impl Paused {
    /// Pauses `tenant` for `why` (or lifts that reason); it stays paused while any
    /// reason holds.
    pub fn set(&self, tenant: &TenantId, why: Why, on: bool) {
        if self.is(tenant, why) == on {
            return;
        }
        let mut map = self.0.tenants.borrow_mut();
        if on {
            *map.entry(tenant.clone()).or_default() |= why as u8;
        } else if let Some(bits) = map.get_mut(tenant) {
            *bits &= !(why as u8);
            if *bits == 0 {
                map.remove(tenant);
            }
        }
        self.0.changes.set(self.0.changes.get() + 1);
    }

    /// How many changes there were so far.
    pub fn changes(&self) -> u64 {
        self.0.changes.get()
    }

    /// Every paused tenant with its reasons (bits of [`Why`]).
    pub fn snapshot(&self) -> HashMap<TenantId, u8> {
        self.0.tenants.borrow().clone()
    }

    /// Whether `tenant` is paused for any reason.
    pub fn contains(&self, tenant: &TenantId) -> bool {
        self.0.tenants.borrow().contains_key(tenant)
    }

    /// Whether `tenant` is paused for `why`.
    pub fn is(&self, tenant: &TenantId, why: Why) -> bool {
        self.0
            .tenants
            .borrow()
            .get(tenant)
            .is_some_and(|bits| bits & why as u8 != 0)
    }

    /// Whether no tenant is paused.
    pub fn is_empty(&self) -> bool {
        self.0.tenants.borrow().is_empty()
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
        assert_eq!(p.changes(), 4);
        p.set(&t, Why::Sinks, false);
        assert_eq!(p.changes(), 4, "no change, no count");
    }
}
