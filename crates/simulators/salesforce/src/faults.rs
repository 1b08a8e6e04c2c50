//! Fault injection, for tests and benchmarks: settable at start (`SalesforceConfig::faults`,
//! `--faults JSON`) and while running (`GET`/`PUT /_sim/faults`, which need no token and count
//! against no limit; they are the simulator's own, not Salesforce's). Injected errors use
//! Salesforce's error bodies.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use crate::Sim;
use crate::store::SfFault;

/// What to break. Rates are shares from 0 to 1.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Added before every data API answer.
    pub latency_ms: u64,
    /// Share of data API requests answered `error_status` before they have any effect.
    pub error_rate: f64,
    /// 500 (default), 502 (the edge cannot reach the instance) or 503 (down for maintenance).
    pub error_status: Option<u16>,
    /// Share of record writes that fail with `UNABLE_TO_LOCK_ROW`: per item in collections, a
    /// 400 on single-record calls. Retryable, as in Salesforce.
    pub lock_rate: f64,
    /// Share of queries that fail with `QUERY_TIMEOUT`.
    pub query_timeout_rate: f64,
}

impl Faults {
    /// `Err` names the first setting out of range.
    pub fn validate(&self) -> Result<(), String> {
        sim_support::check_rates(&[
            ("error_rate", self.error_rate),
            ("lock_rate", self.lock_rate),
            ("query_timeout_rate", self.query_timeout_rate),
        ])?;
        match self.error_status {
            None | Some(500 | 502 | 503) => Ok(()),
            Some(other) => Err(format!("error_status must be 500, 502 or 503; got {other}")),
        }
    }
}

impl sim_support::FaultSettings for Faults {
    fn check(&self) -> Result<(), String> {
        self.validate()
    }
}

pub(crate) use sim_support::roll;

/// The fault a write meets, if the lock rate says so.
pub(crate) fn lock(f: &Faults) -> Option<SfFault> {
    roll(f.lock_rate).then(|| {
        SfFault::new(
            400,
            "UNABLE_TO_LOCK_ROW",
            "unable to obtain exclusive access to this record or 1 records",
        )
    })
}

/// Applies latency and errors to the data API.
pub(crate) async fn layer(State(sim): State<Arc<Sim>>, req: Request, next: Next) -> Response {
    let f = sim.faults();
    if f.latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(f.latency_ms)).await;
    }
    if roll(f.error_rate) {
        let fault = match f.error_status.unwrap_or(500) {
            502 => SfFault::new(
                502,
                "BAD_GATEWAY",
                "Salesforce Edge could not reach the instance",
            ),
            503 => SfFault::new(
                503,
                "SERVER_UNAVAILABLE",
                "Server is down for maintenance or is overloaded",
            ),
            _ => SfFault::new(
                500,
                "UNKNOWN_EXCEPTION",
                "An unexpected error occurred. Please include this ErrorId if you contact support: 1234567890-12345 (-1234567890)",
            ),
        };
        return fault.into_response();
    }
    next.run(req).await
}
