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
