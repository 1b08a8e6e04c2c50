//! The delete-store contract: one delete per record, system and origin; the breaker's count of
//! propagated deletes; the approval queue.

use std::sync::Arc;

use domain::deletes::{DeleteRecord, DeleteStatus};
use domain::ids::{DeleteId, ExternalId, ObjectSlug, RecordId, SystemId, TenantId};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use super::{fresh_tenant, ok};
use crate::error::PortError;
use crate::stores::DeleteStore;

/// A delete numbered `n` (its id and record), of `status`, `n` seconds after a fixed time.
pub fn delete(t: &TenantId, n: u128, status: DeleteStatus) -> DeleteRecord {
    DeleteRecord {
        id: DeleteId::from_uuid(Uuid::from_u128(n)),
        tenant: t.clone(),
        object: ok(ObjectSlug::parse("people"), "slug"),
        attio_record: RecordId::from_uuid(Uuid::from_u128(1000 + n)),
        system: ok(SystemId::parse("crm-a"), "system"),
        external_object: "contacts".into(),
        external_id: ok(ExternalId::parse(&format!("{n}")), "id"),
        origin: SystemId::attio(),
        status,
        reason: "deleted in attio".into(),
        at: at(n),
        decided_at: None,
    }
}

fn at(n: u128) -> OffsetDateTime {
    OffsetDateTime::UNIX_EPOCH + Duration::days(400) + Duration::seconds(n as i64)
}

pub async fn a_delete_is_recorded_once_and_counted_while_recent<S: DeleteStore>(s: Arc<S>) {
    let (t, other) = (fresh_tenant("d"), fresh_tenant("d"));
    let first = delete(&t, 1, DeleteStatus::Done);
    assert_eq!(ok(s.record(&first).await, "record"), first);
    let mut replay = delete(&t, 2, DeleteStatus::Held);
    replay.attio_record = first.attio_record;
    assert_eq!(
        ok(s.record(&replay).await, "replay"),
        first,
        "a replayed delete keeps its first decision"
    );
    let mut from_crm = replay.clone();
    from_crm.origin = first.system.clone();
    assert_eq!(
        ok(s.record(&from_crm).await, "other origin").id,
        from_crm.id
    );
    for n in 3..=5 {
        ok(s.record(&delete(&t, n, DeleteStatus::Done)).await, "record");
    }
    ok(s.record(&delete(&t, 6, DeleteStatus::Held)).await, "held");
    assert_eq!(ok(s.count_done_since(&t, at(0)).await, "count"), 4);
    assert_eq!(
        ok(s.count_done_since(&t, at(4)).await, "count"),
        2,
        "since is inclusive"
    );
    assert_eq!(ok(s.count_done_since(&other, at(0)).await, "count"), 0);
    assert!(matches!(
        s.get(&other, first.id).await,
        Err(PortError::NotFound(_))
    ));
}

pub async fn held_deletes_are_listed_and_decided_once<S: DeleteStore>(s: Arc<S>) {
    let (t, other) = (fresh_tenant("d"), fresh_tenant("d"));
    let (h1, h2, done) = (
        delete(&t, 11, DeleteStatus::Held),
        delete(&t, 12, DeleteStatus::Held),
        delete(&t, 13, DeleteStatus::Done),
    );
    for d in [&h2, &done, &h1] {
        ok(s.record(d).await, "record");
    }
    let of = |d: &DeleteRecord| (d.object.clone(), d.attio_record, d.system.clone());
    let (o, r, sys) = of(&h1);
    assert_eq!(
        ok(s.held_for(&t, &o, r, &sys).await, "held_for"),
        Some(h1.clone())
    );
    let (o, r, sys) = of(&done);
    assert_eq!(
        ok(s.held_for(&t, &o, r, &sys).await, "held_for"),
        None,
        "only a held one"
    );
    let held = ok(s.held(&t, 10).await, "held");
    assert_eq!(
        held.iter().map(|d| d.id).collect::<Vec<_>>(),
        vec![h1.id, h2.id],
        "oldest first"
    );
    assert!(ok(s.held(&other, 10).await, "held").is_empty());
    assert_eq!(ok(s.held(&t, 1).await, "held").len(), 1);
    let approved = ok(
        s.decide(&t, h1.id, DeleteStatus::Approved, at(20)).await,
        "approve",
    );
    assert_eq!(approved.status, DeleteStatus::Approved);
    assert_eq!(approved.decided_at, Some(at(20)));
    assert!(
        matches!(
            s.decide(&t, h1.id, DeleteStatus::Rejected, at(21)).await,
            Err(PortError::Conflict(_))
        ),
        "decided once"
    );
    assert!(
        matches!(
            s.decide(&t, done.id, DeleteStatus::Approved, at(21)).await,
            Err(PortError::Conflict(_))
        ),
        "only a held delete is decided"
    );
    assert!(matches!(
        s.decide(&other, h2.id, DeleteStatus::Approved, at(21))
            .await,
        Err(PortError::NotFound(_))
    ));
    ok(
        s.decide(&t, h2.id, DeleteStatus::Rejected, at(22)).await,
        "reject",
    );
    assert!(ok(s.held(&t, 10).await, "held").is_empty());
    assert_eq!(
        ok(s.get(&t, h2.id).await, "get").status,
        DeleteStatus::Rejected
    );
    assert_eq!(
        ok(s.count_done_since(&t, at(0)).await, "count"),
        1,
        "decisions are not counted by the breaker"
    );
}

/// However many ask at once, the breaker lets `max` deletes through in its window.
pub async fn the_breaker_lets_max_through_under_concurrency<S: DeleteStore + 'static>(s: Arc<S>) {
    let t = fresh_tenant("d");
    let mut tasks = Vec::new();
    for n in 0..8 {
        let (s, t) = (s.clone(), t.clone());
        tasks.push(tokio::spawn(async move {
            let d = delete(&t, 100 + n, DeleteStatus::Done);
            ok(
                s.record_gated(&d, 3, at(0), "breaker open").await,
                "record_gated",
            )
        }));
    }
    let mut stored = Vec::new();
    for task in tasks {
        stored.push(ok(task.await, "join"));
    }
    let done = stored
        .iter()
        .filter(|d| d.status == DeleteStatus::Done)
        .count();
    assert_eq!(done, 3, "exactly max propagated: {stored:?}");
    assert!(
        stored
            .iter()
            .filter(|d| d.status == DeleteStatus::Held)
            .all(|d| d.reason == "breaker open")
    );
    assert_eq!(ok(s.held(&t, 10).await, "held").len(), 5);
    let old = delete(&t, 200, DeleteStatus::Done);
    let fresh = ok(
        s.record_gated(&old, 3, at(1000), "breaker open").await,
        "later window",
    );
    assert_eq!(
        fresh.status,
        DeleteStatus::Done,
        "a new window lets deletes through again"
    );
}

#[macro_export]
macro_rules! delete_conformance {
    ($factory:path) => {
        $crate::__conformance_tests!(
            deletes,
            $factory,
            [
                a_delete_is_recorded_once_and_counted_while_recent,
                held_deletes_are_listed_and_decided_once,
                the_breaker_lets_max_through_under_concurrency
            ]
        );
    };
}
