use attio_sim::{SimConfig, TokenSpec, TokensFile};
use serde_json::json;

use crate::{Client, sim, token};

fn file_mode() -> SimConfig {
    SimConfig {
        tokens: Some(TokensFile {
            tokens: vec![
                TokenSpec {
                    token: token('a'),
                    workspace: "Acme".into(),
                    scopes: vec![
                        "object_configuration:read".into(),
                        "record_permission:read".into(),
                    ],
                },
                TokenSpec {
                    token: token('b'),
                    workspace: "Acme".into(),
                    scopes: vec![
                        "object_configuration:read".into(),
                        "record_permission:read-write".into(),
                    ],
                },
            ],
        }),
        ..SimConfig::default()
    }
}

#[tokio::test]
async fn self_never_answers_401() {
    let s = sim(file_mode()).await;
    let http = reqwest::Client::new();
    let r = http
        .get(format!("{}/v2/self", s.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400, "no header");
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["code"], "missing_value");
    let (status, body) = Client::new(&s, &token('z')).get("/v2/self").await;
    assert_eq!(
        (status, body),
        (200, json!({"active": false})),
        "a well-formed unknown token"
    );
    let (status, body) = Client::new(&s, &token('a')).get("/v2/self").await;
    assert_eq!(status, 200);
    assert_eq!(body["active"], true);
    assert_eq!(body["sub"], body["workspace_id"]);
    assert_eq!(
        body["scope"],
        "object_configuration:read record_permission:read"
    );
}

#[tokio::test]
async fn unknown_short_and_unscoped_tokens_get_attios_answers() {
    let s = sim(file_mode()).await;
    let (status, body) = Client::new(&s, &token('z')).get("/v2/objects").await;
    assert_eq!(status, 401);
    assert_eq!(
        (body["type"].as_str(), body["code"].as_str()),
        (Some("auth_error"), Some("unauthorized"))
    );
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .starts_with("The API Key provided could not be found.")
    );
    let (status, body) = Client::new(&s, "short").get("/v2/objects").await;
    assert_eq!(status, 401);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("wrong length (API Keys should be 64 characters long)")
    );
    let (status, body) = Client::new(&s, &token('a'))
        .post(
            "/v2/objects/people/records",
            json!({"data": {"values": {}}}),
        )
        .await;
    assert_eq!(status, 403);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .ends_with("This request requires scopes: Read-Write access to the Records scope."),
        "{body}"
    );
    let (status, _) = Client::new(&s, &token('b'))
        .post(
            "/v2/objects/people/records",
            json!({"data": {"values": {}}}),
        )
        .await;
    assert_eq!(status, 200, "read-write covers the write");
}

#[tokio::test]
async fn open_mode_gives_each_token_its_own_workspace() {
    let s = sim(SimConfig::default()).await;
    let (a, b) = (Client::new(&s, &token('a')), Client::new(&s, &token('b')));
    let (_, created) = a
        .post(
            "/v2/objects/companies/records",
            json!({"data": {"values": {"domains": ["acme.com"]}}}),
        )
        .await;
    let id = created["data"]["id"]["record_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        a.get(&format!("/v2/objects/companies/records/{id}"))
            .await
            .0,
        200
    );
    assert_eq!(
        b.get(&format!("/v2/objects/companies/records/{id}"))
            .await
            .0,
        404,
        "another token is another workspace"
    );
    let (wa, wb) = (
        a.get("/v2/self").await.1["workspace_id"].clone(),
        b.get("/v2/self").await.1["workspace_id"].clone(),
    );
    assert_ne!(wa, wb);
}

#[tokio::test]
async fn responses_carry_attios_headers_and_unknown_routes_404() {
    let s = sim(SimConfig::default()).await;
    let r = reqwest::Client::new()
        .get(format!("{}/v2/objects/people/records", s.url()))
        .bearer_auth(token('a'))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(
        r.headers()["content-type"],
        "application/json; charset=utf-8"
    );
    assert!(uuid::Uuid::parse_str(r.headers()["x-attio-execution-id"].to_str().unwrap()).is_ok());
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(
        body["message"],
        "Could not find endpoint \"GET /v2/objects/people/records\"."
    );
}

#[tokio::test]
async fn writes_past_the_budget_get_429_with_an_http_date() {
    let s = sim(SimConfig {
        writes_per_second: 2,
        ..SimConfig::default()
    })
    .await;
    let c = Client::new(&s, &token('a'));
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for i in 0..4 {
        let r = reqwest::Client::new()
            .post(format!("{}/v2/objects/companies/records", s.url()))
            .bearer_auth(token('a'))
            .json(&json!({"data": {"values": {"domains": [format!("d{i}.com")]}}}))
            .send()
            .await
            .unwrap();
        statuses.push(r.status().as_u16());
        if r.status() == 429 {
            retry_after = r
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_owned());
            let body: serde_json::Value = r.json().await.unwrap();
            assert_eq!(body["type"], "rate_limit_error");
            assert_eq!(body["code"], "rate_limit_exceeded");
        }
    }
    assert_eq!(&statuses[..2], &[200, 200]);
    assert!(statuses.contains(&429), "{statuses:?}");
    let at = httpdate_parse(&retry_after.expect("a Retry-After header"));
    assert!(at > std::time::SystemTime::now() - std::time::Duration::from_secs(1));
    // Reads have their own budget.
    assert_eq!(c.get("/v2/objects").await.0, 200);
}

fn httpdate_parse(s: &str) -> std::time::SystemTime {
    // `Tue, 23 May 2023 14:42:01 GMT`
    let f = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    let t = time::PrimitiveDateTime::parse(s, f)
        .unwrap_or_else(|e| panic!("{s:?} is not an HTTP-date: {e}"));
    t.assume_utc().into()
}
