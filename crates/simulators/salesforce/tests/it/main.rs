//! salesforce-sim over real HTTP.

// Test code: unwrap/expect are how a test says "this must hold".
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod behaviour;
mod process;

use salesforce_sim::{RunningSim, SalesforceConfig};
use serde_json::Value;

pub const V: &str = "/services/data/v62.0";

pub async fn sim(config: SalesforceConfig) -> RunningSim {
    salesforce_sim::start("127.0.0.1:0".parse().unwrap(), config)
        .await
        .unwrap()
}

/// A raw HTTP client holding one access token.
#[derive(Debug)]
pub struct Client {
    pub http: reqwest::Client,
    pub base: String,
    pub token: String,
}

#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Client {
    /// Logs in with the client-credentials flow.
    pub async fn login(sim: &RunningSim) -> Self {
        let http = reqwest::Client::new();
        let r: Value = http
            .post(format!("{}/services/oauth2/token", sim.url()))
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", "sim-consumer-key"),
                ("client_secret", "sim-consumer-secret"),
            ])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        Self {
            http,
            base: r["instance_url"].as_str().unwrap().to_owned(),
            token: r["access_token"].as_str().unwrap().to_owned(),
        }
    }

    pub async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Answer {
        self.call_with(method, path, body, &[]).await
    }

    pub async fn call_with(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Answer {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Answer {
            status,
            headers,
            body,
        }
    }
}
