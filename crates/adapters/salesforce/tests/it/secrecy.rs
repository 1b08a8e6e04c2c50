//! The client secret, the private key and access tokens appear in no log line, error message or
//! `Debug` output.

use std::collections::BTreeMap;

use adapter_salesforce::SalesforceAuth;
use domain::field::FieldValue;
use domain::mapping::ExternalProperty;
use domain::tenant::Secret;
use ports::crm::{ExternalCrm, ExternalUpsert};
use testkit::logs::{capture_logs, error_chain};

use crate::{CLIENT_SECRET, cc, client, client_with, sim_config, start};

#[tokio::test]
async fn secrets_and_tokens_never_appear_in_logs_errors_or_debug() {
    let capture = capture_logs().expect("no other global subscriber in this test binary");
    let s = start(sim_config()).await;
    let c = client(&s.url());
    let prop = |p: &str| ExternalProperty::parse(p).unwrap();
    let rec = ExternalUpsert {
        key: "k".into(),
        properties: BTreeMap::from([(prop("LastName"), FieldValue::text("x"))]),
    };
    c.upsert_batch("Contact", &prop("Attio_Id__c"), std::slice::from_ref(&rec))
        .await
        .unwrap();
    s.sim.expire_tokens();
    c.upsert_batch("Contact", &prop("Attio_Id__c"), &[rec])
        .await
        .unwrap();
    let mut outputs = vec![format!("{c:?}")];
    let jwt = client_with(
        &s.url(),
        SalesforceAuth::JwtBearer {
            client_id: "ck-attio-sync".into(),
            username: "u@x".into(),
            private_key_pem: Secret::new(testkit::jwt::TEST_PRIVATE_KEY_PEM).unwrap(),
            audience: "https://login.salesforce.com".into(),
        },
        |_| {},
    );
    outputs.push(format!("{jwt:?}"));
    let mut errors = vec![
        client_with(&s.url(), cc("wrong-SECRET"), |_| {})
            .query("SELECT Id FROM Contact", false, None)
            .await
            .unwrap_err(),
        c.query("SELECT Nope FROM Contact", false, None)
            .await
            .unwrap_err(),
    ];
    s.sim.set_faults(salesforce_sim::Faults {
        error_rate: 1.0,
        ..Default::default()
    });
    errors.push(
        c.query("SELECT Id FROM Contact", false, None)
            .await
            .unwrap_err(),
    );
    errors.push(
        client("http://127.0.0.1:9")
            .query("SELECT Id FROM Contact", false, None)
            .await
            .unwrap_err(),
    );
    outputs.extend(errors.iter().map(|e| error_chain(e)));

    let logs = capture.text();
    assert!(
        logs.contains("salesforce.request"),
        "the spans were captured: {logs}"
    );
    assert!(
        logs.contains("retrying Salesforce request"),
        "retries were logged: {logs}"
    );
    // Every token the simulator issued starts with the org id.
    for needle in [CLIENT_SECRET, "SECRET", "PRIVATE KEY", "00D5g000004SIMORG!"] {
        assert!(!logs.contains(needle), "{needle} leaked into the logs");
        for o in &outputs {
            assert!(!o.contains(needle), "{needle} leaked into: {o}");
        }
    }
}
