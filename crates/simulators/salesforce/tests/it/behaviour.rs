//! The documented behaviour, call by call (shared/reference/salesforce.md's checklist).

use std::time::Duration;

use reqwest::Method;
use salesforce_sim::{Faults, SalesforceConfig};
use serde_json::{Value, json};

use crate::{Client, V, sim};

fn jwt(key_pem: &str, iss: &str, aud: &str, exp_in: i64) -> String {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256),
        &json!({"iss": iss, "sub": "integration@acme.example", "aud": aud, "exp": now + exp_in}),
        &jsonwebtoken::EncodingKey::from_rsa_pem(key_pem.as_bytes()).unwrap(),
    )
    .unwrap()
}

#[tokio::test]
async fn oauth_flows_issue_tokens_and_refuse_bad_credentials() {
    let mut config = SalesforceConfig::default();
    config.app.jwt_public_key_pem = Some(testkit::jwt::TEST_PUBLIC_KEY_PEM.into());
    let s = sim(config).await;
    let http = reqwest::Client::new();
    let token_url = format!("{}/services/oauth2/token", s.url());
    let post = |form: Vec<(&'static str, String)>| {
        let http = http.clone();
        let url = token_url.clone();
        async move {
            let r = http.post(url).form(&form).send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let cc = |secret: &str| {
        vec![
            ("grant_type", "client_credentials".to_owned()),
            ("client_id", "sim-consumer-key".to_owned()),
            ("client_secret", secret.to_owned()),
        ]
    };
    let (status, ok) = post(cc("sim-consumer-secret")).await;
    assert_eq!(status, 200, "{ok}");
    assert_eq!(ok["token_type"], "Bearer");
    assert!(
        ok["id"]
            .as_str()
            .unwrap()
            .ends_with("/00D5g000004SIMORG/0055g00000SIMUSER")
    );
    let (status, bad) = post(cc("wrong")).await;
    assert_eq!(
        (status, bad["error"].as_str()),
        (400, Some("invalid_client"))
    );

    let key = testkit::jwt::TEST_PRIVATE_KEY_PEM;
    let bearer = |assertion: String| {
        vec![
            (
                "grant_type",
                "urn:ietf:params:oauth:grant-type:jwt-bearer".to_owned(),
            ),
            ("assertion", assertion),
        ]
    };
    let (status, ok) = post(bearer(jwt(
        key,
        "sim-consumer-key",
        "https://login.salesforce.com",
        180,
    )))
    .await;
    assert_eq!(status, 200, "{ok}");
    assert_eq!(ok["scope"], "api");
    for (assertion, why) in [
        (
            jwt(
                key,
                "sim-consumer-key",
                "https://login.salesforce.com",
                -120,
            ),
            "expired",
        ),
        (
            jwt(key, "someone-else", "https://login.salesforce.com", 180),
            "wrong issuer",
        ),
        (
            jwt(key, "sim-consumer-key", "https://example.com", 180),
            "wrong audience",
        ),
        ("not.a.jwt".to_owned(), "garbage"),
    ] {
        let (status, body) = post(bearer(assertion)).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_grant")),
            "{why}: {body}"
        );
    }
    let (status, body) = post(vec![("grant_type", "password".to_owned())]).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("unsupported_grant_type"))
    );
}

#[tokio::test]
async fn expired_revoked_and_unknown_tokens_get_invalid_session_id() {
    let s = sim(SalesforceConfig::default()).await;
    let c = Client::login(&s).await;
    assert_eq!(
        c.call(Method::GET, &format!("{V}/limits"), None)
            .await
            .status,
        200
    );
    s.sim.expire_tokens();
    let r = c.call(Method::GET, &format!("{V}/limits"), None).await;
    assert_eq!(r.status, 401);
    assert_eq!(
        r.body,
        json!([{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID", "fields": []}])
    );

    let c = Client::login(&s).await;
    let revoke = c
        .http
        .post(format!("{}/services/oauth2/revoke", c.base))
        .form(&[("token", c.token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(revoke.status(), 200);
    assert_eq!(
        c.call(Method::GET, &format!("{V}/limits"), None)
            .await
            .status,
        401
    );
}

#[tokio::test]
async fn single_records_follow_the_documented_statuses() {
    let s = sim(SalesforceConfig::default()).await;
    let c = Client::login(&s).await;
    let created = c
        .call(
            Method::POST,
            &format!("{V}/sobjects/Contact/"),
            Some(json!({"LastName": "Lovelace", "Email": "ada@x.com"})),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let id = created.body["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("003") && id.len() == 18);
    assert!(
        created.headers["sforce-limit-info"]
            .to_str()
            .unwrap()
            .starts_with("api-usage=")
    );

    let read = c
        .call(
            Method::GET,
            &format!("{V}/sobjects/Contact/{id}?fields=Email"),
            None,
        )
        .await;
    assert_eq!(read.body["attributes"]["type"], "Contact");
    assert_eq!(read.body["Email"], "ada@x.com");

    let with_id = c
        .call(
            Method::POST,
            &format!("{V}/sobjects/Contact/"),
            Some(json!({"Id": id, "LastName": "X"})),
        )
        .await;
    assert_eq!(
        (with_id.status, with_id.body[0]["errorCode"].as_str()),
        (400, Some("INVALID_FIELD"))
    );
    let missing = c
        .call(
            Method::POST,
            &format!("{V}/sobjects/Contact/"),
            Some(json!({"FirstName": "X"})),
        )
        .await;
    assert_eq!(missing.body[0]["errorCode"], "REQUIRED_FIELD_MISSING");
    assert_eq!(missing.body[0]["fields"], json!(["LastName"]));
    let unknown = c
        .call(
            Method::POST,
            &format!("{V}/sobjects/Contact/"),
            Some(json!({"LastName": "X", "Nope__c": 1})),
        )
        .await;
    assert_eq!(unknown.body[0]["errorCode"], "INVALID_FIELD");

    let patched = c
        .call(
            Method::PATCH,
            &format!("{V}/sobjects/Contact/{id}"),
            Some(json!({"Title": "Countess"})),
        )
        .await;
    assert_eq!((patched.status, &patched.body), (204, &Value::Null));
    let via_post = c
        .call(
            Method::POST,
            &format!("{V}/sobjects/Contact/{id}?_HttpMethod=PATCH"),
            Some(json!({"Title": "Analyst"})),
        )
        .await;
    assert_eq!(via_post.status, 204);

    let malformed = c
        .call(Method::GET, &format!("{V}/sobjects/Contact/001abc"), None)
        .await;
    assert_eq!(
        (malformed.status, malformed.body[0]["errorCode"].as_str()),
        (400, Some("MALFORMED_ID"))
    );
    assert_eq!(malformed.body[0]["fields"], json!(["Id"]));
    let unknown_id = format!("{}zzz", &id[..12]);
    let patch_missing = c
        .call(
            Method::PATCH,
            &format!("{V}/sobjects/Contact/{}", &unknown_id[..15]),
            Some(json!({"Title": "x"})),
        )
        .await;
    assert_eq!(patch_missing.status, 404, "PATCH never upserts");

    assert_eq!(
        c.call(Method::DELETE, &format!("{V}/sobjects/Contact/{id}"), None)
            .await
            .status,
        204
    );
    let gone = c
        .call(Method::GET, &format!("{V}/sobjects/Contact/{id}"), None)
        .await;
    assert_eq!(gone.status, 404);
    assert_eq!(
        gone.body,
        json!([{"message": "entity is deleted", "errorCode": "ENTITY_IS_DELETED", "fields": []}])
    );
}

#[tokio::test]
async fn upsert_by_external_id_answers_by_version_and_match_count() {
    let mut config = SalesforceConfig::default();
    config.external_ids.push(("Legacy_Id__c".into(), false));
    let s = sim(config).await;
    let c = Client::login(&s).await;
    let url = format!("{V}/sobjects/Account/Attio_Id__c/r-1");
    let first = c
        .call(Method::PATCH, &url, Some(json!({"Name": "Acme"})))
        .await;
    assert_eq!(first.status, 201);
    assert_eq!(first.body["created"], true);
    let second = c
        .call(Method::PATCH, &url, Some(json!({"Name": "Acme Corp"})))
        .await;
    assert_eq!(
        (second.status, &second.body["created"]),
        (200, &json!(false))
    );
    assert_eq!(second.body["id"], first.body["id"]);
    let old = c
        .call(
            Method::PATCH,
            "/services/data/v45.0/sobjects/Account/Attio_Id__c/r-1",
            Some(json!({"Name": "Acme"})),
        )
        .await;
    assert_eq!((old.status, &old.body), (204, &Value::Null));

    let not_external = c
        .call(
            Method::PATCH,
            &format!("{V}/sobjects/Account/Name/Acme"),
            Some(json!({})),
        )
        .await;
    assert_eq!(
        (
            not_external.status,
            not_external.body[0]["errorCode"].as_str()
        ),
        (404, Some("NOT_FOUND"))
    );
    let update_only = c
        .call(
            Method::PATCH,
            &format!("{V}/sobjects/Account/Attio_Id__c/r-new?updateOnly=true"),
            Some(json!({"Name": "X"})),
        )
        .await;
    assert_eq!(update_only.status, 404);

    // A non-unique external id held by two records → 300 with both URLs.
    for key in ["a", "b"] {
        let r = c
            .call(
                Method::PATCH,
                &format!("{V}/sobjects/Account/Attio_Id__c/{key}"),
                Some(json!({"Name": key, "Legacy_Id__c": "L1"})),
            )
            .await;
        assert_eq!(r.status, 201);
    }
    let many = c
        .call(
            Method::PATCH,
            &format!("{V}/sobjects/Account/Legacy_Id__c/L1"),
            Some(json!({"Name": "Z"})),
        )
        .await;
    assert_eq!(many.status, 300);
    assert_eq!(many.body.as_array().unwrap().len(), 2);
    // A unique one cannot be taken by another record.
    let dup = c
        .call(
            Method::PATCH,
            &format!("{V}/sobjects/Account/Legacy_Id__c/L9"),
            Some(json!({"Name": "Q", "Attio_Id__c": "a"})),
        )
        .await;
    assert_eq!(dup.status, 400);
    assert!(
        dup.body[0]["message"].as_str().unwrap().starts_with(
            "duplicate value found: Attio_Id__c duplicates value on record with id: 001"
        )
    );
}

fn contact(key: &str, last: Option<&str>) -> Value {
    let mut r = json!({"attributes": {"type": "Contact"}, "Attio_Id__c": key, "Email": format!("{key}@x.com")});
    if let Some(l) = last {
        r["LastName"] = json!(l);
    }
    r
}

#[tokio::test]
async fn collections_report_per_item_results_and_roll_back_all_or_none() {
    let s = sim(SalesforceConfig::default()).await;
    let c = Client::login(&s).await;
    let url = format!("{V}/composite/sobjects/Contact/Attio_Id__c");
    let r = c
        .call(Method::PATCH, &url, Some(json!({"allOrNone": false, "records": [contact("k1", Some("One")), contact("k2", None), contact("k3", Some("Three"))]})))
        .await;
    assert_eq!(r.status, 200, "well-formed collections always answer 200");
    let items = r.body.as_array().unwrap();
    assert_eq!(items[0]["created"], true);
    assert_eq!(items[1]["success"], false);
    assert_eq!(
        items[1]["errors"][0]["statusCode"],
        "REQUIRED_FIELD_MISSING"
    );
    assert!(items[1]["errors"][0].get("errorCode").is_none());
    assert_eq!(items[2]["success"], true);

    let rolled = c
        .call(Method::PATCH, &url, Some(json!({"allOrNone": true, "records": [contact("k4", Some("Four")), contact("k5", None)]})))
        .await;
    let items = rolled.body.as_array().unwrap();
    assert_eq!(
        items[0]["errors"][0]["statusCode"],
        "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    );
    let k4 = c
        .call(
            Method::GET,
            &format!("{V}/sobjects/Contact/Attio_Id__c/k4"),
            None,
        )
        .await;
    assert_eq!(k4.status, 404, "the healthy record was rolled back");

    let dup = c
        .call(
            Method::PATCH,
            &url,
            Some(json!({"records": [contact("k6", Some("A")), contact("K6", Some("B"))]})),
        )
        .await;
    assert!(
        dup.body
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["errors"][0]["statusCode"] == "DUPLICATE_EXTERNAL_ID")
    );

    let too_many: Vec<Value> = (0..201)
        .map(|i| contact(&format!("m{i}"), Some("M")))
        .collect();
    let big = c
        .call(Method::PATCH, &url, Some(json!({"records": too_many})))
        .await;
    assert_eq!(
        (big.status, big.body[0]["errorCode"].as_str()),
        (400, Some("EXCEEDED_ID_LIMIT"))
    );

    // Retrieve and delete by ids.
    let ids: Vec<String> = c
        .call(
            Method::GET,
            &format!("{V}/query?q=SELECT+Id+FROM+Contact"),
            None,
        )
        .await
        .body["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["Id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), 2);
    let got = c
        .call(
            Method::GET,
            &format!(
                "{V}/composite/sobjects/Contact?ids={}&fields=LastName",
                ids.join(",")
            ),
            None,
        )
        .await;
    assert_eq!(got.body[1]["LastName"], "Three");
    let del = c
        .call(
            Method::DELETE,
            &format!("{V}/composite/sobjects?ids={},{}", ids[0], ids[0]),
            None,
        )
        .await;
    let items = del.body.as_array().unwrap();
    assert_eq!(items[0]["success"], true);
    assert_eq!(items[1]["errors"][0]["statusCode"], "ENTITY_IS_DELETED");
}

#[tokio::test]
async fn soql_pages_with_next_records_url_and_query_all_sees_deletes() {
    let s = sim(SalesforceConfig::default()).await;
    let c = Client::login(&s).await;
    for chunk in 0..3 {
        let records: Vec<Value> = (0..150)
            .map(|i| contact(&format!("p{chunk}-{i}"), Some("Paged")))
            .collect();
        let r = c
            .call(
                Method::PATCH,
                &format!("{V}/composite/sobjects/Contact/Attio_Id__c"),
                Some(json!({"records": records})),
            )
            .await;
        assert!(
            r.body
                .as_array()
                .unwrap()
                .iter()
                .all(|i| i["success"] == true)
        );
    }
    let q =
        format!("{V}/query?q=SELECT+Id,Email+FROM+Contact+WHERE+LastName+=+'paged'+ORDER+BY+Email");
    let first = c
        .call_with(
            Method::GET,
            &q,
            None,
            &[("Sforce-Query-Options", "batchSize=200")],
        )
        .await;
    assert_eq!(first.body["totalSize"], 450);
    assert_eq!(first.body["done"], false);
    assert_eq!(first.body["records"].as_array().unwrap().len(), 200);
    let mut seen = 200;
    let mut next = first.body["nextRecordsUrl"].as_str().unwrap().to_owned();
    loop {
        let page = c.call(Method::GET, &next, None).await;
        seen += page.body["records"].as_array().unwrap().len();
        match page.body.get("nextRecordsUrl").and_then(Value::as_str) {
            Some(n) => next = n.to_owned(),
            None => {
                assert_eq!(page.body["done"], true);
                break;
            }
        }
    }
    assert_eq!(seen, 450);

    let bad = c
        .call(
            Method::GET,
            &format!("{V}/query?q=SELEKT+Id+FROM+Contact"),
            None,
        )
        .await;
    assert_eq!(bad.body[0]["errorCode"], "MALFORMED_QUERY");
    let col = c
        .call(
            Method::GET,
            &format!("{V}/query?q=SELECT+FullName+FROM+Contact"),
            None,
        )
        .await;
    assert!(
        col.body[0]["message"]
            .as_str()
            .unwrap()
            .contains("No such column 'FullName'")
    );

    let id = first.body["records"][0]["Id"].as_str().unwrap().to_owned();
    c.call(Method::DELETE, &format!("{V}/sobjects/Contact/{id}"), None)
        .await;
    let q = |all: &str| format!("{V}/{all}?q=SELECT+Id,IsDeleted+FROM+Contact+WHERE+Id+=+'{id}'");
    assert_eq!(
        c.call(Method::GET, &q("query"), None).await.body["totalSize"],
        0
    );
    let all = c.call(Method::GET, &q("queryAll"), None).await;
    assert_eq!(all.body["records"][0]["IsDeleted"], true);

    // Datetime literals compare as times.
    let since = c.call(Method::GET, &format!("{V}/query?q=SELECT+Id+FROM+Contact+WHERE+SystemModstamp+>+2020-01-01T00:00:00Z+LIMIT+5"), None).await;
    assert_eq!(since.body["totalSize"], 5);
}

#[tokio::test]
async fn get_updated_and_get_deleted_cover_whole_minutes_within_their_windows() {
    let s = sim(SalesforceConfig::default()).await;
    let c = Client::login(&s).await;
    let start = s.sim.now();
    let made = c
        .call(
            Method::PATCH,
            &format!("{V}/sobjects/Contact/Attio_Id__c/u1"),
            Some(json!({"LastName": "U"})),
        )
        .await;
    let id = made.body["id"].as_str().unwrap().to_owned();
    c.call(
        Method::PATCH,
        &format!("{V}/sobjects/Contact/Attio_Id__c/u2"),
        Some(json!({"LastName": "U2"})),
    )
    .await;
    c.call(
        Method::DELETE,
        &format!("{V}/sobjects/Contact/Attio_Id__c/u2"),
        None,
    )
    .await;
    let iso = |t: time::OffsetDateTime| {
        t.format(&time::format_description::well_known::Rfc3339)
            .unwrap()
    };
    let window = |end: time::OffsetDateTime| {
        format!(
            "start={}&end={}",
            iso(start - Duration::from_secs(60)),
            iso(end)
        )
        .replace('+', "%2B")
    };

    // Within the current minute nothing is covered yet.
    let now = c
        .call(
            Method::GET,
            &format!("{V}/sobjects/Contact/updated/?{}", window(s.sim.now())),
            None,
        )
        .await;
    assert_eq!(now.status, 200, "{}", now.body);
    assert!(now.body["ids"].as_array().unwrap().is_empty());

    s.sim.advance_clock(Duration::from_secs(120));
    let end = s.sim.now();
    let up = c
        .call(
            Method::GET,
            &format!("{V}/sobjects/Contact/updated/?{}", window(end)),
            None,
        )
        .await;
    assert_eq!(up.body["ids"], json!([id]));
    assert!(
        up.body["latestDateCovered"]
            .as_str()
            .unwrap()
            .ends_with(":00.000+0000")
    );
    let del = c
        .call(
            Method::GET,
            &format!("{V}/sobjects/Contact/deleted/?{}", window(end)),
            None,
        )
        .await;
    assert_eq!(del.body["deletedRecords"].as_array().unwrap().len(), 1);

    s.sim.purge_delete_log();
    let purged = c
        .call(
            Method::GET,
            &format!("{V}/sobjects/Contact/deleted/?{}", window(end)),
            None,
        )
        .await;
    assert!(purged.body["deletedRecords"].as_array().unwrap().is_empty());
    assert!(
        purged.body["earliestDateAvailable"].as_str().unwrap()
            > iso(start)
                .as_str()
                .replace('Z', "")
                .as_str()
                .get(..16)
                .unwrap()
    );

    s.sim.advance_clock(Duration::from_secs(16 * 86_400));
    let old = c
        .call(
            Method::GET,
            &format!("{V}/sobjects/Contact/deleted/?{}", window(s.sim.now())),
            None,
        )
        .await;
    assert_eq!(
        (old.status, old.body[0]["errorCode"].as_str()),
        (400, Some("INVALID_REPLICATION_DATE"))
    );
    let reversed = format!(
        "start={}&end={}",
        iso(s.sim.now()),
        iso(s.sim.now() - Duration::from_secs(3600))
    )
    .replace('+', "%2B");
    let bad = c
        .call(
            Method::GET,
            &format!("{V}/sobjects/Contact/updated/?{reversed}"),
            None,
        )
        .await;
    assert_eq!(bad.body[0]["errorCode"], "INVALID_REPLICATION_DATE");
}

#[tokio::test]
async fn the_daily_allowance_answers_403_request_limit_exceeded_with_usage_headers() {
    let s = sim(SalesforceConfig {
        daily_limit: 3,
        ..Default::default()
    })
    .await;
    let c = Client::login(&s).await;
    let mut usage = Vec::new();
    for _ in 0..3 {
        let r = c.call(Method::GET, &format!("{V}/limits"), None).await;
        assert_eq!(r.status, 200);
        usage.push(r.headers["sforce-limit-info"].to_str().unwrap().to_owned());
    }
    assert_eq!(usage, ["api-usage=1/3", "api-usage=2/3", "api-usage=3/3"]);
    let over = c.call(Method::GET, &format!("{V}/limits"), None).await;
    assert_eq!(over.status, 403);
    assert_eq!(over.body[0]["errorCode"], "REQUEST_LIMIT_EXCEEDED");
    assert!(over.headers.get("retry-after").is_none());
    // The window rolls: a day later the allowance is back.
    s.sim.advance_clock(Duration::from_secs(86_400 + 60));
    let later = c.call(Method::GET, &format!("{V}/limits"), None).await;
    assert_eq!(
        later.body["DailyApiRequests"],
        json!({"Max": 3, "Remaining": 2})
    );
    // The versions list needs no token and is not counted.
    let versions = reqwest::get(format!("{}/services/data", s.url()))
        .await
        .unwrap();
    assert!(versions.headers().get("sforce-limit-info").is_none());
}

#[tokio::test]
async fn faults_inject_locks_per_item_and_server_errors() {
    let s = sim(SalesforceConfig::default()).await;
    let c = Client::login(&s).await;
    s.sim.set_faults(Faults {
        lock_rate: 1.0,
        ..Default::default()
    });
    let r = c
        .call(
            Method::PATCH,
            &format!("{V}/composite/sobjects/Contact/Attio_Id__c"),
            Some(json!({"records": [contact("l1", Some("L"))]})),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body[0]["errors"][0]["statusCode"], "UNABLE_TO_LOCK_ROW");
    let single = c
        .call(
            Method::PATCH,
            &format!("{V}/sobjects/Contact/Attio_Id__c/l1"),
            Some(json!({"LastName": "L"})),
        )
        .await;
    assert_eq!(
        (single.status, single.body[0]["errorCode"].as_str()),
        (400, Some("UNABLE_TO_LOCK_ROW"))
    );
    s.sim.set_faults(Faults {
        error_rate: 1.0,
        error_status: Some(503),
        ..Default::default()
    });
    let down = c.call(Method::GET, &format!("{V}/limits"), None).await;
    assert_eq!(down.status, 503);
    // The controls themselves are never broken, and refuse nonsense.
    let http = reqwest::Client::new();
    let put = http
        .put(format!("{}/_sim/faults", s.url()))
        .body(r#"{"error_rate": 7}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 400);
    let put = http
        .put(format!("{}/_sim/faults", s.url()))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 200);
    assert_eq!(
        c.call(Method::GET, &format!("{V}/limits"), None)
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn oversized_uris_and_unknown_versions_are_refused() {
    let s = sim(SalesforceConfig::default()).await;
    let c = Client::login(&s).await;
    let long = format!(
        "{V}/query?q=SELECT+Id+FROM+Contact+WHERE+Email+=+'{}'",
        "x".repeat(17_000)
    );
    assert_eq!(c.call(Method::GET, &long, None).await.status, 414);
    let r = c
        .call(Method::GET, "/services/data/v99.0/limits", None)
        .await;
    assert_eq!(r.status, 404);
}

#[tokio::test]
async fn tasks_and_notes_take_polymorphic_parents_of_the_documented_objects() {
    let s = sim(SalesforceConfig::default()).await;
    let c = Client::login(&s).await;
    let post = |o: &'static str, body: Value| {
        let c = &c;
        async move {
            c.call(Method::POST, &format!("{V}/sobjects/{o}/"), Some(body))
                .await
        }
    };
    let contact = post("Contact", json!({"LastName": "Lovelace"})).await.body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let account = post("Account", json!({"Name": "Acme"})).await.body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // WhoId is a Contact or Lead, WhatId an Account or Opportunity.
    let task = post(
        "Task",
        json!({"Subject": "Call", "Status": "Not Started", "WhoId": contact, "WhatId": account}),
    )
    .await;
    assert_eq!(task.status, 201, "{}", task.body);
    assert!(task.body["id"].as_str().unwrap().starts_with("00T"));
    let wrong = post("Task", json!({"Subject": "Call", "WhoId": account})).await;
    assert_eq!(wrong.status, 400);
    assert_eq!(wrong.body[0]["errorCode"], "INVALID_CROSS_REFERENCE_KEY");
    assert_eq!(wrong.body[0]["fields"], json!(["WhoId"]));
    // A classic note needs its parent and a title.
    let missing = post("Note", json!({"Body": "x", "ParentId": contact})).await;
    assert_eq!(missing.body[0]["errorCode"], "REQUIRED_FIELD_MISSING");
    assert_eq!(missing.body[0]["fields"], json!(["Title"]));
    let note = post(
        "Note",
        json!({"Title": "Call notes", "Body": "x", "ParentId": contact}),
    )
    .await;
    assert_eq!(note.status, 201, "{}", note.body);
    assert!(note.body["id"].as_str().unwrap().starts_with("002"));
}

/// A merge as a person makes it in Salesforce's UI (`/_sim/merge`): the merged records are
/// deleted with `MasterRecordId` naming the survivor (seen by `queryAll`), the records that
/// referred to them refer to the survivor, and objects Salesforce does not merge are refused.
#[tokio::test]
async fn a_merge_deletes_the_merged_with_master_record_id_and_reparents_children() {
    let s = sim(SalesforceConfig::default()).await;
    let c = Client::login(&s).await;
    let create = |object: &'static str, body: Value| {
        let c = &c;
        async move {
            let r = c
                .call(Method::POST, &format!("{V}/sobjects/{object}"), Some(body))
                .await;
            assert_eq!(r.status, 201, "{:?}", r.body);
            r.body["id"].as_str().unwrap().to_owned()
        }
    };
    let keep = create("Account", json!({"Name": "Acme"})).await;
    let dup = create("Account", json!({"Name": "Acme Inc"})).await;
    let child = create("Contact", json!({"LastName": "Lovelace", "AccountId": dup})).await;
    let merge = |body: Value| {
        let http = reqwest::Client::new();
        let url = format!("{}/_sim/merge", s.url());
        async move { http.post(url).json(&body).send().await.unwrap() }
    };
    let r = merge(json!({"object": "Account", "master": keep, "merged": [dup]})).await;
    assert_eq!(r.status(), 204);
    let q = format!(
        "{V}/queryAll?q=SELECT+Id,IsDeleted,MasterRecordId+FROM+Account+WHERE+Id+=+'{dup}'"
    );
    let gone = c.call(Method::GET, &q, None).await;
    assert_eq!(gone.body["records"][0]["IsDeleted"], true);
    assert_eq!(gone.body["records"][0]["MasterRecordId"], keep);
    let q = format!("{V}/query?q=SELECT+Id,AccountId+FROM+Contact+WHERE+Id+=+'{child}'");
    let moved = c.call(Method::GET, &q, None).await;
    assert_eq!(moved.body["records"][0]["AccountId"], keep);
    let q = format!("{V}/query?q=SELECT+Id,MasterRecordId+FROM+Account+WHERE+Id+=+'{keep}'");
    let survivor = c.call(Method::GET, &q, None).await;
    assert_eq!(survivor.body["records"][0]["MasterRecordId"], Value::Null);

    for (body, status) in [
        (
            json!({"object": "Account", "master": keep, "merged": [keep]}),
            400,
        ),
        (
            json!({"object": "Account", "master": keep, "merged": [dup]}),
            404,
        ),
        (
            json!({"object": "Opportunity", "master": keep, "merged": [child]}),
            400,
        ),
    ] {
        let r = merge(body.clone()).await;
        assert_eq!(r.status().as_u16(), status, "{body}");
        let errors: Value = r.json().await.unwrap();
        assert!(errors[0]["errorCode"].is_string(), "{errors}");
    }
}
