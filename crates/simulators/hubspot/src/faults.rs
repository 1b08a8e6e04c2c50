//! Fault injection, for tests and benchmarks: settable at start (`HubSpotConfig::faults`,
//! `--faults JSON`) and while running (`GET`/`PUT /_sim/faults`, which need no token and take no
//! budget; they are the simulator's own, not HubSpot's). Injected errors use HubSpot's error body.

use std::sync::Arc;
use std::time::Duration;

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
    /// Share of API requests answered `error_status` before they have any effect.
    pub error_rate: f64,
    /// The status injected errors carry: 500 (default), 502, 503, 504, 524, 423 (locked) or 477
    /// (migration in progress, with `Retry-After: retry_after_s`).
    pub error_status: Option<u16>,
    /// `Retry-After` seconds on injected 477s (default 60).
    pub retry_after_s: Option<u64>,
    /// Share of API requests that hang for `hang_ms`, then answer `504`, with no effect.
    pub timeout_rate: f64,
    pub hang_ms: u64,
    /// Share of webhook events never sent (lost deliveries, for reconciliation to repair).
    pub drop_rate: f64,
}

impl Faults {
    /// `Err` names the first rate outside 0..=1.
    pub fn validate(&self) -> Result<(), String> {
        sim_support::check_rates(&[
            ("error_rate", self.error_rate),
            ("timeout_rate", self.timeout_rate),
            ("drop_rate", self.drop_rate),
        ])?;
        match self.error_status {
            None | Some(500 | 502 | 503 | 504 | 524 | 423 | 477) => Ok(()),
            Some(other) => Err(format!(
                "error_status must be one of 500, 502, 503, 504, 524, 423, 477; got {other}"
            )),
        }
    }
}

impl sim_support::FaultSettings for Faults {
    fn check(&self) -> Result<(), String> {
        self.validate()
    }
}

use sim_support::roll;

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
        let status = f.error_status.unwrap_or(500);
        let (category, message) = match status {
            423 => ("LOCKED", "The resource is locked; retry in a few seconds."),
            477 => ("MIGRATION_IN_PROGRESS", "The account is being migrated."),
            _ => ("INTERNAL_ERROR", "Injected error."),
        };
        let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut r = HsError::new(code, category, message).into_response();
        if status == 477 {
            r.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                f.retry_after_s.unwrap_or(60).into(),
            );
        }
        return r;
    }
    next.run(req).await
}
