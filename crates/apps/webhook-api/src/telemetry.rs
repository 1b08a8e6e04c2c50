//! Prometheus metrics: one recorder per process (kept in a `OnceLock`, so several apps in one
//! test binary share it), rendered by `GET /metrics`.
//!
//! - `webhook_deliveries_total{source, outcome}`: `accepted`, `duplicate`, `quarantined`,
//!   `unsigned` (bad or missing signature), `unknown_tenant`, `unknown_system` (a webhook path
//!   naming no plugin that takes webhooks; source `unknown`), `too_large`, `failed`;
//! - `webhook_answer_seconds{source}`: time to answer a delivery (histogram summary);
//! - `queue_jobs{state}`: the queue's depth when scraped (`ready`, `delayed`, `in_flight`, `dead`);
//! - `retention_purged_total{what}`: deliveries forgotten after their retention (ADR 0020).

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// The process's recorder; `None` when another recorder was installed first.
pub fn handle() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new().build_recorder();
            let handle = recorder.handle();
            let installed = metrics::set_global_recorder(recorder).ok().map(|()| handle);
            services::retention::describe_metrics();
            installed
        })
        .as_ref()
}

/// Counts a delivery's outcome.
pub fn delivery(source: &'static str, outcome: &'static str) {
    metrics::counter!("webhook_deliveries_total", "source" => source, "outcome" => outcome)
        .increment(1);
}

/// Records how long answering took.
pub fn answered(source: &'static str, seconds: f64) {
    metrics::histogram!("webhook_answer_seconds", "source" => source).record(seconds);
}
