//! Retention passes over the memory stores on a manual clock: deliveries go once the dedupe
//! retention and the grace have passed, in batches, with their expired claims; younger ones and
//! running claims stay; the ledger's expired entries go.

use std::sync::Arc;
use std::time::Duration;

use adapter_memory::{
    ManualClock, MemoryIdempotencyStore, MemoryInbox, MemoryQueue, MemoryWriteLedger,
};
use domain::field::FieldValue;
use domain::idempotency::IdempotencyKey;
use domain::ids::{SystemId, TenantId};
use domain::ledger::{LedgerEntry, LedgerKey};
use domain::mapping::FieldKey;
use ports::clock::Clock;
use ports::stores::{Accepted, InboundDelivery, Inbox, WriteLedger};
use services::retention::{CLAIM_GRACE, Purged, Retention};
use time::OffsetDateTime;

const HOUR: Duration = Duration::from_secs(3600);
const DEDUPE: Duration = Duration::from_secs(96 * 3600);

fn delivery(t: &TenantId, key: &str, at: OffsetDateTime) -> InboundDelivery {
    InboundDelivery {
        tenant: t.clone(),
        source: SystemId::attio(),
        key: IdempotencyKey::from_provider(key).unwrap(),
        body: br#"{"events":[]}"#.to_vec(),
        received_at: at,
        quarantine: None,
    }
}

fn entry(t: &TenantId, record: &str, expires_at: OffsetDateTime) -> LedgerEntry {
    LedgerEntry {
        key: LedgerKey {
            tenant: t.clone(),
            system: SystemId::parse("hubspot").unwrap(),
            object: "contacts".into(),
            record: record.into(),
            field: FieldKey::parse("email").unwrap(),
        },
        value_hash: FieldValue::text("a@example.com").value_hash(),
        expires_at,
    }
}

#[tokio::test]
async fn a_pass_forgets_what_is_past_its_retention_and_keeps_the_rest() {
    let t0 = OffsetDateTime::from_unix_timestamp(1_767_225_600).unwrap();
    let clock = Arc::new(ManualClock::new(t0));
    let inbox = Arc::new(MemoryInbox::new(
        MemoryQueue::new(clock.clone()),
        MemoryIdempotencyStore::new(clock.clone()),
    ));
    let ledger = Arc::new(MemoryWriteLedger::default());
    let t = TenantId::parse("acme").unwrap();
    let mut old = Vec::new();
    for n in 0..5 {
        let d = delivery(&t, &format!("old-{n}"), clock.now());
        let Accepted::Stored { id, .. } = inbox.accept(&d, None, DEDUPE).await.unwrap() else {
            panic!("a new key is stored");
        };
        old.push(id);
    }
    clock.advance(50 * HOUR);
    let young = delivery(&t, "young", clock.now());
    let Accepted::Stored { id: young_id, .. } = inbox.accept(&young, None, DEDUPE).await.unwrap()
    else {
        panic!("a new key is stored");
    };
    ledger
        .record(&[
            entry(&t, "gone", t0 + HOUR),
            entry(&t, "kept", t0 + 200 * HOUR),
        ])
        .await
        .unwrap();
    let retention = Retention::new(clock.clone())
        .with_inbox(inbox.clone(), DEDUPE, 2)
        .with_ledger(ledger.clone());

    // Within the dedupe retention and the grace, nothing goes.
    clock.advance(DEDUPE + CLAIM_GRACE - 50 * HOUR - Duration::from_secs(1));
    assert_eq!(
        retention.pass().await.unwrap(),
        Purged {
            deliveries: 0,
            ledger_entries: 1,
            audit_entries: 0,
        }
    );
    assert!(inbox.get(&t, old[0]).await.is_ok());

    // A second later the five old deliveries go, in batches of two.
    clock.advance(Duration::from_secs(2));
    assert_eq!(
        retention.pass().await.unwrap(),
        Purged {
            deliveries: 5,
            ledger_entries: 0,
            audit_entries: 0,
        }
    );
    for id in old {
        assert!(matches!(
            inbox.get(&t, id).await,
            Err(ports::error::PortError::NotFound(_))
        ));
    }
    assert_eq!(inbox.get(&t, young_id).await.unwrap().delivery, young);
    // Their claims went with them; the young one's still runs.
    assert!(matches!(
        inbox
            .accept(&delivery(&t, "old-0", clock.now()), None, DEDUPE)
            .await
            .unwrap(),
        Accepted::Stored { .. }
    ));
    assert_eq!(
        inbox.accept(&young, None, DEDUPE).await.unwrap(),
        Accepted::Duplicate
    );
    let kept = entry(&t, "kept", t0 + 200 * HOUR);
    assert!(
        ledger
            .is_echo(&kept.key, &kept.value_hash, clock.now())
            .await
            .unwrap()
    );
    assert_eq!(retention.pass().await.unwrap(), Purged::default());
}
