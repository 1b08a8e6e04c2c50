//! attio-sim over real HTTP: authentication, records and their semantics, filters, rate limits,
//! and the binary's start-up contract.

// Test code: unwrap/expect are how a test says "this must hold".
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod auth;
mod binary;
mod contract;
mod deliveries;
mod faults;
mod lists;
mod records;
mod webhooks;

use attio_sim::{RunningSim, SimConfig};
use serde_json::Value;

pub fn token(c: char) -> String {
    c.to_string().repeat(64)
}

pub async fn sim(config: SimConfig) -> RunningSim {
    attio_sim::start("127.0.0.1:0".parse().unwrap(), config)
        .await
        .unwrap()
}

/// A client for one token.
#[derive(Debug)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Client {
    pub fn new(sim: &RunningSim, token: &str) -> Self {
        Self {
            http: reqwest::Client::new(),
            base: sim.url(),
            token: token.to_owned(),
        }
    }

    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap())
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.call(reqwest::Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }
}
