//! The access token appears in no log line, error message or `Debug` output.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use adapter_hubspot::{HubSpotClient, HubSpotConfig};
use adapter_memory::MemoryRateLimiter;
use domain::field::FieldValue;
use domain::ids::{ExternalId, TenantId};
use domain::mapping::ExternalProperty;
use domain::tenant::Secret;
use ports::crm::{ExternalCrm, ExternalUpsert};
use testkit::logs::{capture_logs, error_chain};

const TOKEN: &str = "pat-na1-0f1e2d3c-SECRET-4b5a-6978";

fn client(base_url: &str) -> HubSpotClient {
    let mut cfg = HubSpotConfig::new(
        base_url,
        Secret::new(TOKEN).unwrap(),
        TenantId::parse("acme").unwrap(),
    )
    .unwrap();
    cfg.max_retries = 2;
    cfg.backoff_base = Duration::from_millis(5);
    HubSpotClient::new(cfg, Arc::new(MemoryRateLimiter::default())).unwrap()
}

#[tokio::test]
async fn the_token_never_appears_in_logs_errors_or_debug() {
    let capture = capture_logs().expect("no other global subscriber in this test binary");
    let s = hubspot_sim::start(
        "127.0.0.1:0".parse().unwrap(),
        hubspot_sim::HubSpotConfig::default(),
    )
    .await
    .unwrap();
    let c = client(&s.url());
    let prop = |p: &str| ExternalProperty::parse(p).unwrap();
    let mut outputs = vec![format!("{c:?}")];
    let bad = ExternalUpsert {
        key: "k".into(),
        properties: BTreeMap::from([(prop("no_such_property"), FieldValue::text("x"))]),
    };
    let missing = ExternalId::parse("424242").unwrap();
    let mut errors = vec![
        c.get("contacts", &missing, &[prop("email")])
            .await
            .map(|_| ())
            .unwrap_err(),
    ];
    match c
        .upsert_batch("contacts", &prop("attio_record_id"), &[bad])
        .await
    {
        Err(e) => errors.push(e),
        Ok(outcomes) => outputs.push(format!("{outcomes:?}")),
    }
    s.sim.set_faults(hubspot_sim::Faults {
        error_rate: 1.0,
        ..Default::default()
    });
    errors.push(
        c.get("contacts", &missing, &[])
            .await
            .map(|_| ())
            .unwrap_err(),
    );
    errors.push(
        client("http://127.0.0.1:9")
            .get("contacts", &missing, &[])
            .await
            .map(|_| ())
            .unwrap_err(),
    );
    outputs.extend(errors.iter().map(|e| error_chain(e)));

    let logs = capture.text();
    assert!(
        logs.contains("hubspot.request"),
        "the spans were captured: {logs}"
    );
    assert!(
        logs.contains("retrying HubSpot request"),
        "retries were logged: {logs}"
    );
    assert!(!logs.contains(TOKEN), "the token leaked into the logs");
    assert!(
        !logs.contains("SECRET"),
        "part of the token leaked into the logs"
    );
    assert!(outputs.len() >= 5, "{outputs:?}");
    for o in &outputs {
        assert!(!o.contains("SECRET"), "the token leaked into: {o}");
    }
}
