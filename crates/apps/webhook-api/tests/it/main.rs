//! webhook-api over real HTTP on port 0: the intake rules on the memory stores, the same on a real
//! PostgreSQL, deliveries from attio-sim, and the binary.

// Test code: unwrap/expect are how a test says "this must hold".
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod admin;
mod contacts;
mod control;
mod from_attio_sim;
mod hardening;
mod intake;
mod openapi;
mod postgres;
mod process;

use std::collections::BTreeMap;
use std::sync::Arc;

use domain::ids::{SystemId, TenantId};
use domain::tenant::{AttioCredentials, CrmConnection, Secret, Tenant};
use ports::queue::JobQueue;
use ports::stores::{Inbox, TenantStore};
use webhook_api::{AppState, RawConfig};

pub const SECRET: &str = "whsec-current-0123456789abcdef";
pub const OLD_SECRET: &str = "whsec-previous-fedcba9876543210";
pub const HUBSPOT_SECRET: &str = "hubspot-client-secret";

pub fn tenant(id: &str) -> Tenant {
    Tenant {
        id: TenantId::parse(id).unwrap(),
        name: format!("Tenant {id}"),
        attio: AttioCredentials {
            api_token: Secret::new("a".repeat(64)).unwrap(),
            webhook_secrets: vec![
                Secret::new(SECRET).unwrap(),
                Secret::new(OLD_SECRET).unwrap(),
            ],
        },
        crms: vec![CrmConnection {
            system: SystemId::parse("hubspot").unwrap(),
            settings: BTreeMap::new(),
            secrets: BTreeMap::from([(
                "client_secret".to_owned(),
                Secret::new(HUBSPOT_SECRET).unwrap(),
            )]),
        }],
        api_keys: Vec::new(),
        created_at: time::OffsetDateTime::now_utc(),
    }
}

/// A running app and its stores.
pub struct TestApp {
    pub url: String,
    pub tenants: Arc<dyn TenantStore>,
    pub inbox: Arc<dyn Inbox>,
    pub queue: Arc<dyn JobQueue>,
    pub dead: Arc<dyn ports::queue::DeadLetterQueue>,
    pub http: reqwest::Client,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    pub server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl std::fmt::Debug for TestApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestApp")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl TestApp {
    /// Stops taking connections; resolves when the server has finished.
    pub async fn shutdown(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(h) = self.server.take() {
            h.await.unwrap().unwrap();
        }
    }

    /// A request with a bearer credential (operator token or API key); the status and JSON body.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        bearer: &str,
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(bearer);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(serde_json::Value::Null))
    }

    pub async fn post_attio(
        &self,
        tenant: &str,
        body: &str,
        secret: &str,
        key: Option<&str>,
    ) -> (u16, serde_json::Value) {
        let mut req = self
            .http
            .post(format!("{}/v1/webhooks/attio/{tenant}", self.url))
            .header(
                "Attio-Signature",
                adapter_attio_http::sign_attio(secret, body.as_bytes()),
            )
            .header("content-type", "application/json")
            .body(body.to_owned());
        if let Some(k) = key {
            req = req.header("Idempotency-Key", k);
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(serde_json::Value::Null))
    }
}

pub fn settings() -> webhook_api::Settings {
    RawConfig {
        debounce_ms: 0,
        public_url: "http://hooks.example".into(),
        ..RawConfig::default()
    }
    .validate()
    .unwrap()
}

/// The app on port 0 with the given stores.
pub async fn spawn_app_with(
    stores: app_common::Stores,
    settings: webhook_api::Settings,
    registrar: Option<webhook_api::AttioRegistrar>,
) -> TestApp {
    spawn(stores, settings, registrar, false).await
}

/// The same, with `public_url` set to the app's own address (for webhook registration).
pub async fn spawn_app_at_own_url(
    stores: app_common::Stores,
    settings: webhook_api::Settings,
    registrar: Option<webhook_api::AttioRegistrar>,
) -> TestApp {
    spawn(stores, settings, registrar, true).await
}

async fn spawn(
    stores: app_common::Stores,
    settings: webhook_api::Settings,
    registrar: Option<webhook_api::AttioRegistrar>,
    own_url: bool,
) -> TestApp {
    spawn_full(stores, settings, registrar, own_url, None).await
}

/// Everything, the contact service included.
pub async fn spawn_full(
    stores: app_common::Stores,
    mut settings: webhook_api::Settings,
    registrar: Option<webhook_api::AttioRegistrar>,
    own_url: bool,
    contacts: Option<Arc<services::contact::ContactService>>,
) -> TestApp {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    if own_url {
        settings.public_url = url.clone();
    }
    let state = AppState::new(&stores, settings)
        .with_registrar(registrar)
        .with_contacts(contacts);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(webhook_api::serve(listener, state, async {
        let _ = stopped.await;
    }));
    TestApp {
        url,
        tenants: stores.tenants,
        inbox: stores.inbox,
        queue: stores.queue,
        dead: stores.dead,
        http: reqwest::Client::new(),
        stop: Some(stop),
        server: Some(server),
    }
}

/// The memory stores.
pub async fn memory_stores() -> app_common::Stores {
    app_common::open_stores(
        &app_common::StoreSettings::Memory,
        &app_common::QueueSettings::Store,
    )
    .await
    .unwrap()
}

/// The app on the memory stores, with tenant `acme`.
pub async fn spawn_app() -> TestApp {
    let stores = memory_stores().await;
    stores.tenants.create(&tenant("acme")).await.unwrap();
    spawn_app_with(stores, settings(), None).await
}

/// A `record.updated` delivery as Attio sends it.
pub fn record_event(kind: &str, record: &str) -> String {
    serde_json::json!({
        "webhook_id": "0b9a5b2e-7d3c-4a4e-9f3e-2b6c1d0e9a11",
        "events": [{
            "event_type": kind,
            "id": {
                "workspace_id": "14beef7a-99f7-4534-a87e-70b564330a4c",
                "object_id": "97052eb9-e65e-443f-a297-f2d9a4a7f795",
                "record_id": record,
            },
            "actor": {"type": "workspace-member", "id": "50cf242c-7fa3-4cad-87d0-75b1af71c57b"}
        }]
    })
    .to_string()
}
