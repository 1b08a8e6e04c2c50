//! The outbound kernel: the one request loop every provider adapter (Attio, each CRM) sends
//! through, so a fix to retries, budgets or tracing is a fix for every provider.
//!
//! Per attempt the loop takes the call's budget ([`Upstream::admit`]), lets the provider build
//! the request ([`Upstream::prepare`]: URL, credentials, body), adds the W3C `traceparent` of the
//! task's trace, sends it with the client's timeout inside the caller's span, reads the whole
//! answer and asks the provider what it means ([`Upstream::classify`]). The provider's verdict is
//! the only provider-specific step: hand the answer back, fail, retry after a wait it names (a
//! `Retry-After`, a documented window) or after the kernel's full-jitter backoff, or log in again
//! once. Transport failures (connect, timeout, request) are retried with the same backoff. A
//! per-key circuit breaker ([`breaker::Breaker`]) opens after repeated final failures. Every
//! request sent is counted in `provider_requests_total{provider, cause}`, the cause being the
//! task's (`ports::trace::with_cause`: a delivery, a CRM change, a backfill, a poll).
//!
//! Why this is written here rather than taken from `reqwest-retry` or `tower::retry`: the
//! decision needs the answer's body (HubSpot's `policyName`, Salesforce's error code), a budget
//! per attempt shared across replicas (the `RateLimiter` port), and a re-login step that repeats
//! the call without spending an attempt; those middlewares classify on the status line alone
//! (ADR 0024). Budgets themselves are GCRA (`governor` in memory, a Lua script in Redis), behind
//! the port.

pub mod breaker;

use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use domain::limits::{Access, BudgetKey, Quota};
use ports::error::{PortError, PortResult};
use ports::limiter::{RateDecision, RateLimiter};
use serde_json::Value;
use tracing::Instrument;

pub use reqwest::header::HeaderMap;
pub use reqwest::{Client, Method, RequestBuilder};

use breaker::Breaker;

/// How the loop retries and how long a request may take.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts after the first.
    pub max_retries: u32,
    /// The first backoff's ceiling; each retry doubles it, up to `backoff_cap`.
    pub backoff_base: Duration,
    pub backoff_cap: Duration,
    /// The whole request, answer included.
    pub timeout: Duration,
}

impl RetryPolicy {
    /// Full jitter: a uniform wait below `min(cap, base × 2^attempt)`.
    pub fn backoff(&self, attempt: u32) -> Duration {
        self.backoff_base
            .saturating_mul(1u32 << attempt.min(20))
            .min(self.backoff_cap)
            .mul_f64(fastrand::f64())
    }
}

/// A circuit breaker's settings: open after `threshold` final failures in a row, for `open_for`.
#[derive(Debug, Clone, Copy)]
pub struct BreakerPolicy {
    pub threshold: u32,
    pub open_for: Duration,
}

/// One call as the adapter describes it; the provider turns it into a request per attempt.
#[derive(Debug, Clone)]
pub struct Call<'a> {
    pub method: Method,
    /// The path under the provider's base (or, where the provider allows, an absolute path).
    pub path: &'a str,
    pub query: &'a [(&'a str, String)],
    pub body: Option<&'a Value>,
    /// Which budget it spends where the provider keeps reads and writes apart.
    pub access: Access,
    /// The breaker key (an object, an endpoint family); `None` keeps the call outside any
    /// circuit.
    pub circuit: Option<&'a str>,
}

impl<'a> Call<'a> {
    /// The plain request of this call to `url` with a bearer token: method, query and JSON body.
    pub fn bearer_request(&self, http: &Client, url: &str, token: &str) -> RequestBuilder {
        let req = http
            .request(self.method.clone(), url)
            .bearer_auth(token)
            .query(self.query);
        match self.body {
            Some(b) => req.json(b),
            None => req,
        }
    }

    /// A call with no query, body or circuit, spending the write budget.
    pub fn new(method: Method, path: &'a str) -> Self {
        Self {
            method,
            path,
            query: &[],
            body: None,
            access: Access::Write,
            circuit: None,
        }
    }
}

/// A whole answer: status, headers and body bytes.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Answer {
    /// The body as JSON: `Null` when empty, a JSON string holding the text when it is not JSON
    /// (a proxy's HTML page, a plain-text error).
    pub fn json(&self) -> Value {
        if self.body.is_empty() {
            return Value::Null;
        }
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&self.body).into_owned()))
    }

    /// `Retry-After` as a wait from now: delta-seconds or an HTTP-date.
    pub fn retry_after(&self) -> Option<Duration> {
        self.headers
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, SystemTime::now()))
    }

    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// `Retry-After` as delta-seconds or an HTTP-date, relative to `now`; a past date means now.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(v).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// What the provider makes of an answer.
#[derive(Debug)]
pub enum Verdict {
    /// Hand the answer to the caller (a success, or an error body the caller reads itself).
    Answer,
    /// Fail now with this error; retrying cannot help.
    Fail(PortError),
    /// Try again after `wait` (`None`: the kernel's jittered backoff); `error` is the result
    /// when no attempt is left.
    Retry {
        wait: Option<Duration>,
        error: PortError,
    },
    /// The provider refused the credentials of a session it issued: forget them and repeat the
    /// call at once, once per call; `error` is the result of a second refusal.
    Reauthenticate(PortError),
}

/// A provider as the kernel sees it: its budget, its requests and its reading of answers.
#[async_trait]
pub trait Upstream: Send + Sync {
    /// What `prepare` hands to `reauthenticate` (the session a request was sent with).
    type Session: Send;

    /// The provider's name in errors and logs ("Attio").
    fn name(&self) -> &'static str;

    /// Waits for the call's budget before each attempt; `RateLimited` refuses the call (a paused
    /// allowance), and a limiter's own failure is returned as it is.
    async fn admit(&self, call: &Call<'_>) -> PortResult<()>;

    /// The request of one attempt: URL, credentials, headers and body. An error (a failed login)
    /// ends the call.
    async fn prepare(
        &self,
        http: &Client,
        call: &Call<'_>,
    ) -> PortResult<(RequestBuilder, Self::Session)>;

    /// What an answer means; `attempt` is 0 for the first.
    fn classify(&self, call: &Call<'_>, answer: &Answer, attempt: u32) -> Verdict;

    /// Forgets `session` after [`Verdict::Reauthenticate`] (unless a newer one replaced it).
    async fn reauthenticate(&self, _session: Self::Session) {}
}

/// The shared loop over one HTTP client (connection pool, timeout) and one breaker.
#[derive(Debug)]
pub struct Kernel {
    http: Client,
    policy: RetryPolicy,
    breaker: Breaker,
}

/// A failure to build the kernel's HTTP client.
#[derive(Debug)]
pub struct ClientError(pub reqwest::Error);

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("cannot build the HTTP client")
    }
}

impl std::error::Error for ClientError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

impl Kernel {
    /// A kernel with `policy`; calls that name a circuit use the default breaker (5 final
    /// failures in a row open it for 30 s) unless [`Kernel::with_breaker`] says otherwise.
    pub fn new(policy: RetryPolicy) -> Result<Self, ClientError> {
        let http = Client::builder()
            .timeout(policy.timeout)
            .user_agent(concat!("attio-sync/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(ClientError)?;
        Ok(Self {
            http,
            policy,
            breaker: Breaker::new(5, Duration::from_secs(30)),
        })
    }

    /// The breaker for calls that name a circuit.
    pub fn with_breaker(mut self, breaker: BreakerPolicy) -> Self {
        self.breaker = Breaker::new(breaker.threshold, breaker.open_for);
        self
    }

    /// The client, for requests outside the loop (a login).
    pub fn http(&self) -> &Client {
        &self.http
    }

    pub fn policy(&self) -> &RetryPolicy {
        &self.policy
    }

    /// Runs `call` to its end inside `span` (which may declare `status` and `attempts` fields).
    /// `Ok` with the answer the provider handed back; otherwise the provider's error, the last
    /// retryable error when attempts run out, `Unavailable` for a transport failure, or the
    /// breaker's `Unavailable` while the call's circuit is open.
    pub async fn send<U: Upstream>(
        &self,
        upstream: &U,
        call: &Call<'_>,
        span: tracing::Span,
    ) -> PortResult<Answer> {
        self.run(upstream, call).instrument(span).await
    }

    async fn run<U: Upstream>(&self, up: &U, call: &Call<'_>) -> PortResult<Answer> {
        let name = up.name();
        if let Some(c) = call.circuit {
            self.breaker.allow(name, c)?;
        }
        let (mut attempt, mut reauthenticated) = (0u32, false);
        loop {
            up.admit(call).await?;
            let (mut req, session) = up.prepare(&self.http, call).await?;
            if let Some(tp) = ports::trace::outgoing() {
                req = req.header("traceparent", tp);
            }
            metrics::counter!("provider_requests_total", "provider" => name, "cause" => ports::trace::cause())
                .increment(1);
            ports::trace::count_request(name);
            let (wait, err) = match exchange(req).await {
                Err(e) => match transport_error(name, e) {
                    (true, err) => (None, err),
                    (false, err) => {
                        return Err(self.finish(call, attempt, Settled::Untouched, err));
                    }
                },
                Ok(answer) => {
                    tracing::Span::current().record("status", answer.status);
                    match up.classify(call, &answer, attempt) {
                        Verdict::Answer => {
                            self.settle(call, attempt, Settled::Answered);
                            return Ok(answer);
                        }
                        Verdict::Fail(e) => {
                            return Err(self.finish(call, attempt, Settled::Answered, e));
                        }
                        Verdict::Reauthenticate(e) if reauthenticated => {
                            return Err(self.finish(call, attempt, Settled::Answered, e));
                        }
                        Verdict::Reauthenticate(_) => {
                            tracing::debug!("{name} refused the session; logging in again");
                            reauthenticated = true;
                            up.reauthenticate(session).await;
                            continue;
                        }
                        Verdict::Retry { wait, error } => (wait, error),
                    }
                }
            };
            if attempt >= self.policy.max_retries {
                return Err(self.finish(call, attempt, Settled::Failed, err));
            }
            attempt += 1;
            let delay = wait.unwrap_or_else(|| self.policy.backoff(attempt));
            tracing::debug!(attempt, delay_ms = delay.as_millis() as u64, error = %ports::Chain(&err), "retrying {name} request");
            tokio::time::sleep(delay).await;
        }
    }

    fn settle(&self, call: &Call<'_>, attempt: u32, how: Settled) {
        tracing::Span::current().record("attempts", attempt + 1);
        if let Some(c) = call.circuit {
            match how {
                // The provider answered: a wrong request is not a broken service.
                Settled::Answered => self.breaker.success(c),
                Settled::Failed => {
                    if self.breaker.failure(c) {
                        tracing::warn!(
                            circuit = c,
                            "a circuit opened after repeated failures; its calls fail at once until it is probed"
                        );
                        metrics::counter!("provider_circuit_opens_total", "circuit" => c.to_owned())
                            .increment(1);
                    }
                }
                Settled::Untouched => {}
            }
        }
    }

    fn finish(&self, call: &Call<'_>, attempt: u32, how: Settled, e: PortError) -> PortError {
        self.settle(call, attempt, how);
        e
    }
}

/// How a call ended, for its circuit.
#[derive(Debug, Clone, Copy)]
enum Settled {
    Answered,
    Failed,
    Untouched,
}

/// Sends and reads the whole answer; a body that breaks off is a transport failure.
async fn exchange(req: RequestBuilder) -> Result<Answer, reqwest::Error> {
    let resp = req.send().await?;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.bytes().await?;
    Ok(Answer {
        status,
        headers,
        body,
    })
}

/// A transport failure as a port error, and whether it is worth retrying (connection, timeout
/// and request errors are). The URL is dropped: it may carry a query the logs should not keep.
pub fn transport_error(provider: &str, e: reqwest::Error) -> (bool, PortError) {
    let retry = e.is_connect() || e.is_timeout() || e.is_request() || e.is_body();
    let what = if e.is_timeout() {
        format!("{provider} (timeout)")
    } else {
        format!("{provider} (connection)")
    };
    (retry, PortError::unavailable(what, e.without_url()))
}

/// Takes one unit of `key`'s budget, waiting as long as the limiter says. A limiter failure is
/// returned as it is.
pub async fn acquire(limiter: &dyn RateLimiter, key: &BudgetKey, quota: Quota) -> PortResult<()> {
    loop {
        match limiter.try_acquire(key, quota, 1).await? {
            RateDecision::Allowed => return Ok(()),
            RateDecision::Wait(d) => tokio::time::sleep(d).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_takes_seconds_or_an_http_date() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_684_852_920);
        assert_eq!(parse_retry_after("2", now), Some(Duration::from_secs(2)));
        // Tue, 23 May 2023 14:42:01 GMT is 1684852921.
        assert_eq!(
            parse_retry_after("Tue, 23 May 2023 14:42:01 GMT", now),
            Some(Duration::from_secs(1))
        );
        assert_eq!(
            parse_retry_after("Tue, 23 May 2023 14:41:00 GMT", now),
            Some(Duration::ZERO),
            "a past date means now"
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn backoff_stays_under_its_ceiling() {
        let p = RetryPolicy {
            max_retries: 4,
            backoff_base: Duration::from_millis(100),
            backoff_cap: Duration::from_millis(700),
            timeout: Duration::from_secs(1),
        };
        for attempt in 0..30 {
            let ceiling = Duration::from_millis(100)
                .saturating_mul(1 << attempt.min(20))
                .min(Duration::from_millis(700));
            assert!(p.backoff(attempt) <= ceiling, "attempt {attempt}");
        }
    }
}
