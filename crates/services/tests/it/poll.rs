//! Polling Salesforce: a change made there reaches Attio (and, on the next pass, HubSpot); a pass
//! that finds only our own echoes writes nothing.

use std::collections::BTreeMap;
use std::sync::Arc;

use adapter_memory::{MemoryTenantStore, SystemClock};
use domain::field::FieldValue;
use domain::ids::{ObjectRef, SystemId};
use ports::attio::AttioRecords;
use ports::crm::{ExternalCrm, ExternalUpsert};
use services::poll::ChangePoller;

use crate::outbound::{create_person, hubspot_contact, people, prop, targets, world};

#[tokio::test]
async fn a_salesforce_edit_is_polled_into_attio_and_on_to_hubspot() {
    let w = world(true, domain::mapping::SyncRule::LatestWins).await;
    let id = create_person(&w, "edsger@example.com", "Edsger", "Dijkstra", "Professor").await;
    w.sync.sync_record(&w.tenant, &people(), id).await.unwrap();
    let poller = ChangePoller::new(
        SystemId::parse("salesforce").unwrap(),
        w.directory.clone(),
        Arc::new(MemoryTenantStore::default()),
        w.links.clone(),
        Arc::new(w.outbound()),
        Arc::new(SystemClock),
        targets(domain::mapping::SyncRule::LatestWins),
    );
    // Only our own writes so far: a pass writes nothing.
    let quiet = poller.poll_tenant(&w.tenant).await.unwrap();
    assert_eq!((quiet.seen, quiet.synced), (1, 1), "{quiet:?}");
    let record = w
        .attio
        .get_record(&ObjectRef::from(people()), id)
        .await
        .unwrap();
    let title = |r: &domain::record::Record| {
        r.current("job_title")
            .next()
            .map(|v| format!("{:?}", v.data))
    };
    let before = title(&record);

    // Someone edits the title in Salesforce.
    let edit = ExternalUpsert {
        key: id.to_string(),
        properties: BTreeMap::from([
            (prop("LastName"), FieldValue::text("Dijkstra")),
            (prop("Title"), FieldValue::text("Turing laureate")),
        ]),
    };
    w.salesforce
        .upsert_batch("Contact", &prop("Attio_Id__c"), &[edit])
        .await
        .unwrap();
    let pass = poller.poll_tenant(&w.tenant).await.unwrap();
    assert!(pass.synced >= 1, "{pass:?}");
    let record = w
        .attio
        .get_record(&ObjectRef::from(people()), id)
        .await
        .unwrap();
    assert_ne!(title(&record), before);
    assert!(
        title(&record).unwrap().contains("Turing laureate"),
        "{:?}",
        title(&record)
    );
    // The overlapping next pass carries it on to HubSpot.
    poller.poll_tenant(&w.tenant).await.unwrap();
    assert_eq!(
        hubspot_contact(&w, id).await[&prop("jobtitle")],
        FieldValue::text("Turing laureate")
    );
}

#[tokio::test]
async fn with_a_cursor_an_outage_longer_than_the_window_misses_nothing() {
    use adapter_memory::{ManualClock, MemorySyncStateStore};
    use ports::stores::SyncStateStore;

    let w = world(true, domain::mapping::SyncRule::LatestWins).await;
    let id = create_person(&w, "barbara@example.com", "Barbara", "Liskov", "Professor").await;
    w.sync.sync_record(&w.tenant, &people(), id).await.unwrap();
    let clock = Arc::new(ManualClock::new(time::OffsetDateTime::now_utc()));
    let cursors = Arc::new(MemorySyncStateStore::default());
    let poller = |with_cursor: bool| {
        let p = ChangePoller::new(
            SystemId::parse("salesforce").unwrap(),
            w.directory.clone(),
            Arc::new(MemoryTenantStore::default()),
            w.links.clone(),
            Arc::new(w.outbound()),
            clock.clone(),
            targets(domain::mapping::SyncRule::LatestWins),
        );
        if with_cursor {
            p.with_cursor(cursors.clone())
        } else {
            p
        }
    };
    // A pass now; then the title changes in Salesforce, and the poller is down for two hours.
    poller(true).poll_tenant(&w.tenant).await.unwrap();
    let edit = ExternalUpsert {
        key: id.to_string(),
        properties: BTreeMap::from([
            (prop("LastName"), FieldValue::text("Liskov")),
            (prop("Title"), FieldValue::text("Turing laureate")),
        ]),
    };
    w.salesforce
        .upsert_batch("Contact", &prop("Attio_Id__c"), &[edit])
        .await
        .unwrap();
    clock.advance(std::time::Duration::from_secs(2 * 3600));
    let title = || async {
        w.attio
            .get_record(&ObjectRef::from(people()), id)
            .await
            .unwrap()
            .current("job_title")
            .next()
            .map(|v| format!("{:?}", v.data))
            .unwrap_or_default()
    };
    // Without the cursor, the two-minute window no longer reaches the edit.
    let blind = poller(false).poll_tenant(&w.tenant).await.unwrap();
    assert_eq!(blind.seen, 0, "{blind:?}");
    assert!(!title().await.contains("Turing laureate"));
    // With it, the pass reads from before the last one began.
    let pass = poller(true).poll_tenant(&w.tenant).await.unwrap();
    assert!(pass.synced >= 1, "{pass:?}");
    assert!(
        title().await.contains("Turing laureate"),
        "{}",
        title().await
    );
    let kept = cursors
        .get(
            &w.tenant,
            &domain::ids::ObjectSlug::parse("poll_contact").unwrap(),
            &SystemId::parse("salesforce").unwrap(),
        )
        .await
        .unwrap()
        .expect("the cursor is kept");
    assert_eq!(
        kept.updated_at,
        ports::clock::Clock::now(clock.as_ref()),
        "it moved to this pass's start"
    );
}
