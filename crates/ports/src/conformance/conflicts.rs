//! The conflict-store contract.

use std::sync::Arc;

use domain::conflict::{ConflictRecord, Resolution};
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
            },
            attio: SideValue::new(FieldValue::text("CEO"), None),
            external: SideValue::new(FieldValue::text("Founder"), None),
            reason: ConflictReason::ManualRule,
        },
        detected_at: OffsetDateTime::UNIX_EPOCH
            + time::Duration::seconds(i64::try_from(n).unwrap_or(0)),
        resolution: None,
    }
}

pub async fn record_list_resolve<S: ConflictStore>(s: Arc<S>) {
    let (t, other) = (fresh_tenant("k"), fresh_tenant("k"));
    let (c1, c2) = (conflict(&t, 1), conflict(&t, 2));
    ok(s.record(&c2).await, "record");
    ok(s.record(&c1).await, "record");
    assert!(
        matches!(s.record(&c1).await, Err(PortError::Conflict(_))),
        "an id is recorded once"
    );
    let open = ok(s.open(&t, 10).await, "open");
    assert_eq!(
        open.iter().map(|c| c.id).collect::<Vec<_>>(),
        vec![c1.id, c2.id],
        "oldest first"
    );
    assert_eq!(open[0], c1, "a conflict round-trips");
    assert!(
        ok(s.open(&other, 10).await, "open").is_empty(),
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
        ok(s.open(&t, 10).await, "open").len(),
        1,
        "resolved conflicts leave the open list"
    );
    assert_eq!(
        ok(s.get(&t, c1.id).await, "get").resolution,
        resolved.resolution
    );
}

#[macro_export]
macro_rules! conflict_conformance {
    ($factory:path) => {
        $crate::__conformance_tests!(conflicts, $factory, [record_list_resolve]);
    };
}
