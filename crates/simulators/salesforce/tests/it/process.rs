//! The binary: `--listen` prints its address first, and refuses bad faults.

use tokio::io::AsyncBufReadExt;

#[tokio::test]
async fn the_binary_prints_its_address_first_and_serves_oauth() {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_salesforce-sim"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--client-id",
            "ck",
            "--client-secret",
            "cs",
        ])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let first = lines.next_line().await.unwrap().unwrap();
    let url = first.strip_prefix("listening on ").unwrap().to_owned();
    assert!(url.starts_with("http://127.0.0.1:"), "{first}");
    let http = reqwest::Client::new();
    let ok = http
        .post(format!("{url}/services/oauth2/token"))
        .basic_auth("ck", Some("cs"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let body: serde_json::Value = ok.json().await.unwrap();
    assert_eq!(body["instance_url"], url.as_str());
    assert!(body.get("refresh_token").is_none());
    child.kill().await.unwrap();
}

#[tokio::test]
async fn the_binary_refuses_faults_out_of_range() {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_salesforce-sim"))
        .args(["--faults", r#"{"lock_rate": 2}"#])
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("lock_rate"));
}
