//! The Salesforce adapter against salesforce-sim over real HTTP.

// Test code: unwrap/expect are how a test says "this must hold".
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod crm;
mod secrecy;

use std::time::Duration;

use adapter_salesforce::{SalesforceAuth, SalesforceClient, SalesforceConfig};
use domain::ids::TenantId;
use domain::tenant::Secret;

pub const CLIENT_SECRET: &str = "cs-SECRET-3f9a1c";

pub fn sim_config() -> salesforce_sim::SalesforceConfig {
    let mut c = salesforce_sim::SalesforceConfig::default();
    c.app.client_id = "ck-attio-sync".into();
    c.app.client_secret = CLIENT_SECRET.into();
    c.app.jwt_public_key_pem = Some(testkit::jwt::TEST_PUBLIC_KEY_PEM.into());
    c
}

pub async fn start(config: salesforce_sim::SalesforceConfig) -> salesforce_sim::RunningSim {
    salesforce_sim::start("127.0.0.1:0".parse().unwrap(), config)
        .await
        .unwrap()
}

pub fn cc(secret: &str) -> SalesforceAuth {
    SalesforceAuth::ClientCredentials {
        client_id: "ck-attio-sync".into(),
        client_secret: Secret::new(secret).unwrap(),
    }
}

pub fn client_with(
    url: &str,
    auth: SalesforceAuth,
    tweak: impl FnOnce(&mut SalesforceConfig),
) -> SalesforceClient {
    let mut cfg = SalesforceConfig::new(url, auth, TenantId::parse("acme").unwrap()).unwrap();
    cfg.backoff_base = Duration::from_millis(5);
    tweak(&mut cfg);
    SalesforceClient::new(cfg).unwrap()
}

pub fn client(url: &str) -> SalesforceClient {
    client_with(url, cc(CLIENT_SECRET), |_| {})
}
