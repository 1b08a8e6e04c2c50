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

/// A contact created in Salesforce, unlinked, under a mapping that adopts CRM-born people by
/// e-mail: a polling pass makes it an Attio person (through Attio's assert) and links it; the
/// next pass adopts nothing again.
#[tokio::test]
async fn a_polled_contact_born_in_salesforce_is_adopted_once() {
    let w = world(true, domain::mapping::SyncRule::LatestWins).await;
    let adopting: Vec<_> = targets(domain::mapping::SyncRule::LatestWins)
        .into_iter()
        .map(|mut t| {
            t.mapping = t
                .mapping
                .adopting(domain::mapping::FieldKey::parse("email_addresses").unwrap())
                .unwrap();
            t
        })
        .collect();
    let outbound = services::outbound::OutboundSync::new(
        w.directory.clone(),
        w.links.clone(),
        w.ledger.clone(),
        w.conflicts.clone(),
        Arc::new(SystemClock),
        adopting.clone(),
    );
    let poller = ChangePoller::new(
        SystemId::parse("salesforce").unwrap(),
        w.directory.clone(),
        Arc::new(MemoryTenantStore::default()),
        w.links.clone(),
        Arc::new(outbound),
        Arc::new(SystemClock),
        adopting,
    );
    // A person in Salesforce creates the contact: no Attio id on it.
    let made = crate::outbound::salesforce_rest(
        &w,
        reqwest::Method::POST,
        "/sobjects/Contact",
        Some(serde_json::json!({"LastName": "Hamilton", "FirstName": "Margaret", "Email": "margaret@example.com", "Title": "Director"})),
    )
    .await;
    assert_eq!(
        made.status(),
        201,
        "{}",
        made.text().await.unwrap_or_default()
    );

    let pass = poller.poll_tenant(&w.tenant).await.unwrap();
    assert_eq!((pass.synced, pass.unlinked), (1, 0), "adopted: {pass:?}");
    let found = w
        .attio
        .query_records(
            &ObjectRef::from(people()),
            &ports::attio::Query {
                filter: Some(serde_json::json!({"email_addresses": "margaret@example.com"})),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(found.len(), 1, "one Attio person");
    let title: Vec<String> = found[0]
        .current("job_title")
        .map(|v| format!("{:?}", v.data))
        .collect();
    assert!(title.iter().any(|t| t.contains("Director")), "{title:?}");
    let again = poller.poll_tenant(&w.tenant).await.unwrap();
    assert_eq!(
        (again.synced, again.unchanged),
        (0, 1),
        "linked and in step now: {again:?}"
    );
    let found = w
        .attio
        .query_records(
            &ObjectRef::from(people()),
            &ports::attio::Query {
                filter: Some(serde_json::json!({"email_addresses": "margaret@example.com"})),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(found.len(), 1, "still one");
}

/// Salesforce sends no webhooks, so deletes and merges are found by polling (`queryAll` sees
/// deleted records, a merged one with `MasterRecordId`): a linked contact merged into another
/// moves its link to the survivor (which gets the Attio id), and a deleted one is handed to the
/// worker as a delete; both only once.
#[tokio::test]
async fn polled_merges_move_links_and_polled_deletes_are_handed_on() {
    use adapter_memory::MemoryQueue;
    use domain::link::LinkLookup;
    use ports::queue::{JobQueue, ReserveFilter};
    use ports::stores::LinkStore;

    let w = world(true, domain::mapping::SyncRule::LatestWins).await;
    let system = SystemId::parse("salesforce").unwrap();
    let merged = create_person(&w, "merged@example.com", "Mae", "Merged", "Chair").await;
    let deleted = create_person(&w, "gone@example.com", "Gus", "Gone", "Chair").await;
    for id in [merged, deleted] {
        w.sync.sync_record(&w.tenant, &people(), id).await.unwrap();
    }
    let linked = |record| {
        let lookup = LinkLookup::Attio {
            object: people(),
            record,
            system: system.clone(),
        };
        let links = w.links.clone();
        let tenant = w.tenant.clone();
        async move {
            links
                .find(&tenant, &lookup)
                .await
                .unwrap()
                .map(|l| l.external_id)
        }
    };
    let old = linked(merged).await.unwrap();
    let gone = linked(deleted).await.unwrap();

    // A person in Salesforce keeps a duplicate (made by hand) and merges the linked contact into
    // it, and deletes the other contact.
    let sf = w._sims.2.url();
    let made: serde_json::Value = crate::outbound::salesforce_rest(
        &w,
        reqwest::Method::POST,
        "/sobjects/Contact",
        Some(serde_json::json!({"LastName": "Merged"})),
    )
    .await
    .json()
    .await
    .unwrap();
    let survivor = made["id"].as_str().unwrap().to_owned();
    let r = reqwest::Client::new()
        .post(format!("{sf}/_sim/merge"))
        .json(
            &serde_json::json!({"object": "Contact", "master": survivor, "merged": [old.as_str()]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let r = crate::outbound::salesforce_rest(
        &w,
        reqwest::Method::DELETE,
        &format!("/sobjects/Contact/{}", gone.as_str()),
        None,
    )
    .await;
    assert_eq!(r.status(), 204);

    let queue = Arc::new(MemoryQueue::new(Arc::new(SystemClock)));
    let poller = ChangePoller::new(
        system.clone(),
        w.directory.clone(),
        Arc::new(MemoryTenantStore::default()),
        w.links.clone(),
        Arc::new(w.outbound()),
        Arc::new(SystemClock),
        targets(domain::mapping::SyncRule::LatestWins),
    )
    .with_queue(queue.clone());
    let pass = poller.poll_tenant(&w.tenant).await.unwrap();
    assert_eq!(pass.gone, 2, "{pass:?}");
    let mut changes = Vec::new();
    while let Some(r) = queue
        .reserve(
            "test",
            std::time::Duration::from_secs(30),
            &ReserveFilter::all(),
        )
        .await
        .unwrap()
    {
        for p in &r.job.payloads {
            changes.extend(p["changes"].as_array().unwrap().iter().cloned());
        }
        queue.ack(&r).await.unwrap();
    }
    changes.sort_by_key(|c| c["id"].as_str().unwrap_or_default().to_owned());
    let mut expected = vec![
        serde_json::json!({"object": "Contact", "id": gone.as_str(), "deleted": true}),
        serde_json::json!({"object": "Contact", "id": survivor, "deleted": false, "merged_from": [old.as_str()]}),
    ];
    expected.sort_by_key(|c| c["id"].as_str().unwrap_or_default().to_owned());
    assert_eq!(changes, expected);

    // Without a queue the poller follows the merge itself: the link moves, the survivor gets
    // the Attio id, and a second pass finds nothing left to hand on for it.
    let direct = ChangePoller::new(
        system.clone(),
        w.directory.clone(),
        Arc::new(MemoryTenantStore::default()),
        w.links.clone(),
        Arc::new(w.outbound()),
        Arc::new(SystemClock),
        targets(domain::mapping::SyncRule::LatestWins),
    );
    direct.poll_tenant(&w.tenant).await.unwrap();
    assert_eq!(linked(merged).await.unwrap().as_str(), survivor);
    let rows = w
        .salesforce
        .query(
            &format!("SELECT Id FROM Contact WHERE Attio_Id__c = '{merged}'"),
            false,
            None,
        )
        .await
        .unwrap()
        .records;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].id.as_str(), survivor);
}
