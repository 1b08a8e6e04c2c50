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
mod wire;

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use domain::ids::{SystemId, TenantId};
use domain::tenant::Secret;
use ports::error::{PortError, PortResult};
use reqwest::Method;
use serde_json::Value;
use tracing::Instrument;

pub use crm::{DeletedPage, UpdatedIds};
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
    http: reqwest::Client,
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

fn system() -> SystemId {
    SystemId::parse("salesforce").unwrap_or_else(|_| SystemId::attio())
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
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .build()
            .map_err(SalesforceSetupError::Client)?;
        Ok(Self {
            http,
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
            *self.usage.lock().unwrap_or_else(PoisonError::into_inner) = Some(u);
        }
    }

    fn paused(&self) -> bool {
        self.api_usage()
            .is_some_and(|u| u.max > 0 && u.used as f64 >= self.config.pause_at * u.max as f64)
    }

    fn backoff(&self, attempt: u32) -> Duration {
        self.config
            .backoff_base
            .saturating_mul(1u32 << attempt.min(20))
            .min(self.config.backoff_cap)
            .mul_f64(fastrand::f64())
    }

    /// The current session, logging in when there is none.
    async fn session(&self) -> PortResult<Session> {
        let mut slot = self.session.lock().await;
        if let Some(s) = slot.as_ref() {
            return Ok(s.clone());
        }
        let s = auth::login(&self.http, &self.config).await?;
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

    /// Sends a data API request: `path` is under `/services/data/vNN.N`, or absolute (starting
    /// with `/services/`) as `nextRecordsUrl` is. Retries transient failures, logs in again once
    /// on `INVALID_SESSION_ID`; returns any other answer for the caller to read.
    pub(crate) async fn send(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> PortResult<Answer> {
        let span = tracing::info_span!("salesforce.request", method = %method, path = %path, status = tracing::field::Empty);
        async {
            let mut attempt = 0u32;
            let mut relogged = false;
            loop {
                if self.paused() {
                    return Err(PortError::RateLimited { retry_after: Some(self.config.pause_retry) });
                }
                let session = self.session().await?;
                let url = if path.starts_with("/services/") {
                    format!("{}{path}", session.instance_url)
                } else {
                    format!("{}/services/data/v{}{path}", session.instance_url, self.config.api_version)
                };
                let mut req = self.http.request(method.clone(), &url).bearer_auth(session.token.expose()).query(query);
                if let Some(b) = body {
                    req = req.json(b);
                }
                if let Some(tp) = ports::trace::outgoing() {
                    req = req.header("traceparent", tp);
                }
                if path == "/query" || path == "/queryAll" {
                    req = req.header("Sforce-Query-Options", format!("batchSize={}", self.config.query_batch_size));
                }
                let (wait, err) = match req.send().await {
                    Err(e) => {
                        let retry = e.is_connect() || e.is_timeout() || e.is_request();
                        let err = PortError::unavailable("Salesforce", e.without_url());
                        if !retry {
                            return Err(err);
                        }
                        (self.backoff(attempt + 1), err)
                    }
                    Ok(resp) => {
                        let status = resp.status().as_u16();
                        tracing::Span::current().record("status", status);
                        self.observe_usage(resp.headers());
                        let text = resp.text().await.unwrap_or_default();
                        let body: Value = if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) };
                        let code = SfError::decode(&body).map(|e| e.code).unwrap_or_default();
                        match (status, code.as_str()) {
                            (401, "INVALID_SESSION_ID") if !relogged => {
                                // The session expired or was revoked: log in again, once.
                                tracing::debug!("Salesforce session expired; logging in again");
                                self.drop_session(&session).await;
                                relogged = true;
                                continue;
                            }
                            (403, "REQUEST_LIMIT_EXCEEDED") => {
                                if let Some(u) = self.api_usage() {
                                    *self.usage.lock().unwrap_or_else(PoisonError::into_inner) = Some(ApiUsage { used: u.max, ..u });
                                }
                                return Err(PortError::RateLimited { retry_after: None });
                            }
                            (400, "UNABLE_TO_LOCK_ROW") => (self.backoff(attempt + 1), rejected(status, &body)),
                            (s, _) if s >= 500 && s != 501 => (self.backoff(attempt + 1), PortError::unavailable(format!("Salesforce ({s})"), body.to_string())),
                            _ => return Ok(Answer { status, body }),
                        }
                    }
                };
                if attempt >= self.config.max_retries {
                    return Err(err);
                }
                attempt += 1;
                tracing::debug!(attempt, delay_ms = wait.as_millis() as u64, error = %err, "retrying Salesforce request");
                tokio::time::sleep(wait).await;
            }
        }
        .instrument(span)
        .await
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
