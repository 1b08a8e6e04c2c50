use std::time::Duration;

use domain::ids::TenantId;
use domain::limits::{Access, Quota};
use domain::tenant::Secret;

use crate::error::AttioSetupError;

/// Everything the adapter needs for one workspace. `Debug` masks the token.
#[derive(Debug, Clone)]
pub struct AttioConfig {
    /// `https://api.attio.com`, or a simulator's `http://127.0.0.1:PORT`; without `/v2`.
    pub base_url: String,
    pub token: Secret,
    /// The tenant whose budgets and breakers this client uses.
    pub tenant: TenantId,
    /// Per request, including reading the body.
    pub timeout: Duration,
    /// Retries after the first attempt of a retryable failure.
    pub max_retries: u32,
    pub backoff_base: Duration,
    pub backoff_cap: Duration,
    /// The longest `Retry-After` honoured; longer ones wait this long.
    pub retry_after_cap: Duration,
    pub read_quota: Quota,
    pub write_quota: Quota,
    /// Consecutive failed calls (after retries) that open an object's circuit.
    pub breaker_threshold: u32,
    /// How long an open circuit refuses calls before letting one probe through.
    pub breaker_open_for: Duration,
}

impl AttioConfig {
    /// Attio's documented defaults: 100 reads/s and 25 writes/s per workspace.
    pub fn new(base_url: &str, token: Secret, tenant: TenantId) -> Result<Self, AttioSetupError> {
        let base_url = base_url.trim_end_matches('/').to_owned();
        if !(base_url.starts_with("https://") || base_url.starts_with("http://")) {
            return Err(AttioSetupError::Config(format!(
                "the base URL {base_url:?} must start with https:// or http://"
            )));
        }
        if base_url.ends_with("/v2") {
            return Err(AttioSetupError::Config(
                "the base URL must not include /v2 (paths carry it)".into(),
            ));
        }
        Ok(Self {
            base_url,
            token,
            tenant,
            timeout: Duration::from_secs(10),
            max_retries: 4,
            backoff_base: Duration::from_millis(250),
            backoff_cap: Duration::from_secs(8),
            retry_after_cap: Duration::from_secs(30),
            read_quota: Quota::attio(Access::Read),
            write_quota: Quota::attio(Access::Write),
            breaker_threshold: 5,
            breaker_open_for: Duration::from_secs(30),
        })
    }
}
