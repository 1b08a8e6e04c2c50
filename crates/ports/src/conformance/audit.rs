//! The audit-trail contract: entries come back per record, newest first, per tenant, until
//! they are purged.

use std::sync::Arc;

use domain::audit::AuditEntry;
use domain::field::FieldValue;
use domain::ids::{ObjectSlug, RecordId, SystemId, TenantId};
use domain::mapping::FieldKey;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use super::{fresh_tenant, ok};
use crate::stores::AuditLog;

/// An entry for record `record`, written `n` minutes after a fixed early time.
pub fn entry(t: &TenantId, record: u128, n: i64) -> AuditEntry {
    AuditEntry {
        tenant: t.clone(),
        object: ok(ObjectSlug::parse("people"), "slug"),
        record: RecordId::from_uuid(Uuid::from_u128(record)),
        field: ok(FieldKey::parse("job_title"), "key"),
        written_to: ok(SystemId::parse("crm-a"), "system"),
        written_record: "101".into(),
        source: "attio".into(),
        old: FieldValue::text("CTO"),
        new: FieldValue::text(format!("CEO {n}")),
        rule: "prefer_attio".into(),
        cause: format!("attio delivery, job {n}"),
        at: early() + Duration::minutes(n),
    }
}

/// A time no real entry has, so purging before it touches only this suite's entries.
fn early() -> OffsetDateTime {
    OffsetDateTime::UNIX_EPOCH + Duration::days(365)
}

pub async fn history_is_per_record_newest_first<S: AuditLog>(s: Arc<S>) {
    let (t, other) = (fresh_tenant("a"), fresh_tenant("a"));
    ok(
        s.append(&[entry(&t, 1, 1), entry(&t, 1, 3), entry(&t, 2, 2)])
            .await,
        "append",
    );
    ok(s.append(&[]).await, "append nothing");
    ok(s.append(&[entry(&other, 1, 4)]).await, "append other");
    let (people, one) = (
        ok(ObjectSlug::parse("people"), "slug"),
        RecordId::from_uuid(Uuid::from_u128(1)),
    );
    let h = ok(s.history(&t, &people, one, 10).await, "history");
    assert_eq!(
        h.iter().map(|e| e.new.clone()).collect::<Vec<_>>(),
        vec![FieldValue::text("CEO 3"), FieldValue::text("CEO 1")],
        "this record's entries, newest first, and no other tenant's"
    );
    assert_eq!(h[1], entry(&t, 1, 1), "an entry round-trips");
    assert_eq!(ok(s.history(&t, &people, one, 1).await, "history").len(), 1);
    let companies = ok(ObjectSlug::parse("companies"), "slug");
    assert!(ok(s.history(&t, &companies, one, 10).await, "history").is_empty());
}

pub async fn purge_forgets_old_entries<S: AuditLog>(s: Arc<S>) {
    let t = fresh_tenant("a");
    ok(
        s.append(&[entry(&t, 1, 1), entry(&t, 1, 2), entry(&t, 1, 60)])
            .await,
        "append",
    );
    let cut = early() + Duration::minutes(30);
    let mut gone = 0;
    loop {
        let n = ok(s.purge(cut, 1).await, "purge");
        assert!(n <= 1, "a purge removes at most its limit");
        if n == 0 {
            break;
        }
        gone += n;
    }
    assert!(gone >= 2, "both old entries went ({gone})");
    let people = ok(ObjectSlug::parse("people"), "slug");
    let h = ok(
        s.history(&t, &people, RecordId::from_uuid(Uuid::from_u128(1)), 10)
            .await,
        "history",
    );
    assert_eq!(h, vec![entry(&t, 1, 60)], "the newer entry stays");
}

pub async fn recent_is_the_tenants_newest_writes_across_records<S: AuditLog>(s: Arc<S>) {
    let (t, other) = (fresh_tenant("a"), fresh_tenant("a"));
    // Later than the purge test's cut, which may run against the same store at the same time.
    ok(
        s.append(&[entry(&t, 1, 101), entry(&t, 2, 103), entry(&t, 3, 102)])
            .await,
        "append",
    );
    ok(s.append(&[entry(&other, 1, 104)]).await, "append other");
    let recent = ok(s.recent(&t, 2).await, "recent");
    assert_eq!(
        recent,
        vec![entry(&t, 2, 103), entry(&t, 3, 102)],
        "the newest two of this tenant's, whatever their record"
    );
    assert_eq!(ok(s.recent(&t, 10).await, "recent").len(), 3);
    assert!(ok(s.recent(&fresh_tenant("a"), 10).await, "recent").is_empty());
}

#[macro_export]
macro_rules! audit_conformance {
    ($factory:path) => {
        $crate::__conformance_tests!(
            audit,
            $factory,
            [
                history_is_per_record_newest_first,
                recent_is_the_tenants_newest_writes_across_records,
                purge_forgets_old_entries
            ]
        );
    };
}
