//! Defects found by a hostile pass (issue 21): each test failed before its fix.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use domain::ids::{InboxId, TenantId};
use domain::job::NewJob;
use ports::error::{PortError, PortResult};
use ports::stores::{Accepted, InboundDelivery, Inbox, StoredDelivery};
use time::OffsetDateTime;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::{SECRET, memory_stores, record_event, settings, spawn_app_with, tenant};

fn logs() -> testkit::logs::LogCapture {
    testkit::logs::capture_logs().expect("no other subscriber in this binary")
}

/// An inbox whose accept fails as PostgreSQL did on a NUL escape, or answers late.
struct BrokenInbox {
    delay: Duration,
}

#[async_trait]
impl Inbox for BrokenInbox {
    async fn accept(
        &self,
        _: &InboundDelivery,
        _: Option<NewJob>,
        _: Duration,
    ) -> PortResult<Accepted> {
        tokio::time::sleep(self.delay).await;
        Err(PortError::backend(
            "PostgreSQL",
            std::io::Error::other("unsupported Unicode escape sequence"),
        ))
    }
    async fn get(&self, _: &TenantId, id: InboxId) -> PortResult<StoredDelivery> {
        Err(PortError::NotFound(id.to_string()))
    }
    async fn quarantined(&self, _: &TenantId, _: usize) -> PortResult<Vec<StoredDelivery>> {
        Ok(Vec::new())
    }
    async fn purge(&self, _: OffsetDateTime, _: usize) -> PortResult<u64> {
        Ok(0)
    }
}

async fn app_with_inbox(delay: Duration, timeout: Duration) -> crate::TestApp {
    let mut stores = memory_stores().await;
    stores.inbox = Arc::new(BrokenInbox { delay });
    stores.tenants.create(&tenant("acme")).await.unwrap();
    let mut s = settings();
    s.request_timeout = timeout;
    spawn_app_with(stores, s, None).await
}

#[tokio::test]
async fn an_intake_failure_logs_its_whole_cause_and_answers_generically() {
    let logs = logs();
    let app = app_with_inbox(Duration::ZERO, Duration::from_secs(4)).await;
    let body = record_event("record.updated", "bf071e1f-6035-429d-b874-d83ea64ea201");
    let (status, answer) = app.post_attio("acme", &body, SECRET, Some("log-1")).await;
    assert_eq!(
        (status, answer.clone()),
        (500, serde_json::json!({"error": "internal error"}))
    );
    assert!(
        logs.text()
            .contains("PostgreSQL failed: unsupported Unicode escape sequence"),
        "the driver's message is in the log line"
    );
}

#[tokio::test]
async fn a_request_not_answered_in_time_gets_a_json_503_and_a_log_line() {
    let logs = logs();
    let app = app_with_inbox(Duration::from_secs(3), Duration::from_millis(200)).await;
    let body = record_event("record.updated", "bf071e1f-6035-429d-b874-d83ea64ea202");
    let (status, answer) = app.post_attio("acme", &body, SECRET, Some("slow-1")).await;
    assert_eq!(status, 503);
    assert_eq!(answer["error"], "not answered in time; retry");
    assert!(logs.text().contains("a request was not answered in time"));
}

#[tokio::test]
async fn a_crm_connection_without_its_webhook_secret_refuses_webhooks_and_says_why() {
    let logs = logs();
    let stores = memory_stores().await;
    let mut t = tenant("nosecret");
    t.crms[0].secrets.clear();
    stores.tenants.create(&t).await.unwrap();
    let app = spawn_app_with(stores, settings(), None).await;
    let r = app
        .http
        .post(format!("{}/v1/webhooks/hubspot/nosecret", app.url))
        .body("[]")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(
        body["error"],
        "the tenant's HubSpot connection takes no webhooks"
    );
    let text = logs.text();
    assert!(
        text.lines().any(|l| l.contains("nosecret")
            && l.contains("client_secret")
            && l.contains("has no webhook secret")),
        "the log names the tenant and the missing secret"
    );
}

/// Serves with short connection limits.
async fn limited_app(max_connections: usize) -> crate::TestApp {
    let stores = memory_stores().await;
    let mut s = settings();
    s.header_read_timeout = Duration::from_millis(300);
    s.idle_timeout = Duration::from_millis(800);
    s.max_connections = max_connections;
    spawn_app_with(stores, s, None).await
}

/// Reads until the server closes the connection (or 5 s pass); returns how long that took.
async fn closed_after(conn: &mut tokio::net::TcpStream) -> Duration {
    let start = Instant::now();
    let mut buf = [0u8; 1024];
    let read_all = async {
        loop {
            match conn.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(5), read_all)
        .await
        .expect("the server closed the connection within 5 s");
    start.elapsed()
}

fn addr(app: &crate::TestApp) -> String {
    app.url.trim_start_matches("http://").to_owned()
}

#[tokio::test]
async fn a_silent_connection_is_closed() {
    let app = limited_app(16).await;
    let mut conn = tokio::net::TcpStream::connect(addr(&app)).await.unwrap();
    closed_after(&mut conn).await;
}

#[tokio::test]
async fn headers_sent_a_line_at_a_time_are_cut_off() {
    let app = limited_app(16).await;
    let mut conn = tokio::net::TcpStream::connect(addr(&app)).await.unwrap();
    conn.write_all(b"POST /v1/webhooks/attio/acme HTTP/1.1\r\nhost: x\r\n")
        .await
        .unwrap();
    let trickle = async {
        for i in 0..40 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if conn
                .write_all(format!("x-slow-{i}: 1\r\n").as_bytes())
                .await
                .is_err()
            {
                return true;
            }
        }
        false
    };
    let cut = tokio::time::timeout(Duration::from_secs(5), trickle)
        .await
        .unwrap();
    assert!(
        cut,
        "the server stopped reading headers sent a line every 100 ms"
    );
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed() {
    let app = limited_app(16).await;
    let mut conn = tokio::net::TcpStream::connect(addr(&app)).await.unwrap();
    conn.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    closed_after(&mut conn).await;
}

#[tokio::test]
async fn held_connections_cannot_starve_the_service_for_longer_than_the_idle_timeout() {
    let app = limited_app(3).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(tokio::net::TcpStream::connect(addr(&app)).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    let health = app.http.get(format!("{}/healthz", app.url)).send();
    tokio::pin!(health);
    assert!(
        tokio::time::timeout(Duration::from_millis(300), &mut health)
            .await
            .is_err(),
        "at most three connections are served at once"
    );
    let r = tokio::time::timeout(Duration::from_secs(5), health)
        .await
        .expect("answered once the silent connections were closed")
        .unwrap();
    assert_eq!(r.status(), 200);
}
