//! Reconciliation over the simulators: changes whose webhooks were lost on either side (an Attio
//! edit, a HubSpot edit, a person created in Attio) are found by a dry run without a write, then
//! repaired by a pass whose report matches the dry run's; a second pass finds everything in
//! step; an interrupted pass resumes from its checkpoint.

use std::collections::BTreeMap;
use std::sync::Arc;

use adapter_memory::{MemorySyncStateStore, SystemClock};
use domain::field::FieldValue;
use domain::ids::{ObjectRef, SystemId};
use domain::mapping::SyncRule;
use domain::sync_state::{BackfillPhase, DriftReport};
use ports::attio::AttioRecords;
use ports::crm::{ExternalCrm, ExternalUpsert};
use services::reconcile::{Pass, Reconciler};

use crate::outbound::{World, create_person, hubspot_contact, people, prop, set_title, world};

fn hubspot() -> SystemId {
    SystemId::parse("hubspot").unwrap()
}

fn reconciler(w: &World) -> Reconciler {
    Reconciler::new(
        w.directory.clone(),
        Arc::new(w.outbound()),
        Arc::new(MemorySyncStateStore::default()),
        Arc::new(SystemClock),
    )
}

async fn attio_title(w: &World, id: domain::ids::RecordId) -> FieldValue {
    let r = w
        .attio
        .get_record(&ObjectRef::from(people()), id)
        .await
        .unwrap();
    FieldValue::from_attio(
        r.values
            .iter()
            .find(|(s, _)| s.as_str() == "job_title")
            .map(|(_, v)| v.as_slice())
            .unwrap_or_default(),
        None,
        false,
    )
}

#[tokio::test]
async fn lost_changes_on_both_sides_are_found_by_a_dry_run_and_repaired_by_a_pass() {
    let w = world(false, SyncRule::LatestWins).await;
    let a = create_person(&w, "a@example.com", "A", "One", "Analyst").await;
    let b = create_person(&w, "b@example.com", "B", "Two", "Builder").await;
    for id in [a, b] {
        w.sync.sync_record(&w.tenant, &people(), id).await.unwrap();
    }
    // Lost webhooks: an Attio edit, a HubSpot edit, an Attio record never synced.
    set_title(&w, a, "Architect").await;
    let edit = ExternalUpsert {
        key: b.to_string(),
        properties: BTreeMap::from([(prop("jobtitle"), FieldValue::text("Bricklayer"))]),
    };
    w.hubspot
        .upsert_batch("contacts", &prop("attio_record_id"), &[edit])
        .await
        .unwrap();
    let c = create_person(&w, "c@example.com", "C", "Three", "Carpenter").await;

    let r = reconciler(&w);
    let dry = r
        .run(&w.tenant, &people(), &hubspot(), Pass::DryRun(None))
        .await
        .unwrap();
    let dry = dry.drift.unwrap();
    assert!(dry.dry_run);
    assert_eq!(
        (dry.records, dry.created, dry.repaired, dry.in_step),
        (3, 1, 2, 0),
        "{dry:#?}"
    );
    assert_eq!(
        dry.fields_to_attio,
        BTreeMap::from([("job_title".to_owned(), 1)])
    );
    assert_eq!(
        dry.fields_to_crm["job_title"], 2,
        "a's title and c's: {dry:#?}"
    );
    assert_eq!(
        hubspot_contact(&w, a).await[&prop("jobtitle")],
        FieldValue::text("Analyst"),
        "a dry run writes nothing"
    );
    assert_eq!(attio_title(&w, b).await, FieldValue::text("Builder"));

    let pass = r
        .run(&w.tenant, &people(), &hubspot(), Pass::Repair)
        .await
        .unwrap();
    assert_eq!(pass.phase, BackfillPhase::Completed);
    let done = pass.drift.unwrap();
    assert_eq!(
        DriftReport {
            dry_run: true,
            ..done.clone()
        },
        dry,
        "the pass did what the dry run said"
    );
    assert_eq!(
        hubspot_contact(&w, a).await[&prop("jobtitle")],
        FieldValue::text("Architect")
    );
    assert_eq!(attio_title(&w, b).await, FieldValue::text("Bricklayer"));
    assert_eq!(
        hubspot_contact(&w, c).await[&prop("jobtitle")],
        FieldValue::text("Carpenter")
    );

    let again = r
        .run(&w.tenant, &people(), &hubspot(), Pass::Repair)
        .await
        .unwrap();
    let again = again.drift.unwrap();
    assert_eq!(
        (again.records, again.in_step),
        (3, 3),
        "everything in step: {again:#?}"
    );
}

#[tokio::test]
async fn a_pass_pages_with_checkpoints_and_a_candidate_mapping_is_dry_run() {
    let w = world(false, SyncRule::LatestWins).await;
    for n in 0..5 {
        create_person(&w, &format!("p{n}@example.com"), "P", &format!("N{n}"), "T").await;
    }
    let mut r = reconciler(&w);
    r.page_size = 2;
    let pass = r
        .run(&w.tenant, &people(), &hubspot(), Pass::Repair)
        .await
        .unwrap();
    assert_eq!((pass.pages_done, pass.records_seen), (3, 5));
    assert_eq!(pass.drift.unwrap().created, 5);
    // Candidate mappings where the title goes to `company` instead: every pair would change.
    let mut candidate = crate::outbound::targets(SyncRule::LatestWins);
    candidate.retain(|t| t.mapping.system == hubspot());
    let fields: Vec<_> = candidate[0]
        .mapping
        .fields()
        .iter()
        .cloned()
        .map(|mut f| {
            if f.external.as_str() == "jobtitle" {
                f.external = prop("company");
            }
            f
        })
        .collect();
    candidate[0].mapping =
        domain::mapping::ObjectMapping::new(people(), hubspot(), "contacts", fields).unwrap();
    let dry = r
        .run(
            &w.tenant,
            &people(),
            &hubspot(),
            Pass::DryRun(Some(candidate)),
        )
        .await
        .unwrap()
        .drift
        .unwrap();
    assert_eq!(dry.repaired, 5, "{dry:#?}");
    assert_eq!(
        dry.fields_to_crm,
        BTreeMap::from([("job_title".to_owned(), 5)])
    );
}
