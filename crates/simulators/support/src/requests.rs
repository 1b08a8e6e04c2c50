//! The request log: every request a simulator answered (its method, path, query, status and the
//! start of its body), so a test can count what a client sent — for instance, that no write
//! came back as the echo of a sync's own write. `GET /_sim/requests` reads it (`?method=` and
//! `?path_contains=` narrow it), `DELETE /_sim/requests` empties it. Requests to `/_sim/` are
//! not logged.

use std::sync::{Arc, Mutex, PoisonError};

use axum::Json;
use axum::Router;
use axum::body::{Body, to_bytes};
use axum::extract::{Query, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::{Deserialize, Serialize};

/// How much of a body is kept.
const BODY_KEPT: usize = 16 * 1024;
/// The largest body read for the log (a larger one is passed on unread and logged without it).
const BODY_READ: usize = 4 * 1024 * 1024;
/// The most requests kept; the oldest go first.
const KEPT: usize = 50_000;

/// One request as answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoggedRequest {
    pub method: String,
    pub path: String,
    pub query: String,
    pub status: u16,
    /// The body's first 16 KiB as text (lossy).
    pub body: String,
}

/// The log, shared by the middleware and the route.
#[derive(Debug, Clone, Default)]
pub struct RequestLog(Arc<Mutex<std::collections::VecDeque<LoggedRequest>>>);

impl RequestLog {
    pub fn snapshot(&self) -> Vec<LoggedRequest> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .cloned()
            .collect()
    }

    fn push(&self, r: LoggedRequest) {
        let mut all = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if all.len() >= KEPT {
            all.pop_front();
        }
        all.push_back(r);
    }

    fn clear(&self) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    /// Adds the log's route and middleware to a finished router (state already given).
    pub fn wrap(&self, app: Router) -> Router {
        let route = Router::new()
            .route("/_sim/requests", get(list).delete(clear))
            .with_state(self.clone());
        app.merge(route)
            .layer(axum::middleware::from_fn_with_state(self.clone(), record))
    }
}

async fn record(State(log): State<RequestLog>, req: Request, next: Next) -> Response {
    if req.uri().path().starts_with("/_sim/") {
        return next.run(req).await;
    }
    let (method, path, query) = (
        req.method().to_string(),
        req.uri().path().to_owned(),
        req.uri().query().unwrap_or_default().to_owned(),
    );
    let (parts, body) = req.into_parts();
    let (kept, body) = match to_bytes(body, BODY_READ).await {
        Ok(bytes) => {
            let kept = String::from_utf8_lossy(&bytes[..bytes.len().min(BODY_KEPT)]).into_owned();
            (kept, Body::from(bytes))
        }
        Err(_) => (String::from("(body too large to log)"), Body::empty()),
    };
    let response = next.run(Request::from_parts(parts, body)).await;
    log.push(LoggedRequest {
        method,
        path,
        query,
        status: response.status().as_u16(),
        body: kept,
    });
    response
}

#[derive(Debug, Deserialize)]
struct Filter {
    method: Option<String>,
    path_contains: Option<String>,
}

async fn list(State(log): State<RequestLog>, Query(f): Query<Filter>) -> Response {
    let found: Vec<LoggedRequest> = log
        .snapshot()
        .into_iter()
        .filter(|r| {
            f.method
                .as_ref()
                .is_none_or(|m| r.method.eq_ignore_ascii_case(m))
        })
        .filter(|r| {
            f.path_contains
                .as_ref()
                .is_none_or(|p| r.path.contains(p.as_str()))
        })
        .collect();
    Json(found).into_response()
}

async fn clear(State(log): State<RequestLog>) -> Response {
    log.clear();
    axum::http::StatusCode::NO_CONTENT.into_response()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use axum::routing::post;

    use super::*;

    #[tokio::test]
    async fn requests_are_logged_with_their_bodies_and_can_be_filtered_and_cleared() {
        let app = RequestLog::default().wrap(Router::new().route(
            "/things",
            post(|body: String| async move { body.len().to_string() }),
        ));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        let http = reqwest::Client::new();
        let sent = http
            .post(format!("{url}/things?x=1"))
            .body("hello")
            .send()
            .await
            .unwrap();
        assert_eq!(
            sent.text().await.unwrap(),
            "5",
            "the handler still reads the body"
        );
        http.get(format!("{url}/missing")).send().await.unwrap();
        let all: Vec<LoggedRequest> = http
            .get(format!("{url}/_sim/requests"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(all.len(), 2, "{all:?}");
        assert_eq!(
            all[0],
            LoggedRequest {
                method: "POST".into(),
                path: "/things".into(),
                query: "x=1".into(),
                status: 200,
                body: "hello".into(),
            }
        );
        assert_eq!(all[1].status, 404);
        let posts: Vec<LoggedRequest> = http
            .get(format!(
                "{url}/_sim/requests?method=post&path_contains=thing"
            ))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(posts.len(), 1);
        http.delete(format!("{url}/_sim/requests"))
            .send()
            .await
            .unwrap();
        let none: Vec<LoggedRequest> = http
            .get(format!("{url}/_sim/requests"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(none.is_empty());
    }
}
