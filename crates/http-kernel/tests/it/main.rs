//! The kernel's loop against a local server that answers from a script: retries and their
//! waits, the provider's verdicts (fail, retry, log in again once), the breaker, transport
//! failures and the budget taken per attempt.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use axum::http::StatusCode;
use domain::limits::Access;
use http_kernel::{
    Answer, BreakerPolicy, Call, Client, Kernel, Method, RequestBuilder, RetryPolicy, Upstream,
    Verdict,
};
use ports::error::{PortError, PortResult};

/// Answers each request with the next status of the script (200 when it runs out).
async fn server(script: &[u16]) -> (String, Arc<AtomicU32>) {
    let script = Arc::new(Mutex::new(script.iter().copied().collect::<VecDeque<_>>()));
    let hits = Arc::new(AtomicU32::new(0));
    let (s, h) = (script.clone(), hits.clone());
    let app = axum::Router::new().fallback(move || {
        let (s, h) = (s.clone(), h.clone());
        async move {
            h.fetch_add(1, Ordering::SeqCst);
            let status = s.lock().unwrap().pop_front().unwrap_or(200);
            (
                StatusCode::from_u16(status).unwrap(),
                format!("{{\"status\":{status}}}"),
            )
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, hits)
}

/// A provider whose verdicts are simple rules of the status: 2xx and 4xx answer, 401 asks for a
/// new session, 429 waits the given time, 5xx backs off.
struct Test {
    url: String,
    admitted: AtomicU32,
    reauthenticated: AtomicU32,
    wait_429: Duration,
}

impl Test {
    fn new(url: &str) -> Self {
        Self {
            url: url.to_owned(),
            admitted: AtomicU32::new(0),
            reauthenticated: AtomicU32::new(0),
            wait_429: Duration::from_millis(300),
        }
    }
}

#[async_trait]
impl Upstream for Test {
    type Session = u32;

    fn name(&self) -> &'static str {
        "Test"
    }

    async fn admit(&self, _call: &Call<'_>) -> PortResult<()> {
        self.admitted.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    async fn prepare(&self, http: &Client, call: &Call<'_>) -> PortResult<(RequestBuilder, u32)> {
        let session = self.reauthenticated.load(Ordering::SeqCst);
        Ok((
            http.request(call.method.clone(), format!("{}{}", self.url, call.path)),
            session,
        ))
    }

    fn classify(&self, _call: &Call<'_>, a: &Answer, _attempt: u32) -> Verdict {
        let err = || PortError::unavailable("Test", a.json().to_string());
        match a.status {
            401 => Verdict::Reauthenticate(PortError::Unauthorized("refused".into())),
            403 => Verdict::Fail(PortError::Unauthorized("forbidden".into())),
            429 => Verdict::Retry {
                wait: Some(self.wait_429),
                error: PortError::RateLimited { retry_after: None },
            },
            s if s >= 500 => Verdict::Retry {
                wait: None,
                error: err(),
            },
            _ => Verdict::Answer,
        }
    }

    async fn reauthenticate(&self, _session: u32) {
        self.reauthenticated.fetch_add(1, Ordering::SeqCst);
    }
}

fn kernel(max_retries: u32, threshold: u32) -> Kernel {
    Kernel::new(RetryPolicy {
        max_retries,
        backoff_base: Duration::from_millis(5),
        backoff_cap: Duration::from_millis(20),
        timeout: Duration::from_secs(5),
    })
    .unwrap()
    .with_breaker(BreakerPolicy {
        threshold,
        open_for: Duration::from_secs(60),
    })
}

fn call(circuit: Option<&str>) -> Call<'_> {
    Call {
        method: Method::GET,
        path: "/x",
        query: &[],
        body: None,
        access: Access::Read,
        circuit,
    }
}

#[tokio::test]
async fn server_errors_are_retried_with_a_budget_per_attempt() {
    let (url, hits) = server(&[503, 500, 200]).await;
    let up = Test::new(&url);
    let a = kernel(4, 5)
        .send(&up, &call(None), tracing::Span::none())
        .await
        .unwrap();
    assert_eq!(a.status, 200);
    assert_eq!(hits.load(Ordering::SeqCst), 3);
    assert_eq!(
        up.admitted.load(Ordering::SeqCst),
        3,
        "each attempt takes its budget"
    );
}

#[tokio::test]
async fn attempts_run_out_with_the_last_error() {
    let (url, hits) = server(&[503, 503, 503, 503]).await;
    let up = Test::new(&url);
    let e = kernel(2, 5)
        .send(&up, &call(None), tracing::Span::none())
        .await
        .unwrap_err();
    assert!(matches!(e, PortError::Unavailable { .. }), "{e:?}");
    assert_eq!(
        hits.load(Ordering::SeqCst),
        3,
        "the first attempt and two retries"
    );
}

#[tokio::test]
async fn a_wait_the_provider_names_is_kept() {
    let (url, _) = server(&[429]).await;
    let up = Test::new(&url);
    let start = Instant::now();
    kernel(4, 5)
        .send(&up, &call(None), tracing::Span::none())
        .await
        .unwrap();
    assert!(
        start.elapsed() >= Duration::from_millis(300),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn a_failure_verdict_is_not_retried_and_an_answer_is_returned_as_is() {
    let (url, hits) = server(&[403, 404]).await;
    let up = Test::new(&url);
    let k = kernel(4, 5);
    let e = k
        .send(&up, &call(None), tracing::Span::none())
        .await
        .unwrap_err();
    assert!(matches!(e, PortError::Unauthorized(_)), "{e:?}");
    let a = k
        .send(&up, &call(None), tracing::Span::none())
        .await
        .unwrap();
    assert_eq!((a.status, a.json()["status"].as_u64()), (404, Some(404)));
    assert_eq!(hits.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_refused_session_logs_in_again_once_per_call() {
    let (url, hits) = server(&[401, 200, 401, 401]).await;
    let up = Test::new(&url);
    let k = kernel(4, 5);
    assert_eq!(
        k.send(&up, &call(None), tracing::Span::none())
            .await
            .unwrap()
            .status,
        200
    );
    assert_eq!(up.reauthenticated.load(Ordering::SeqCst), 1);
    let e = k
        .send(&up, &call(None), tracing::Span::none())
        .await
        .unwrap_err();
    assert!(
        matches!(e, PortError::Unauthorized(_)),
        "a second refusal fails: {e:?}"
    );
    assert_eq!(up.reauthenticated.load(Ordering::SeqCst), 2);
    assert_eq!(
        hits.load(Ordering::SeqCst),
        4,
        "no attempt beyond the one re-login"
    );
}

#[tokio::test]
async fn the_breaker_opens_per_circuit_after_final_failures() {
    let (url, hits) = server(&[503, 503]).await;
    let up = Test::new(&url);
    let k = kernel(0, 2);
    for _ in 0..2 {
        assert!(
            k.send(&up, &call(Some("people")), tracing::Span::none())
                .await
                .is_err()
        );
    }
    let e = k
        .send(&up, &call(Some("people")), tracing::Span::none())
        .await
        .unwrap_err();
    assert!(e.to_string().contains("Test (people)"), "{e}");
    assert_eq!(
        hits.load(Ordering::SeqCst),
        2,
        "an open circuit sends nothing"
    );
    let other = k
        .send(&up, &call(Some("companies")), tracing::Span::none())
        .await;
    assert_eq!(other.unwrap().status, 200, "other circuits stay closed");
}

#[tokio::test]
async fn transport_failures_are_retried_then_unavailable() {
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let up = Test::new(&format!("http://127.0.0.1:{port}"));
    let e = kernel(2, 5)
        .send(&up, &call(None), tracing::Span::none())
        .await
        .unwrap_err();
    assert!(e.to_string().contains("Test (connection)"), "{e}");
    assert_eq!(up.admitted.load(Ordering::SeqCst), 3);
}
