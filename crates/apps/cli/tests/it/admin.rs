//! The operator's commands against a running service (webhook-api on the memory store, port 0):
//! every subcommand, its table and its `--json`, and the exit codes of bad input.

use serde_json::Value;

const TOKEN: &str = "cli-admin-token-0123456789abcdef0123456789";

/// Serves webhook-api with the admin API on a free port; its URL.
async fn service() -> String {
    let settings = webhook_api::RawConfig {
        admin_token: Some(TOKEN.into()),
        debounce_ms: 0,
        ..Default::default()
    }
    .validate()
    .unwrap();
    let stores = app_common::open_stores(&settings.store, &settings.queue)
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let state = webhook_api::AppState::new(&stores, settings);
    tokio::spawn(webhook_api::serve(listener, state, std::future::pending()));
    url
}

/// Runs the CLI; (exit code, stdout, stderr).
async fn cli(url: &str, token: Option<&str>, args: &[&str]) -> (i32, String, String) {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_attio-sync"));
    cmd.args(args)
        .env("ATTIO_SYNC_URL", url)
        .env_remove("ATTIO_SYNC_ADMIN_TOKEN");
    if let Some(t) = token {
        cmd.env("ATTIO_SYNC_ADMIN_TOKEN", t);
    }
    let out = cmd.output().await.unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn json(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_command_answers_in_tables_and_json_with_documented_exit_codes() {
    let url = service().await;
    let run = |args: &'static [&'static str]| {
        let url = url.clone();
        async move { cli(&url, Some(TOKEN), args).await }
    };
    let dir = std::env::temp_dir().join(format!("cli-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("tenant.json");
    std::fs::write(
        &file,
        r#"{"id": "acme", "name": "Acme", "attio": {"api_token": "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"},
            "crms": [{"system": "hubspot", "secrets": {"token": "pat-secret-value"}}]}"#,
    )
    .unwrap();
    let file = file.to_string_lossy().into_owned();

    let (code, out, err) = cli(&url, Some(TOKEN), &["tenant", "add", &file]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("acme") && !out.contains("pat-secret-value"),
        "{out}"
    );

    let (code, out, _) = run(&["tenant", "list"]).await;
    assert_eq!(code, 0);
    assert!(
        out.contains("acme") && out.contains("created_at"),
        "a table: {out}"
    );
    let (_, out, _) = run(&["--json", "tenant", "list"]).await;
    assert_eq!(json(&out).as_array().map(Vec::len), Some(1));
    let (_, out, _) = run(&["tenant", "show", "acme", "--json"]).await;
    assert_eq!(json(&out)["id"], "acme");

    let (code, _, err) = run(&["tenant", "rotate-secret", "acme"]).await;
    assert_eq!(code, 1, "this service registers no webhooks: {err}");
    assert!(err.contains("registration is not configured"), "{err}");

    let (code, out, _) = run(&["tenant", "keys", "add", "acme", "--json"]).await;
    assert_eq!(code, 0);
    assert!(
        json(&out)["api_key"]
            .as_str()
            .is_some_and(|k| !k.is_empty())
    );
    assert_eq!(run(&["tenant", "keys", "revoke", "acme"]).await.0, 0);

    let (code, out, _) = run(&["dlq", "list", "acme", "--json"]).await;
    assert_eq!((code, json(&out)), (0, Value::Array(Vec::new())));
    let (code, _, err) = run(&[
        "dlq",
        "replay",
        "acme",
        "bf071e1f-6035-429d-b874-d83ea64ea13b",
    ])
    .await;
    assert_eq!(
        code, 1,
        "a dead letter that does not exist is refused: {err}"
    );
    assert_eq!(run(&["quarantine", "list", "acme"]).await.0, 0);

    let (code, out, err) = run(&[
        "backfill", "start", "acme", "--object", "people", "--system", "hubspot",
    ])
    .await;
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(run(&["backfill", "status", "acme"]).await.0, 0);
    let (code, _, err) = run(&[
        "backfill",
        "start",
        "acme",
        "--object",
        "people",
        "--system",
        "pipedrive",
    ])
    .await;
    assert_eq!(code, 1);
    assert!(err.contains("unknown CRM system"), "{err}");

    let (code, out, _) = run(&["status", "--json"]).await;
    assert_eq!(code, 0);
    assert!(json(&out)["ready"].as_u64().is_some(), "{out}");

    let (code, out, _) = run(&["tenant", "remove", "acme", "--json"]).await;
    assert_eq!(code, 0);
    assert_eq!(json(&out)["deleted"], "acme");
    assert_eq!(run(&["tenant", "show", "acme"]).await.0, 1);

    // Bad input, each with its exit code and a message naming the cause.
    let (code, _, err) = cli(&url, Some("wrong-token"), &["tenant", "list"]).await;
    assert_eq!(code, 1);
    assert!(err.contains("admin token is wrong"), "{err}");
    let (code, _, err) = cli(&url, None, &["tenant", "list"]).await;
    assert_eq!(code, 2);
    assert!(err.contains("ATTIO_SYNC_ADMIN_TOKEN"), "{err}");
    let (code, _, err) = cli(&url, Some(TOKEN), &["tenant", "add", "/no/such/file.json"]).await;
    assert_eq!(code, 2);
    assert!(err.contains("cannot read /no/such/file.json"), "{err}");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (code, _, err) = cli(
        &format!("http://127.0.0.1:{port}"),
        Some(TOKEN),
        &["status"],
    )
    .await;
    assert_eq!(code, 3);
    assert!(err.contains("cannot reach the service"), "{err}");
    let (code, _, _) = cli(&url, Some(TOKEN), &["tenant", "frobnicate"]).await;
    assert_eq!(code, 2, "a command line clap refuses");
    let _ = std::fs::remove_dir_all(&dir);
}
