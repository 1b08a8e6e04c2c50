//! The conflict-store contract.

use std::sync::Arc;

use domain::conflict::{ConflictFilter, ConflictRecord, Resolution};
use domain::field::FieldValue;
use domain::ids::{ConflictId, ExternalId, ObjectSlug, RecordId, SystemId, TenantId};
use domain::mapping::FieldKey;
use domain::merge::{ConflictReason, FieldConflict, FieldSnapshot, SideValue};
use time::OffsetDateTime;
use uuid::Uuid;

use super::{fresh_tenant, ok};
use crate::error::PortError;
use crate::stores::ConflictStore;

/// An open conflict numbered `n`: its id, and its detection `n` seconds after the epoch.
pub fn conflict(t: &TenantId, n: u128) -> ConflictRecord {
    ConflictRecord {
        id: ConflictId::from_uuid(Uuid::from_u128(n)),
        tenant: t.clone(),
        object: ok(ObjectSlug::parse("people"), "slug"),
        attio_record: RecordId::from_uuid(Uuid::from_u128(7)),
        system: ok(SystemId::parse("crm-a"), "system"),
        external_id: ok(ExternalId::parse("101"), "id"),
        conflict: FieldConflict {
            key: ok(FieldKey::parse("job_title"), "key"),
            snapshot: FieldSnapshot {
                attio: FieldValue::text("CTO"),
                external: FieldValue::text("CTO"),
                property: None,
            },
            attio: SideValue::new(FieldValue::text("CEO"), None),
            external: SideValue::new(FieldValue::text("Founder"), None),
            reason: ConflictReason::ManualRule,
        },
        detected_at: at(n),
        last_seen: at(n),
        resolution: None,
    }
}

fn at(n: u128) -> OffsetDateTime {
    OffsetDateTime::UNIX_EPOCH + time::Duration::seconds(i64::try_from(n).unwrap_or(0))
}

/// The same conflict on another record (numbered `record`).
fn on_record(mut c: ConflictRecord, record: u128) -> ConflictRecord {
    c.attio_record = RecordId::from_uuid(Uuid::from_u128(record));
    c
}

pub async fn record_list_resolve<S: ConflictStore>(s: Arc<S>) {
    let (t, other) = (fresh_tenant("k"), fresh_tenant("k"));
    let (c1, c2) = (conflict(&t, 1), conflict(&t, 2));
    let (c1, c2) = (c1, on_record(c2, 8));
    assert_eq!(ok(s.record(&c2).await, "record"), c2.id);
    assert_eq!(ok(s.record(&c1).await, "record"), c1.id);
    let open = ok(s.open(&t, &ConflictFilter::default(), 10).await, "open");
    assert_eq!(
        open.iter().map(|c| c.id).collect::<Vec<_>>(),
        vec![c1.id, c2.id],
        "oldest first"
    );
    assert_eq!(open[0], c1, "a conflict round-trips");
    assert!(
        ok(s.open(&other, &ConflictFilter::default(), 10).await, "open").is_empty(),
        "tenants are isolated"
    );
    assert!(matches!(
        s.get(&other, c1.id).await,
        Err(PortError::NotFound(_))
    ));
    assert!(matches!(
        s.resolve(
            &other,
            c1.id,
            Resolution::KeepAttio,
            OffsetDateTime::UNIX_EPOCH
        )
        .await,
        Err(PortError::NotFound(_))
    ));
    let resolved = ok(
        s.resolve(
            &t,
            c1.id,
            Resolution::Value {
                value: FieldValue::text("CEO & Founder"),
            },
            OffsetDateTime::UNIX_EPOCH,
        )
        .await,
        "resolve",
    );
    assert!(matches!(
        resolved.resolution,
        Some((Resolution::Value { .. }, _))
    ));
    assert!(
        matches!(
            s.resolve(&t, c1.id, Resolution::KeepAttio, OffsetDateTime::UNIX_EPOCH)
                .await,
            Err(PortError::Conflict(_))
        ),
        "resolving twice must conflict"
    );
    assert_eq!(
        ok(s.open(&t, &ConflictFilter::default(), 10).await, "open").len(),
        1,
        "resolved conflicts leave the open list"
    );
    assert_eq!(ok(s.count_open(&t).await, "count"), 1);
    assert_eq!(ok(s.count_open(&other).await, "count"), 0);
    assert_eq!(
        ok(s.get(&t, c1.id).await, "get").resolution,
        resolved.resolution
    );
}

/// A field that conflicts again while its conflict is open updates that conflict; once it is
/// resolved, a new conflict on the field is a new entry.
pub async fn same_field_updates_the_open_conflict<S: ConflictStore>(s: Arc<S>) {
    let t = fresh_tenant("k");
    let first = conflict(&t, 1);
    ok(s.record(&first).await, "record");
    let mut again = conflict(&t, 5);
    again.conflict.external = SideValue::new(FieldValue::text("Chair"), None);
    assert_eq!(
        ok(s.record(&again).await, "record again"),
        first.id,
        "the open conflict's id is kept"
    );
    let open = ok(s.open(&t, &ConflictFilter::default(), 10).await, "open");
    assert_eq!(open.len(), 1, "a field is queued once: {open:?}");
    assert_eq!(open[0].conflict.external.value, FieldValue::text("Chair"));
    assert_eq!(
        open[0].detected_at, first.detected_at,
        "first detection kept"
    );
    assert_eq!(open[0].last_seen, again.last_seen, "last seen updated");
    let mut other_system = conflict(&t, 6);
    other_system.system = ok(SystemId::parse("crm-b"), "system");
    ok(s.record(&other_system).await, "another system");
    assert_eq!(ok(s.count_open(&t).await, "count"), 2);
    ok(
        s.resolve(&t, first.id, Resolution::KeepAttio, at(9)).await,
        "resolve",
    );
    let later = conflict(&t, 10);
    assert_eq!(ok(s.record(&later).await, "record after"), later.id);
    assert_eq!(ok(s.count_open(&t).await, "count"), 2);
}

/// Filters by object, system, field, record and age; all given parts must match.
pub async fn filters<S: ConflictStore>(s: Arc<S>) {
    let t = fresh_tenant("k");
    let a = conflict(&t, 1);
    let mut b = on_record(conflict(&t, 2), 8);
    b.object = ok(ObjectSlug::parse("companies"), "slug");
    let mut c = on_record(conflict(&t, 3), 9);
    c.system = ok(SystemId::parse("crm-b"), "system");
    c.conflict.key = ok(FieldKey::parse("name"), "key");
    for x in [&a, &b, &c] {
        ok(s.record(x).await, "record");
    }
    let ids = |v: Vec<ConflictRecord>| v.into_iter().map(|c| c.id).collect::<Vec<_>>();
    let cases = [
        (ConflictFilter::default(), vec![a.id, b.id, c.id]),
        (
            ConflictFilter {
                object: Some(ok(ObjectSlug::parse("companies"), "slug")),
                ..Default::default()
            },
            vec![b.id],
        ),
        (
            ConflictFilter {
                system: Some(ok(SystemId::parse("crm-b"), "system")),
                ..Default::default()
            },
            vec![c.id],
        ),
        (
            ConflictFilter {
                field: Some(ok(FieldKey::parse("job_title"), "key")),
                ..Default::default()
            },
            vec![a.id, b.id],
        ),
        (
            ConflictFilter {
                record: Some(RecordId::from_uuid(Uuid::from_u128(8))),
                ..Default::default()
            },
            vec![b.id],
        ),
        (
            ConflictFilter {
                detected_before: Some(at(3)),
                ..Default::default()
            },
            vec![a.id, b.id],
        ),
        (
            ConflictFilter {
                field: Some(ok(FieldKey::parse("job_title"), "key")),
                detected_before: Some(at(2)),
                ..Default::default()
            },
            vec![a.id],
        ),
    ];
    for (filter, want) in cases {
        assert_eq!(
            ids(ok(s.open(&t, &filter, 10).await, "open")),
            want,
            "filter {filter:?}"
        );
    }
    assert_eq!(
        ids(ok(s.open(&t, &ConflictFilter::default(), 2).await, "open")),
        vec![a.id, b.id],
        "the limit keeps the oldest"
    );
}

#[macro_export]
macro_rules! conflict_conformance {
    ($factory:path) => {
        $crate::__conformance_tests!(
            conflicts,
            $factory,
            [
                record_list_resolve,
                same_field_updates_the_open_conflict,
                filters
            ]
        );
    };
}
