use std::time::Duration;

use domain::cache::{CacheCategory, CacheKey};
use domain::ids::TenantId;
use ports::cache::Cache;

use crate::{connect, fresh_namespace, redis_url, store};

mod queue {
    use super::store;
    ports::queue_conformance!(store);
}
mod inbox {
    use super::store;
    async fn inbox() -> (
        std::sync::Arc<adapter_redis::RedisStore>,
        std::sync::Arc<adapter_redis::RedisStore>,
    ) {
        let s = store().await;
        (s.clone(), s)
    }
    ports::inbox_conformance!(inbox);
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

#[tokio::test]
async fn a_delivery_is_kept_for_the_retention_and_then_forgotten_with_its_key() {
    use domain::idempotency::IdempotencyKey;
    use domain::ids::SystemId;
    use ports::stores::{Accepted, InboundDelivery, Inbox};

    let s = connect(&redis_url().await, &fresh_namespace()).await;
    let t = TenantId::parse("expiry").unwrap_or_else(|e| panic!("{e}"));
    let d = InboundDelivery {
        tenant: t.clone(),
        source: SystemId::attio(),
        key: IdempotencyKey::from_provider("k").unwrap_or_else(|e| panic!("{e}")),
        body: b"not json".to_vec(),
        received_at: time::OffsetDateTime::UNIX_EPOCH,
        quarantine: Some("not JSON".into()),
    };
    let retention = Duration::from_millis(300);
    let Ok(Accepted::Stored { id, .. }) = s.accept(&d, None, retention).await else {
        panic!("stored");
    };
    assert_eq!(s.quarantined(&t, 10).await.map(|q| q.len()).ok(), Some(1));
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(
        Inbox::get(&s, &t, id).await.is_err(),
        "expired with its retention"
    );
    assert_eq!(
        s.quarantined(&t, 10).await.map(|q| q.len()).ok(),
        Some(0),
        "the quarantine index forgets expired deliveries"
    );
    assert!(
        matches!(
            s.accept(&d, None, retention).await,
            Ok(Accepted::Stored { .. })
        ),
        "the key was forgotten with it, so a late retry is accepted again"
    );
}
