//! A cache of encoded values with TTLs and tag invalidation. Keys and tags are tenant-scoped by
//! construction ([`CacheKey`], [`CacheTag`]).

use std::time::Duration;

use async_trait::async_trait;
use domain::cache::{CacheKey, CacheTag};

use crate::error::PortResult;

#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait Cache: Send + Sync {
    /// The stored bytes, or `None` on a miss or after expiry. `Unavailable` when the backend
    /// cannot be reached (callers treat that as a miss and read through).
    async fn get(&self, key: &CacheKey) -> PortResult<Option<Vec<u8>>>;
    /// Stores bytes for `ttl` (normally `key.category.ttl()`), tagged so that
    /// [`Cache::invalidate_tag`] can flush them. `Unavailable` when the backend cannot be reached.
    async fn put(
        &self,
        key: &CacheKey,
        value: Vec<u8>,
        ttl: Duration,
        tags: &[CacheTag],
    ) -> PortResult<()>;
    /// Removes one key; removing a missing key is not an error. `Unavailable` as above.
    async fn delete(&self, key: &CacheKey) -> PortResult<()>;
    /// Removes every key stored with the tag and returns how many were removed. `Unavailable` as
    /// above.
    async fn invalidate_tag(&self, tag: &CacheTag) -> PortResult<u64>;
}
