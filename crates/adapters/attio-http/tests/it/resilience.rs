//! Retries, timeouts and the circuit breaker, against a local server that answers from a script.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use domain::ids::ObjectRef;
use ports::attio::{AttioRecords, AttioSchema};
use ports::error::PortError;

use crate::{client, config, token};

/// One scripted answer: status, `Retry-After`, delay before answering.
#[derive(Debug, Clone, Copy)]
struct Answer(u16, Option<&'static str>, Duration);

#[derive(Debug, Default)]
struct Script {
    answers: Mutex<VecDeque<Answer>>,
    /// Answer once the script runs out.
    then: Mutex<Option<Answer>>,
    hits: AtomicUsize,
}

async fn serve(script: Arc<Script>) -> String {
    let handler = move || {
        let script = script.clone();
        async move {
            script.hits.fetch_add(1, Ordering::SeqCst);
            let next = script
                .answers
                .lock()
                .unwrap()
                .pop_front()
                .or(*script.then.lock().unwrap());
            let Answer(status, retry_after, delay) =
                next.unwrap_or(Answer(200, None, Duration::ZERO));
            tokio::time::sleep(delay).await;
            let mut headers = HeaderMap::new();
            if let Some(ra) = retry_after {
                headers.insert("retry-after", ra.parse().unwrap());
            }
            let body = if status < 300 {
                r#"{"data":[]}"#.to_owned()
            } else {
                format!(
                    r#"{{"status_code":{status},"type":"invalid_request_error","code":"scripted","message":"scripted {status}"}}"#
                )
            };
            (StatusCode::from_u16(status).unwrap(), headers, body).into_response()
        }
    };
    let app = Router::new().fallback(handler);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

fn script(answers: &[Answer], then: Option<Answer>) -> Arc<Script> {
    Arc::new(Script {
        answers: Mutex::new(answers.iter().copied().collect()),
        then: Mutex::new(then),
        hits: AtomicUsize::new(0),
    })
}

const NOW: Duration = Duration::ZERO;

#[tokio::test]
async fn server_errors_are_retried_until_success() {
    let s = script(
        &[
            Answer(503, None, NOW),
            Answer(502, None, NOW),
            Answer(500, None, NOW),
        ],
        None,
    );
    let c = client(config(&serve(s.clone()).await, &token('a')));
    assert_eq!(c.list_objects().await.unwrap(), vec![]);
    assert_eq!(s.hits.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn client_errors_and_501_are_not_retried() {
    for status in [400, 404, 409, 501] {
        let s = script(&[Answer(status, None, NOW)], None);
        let c = client(config(&serve(s.clone()).await, &token('a')));
        let err = c.list_objects().await.unwrap_err();
        assert_eq!(
            s.hits.load(Ordering::SeqCst),
            1,
            "{status} must not be retried: {err:?}"
        );
    }
}

#[tokio::test]
async fn retries_stop_after_the_configured_number() {
    let s = script(&[], Some(Answer(503, None, NOW)));
    let mut cfg = config(&serve(s.clone()).await, &token('a'));
    cfg.max_retries = 2;
    let err = client(cfg).list_objects().await.unwrap_err();
    assert!(matches!(err, PortError::Unavailable { .. }), "{err:?}");
    assert_eq!(s.hits.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn a_slow_response_times_out_and_is_retried() {
    let s = script(&[Answer(200, None, Duration::from_secs(3))], None);
    let mut cfg = config(&serve(s.clone()).await, &token('a'));
    cfg.timeout = Duration::from_millis(200);
    let c = client(cfg);
    assert_eq!(
        c.list_objects().await.unwrap(),
        vec![],
        "the retry after the timeout succeeds"
    );
    assert_eq!(s.hits.load(Ordering::SeqCst), 2);
    let s = script(&[], Some(Answer(200, None, Duration::from_secs(3))));
    let mut cfg = config(&serve(s.clone()).await, &token('a'));
    cfg.timeout = Duration::from_millis(200);
    cfg.max_retries = 1;
    let err = client(cfg).list_objects().await.unwrap_err();
    assert!(err.to_string().contains("timeout"), "{err}");
}

#[tokio::test]
async fn retry_after_is_honoured_up_to_the_cap() {
    let s = script(&[Answer(429, Some("3600"), NOW)], None);
    let mut cfg = config(&serve(s.clone()).await, &token('a'));
    cfg.retry_after_cap = Duration::from_millis(100);
    let done = tokio::time::timeout(Duration::from_secs(20), client(cfg).list_objects()).await;
    assert!(
        matches!(done, Ok(Ok(_))),
        "an hour-long Retry-After waits only the cap: {done:?}"
    );
    assert_eq!(s.hits.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn repeated_failures_open_the_circuit_of_that_object_only() {
    let s = script(&[], Some(Answer(503, None, NOW)));
    let mut cfg = config(&serve(s.clone()).await, &token('a'));
    cfg.max_retries = 0;
    cfg.breaker_threshold = 2;
    cfg.breaker_open_for = Duration::from_millis(300);
    let c = client(cfg);
    let people = ObjectRef::parse("people").unwrap();
    let id = domain::ids::RecordId::from_uuid(uuid_v4());
    for _ in 0..2 {
        assert!(c.get_record(&people, id).await.is_err());
    }
    assert_eq!(s.hits.load(Ordering::SeqCst), 2);
    let err = c.get_record(&people, id).await.unwrap_err();
    assert!(
        err.to_string().contains("people") && format!("{err:?}").contains("circuit"),
        "{err:?}"
    );
    assert_eq!(
        s.hits.load(Ordering::SeqCst),
        2,
        "an open circuit does not call Attio"
    );
    let companies = ObjectRef::parse("companies").unwrap();
    let _ = c.get_record(&companies, id).await;
    assert_eq!(
        s.hits.load(Ordering::SeqCst),
        3,
        "another object's circuit is closed"
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    *s.then.lock().unwrap() = Some(Answer(200, None, NOW));
    // The probe goes through and closes the circuit (the scripted body is not a record, hence Err).
    let _ = c.get_record(&people, id).await;
    assert_eq!(
        s.hits.load(Ordering::SeqCst),
        4,
        "one probe after the open period"
    );
    let _ = c.get_record(&people, id).await;
    assert_eq!(s.hits.load(Ordering::SeqCst), 5, "closed again");
}

fn uuid_v4() -> uuid::Uuid {
    uuid::Uuid::from_u128(fastrand::u128(..))
}

#[tokio::test]
async fn against_the_simulators_injected_faults() {
    use attio_sim::{Faults, SimConfig};

    let s = crate::sim(SimConfig::default()).await;
    let mut cfg = config(&s.url(), &token('a'));
    cfg.max_retries = 1;
    cfg.breaker_threshold = 2;
    cfg.breaker_open_for = Duration::from_secs(60);
    cfg.timeout = Duration::from_millis(200);
    let c = client(cfg);
    assert!(c.list_objects().await.is_ok());

    s.sim.set_faults(Faults {
        timeout_rate: 1.0,
        hang_ms: 1_000,
        ..Faults::default()
    });
    let err = c.list_objects().await.unwrap_err();
    assert!(
        err.to_string().contains("timeout"),
        "a hanging Attio times out: {err}"
    );

    s.sim.set_faults(Faults {
        error_rate: 1.0,
        ..Faults::default()
    });
    assert!(
        matches!(c.list_objects().await, Err(PortError::Unavailable { .. })),
        "500s are retried, then Unavailable"
    );
    s.sim.set_faults(Faults::default());
    let err = c.list_objects().await.unwrap_err();
    assert!(
        format!("{err:?}").contains("circuit"),
        "two failed calls opened the circuit, even though Attio recovered: {err:?}"
    );
}

#[tokio::test]
async fn calls_carry_the_current_trace_as_traceparent() {
    let server = testkit::capture::HeaderCapture::start("traceparent", r#"{"data":[]}"#).await;
    let c = client(config(&server.url, &token('t')));
    let trace = domain::trace::TraceParent::parse(
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    )
    .unwrap();
    ports::trace::in_trace(trace, c.list_objects())
        .await
        .unwrap();
    c.list_objects().await.unwrap();
    let seen = server.seen();
    let sent =
        domain::trace::TraceParent::parse(seen[0].as_deref().expect("a traceparent")).unwrap();
    assert_eq!(sent.trace_id(), trace.trace_id(), "the same trace");
    assert_ne!(sent.span_id(), trace.span_id(), "from a span of its own");
    assert_eq!(seen[1], None, "no trace, no header");
}
