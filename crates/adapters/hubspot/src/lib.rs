//! The HubSpot CRM adapter: implements the external-CRM port for contacts, companies and deals.
//!
//! Anatomy, as for every CRM adapter: `config` (typed settings, masked token), the client here
//! (budgets, retries, one span per request), `wire` (HubSpot's JSON and its conversions to
//! provider-neutral values), `crm` (the port), `read` (reads by unique property, batch reads and
//! paged lists), `assoc` (associations v4), `signature` (webhook
//! verification) and `webhook` (event payloads).
//! Retry classification: 429 waits by its policy (10 s × attempt for the rolling window, 1 s ×
//! attempt for search, as HubSpot's own clients do; both settings), 423 waits 2 s, 477 honours
//! `Retry-After` seconds, 5xx and transport errors back off with full jitter. A `DAILY` 429 is not
//! retried: it fails at once with the time until the allowance resets, and `daily_allowance()`
//! reports what HubSpot's daily headers last said.

mod activity;
mod assoc;
mod crm;
mod plugin;
mod read;
mod references;
mod schema;
mod signature;
mod webhook;
mod wire;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use domain::ids::{SystemId, TenantId};
use domain::limits::{Access, BudgetKey, Quota};
use domain::tenant::Secret;
use http_kernel::{Call, Kernel, RetryPolicy, Upstream, Verdict};
use ports::error::{PortError, PortResult};
use ports::limiter::RateLimiter;
use reqwest::Method;
use serde_json::Value;

pub use plugin::{HubSpotProvider, PROVIDER};
pub use read::BatchRead;
pub use signature::{MAX_AGE_MS, SignatureError, sign_v3, verify_v3};
pub use webhook::{HubSpotEvent, PayloadError, SubscriptionType, parse_events};

/// Typed settings. `Debug` masks the token.
#[derive(Debug, Clone)]
pub struct HubSpotConfig {
    /// `https://api.hubapi.com` or a simulator's URL.
    pub base_url: String,
    pub token: Secret,
    pub tenant: TenantId,
    /// `/crm/v3/objects` or a date version such as `/crm/objects/2026-09`.
    pub objects_prefix: String,
    /// `/crm/v4/objects` or the same date version as `objects_prefix`.
    pub associations_prefix: String,
    /// Associations per list page (HubSpot's maximum and our default: 500).
    pub association_page: usize,
    /// The unique-value property upserts match on (a custom property holding Attio's record id).
    pub id_property: String,
    pub timeout: Duration,
    pub max_retries: u32,
    pub backoff_base: Duration,
    pub backoff_cap: Duration,
    /// Wait per attempt after a `TEN_SECONDLY_ROLLING` 429.
    pub rolling_wait: Duration,
    /// Wait per attempt after a search (`SECONDLY`) 429.
    pub secondly_wait: Duration,
    /// Requests per 10 s for this app (HubSpot Professional/Enterprise: 190).
    pub burst_quota: Quota,
    /// Searches per second per account.
    pub search_quota: Quota,
}

#[derive(Debug, thiserror::Error)]
pub enum HubSpotSetupError {
    #[error("invalid HubSpot configuration: {0}")]
    Config(String),
    #[error("cannot build the HTTP client")]
    Client(#[source] reqwest::Error),
}

impl HubSpotConfig {
    pub fn new(base_url: &str, token: Secret, tenant: TenantId) -> Result<Self, HubSpotSetupError> {
        let base_url = base_url.trim_end_matches('/').to_owned();
        if !(base_url.starts_with("https://") || base_url.starts_with("http://")) {
            return Err(HubSpotSetupError::Config(format!(
                "the base URL {base_url:?} must start with https:// or http://"
            )));
        }
        let quota = |n, s| {
            Quota::new(n, Duration::from_secs(s))
                .map_err(|e| HubSpotSetupError::Config(e.to_string()))
        };
        Ok(Self {
            base_url,
            token,
            tenant,
            objects_prefix: "/crm/v3/objects".into(),
            associations_prefix: "/crm/v4/objects".into(),
            association_page: 500,
            id_property: "attio_record_id".into(),
            timeout: Duration::from_secs(15),
            max_retries: 4,
            backoff_base: Duration::from_millis(200),
            backoff_cap: Duration::from_secs(10),
            rolling_wait: Duration::from_secs(10),
            secondly_wait: Duration::from_secs(1),
            burst_quota: quota(190, 10)?,
            search_quota: quota(4, 1)?,
        })
    }
}

/// The adapter for one HubSpot account. Cheap to clone.
#[derive(Clone)]
pub struct HubSpotClient {
    kernel: Arc<Kernel>,
    config: Arc<HubSpotConfig>,
    limiter: Arc<dyn RateLimiter>,
    daily: Arc<DailyCounter>,
}

/// The account's daily request allowance as HubSpot last reported it
/// (`X-HubSpot-RateLimit-Daily` and `-Daily-Remaining`; absent for OAuth apps and on search).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DailyAllowance {
    pub limit: u64,
    pub remaining: u64,
}

/// The last daily allowance HubSpot reported; `None` until a response carries the headers.
#[derive(Debug, Default)]
struct DailyCounter(std::sync::Mutex<Option<DailyAllowance>>);

impl DailyCounter {
    fn slot(&self) -> std::sync::MutexGuard<'_, Option<DailyAllowance>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn observe(&self, headers: &reqwest::header::HeaderMap) {
        let read = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok())
        };
        if let (Some(limit), Some(remaining)) = (
            read("x-hubspot-ratelimit-daily"),
            read("x-hubspot-ratelimit-daily-remaining"),
        ) {
            if limit > 0 {
                let used = limit.saturating_sub(remaining) as f64 / limit as f64;
                metrics::gauge!("provider_daily_budget_used_ratio", "provider" => "HubSpot")
                    .set(used);
            }
            *self.slot() = Some(DailyAllowance { limit, remaining });
        }
    }

    fn exhausted(&self) {
        if let Some(d) = self.slot().as_mut() {
            d.remaining = 0;
        }
    }

    fn get(&self) -> Option<DailyAllowance> {
        *self.slot()
    }
}

/// Time until the next UTC midnight, when the daily allowance resets (the simulator's accounts
/// use UTC; a real account resets at midnight in its own time zone, which is at most a day away).
fn until_midnight_utc() -> Duration {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    Duration::from_secs(86_400 - secs % 86_400)
}

impl std::fmt::Debug for HubSpotClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubSpotClient")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// A response the caller interprets (batches need the status and the error body).
#[derive(Debug)]
pub(crate) struct Answer {
    pub status: u16,
    pub body: Value,
}

/// The system id tenants name HubSpot by.
pub const SYSTEM: &str = "hubspot";
const _: () = assert!(SystemId::valid(SYSTEM));

fn system() -> SystemId {
    SystemId::from_static(SYSTEM)
}

pub(crate) fn rejected(status: u16, body: &Value) -> PortError {
    let message = body["message"]
        .as_str()
        .unwrap_or("HubSpot rejected the request")
        .to_owned();
    match status {
        401 => PortError::Unauthorized(message),
        403 => PortError::Unauthorized(message),
        404 => PortError::NotFound(message),
        _ => PortError::Rejected {
            system: system(),
            status,
            code: body["category"].as_str().unwrap_or("UNKNOWN").to_owned(),
            message,
        },
    }
}

impl HubSpotClient {
    pub fn new(
        config: HubSpotConfig,
        limiter: Arc<dyn RateLimiter>,
    ) -> Result<Self, HubSpotSetupError> {
        // No call names a circuit yet: the provider's own limits pace it.
        let kernel = Kernel::new(RetryPolicy {
            max_retries: config.max_retries,
            backoff_base: config.backoff_base,
            backoff_cap: config.backoff_cap,
            timeout: config.timeout,
        })
        .map_err(|e| HubSpotSetupError::Client(e.0))?;
        Ok(Self {
            kernel: Arc::new(kernel),
            config: Arc::new(config),
            limiter,
            daily: Arc::default(),
        })
    }

    /// The daily allowance from the last response that reported it; `None` before any did.
    pub fn daily_allowance(&self) -> Option<DailyAllowance> {
        self.daily.get()
    }

    /// Sends through the kernel with HubSpot's budgets and retries; returns any answer that is
    /// not retried for the caller to read.
    pub(crate) async fn send(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> PortResult<Answer> {
        let span = tracing::info_span!("hubspot.request", method = %method, path = %path, status = tracing::field::Empty);
        let access = if path.ends_with("/search") {
            Access::Read
        } else {
            Access::Write
        };
        let call = Call {
            method,
            path,
            query,
            body,
            access,
            circuit: None,
        };
        let answer = self.kernel.send(self, &call, span).await?;
        Ok(Answer {
            status: answer.status,
            body: answer.json(),
        })
    }

    pub(crate) fn objects(&self, object: &str) -> String {
        format!("{}/{object}", self.config.objects_prefix)
    }
}

/// HubSpot's quirks for the kernel: one burst window for reads and writes and one for search;
/// 429 waits by its policy (a `DAILY` one fails at once), 423 waits 2 s, 477 honours
/// `Retry-After`, 5xx (but 501) backs off.
#[async_trait]
impl Upstream for HubSpotClient {
    type Session = ();

    fn name(&self) -> &'static str {
        "HubSpot"
    }

    async fn admit(&self, call: &Call<'_>) -> PortResult<()> {
        // Reads and writes share HubSpot's one burst window; search (`Read` here) has its own.
        let quota = if call.access == Access::Read {
            self.config.search_quota
        } else {
            self.config.burst_quota
        };
        let key = BudgetKey {
            tenant: self.config.tenant.clone(),
            system: system(),
            access: call.access,
        };
        http_kernel::acquire(self.limiter.as_ref(), &key, quota).await
    }

    async fn prepare(
        &self,
        http: &reqwest::Client,
        call: &Call<'_>,
    ) -> PortResult<(reqwest::RequestBuilder, ())> {
        let url = format!("{}{}", self.config.base_url, call.path);
        Ok((
            call.bearer_request(http, &url, self.config.token.expose()),
            (),
        ))
    }

    fn classify(&self, _call: &Call<'_>, answer: &http_kernel::Answer, attempt: u32) -> Verdict {
        self.daily.observe(&answer.headers);
        let status = answer.status;
        let next = attempt + 1;
        match status {
            429 => {
                let body = answer.json();
                if body["policyName"] == "DAILY" {
                    // Retrying cannot help before the allowance resets: fail now.
                    self.daily.exhausted();
                    return Verdict::Fail(PortError::RateLimited {
                        retry_after: Some(until_midnight_utc()),
                    });
                }
                let per = if body["policyName"] == "TEN_SECONDLY_ROLLING" {
                    self.config.rolling_wait
                } else {
                    self.config.secondly_wait
                };
                Verdict::Retry {
                    wait: Some(per.saturating_mul(next)),
                    error: PortError::RateLimited {
                        retry_after: Some(per),
                    },
                }
            }
            423 => Verdict::Retry {
                wait: Some(Duration::from_secs(2)),
                error: rejected(status, &answer.json()),
            },
            477 => Verdict::Retry {
                wait: Some(answer.retry_after().unwrap_or(Duration::from_secs(60))),
                error: rejected(status, &answer.json()),
            },
            s if s >= 500 && s != 501 => Verdict::Retry {
                wait: None,
                error: PortError::unavailable(format!("HubSpot ({s})"), answer.json().to_string()),
            },
            _ => Verdict::Answer,
        }
    }
}
