//! What the simulators share, so each of them holds only its vendor's behaviour:
//!
//! - [`Running`] and [`spawn`]: a simulator served in the background on a bound listener, with
//!   its own tasks, all stopped when the handle is dropped;
//! - [`FaultSettings`], [`HasFaults`], [`faults_route`] and [`parse_faults`]: fault settings
//!   given at start (`--faults JSON`) and read or replaced while running (`GET`/`PUT
//!   /_sim/faults`, which need no credentials: they are the simulator's, not the vendor's);
//! - [`roll`] and [`check_rates`]: the dice and the range check for injected faults;
//! - [`requests::RequestLog`]: every request answered, read through `GET /_sim/requests`.

pub mod requests;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// A simulator serving on a local port. Dropping it stops the server and the simulator's tasks.
pub struct Running<S> {
    pub addr: SocketAddr,
    pub sim: Arc<S>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl<S> Running<S> {
    /// `http://ADDR:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl<S> std::fmt::Debug for Running<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Running")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl<S> Drop for Running<S> {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Serves `app` on `listener` in the background. `tasks` are the simulator's own (delivery
/// senders and the like); they stop with it.
pub fn spawn<S>(
    name: &'static str,
    listener: tokio::net::TcpListener,
    app: Router,
    sim: Arc<S>,
    mut tasks: Vec<tokio::task::JoinHandle<()>>,
) -> std::io::Result<Running<S>> {
    let addr = listener.local_addr()?;
    tasks.push(tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, simulator = name, "the simulator stopped serving");
        }
    }));
    Ok(Running { addr, sim, tasks })
}

/// A simulator's fault settings.
pub trait FaultSettings:
    Clone + Default + Serialize + DeserializeOwned + Send + Sync + 'static
{
    /// `Err` says which setting is out of range and why.
    fn check(&self) -> Result<(), String>;
}

/// A simulator whose faults can be read and replaced while it runs.
pub trait HasFaults: Send + Sync + 'static {
    type Faults: FaultSettings;
    fn faults(&self) -> Self::Faults;
    fn set_faults(&self, faults: Self::Faults);
}

/// `GET` answers the faults in force; `PUT` replaces them (400 with the reason for a body that
/// is not a valid faults object).
pub fn faults_route<S: HasFaults>() -> MethodRouter<Arc<S>> {
    get(get_faults::<S>).put(put_faults::<S>)
}

async fn get_faults<S: HasFaults>(State(sim): State<Arc<S>>) -> Response {
    Json(sim.faults()).into_response()
}

async fn put_faults<S: HasFaults>(State(sim): State<Arc<S>>, body: Bytes) -> Response {
    let faults: S::Faults = match serde_json::from_slice(&body) {
        Ok(f) => f,
        Err(e) => {
            return (StatusCode::BAD_REQUEST, format!("not a faults object: {e}")).into_response();
        }
    };
    if let Err(e) = faults.check() {
        return (StatusCode::BAD_REQUEST, e).into_response();
    }
    sim.set_faults(faults.clone());
    Json(faults).into_response()
}

/// The faults of a `--faults JSON` argument (none: the defaults), checked.
pub fn parse_faults<F: FaultSettings>(json: Option<&str>) -> Result<F, String> {
    let faults: F = match json {
        Some(j) => {
            serde_json::from_str(j).map_err(|e| format!("--faults is not a faults object: {e}"))?
        }
        None => F::default(),
    };
    faults.check()?;
    Ok(faults)
}

/// True with probability `rate` (never for 0).
pub fn roll(rate: f64) -> bool {
    rate > 0.0 && fastrand::f64() < rate
}

/// `Err` names the first rate outside 0..=1.
pub fn check_rates(rates: &[(&str, f64)]) -> Result<(), String> {
    match rates.iter().find(|(_, r)| !(0.0..=1.0).contains(r)) {
        Some((name, rate)) => Err(format!("{name} must be between 0 and 1, got {rate}")),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::sync::Mutex;

    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
    #[serde(default, deny_unknown_fields)]
    struct F {
        error_rate: f64,
    }

    impl FaultSettings for F {
        fn check(&self) -> Result<(), String> {
            check_rates(&[("error_rate", self.error_rate)])
        }
    }

    #[derive(Default)]
    struct Sim(Mutex<F>);

    impl HasFaults for Sim {
        type Faults = F;
        fn faults(&self) -> F {
            self.0.lock().unwrap().clone()
        }
        fn set_faults(&self, f: F) {
            *self.0.lock().unwrap() = f;
        }
    }

    #[test]
    fn arguments_are_parsed_and_checked() {
        assert_eq!(parse_faults::<F>(None).unwrap(), F::default());
        assert_eq!(
            parse_faults::<F>(Some(r#"{"error_rate":0.5}"#))
                .unwrap()
                .error_rate,
            0.5
        );
        assert!(
            parse_faults::<F>(Some(r#"{"error_rate":2}"#))
                .unwrap_err()
                .contains("error_rate")
        );
        assert!(parse_faults::<F>(Some(r#"{"nope":1}"#)).is_err());
        assert!(!roll(0.0));
        assert!(roll(1.0));
    }

    #[tokio::test]
    async fn the_route_reads_replaces_and_refuses_and_dropping_stops_the_server() {
        let sim = Arc::new(Sim::default());
        let app = Router::new()
            .route("/_sim/faults", faults_route::<Sim>())
            .with_state(sim.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let running = spawn("test", listener, app, sim.clone(), Vec::new()).unwrap();
        let url = format!("{}/_sim/faults", running.url());
        let http = reqwest::Client::new();
        let put = http
            .put(&url)
            .body(r#"{"error_rate":0.25}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(put.status(), 200);
        assert_eq!(sim.faults().error_rate, 0.25);
        let bad = http
            .put(&url)
            .body(r#"{"error_rate":3}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(bad.status(), 400);
        let got: F = http.get(&url).send().await.unwrap().json().await.unwrap();
        assert_eq!(got.error_rate, 0.25);
        drop(running);
        tokio::task::yield_now().await;
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(
            http.get(&url).send().await.is_err(),
            "the server stopped with its handle"
        );
    }
}
