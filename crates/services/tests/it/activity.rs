//! Activity sync: an Attio note and task reach HubSpot (engagements associated with the linked
//! contact) and Salesforce (`Note` and `Task` on the linked Contact), are updated in place,
//! deleted with their Attio originals, and wait while their record is not linked yet.

use domain::ids::{ExternalId, ObjectRef, RecordId, SystemId};
use domain::webhook::WebhookEvent;
use ports::attio::{AttioNotes, AttioSchema, AttioTasks, NewNote, NewTask, TaskLink, TaskUpdate};
use ports::crm::{ActivityKind, ExternalCrm};
use ports::error::PortError;
use ports::stores::LinkStore;
use serde_json::json;
use services::ServiceError;
use services::pipeline::{DeletePolicy, EventPipeline, Handled};

use crate::outbound::{RacedLinks, World, create_person, people, prop, salesforce_rest, world};

fn pipeline(w: &World) -> EventPipeline {
    EventPipeline::new(
        w.directory.clone(),
        w.links.clone(),
        std::sync::Arc::new(w.outbound()),
        DeletePolicy::Archive,
    )
}

/// The people object as Attio identifies it (workspace and object ids).
async fn people_ids(w: &World) -> domain::schema::ObjectIdentifier {
    w.attio
        .get_object(&ObjectRef::from(people()))
        .await
        .unwrap()
        .id
}

async fn note_event(w: &World, kind: &str, note: uuid::Uuid, record: RecordId) -> WebhookEvent {
    let object = people_ids(w).await;
    serde_json::from_value(json!({
        "event_type": kind,
        "id": {"workspace_id": object.workspace_id.to_string(), "note_id": note.to_string()},
        "parent_object_id": object.object_id.to_string(),
        "parent_record_id": record.to_string(),
        "actor": {"type": "workspace-member", "id": "50cf242c-7fa3-4cad-87d0-75b1af71c57b"}
    }))
    .unwrap()
}

async fn task_event(w: &World, kind: &str, task: uuid::Uuid) -> WebhookEvent {
    let object = people_ids(w).await;
    serde_json::from_value(json!({
        "event_type": kind,
        "id": {"workspace_id": object.workspace_id.to_string(), "task_id": task.to_string()},
        "actor": {"type": "workspace-member", "id": "50cf242c-7fa3-4cad-87d0-75b1af71c57b"}
    }))
    .unwrap()
}

/// The CRM ids an activity event wrote, by system.
fn written(h: Handled, kind: ActivityKind) -> Vec<(SystemId, ExternalId)> {
    match h {
        Handled::Activity { kind: k, written } if k == kind => written,
        other => panic!("{other:?}"),
    }
}

fn id_in(w: &[(SystemId, ExternalId)], system: &str) -> ExternalId {
    w.iter()
        .find(|(s, _)| s.as_str() == system)
        .map(|(_, id)| id.clone())
        .unwrap_or_else(|| panic!("nothing written to {system}: {w:?}"))
}

async fn prop_of(crm: &dyn ExternalCrm, object: &str, id: &ExternalId, p: &str) -> String {
    let r = crm.get(object, id, &[prop(p)]).await.unwrap();
    r.properties
        .get(&prop(p))
        .map(|v| match v {
            domain::field::FieldValue::Text(t) => t.clone(),
            other => format!("{other:?}"),
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn notes_and_tasks_reach_the_linked_records_once_follow_changes_and_deletes() {
    let w = world(true, domain::mapping::SyncRule::LatestWins).await;
    let p = pipeline(&w);
    let person = create_person(&w, "grace@example.com", "Grace", "Hopper", "Admiral").await;
    // The person is synced first, which links her in both CRMs.
    w.sync
        .sync_record(&w.tenant, &people(), person)
        .await
        .unwrap();
    let links = w
        .links
        .links_of(&w.tenant, &people(), person)
        .await
        .unwrap();
    let contact = |system: &str| {
        links
            .iter()
            .find(|l| l.system.as_str() == system)
            .map(|l| l.external_id.clone())
            .unwrap()
    };

    let note = w
        .attio
        .create_note(&NewNote {
            parent_object: "people".into(),
            parent_record_id: person,
            title: "Call notes".into(),
            format: domain::schema::ContentFormat::Plaintext,
            content: "Wants the enterprise plan.".into(),
            created_at: None,
        })
        .await
        .unwrap();
    let note_id = *note.id.note_id.as_uuid();
    let created = note_event(&w, "note.created", note_id, person).await;
    let first = written(
        p.handle(&w.tenant, &created).await.unwrap(),
        ActivityKind::Note,
    );
    let (hs_note, sf_note) = (id_in(&first, "hubspot"), id_in(&first, "salesforce"));
    assert_eq!(
        prop_of(&w.hubspot, "notes", &hs_note, "hs_note_body").await,
        "Call notes\n\nWants the enterprise plan."
    );
    assert_eq!(
        w.hubspot
            .associations("notes", &hs_note, "contacts")
            .await
            .unwrap(),
        vec![contact("hubspot")],
        "the HubSpot note is on the linked contact"
    );
    assert_eq!(
        prop_of(&w.salesforce, "Note", &sf_note, "ParentId").await,
        contact("salesforce").as_str()
    );
    assert_eq!(
        prop_of(&w.salesforce, "Note", &sf_note, "Title").await,
        "Call notes"
    );
    // The same delivery again writes nothing: the copies hold what the note says (the link's
    // snapshot), and no new ones are made.
    let again = written(
        p.handle(&w.tenant, &created).await.unwrap(),
        ActivityKind::Note,
    );
    assert!(again.is_empty(), "{again:?}");
    assert_eq!(first.len(), 2);
    assert_eq!(
        w.hubspot
            .associations("contacts", &contact("hubspot"), "notes")
            .await
            .unwrap()
            .len(),
        1,
        "one note on the contact"
    );

    // A task linked to the person, then completed.
    let task = w
        .attio
        .create_task(&NewTask {
            content: "Send the contract\nwith the discount".into(),
            deadline_at: Some(time::macros::datetime!(2027-01-15 09:00 UTC)),
            is_completed: false,
            linked_records: vec![TaskLink {
                target_object: "people".into(),
                target_record_id: person,
            }],
            assignees: vec![],
        })
        .await
        .unwrap();
    let task_id = *task.id.task_id.as_uuid();
    let t = written(
        p.handle(&w.tenant, &task_event(&w, "task.created", task_id).await)
            .await
            .unwrap(),
        ActivityKind::Task,
    );
    let (hs_task, sf_task) = (id_in(&t, "hubspot"), id_in(&t, "salesforce"));
    assert_eq!(
        prop_of(&w.hubspot, "tasks", &hs_task, "hs_task_subject").await,
        "Send the contract"
    );
    assert_eq!(
        prop_of(&w.hubspot, "tasks", &hs_task, "hs_task_status").await,
        "NOT_STARTED"
    );
    assert_eq!(
        prop_of(&w.salesforce, "Task", &sf_task, "WhoId").await,
        contact("salesforce").as_str()
    );
    w.attio
        .update_task(
            task.id.task_id,
            &TaskUpdate {
                is_completed: Some(true),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let done = written(
        p.handle(&w.tenant, &task_event(&w, "task.updated", task_id).await)
            .await
            .unwrap(),
        ActivityKind::Task,
    );
    assert_eq!(done, t, "the copies are updated in place");
    assert_eq!(
        prop_of(&w.hubspot, "tasks", &hs_task, "hs_task_status").await,
        "COMPLETED"
    );
    assert_eq!(
        prop_of(&w.salesforce, "Task", &sf_task, "Status").await,
        "Completed"
    );

    // Deleting the note in Attio deletes its copies and forgets them.
    w.attio.delete_note(note.id.note_id).await.unwrap();
    match p
        .handle(
            &w.tenant,
            &note_event(&w, "note.deleted", note_id, person).await,
        )
        .await
        .unwrap()
    {
        Handled::Deleted {
            archived, unlinked, ..
        } => {
            assert_eq!(archived.len(), 2, "{archived:?}");
            assert_eq!(unlinked, 2);
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        w.salesforce.get("Note", &sf_note, &[]).await,
        Err(PortError::NotFound(_))
    ));
    let hs = w.hubspot.get("notes", &hs_note, &[]).await;
    assert!(
        matches!(&hs, Err(PortError::NotFound(_))) || hs.as_ref().is_ok_and(|r| r.archived),
        "{hs:?}"
    );
    // Deleting the task deletes its copies too.
    w.attio.delete_task(task.id.task_id).await.unwrap();
    match p
        .handle(&w.tenant, &task_event(&w, "task.deleted", task_id).await)
        .await
        .unwrap()
    {
        Handled::Deleted {
            archived, unlinked, ..
        } => {
            assert_eq!(archived, t, "both copies of the task");
            assert_eq!(unlinked, 2);
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        w.salesforce.get("Task", &sf_task, &[]).await,
        Err(PortError::NotFound(_))
    ));
    // A late `note.updated` for the deleted note changes nothing.
    match p
        .handle(
            &w.tenant,
            &note_event(&w, "note.updated", note_id, person).await,
        )
        .await
        .unwrap()
    {
        Handled::Ignored { reason } => assert!(reason.contains("no longer exists"), "{reason}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_note_on_a_record_not_linked_yet_waits_and_is_retried() {
    let w = world(false, domain::mapping::SyncRule::LatestWins).await;
    let p = pipeline(&w);
    let person = create_person(&w, "alan@example.com", "Alan", "Turing", "Mathematician").await;
    let note = w
        .attio
        .create_note(&NewNote {
            parent_object: "people".into(),
            parent_record_id: person,
            title: "Intro".into(),
            format: domain::schema::ContentFormat::Plaintext,
            content: "Met at the conference.".into(),
            created_at: None,
        })
        .await
        .unwrap();
    let event = note_event(&w, "note.created", *note.id.note_id.as_uuid(), person).await;
    // The note's event overtakes the person's: not linked in HubSpot yet.
    let e = p.handle(&w.tenant, &event).await.unwrap_err();
    assert!(matches!(e, ServiceError::NotReady(_)), "{e:?}");
    assert!(e.is_retryable());
    // Once the person is synced, the retry writes the note.
    w.sync
        .sync_record(&w.tenant, &people(), person)
        .await
        .unwrap();
    let done = written(
        p.handle(&w.tenant, &event).await.unwrap(),
        ActivityKind::Note,
    );
    assert_eq!(done.len(), 1, "HubSpot only: Salesforce is not connected");
}

#[tokio::test]
async fn a_note_written_by_a_racing_worker_leaves_one_copy_per_crm() {
    let w = world(true, domain::mapping::SyncRule::LatestWins).await;
    let person = create_person(&w, "barbara@example.com", "Barbara", "Liskov", "Professor").await;
    w.sync
        .sync_record(&w.tenant, &people(), person)
        .await
        .unwrap();
    let links = w
        .links
        .links_of(&w.tenant, &people(), person)
        .await
        .unwrap();
    let contact_in = |system: &str| {
        links
            .iter()
            .find(|l| l.system.as_str() == system)
            .unwrap()
            .external_id
            .clone()
    };
    let (contact, sf_contact) = (contact_in("hubspot"), contact_in("salesforce"));
    let note = w
        .attio
        .create_note(&NewNote {
            parent_object: "people".into(),
            parent_record_id: person,
            title: "Lunch".into(),
            format: domain::schema::ContentFormat::Plaintext,
            content: "Substitution principle.".into(),
            created_at: None,
        })
        .await
        .unwrap();
    let event = note_event(&w, "note.created", *note.id.note_id.as_uuid(), person).await;
    // Another worker handles a second delivery of the event between our create and our link.
    let (other, tenant, again) = (pipeline(&w), w.tenant.clone(), event.clone());
    let theirs = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = theirs.clone();
    let links = RacedLinks::new(
        w.links.clone(),
        Box::pin(async move {
            let h = other.handle(&tenant, &again).await.unwrap();
            *record.lock().unwrap() = written(h, ActivityKind::Note);
        }),
    );
    let ours = EventPipeline::new(
        w.directory.clone(),
        links.clone(),
        std::sync::Arc::new(w.outbound()),
        DeletePolicy::Archive,
    );
    let e = ours.handle(&w.tenant, &event).await.unwrap_err();
    assert!(
        matches!(e, ServiceError::Port(PortError::Stale(_))),
        "{e:?}"
    );
    assert!(e.is_retryable());
    assert!(links.raced());
    // Our HubSpot copy was deleted; the retry finds theirs in step and writes nothing.
    let retry = written(
        ours.handle(&w.tenant, &event).await.unwrap(),
        ActivityKind::Note,
    );
    assert!(retry.is_empty(), "{retry:?}");
    let theirs = theirs.lock().unwrap().clone();
    assert_eq!(theirs.len(), 2);
    let mut live = Vec::new();
    for id in w
        .hubspot
        .associations("contacts", &contact, "notes")
        .await
        .unwrap()
    {
        if w.hubspot
            .get("notes", &id, &[])
            .await
            .is_ok_and(|n| !n.archived)
        {
            live.push(id);
        }
    }
    assert_eq!(
        live,
        vec![id_in(&theirs, "hubspot")],
        "one live note on the HubSpot contact"
    );
    let sf_notes: Vec<ExternalId> = w
        .salesforce
        .query(
            &format!("SELECT Id FROM Note WHERE ParentId = '{sf_contact}'"),
            false,
            None,
        )
        .await
        .unwrap()
        .records
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(
        sf_notes,
        vec![id_in(&theirs, "salesforce")],
        "one note on the Salesforce contact"
    );
}

fn poller(w: &World, system: &str) -> services::poll::ChangePoller {
    services::poll::ChangePoller::new(
        SystemId::parse(system).unwrap(),
        w.directory.clone(),
        std::sync::Arc::new(adapter_memory::MemoryTenantStore::default()),
        w.links.clone(),
        std::sync::Arc::new(w.outbound()),
        std::sync::Arc::new(adapter_memory::SystemClock),
        crate::outbound::targets(domain::mapping::SyncRule::LatestWins),
    )
}

/// The link of a CRM's activity: the Attio note or task it is.
async fn attio_of(
    w: &World,
    system: &str,
    kind: ActivityKind,
    id: &ExternalId,
) -> Option<RecordId> {
    let lookup = domain::link::LinkLookup::External {
        system: SystemId::parse(system).unwrap(),
        external_object: kind.as_str().into(),
        external_id: id.clone(),
    };
    w.links
        .find(&w.tenant, &lookup)
        .await
        .unwrap()
        .map(|l| l.attio_record)
}

/// Notes and tasks made in Salesforce, found by polling: written into Attio on the linked person,
/// then by Attio's events to HubSpot (and not back to Salesforce); an edit in Salesforce replaces
/// the Attio note (its HubSpot copy follows in place), a task done there is done in Attio, a note
/// deleted there is deleted in Attio and so in HubSpot; a pass with nothing new writes nothing.
#[tokio::test]
async fn activities_made_in_salesforce_reach_attio_and_hubspot_and_follow_edits_and_deletes() {
    let w = world(true, domain::mapping::SyncRule::LatestWins).await;
    let person = create_person(&w, "ada@example.com", "Ada", "Lovelace", "Analyst").await;
    w.sync
        .sync_record(&w.tenant, &people(), person)
        .await
        .unwrap();
    let sf_contact = w
        .salesforce
        .query(
            &format!("SELECT Id FROM Contact WHERE Attio_Id__c = '{person}'"),
            false,
            None,
        )
        .await
        .unwrap()
        .records[0]
        .id
        .clone();
    let made = salesforce_rest(&w, reqwest::Method::POST, "/sobjects/Note", Some(json!({"ParentId": sf_contact.as_str(), "Title": "Call", "Body": "Wants the enterprise plan."}))).await;
    assert_eq!(made.status(), 201);
    let sf_note = ExternalId::parse(
        made.json::<serde_json::Value>().await.unwrap()["id"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    let made = salesforce_rest(&w, reqwest::Method::POST, "/sobjects/Task", Some(json!({"WhoId": sf_contact.as_str(), "Subject": "Send the contract", "Status": "Not Started", "ActivityDate": "2027-01-15"}))).await;
    assert_eq!(made.status(), 201);
    let sf_task = ExternalId::parse(
        made.json::<serde_json::Value>().await.unwrap()["id"]
            .as_str()
            .unwrap(),
    )
    .unwrap();

    let sf = poller(&w, "salesforce");
    let pass = sf.poll_tenant(&w.tenant).await.unwrap();
    assert_eq!(
        (pass.activities.created, pass.activities.unlinked),
        (2, 0),
        "{pass:?}"
    );
    let note = attio_of(&w, "salesforce", ActivityKind::Note, &sf_note)
        .await
        .unwrap();
    let n = w
        .attio
        .get_note(domain::ids::NoteId::from_uuid(*note.as_uuid()))
        .await
        .unwrap();
    assert_eq!(
        (
            n.title.as_str(),
            n.content_plaintext.as_str(),
            n.parent_record_id
        ),
        ("Call", "Wants the enterprise plan.", person)
    );
    let task = attio_of(&w, "salesforce", ActivityKind::Task, &sf_task)
        .await
        .unwrap();
    let t = w
        .attio
        .get_task(domain::ids::TaskId::from_uuid(*task.as_uuid()))
        .await
        .unwrap();
    assert_eq!(t.content_plaintext, "Send the contract");
    assert!(!t.is_completed);
    assert_eq!(t.linked_records[0].target_record_id, person);

    // Attio's event for the new note: to HubSpot, not back to Salesforce.
    let p = pipeline(&w);
    let created = note_event(&w, "note.created", *note.as_uuid(), person).await;
    let out = written(
        p.handle(&w.tenant, &created).await.unwrap(),
        ActivityKind::Note,
    );
    assert_eq!(
        out.iter().map(|(s, _)| s.as_str()).collect::<Vec<_>>(),
        ["hubspot"]
    );
    let hs_note = id_in(&out, "hubspot");
    assert_eq!(
        prop_of(&w.hubspot, "notes", &hs_note, "hs_note_body").await,
        "Call\n\nWants the enterprise plan."
    );

    // Edited in Salesforce: a new Attio note takes its place; HubSpot's copy follows in place.
    let r = salesforce_rest(
        &w,
        reqwest::Method::PATCH,
        &format!("/sobjects/Note/{}", sf_note.as_str()),
        Some(json!({"Body": "Wants the enterprise plan, 40 seats."})),
    )
    .await;
    assert_eq!(r.status(), 204);
    let r = salesforce_rest(
        &w,
        reqwest::Method::PATCH,
        &format!("/sobjects/Task/{}", sf_task.as_str()),
        Some(json!({"Status": "Completed"})),
    )
    .await;
    assert_eq!(r.status(), 204);
    let pass = sf.poll_tenant(&w.tenant).await.unwrap();
    assert_eq!(pass.activities.updated, 2, "{pass:?}");
    let renewed = attio_of(&w, "salesforce", ActivityKind::Note, &sf_note)
        .await
        .unwrap();
    assert_ne!(renewed, note);
    let n = w
        .attio
        .get_note(domain::ids::NoteId::from_uuid(*renewed.as_uuid()))
        .await
        .unwrap();
    assert_eq!(n.content_plaintext, "Wants the enterprise plan, 40 seats.");
    assert!(matches!(
        w.attio
            .get_note(domain::ids::NoteId::from_uuid(*note.as_uuid()))
            .await,
        Err(PortError::NotFound(_))
    ));
    assert_eq!(
        attio_of(&w, "hubspot", ActivityKind::Note, &hs_note).await,
        Some(renewed),
        "HubSpot's link moved too"
    );
    let t = w
        .attio
        .get_task(domain::ids::TaskId::from_uuid(*task.as_uuid()))
        .await
        .unwrap();
    assert!(t.is_completed, "the same task, done");
    // The old note's delete event removes nothing; the new one's takes the text to HubSpot.
    let old_gone = note_event(&w, "note.deleted", *note.as_uuid(), person).await;
    match p.handle(&w.tenant, &old_gone).await.unwrap() {
        Handled::Deleted { archived, .. } => assert!(archived.is_empty(), "{archived:?}"),
        other => panic!("{other:?}"),
    }
    let renewed_event = note_event(&w, "note.created", *renewed.as_uuid(), person).await;
    let out = written(
        p.handle(&w.tenant, &renewed_event).await.unwrap(),
        ActivityKind::Note,
    );
    assert_eq!(
        out,
        vec![(SystemId::parse("hubspot").unwrap(), hs_note.clone())]
    );
    assert!(
        prop_of(&w.hubspot, "notes", &hs_note, "hs_note_body")
            .await
            .ends_with("40 seats.")
    );

    // Nothing new: a pass writes nothing (our own writes are echoes).
    let quiet = sf.poll_tenant(&w.tenant).await.unwrap();
    assert_eq!(
        (
            quiet.activities.created,
            quiet.activities.updated,
            quiet.activities.deleted
        ),
        (0, 0, 0),
        "{quiet:?}"
    );

    // Due on another day in Salesforce: the Attio task's deadline moves to it, and Attio's
    // event takes the day to HubSpot's copy; nothing goes back to Salesforce, and a pass after
    // that writes nothing.
    let out = written(
        p.handle(
            &w.tenant,
            &task_event(&w, "task.created", *task.as_uuid()).await,
        )
        .await
        .unwrap(),
        ActivityKind::Task,
    );
    let hs_task = id_in(&out, "hubspot");
    let r = salesforce_rest(
        &w,
        reqwest::Method::PATCH,
        &format!("/sobjects/Task/{}", sf_task.as_str()),
        Some(json!({"ActivityDate": "2027-02-01"})),
    )
    .await;
    assert_eq!(r.status(), 204);
    let pass = sf.poll_tenant(&w.tenant).await.unwrap();
    assert_eq!(pass.activities.updated, 1, "{pass:?}");
    let t = w
        .attio
        .get_task(domain::ids::TaskId::from_uuid(*task.as_uuid()))
        .await
        .unwrap();
    assert!(
        t.deadline_at
            .as_deref()
            .is_some_and(|d| d.starts_with("2027-02-01")),
        "{:?}",
        t.deadline_at
    );
    let out = written(
        p.handle(
            &w.tenant,
            &task_event(&w, "task.updated", *task.as_uuid()).await,
        )
        .await
        .unwrap(),
        ActivityKind::Task,
    );
    assert_eq!(
        out,
        vec![(SystemId::parse("hubspot").unwrap(), hs_task.clone())],
        "to HubSpot only"
    );
    assert!(
        prop_of(&w.hubspot, "tasks", &hs_task, "hs_timestamp")
            .await
            .starts_with("2027-02-01"),
        "HubSpot's copy is due that day"
    );
    let quiet = sf.poll_tenant(&w.tenant).await.unwrap();
    assert_eq!(quiet.activities.updated, 0, "{quiet:?}");

    // Deleted in Salesforce: deleted in Attio, whose event removes the HubSpot copy.
    let r = salesforce_rest(
        &w,
        reqwest::Method::DELETE,
        &format!("/sobjects/Note/{}", sf_note.as_str()),
        None,
    )
    .await;
    assert_eq!(r.status(), 204);
    let pass = sf.poll_tenant(&w.tenant).await.unwrap();
    assert_eq!(pass.activities.deleted, 1, "{pass:?}");
    assert!(matches!(
        w.attio
            .get_note(domain::ids::NoteId::from_uuid(*renewed.as_uuid()))
            .await,
        Err(PortError::NotFound(_))
    ));
    let deleted = note_event(&w, "note.deleted", *renewed.as_uuid(), person).await;
    match p.handle(&w.tenant, &deleted).await.unwrap() {
        Handled::Deleted { archived, .. } => assert_eq!(
            archived,
            vec![(SystemId::parse("hubspot").unwrap(), hs_note.clone())]
        ),
        other => panic!("{other:?}"),
    }
    let again = sf.poll_tenant(&w.tenant).await.unwrap();
    assert_eq!(
        again.activities.deleted, 0,
        "a delete is followed once: {again:?}"
    );
}

/// A note made in HubSpot on the linked contact, found by polling HubSpot's notes: written into
/// Attio once; deleted there, deleted in Attio once.
#[tokio::test]
async fn a_note_made_in_hubspot_reaches_attio_once() {
    let w = world(false, domain::mapping::SyncRule::LatestWins).await;
    let person = create_person(&w, "ada@example.com", "Ada", "Lovelace", "Analyst").await;
    w.sync
        .sync_record(&w.tenant, &people(), person)
        .await
        .unwrap();
    let contact = w
        .hubspot
        .get_by(
            "contacts",
            &prop("attio_record_id"),
            &person.to_string(),
            &[],
        )
        .await
        .unwrap()
        .id;
    use ports::crm::ExternalActivities;
    let made = w
        .hubspot
        .create_activity(
            &ports::crm::ExternalActivity {
                kind: ActivityKind::Note,
                title: String::new(),
                body: "Met at the conference.".into(),
                at: time::OffsetDateTime::now_utc(),
                completed: false,
            },
            &[ports::crm::ActivityTarget {
                object: "contacts".into(),
                id: contact,
            }],
        )
        .await
        .unwrap();
    let hs = poller(&w, "hubspot");
    let pass = hs.poll_tenant(&w.tenant).await.unwrap();
    assert_eq!(pass.activities.created, 1, "{pass:?}");
    let note = attio_of(&w, "hubspot", ActivityKind::Note, &made)
        .await
        .unwrap();
    let n = w
        .attio
        .get_note(domain::ids::NoteId::from_uuid(*note.as_uuid()))
        .await
        .unwrap();
    assert_eq!(
        (n.content_plaintext.as_str(), n.parent_record_id),
        ("Met at the conference.", person)
    );
    let again = hs.poll_tenant(&w.tenant).await.unwrap();
    assert_eq!(
        (again.activities.created, again.activities.updated),
        (0, 0),
        "{again:?}"
    );
    // Deleted in HubSpot (archived, so found in the archived list): deleted in Attio, once.
    w.hubspot
        .delete_activity(ActivityKind::Note, &made)
        .await
        .unwrap();
    let pass = hs.poll_tenant(&w.tenant).await.unwrap();
    assert_eq!(pass.activities.deleted, 1, "{pass:?}");
    assert!(matches!(
        w.attio
            .get_note(domain::ids::NoteId::from_uuid(*note.as_uuid()))
            .await,
        Err(PortError::NotFound(_))
    ));
    let after = hs.poll_tenant(&w.tenant).await.unwrap();
    assert_eq!(after.activities.deleted, 0, "{after:?}");
}
