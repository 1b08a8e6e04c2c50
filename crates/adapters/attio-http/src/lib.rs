//! The Attio REST API v2 adapter: implements the Attio ports (`AttioRecords`, `AttioSchema`,
//! `AttioWorkspace`) for one workspace.
//!
//! Every call takes one unit of the workspace's read or write budget from the rate-limiter port,
//! goes through the object's circuit breaker, runs with a timeout inside a tracing span, and is
//! retried with exponential backoff and full jitter on 408, 429, 5xx (but 501) and transport
//! failures, honouring `Retry-After` (seconds or HTTP-date) up to a cap. Error bodies decode into
//! typed port errors keyed on Attio's `code`. The token appears only in the `Authorization`
//! header: never in `Debug`, errors or logs.

mod config;
mod endpoints;
mod error;
mod signature;

use std::sync::Arc;

use async_trait::async_trait;
use domain::ids::SystemId;
use domain::limits::{Access, BudgetKey};
use http_kernel::{Answer, BreakerPolicy, Kernel, RetryPolicy, Upstream, Verdict};
use ports::error::{PortError, PortResult};
use ports::limiter::RateLimiter;
use reqwest::Method;
use serde_json::Value;

pub use config::AttioConfig;
pub use error::{AttioApiError, AttioSetupError};
pub use signature::{AttioSignatureError, sign_attio, verify_attio};

use error::{retryable_status, to_port_error};

/// The adapter for one workspace. Cheap to clone.
#[derive(Clone)]
pub struct AttioClient {
    kernel: Arc<Kernel>,
    config: Arc<AttioConfig>,
    limiter: Arc<dyn RateLimiter>,
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
        let kernel = Kernel::new(RetryPolicy {
            max_retries: config.max_retries,
            backoff_base: config.backoff_base,
            backoff_cap: config.backoff_cap,
            timeout: config.timeout,
        })
        .map_err(|e| AttioSetupError::Client(e.0))?
        .with_breaker(BreakerPolicy {
            threshold: config.breaker_threshold,
            open_for: config.breaker_open_for,
        });
        Ok(Self {
            kernel: Arc::new(kernel),
            config: Arc::new(config),
            limiter,
        })
    }

    /// Runs a call through the kernel (budget, the object's breaker, retries, a span); returns
    /// the decoded JSON body (`Null` when empty).
    pub(crate) async fn send(&self, call: Call<'_>) -> PortResult<Value> {
        let span = tracing::info_span!("attio.request", method = %call.method, path = %call.path, status = tracing::field::Empty, attempts = tracing::field::Empty);
        let kcall = http_kernel::Call {
            method: call.method.clone(),
            path: &call.path,
            query: &call.query,
            body: call.body.as_ref(),
            access: call.access,
            circuit: Some(&call.circuit),
        };
        let answer = self.kernel.send(self, &kcall, span).await?;
        if answer.body.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&answer.body)
            .map_err(|e| PortError::backend("Attio response body", e))
    }
}

/// Attio's quirks for the kernel: a read and a write budget per workspace, a bearer token, and
/// retries on 408, 429 (with `Retry-After` as seconds or an HTTP-date, capped) and 5xx but 501.
#[async_trait]
impl Upstream for AttioClient {
    type Session = ();

    fn name(&self) -> &'static str {
        "Attio"
    }

    async fn admit(&self, call: &http_kernel::Call<'_>) -> PortResult<()> {
        let key = BudgetKey {
            tenant: self.config.tenant.clone(),
            system: SystemId::attio(),
            access: call.access,
        };
        let quota = if call.access == Access::Read {
            self.config.read_quota
        } else {
            self.config.write_quota
        };
        http_kernel::acquire(self.limiter.as_ref(), &key, quota).await
    }

    async fn prepare(
        &self,
        http: &reqwest::Client,
        call: &http_kernel::Call<'_>,
    ) -> PortResult<(reqwest::RequestBuilder, ())> {
        let url = format!("{}{}", self.config.base_url, call.path);
        Ok((
            call.bearer_request(http, &url, self.config.token.expose()),
            (),
        ))
    }

    fn classify(&self, _call: &http_kernel::Call<'_>, answer: &Answer, _attempt: u32) -> Verdict {
        if answer.is_success() {
            return Verdict::Answer;
        }
        let retry_after = answer.retry_after();
        let error = to_port_error(
            AttioApiError::decode(answer.status, &answer.body),
            retry_after,
        );
        if retryable_status(answer.status) {
            Verdict::Retry {
                wait: retry_after.map(|d| d.min(self.config.retry_after_cap)),
                error,
            }
        } else {
            Verdict::Fail(error)
        }
    }
}
