//! The Salesforce CRM adapter: implements the external-CRM port for Contact, Account and
//! Opportunity (Attio people, companies, deals).
//!
//! Anatomy, as for every CRM adapter: the config here (typed settings, masked secrets), the
//! client here (login, budgets, retries, one span per request), `auth` (the OAuth flows), `wire`
//! (Salesforce's JSON, both error shapes, conversions) and `crm` (the port and the polling calls).
//!
//! Retry classification: transport errors, 5xx and single-record `UNABLE_TO_LOCK_ROW` back off
//! with full jitter; a 401 `INVALID_SESSION_ID` logs in again once and repeats the call, any
//! other 401 is permanent; a 403 `REQUEST_LIMIT_EXCEEDED` (Salesforce's only quota signal: no
//! 429, no `Retry-After`) is not retried and fails with `RateLimited`. Every response's
//! `Sforce-Limit-Info` is tracked; once usage reaches `pause_at` of the daily allowance the
//! adapter refuses to spend more (`RateLimited` with `pause_retry`) so other integrations of the
//! org keep their share.

mod activity;
mod auth;
mod crm;
mod plugin;
mod roles;
mod wire;

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use domain::ids::{SystemId, TenantId};
use domain::tenant::Secret;
use http_kernel::{Call, Kernel, RetryPolicy, Upstream, Verdict};
use ports::error::{PortError, PortResult};
use reqwest::Method;
use serde_json::Value;

pub use crm::{DeletedPage, UpdatedIds};
pub use plugin::{PROVIDER, SalesforceProvider};
pub use wire::SfError;

/// How the adapter logs in.
#[derive(Debug, Clone)]
pub enum SalesforceAuth {
    /// The client-credentials flow (a run-as user is set on the connected app).
    ClientCredentials {
        client_id: String,
        client_secret: Secret,
    },
    /// The JWT bearer flow: an RS256 assertion signed with the connected app's certificate key.
    JwtBearer {
        client_id: String,
        username: String,
        /// PKCS#8 PEM.
        private_key_pem: Secret,
        /// `https://login.salesforce.com`, `https://test.salesforce.com` or a community URL.
        audience: String,
    },
}

/// Typed settings. `Debug` masks the secrets.
#[derive(Debug, Clone)]
pub struct SalesforceConfig {
    /// The token endpoint's host: the org's My Domain URL (client credentials cannot use
    /// login.salesforce.com), or a simulator's URL.
    pub login_url: String,
    pub auth: SalesforceAuth,
    pub tenant: TenantId,
    /// At least 46.0 (upsert's `created` flag and collection upserts).
    pub api_version: String,
    pub timeout: Duration,
    pub max_retries: u32,
    pub backoff_base: Duration,
    pub backoff_cap: Duration,
    /// Share of the daily allowance (0–1) at which the adapter stops sending.
    pub pause_at: f64,
    /// The wait `RateLimited` suggests while paused.
    pub pause_retry: Duration,
    /// Rows per query page asked for with `Sforce-Query-Options` (200–2,000; a hint Salesforce
    /// may not honour).
    pub query_batch_size: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum SalesforceSetupError {
    #[error("invalid Salesforce configuration: {0}")]
    Config(String),
    #[error("cannot build the HTTP client")]
    Client(#[source] reqwest::Error),
}

impl SalesforceConfig {
    pub fn new(
        login_url: &str,
        auth: SalesforceAuth,
        tenant: TenantId,
    ) -> Result<Self, SalesforceSetupError> {
        let login_url = login_url.trim_end_matches('/').to_owned();
        if !(login_url.starts_with("https://") || login_url.starts_with("http://")) {
            return Err(SalesforceSetupError::Config(format!(
                "the login URL {login_url:?} must start with https:// or http://"
            )));
        }
        Ok(Self {
            login_url,
            auth,
            tenant,
            api_version: "62.0".into(),
            timeout: Duration::from_secs(30),
            max_retries: 4,
            backoff_base: Duration::from_millis(200),
            backoff_cap: Duration::from_secs(10),
            pause_at: 0.9,
            pause_retry: Duration::from_secs(15 * 60),
            query_batch_size: 2000,
        })
    }

    /// Checks what `new` cannot: the version and the pause share.
    pub fn validate(&self) -> Result<(), SalesforceSetupError> {
        match self.api_version.parse::<f64>() {
            Ok(v) if v >= 46.0 => {}
            _ => {
                return Err(SalesforceSetupError::Config(format!(
                    "api_version must be 46.0 or later, got {:?}",
                    self.api_version
                )));
            }
        }
        if !(self.pause_at > 0.0 && self.pause_at <= 1.0) {
            return Err(SalesforceSetupError::Config(format!(
                "pause_at must be in (0, 1], got {}",
                self.pause_at
            )));
        }
        if !(200..=2000).contains(&self.query_batch_size) {
            return Err(SalesforceSetupError::Config(format!(
                "query_batch_size must be between 200 and 2000, got {}",
                self.query_batch_size
            )));
        }
        Ok(())
    }
}

/// The org's API usage as the last `Sforce-Limit-Info` reported it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiUsage {
    pub used: u64,
    pub max: u64,
}

impl ApiUsage {
    /// Parses `api-usage=USED/MAX`, tolerating other `;`-separated parts.
    pub fn parse(header: &str) -> Option<Self> {
        header.split(';').find_map(|part| {
            let (used, max) = part.trim().strip_prefix("api-usage=")?.split_once('/')?;
            Some(Self {
                used: used.trim().parse().ok()?,
                max: max.trim().parse().ok()?,
            })
        })
    }
}

/// An access token and where to use it.
#[derive(Debug, Clone)]
pub(crate) struct Session {
    pub token: Secret,
    pub instance_url: String,
}

/// A response the caller interprets.
#[derive(Debug)]
pub(crate) struct Answer {
    pub status: u16,
    pub body: Value,
}

/// The adapter for one Salesforce org. Cheap to clone.
#[derive(Clone)]
pub struct SalesforceClient {
    kernel: Arc<Kernel>,
    config: Arc<SalesforceConfig>,
    session: Arc<tokio::sync::Mutex<Option<Session>>>,
    usage: Arc<Mutex<Option<ApiUsage>>>,
}

impl std::fmt::Debug for SalesforceClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SalesforceClient")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// The system id tenants name Salesforce by.
pub const SYSTEM: &str = "salesforce";
const _: () = assert!(SystemId::valid(SYSTEM));

fn system() -> SystemId {
    SystemId::from_static(SYSTEM)
}

/// A typed error from a Salesforce answer.
pub(crate) fn rejected(status: u16, body: &Value) -> PortError {
    let e = SfError::decode(body).unwrap_or_else(|| SfError {
        code: "UNKNOWN".into(),
        message: format!("Salesforce answered {status}"),
        fields: Vec::new(),
    });
    match (status, e.code.as_str()) {
        (401, _) => PortError::Unauthorized(e.to_string()),
        (404, "NOT_FOUND" | "ENTITY_IS_DELETED") => PortError::NotFound(e.to_string()),
        (_, "DUPLICATE_VALUE") | (300, _) => PortError::Conflict(e.to_string()),
        _ => PortError::Rejected {
            system: system(),
            status,
            code: e.code,
            message: e.message,
        },
    }
}

impl SalesforceClient {
    pub fn new(config: SalesforceConfig) -> Result<Self, SalesforceSetupError> {
        config.validate()?;
        // No call names a circuit yet: the provider's own limits pace it.
        let kernel = Kernel::new(RetryPolicy {
            max_retries: config.max_retries,
            backoff_base: config.backoff_base,
            backoff_cap: config.backoff_cap,
            timeout: config.timeout,
        })
        .map_err(|e| SalesforceSetupError::Client(e.0))?;
        Ok(Self {
            kernel: Arc::new(kernel),
            config: Arc::new(config),
            session: Arc::default(),
            usage: Arc::default(),
        })
    }

    /// The org's usage from the last response; `None` before any.
    pub fn api_usage(&self) -> Option<ApiUsage> {
        *self.usage.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn observe_usage(&self, headers: &reqwest::header::HeaderMap) {
        if let Some(u) = headers
            .get("sforce-limit-info")
            .and_then(|v| v.to_str().ok())
            .and_then(ApiUsage::parse)
        {
            if u.max > 0 {
                metrics::gauge!("provider_daily_budget_used_ratio", "provider" => "Salesforce")
                    .set(u.used as f64 / u.max as f64);
            }
            *self.usage.lock().unwrap_or_else(PoisonError::into_inner) = Some(u);
        }
    }

    fn paused(&self) -> bool {
        self.api_usage()
            .is_some_and(|u| u.max > 0 && u.used as f64 >= self.config.pause_at * u.max as f64)
    }

    /// The current session, logging in when there is none.
    async fn session(&self) -> PortResult<Session> {
        let mut slot = self.session.lock().await;
        if let Some(s) = slot.as_ref() {
            return Ok(s.clone());
        }
        let s = auth::login(self.kernel.http(), &self.config).await?;
        *slot = Some(s.clone());
        Ok(s)
    }

    /// Forgets a session that Salesforce no longer accepts (unless another task already did).
    async fn drop_session(&self, stale: &Session) {
        let mut slot = self.session.lock().await;
        if slot.as_ref().is_some_and(|s| s.token == stale.token) {
            *slot = None;
        }
    }

    /// Sends a data API request through the kernel: `path` is under `/services/data/vNN.N`, or
    /// absolute (starting with `/services/`) as `nextRecordsUrl` is. Retries transient failures,
    /// logs in again once on `INVALID_SESSION_ID`; returns any other answer for the caller to
    /// read.
    pub(crate) async fn send(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> PortResult<Answer> {
        let span = tracing::info_span!("salesforce.request", method = %method, path = %path, status = tracing::field::Empty);
        let mut call = Call::new(method, path);
        call.query = query;
        call.body = body;
        let answer = self.kernel.send(&Wire(self), &call, span).await?;
        Ok(Answer {
            status: answer.status,
            body: answer.json(),
        })
    }
}

/// Salesforce's quirks for the kernel: the session (instance URL and token) per attempt, one
/// re-login on `INVALID_SESSION_ID`, `REQUEST_LIMIT_EXCEEDED` as its only quota signal, locked
/// rows and 5xx (but 501) retried, and the daily allowance's pause. A private view of the client,
/// so the session type stays inside the crate.
struct Wire<'a>(&'a SalesforceClient);

#[async_trait]
impl Upstream for Wire<'_> {
    type Session = Session;

    fn name(&self) -> &'static str {
        "Salesforce"
    }

    async fn admit(&self, _call: &Call<'_>) -> PortResult<()> {
        if self.0.paused() {
            return Err(PortError::RateLimited {
                retry_after: Some(self.0.config.pause_retry),
            });
        }
        Ok(())
    }

    async fn prepare(
        &self,
        http: &reqwest::Client,
        call: &Call<'_>,
    ) -> PortResult<(reqwest::RequestBuilder, Session)> {
        let session = self.0.session().await?;
        let path = call.path;
        let url = if path.starts_with("/services/") {
            format!("{}{path}", session.instance_url)
        } else {
            format!(
                "{}/services/data/v{}{path}",
                session.instance_url, self.0.config.api_version
            )
        };
        let mut req = call.bearer_request(http, &url, session.token.expose());
        if path == "/query" || path == "/queryAll" {
            req = req.header(
                "Sforce-Query-Options",
                format!("batchSize={}", self.0.config.query_batch_size),
            );
        }
        Ok((req, session))
    }

    fn classify(&self, _call: &Call<'_>, answer: &http_kernel::Answer, _attempt: u32) -> Verdict {
        self.0.observe_usage(&answer.headers);
        let status = answer.status;
        if status < 400 {
            return Verdict::Answer;
        }
        let body = answer.json();
        let code = SfError::decode(&body).map(|e| e.code).unwrap_or_default();
        match (status, code.as_str()) {
            // The session expired or was revoked: log in again, once.
            (401, "INVALID_SESSION_ID") => Verdict::Reauthenticate(rejected(status, &body)),
            (403, "REQUEST_LIMIT_EXCEEDED") => {
                if let Some(u) = self.0.api_usage() {
                    *self.0.usage.lock().unwrap_or_else(PoisonError::into_inner) =
                        Some(ApiUsage { used: u.max, ..u });
                }
                Verdict::Fail(PortError::RateLimited { retry_after: None })
            }
            (400, "UNABLE_TO_LOCK_ROW") => Verdict::Retry {
                wait: None,
                error: rejected(status, &body),
            },
            (s, _) if s >= 500 && s != 501 => Verdict::Retry {
                wait: None,
                error: PortError::unavailable(format!("Salesforce ({s})"), body.to_string()),
            },
            _ => Verdict::Answer,
        }
    }

    async fn reauthenticate(&self, stale: Session) {
        self.0.drop_session(&stale).await;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn limit_info_parses_with_and_without_extra_parts() {
        assert_eq!(
            ApiUsage::parse("api-usage=10018/100000"),
            Some(ApiUsage {
                used: 10_018,
                max: 100_000
            })
        );
        assert_eq!(
            ApiUsage::parse("api-usage=1/750; api-bursts=1/750").map(|u| u.max),
            Some(750)
        );
        assert_eq!(
            ApiUsage::parse("api-bursts=1/750; api-usage=5/15000").map(|u| u.used),
            Some(5)
        );
        assert_eq!(ApiUsage::parse("nonsense"), None);
    }

    #[test]
    fn settings_are_validated() {
        let auth = SalesforceAuth::ClientCredentials {
            client_id: "ck".into(),
            client_secret: Secret::new("cs").unwrap(),
        };
        let tenant = TenantId::parse("acme").unwrap();
        assert!(SalesforceConfig::new("ftp://x", auth.clone(), tenant.clone()).is_err());
        let mut c = SalesforceConfig::new("https://acme.my.salesforce.com", auth, tenant).unwrap();
        assert!(c.validate().is_ok());
        c.api_version = "45.0".into();
        assert!(c.validate().is_err());
        c.api_version = "62.0".into();
        c.pause_at = 1.5;
        assert!(c.validate().is_err());
    }
}
