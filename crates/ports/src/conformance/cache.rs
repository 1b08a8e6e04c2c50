//! The cache contract: misses, TTLs, overwrite, delete, tag invalidation, tenant isolation.

use std::sync::Arc;
use std::time::Duration;

use domain::cache::{CacheCategory, CacheKey, CacheTag};
use domain::ids::TenantId;

use super::{fresh_tenant, ok};
use crate::cache::Cache;

const LONG: Duration = Duration::from_secs(60);

fn k(t: &TenantId, name: &str) -> CacheKey {
    ok(
        CacheKey::new(t.clone(), CacheCategory::Record, name),
        "cache key",
    )
}

fn tag(t: &TenantId, name: &str) -> CacheTag {
    ok(CacheTag::new(t.clone(), name), "cache tag")
}

pub async fn miss_put_get_overwrite_delete<C: Cache>(c: Arc<C>) {
    let t = fresh_tenant("c");
    assert_eq!(
        ok(c.get(&k(&t, "r1")).await, "get"),
        None,
        "an unknown key is a miss"
    );
    ok(c.put(&k(&t, "r1"), b"one".to_vec(), LONG, &[]).await, "put");
    assert_eq!(ok(c.get(&k(&t, "r1")).await, "get"), Some(b"one".to_vec()));
    ok(c.put(&k(&t, "r1"), b"two".to_vec(), LONG, &[]).await, "put");
    assert_eq!(
        ok(c.get(&k(&t, "r1")).await, "get"),
        Some(b"two".to_vec()),
        "put overwrites"
    );
    ok(c.delete(&k(&t, "r1")).await, "delete");
    assert_eq!(
        ok(c.get(&k(&t, "r1")).await, "get"),
        None,
        "a deleted key is a miss"
    );
    ok(
        c.delete(&k(&t, "never")).await,
        "deleting a missing key is not an error",
    );
}

pub async fn entries_expire_after_their_ttl<C: Cache>(c: Arc<C>) {
    let t = fresh_tenant("c");
    ok(
        c.put(
            &k(&t, "short"),
            b"x".to_vec(),
            Duration::from_millis(100),
            &[],
        )
        .await,
        "put",
    );
    ok(c.put(&k(&t, "long"), b"y".to_vec(), LONG, &[]).await, "put");
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(
        ok(c.get(&k(&t, "short")).await, "get"),
        None,
        "an expired entry is a miss"
    );
    assert_eq!(ok(c.get(&k(&t, "long")).await, "get"), Some(b"y".to_vec()));
}

pub async fn tags_flush_exactly_their_keys<C: Cache>(c: Arc<C>) {
    let t = fresh_tenant("c");
    let rec = tag(&t, "record:r1");
    ok(
        c.put(
            &k(&t, "r1"),
            b"1".to_vec(),
            LONG,
            std::slice::from_ref(&rec),
        )
        .await,
        "put",
    );
    ok(
        c.put(
            &k(&t, "r1-entries"),
            b"2".to_vec(),
            LONG,
            &[rec.clone(), tag(&t, "list:l1")],
        )
        .await,
        "put",
    );
    ok(
        c.put(&k(&t, "r2"), b"3".to_vec(), LONG, &[tag(&t, "record:r2")])
            .await,
        "put",
    );
    assert_eq!(
        ok(c.invalidate_tag(&rec).await, "invalidate"),
        2,
        "both tagged keys are counted"
    );
    assert_eq!(ok(c.get(&k(&t, "r1")).await, "get"), None);
    assert_eq!(ok(c.get(&k(&t, "r1-entries")).await, "get"), None);
    assert_eq!(
        ok(c.get(&k(&t, "r2")).await, "get"),
        Some(b"3".to_vec()),
        "other tags are untouched"
    );
    assert_eq!(
        ok(c.invalidate_tag(&rec).await, "invalidate"),
        0,
        "a flushed tag is empty"
    );
    // A key put again after a flush is cached again (the flush does not linger).
    ok(
        c.put(
            &k(&t, "r1"),
            b"4".to_vec(),
            LONG,
            std::slice::from_ref(&rec),
        )
        .await,
        "put",
    );
    assert_eq!(ok(c.get(&k(&t, "r1")).await, "get"), Some(b"4".to_vec()));
}

pub async fn tenants_are_isolated<C: Cache>(c: Arc<C>) {
    let (a, b) = (fresh_tenant("ca"), fresh_tenant("cb"));
    ok(
        c.put(&k(&a, "r1"), b"a".to_vec(), LONG, &[tag(&a, "record:r1")])
            .await,
        "put",
    );
    ok(
        c.put(&k(&b, "r1"), b"b".to_vec(), LONG, &[tag(&b, "record:r1")])
            .await,
        "put",
    );
    assert_eq!(ok(c.get(&k(&a, "r1")).await, "get"), Some(b"a".to_vec()));
    assert_eq!(
        ok(c.get(&k(&b, "r1")).await, "get"),
        Some(b"b".to_vec()),
        "same name, other tenant"
    );
    ok(c.invalidate_tag(&tag(&a, "record:r1")).await, "invalidate");
    assert_eq!(
        ok(c.get(&k(&b, "r1")).await, "get"),
        Some(b"b".to_vec()),
        "A's flush must not touch B"
    );
}

#[macro_export]
macro_rules! cache_conformance {
    ($factory:path) => {
        $crate::__conformance_tests!(
            cache,
            $factory,
            [
                miss_put_get_overwrite_delete,
                entries_expire_after_their_ttl,
                tags_flush_exactly_their_keys,
                tenants_are_isolated,
            ]
        );
    };
}
