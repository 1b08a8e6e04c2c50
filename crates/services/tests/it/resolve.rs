//! The conflict queue's resolutions and the audit trail: a field changed on both sides under a
//! `manual` rule is queued once (and updated when it changes again), and each way of resolving
//! it leaves both sides holding the chosen value, the snapshot at that value (so the next sync
//! writes nothing), and an audit entry per side written.

use std::collections::BTreeMap;

use domain::conflict::{ConflictFilter, Resolution};
use domain::field::FieldValue;
use domain::ids::{ObjectRef, RecordId};
use domain::mapping::{FieldKey, SyncRule};
use ports::attio::AttioRecords;
use ports::crm::{ExternalCrm, ExternalUpsert};
use ports::stores::{AuditLog, ConflictStore};
use services::ServiceError;
use services::outbound::Action;
use time::OffsetDateTime;

use crate::outbound::{World, create_person, hubspot_contact, people, prop, set_title, world};

async fn edit_in_hubspot(w: &World, id: RecordId, title: &str) {
    let edit = ExternalUpsert {
        key: id.to_string(),
        properties: BTreeMap::from([(prop("jobtitle"), FieldValue::text(title))]),
    };
    w.hubspot
        .upsert_batch("contacts", &prop("attio_record_id"), &[edit])
        .await
        .unwrap();
}

async fn attio_title(w: &World, id: RecordId) -> FieldValue {
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

/// A person synced to HubSpot whose title then changed on both sides: one open conflict.
async fn conflicted(w: &World, email: &str) -> RecordId {
    let id = create_person(w, email, "Ada", "Lovelace", "Analyst").await;
    w.sync.sync_record(&w.tenant, &people(), id).await.unwrap();
    edit_in_hubspot(w, id, "Countess").await;
    set_title(w, id, "Mathematician").await;
    let r = &w.sync.sync_record(&w.tenant, &people(), id).await.unwrap()[0];
    assert_eq!(r.conflicts, vec![FieldKey::parse("job_title").unwrap()]);
    id
}

fn only_record(id: RecordId) -> ConflictFilter {
    ConflictFilter {
        record: Some(id),
        ..Default::default()
    }
}

#[tokio::test]
async fn a_field_that_conflicts_again_updates_its_conflict() {
    let w = world(false, SyncRule::Manual).await;
    let id = conflicted(&w, "ada@example.com").await;
    edit_in_hubspot(&w, id, "Enchantress of Numbers").await;
    w.sync.sync_record(&w.tenant, &people(), id).await.unwrap();
    let open = w
        .conflicts
        .open(&w.tenant, &only_record(id), 10)
        .await
        .unwrap();
    assert_eq!(open.len(), 1, "queued once: {open:?}");
    assert_eq!(
        open[0].conflict.external.value,
        FieldValue::text("Enchantress of Numbers"),
        "with the newest value"
    );
    assert!(open[0].last_seen >= open[0].detected_at);
}

#[tokio::test]
async fn each_resolution_writes_the_chosen_value_everywhere_once() {
    let w = world(false, SyncRule::Manual).await;
    let cases = [
        (
            "attio@example.com",
            Resolution::KeepAttio,
            "Mathematician",
            false,
            true,
        ),
        (
            "crm@example.com",
            Resolution::KeepExternal,
            "Countess",
            true,
            false,
        ),
        (
            "value@example.com",
            Resolution::Value {
                value: FieldValue::text("Analyst of Engines"),
            },
            "Analyst of Engines",
            true,
            true,
        ),
    ];
    for (email, resolution, want, writes_attio, writes_crm) in cases {
        let id = conflicted(&w, email).await;
        let c = w
            .conflicts
            .open(&w.tenant, &only_record(id), 1)
            .await
            .unwrap()[0]
            .clone();
        assert!(
            matches!(w.sync.settle(&c).await, Err(ServiceError::NotReady(_))),
            "an unresolved conflict is not settled"
        );
        w.conflicts
            .resolve(
                &w.tenant,
                c.id,
                resolution.clone(),
                OffsetDateTime::now_utc(),
            )
            .await
            .unwrap();
        let settled = w.sync.settle_stored(&w.tenant, c.id).await.unwrap();
        assert_eq!(
            (settled.wrote_attio, settled.wrote_external),
            (writes_attio, writes_crm),
            "{resolution:?} writes only the sides that differ"
        );
        assert_eq!(
            attio_title(&w, id).await,
            FieldValue::text(want),
            "{resolution:?}"
        );
        assert_eq!(
            hubspot_contact(&w, id).await[&prop("jobtitle")],
            FieldValue::text(want),
            "{resolution:?}"
        );
        let again = w.sync.settle_stored(&w.tenant, c.id).await.unwrap();
        assert_eq!(again, Default::default(), "settling again writes nothing");
        let next = &w.sync.sync_record(&w.tenant, &people(), id).await.unwrap()[0];
        assert_eq!(next.action, Action::Unchanged, "{resolution:?}: {next:?}");
        assert!(
            next.conflicts.is_empty(),
            "the snapshot holds the chosen value"
        );
        assert!(
            w.conflicts
                .open(&w.tenant, &only_record(id), 10)
                .await
                .unwrap()
                .is_empty()
        );
        // The trail: the resolution's writes, newest first, each naming the operator.
        let history = w.audit.history(&w.tenant, &people(), id, 50).await.unwrap();
        let resolved: Vec<_> = history.iter().filter(|e| e.source == "operator").collect();
        assert_eq!(
            resolved.len(),
            usize::from(writes_attio) + usize::from(writes_crm),
            "{history:#?}"
        );
        for e in &resolved {
            assert_eq!(e.new, FieldValue::text(want));
            assert_eq!(e.rule, format!("resolution:{}", resolution.name()));
            assert!(e.cause.contains(&c.id.to_string()), "{}", e.cause);
        }
    }
}

#[tokio::test]
async fn the_trail_names_each_write_its_source_and_rule() {
    let w = world(false, SyncRule::LatestWins).await;
    let id = create_person(&w, "grace@example.com", "Grace", "Hopper", "Admiral").await;
    w.sync.sync_record(&w.tenant, &people(), id).await.unwrap();
    edit_in_hubspot(&w, id, "Rear Admiral").await;
    w.sync.sync_record(&w.tenant, &people(), id).await.unwrap();
    let history = w.audit.history(&w.tenant, &people(), id, 50).await.unwrap();
    let title = FieldKey::parse("job_title").unwrap();
    let of_title: Vec<_> = history.iter().filter(|e| e.field == title).collect();
    assert_eq!(of_title.len(), 2, "{history:#?}");
    let (back, out) = (of_title[0], of_title[1]);
    assert_eq!(
        (
            out.written_to.as_str(),
            out.source.as_str(),
            out.rule.as_str()
        ),
        ("hubspot", "attio", "latest_wins")
    );
    assert_eq!(
        (out.old.clone(), out.new.clone()),
        (FieldValue::Empty, FieldValue::text("Admiral"))
    );
    assert_eq!(
        (back.written_to.as_str(), back.source.as_str()),
        ("attio", "hubspot"),
        "newest first: the value HubSpot brought into Attio"
    );
    assert_eq!(
        (back.old.clone(), back.new.clone()),
        (
            FieldValue::text("Admiral"),
            FieldValue::text("Rear Admiral")
        )
    );
    assert_eq!(back.written_record, id.to_string());
}

#[tokio::test]
async fn a_conflict_whose_sides_come_to_agree_closes_itself() {
    let w = world(false, SyncRule::Manual).await;
    let id = conflicted(&w, "agree@example.com").await;
    edit_in_hubspot(&w, id, "Mathematician").await;
    let r = &w.sync.sync_record(&w.tenant, &people(), id).await.unwrap()[0];
    assert!(r.conflicts.is_empty());
    assert!(
        w.conflicts
            .open(&w.tenant, &only_record(id), 10)
            .await
            .unwrap()
            .is_empty(),
        "the sides agree: nobody needs to decide"
    );
}
