//! hubspot-sim over real HTTP.

// Test code: unwrap/expect are how a test says "this must hold".
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod behaviour;

use hubspot_sim::{HubSpotConfig, RunningSim};
use serde_json::Value;

pub async fn sim(config: HubSpotConfig) -> RunningSim {
    hubspot_sim::start("127.0.0.1:0".parse().unwrap(), config)
        .await
        .unwrap()
}

#[derive(Debug)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Client {
    pub fn new(sim: &RunningSim) -> Self {
        Self {
            http: reqwest::Client::new(),
            base: sim.url(),
            token: "pat-na1-test".into(),
        }
    }

    /// A client for another HubSpot account (the simulator keys accounts by token).
    pub fn with_token(sim: &RunningSim, token: &str) -> Self {
        Self {
            token: token.into(),
            ..Self::new(sim)
        }
    }

    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, reqwest::header::HeaderMap, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap();
        (
            status,
            headers,
            if text.is_empty() {
                Value::Null
            } else {
                serde_json::from_str(&text).unwrap()
            },
        )
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let (s, _, b) = self.call(reqwest::Method::POST, path, Some(body)).await;
        (s, b)
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let (s, _, b) = self.call(reqwest::Method::GET, path, None).await;
        (s, b)
    }
}
