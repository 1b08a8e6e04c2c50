//! Logs, and spans exported over OTLP when the standard OpenTelemetry variables ask for it.
//!
//! Logs go to stderr, filtered by `RUST_LOG`. When `OTEL_EXPORTER_OTLP_ENDPOINT` (or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set, the same spans are also sent to that collector
//! over OTLP/HTTP (protobuf), in batches from a thread of the exporter's own; the exporter reads
//! the other standard variables itself (`OTEL_EXPORTER_OTLP_HEADERS`, `…_TIMEOUT`,
//! `OTEL_BSP_SCHEDULE_DELAY`, `OTEL_SERVICE_NAME`, …). Spans that carry a delivery's trace are
//! tied to it through [`ports::trace::adopt`] and outgoing `traceparent` headers name the calling
//! span (`ports::trace::outgoing`), so a collector shows the webhook request, the job
//! and its provider calls under the trace id the logs and the `traceparent` headers carry.

use domain::trace::TraceParent;
use opentelemetry::trace::{
    SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState, TracerProvider as _,
};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::{Layer as _, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;

/// Why telemetry could not start.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The OTLP exporter refused its configuration (an endpoint that is not a URL, say).
    #[error("cannot export spans over OTLP")]
    Exporter(#[source] opentelemetry_otlp::ExporterBuildError),
}

/// The variables that turn span export on (the OpenTelemetry specification's names).
const ENDPOINT_VARS: [&str; 2] = [
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
];

/// What [`init`] started; [`Telemetry::shutdown`] sends the spans still buffered.
#[derive(Debug)]
#[must_use = "call shutdown() before the process exits, or buffered spans are lost"]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Sends the buffered spans and stops the exporter (on a blocking thread: the exporter's HTTP
    /// client blocks). Export errors are logged, not returned: the process is stopping anyway.
    pub async fn shutdown(self) {
        if let Some(provider) = self.provider {
            let done = tokio::task::spawn_blocking(move || provider.shutdown()).await;
            match done {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::warn!(error = %ports::Chain(&e), "could not send the last spans")
                }
                Err(e) => {
                    tracing::warn!(error = %ports::Chain(&e), "the span exporter's shutdown panicked")
                }
            }
        }
    }
}

/// Logs to stderr (filtered by `RUST_LOG`, default `default_filter`) and, when an OTLP endpoint
/// is configured, exports the spans of level `info` and up as `service` (unless
/// `OTEL_SERVICE_NAME` names it). Only the first call in a process installs anything.
pub fn init(service: &'static str, default_filter: &str) -> Result<Telemetry, TelemetryError> {
    // `RUST_LOG` filters the logs only: spans are exported from `info` up whatever it says.
    let fmt = logs(default_filter);
    let configured = ENDPOINT_VARS
        .iter()
        .any(|v| std::env::var_os(v).is_some_and(|s| !s.is_empty()));
    if !configured {
        let _ = tracing_subscriber::registry().with(fmt).try_init();
        return Ok(Telemetry { provider: None });
    }
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .build()
        .map_err(TelemetryError::Exporter)?;
    let mut resource = Resource::builder();
    if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
        resource = resource.with_service_name(service);
    }
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource.build())
        .build();
    let tracer = provider.tracer(service);
    let installed = tracing_subscriber::registry()
        .with(fmt)
        .with(
            tracing_opentelemetry::layer()
                .with_tracer(tracer)
                .with_filter(LevelFilter::INFO),
        )
        .try_init()
        .is_ok();
    if !installed {
        // Another subscriber was installed first: nothing would reach this exporter.
        return Ok(Telemetry { provider: None });
    }
    ports::trace::install(ports::trace::SpanHooks {
        adopt,
        current_span_id,
    });
    Ok(Telemetry {
        provider: Some(provider),
    })
}

/// Logs only, for a process that exports no spans (the CLI): stderr, filtered by `RUST_LOG`
/// (default `default_filter`). Only the first call in a process installs anything.
pub fn init_logs(default_filter: &str) {
    let _ = tracing_subscriber::registry()
        .with(logs(default_filter))
        .try_init();
}

/// The log layer: stderr, filtered by `RUST_LOG` (default `default_filter`), coloured only when
/// stderr is a terminal (a file or a collector gets plain text).
fn logs<S>(default_filter: &str) -> impl tracing_subscriber::Layer<S>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_filter(filter)
}

/// The OpenTelemetry context of a trace that arrived from elsewhere (remote).
fn remote(trace: TraceParent) -> opentelemetry::Context {
    let flags = if trace.sampled() {
        TraceFlags::SAMPLED
    } else {
        TraceFlags::default()
    };
    let context = SpanContext::new(
        TraceId::from_bytes(trace.trace_id_bytes()),
        SpanId::from_bytes(trace.span_id_bytes()),
        flags,
        true,
        TraceState::default(),
    );
    opentelemetry::Context::new().with_remote_span_context(context)
}

fn current_span_id() -> Option<[u8; 8]> {
    let cx = tracing::Span::current().context();
    let span = cx.span();
    let sc = span.span_context();
    (sc.is_valid() && !sc.is_remote()).then(|| sc.span_id().to_bytes())
}

fn adopt(span: &tracing::Span, trace: TraceParent) {
    // A span the filter disabled has nothing to export.
    let _ = span.set_parent(remote(trace));
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing::Instrument;

    #[test]
    fn an_outgoing_call_names_the_exported_span_it_is_made_from() {
        let provider = SdkTracerProvider::builder().build();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
        // This test binary's only installation (a `OnceLock`).
        assert!(ports::trace::install(ports::trace::SpanHooks {
            adopt,
            current_span_id,
        }));
        let header = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let trace = TraceParent::parse(header).unwrap_or_else(|e| panic!("{e}"));
        tracing::subscriber::with_default(subscriber, || {
            assert_eq!(current_span_id(), None, "outside any span");
            let job = tracing::info_span!("job");
            ports::trace::adopt(&job, trace);
            let request = job.in_scope(|| tracing::info_span!("hubspot.request"));
            let (job_cx, request_cx) = (job.context(), request.context());
            let (job_sc, request_sc) = (
                job_cx.span().span_context().clone(),
                request_cx.span().span_context().clone(),
            );
            assert_eq!(job_sc.trace_id().to_string(), trace.trace_id(), "adopted");
            assert_eq!(request_sc.trace_id(), job_sc.trace_id());
            let runtime = tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap_or_else(|e| panic!("{e}"));
            let sent = runtime.block_on(ports::trace::in_trace(
                trace,
                async { ports::trace::outgoing() }.instrument(request.clone()),
            ));
            assert_eq!(
                sent.as_deref(),
                Some(format!("00-{}-{}-01", trace.trace_id(), request_sc.span_id()).as_str()),
                "the callee's parent is the request span"
            );
            let from_job = job.in_scope(|| ports::trace::from_current_span(trace));
            assert_eq!(from_job.span_id(), job_sc.span_id().to_string());
        });
    }

    #[test]
    fn a_remote_parent_keeps_the_trace_the_span_and_the_sampled_flag() {
        for (header, sampled) in [
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                true,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
                false,
            ),
        ] {
            let trace = TraceParent::parse(header).unwrap_or_else(|e| panic!("{e}"));
            let cx = remote(trace);
            let span = cx.span();
            let sc = span.span_context();
            assert!(sc.is_valid() && sc.is_remote());
            assert_eq!(
                sc.trace_id().to_string(),
                "4bf92f3577b34da6a3ce929d0e0e4736"
            );
            assert_eq!(sc.span_id().to_string(), "00f067aa0ba902b7");
            assert_eq!(sc.is_sampled(), sampled, "{header}");
        }
    }
}
