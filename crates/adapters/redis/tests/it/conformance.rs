use std::time::Duration;

use domain::cache::{CacheCategory, CacheKey};
use domain::ids::TenantId;
use ports::cache::Cache;

use crate::{connect, fresh_namespace, redis_url, store};

mod queue {
    use super::store;
    ports::queue_conformance!(store);
}
mod cache {
    use super::store;
    ports::cache_conformance!(store);
}
mod idempotency {
    use super::store;
    ports::idempotency_conformance!(store);
}
mod limiter {
    use super::store;
    ports::limiter_conformance!(store);
}

#[tokio::test]
async fn a_cache_value_of_the_wrong_type_is_a_miss() {
    let ns = fresh_namespace();
    let s = connect(&redis_url().await, &ns).await;
    let key = CacheKey::new(
        TenantId::parse("acme").unwrap(),
        CacheCategory::Record,
        "r1",
    )
    .unwrap();
    s.put(&key, b"v".to_vec(), Duration::from_secs(60), &[])
        .await
        .unwrap();
    assert_eq!(s.get(&key).await.unwrap(), Some(b"v".to_vec()));
    // Something else overwrites the key with a hash.
    let raw = format!("{{{ns}}}:cache:{}", key.render());
    let mut conn = redis::Client::open(redis_url().await)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let deleted: i64 = redis::cmd("DEL")
        .arg(&raw)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(deleted, 1, "the test must hit the adapter's key");
    let _: i64 = redis::cmd("HSET")
        .arg(&raw)
        .arg("f")
        .arg("v")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(s.get(&key).await.unwrap(), None);
}
