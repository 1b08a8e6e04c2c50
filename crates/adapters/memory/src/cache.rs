use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use domain::cache::{CacheKey, CacheTag};
use ports::cache::Cache;
use ports::clock::Clock;
use ports::error::PortResult;
use time::OffsetDateTime;

use crate::{SystemClock, lock};

#[derive(Debug)]
struct Item {
    value: Vec<u8>,
    expires_at: OffsetDateTime,
    tags: Vec<String>,
}

#[derive(Debug, Default)]
struct Inner {
    items: HashMap<String, Item>,
    tags: HashMap<String, HashSet<String>>,
}

impl Inner {
    fn remove(&mut self, key: &str) -> Option<Item> {
        let item = self.items.remove(key)?;
        for t in &item.tags {
            if let Some(keys) = self.tags.get_mut(t) {
                keys.remove(key);
                if keys.is_empty() {
                    self.tags.remove(t);
                }
            }
        }
        Some(item)
    }
}

/// An in-process cache with TTLs and tags.
#[derive(Clone)]
pub struct MemoryCache {
    inner: Arc<Mutex<Inner>>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for MemoryCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryCache").finish_non_exhaustive()
    }
}

impl Default for MemoryCache {
    fn default() -> Self {
        Self::new(Arc::new(SystemClock))
    }
}

impl MemoryCache {
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self {
            inner: Arc::default(),
            clock,
        }
    }
}

#[async_trait]
impl Cache for MemoryCache {
    async fn get(&self, key: &CacheKey) -> PortResult<Option<Vec<u8>>> {
        let now = self.clock.now();
        let k = key.render();
        let mut inner = lock(&self.inner);
        match inner.items.get(&k) {
            Some(item) if item.expires_at > now => Ok(Some(item.value.clone())),
            Some(_) => {
                inner.remove(&k);
                Ok(None)
            }
            None => Ok(None),
        }
    }

    async fn put(
        &self,
        key: &CacheKey,
        value: Vec<u8>,
        ttl: Duration,
        tags: &[CacheTag],
    ) -> PortResult<()> {
        let expires_at = self.clock.now() + ttl;
        let k = key.render();
        let tags: Vec<String> = tags.iter().map(CacheTag::render).collect();
        let mut inner = lock(&self.inner);
        inner.remove(&k);
        for t in &tags {
            inner.tags.entry(t.clone()).or_default().insert(k.clone());
        }
        inner.items.insert(
            k,
            Item {
                value,
                expires_at,
                tags,
            },
        );
        Ok(())
    }

    async fn delete(&self, key: &CacheKey) -> PortResult<()> {
        lock(&self.inner).remove(&key.render());
        Ok(())
    }

    async fn invalidate_tag(&self, tag: &CacheTag) -> PortResult<u64> {
        let now = self.clock.now();
        let mut inner = lock(&self.inner);
        let keys = inner.tags.get(&tag.render()).cloned().unwrap_or_default();
        let mut removed = 0;
        for k in keys {
            if inner.remove(&k).is_some_and(|item| item.expires_at > now) {
                removed += 1;
            }
        }
        Ok(removed)
    }
}
