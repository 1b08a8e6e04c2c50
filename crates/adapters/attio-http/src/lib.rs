//! The Attio REST API v2 adapter: implements the Attio ports (`AttioRecords`, `AttioSchema`,
//! `AttioWorkspace`) for one workspace.
//!
//! Every call takes one unit of the workspace's read or write budget from the rate-limiter port,
//! goes through the object's circuit breaker, runs with a timeout inside a tracing span, and is
//! retried with exponential backoff and full jitter on 408, 429, 5xx (but 501) and transport
//! failures, honouring `Retry-After` (seconds or HTTP-date) up to a cap. Error bodies decode into
//! typed port errors keyed on Attio's `code`. The token appears only in the `Authorization`
//! header: never in `Debug`, errors or logs.

mod breaker;
mod config;
mod endpoints;
mod error;
mod signature;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use domain::ids::SystemId;
use domain::limits::{Access, BudgetKey};
use ports::error::{PortError, PortResult};
use ports::limiter::{RateDecision, RateLimiter};
use reqwest::Method;
use serde_json::Value;
use tracing::Instrument;

pub use config::AttioConfig;
pub use error::{AttioApiError, AttioSetupError};
pub use signature::{AttioSignatureError, sign_attio, verify_attio};

use breaker::Breaker;
use error::{parse_retry_after, retryable_status, to_port_error, transport_error};

/// The adapter for one workspace. Cheap to clone.
#[derive(Clone)]
pub struct AttioClient {
    http: reqwest::Client,
    config: Arc<AttioConfig>,
    limiter: Arc<dyn RateLimiter>,
    breaker: Arc<Breaker>,
}

impl std::fmt::Debug for AttioClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AttioClient")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// One request to make.
#[derive(Debug)]
pub(crate) struct Call<'a> {
    pub method: Method,
    pub path: String,
    pub query: Vec<(&'a str, String)>,
    pub body: Option<Value>,
    pub access: Access,
    /// The breaker key: the object slug, or the endpoint family.
    pub circuit: String,
}

impl AttioClient {
    pub fn new(
        config: AttioConfig,
        limiter: Arc<dyn RateLimiter>,
    ) -> Result<Self, AttioSetupError> {
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .user_agent(concat!("attio-sync/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(AttioSetupError::Client)?;
        let breaker = Arc::new(Breaker::new(
            config.breaker_threshold,
            config.breaker_open_for,
        ));
        Ok(Self {
            http,
            config: Arc::new(config),
            limiter,
            breaker,
        })
    }

    async fn take_budget(&self, access: Access) -> PortResult<()> {
        let key = BudgetKey {
            tenant: self.config.tenant.clone(),
            system: SystemId::attio(),
            access,
        };
        let quota = if access == Access::Read {
            self.config.read_quota
        } else {
            self.config.write_quota
        };
        loop {
            match self.limiter.try_acquire(&key, quota, 1).await? {
                RateDecision::Allowed => return Ok(()),
                RateDecision::Wait(d) => tokio::time::sleep(d).await,
            }
        }
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let ceiling = self
            .config
            .backoff_base
            .saturating_mul(1u32 << attempt.min(20))
            .min(self.config.backoff_cap);
        ceiling.mul_f64(fastrand::f64())
    }

    /// Runs a call with budgets, the breaker, retries and a span; returns the decoded JSON body.
    pub(crate) async fn send(&self, call: Call<'_>) -> PortResult<Value> {
        let span = tracing::info_span!("attio.request", method = %call.method, path = %call.path, status = tracing::field::Empty, attempts = tracing::field::Empty);
        async {
            self.breaker.allow(&call.circuit)?;
            let url = format!("{}{}", self.config.base_url, call.path);
            let mut attempt = 0;
            loop {
                self.take_budget(call.access).await?;
                let mut req = self
                    .http
                    .request(call.method.clone(), &url)
                    .bearer_auth(self.config.token.expose())
                    .query(&call.query);
                if let Some(b) = &call.body {
                    req = req.json(b);
                }
                if let Some(tp) = ports::trace::outgoing() {
                    req = req.header("traceparent", tp);
                }
                let (retry, err, wait) = match req.send().await {
                    Err(e) => {
                        let (retry, err) = transport_error(e);
                        (retry, err, None)
                    }
                    Ok(resp) => {
                        let status = resp.status().as_u16();
                        tracing::Span::current().record("status", status);
                        let retry_after = resp
                            .headers()
                            .get("retry-after")
                            .and_then(|v| v.to_str().ok())
                            .and_then(|v| parse_retry_after(v, SystemTime::now()));
                        let bytes = match resp.bytes().await {
                            Ok(b) => b,
                            Err(e) => {
                                let (retry, err) = transport_error(e);
                                if retry && attempt < self.config.max_retries {
                                    attempt += 1;
                                    tokio::time::sleep(self.backoff(attempt)).await;
                                    continue;
                                }
                                self.breaker.failure(&call.circuit);
                                return Err(err);
                            }
                        };
                        if (200..300).contains(&status) {
                            self.breaker.success(&call.circuit);
                            tracing::Span::current().record("attempts", attempt + 1);
                            if bytes.is_empty() {
                                return Ok(Value::Null);
                            }
                            return serde_json::from_slice(&bytes).map_err(|e| PortError::backend("Attio response body", e));
                        }
                        let api = AttioApiError::decode(status, &bytes);
                        if !retryable_status(status) {
                            // The request was wrong, not the service: the circuit stays closed.
                            self.breaker.success(&call.circuit);
                            return Err(to_port_error(api, retry_after));
                        }
                        (true, to_port_error(api, retry_after), retry_after)
                    }
                };
                if !retry || attempt >= self.config.max_retries {
                    tracing::Span::current().record("attempts", attempt + 1);
                    if retry {
                        self.breaker.failure(&call.circuit);
                    }
                    return Err(err);
                }
                attempt += 1;
                let delay = match wait {
                    Some(d) => d.min(self.config.retry_after_cap),
                    None => self.backoff(attempt),
                };
                tracing::debug!(attempt, delay_ms = delay.as_millis() as u64, error = %err, "retrying Attio request");
                tokio::time::sleep(delay).await;
            }
        }
        .instrument(span)
        .await
    }
}
