//! A local HTTP server that answers requests with fixed JSON bodies (one per path, and one for
//! every other path) and remembers one header of each request, for checking what a client sends
//! (e.g. `traceparent`).

use std::sync::{Arc, Mutex, PoisonError};

/// The server's address and the header values seen, in arrival order (`None` when absent).
#[derive(Debug, Clone)]
pub struct HeaderCapture {
    pub url: String,
    seen: Arc<Mutex<Vec<Option<String>>>>,
}

impl HeaderCapture {
    /// Serves on a free port until the runtime stops, answering every request with `answer`.
    pub async fn start(header: &'static str, answer: &'static str) -> Self {
        Self::start_with(header, &[], answer).await
    }

    /// Like [`HeaderCapture::start`], with the answers of some paths given (`{url}` in an answer
    /// becomes the server's own URL, as a login's `instance_url` would be).
    pub async fn start_with(
        header: &'static str,
        paths: &[(&'static str, &'static str)],
        answer: &'static str,
    ) -> Self {
        let (listener, url) = crate::bind_local().await;
        let seen: Arc<Mutex<Vec<Option<String>>>> = Arc::default();
        let answers: Arc<Vec<(&'static str, String)>> = Arc::new(
            paths
                .iter()
                .map(|(p, a)| (*p, a.replace("{url}", &url)))
                .collect(),
        );
        let log = seen.clone();
        let app = axum::Router::new().fallback(
            move |uri: axum::http::Uri, headers: axum::http::HeaderMap| {
                let (log, answers) = (log.clone(), answers.clone());
                async move {
                    log.lock().unwrap_or_else(PoisonError::into_inner).push(
                        headers
                            .get(header)
                            .and_then(|v| v.to_str().ok())
                            .map(str::to_owned),
                    );
                    let body = answers
                        .iter()
                        .find(|(p, _)| *p == uri.path())
                        .map_or_else(|| answer.to_owned(), |(_, a)| a.clone());
                    ([("content-type", "application/json")], body)
                }
            },
        );
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
