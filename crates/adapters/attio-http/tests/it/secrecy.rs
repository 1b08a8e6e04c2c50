//! The API token appears in no log line, error message or `Debug` output.

use std::io::Write;
use std::sync::{Arc, Mutex};

use attio_sim::{SimConfig, TokenSpec, TokensFile};
use domain::ids::ObjectRef;
use ports::attio::{AttioRecords, AttioSchema};
use tracing_subscriber::fmt::MakeWriter;

use crate::{client, config, sim};

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Capture {
    type Writer = Capture;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut out = format!("{e} | {e:?}");
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push_str(&format!(" | {s} | {s:?}"));
        cur = s.source();
    }
    out
}

/// One process-wide capturing subscriber: thread-local ones can miss spans when other tests in
/// the same process hit the callsites first.
fn capture() -> Capture {
    static CAPTURE: std::sync::OnceLock<Capture> = std::sync::OnceLock::new();
    CAPTURE
        .get_or_init(|| {
            let capture = Capture::default();
            let subscriber = tracing_subscriber::fmt()
                .with_writer(capture.clone())
                .with_max_level(tracing::Level::TRACE)
                .with_ansi(false)
                .finish();
            tracing::subscriber::set_global_default(subscriber)
                .expect("no other global subscriber in this test binary");
            capture
        })
        .clone()
}

#[tokio::test]
async fn the_token_never_appears_in_logs_errors_or_debug() {
    let secret = "s3cr3tT0k3n".repeat(6) + "abcd"; // 70 chars: wrong length for Attio
    let good = "g00dT0k3n-".repeat(6) + "wxyz"; // 64 chars
    let capture = capture();

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

    let logs = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
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
