//! The contact service against attio-sim: find by e-mail through the cache, idempotent upserts
//! that drop the cached copy, notes, tasks, and pipeline entries at a stage.

use std::collections::BTreeMap;
use std::sync::Arc;

use adapter_attio_http::{AttioClient, AttioConfig};
use adapter_memory::{MemoryCache, MemoryRateLimiter};
use domain::cache::{CacheCategory, CacheKey};
use domain::ids::TenantId;
use domain::tenant::Secret;
use ports::cache::Cache;
use ports::directory::TenantClients;
use ports::error::PortError;
use services::ServiceError;
use services::contact::{ContactService, PersonInput};

use crate::outbound::Directory;

async fn setup() -> (
    attio_sim::RunningSim,
    ContactService,
    Arc<MemoryCache>,
    AttioClient,
    TenantId,
) {
    let sim = attio_sim::start(
        "127.0.0.1:0".parse().unwrap(),
        attio_sim::SimConfig::default(),
    )
    .await
    .unwrap();
    let tenant = TenantId::parse("acme").unwrap();
    let attio = AttioClient::new(
        AttioConfig::new(
            &sim.url(),
            Secret::new("b".repeat(64)).unwrap(),
            tenant.clone(),
        )
        .unwrap(),
        Arc::new(MemoryRateLimiter::default()),
    )
    .unwrap();
    let a = Arc::new(attio.clone());
    let clients = TenantClients {
        attio: a.clone(),
        schema: a.clone(),
        lists: a.clone(),
        notes: a.clone(),
        tasks: a.clone(),
        members: a,
        crms: BTreeMap::new(),
        activities: BTreeMap::new(),
    };
    let cache = Arc::new(MemoryCache::default());
    let service = ContactService::new(Arc::new(Directory(clients)), cache.clone());
    (sim, service, cache, attio, tenant)
}

fn input(email: &str, title: &str) -> PersonInput {
    PersonInput {
        email: email.into(),
        first_name: Some("Ada".into()),
        last_name: Some("Lovelace".into()),
        job_title: Some(title.into()),
    }
}

#[tokio::test]
async fn upserts_are_idempotent_and_finds_read_through_the_cache() {
    let (_sim, s, cache, _attio, tenant) = setup().await;
    assert_eq!(
        s.find_by_email(&tenant, "ada@example.com").await.unwrap(),
        None
    );
    let created = s
        .upsert_person(&tenant, &input("Ada@Example.com", "Analyst"))
        .await
        .unwrap();
    let again = s
        .upsert_person(&tenant, &input("ada@example.com", "Analyst"))
        .await
        .unwrap();
    assert_eq!(created.id, again.id, "one person per e-mail address");

    let found = s
        .find_by_email(&tenant, "ada@example.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (
            found.id,
            found.job_title.as_deref(),
            found.first_name.as_deref()
        ),
        (created.id, Some("Analyst"), Some("Ada"))
    );
    let key = CacheKey::new(
        tenant.clone(),
        CacheCategory::Record,
        "person-by-email:ada@example.com",
    )
    .unwrap();
    assert!(
        cache.get(&key).await.unwrap().is_some(),
        "the find filled the cache"
    );

    // An upsert drops the cached copy, so the next find sees the change.
    s.upsert_person(&tenant, &input("ada@example.com", "Countess"))
        .await
        .unwrap();
    assert!(cache.get(&key).await.unwrap().is_none());
    let found = s
        .find_by_email(&tenant, "ada@example.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.job_title.as_deref(), Some("Countess"));
}

#[tokio::test]
async fn bad_input_is_a_typed_error() {
    let (_sim, s, _cache, _attio, tenant) = setup().await;
    assert!(matches!(
        s.find_by_email(&tenant, "not an address").await,
        Err(ServiceError::Domain(_))
    ));
    assert!(matches!(
        s.upsert_person(&tenant, &input("nope", "x")).await,
        Err(ServiceError::Domain(_))
    ));
    assert!(matches!(
        s.create_task(&tenant, "  ", None, None).await,
        Err(ServiceError::Port(PortError::Invalid(_)))
    ));
    let person = s
        .upsert_person(&tenant, &input("grace@example.com", "Engineer"))
        .await
        .unwrap();
    assert!(
        s.add_note(&tenant, "Not A Slug", person.id, "t", "c")
            .await
            .is_err()
    );
}

#[tokio::test]
async fn notes_tasks_and_pipeline_entries_are_written() {
    let (sim, s, _cache, attio, tenant) = setup().await;
    let person = s
        .upsert_person(&tenant, &input("alan@example.com", "Mathematician"))
        .await
        .unwrap();
    let note = s
        .add_note(&tenant, "people", person.id, "Call", "Talked about Enigma")
        .await
        .unwrap();
    let task = s
        .create_task(
            &tenant,
            "Send the paper",
            None,
            Some(("people".into(), person.id)),
        )
        .await
        .unwrap();
    let http = reqwest::Client::new();
    let token = "b".repeat(64);
    let got: serde_json::Value = http
        .get(format!("{}/v2/notes/{note}", sim.url()))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(got["data"]["title"], "Call");
    let got: serde_json::Value = http
        .get(format!("{}/v2/tasks/{task}", sim.url()))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        got["data"]["linked_records"][0]["target_record_id"],
        person.id.to_string()
    );

    // A deal into the sales pipeline at a stage; asserting again keeps one entry.
    let deal = ports::attio::AttioRecords::create_record(
        &attio,
        &domain::ids::ObjectRef::from(domain::ids::ObjectSlug::parse("deals").unwrap()),
        &domain::write::RecordWrite::new()
            .set(
                domain::ids::AttributeSlug::parse("name").unwrap(),
                vec![domain::write::WriteValue::Text("Analytical engine".into())],
            )
            .set(
                domain::ids::AttributeSlug::parse("stage").unwrap(),
                vec![domain::write::WriteValue::Status("Lead".into())],
            ),
    )
    .await;
    let deal = match deal {
        Ok(d) => d.id.record_id,
        Err(e) => panic!("{e}"),
    };
    let first = s
        .add_to_list(&tenant, "sales", "deals", deal, "In Progress")
        .await
        .unwrap();
    let second = s
        .add_to_list(&tenant, "sales", "deals", deal, "Won 🎉")
        .await
        .unwrap();
    assert_eq!(first, second, "one entry per record");
    let entry: serde_json::Value = http
        .get(format!("{}/v2/lists/sales/entries/{first}", sim.url()))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        entry["data"]["entry_values"]["stage"][0]["status"]["title"],
        "Won 🎉"
    );
}
