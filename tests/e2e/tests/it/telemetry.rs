//! Span export from a real process: what it holds when it stops is sent, under the trace the
//! request came with.

use std::time::Duration;

use tokio::io::AsyncBufReadExt;

use crate::start;

/// Posts a delivery for a tenant that does not exist (answered 404, inside a `webhook` span).
async fn post_unknown(url: &str, traceparent: Option<&str>) -> reqwest::StatusCode {
    let mut request = reqwest::Client::new()
        .post(format!("{url}/v1/webhooks/attio/nobody"))
        .body(r#"{"webhook_id":"w","events":[]}"#);
    if let Some(t) = traceparent {
        request = request.header("traceparent", t);
    }
    request.send().await.unwrap().status()
}

/// The `webhook` span the collector received.
fn webhook_span(collector: &testkit::otlp::Collector) -> testkit::otlp::ReceivedSpan {
    let spans = collector.spans();
    spans
        .iter()
        .find(|s| s.name == "webhook")
        .cloned()
        .unwrap_or_else(|| panic!("no webhook span in {spans:?}"))
}

/// Sends SIGTERM and waits up to 15 s for a clean exit.
async fn terminate(child: &mut tokio::process::Child) {
    let pid = child.id().unwrap().to_string();
    let term = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(term.success());
    let status = tokio::time::timeout(Duration::from_secs(15), child.wait())
        .await
        .expect("webhook-api stops within 15 s of SIGTERM")
        .unwrap();
    assert!(status.success(), "{status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_sends_a_requests_span_under_its_traceparent_when_it_stops() {
    let collector = testkit::otlp::Collector::start().await;
    // A batch delay of ten minutes: only the shutdown can send the span.
    let mut api = start(
        "webhook-api",
        &["--listen", "127.0.0.1:0"],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", collector.url.clone()),
            ("OTEL_BSP_SCHEDULE_DELAY", "600000".to_owned()),
            // Logs at `warn`: the export still takes the `info` spans.
            ("RUST_LOG", "warn".to_owned()),
        ],
        true,
    )
    .await;
    let url = api.url.clone().unwrap();
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let parent = "00f067aa0ba902b7";
    let traceparent = format!("00-{trace}-{parent}-01");
    assert_eq!(
        post_unknown(&url, Some(&traceparent)).await,
        404,
        "an unknown tenant, answered in the span"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        collector.spans().is_empty(),
        "nothing is sent before the batch delay or the shutdown: {:?}",
        collector.spans()
    );

    terminate(&mut api.child).await;

    let hook = webhook_span(&collector);
    assert_eq!(hook.service, "webhook-api");
    assert_eq!(
        hook.attributes.get("source").map(String::as_str),
        Some("attio")
    );
    assert_eq!(
        hook.attributes.get("tenant").map(String::as_str),
        Some("nobody")
    );
    assert_eq!(hook.trace_id, trace);
    assert_eq!(hook.parent_span_id, parent, "a child of the caller's span");
    assert_ne!(hook.span_id, parent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_collector_costs_spans_not_answers_and_is_logged() {
    // A port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let mut child = tokio::process::Command::new(crate::binary("webhook-api"))
        .args(["--listen", "127.0.0.1:0"])
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint)
        .env("OTEL_BSP_SCHEDULE_DELAY", "50")
        .env("RUST_LOG", "warn")
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdout = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let first = tokio::time::timeout(Duration::from_secs(30), stdout.next_line())
        .await
        .expect("webhook-api starts")
        .unwrap()
        .unwrap();
    let url = first.strip_prefix("listening on ").unwrap().to_owned();
    for _ in 0..3 {
        assert_eq!(post_unknown(&url, None).await, 404);
    }
    // The failure is logged once the exporter has given up on its batch.
    let mut stderr = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let logged = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = stderr.next_line().await.unwrap() {
            if line.contains("BatchSpanProcessor.ExportError") {
                return line;
            }
        }
        panic!("webhook-api exited without logging the failed export");
    })
    .await
    .expect("the failed export is logged within 30 s");
    assert!(logged.contains("ERROR"), "{logged}");
    // And it still answers, and stops promptly.
    assert_eq!(post_unknown(&url, None).await, 404);
    terminate(&mut child).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_traces_endpoint_variable_and_a_service_name_from_the_environment_are_honoured() {
    let collector = testkit::otlp::Collector::start().await;
    // The traces-only variable is a full URL, path included (the OpenTelemetry specification).
    let mut api = start(
        "webhook-api",
        &["--listen", "127.0.0.1:0"],
        &[
            (
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                format!("{}/v1/traces", collector.url),
            ),
            ("OTEL_SERVICE_NAME", "intake-eu".to_owned()),
            ("OTEL_BSP_SCHEDULE_DELAY", "600000".to_owned()),
        ],
        true,
    )
    .await;
    let url = api.url.clone().unwrap();
    assert_eq!(post_unknown(&url, None).await, 404);
    terminate(&mut api.child).await;
    let hook = webhook_span(&collector);
    assert_eq!(hook.service, "intake-eu");
}
