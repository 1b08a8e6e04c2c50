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
    // Only our own writes so far: a pass sees them as unchanged and syncs nothing.
    let quiet = poller.poll_tenant(&w.tenant).await.unwrap();
    assert_eq!(
        (quiet.seen, quiet.synced, quiet.unchanged),
        (1, 0, 1),
        "{quiet:?}"
    );
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

/// HubSpot requests made since the last call in this process (each test runs in a process of
/// its own under nextest), from the kernel's `provider_requests_total` (a snapshot takes the
/// counts).
fn hubspot_requests() -> u64 {
    use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
    static SNAPSHOTTER: std::sync::OnceLock<Snapshotter> = std::sync::OnceLock::new();
    let snapshotter = SNAPSHOTTER.get_or_init(|| {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        recorder
            .install()
            .expect("no other recorder in this test process");
        snapshotter
    });
    snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .filter(|(key, ..)| {
            key.key().name() == "provider_requests_total"
                && key
                    .key()
                    .labels()
                    .any(|l| l.key() == "provider" && l.value() == "HubSpot")
        })
        .map(|(.., v)| match v {
            DebugValue::Counter(n) => n,
            _ => 0,
        })
        .sum()
}

/// A pass that finds nothing changed, or only our own writes, reads neither Attio nor HubSpot:
/// it costs one query of the polled CRM (issue 21: the poller emptied HubSpot's budget).
#[tokio::test]
async fn quiet_passes_and_echoes_cost_no_request_to_the_other_crm() {
    hubspot_requests();
    let w = world(true, domain::mapping::SyncRule::LatestWins).await;
    let ids = [
        create_person(&w, "ada@example.com", "Ada", "Lovelace", "Analyst").await,
        create_person(&w, "grace@example.com", "Grace", "Hopper", "Admiral").await,
    ];
    for id in ids {
        w.sync.sync_record(&w.tenant, &people(), id).await.unwrap();
    }
    let poller = ChangePoller::new(
        SystemId::parse("salesforce").unwrap(),
        w.directory.clone(),
        Arc::new(MemoryTenantStore::default()),
        w.links.clone(),
        Arc::new(w.outbound()),
        Arc::new(SystemClock),
        targets(domain::mapping::SyncRule::LatestWins),
    );
    for pass in ["echoes of our own writes", "quiet"] {
        hubspot_requests();
        let stats = poller.poll_tenant(&w.tenant).await.unwrap();
        assert_eq!((stats.synced, stats.unchanged), (0, 2), "{pass}: {stats:?}");
        assert_eq!(hubspot_requests(), 0, "{pass}: HubSpot requests");
    }
    // A real change costs its own sync, which reads (and here writes) HubSpot.
    let edit = ExternalUpsert {
        key: ids[0].to_string(),
        properties: BTreeMap::from([
            (prop("LastName"), FieldValue::text("Lovelace")),
            (prop("Title"), FieldValue::text("Countess")),
        ]),
    };
    w.salesforce
        .upsert_batch("Contact", &prop("Attio_Id__c"), &[edit])
        .await
        .unwrap();
    let before = hubspot_requests();
    let stats = poller.poll_tenant(&w.tenant).await.unwrap();
    assert_eq!((stats.synced, stats.unchanged), (1, 1), "{stats:?}");
    assert!(
        hubspot_requests() > before,
        "the real change reached HubSpot"
    );
    assert_eq!(
        hubspot_contact(&w, ids[0]).await[&prop("jobtitle")],
        FieldValue::text("Countess"),
        "carried on to HubSpot in the same sync"
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
