//! Fault injection, for tests and benchmarks: settable at start (`HubSpotConfig::faults`,
//! `--faults JSON`) and while running (`GET`/`PUT /_sim/faults`, which need no token and take no
//! budget; they are the simulator's own, not HubSpot's). Injected errors use HubSpot's error body.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use crate::{HsError, Sim};

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
}

impl Faults {
    /// `Err` names the first rate outside 0..=1.
    pub fn validate(&self) -> Result<(), String> {
        for (name, rate) in [
            ("error_rate", self.error_rate),
            ("timeout_rate", self.timeout_rate),
        ] {
            if !(0.0..=1.0).contains(&rate) {
                return Err(format!("{name} must be between 0 and 1, got {rate}"));
            }
        }
        Ok(())
    }
}

fn roll(rate: f64) -> bool {
    rate > 0.0 && fastrand::f64() < rate
}

/// Applies latency, errors and hangs to HubSpot's routes.
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
        return HsError::new(
            StatusCode::GATEWAY_TIMEOUT,
            "GATEWAY_TIMEOUT",
            "Injected timeout.",
        )
        .into_response();
    }
    if roll(f.error_rate) {
        return HsError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "INTERNAL_ERROR",
            "Injected error.",
        )
        .into_response();
    }
    next.run(req).await
}

pub(crate) async fn get(State(sim): State<Arc<Sim>>) -> Response {
    Json(sim.faults()).into_response()
}

pub(crate) async fn put(State(sim): State<Arc<Sim>>, body: axum::body::Bytes) -> Response {
    let faults: Faults = match serde_json::from_slice(&body) {
        Ok(f) => f,
        Err(e) => {
            return (StatusCode::BAD_REQUEST, format!("not a faults object: {e}")).into_response();
        }
    };
    if let Err(e) = faults.validate() {
        return (StatusCode::BAD_REQUEST, e).into_response();
    }
    sim.set_faults(faults.clone());
    Json(faults).into_response()
}
