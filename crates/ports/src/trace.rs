//! The trace a piece of work runs under, carried by the task rather than by every signature:
//! the worker runs each job in [`in_trace`]; provider clients put [`outgoing`] on their requests
//! as `traceparent`. Tasks spawned inside a job do not inherit it.

use std::future::Future;

use domain::trace::TraceParent;

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

/// The `traceparent` value for an outgoing call: the current trace from a new span.
pub fn outgoing() -> Option<String> {
    current().map(|t| t.child(fastrand::u64(1..).to_be_bytes()).to_string())
}

/// A new trace (for work that did not arrive with one).
pub fn new_root() -> TraceParent {
    let mut random = [0u8; 24];
    random[..16].copy_from_slice(&fastrand::u128(1..).to_be_bytes());
    random[16..].copy_from_slice(&fastrand::u64(1..).to_be_bytes());
    TraceParent::root(random)
}
