//! Fault injection, for tests and benchmarks: settable at start (`SimConfig::faults`,
//! `--faults JSON`) and while running (`GET`/`PUT /_sim/faults`, which need no token and take no
//! budget; they are the simulator's own, not Attio's).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::Sim;
use crate::respond::json_response;

/// What to break. Rates are shares from 0 to 1.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Added before every API answer.
    pub latency_ms: u64,
    /// Share of API requests answered `500` before they have any effect.
    pub error_rate: f64,
    /// Share of API requests that hang for `hang_ms`, then answer `504`, with no effect.
    pub timeout_rate: f64,
    pub hang_ms: u64,
    /// Share of webhook deliveries never sent.
    pub drop_rate: f64,
    /// Share of webhook deliveries sent twice (same `Idempotency-Key`).
    pub duplicate_rate: f64,
    /// When above 0, deliveries are held this long and sent newest first.
    pub reorder_window_ms: u64,
}

impl Faults {
    pub fn validate(&self) -> Result<(), String> {
        sim_support::check_rates(&[
            ("error_rate", self.error_rate),
            ("timeout_rate", self.timeout_rate),
            ("drop_rate", self.drop_rate),
            ("duplicate_rate", self.duplicate_rate),
        ])
    }
}

impl sim_support::FaultSettings for Faults {
    fn check(&self) -> Result<(), String> {
        self.validate()
    }
}

pub(crate) use sim_support::roll;

/// Applies latency, errors and hangs to Attio's routes.
pub(crate) async fn layer(State(sim): State<Arc<Sim>>, req: Request, next: Next) -> Response {
    if req.uri().path().starts_with("/_sim/") {
        return next.run(req).await;
    }
    let f = sim.faults();
    if f.latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(f.latency_ms)).await;
    }
    if roll(f.timeout_rate) {
        tokio::time::sleep(Duration::from_millis(f.hang_ms)).await;
        return json_response(
            StatusCode::GATEWAY_TIMEOUT,
            &json!({"status_code": 504, "type": "api_error", "code": "gateway_timeout", "message": "Injected timeout."}),
        );
    }
    if roll(f.error_rate) {
        return json_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            &json!({"status_code": 500, "type": "api_error", "code": "internal_server_error", "message": "Injected error."}),
        );
    }
    next.run(req).await
}
