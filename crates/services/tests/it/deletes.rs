//! Safe deletes: the breaker holds deletes past its maximum, a mapping can hold every delete,
//! a person's approval or rejection is carried out once, and a CRM-side delete deletes, keeps
//! or holds the Attio record per policy — held, the pair is not re-created meanwhile.

use std::sync::Arc;
use std::time::Duration;

use adapter_memory::{MemoryDeleteStore, SystemClock};
use domain::deletes::{DeleteBreaker, DeletePolicy, DeleteStatus};
use domain::ids::{ExternalId, ObjectRef, RecordId, SystemId};
use domain::link::LinkLookup;
use domain::mapping::SyncRule;
use ports::attio::AttioRecords;
use ports::crm::ExternalCrm;
use ports::error::PortError;
use ports::stores::{DeleteStore, LinkStore};
use services::deletes::{DeleteRules, SafeDeletes};
use services::outbound::Action;
use services::pipeline::{EventPipeline, Handled};

use crate::outbound::{World, create_person, people, set_title, world};
use crate::pipeline::event;

fn hubspot() -> SystemId {
    SystemId::parse("hubspot").unwrap()
}

fn gated(
    w: &World,
    rules: DeleteRules,
) -> (EventPipeline, Arc<SafeDeletes>, Arc<MemoryDeleteStore>) {
    let store = Arc::new(MemoryDeleteStore::default());
    let gate = Arc::new(SafeDeletes::new(
        store.clone(),
        Arc::new(SystemClock),
        rules,
    ));
    let outbound = Arc::new(w.outbound().with_safe_deletes(gate.clone()));
    let p = EventPipeline::new(
        w.directory.clone(),
        w.links.clone(),
        outbound,
        DeletePolicy::Archive,
    )
    .with_safe_deletes(gate.clone());
    (p, gate, store)
}

/// A person synced to HubSpot; the HubSpot id.
async fn synced(w: &World, p: &EventPipeline, n: usize) -> (RecordId, ExternalId) {
    let id = create_person(w, &format!("p{n}@example.com"), "P", &format!("N{n}"), "T").await;
    match p
        .handle(&w.tenant, &event(w, "record.created", id, None).await)
        .await
        .unwrap()
    {
        Handled::Synced(r) => (id, r[0].external_id.clone().unwrap()),
        other => panic!("{other:?}"),
    }
}

async fn in_hubspot(w: &World, id: &ExternalId) -> bool {
    !matches!(
        w.hubspot.get("contacts", id, &[]).await,
        Err(PortError::NotFound(_))
    )
}

async fn linked(w: &World, id: RecordId) -> bool {
    let lookup = LinkLookup::Attio {
        object: people(),
        record: id,
        system: hubspot(),
    };
    w.links.find(&w.tenant, &lookup).await.unwrap().is_some()
}

#[tokio::test]
async fn a_burst_of_deletes_trips_the_breaker_and_a_persons_decisions_are_carried_out() {
    let w = world(false, SyncRule::LatestWins).await;
    let rules = DeleteRules {
        breaker: DeleteBreaker {
            max: 2,
            max_share: None,
            window: Duration::from_secs(600),
        },
        ..DeleteRules::default()
    };
    let (p, gate, store) = gated(&w, rules);
    let mut people_ = Vec::new();
    for n in 0..4 {
        people_.push(synced(&w, &p, n).await);
    }
    let mut held = Vec::new();
    for (id, _) in &people_ {
        w.attio
            .delete_record(&ObjectRef::from(people()), *id)
            .await
            .unwrap();
        let deleted = event(&w, "record.deleted", *id, None).await;
        match p.handle(&w.tenant, &deleted).await.unwrap() {
            Handled::Deleted { held: h, .. } => held.extend(h),
            other => panic!("{other:?}"),
        }
        // A replayed delete keeps its first decision.
        p.handle(&w.tenant, &deleted).await.unwrap();
    }
    assert_eq!(held.len(), 2, "the third and fourth deletes are held");
    for (i, (id, hs)) in people_.iter().enumerate() {
        assert_eq!(in_hubspot(&w, hs).await, i >= 2, "person {i} in HubSpot");
        assert_eq!(linked(&w, *id).await, i >= 2, "person {i}'s link");
    }
    let listed = store.held(&w.tenant, 10).await.unwrap();
    assert_eq!(listed.iter().map(|d| d.id).collect::<Vec<_>>(), held);
    assert!(listed[0].reason.contains("breaker"), "{}", listed[0].reason);

    let now = time::OffsetDateTime::now_utc();
    store
        .decide(&w.tenant, held[0], DeleteStatus::Approved, now)
        .await
        .unwrap();
    store
        .decide(&w.tenant, held[1], DeleteStatus::Rejected, now)
        .await
        .unwrap();
    for id in &held {
        gate.carry_out(&w.tenant, *id, w.directory.as_ref(), w.links.as_ref())
            .await
            .unwrap();
        gate.carry_out(&w.tenant, *id, w.directory.as_ref(), w.links.as_ref())
            .await
            .unwrap();
    }
    let (third, fourth) = (&people_[2], &people_[3]);
    assert!(!in_hubspot(&w, &third.1).await, "approved: archived");
    assert!(in_hubspot(&w, &fourth.1).await, "rejected: kept");
    assert!(
        !linked(&w, third.0).await && !linked(&w, fourth.0).await,
        "both unlinked"
    );
}

#[tokio::test]
async fn a_mapping_can_hold_every_delete_and_an_undecided_one_is_not_ready() {
    let w = world(false, SyncRule::LatestWins).await;
    let rules = DeleteRules {
        per_mapping: [(
            (people(), hubspot()),
            (DeletePolicy::Hold, DeletePolicy::Keep),
        )]
        .into(),
        ..DeleteRules::default()
    };
    let (p, gate, _) = gated(&w, rules);
    let (id, hs) = synced(&w, &p, 0).await;
    w.attio
        .delete_record(&ObjectRef::from(people()), id)
        .await
        .unwrap();
    let held = match p
        .handle(&w.tenant, &event(&w, "record.deleted", id, None).await)
        .await
        .unwrap()
    {
        Handled::Deleted { held, archived, .. } => {
            assert!(archived.is_empty());
            held
        }
        other => panic!("{other:?}"),
    };
    assert_eq!(held.len(), 1);
    assert!(in_hubspot(&w, &hs).await);
    assert!(matches!(
        gate.carry_out(&w.tenant, held[0], w.directory.as_ref(), w.links.as_ref())
            .await,
        Err(services::ServiceError::NotReady(_))
    ));
}

#[tokio::test]
async fn a_crm_delete_deletes_keeps_or_holds_the_attio_record_per_policy() {
    let w = world(false, SyncRule::LatestWins).await;
    for (n, policy) in [
        (0, DeletePolicy::Keep),
        (1, DeletePolicy::Archive),
        (2, DeletePolicy::Hold),
    ] {
        let rules = DeleteRules {
            on_crm_delete: policy,
            ..DeleteRules::default()
        };
        let (p, _, _) = gated(&w, rules);
        let (id, hs) = synced(&w, &p, n).await;
        w.hubspot
            .archive_batch("contacts", std::slice::from_ref(&hs))
            .await
            .unwrap();
        let out = p
            .handle_external(&w.tenant, &hubspot(), "contacts", &hs, true)
            .await
            .unwrap();
        let attio_has = w
            .attio
            .get_record(&ObjectRef::from(people()), id)
            .await
            .is_ok();
        match policy {
            DeletePolicy::Keep => {
                assert!(matches!(out, Handled::Ignored { .. }), "{out:?}");
                assert!(attio_has);
            }
            DeletePolicy::Archive => {
                assert!(
                    matches!(out, Handled::Deleted { unlinked: 1, .. }),
                    "{out:?}"
                );
                assert!(!attio_has, "the Attio record is deleted");
                assert!(!linked(&w, id).await);
            }
            DeletePolicy::Hold => {
                assert!(
                    matches!(&out, Handled::Deleted { held, .. } if held.len() == 1),
                    "{out:?}"
                );
                assert!(attio_has && linked(&w, id).await);
                // Edited in Attio meanwhile: the pair is left alone, not re-created in HubSpot.
                set_title(&w, id, "Edited").await;
                let r = p
                    .outbound()
                    .sync_record(&w.tenant, &people(), id)
                    .await
                    .unwrap();
                assert_eq!(r[0].action, Action::DeleteHeld, "{r:?}");
                assert!(!in_hubspot(&w, &hs).await);
            }
        }
    }
}

/// A CRM delete nobody told (its event lost, or told before a merge made the record the linked
/// one) is found when the pair is next synced, and goes through the same gate: kept (the CRM
/// record is written afresh), deleted in Attio, or held; a dry run only reads.
#[tokio::test]
async fn a_crm_delete_found_by_reading_follows_the_policy() {
    let w = world(false, SyncRule::LatestWins).await;
    for (n, policy) in [
        (10, DeletePolicy::Keep),
        (11, DeletePolicy::Archive),
        (12, DeletePolicy::Hold),
    ] {
        let rules = DeleteRules {
            on_crm_delete: policy,
            ..DeleteRules::default()
        };
        let (p, _, store) = gated(&w, rules);
        let (id, hs) = synced(&w, &p, n).await;
        w.hubspot
            .archive_batch("contacts", std::slice::from_ref(&hs))
            .await
            .unwrap();
        let record = w
            .attio
            .get_record(&ObjectRef::from(people()), id)
            .await
            .unwrap();
        let clients = ports::directory::ClientDirectory::clients(w.directory.as_ref(), &w.tenant)
            .await
            .unwrap();
        let target = &p.outbound().targets_of(&w.tenant, &people()).await.unwrap()[0];
        let planned = p
            .outbound()
            .plan_one(&w.tenant, &people(), &record, target, &clients)
            .await
            .unwrap();
        assert_eq!(
            planned.action,
            Action::Created,
            "{policy:?}: a dry run only reads"
        );
        assert!(store.held(&w.tenant, 10).await.unwrap().is_empty());
        let r = p
            .outbound()
            .sync_record(&w.tenant, &people(), id)
            .await
            .unwrap();
        let attio_has = w
            .attio
            .get_record(&ObjectRef::from(people()), id)
            .await
            .is_ok();
        match policy {
            DeletePolicy::Keep => {
                assert_eq!(r[0].action, Action::Created, "written afresh: {r:?}");
                assert!(attio_has && linked(&w, id).await);
            }
            DeletePolicy::Archive => {
                assert_eq!(r[0].action, Action::DeletedInAttio, "{r:?}");
                assert!(!attio_has && !linked(&w, id).await);
            }
            DeletePolicy::Hold => {
                assert_eq!(r[0].action, Action::DeleteHeld, "{r:?}");
                assert!(attio_has && linked(&w, id).await);
                assert!(
                    !in_hubspot(&w, &hs).await || {
                        let c = w.hubspot.get("contacts", &hs, &[]).await.unwrap();
                        c.archived
                    }
                );
            }
        }
    }
}

#[tokio::test]
async fn the_breaker_also_opens_at_a_share_of_the_tenants_pairs() {
    let w = world(false, SyncRule::LatestWins).await;
    let rules = DeleteRules {
        breaker: DeleteBreaker {
            max: 50,
            max_share: Some(0.4),
            window: Duration::from_secs(600),
        },
        ..DeleteRules::default()
    };
    let store = Arc::new(MemoryDeleteStore::default());
    let gate = Arc::new(
        SafeDeletes::new(store.clone(), Arc::new(SystemClock), rules).with_links(w.links.clone()),
    );
    let p = EventPipeline::new(
        w.directory.clone(),
        w.links.clone(),
        Arc::new(w.outbound().with_safe_deletes(gate.clone())),
        DeletePolicy::Archive,
    )
    .with_safe_deletes(gate);
    let mut ids = Vec::new();
    for n in 0..5 {
        ids.push(synced(&w, &p, n).await.0);
    }
    let mut held = 0;
    for id in ids {
        w.attio
            .delete_record(&ObjectRef::from(people()), id)
            .await
            .unwrap();
        if let Handled::Deleted { held: h, .. } = p
            .handle(&w.tenant, &event(&w, "record.deleted", id, None).await)
            .await
            .unwrap()
        {
            held += h.len();
        }
    }
    assert_eq!(
        held, 3,
        "40 % of five pairs is two: the other three are held"
    );
    let reason = &store.held(&w.tenant, 1).await.unwrap()[0].reason;
    assert!(reason.contains("40 %"), "{reason}");
}
