//! The same story in one process on the embedded stores: SQLite for tenants, deliveries, jobs,
//! links, ledger and conflicts; memory for the rate budgets; the simulators, the API and two
//! workers as tasks. One worker is aborted mid-run (its leases are never settled or released).

use std::sync::Arc;
use std::time::Duration;

use adapter_hubspot::{HubSpotClient, HubSpotConfig};
use adapter_memory::MemoryRateLimiter;
use adapter_salesforce::{SalesforceAuth, SalesforceClient, SalesforceConfig};
use domain::field::FieldValue;
use domain::tenant::Secret;
use ports::limiter::RateLimiter;

use crate::attio_to_crms::{
    Attio, HUBSPOT_TOKEN, MAPPINGS, MASTER_KEY, prop, register_webhook, tenant,
};
use crate::eventually;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn people_reach_both_crms_exactly_once_on_the_embedded_stores() {
    let addr = || "127.0.0.1:0".parse().unwrap();
    let a = attio_sim::start(addr(), attio_sim::SimConfig::default())
        .await
        .unwrap();
    let h = hubspot_sim::start(addr(), hubspot_sim::HubSpotConfig::default())
        .await
        .unwrap();
    let mut sf_cfg = salesforce_sim::SalesforceConfig::default();
    sf_cfg.app.client_id = "ck-e2e".into();
    sf_cfg.app.client_secret = "cs-e2e".into();
    let s = salesforce_sim::start(addr(), sf_cfg).await.unwrap();

    let dir = std::env::temp_dir().join(format!(
        "attio-sync-embedded-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let store = app_common::RawStore::Sqlite {
        path: dir.join("attio-sync.db"),
    }
    .validate(Some(MASTER_KEY))
    .unwrap();
    let stores = app_common::open_stores(&store, &app_common::QueueSettings::Store)
        .await
        .unwrap();

    // The API.
    let api_settings = webhook_api::RawConfig {
        debounce_ms: 300,
        ..Default::default()
    }
    .validate()
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api_url = format!("http://{}", listener.local_addr().unwrap());
    let state = webhook_api::AppState::new(&stores, api_settings);
    let api = tokio::spawn(webhook_api::serve(listener, state, std::future::pending()));

    let attio = Attio {
        http: reqwest::Client::new(),
        url: a.url(),
    };
    let secret = register_webhook(&attio, &api_url).await;
    stores
        .tenants
        .create(&tenant(&secret, &h.url(), &s.url()))
        .await
        .unwrap();

    // Two workers, with the mappings read by the real loader.
    let mappings = dir.join("worker.toml");
    std::fs::write(&mappings, format!("attio_base_url = \"{}\"\nlease_s = 5\nretry_base_ms = 200\nretry_cap_ms = 2000\nmax_attempts = 8\n{MAPPINGS}", a.url())).unwrap();
    let worker_settings = |name: &str| {
        let mut s = sync_worker::RawConfig::load(Some(&mappings))
            .unwrap()
            .validate()
            .unwrap();
        s.worker.consumer = name.to_owned();
        s
    };
    let limiter: Arc<dyn RateLimiter> = Arc::new(MemoryRateLimiter::default());
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let (s1, s2) = (worker_settings("w1"), worker_settings("w2"));
    let w1 = tokio::spawn({
        let (stores, limiter, stopped) = (stores.clone(), limiter.clone(), stopped.clone());
        async move { sync_worker::run(&s1, stores, limiter, stopped).await }
    });
    let w2 = tokio::spawn({
        let (stores, limiter, stopped) = (stores.clone(), limiter.clone(), stopped.clone());
        async move { sync_worker::run(&s2, stores, limiter, stopped).await }
    });

    // Duplicates and reordering from Attio; slow HubSpot so jobs are in hand when w1 dies.
    let http = reqwest::Client::new();
    http.put(format!("{}/_sim/faults", a.url()))
        .body(r#"{"duplicate_rate": 0.5, "reorder_window_ms": 300}"#)
        .send()
        .await
        .unwrap();
    http.put(format!("{}/_sim/faults", h.url()))
        .body(r#"{"latency_ms": 1500}"#)
        .send()
        .await
        .unwrap();
    let mut ids = Vec::new();
    for i in 0..4 {
        ids.push(attio.create_person(i).await);
    }
    eventually("jobs in hand", Duration::from_secs(30), || async {
        (stores.queue.depth().await.unwrap().in_flight >= 2).then_some(())
    })
    .await;
    w1.abort();
    http.put(format!("{}/_sim/faults", h.url()))
        .body("{}")
        .send()
        .await
        .unwrap();

    let tenant_id = domain::ids::TenantId::parse("acme").unwrap();
    let hubspot = HubSpotClient::new(
        HubSpotConfig::new(
            &h.url(),
            Secret::new(HUBSPOT_TOKEN).unwrap(),
            tenant_id.clone(),
        )
        .unwrap(),
        Arc::new(MemoryRateLimiter::default()),
    )
    .unwrap();
    let salesforce = SalesforceClient::new(
        SalesforceConfig::new(
            &s.url(),
            SalesforceAuth::ClientCredentials {
                client_id: "ck-e2e".into(),
                client_secret: Secret::new("cs-e2e").unwrap(),
            },
            tenant_id,
        )
        .unwrap(),
    )
    .unwrap();
    for (i, id) in ids.iter().enumerate() {
        let props = eventually(
            &format!("person {i} in HubSpot"),
            Duration::from_secs(60),
            || {
                let (hubspot, id) = (hubspot.clone(), id.clone());
                async move {
                    hubspot
                        .get_by("contacts", &prop("attio_record_id"), &id, &[prop("email")])
                        .await
                        .ok()
                }
            },
        )
        .await;
        assert_eq!(
            props.properties[&prop("email")],
            FieldValue::text(format!("person{i}@example.com"))
        );
        eventually(
            &format!("person {i} in Salesforce"),
            Duration::from_secs(60),
            || {
                let (salesforce, id) = (salesforce.clone(), id.clone());
                async move {
                    let rows = salesforce
                        .query(
                            &format!("SELECT Id FROM Contact WHERE Attio_Id__c = '{id}'"),
                            false,
                            None,
                        )
                        .await
                        .unwrap()
                        .records;
                    (rows.len() == 1).then_some(())
                }
            },
        )
        .await;
    }
    let all = salesforce
        .query("SELECT Id FROM Contact", false, None)
        .await
        .unwrap()
        .records;
    assert_eq!(all.len(), 4, "one Salesforce contact per person");
    let listed = hubspot
        .list("contacts", &[prop("email")], None)
        .await
        .unwrap()
        .records;
    assert_eq!(listed.len(), 4, "one HubSpot contact per person");
    assert_eq!(stores.queue.depth().await.unwrap().dead, 0);

    stop.send(true).unwrap();
    let stats = w2.await.unwrap();
    assert!(stats.acked >= 1, "{stats:?}");
    api.abort();
    let _ = std::fs::remove_dir_all(dir);
}
