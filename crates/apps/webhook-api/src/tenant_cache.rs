//! Tenants read recently, so a delivery costs no tenant read (and no unsealing of credentials):
//! entries live `ttl` (30 s by default); the admin API drops an entry when it changes the tenant.
//! With several replicas, a removed tenant or a rotated secret reaches the others within `ttl`.
//!
//! Under load an expiry must not turn into a stampede. Every request that found the entry gone
//! used to read the tenant itself: at 1,000 deliveries a second that was dozens of reads at
//! once, each holding a pooled connection, and the pool opened new ones while the deliveries
//! waited (ADR 0021). So an entry past half its `ttl` is served while one background read
//! renews it, and when an entry is missing, one request reads the tenant while the others for
//! that tenant wait for its answer.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use domain::ids::TenantId;
use domain::tenant::Tenant;
use ports::error::PortResult;
use ports::stores::TenantStore;

struct Entry {
    at: Instant,
    tenant: Arc<Tenant>,
    /// A background read is renewing it.
    renewing: bool,
}

#[derive(Clone)]
pub struct TenantCache {
    ttl: Duration,
    entries: Arc<Mutex<HashMap<TenantId, Entry>>>,
    /// One gate per tenant being read after a miss; present only while a read runs.
    loading: Arc<Mutex<HashMap<TenantId, Arc<tokio::sync::Mutex<()>>>>>,
    /// Bumped by `forget`: a read that began before it does not store what it read.
    generation: Arc<AtomicU64>,
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

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What the cache holds for a tenant.
enum Found {
    Fresh(Arc<Tenant>),
    /// Past half its life, and this caller is the one to renew it.
    Renew(Arc<Tenant>),
    Missing,
}

impl TenantCache {
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            entries: Arc::default(),
            loading: Arc::default(),
            generation: Arc::default(),
        }
    }

    /// The tenant, from the cache or else from `store`. The store's error when it had to be read
    /// and could not be (`NotFound` for an unknown tenant).
    pub async fn get(
        &self,
        id: &TenantId,
        store: &Arc<dyn TenantStore>,
    ) -> PortResult<Arc<Tenant>> {
        match self.lookup(id, true) {
            Found::Fresh(t) => return Ok(t),
            Found::Renew(t) => {
                let (cache, store, id) = (self.clone(), store.clone(), id.clone());
                tokio::spawn(async move {
                    let generation = cache.generation.load(Ordering::SeqCst);
                    match store.get(&id).await {
                        Ok(t) => {
                            cache.put(generation, t);
                        }
                        Err(e) => {
                            if let Some(entry) = lock(&cache.entries).get_mut(&id) {
                                entry.renewing = false;
                            }
                            tracing::warn!(error = %ports::Chain(&e), tenant = %id, "cannot renew a cached tenant; it is served until it expires");
                        }
                    }
                });
                return Ok(t);
            }
            Found::Missing => {}
        }
        let gate = lock(&self.loading).entry(id.clone()).or_default().clone();
        let _turn = gate.lock().await;
        // The request ahead in line may have read it meanwhile.
        let read = match self.lookup(id, false) {
            Found::Fresh(t) | Found::Renew(t) => Ok(t),
            Found::Missing => {
                let generation = self.generation.load(Ordering::SeqCst);
                store.get(id).await.map(|t| self.put(generation, t))
            }
        };
        // Whoever leaves the gate last removes it; one removed early only lets a second read run.
        lock(&self.loading).remove(id);
        read
    }

    /// Drops the tenant's entry (the admin API changed or removed it), and keeps reads already
    /// running from storing what they read before the change.
    pub fn forget(&self, id: &TenantId) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        lock(&self.entries).remove(id);
    }

    /// `renew`: an entry past half its life is returned as `Renew` to the first caller that
    /// sees it (who then renews it) and as `Fresh` to the rest.
    fn lookup(&self, id: &TenantId, renew: bool) -> Found {
        let mut entries = lock(&self.entries);
        let Some(entry) = entries.get_mut(id) else {
            return Found::Missing;
        };
        let age = entry.at.elapsed();
        if age >= self.ttl {
            Found::Missing
        } else if renew && age >= self.ttl / 2 && !entry.renewing {
            entry.renewing = true;
            Found::Renew(entry.tenant.clone())
        } else {
            Found::Fresh(entry.tenant.clone())
        }
    }

    /// Stores a tenant read when the generation was `generation`, unless a `forget` came since.
    fn put(&self, generation: u64, tenant: Tenant) -> Arc<Tenant> {
        let t = Arc::new(tenant);
        let mut entries = lock(&self.entries);
        if self.generation.load(Ordering::SeqCst) != generation {
            return t;
        }
        if entries.len() > 10_000 {
            entries.retain(|_, e| e.at.elapsed() < self.ttl);
        }
        entries.insert(
            t.id.clone(),
            Entry {
                at: Instant::now(),
                tenant: t.clone(),
                renewing: false,
            },
        );
        t
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use adapter_memory::MemoryTenantStore;
    use async_trait::async_trait;
    use std::sync::atomic::AtomicUsize;

    /// Counts reads, each taking `delay`.
    struct Counting {
        inner: MemoryTenantStore,
        reads: AtomicUsize,
        delay: Duration,
    }

    #[async_trait]
    impl TenantStore for Counting {
        async fn create(&self, t: &Tenant) -> PortResult<()> {
            self.inner.create(t).await
        }
        async fn get(&self, id: &TenantId) -> PortResult<Tenant> {
            self.reads.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(self.delay).await;
            self.inner.get(id).await
        }
        async fn list(&self) -> PortResult<Vec<Tenant>> {
            self.inner.list().await
        }
        async fn update(&self, t: &Tenant) -> PortResult<()> {
            self.inner.update(t).await
        }
        async fn delete(&self, id: &TenantId) -> PortResult<()> {
            self.inner.delete(id).await
        }
    }

    async fn store(delay: Duration) -> (Arc<Counting>, TenantId) {
        let s = Counting {
            inner: MemoryTenantStore::default(),
            reads: AtomicUsize::new(0),
            delay,
        };
        let t = Tenant {
            id: TenantId::parse("acme").unwrap(),
            name: "Acme".into(),
            attio: domain::tenant::AttioCredentials {
                api_token: domain::tenant::Secret::new("a".repeat(64)).unwrap(),
                webhook_secrets: vec![domain::tenant::Secret::new("whsec-0123456789").unwrap()],
            },
            crms: Vec::new(),
            api_keys: Vec::new(),
            created_at: time::OffsetDateTime::UNIX_EPOCH,
        };
        s.create(&t).await.unwrap();
        (Arc::new(s), t.id)
    }

    fn reads(s: &Counting) -> usize {
        s.reads.load(Ordering::SeqCst)
    }

    #[tokio::test]
    async fn concurrent_misses_read_the_tenant_once() {
        let (counting, id) = store(Duration::from_millis(50)).await;
        let s: Arc<dyn TenantStore> = counting.clone();
        let cache = TenantCache::default();
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..40 {
            let (cache, s, id) = (cache.clone(), s.clone(), id.clone());
            tasks.spawn(async move { cache.get(&id, &s).await.unwrap().id.clone() });
        }
        while let Some(got) = tasks.join_next().await {
            assert_eq!(got.unwrap(), id);
        }
        assert_eq!(reads(&counting), 1);
        assert!(lock(&cache.loading).is_empty(), "no gate is left behind");
    }

    #[tokio::test]
    async fn an_aging_entry_is_served_while_one_read_renews_it() {
        let (counting, id) = store(Duration::from_millis(100)).await;
        let s: Arc<dyn TenantStore> = counting.clone();
        let cache = TenantCache::new(Duration::from_millis(400));
        cache.get(&id, &s).await.unwrap();
        tokio::time::sleep(Duration::from_millis(250)).await;
        // Past half its life: every caller is answered from the cache at once, and one read
        // renews the entry behind them.
        let start = Instant::now();
        for _ in 0..20 {
            cache.get(&id, &s).await.unwrap();
        }
        assert!(
            start.elapsed() < Duration::from_millis(100),
            "no caller waited for a read"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(reads(&counting), 2);
        // Renewed: 450 ms after the first read, past the first entry's 400 ms, still no read.
        cache.get(&id, &s).await.unwrap();
        assert_eq!(reads(&counting), 2);
    }

    #[tokio::test]
    async fn a_forgotten_tenant_is_read_again_and_a_read_begun_before_is_not_kept() {
        let (counting, id) = store(Duration::from_millis(100)).await;
        let s: Arc<dyn TenantStore> = counting.clone();
        let cache = TenantCache::default();
        let early = {
            let (cache, s, id) = (cache.clone(), s.clone(), id.clone());
            tokio::spawn(async move { cache.get(&id, &s).await })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        cache.forget(&id);
        early.await.unwrap().unwrap();
        // The read that began before `forget` answered its caller but stored nothing.
        cache.get(&id, &s).await.unwrap();
        assert_eq!(reads(&counting), 2);
        cache.get(&id, &s).await.unwrap();
        assert_eq!(reads(&counting), 2);
        cache.forget(&id);
        cache.get(&id, &s).await.unwrap();
        assert_eq!(reads(&counting), 3);
    }

    #[tokio::test]
    async fn an_unknown_tenant_is_the_stores_not_found_and_leaves_no_gate() {
        let (counting, _) = store(Duration::ZERO).await;
        let s: Arc<dyn TenantStore> = counting;
        let cache = TenantCache::default();
        let err = cache
            .get(&TenantId::parse("nobody").unwrap(), &s)
            .await
            .unwrap_err();
        assert!(matches!(err, ports::error::PortError::NotFound(_)));
        assert!(lock(&cache.loading).is_empty());
    }
}
