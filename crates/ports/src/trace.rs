//! The trace a piece of work runs under, carried by the task rather than by every signature:
//! the worker runs each job in [`in_trace`]; provider clients put [`outgoing`] on their requests
//! as `traceparent`. Tasks spawned inside a job do not inherit it.

use std::future::Future;
use std::sync::OnceLock;

use domain::trace::TraceParent;

/// What a process that exports spans plugs in (`app_common::telemetry`); without it spans stay
/// in the logs and outgoing calls get random span ids.
#[derive(Debug, Clone, Copy)]
pub struct SpanHooks {
    /// Makes the trace the parent of the span in exported telemetry.
    pub adopt: fn(&tracing::Span, TraceParent),
    /// The exported id of the current span, if it has one.
    pub current_span_id: fn() -> Option<[u8; 8]>,
}

static HOOKS: OnceLock<SpanHooks> = OnceLock::new();

/// Installs the process's span hooks; false when some are installed already.
pub fn install(hooks: SpanHooks) -> bool {
    HOOKS.set(hooks).is_ok()
}

/// Makes `trace` the parent of `span` in exported telemetry, so the span joins the delivery's
/// trace; nothing when the process exports no spans.
pub fn adopt(span: &tracing::Span, trace: TraceParent) {
    if let Some(hooks) = HOOKS.get() {
        (hooks.adopt)(span, trace);
    }
}

tokio::task_local! {
    static CURRENT: TraceParent;
}

/// Runs `work` with `trace` as its current trace.
pub async fn in_trace<F: Future>(trace: TraceParent, work: F) -> F::Output {
    CURRENT.scope(trace, work).await
}

/// The current task's trace, if it runs in one.
pub fn current() -> Option<TraceParent> {
    CURRENT.try_with(|t| *t).ok()
}

/// `trace` as called from the current span when spans are exported (so what continues the trace
/// elsewhere, a job say, hangs under that span); `trace` unchanged otherwise.
pub fn from_current_span(trace: TraceParent) -> TraceParent {
    match HOOKS.get().and_then(|h| (h.current_span_id)()) {
        Some(span) => trace.child(span),
        None => trace,
    }
}

/// The `traceparent` value for an outgoing call: the current trace, called from the current
/// span when spans are exported (so the callee's spans hang under it), else from a new span id.
pub fn outgoing() -> Option<String> {
    current().map(|t| {
        let span = HOOKS
            .get()
            .and_then(|h| (h.current_span_id)())
            .unwrap_or_else(|| fastrand::u64(1..).to_be_bytes());
        t.child(span).to_string()
    })
}

/// A new trace (for work that did not arrive with one).
pub fn new_root() -> TraceParent {
    let mut random = [0u8; 24];
    random[..16].copy_from_slice(&fastrand::u128(1..).to_be_bytes());
    random[16..].copy_from_slice(&fastrand::u64(1..).to_be_bytes());
    TraceParent::root(random)
}

tokio::task_local! {
    static CAUSE: &'static str;
}

/// Runs `work` with `cause` as the reason for the provider calls it makes (`attio` delivery,
/// `crm` change, `backfill`, `poll`), so each provider's requests are counted per cause.
pub async fn with_cause<F: Future>(cause: &'static str, work: F) -> F::Output {
    CAUSE.scope(cause, work).await
}

/// The current task's cause; `other` outside [`with_cause`].
pub fn cause() -> &'static str {
    CAUSE.try_with(|c| *c).unwrap_or("other")
}

tokio::task_local! {
    static ORIGIN: std::sync::Arc<str>;
}

/// Runs `work` with `origin` naming what it was started by (`attio delivery, job …, trace …`),
/// for the audit trail of the values it writes.
pub async fn with_origin<F: Future>(origin: std::sync::Arc<str>, work: F) -> F::Output {
    ORIGIN.scope(origin, work).await
}

/// What the current task's work was started by: the text given to [`with_origin`], or the
/// cause (see [`cause`]) outside it.
pub fn origin() -> String {
    ORIGIN
        .try_with(|o| o.to_string())
        .unwrap_or_else(|_| cause().to_owned())
}

/// The provider requests made by one piece of work, counted by provider as they are sent (see
/// [`counting_requests`]); what a tenant's API budget used.
#[derive(Debug, Clone, Default)]
pub struct RequestTally(
    std::sync::Arc<std::sync::Mutex<std::collections::BTreeMap<&'static str, u64>>>,
);

impl RequestTally {
    /// The counts so far by provider name, leaving the tally empty.
    pub fn take(&self) -> Vec<(String, u64)> {
        std::mem::take(
            &mut *self
                .0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
        .into_iter()
        .map(|(p, n)| (p.to_owned(), n))
        .collect()
    }
}

tokio::task_local! {
    static TALLY: RequestTally;
}

/// Runs `work` counting the provider requests it sends into `tally`.
pub async fn counting_requests<F: Future>(tally: RequestTally, work: F) -> F::Output {
    TALLY.scope(tally, work).await
}

/// Counts one request to `provider` in the current task's tally; nothing outside
/// [`counting_requests`].
pub fn count_request(provider: &'static str) {
    let _ = TALLY.try_with(|t| {
        *t.0.lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(provider)
            .or_default() += 1;
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn requests_are_counted_inside_a_tally_only() {
        count_request("outside");
        let tally = RequestTally::default();
        counting_requests(tally.clone(), async {
            count_request("crm-a");
            count_request("attio");
            count_request("crm-a");
        })
        .await;
        assert_eq!(
            tally.take(),
            vec![("attio".to_owned(), 1), ("crm-a".to_owned(), 2)]
        );
        assert!(tally.take().is_empty(), "taking empties the tally");
    }
}
