//! The event pipeline on Attio's event payloads: created, updated, deleted and merged records,
//! duplicated and reordered deliveries, and the event types it does not handle yet.

use domain::ids::{ObjectRef, RecordId};
use domain::mapping::FieldKey;
use domain::webhook::WebhookEvent;
use ports::attio::{AttioRecords, AttioSchema};
use ports::crm::ExternalCrm;
use ports::error::PortError;
use ports::stores::LinkStore;
use serde_json::json;
use services::outbound::Action;
use services::pipeline::{DeletePolicy, EventPipeline, Handled};

use crate::outbound::{World, create_person, people, prop, set_title, world};

pub(crate) fn pipeline(w: &World, policy: DeletePolicy) -> EventPipeline {
    EventPipeline::new(
        w.directory.clone(),
        w.links.clone(),
        std::sync::Arc::new(w.outbound()),
        policy,
    )
}

/// An event as Attio delivers it.
pub async fn event(
    w: &World,
    kind: &str,
    record: RecordId,
    duplicate: Option<RecordId>,
) -> WebhookEvent {
    let object = w
        .attio
        .get_object(&ObjectRef::from(people()))
        .await
        .unwrap();
    let mut e = json!({
        "event_type": kind,
        "id": {
            "workspace_id": object.id.workspace_id.to_string(),
            "object_id": object.id.object_id.to_string(),
            "record_id": record.to_string(),
        },
        "actor": {"type": "workspace-member", "id": "50cf242c-7fa3-4cad-87d0-75b1af71c57b"},
    });
    if let Some(d) = duplicate {
        e["duplicate_object_id"] = json!(object.id.object_id.to_string());
        e["duplicate_record_id"] = json!(d.to_string());
    }
    serde_json::from_value(e).unwrap()
}

#[tokio::test]
async fn created_and_updated_events_sync_and_duplicates_change_nothing() {
    let w = world(true, domain::mapping::SyncRule::LatestWins).await;
    let p = pipeline(&w, DeletePolicy::Archive);
    let id = create_person(&w, "ada@example.com", "Ada", "Lovelace", "Analyst").await;
    let created = event(&w, "record.created", id, None).await;
    match p.handle(&w.tenant, &created).await.unwrap() {
        Handled::Synced(r) => assert!(r.iter().all(|r| r.action == Action::Created), "{r:?}"),
        other => panic!("{other:?}"),
    }
    // The same delivery again, and an update that arrives before we look: convergent.
    match p.handle(&w.tenant, &created).await.unwrap() {
        Handled::Synced(r) => assert!(r.iter().all(|r| r.action == Action::Unchanged)),
        other => panic!("{other:?}"),
    }
    set_title(&w, id, "Countess").await;
    let updated = event(&w, "record.updated", id, None).await;
    match p.handle(&w.tenant, &updated).await.unwrap() {
        Handled::Synced(r) => {
            assert!(
                r.iter()
                    .all(|r| r.written == vec![FieldKey::parse("job_title").unwrap()])
            )
        }
        other => panic!("{other:?}"),
    }
    // An older event delivered late re-reads the record: nothing to write.
    match p.handle(&w.tenant, &created).await.unwrap() {
        Handled::Synced(r) => assert!(r.iter().all(|r| r.written.is_empty())),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn deletes_archive_the_external_records_once_and_late_updates_are_ignored() {
    let w = world(true, domain::mapping::SyncRule::LatestWins).await;
    let p = pipeline(&w, DeletePolicy::Archive);
    let id = create_person(&w, "grace@example.com", "Grace", "Hopper", "Engineer").await;
    let reports = match p
        .handle(&w.tenant, &event(&w, "record.created", id, None).await)
        .await
        .unwrap()
    {
        Handled::Synced(r) => r,
        other => panic!("{other:?}"),
    };
    w.attio
        .delete_record(&ObjectRef::from(people()), id)
        .await
        .unwrap();
    let deleted = event(&w, "record.deleted", id, None).await;
    match p.handle(&w.tenant, &deleted).await.unwrap() {
        Handled::Deleted {
            archived, unlinked, ..
        } => {
            assert_eq!((archived.len(), unlinked), (2, 2));
        }
        other => panic!("{other:?}"),
    }
    let hs_id = reports[0].external_id.clone().unwrap();
    let sf_id = reports[1].external_id.clone().unwrap();
    assert!(matches!(
        w.hubspot.get("contacts", &hs_id, &[]).await,
        Err(PortError::NotFound(_))
    ));
    assert!(matches!(
        w.salesforce.get("Contact", &sf_id, &[]).await,
        Err(PortError::NotFound(_))
    ));
    // Redelivered: nothing left to do.
    match p.handle(&w.tenant, &deleted).await.unwrap() {
        Handled::Deleted {
            archived, unlinked, ..
        } => assert_eq!((archived.len(), unlinked), (0, 0)),
        other => panic!("{other:?}"),
    }
    // An update that arrives after the delete finds no record and changes nothing.
    let late = event(&w, "record.updated", id, None).await;
    assert!(matches!(
        p.handle(&w.tenant, &late).await.unwrap(),
        Handled::Ignored { .. }
    ));
}

#[tokio::test]
async fn keep_policy_drops_only_the_links() {
    let w = world(false, domain::mapping::SyncRule::LatestWins).await;
    let p = pipeline(&w, DeletePolicy::Keep);
    let id = create_person(&w, "alan@example.com", "Alan", "Turing", "Mathematician").await;
    let Handled::Synced(r) = p
        .handle(&w.tenant, &event(&w, "record.created", id, None).await)
        .await
        .unwrap()
    else {
        panic!("not synced")
    };
    w.attio
        .delete_record(&ObjectRef::from(people()), id)
        .await
        .unwrap();
    let out = p
        .handle(&w.tenant, &event(&w, "record.deleted", id, None).await)
        .await
        .unwrap();
    assert_eq!(
        out,
        Handled::Deleted {
            archived: vec![],
            unlinked: 1,
            held: vec![],
        }
    );
    let kept = w
        .hubspot
        .get(
            "contacts",
            r[0].external_id.as_ref().unwrap(),
            &[prop("email")],
        )
        .await
        .unwrap();
    assert!(!kept.archived);
}

#[tokio::test]
async fn merges_fold_the_duplicates_external_records_into_the_survivors() {
    let w = world(true, domain::mapping::SyncRule::LatestWins).await;
    let p = pipeline(&w, DeletePolicy::Archive);
    let survivor = create_person(
        &w,
        "kay@example.com",
        "Katherine",
        "Johnson",
        "Mathematician",
    )
    .await;
    let duplicate = create_person(&w, "kj@example.com", "Kay", "Johnson", "Computer").await;
    for id in [survivor, duplicate] {
        p.handle(&w.tenant, &event(&w, "record.created", id, None).await)
            .await
            .unwrap();
    }
    let dup_links = w
        .links
        .links_of(&w.tenant, &people(), duplicate)
        .await
        .unwrap();
    assert_eq!(dup_links.len(), 2);
    // Attio merges the duplicate into the survivor and removes the duplicate.
    w.attio
        .delete_record(&ObjectRef::from(people()), duplicate)
        .await
        .unwrap();
    let merged = event(&w, "record.merged", survivor, Some(duplicate)).await;
    match p.handle(&w.tenant, &merged).await.unwrap() {
        Handled::Merged { merged, synced, .. } => {
            assert_eq!(
                merged.len(),
                2,
                "HubSpot merged, Salesforce archived: {merged:?}"
            );
            assert!(synced.iter().all(|r| r.action == Action::Unchanged));
        }
        other => panic!("{other:?}"),
    }
    assert!(
        w.links
            .links_of(&w.tenant, &people(), duplicate)
            .await
            .unwrap()
            .is_empty()
    );
    let sf_dup = dup_links
        .iter()
        .find(|l| l.system.as_str() == "salesforce")
        .unwrap();
    assert!(matches!(
        w.salesforce.get("Contact", &sf_dup.external_id, &[]).await,
        Err(PortError::NotFound(_))
    ));
    let hs_dup = dup_links
        .iter()
        .find(|l| l.system.as_str() == "hubspot")
        .unwrap();
    let gone = w.hubspot.get("contacts", &hs_dup.external_id, &[]).await;
    assert!(
        matches!(gone, Err(PortError::NotFound(_))),
        "the merged HubSpot contact is archived: {gone:?}"
    );
    // Redelivered: the duplicate has no links left, so nothing more happens.
    match p.handle(&w.tenant, &merged).await.unwrap() {
        Handled::Merged {
            merged, repointed, ..
        } => assert_eq!((merged.len(), repointed), (0, 0)),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn other_event_types_are_acknowledged_with_a_reason() {
    let w = world(false, domain::mapping::SyncRule::LatestWins).await;
    let p = pipeline(&w, DeletePolicy::Archive);
    let member: WebhookEvent = serde_json::from_value(json!({
        "event_type": "workspace-member.created",
        "id": {"workspace_id": "14beef7a-99f7-4534-a87e-70b564330a4c", "workspace_member_id": "ff3f3bd4-40f4-4f80-8187-cd02385af424"},
        "actor": {"type": "workspace-member", "id": "50cf242c-7fa3-4cad-87d0-75b1af71c57b"}
    }))
    .unwrap();
    match p.handle(&w.tenant, &member).await.unwrap() {
        Handled::Ignored { reason } => {
            assert!(reason.contains("workspace-member.created"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn an_attribute_change_flushes_the_cached_schema_and_rechecks_the_mappings() {
    use domain::cache::{CacheCategory, CacheKey, CacheTag};
    use domain::ids::SystemId;
    use domain::mapping::{ObjectMapping, SyncRule};
    use ports::cache::Cache;
    use ports::directory::ClientDirectory;
    use services::outbound::{OutboundSync, SyncTarget};
    use std::sync::Arc;

    let w = world(false, SyncRule::LatestWins).await;
    let cache = Arc::new(adapter_memory::MemoryCache::default());
    // Besides the usual mappings, one of an attribute the people object does not have.
    let mut targets = crate::outbound::targets(SyncRule::LatestWins);
    targets.push(SyncTarget {
        mapping: ObjectMapping::new(
            people(),
            SystemId::parse("hubspot").unwrap(),
            "contacts",
            vec![crate::outbound::field(
                "favourite_colour",
                None,
                "colour",
                SyncRule::LatestWins,
            )],
        )
        .unwrap(),
        id_property: prop("attio_record_id"),
        create_with: Default::default(),
    });
    let outbound = Arc::new(
        OutboundSync::new(
            w.directory.clone(),
            w.links.clone(),
            w.ledger.clone(),
            w.conflicts.clone(),
            Arc::new(adapter_memory::SystemClock),
            targets,
        )
        .with_schema_cache(cache.clone()),
    );
    // A stale entry: the cache says people has no attributes.
    let key = CacheKey::new(w.tenant.clone(), CacheCategory::Schema, "attributes-people").unwrap();
    let tag = CacheTag::new(w.tenant.clone(), "schema-people").unwrap();
    cache
        .put(&key, b"[]".to_vec(), CacheCategory::Schema.ttl(), &[tag])
        .await
        .unwrap();
    let clients = w.directory.clients(&w.tenant).await.unwrap();
    assert!(
        outbound
            .attributes(&w.tenant, &people(), &clients)
            .await
            .unwrap()
            .is_empty(),
        "served from the cache"
    );
    let p = EventPipeline::new(
        w.directory.clone(),
        w.links.clone(),
        outbound.clone(),
        DeletePolicy::Archive,
    );
    let object = w
        .attio
        .get_object(&ObjectRef::from(people()))
        .await
        .unwrap();
    let changed: WebhookEvent = serde_json::from_value(json!({
        "event_type": "object-attribute.updated",
        "id": {
            "workspace_id": object.id.workspace_id.to_string(),
            "object_id": object.id.object_id.to_string(),
            "attribute_id": "41252299-f8c7-4b5e-99c9-4ff8321d2f96",
        },
        "actor": {"type": "workspace-member", "id": "50cf242c-7fa3-4cad-87d0-75b1af71c57b"}
    }))
    .unwrap();
    match p.handle(&w.tenant, &changed).await.unwrap() {
        Handled::SchemaChecked { object, problems } => {
            assert_eq!(object, people());
            // Checked against both live schemas: Attio lacks the attribute, HubSpot the property.
            assert_eq!(problems.len(), 2, "{problems:?}");
            assert!(problems[0].contains("favourite_colour"), "{problems:?}");
            assert!(problems[1].contains("no property colour"), "{problems:?}");
        }
        other => panic!("{other:?}"),
    }
    assert!(
        outbound
            .attributes(&w.tenant, &people(), &clients)
            .await
            .unwrap()
            .iter()
            .any(|a| a.api_slug == "job_title"),
        "the flush made the next read fetch Attio's schema"
    );
}

#[tokio::test]
async fn a_pipeline_entry_sets_the_stage_of_the_linked_deal_and_waits_for_an_unsynced_one() {
    use domain::ids::{AttributeSlug, ObjectSlug, SystemId};
    use domain::mapping::{ObjectMapping, SyncRule, Transform, ValueMap};
    use domain::write::{RecordWrite, WriteValue};
    use ports::attio::{AttioLists, EntryWrite, ListRef};
    use services::outbound::{OutboundSync, SyncTarget};
    use services::pipeline::StageTarget;
    use std::sync::Arc;

    let w = world(false, SyncRule::LatestWins).await;
    let deals = ObjectSlug::parse("deals").unwrap();
    let hubspot = SystemId::parse("hubspot").unwrap();
    let outbound = Arc::new(OutboundSync::new(
        w.directory.clone(),
        w.links.clone(),
        w.ledger.clone(),
        w.conflicts.clone(),
        Arc::new(adapter_memory::SystemClock),
        vec![SyncTarget {
            mapping: ObjectMapping::new(
                deals.clone(),
                hubspot.clone(),
                "deals",
                vec![crate::outbound::field(
                    "name",
                    None,
                    "dealname",
                    SyncRule::LatestWins,
                )],
            )
            .unwrap(),
            id_property: prop("attio_record_id"),
            create_with: Default::default(),
        }],
    ));
    let stages = ValueMap::new(
        [
            ("Won 🎉".to_owned(), "closedwon".to_owned()),
            ("Lost".to_owned(), "closedlost".to_owned()),
        ]
        .into_iter()
        .collect(),
    )
    .unwrap();
    let p = EventPipeline::new(
        w.directory.clone(),
        w.links.clone(),
        outbound.clone(),
        DeletePolicy::Archive,
    )
    .with_stage_targets(vec![StageTarget {
        list: "sales".into(),
        attribute: AttributeSlug::parse("stage").unwrap(),
        system: hubspot.clone(),
        property: prop("dealstage"),
        transform: Transform::MapValues { values: stages },
    }]);
    let new_deal = |name: &'static str| {
        let attio = w.attio.clone();
        let deals = deals.clone();
        async move {
            attio
                .create_record(
                    &ObjectRef::from(deals),
                    &RecordWrite::new()
                        .set(
                            AttributeSlug::parse("name").unwrap(),
                            vec![WriteValue::Text(name.into())],
                        )
                        .set(
                            AttributeSlug::parse("stage").unwrap(),
                            vec![WriteValue::Status("Lead".into())],
                        ),
                )
                .await
                .unwrap()
                .id
                .record_id
        }
    };
    let entry_event = |entry: &domain::record::ListEntry| -> WebhookEvent {
        serde_json::from_value(json!({
            "event_type": "list-entry.created",
            "id": {
                "workspace_id": entry.id.workspace_id.to_string(),
                "list_id": entry.id.list_id.to_string(),
                "entry_id": entry.id.entry_id.to_string(),
            },
            "parent_object_id": "97052eb9-e65e-443f-a297-f2d9a4a7f795",
            "parent_record_id": entry.parent_record_id.to_string(),
            "actor": {"type": "workspace-member", "id": "50cf242c-7fa3-4cad-87d0-75b1af71c57b"}
        }))
        .unwrap()
    };
    let won = |deal| EntryWrite {
        parent_object: "deals".into(),
        parent_record_id: deal,
        entry_values: [(
            AttributeSlug::parse("stage").unwrap(),
            vec![WriteValue::Status("Won 🎉".into())],
        )]
        .into(),
    };
    let sales = ListRef::Slug(domain::ids::ListSlug::parse("sales").unwrap());

    // A synced deal: its entry's stage reaches the HubSpot deal, translated.
    let deal = new_deal("Analytical engine").await;
    outbound.sync_record(&w.tenant, &deals, deal).await.unwrap();
    let entry = w.attio.create_entry(&sales, &won(deal)).await.unwrap();
    match p.handle(&w.tenant, &entry_event(&entry)).await.unwrap() {
        Handled::Staged(staged) => {
            assert_eq!(staged.len(), 1, "{staged:?}");
            assert_eq!(staged[0].2, domain::field::FieldValue::text("closedwon"));
        }
        other => panic!("{other:?}"),
    }
    let in_hubspot = w
        .hubspot
        .get_by(
            "deals",
            &prop("attio_record_id"),
            &deal.to_string(),
            &[prop("dealstage")],
        )
        .await
        .unwrap();
    assert_eq!(
        in_hubspot.properties[&prop("dealstage")],
        domain::field::FieldValue::text("closedwon")
    );

    // Both ways: the deal lost in HubSpot moves the Attio entry to `Lost` (the inverse of the
    // map); a stage the map does not name leaves it; the entry's own event writes nothing back.
    let status = |e: &domain::record::ListEntry| {
        domain::field::FieldValue::from_attio(
            e.entry_values
                .get(&AttributeSlug::parse("stage").unwrap())
                .map(Vec::as_slice)
                .unwrap_or_default(),
            None,
            false,
        )
    };
    for (stage, want) in [("closedlost", "Lost"), ("qualifiedtobuy", "Lost")] {
        let edit = ports::crm::ExternalUpsert {
            key: deal.to_string(),
            properties: [(prop("dealstage"), domain::field::FieldValue::text(stage))].into(),
        };
        w.hubspot
            .upsert_batch("deals", &prop("attio_record_id"), &[edit])
            .await
            .unwrap();
        p.handle_external(&w.tenant, &hubspot, "deals", &in_hubspot.id, false)
            .await
            .unwrap();
        let now = w.attio.get_entry(&sales, entry.id.entry_id).await.unwrap();
        assert_eq!(
            status(&now),
            domain::field::FieldValue::text(want),
            "after {stage}"
        );
    }
    let moved = w.attio.get_entry(&sales, entry.id.entry_id).await.unwrap();
    match p.handle(&w.tenant, &entry_event(&moved)).await.unwrap() {
        Handled::Staged(staged) => assert!(staged.is_empty(), "our own echo: {staged:?}"),
        other => panic!("{other:?}"),
    }
    let after = w
        .hubspot
        .get_by(
            "deals",
            &prop("attio_record_id"),
            &deal.to_string(),
            &[prop("dealstage")],
        )
        .await
        .unwrap();
    assert_eq!(
        after.properties[&prop("dealstage")],
        domain::field::FieldValue::text("qualifiedtobuy"),
        "the entry's event did not write `Lost` back over the CRM's unmapped stage"
    );

    // A deal not synced yet: the entry waits (a retryable error), and creates nothing.
    let early = new_deal("Difference engine").await;
    let entry = w.attio.create_entry(&sales, &won(early)).await.unwrap();
    let e = p.handle(&w.tenant, &entry_event(&entry)).await.unwrap_err();
    assert!(e.is_retryable(), "{e}");
    assert!(
        w.hubspot
            .get_by("deals", &prop("attio_record_id"), &early.to_string(), &[])
            .await
            .is_err(),
        "no deal is made from an entry alone"
    );
}

/// Deal stages both ways with Salesforce, which is polled: an entry's stage reaches the
/// Opportunity's `StageName`; a `StageName` changed in Salesforce is found by a polling pass (the
/// Opportunity carries a stage, so it is handed on even though no mapped field changed) and moves
/// the Attio entry through the inverse of the map; the job that follows our own write moves
/// nothing.
#[tokio::test]
async fn a_salesforce_stage_is_polled_back_into_the_attio_entry() {
    use domain::ids::{AttributeSlug, ObjectSlug, SystemId};
    use domain::mapping::{ObjectMapping, SyncRule, Transform, ValueMap};
    use domain::write::{RecordWrite, WriteValue};
    use ports::attio::{AttioLists, EntryWrite, ListRef};
    use ports::queue::{JobQueue, ReserveFilter};
    use services::outbound::{OutboundSync, SyncTarget};
    use services::pipeline::StageTarget;
    use std::sync::Arc;

    let w = world(true, SyncRule::LatestWins).await;
    let deals = ObjectSlug::parse("deals").unwrap();
    let salesforce = SystemId::parse("salesforce").unwrap();
    let targets = vec![SyncTarget {
        mapping: ObjectMapping::new(
            deals.clone(),
            salesforce.clone(),
            "Opportunity",
            vec![crate::outbound::field(
                "name",
                None,
                "Name",
                SyncRule::LatestWins,
            )],
        )
        .unwrap(),
        id_property: prop("Attio_Id__c"),
        create_with: [
            (
                prop("CloseDate"),
                domain::field::FieldValue::text("2027-03-31"),
            ),
            (
                prop("StageName"),
                domain::field::FieldValue::text("Prospecting"),
            ),
        ]
        .into(),
    }];
    let outbound = Arc::new(OutboundSync::new(
        w.directory.clone(),
        w.links.clone(),
        w.ledger.clone(),
        w.conflicts.clone(),
        Arc::new(adapter_memory::SystemClock),
        targets.clone(),
    ));
    let stages = ValueMap::new(
        [
            ("Won 🎉".to_owned(), "Closed Won".to_owned()),
            ("Lost".to_owned(), "Closed Lost".to_owned()),
        ]
        .into_iter()
        .collect(),
    )
    .unwrap();
    let p = EventPipeline::new(
        w.directory.clone(),
        w.links.clone(),
        outbound.clone(),
        DeletePolicy::Archive,
    )
    .with_stage_targets(vec![StageTarget {
        list: "sales".into(),
        attribute: AttributeSlug::parse("stage").unwrap(),
        system: salesforce.clone(),
        property: prop("StageName"),
        transform: Transform::MapValues { values: stages },
    }]);
    let deal = w
        .attio
        .create_record(
            &ObjectRef::from(deals.clone()),
            &RecordWrite::new()
                .set(
                    AttributeSlug::parse("name").unwrap(),
                    vec![WriteValue::Text("Analytical engine".into())],
                )
                .set(
                    AttributeSlug::parse("stage").unwrap(),
                    vec![WriteValue::Status("Lead".into())],
                ),
        )
        .await
        .unwrap()
        .id
        .record_id;
    outbound.sync_record(&w.tenant, &deals, deal).await.unwrap();
    let sales = ListRef::Slug(domain::ids::ListSlug::parse("sales").unwrap());
    let entry = w
        .attio
        .create_entry(
            &sales,
            &EntryWrite {
                parent_object: "deals".into(),
                parent_record_id: deal,
                entry_values: [(
                    AttributeSlug::parse("stage").unwrap(),
                    vec![WriteValue::Status("Won 🎉".into())],
                )]
                .into(),
            },
        )
        .await
        .unwrap();
    let event: WebhookEvent = serde_json::from_value(json!({
        "event_type": "list-entry.created",
        "id": {
            "workspace_id": entry.id.workspace_id.to_string(),
            "list_id": entry.id.list_id.to_string(),
            "entry_id": entry.id.entry_id.to_string(),
        },
        "parent_object_id": "97052eb9-e65e-443f-a297-f2d9a4a7f795",
        "parent_record_id": deal.to_string(),
        "actor": {"type": "workspace-member", "id": "50cf242c-7fa3-4cad-87d0-75b1af71c57b"}
    }))
    .unwrap();
    p.handle(&w.tenant, &event).await.unwrap();
    let stage_in_sf = || async {
        let rows = w
            .salesforce
            .query(
                &format!("SELECT Id, StageName FROM Opportunity WHERE Attio_Id__c = '{deal}'"),
                false,
                None,
            )
            .await
            .unwrap()
            .records;
        (
            rows[0].id.clone(),
            rows[0].properties[&prop("StageName")].clone(),
        )
    };
    let (opportunity, stage) = stage_in_sf().await;
    assert_eq!(stage, domain::field::FieldValue::text("Closed Won"));

    // Lost in Salesforce: a pass hands the Opportunity on, the worker moves the entry.
    let lost = [(
        prop("StageName"),
        domain::field::FieldValue::text("Closed Lost"),
    )]
    .into();
    w.salesforce
        .update("Opportunity", &opportunity, &lost)
        .await
        .unwrap();
    let queue = Arc::new(adapter_memory::MemoryQueue::new(Arc::new(
        adapter_memory::SystemClock,
    )));
    let poller = services::poll::ChangePoller::new(
        salesforce.clone(),
        w.directory.clone(),
        Arc::new(adapter_memory::MemoryTenantStore::default()),
        w.links.clone(),
        outbound.clone(),
        Arc::new(adapter_memory::SystemClock),
        targets,
    )
    .with_queue(queue.clone())
    .with_stage_properties(vec![prop("StageName"), prop("dealstage")]);
    let pass = poller.poll_tenant(&w.tenant).await.unwrap();
    assert_eq!(pass.synced, 1, "{pass:?}");
    let job = queue
        .reserve(
            "test",
            std::time::Duration::from_secs(30),
            &ReserveFilter::all(),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        job.job.payloads[0]["changes"][0]["id"],
        opportunity.as_str()
    );
    queue.ack(&job).await.unwrap();
    p.handle_external(&w.tenant, &salesforce, "Opportunity", &opportunity, false)
        .await
        .unwrap();
    let now = w.attio.get_entry(&sales, entry.id.entry_id).await.unwrap();
    let status = domain::field::FieldValue::from_attio(
        now.entry_values
            .get(&AttributeSlug::parse("stage").unwrap())
            .map(Vec::as_slice)
            .unwrap_or_default(),
        None,
        false,
    );
    assert_eq!(status, domain::field::FieldValue::text("Lost"));
    // Handled again (the next pass sees the record once more): nothing moves, nothing is written.
    p.handle_external(&w.tenant, &salesforce, "Opportunity", &opportunity, false)
        .await
        .unwrap();
    assert_eq!(
        stage_in_sf().await.1,
        domain::field::FieldValue::text("Closed Lost")
    );
}
