//! The link-store contract: lookups from both sides, optimistic versions, uniqueness, repointing
//! after a merge, deletion, tenant isolation.

use std::collections::BTreeMap;
use std::sync::Arc;

use domain::field::FieldValue;
use domain::ids::{ExternalId, ObjectSlug, RecordId, SystemId, TenantId};
use domain::link::{IdentityLink, LinkLookup};
use domain::mapping::FieldKey;
use domain::merge::{FieldSnapshot, Snapshot};
use time::OffsetDateTime;
use uuid::Uuid;

use super::{fresh_tenant, ok};
use crate::error::PortError;
use crate::stores::LinkStore;

fn record() -> RecordId {
    RecordId::from_uuid(Uuid::from_u128(rand_u128()))
}

/// A distinct id per call without a random-number dependency.
fn rand_u128() -> u128 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(1);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    (nanos << 20)
        ^ u128::from(N.fetch_add(1, Ordering::Relaxed))
        ^ (u128::from(std::process::id()) << 100)
}

fn slug(s: &str) -> ObjectSlug {
    ok(ObjectSlug::parse(s), "slug")
}

fn system(s: &str) -> SystemId {
    ok(SystemId::parse(s), "system")
}

fn link(t: &TenantId, record: RecordId, sys: &str, ext: &str) -> IdentityLink {
    let key = ok(FieldKey::parse("email_addresses"), "key");
    IdentityLink {
        tenant: t.clone(),
        object: slug("people"),
        attio_record: record,
        system: system(sys),
        external_object: "contacts".into(),
        external_id: ok(ExternalId::parse(ext), "external id"),
        snapshot: Snapshot(BTreeMap::from([(
            key,
            FieldSnapshot {
                attio: FieldValue::text("ada@x.com"),
                external: FieldValue::text("ada@x.com"),
                property: None,
            },
        )])),
        updated_at: OffsetDateTime::UNIX_EPOCH,
        version: 0,
    }
}

fn by_attio(r: RecordId, sys: &str) -> LinkLookup {
    LinkLookup::Attio {
        object: slug("people"),
        record: r,
        system: system(sys),
    }
}

fn by_external(sys: &str, ext: &str) -> LinkLookup {
    LinkLookup::External {
        system: system(sys),
        external_object: "contacts".into(),
        external_id: ok(ExternalId::parse(ext), "external id"),
    }
}

pub async fn save_and_find_from_both_sides<S: LinkStore>(s: Arc<S>) {
    let t = fresh_tenant("l");
    let r = record();
    assert!(ok(s.find(&t, &by_attio(r, "crm-a")).await, "find").is_none());
    let saved = ok(s.save(&link(&t, r, "crm-a", "101")).await, "save");
    assert_eq!(saved.version, 1, "a new link gets version 1");
    let found = ok(s.find(&t, &by_attio(r, "crm-a")).await, "find")
        .unwrap_or_else(|| panic!("find by Attio id"));
    assert_eq!(found.external_id.as_str(), "101");
    assert_eq!(found.snapshot, saved.snapshot, "the snapshot round-trips");
    let found = ok(s.find(&t, &by_external("crm-a", "101")).await, "find")
        .unwrap_or_else(|| panic!("find by external id"));
    assert_eq!(found.attio_record, r);
    assert!(
        ok(s.find(&t, &by_attio(r, "crm-b")).await, "find").is_none(),
        "links are per system"
    );
    ok(s.save(&link(&t, r, "crm-b", "003A")).await, "save");
    assert_eq!(
        ok(s.links_of(&t, &slug("people"), r).await, "links_of").len(),
        2
    );
}

pub async fn stale_versions_are_stale_and_duplicates_conflict<S: LinkStore>(s: Arc<S>) {
    let t = fresh_tenant("l");
    let r = record();
    let v1 = ok(s.save(&link(&t, r, "crm-a", "101")).await, "save");
    let mut update = v1.clone();
    update.snapshot = Snapshot::default();
    let v2 = ok(s.save(&update).await, "update with the current version");
    assert_eq!(v2.version, 2);
    assert!(
        matches!(s.save(&update).await, Err(PortError::Stale(_))),
        "a stale version is a lost race, worth a re-read"
    );
    assert!(
        matches!(
            s.save(&link(&t, r, "crm-a", "102")).await,
            Err(PortError::Stale(_))
        ),
        "creating a link that another writer created first is a lost race"
    );
    assert!(
        matches!(
            s.save(&link(&t, record(), "crm-a", "101")).await,
            Err(PortError::Conflict(_))
        ),
        "one external record cannot be linked to two Attio records"
    );
}

pub async fn repoint_moves_links_after_a_merge<S: LinkStore>(s: Arc<S>) {
    let t = fresh_tenant("l");
    let (survivor, duplicate) = (record(), record());
    ok(s.save(&link(&t, survivor, "crm-a", "1")).await, "save");
    ok(s.save(&link(&t, duplicate, "crm-a", "2")).await, "save");
    ok(s.save(&link(&t, duplicate, "crm-b", "003B")).await, "save");
    let moved = ok(
        s.repoint(&t, &slug("people"), duplicate, survivor).await,
        "repoint",
    );
    assert_eq!(
        moved, 1,
        "only the crm-b link moves; the crm-a one would duplicate"
    );
    assert!(ok(s.links_of(&t, &slug("people"), duplicate).await, "links_of").is_empty());
    let links = ok(s.links_of(&t, &slug("people"), survivor).await, "links_of");
    assert_eq!(links.len(), 2, "{links:?}");
    assert!(
        ok(s.find(&t, &by_external("crm-a", "2")).await, "find").is_none(),
        "the duplicate's clashing link is removed"
    );
}

pub async fn delete_and_tenant_isolation<S: LinkStore>(s: Arc<S>) {
    let (a, b) = (fresh_tenant("la"), fresh_tenant("lb"));
    let r = record();
    ok(s.save(&link(&a, r, "crm-a", "101")).await, "save");
    assert!(
        ok(s.find(&b, &by_attio(r, "crm-a")).await, "find").is_none(),
        "B must not see A's link"
    );
    assert!(ok(s.find(&b, &by_external("crm-a", "101")).await, "find").is_none());
    // The same external id may be linked in another tenant (another HubSpot portal).
    ok(
        s.save(&link(&b, record(), "crm-a", "101")).await,
        "save in B",
    );
    assert!(
        matches!(
            s.delete(&b, &by_attio(r, "crm-a")).await,
            Err(PortError::NotFound(_))
        ),
        "B must not delete A's link"
    );
    assert_eq!(
        ok(s.repoint(&b, &slug("people"), r, record()).await, "repoint"),
        0,
        "B must not move A's links"
    );
    assert_eq!(ok(s.count(&a).await, "count"), 1, "A's one link");
    assert_eq!(ok(s.count(&b).await, "count"), 1, "B's one link");
    ok(s.delete(&a, &by_attio(r, "crm-a")).await, "delete");
    assert_eq!(ok(s.count(&a).await, "count"), 0);
    assert!(ok(s.find(&a, &by_attio(r, "crm-a")).await, "find").is_none());
    assert!(matches!(
        s.delete(&a, &by_attio(r, "crm-a")).await,
        Err(PortError::NotFound(_))
    ));
}

#[macro_export]
macro_rules! link_conformance {
    ($factory:path) => {
        $crate::__conformance_tests!(
            links,
            $factory,
            [
                save_and_find_from_both_sides,
                stale_versions_are_stale_and_duplicates_conflict,
                repoint_moves_links_after_a_merge,
                delete_and_tenant_isolation,
            ]
        );
    };
}
