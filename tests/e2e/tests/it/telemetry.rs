//! Span export from a real process: what it holds when it stops is sent, under the trace the
//! request came with.

use std::time::Duration;

use crate::start;

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
    let answer = reqwest::Client::new()
        .post(format!("{url}/v1/webhooks/attio/nobody"))
        .header("traceparent", format!("00-{trace}-{parent}-01"))
        .body(r#"{"webhook_id":"w","events":[]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(
        answer.status(),
        404,
        "an unknown tenant, answered in the span"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        collector.spans().is_empty(),
        "nothing is sent before the batch delay or the shutdown: {:?}",
        collector.spans()
    );

    let pid = api.child.id().unwrap().to_string();
    let term = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(term.success());
    let status = tokio::time::timeout(Duration::from_secs(15), api.child.wait())
        .await
        .expect("webhook-api stops within 15 s of SIGTERM")
        .unwrap();
    assert!(status.success(), "{status:?}");

    let spans = collector.spans();
    let hook = spans
        .iter()
        .find(|s| s.name == "webhook")
        .unwrap_or_else(|| panic!("no webhook span in {spans:?}"));
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
