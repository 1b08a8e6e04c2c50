use std::time::Duration;

use async_trait::async_trait;
use domain::cache::{CacheKey, CacheTag};
use domain::idempotency::IdempotencyKey;
use domain::ids::TenantId;
use ports::cache::Cache;
use ports::error::PortResult;
use ports::stores::{Claim, IdempotencyStore};
use redis::AsyncCommands;

use crate::{RedisStore, rerr};

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

/// SET the value with its TTL and add the key to each tag set, whose TTL covers its longest member.
const PUT: &str = r#"
local ttl = tonumber(ARGV[2])
redis.call('SET', KEYS[1], ARGV[1], 'PX', ttl)
for i = 2, #KEYS do
    redis.call('SADD', KEYS[i], KEYS[1])
    if redis.call('PTTL', KEYS[i]) < ttl then redis.call('PEXPIRE', KEYS[i], ttl) end
end
return 1
"#;

/// Deletes every key of a tag and the tag; returns how many keys existed.
const INVALIDATE: &str = r#"
local keys = redis.call('SMEMBERS', KEYS[1])
local n = 0
for _, k in ipairs(keys) do n = n + redis.call('DEL', k) end
redis.call('DEL', KEYS[1])
return n
"#;

impl RedisStore {
    fn cache_key(&self, key: &CacheKey) -> String {
        self.key(&format!("cache:{}", key.render()))
    }

    fn tag_key(&self, tag: &CacheTag) -> String {
        self.key(&format!("cache:{}", tag.render()))
    }
}

#[async_trait]
impl Cache for RedisStore {
    /// A value of the wrong Redis type (written by something else) reads as a miss.
    async fn get(&self, key: &CacheKey) -> PortResult<Option<Vec<u8>>> {
        match self
            .conn()
            .get::<_, Option<Vec<u8>>>(self.cache_key(key))
            .await
        {
            Ok(v) => Ok(v),
            Err(e) if e.code() == Some("WRONGTYPE") => {
                tracing::warn!(key = ?key, "cache entry has the wrong type; treating it as a miss");
                Ok(None)
            }
            Err(e) => Err(rerr(e)),
        }
    }

    async fn put(
        &self,
        key: &CacheKey,
        value: Vec<u8>,
        ttl: Duration,
        tags: &[CacheTag],
    ) -> PortResult<()> {
        let script = redis::Script::new(PUT);
        let mut call = script.key(self.cache_key(key));
        for t in tags {
            call.key(self.tag_key(t));
        }
        let _: i64 = call
            .arg(value)
            .arg(ms(ttl))
            .invoke_async(&mut self.conn())
            .await
            .map_err(rerr)?;
        Ok(())
    }

    async fn delete(&self, key: &CacheKey) -> PortResult<()> {
        let _: i64 = self.conn().del(self.cache_key(key)).await.map_err(rerr)?;
        Ok(())
    }

    async fn invalidate_tag(&self, tag: &CacheTag) -> PortResult<u64> {
        redis::Script::new(INVALIDATE)
            .key(self.tag_key(tag))
            .invoke_async(&mut self.conn())
            .await
            .map_err(rerr)
    }
}

#[async_trait]
impl IdempotencyStore for RedisStore {
    async fn claim(
        &self,
        tenant: &TenantId,
        key: &IdempotencyKey,
        retention: Duration,
    ) -> PortResult<Claim> {
        let k = self.key(&format!("idem:t:{tenant}:{}", key.as_str()));
        let set: Option<String> = redis::cmd("SET")
            .arg(k)
            .arg(1)
            .arg("NX")
            .arg("PX")
            .arg(ms(retention))
            .query_async(&mut self.conn())
            .await
            .map_err(rerr)?;
        Ok(if set.is_some() {
            Claim::New
        } else {
            Claim::Duplicate
        })
    }
}
