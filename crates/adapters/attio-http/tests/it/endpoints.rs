//! Every implemented endpoint against the simulator.

use adapter_attio_http::AttioConfig;
use attio_sim::SimConfig;
use domain::ids::{AttributeSlug, ObjectRef};
use domain::write::{RecordWrite, WriteValue};
use futures::StreamExt;
use ports::attio::{AttioRecords, AttioSchema, AttioWorkspace, AttributeTarget, Query, UpdateMode};
use ports::error::PortError;
use serde_json::json;

use crate::{client, config, sim, token};

fn people() -> ObjectRef {
    ObjectRef::parse("people").unwrap()
}

fn slug(s: &str) -> AttributeSlug {
    AttributeSlug::parse(s).unwrap()
}

fn email(e: &str) -> WriteValue {
    WriteValue::from_json(&domain::value::AttributeType::EmailAddress, &json!(e)).unwrap()
}

#[tokio::test]
async fn records_round_trip_through_every_records_endpoint() {
    let s = sim(SimConfig::default()).await;
    let c = client(config(&s.url(), &token('a')));
    let write = RecordWrite::new()
        .set(slug("email_addresses"), vec![email("ada@x.com")])
        .set(
            slug("name"),
            vec![WriteValue::personal_name("Ada", "Lovelace")],
        );
    let created = c.create_record(&people(), &write).await.unwrap();
    let id = created.id.record_id;
    assert_eq!(c.get_record(&people(), id).await.unwrap(), created);

    let asserted = c
        .assert_record(
            &people(),
            &slug("email_addresses"),
            &RecordWrite::new()
                .set(slug("email_addresses"), vec![email("ada@x.com")])
                .set(slug("job_title"), vec![WriteValue::Text("CTO".into())]),
        )
        .await
        .unwrap();
    assert_eq!(
        asserted.id.record_id, id,
        "assert matched the existing person"
    );

    let appended = c
        .update_record(
            &people(),
            id,
            &RecordWrite::new().set(slug("email_addresses"), vec![email("ada@y.com")]),
            UpdateMode::Append,
        )
        .await
        .unwrap();
    assert_eq!(appended.current("email_addresses").count(), 2);
    let replaced = c
        .update_record(
            &people(),
            id,
            &RecordWrite::new().set(slug("email_addresses"), vec![email("ada@z.com")]),
            UpdateMode::Overwrite,
        )
        .await
        .unwrap();
    assert_eq!(replaced.current("email_addresses").count(), 1);
    let history = c
        .attribute_values(&people(), id, &slug("email_addresses"), true)
        .await
        .unwrap();
    assert_eq!(history.len(), 3, "two replaced, one current");
    assert_eq!(
        c.attribute_values(&people(), id, &slug("email_addresses"), false)
            .await
            .unwrap()
            .len(),
        1
    );

    let found = c
        .query_records(
            &people(),
            &Query {
                filter: Some(json!({"email_addresses": "ada@z.com"})),
                ..Query::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    c.delete_record(&people(), id).await.unwrap();
    assert!(matches!(
        c.get_record(&people(), id).await,
        Err(PortError::NotFound(_))
    ));
    assert!(matches!(
        c.delete_record(&people(), id).await,
        Err(PortError::NotFound(_))
    ));
}

#[tokio::test]
async fn the_record_stream_pages_until_a_short_page() {
    let s = sim(SimConfig {
        writes_per_second: 1000,
        reads_per_second: 1000,
        ..SimConfig::default()
    })
    .await;
    let mut cfg = config(&s.url(), &token('a'));
    cfg.write_quota = domain::limits::Quota::per_second(1000).unwrap();
    let c = client(cfg);
    let companies = ObjectRef::parse("companies").unwrap();
    for i in 0..12 {
        let w = RecordWrite::new().set(
            slug("domains"),
            vec![WriteValue::Domain(format!("c{i:02}.com"))],
        );
        c.create_record(&companies, &w).await.unwrap();
    }
    let sorted = Query {
        sorts: vec![json!({"direction": "asc", "attribute": "domains", "field": "domain"})],
        ..Query::default()
    };
    let all: Vec<_> = c.stream_records(&companies, sorted, 5).collect().await;
    let domains: Vec<String> = all
        .into_iter()
        .map(
            |r| match &r.unwrap().current("domains").next().unwrap().data {
                domain::value::ValueData::Domain(d) => d.domain.clone(),
                other => panic!("{other:?}"),
            },
        )
        .collect();
    assert_eq!(
        domains,
        (0..12).map(|i| format!("c{i:02}.com")).collect::<Vec<_>>(),
        "three pages, in order, nothing twice"
    );
}

#[tokio::test]
async fn schema_and_workspace_endpoints() {
    let s = sim(SimConfig::default()).await;
    let c = client(config(&s.url(), &token('a')));
    let objects = c.list_objects().await.unwrap();
    assert_eq!(
        objects
            .iter()
            .filter_map(|o| o.api_slug.as_deref())
            .collect::<Vec<_>>(),
        ["people", "companies", "deals", "users"]
    );
    assert_eq!(
        c.get_object(&people()).await.unwrap().api_slug.as_deref(),
        Some("people")
    );
    let deals = AttributeTarget::Object(ObjectRef::parse("deals").unwrap());
    let attrs = c.list_attributes(&deals).await.unwrap();
    assert!(attrs.iter().any(|a| a.api_slug == "stage" && a.is_required));
    let statuses = c.list_statuses(&deals, &slug("stage")).await.unwrap();
    assert!(statuses.iter().any(|s| s.title == "In Progress"));
    let companies = AttributeTarget::Object(ObjectRef::parse("companies").unwrap());
    assert!(
        !c.list_options(&companies, &slug("categories"))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(matches!(
        c.get_object(&ObjectRef::parse("pets").unwrap()).await,
        Err(PortError::NotFound(_))
    ));

    let info = c.token_info().await.unwrap();
    assert!(info.active);
    let members = c.list_members().await.unwrap();
    assert_eq!(
        c.get_member(members[0].id.workspace_member_id)
            .await
            .unwrap(),
        members[0]
    );
}

#[tokio::test]
async fn attio_errors_arrive_typed_and_keyed_on_code() {
    let s = sim(SimConfig::default()).await;
    let c = client(config(&s.url(), &token('a')));
    let w = RecordWrite::new().set(slug("email_addresses"), vec![email("dup@x.com")]);
    c.create_record(&people(), &w).await.unwrap();
    match c.create_record(&people(), &w).await {
        Err(PortError::Rejected {
            status: 400,
            code,
            message,
            ..
        }) => {
            assert_eq!(code, "uniqueness_conflict");
            assert!(message.contains("Conflicting record IDs"));
        }
        other => panic!("{other:?}"),
    }
    let deals = ObjectRef::parse("deals").unwrap();
    match c
        .create_record(
            &deals,
            &RecordWrite::new().set(slug("name"), vec![WriteValue::Text("x".into())]),
        )
        .await
    {
        Err(PortError::Rejected { code, .. }) => assert_eq!(code, "missing_value"),
        other => panic!("{other:?}"),
    }
    let short = client(config(&s.url(), "short-token"));
    assert!(matches!(
        short.list_objects().await,
        Err(PortError::Unauthorized(_))
    ));
    assert!(
        AttioConfig::new(
            "https://api.attio.com/v2",
            domain::tenant::Secret::new("t").unwrap(),
            domain::ids::TenantId::parse("a").unwrap()
        )
        .is_err()
    );
}

#[tokio::test]
async fn a_429_is_retried_after_its_retry_after() {
    // The simulator allows one write per second; the adapter's own budget is generous, so Attio's
    // 429 is what paces the burst.
    let s = sim(SimConfig {
        writes_per_second: 1,
        ..SimConfig::default()
    })
    .await;
    let mut cfg = config(&s.url(), &token('a'));
    cfg.write_quota = domain::limits::Quota::per_second(1000).unwrap();
    let c = client(cfg.clone());
    for i in 0..3 {
        let w =
            RecordWrite::new().set(slug("email_addresses"), vec![email(&format!("p{i}@x.com"))]);
        c.create_record(&people(), &w)
            .await
            .unwrap_or_else(|e| panic!("write {i} must succeed after waiting: {e:?}"));
    }
    // Without retries the same burst surfaces Attio's 429 with its wait.
    cfg.max_retries = 0;
    let impatient = client(cfg);
    let mut saw = None;
    for i in 3..6 {
        let w =
            RecordWrite::new().set(slug("email_addresses"), vec![email(&format!("p{i}@x.com"))]);
        if let Err(e) = impatient.create_record(&people(), &w).await {
            saw = Some(e);
            break;
        }
    }
    match saw {
        Some(PortError::RateLimited {
            retry_after: Some(d),
        }) => assert!(d <= std::time::Duration::from_secs(2), "{d:?}"),
        other => panic!("expected a 429 with Retry-After, got {other:?}"),
    }
}

#[tokio::test]
async fn the_write_budget_paces_requests_before_attio_has_to() {
    let s = sim(SimConfig {
        writes_per_second: 1000,
        ..SimConfig::default()
    })
    .await;
    let mut cfg = config(&s.url(), &token('a'));
    cfg.write_quota = domain::limits::Quota::per_second(4).unwrap();
    cfg.max_retries = 0;
    let c = client(cfg);
    let start = std::time::Instant::now();
    for i in 0..8 {
        let w =
            RecordWrite::new().set(slug("email_addresses"), vec![email(&format!("b{i}@x.com"))]);
        c.create_record(&people(), &w).await.unwrap();
    }
    // A burst of 4, then 4 more at 4/s: at least ~1 s. (A lower bound: slowness cannot break it.)
    assert!(
        start.elapsed() >= std::time::Duration::from_millis(900),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn list_entries_through_every_list_endpoint() {
    use ports::attio::{AttioLists, EntryWrite, ListRef};
    use std::collections::BTreeMap;

    let s = sim(SimConfig::default()).await;
    let c = client(config(&s.url(), &token('a')));
    let deals = ObjectRef::parse("deals").unwrap();
    let deal = c
        .create_record(
            &deals,
            &RecordWrite::new()
                .set(slug("name"), vec![WriteValue::Text("Acme".into())])
                .set(slug("stage"), vec![WriteValue::Status("Lead".into())]),
        )
        .await
        .unwrap();
    let lists = c.list_lists().await.unwrap();
    assert_eq!(lists[0].api_slug, "sales");
    let sales = ListRef::Slug(domain::ids::ListSlug::parse("sales").unwrap());
    assert_eq!(
        c.get_list(&ListRef::Id(lists[0].id.list_id)).await.unwrap(),
        lists[0]
    );
    let stage = |s: &str| BTreeMap::from([(slug("stage"), vec![WriteValue::Status(s.into())])]);
    let write = EntryWrite {
        parent_object: "deals".into(),
        parent_record_id: deal.id.record_id,
        entry_values: stage("Lead"),
    };
    let created = c.create_entry(&sales, &write).await.unwrap();
    assert_eq!(created.parent_record_id, deal.id.record_id);
    let updated = c
        .update_entry(
            &sales,
            created.id.entry_id,
            &stage("In Progress"),
            UpdateMode::Append,
        )
        .await
        .unwrap();
    match &updated.entry_values[&slug("stage")][0].data {
        domain::value::ValueData::Status(s) => assert_eq!(s.status.title, "In Progress"),
        other => panic!("{other:?}"),
    }
    let asserted = c
        .assert_entry(
            &sales,
            &EntryWrite {
                entry_values: stage("Won 🎉"),
                ..write.clone()
            },
        )
        .await
        .unwrap();
    assert_eq!(asserted.id.entry_id, created.id.entry_id);
    let found = c
        .query_entries(
            &sales,
            &Query {
                filter: Some(json!({"stage": "Won 🎉"})),
                ..Query::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    c.delete_entry(&sales, created.id.entry_id).await.unwrap();
    assert!(matches!(
        c.delete_entry(&sales, created.id.entry_id).await,
        Err(PortError::NotFound(_))
    ));
    match c
        .create_entry(
            &sales,
            &EntryWrite {
                parent_record_id: domain::ids::RecordId::from_uuid(uuid::Uuid::new_v4()),
                ..write
            },
        )
        .await
    {
        Err(PortError::Rejected { code, .. }) => assert_eq!(code, "value_not_found"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn webhook_subscriptions_through_every_webhook_endpoint() {
    use domain::schema::{Subscription, WebhookStatus};
    use domain::webhook::EventType;
    use ports::attio::{AttioWebhooks, NewWebhook, WebhookUpdate};

    let s = sim(SimConfig::default()).await;
    let c = client(config(&s.url(), &token('a')));
    let subs = vec![
        Subscription {
            event_type: EventType::RecordUpdated,
            filter: None,
        },
        Subscription {
            event_type: EventType::ListEntryUpdated,
            filter: Some(
                json!({"$and": [{"field": "id.list_id", "operator": "equals", "value": "x"}]}),
            ),
        },
    ];
    let created = c
        .create_webhook(&NewWebhook {
            target_url: "https://hooks.example.com/attio".into(),
            subscriptions: subs.clone(),
        })
        .await
        .unwrap();
    let secret = created
        .secret
        .clone()
        .expect("the secret comes with the create response");
    assert_eq!(secret.len(), 64);
    assert_eq!(created.status, WebhookStatus::Active);
    let id = created.id.webhook_id;
    let fetched = c.get_webhook(id).await.unwrap();
    assert_eq!(fetched.secret, None, "and only then");
    assert_eq!(fetched.subscriptions, subs);
    for i in 0..11 {
        c.create_webhook(&NewWebhook {
            target_url: format!("https://hooks.example.com/{i}"),
            subscriptions: subs.clone(),
        })
        .await
        .unwrap();
    }
    assert_eq!(c.list_webhooks().await.unwrap().len(), 12);
    let moved = c
        .update_webhook(
            id,
            &WebhookUpdate {
                target_url: Some("http://127.0.0.1:9/local".into()),
                subscriptions: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        moved.target_url, "http://127.0.0.1:9/local",
        "loopback http is accepted for local receivers"
    );
    match c
        .update_webhook(
            id,
            &WebhookUpdate {
                target_url: Some("http://example.com/attio".into()),
                subscriptions: None,
            },
        )
        .await
    {
        Err(PortError::Rejected { code, .. }) => {
            assert_eq!(code, "validation_type", "non-loopback http is refused")
        }
        other => panic!("{other:?}"),
    }
    c.delete_webhook(id).await.unwrap();
    assert!(matches!(
        c.get_webhook(id).await,
        Err(PortError::NotFound(_))
    ));
}

#[tokio::test]
async fn notes_and_tasks_through_every_endpoint() {
    use domain::schema::ContentFormat;
    use ports::attio::{
        AttioNotes, AttioTasks, NewNote, NewTask, NoteQuery, TaskLink, TaskQuery, TaskUpdate,
    };

    let s = sim(SimConfig::default()).await;
    let c = client(config(&s.url(), &token('a')));
    let person = c
        .create_record(
            &people(),
            &RecordWrite::new().set(slug("email_addresses"), vec![email("n@x.com")]),
        )
        .await
        .unwrap();
    let pid = person.id.record_id;

    let note = c
        .create_note(&NewNote {
            parent_object: "people".into(),
            parent_record_id: pid,
            title: "Call".into(),
            format: ContentFormat::Plaintext,
            content: "Talked pricing.".into(),
            created_at: None,
        })
        .await
        .unwrap();
    assert_eq!((note.parent_record_id, note.title.as_str()), (pid, "Call"));
    assert_eq!(c.get_note(note.id.note_id).await.unwrap(), note);
    let listed = c
        .list_notes(&NoteQuery {
            parent_object: Some("people".into()),
            parent_record_id: Some(pid),
            ..NoteQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(listed, vec![note.clone()]);
    match c
        .list_notes(&NoteQuery {
            limit: Some(51),
            ..NoteQuery::default()
        })
        .await
    {
        Err(PortError::Rejected { code, .. }) => {
            assert_eq!(code, "validation_type", "notes are listed 50 at most")
        }
        other => panic!("{other:?}"),
    }
    c.delete_note(note.id.note_id).await.unwrap();
    assert!(matches!(
        c.get_note(note.id.note_id).await,
        Err(PortError::NotFound(_))
    ));

    let member = c.list_members().await.unwrap()[0].id.workspace_member_id;
    let new = NewTask {
        content: "Send the contract".into(),
        deadline_at: Some(time::OffsetDateTime::UNIX_EPOCH + time::Duration::days(20_000)),
        is_completed: false,
        linked_records: vec![TaskLink {
            target_object: "people".into(),
            target_record_id: pid,
        }],
        assignees: vec![member],
    };
    let task = c.create_task(&new).await.unwrap();
    assert_eq!(task.linked_records[0].target_record_id, pid);
    assert_eq!(
        task.assignees[0].referenced_actor_id,
        Some(member.to_string())
    );
    let done = c
        .update_task(
            task.id.task_id,
            &TaskUpdate {
                is_completed: Some(true),
                deadline_at: Some(None),
                ..TaskUpdate::default()
            },
        )
        .await
        .unwrap();
    assert!(done.is_completed && done.deadline_at.is_none());
    assert_eq!(
        c.list_tasks(&TaskQuery {
            is_completed: Some(true),
            ..TaskQuery::default()
        })
        .await
        .unwrap()
        .len(),
        1
    );
    assert_eq!(
        c.list_tasks(&TaskQuery {
            linked_object: Some("people".into()),
            linked_record_id: Some(pid),
            ..TaskQuery::default()
        })
        .await
        .unwrap()
        .len(),
        1
    );
    c.delete_task(task.id.task_id).await.unwrap();
    assert!(matches!(
        c.delete_task(task.id.task_id).await,
        Err(PortError::NotFound(_))
    ));
    let long = NewTask {
        content: "x".repeat(2001),
        ..new
    };
    assert!(
        matches!(c.create_task(&long).await, Err(PortError::Invalid(_))),
        "refused before sending"
    );
}
