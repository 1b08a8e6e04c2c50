//! The Attio adapter over real HTTP: against attio-sim for every endpoint it implements, paging,
//! 429 with `Retry-After`, error decoding and budgets; against a scripted local server for 5xx
//! retries, timeouts and the circuit breaker; and the token's absence from every output.

// Test code: unwrap/expect are how a test says "this must hold".
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod contract;
mod endpoints;
mod resilience;
mod secrecy;

use std::sync::Arc;
use std::time::Duration;

use adapter_attio_http::{AttioClient, AttioConfig};
use adapter_memory::MemoryRateLimiter;
use attio_sim::{RunningSim, SimConfig};
use domain::ids::TenantId;
use domain::tenant::Secret;

pub fn token(c: char) -> String {
    c.to_string().repeat(64)
}

pub async fn sim(config: SimConfig) -> RunningSim {
    attio_sim::start("127.0.0.1:0".parse().unwrap(), config)
        .await
        .unwrap()
}

pub fn config(base: &str, token: &str) -> AttioConfig {
    let mut c = AttioConfig::new(
        base,
        Secret::new(token).unwrap(),
        TenantId::parse("acme").unwrap(),
    )
    .unwrap();
    c.backoff_base = Duration::from_millis(10);
    c.backoff_cap = Duration::from_millis(50);
    c.timeout = Duration::from_secs(5);
    c
}

pub fn client(config: AttioConfig) -> AttioClient {
    AttioClient::new(config, Arc::new(MemoryRateLimiter::default())).unwrap()
}
