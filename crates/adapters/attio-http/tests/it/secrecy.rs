//! The API token appears in no log line, error message or `Debug` output.

use attio_sim::{SimConfig, TokenSpec, TokensFile};
use domain::ids::ObjectRef;
use ports::attio::{AttioRecords, AttioSchema};
use testkit::logs::{capture_logs, error_chain as chain};

use crate::{client, config, sim};

#[tokio::test]
async fn the_token_never_appears_in_logs_errors_or_debug() {
    let secret = "s3cr3tT0k3n".repeat(6) + "abcd"; // 70 chars: wrong length for Attio
    let good = "g00dT0k3n-".repeat(6) + "wxyz"; // 64 chars
    let capture = capture_logs().expect("no other global subscriber in this test binary");

    let s = sim(SimConfig {
        tokens: Some(TokensFile {
            tokens: vec![TokenSpec {
                token: good.clone(),
                workspace: "Acme".into(),
                scopes: vec!["object_configuration:read".into()],
            }],
        }),
        ..SimConfig::default()
    })
    .await;
    let mut outputs = Vec::new();
    for token in [&secret, &good] {
        let c = client(config(&s.url(), token));
        outputs.push(format!("{c:?}"));
        outputs.push(format!("{:?}", config(&s.url(), token)));
        let people = ObjectRef::parse("people").unwrap();
        for result in [
            c.list_objects().await.map(|_| ()),
            c.get_record(&people, domain::ids::RecordId::from_uuid(uuid::Uuid::nil()))
                .await
                .map(|_| ()),
        ] {
            if let Err(e) = result {
                outputs.push(chain(&e));
            }
        }
    }
    // A connection that is refused.
    let mut cfg = config("http://127.0.0.1:9", &good);
    cfg.max_retries = 1;
    let err = client(cfg).list_objects().await.unwrap_err();
    outputs.push(chain(&err));

    let logs = capture.text();
    assert!(
        logs.contains("attio.request"),
        "the spans were captured: {logs}"
    );
    assert!(outputs.len() >= 6, "{outputs:?}");
    for token in [&secret, &good] {
        assert!(
            !logs.contains(token.as_str()),
            "a token leaked into the logs"
        );
        for o in &outputs {
            assert!(!o.contains(token.as_str()), "a token leaked into: {o}");
        }
    }
}
