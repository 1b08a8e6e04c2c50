//! The write-ledger contract: echoes are recognised by value, until they expire, per tenant.

use std::sync::Arc;

use domain::field::FieldValue;
use domain::ids::{SystemId, TenantId};
use domain::ledger::{LedgerEntry, LedgerKey};
use domain::mapping::FieldKey;
use time::{Duration, OffsetDateTime};

use super::{fresh_tenant, ok};
use crate::stores::WriteLedger;

fn key(t: &TenantId, record: &str) -> LedgerKey {
    LedgerKey {
        tenant: t.clone(),
        system: ok(SystemId::parse("crm-a"), "system"),
        object: "contacts".into(),
        record: record.into(),
        field: ok(FieldKey::parse("email"), "field"),
    }
}

pub async fn echoes_are_recognised_until_they_expire<S: WriteLedger>(s: Arc<S>) {
    let (t, other) = (fresh_tenant("w"), fresh_tenant("w"));
    let now = OffsetDateTime::UNIX_EPOCH + Duration::days(20_000);
    let wrote = FieldValue::text("ada@x.com").value_hash();
    ok(
        s.record(&[LedgerEntry {
            key: key(&t, "101"),
            value_hash: wrote.clone(),
            expires_at: now + Duration::minutes(10),
        }])
        .await,
        "record",
    );
    assert!(
        ok(s.is_echo(&key(&t, "101"), &wrote, now).await, "is_echo"),
        "our own value is an echo"
    );
    assert!(
        !ok(
            s.is_echo(
                &key(&t, "101"),
                &FieldValue::text("other").value_hash(),
                now
            )
            .await,
            "is_echo"
        ),
        "another value is a real change"
    );
    assert!(
        !ok(s.is_echo(&key(&t, "102"), &wrote, now).await, "is_echo"),
        "another record is not an echo"
    );
    assert!(
        !ok(s.is_echo(&key(&other, "101"), &wrote, now).await, "is_echo"),
        "another tenant is not an echo"
    );
    assert!(
        !ok(
            s.is_echo(&key(&t, "101"), &wrote, now + Duration::minutes(11))
                .await,
            "is_echo"
        ),
        "expired entries are not echoes"
    );
    // A newer write to the same key replaces the older one.
    let newer = FieldValue::text("ada@y.com").value_hash();
    ok(
        s.record(&[LedgerEntry {
            key: key(&t, "101"),
            value_hash: newer.clone(),
            expires_at: now + Duration::minutes(10),
        }])
        .await,
        "record",
    );
    assert!(ok(s.is_echo(&key(&t, "101"), &newer, now).await, "is_echo"));
    assert!(
        !ok(s.is_echo(&key(&t, "101"), &wrote, now).await, "is_echo"),
        "the replaced value is no longer ours"
    );
    ok(
        s.record(&[LedgerEntry {
            key: key(&t, "old"),
            value_hash: wrote.clone(),
            expires_at: now - Duration::minutes(1),
        }])
        .await,
        "record",
    );
    assert!(
        ok(s.purge_expired(now).await, "purge") >= 1,
        "expired entries are purged"
    );
    assert!(
        ok(s.is_echo(&key(&t, "101"), &newer, now).await, "is_echo"),
        "live entries survive a purge"
    );
}

#[macro_export]
macro_rules! ledger_conformance {
    ($factory:path) => {
        $crate::__conformance_tests!(ledger, $factory, [echoes_are_recognised_until_they_expire]);
    };
}
