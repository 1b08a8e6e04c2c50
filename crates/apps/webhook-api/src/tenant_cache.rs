//! Tenants read recently, so a delivery costs no tenant read (and no unsealing of credentials):
//! entries live `ttl` (30 s by default); the admin API drops an entry when it changes the tenant.
//! With several replicas, a removed tenant or a rotated secret reaches the others within `ttl`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use domain::ids::TenantId;
use domain::tenant::Tenant;

type Entries = HashMap<TenantId, (Instant, Arc<Tenant>)>;

#[derive(Clone)]
pub struct TenantCache {
    ttl: Duration,
    entries: Arc<Mutex<Entries>>,
}

impl std::fmt::Debug for TenantCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TenantCache")
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl Default for TenantCache {
    fn default() -> Self {
        Self::new(Duration::from_secs(30))
    }
}

impl TenantCache {
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            entries: Arc::default(),
        }
    }

    pub fn get(&self, id: &TenantId) -> Option<Arc<Tenant>> {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries
            .get(id)
            .filter(|(at, _)| at.elapsed() < self.ttl)
            .map(|(_, t)| t.clone())
    }

    pub fn put(&self, tenant: Tenant) -> Arc<Tenant> {
        let t = Arc::new(tenant);
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if entries.len() > 10_000 {
            entries.retain(|_, (at, _)| at.elapsed() < self.ttl);
        }
        entries.insert(t.id.clone(), (Instant::now(), t.clone()));
        t
    }

    pub fn forget(&self, id: &TenantId) {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(id);
    }
}
