//! A local HTTP server that answers every request with one JSON body and remembers one header of
//! each request, for checking what a client sends (e.g. `traceparent`).

use std::sync::{Arc, Mutex, PoisonError};

/// The server's address and the header values seen, in arrival order (`None` when absent).
#[derive(Debug, Clone)]
pub struct HeaderCapture {
    pub url: String,
    seen: Arc<Mutex<Vec<Option<String>>>>,
}

impl HeaderCapture {
    /// Serves on a free port until the runtime stops.
    pub async fn start(header: &'static str, answer: &'static str) -> Self {
        let seen: Arc<Mutex<Vec<Option<String>>>> = Arc::default();
        let log = seen.clone();
        let app = axum::Router::new().fallback(move |headers: axum::http::HeaderMap| {
            let log = log.clone();
            async move {
                log.lock().unwrap_or_else(PoisonError::into_inner).push(
                    headers
                        .get(header)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned),
                );
                ([("content-type", "application/json")], answer)
            }
        });
        let listener = match tokio::net::TcpListener::bind("127.0.0.1:0").await {
            Ok(l) => l,
            Err(e) => panic!("cannot bind the capture server: {e}"),
        };
        let url = match listener.local_addr() {
            Ok(a) => format!("http://{a}"),
            Err(e) => panic!("no address: {e}"),
        };
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { url, seen }
    }

    /// The header values seen so far.
    pub fn seen(&self) -> Vec<Option<String>> {
        self.seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}
