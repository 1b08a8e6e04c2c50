use std::process::Stdio;

use hubspot_sim::HubSpotConfig;
use reqwest::Method;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::{Client, sim};

const C: &str = "/crm/v3/objects/contacts";

#[tokio::test]
async fn contacts_are_created_read_updated_and_archived_as_hubspot_does() {
    let s = sim(HubSpotConfig::default()).await;
    let c = Client::new(&s);
    let (status, created) = c
        .post(
            C,
            json!({"properties": {"email": "Ada@X.com", "firstname": "Ada", "phone": 5551234}}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    assert!(id.parse::<u64>().is_ok(), "numeric-string ids");
    assert_eq!(
        created["properties"]["phone"], "5551234",
        "values travel as strings"
    );
    let (status, dup) = c
        .post(C, json!({"properties": {"email": "ada@x.com"}}))
        .await;
    assert_eq!((status, dup["category"].as_str()), (409, Some("CONFLICT")));
    assert_eq!(
        dup["message"],
        format!("Contact already exists. Existing ID: {id}")
    );

    let (_, by_email) = c
        .get(&format!(
            "{C}/ada@x.com?idProperty=email&properties=email,firstname"
        ))
        .await;
    assert_eq!(by_email["id"], id.as_str());
    let (_, before) = c
        .get(&format!("{C}/{id}?properties=lastmodifieddate"))
        .await;
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let (status, _, patched) = c
        .call(
            Method::PATCH,
            &format!("{C}/{id}"),
            Some(json!({"properties": {"firstname": "Augusta", "phone": ""}})),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(patched["properties"]["firstname"], "Augusta");
    assert_eq!(
        patched["properties"]["phone"],
        Value::Null,
        "an empty string clears"
    );
    let (_, after) = c
        .get(&format!(
            "{C}/{id}?properties=lastmodifieddate&propertiesWithHistory=firstname"
        ))
        .await;
    assert_ne!(
        after["updatedAt"], before["updatedAt"],
        "every write bumps updatedAt"
    );
    assert_eq!(after["properties"]["lastmodifieddate"], after["updatedAt"]);
    let history = after["propertiesWithHistory"]["firstname"]
        .as_array()
        .unwrap();
    assert_eq!(
        (history[0]["value"].as_str(), history[1]["value"].as_str()),
        (Some("Augusta"), Some("Ada")),
        "newest first"
    );

    let (status, resp) = c.post(C, json!({"properties": {"shoe_size": "42"}})).await;
    assert_eq!(status, 400);
    assert!(
        resp["message"]
            .as_str()
            .unwrap()
            .contains("PROPERTY_DOESNT_EXIST")
    );
    let (status, _, _) = c.call(Method::DELETE, &format!("{C}/{id}"), None).await;
    assert_eq!(status, 204);
    let (status, missing) = c.get(&format!("{C}/{id}")).await;
    assert_eq!(
        (status, missing["message"].as_str()),
        (
            404,
            Some("Object not found.  objectId are usually numeric.")
        )
    );
    assert_eq!(
        c.get(&format!("{C}/{id}?archived=true")).await.1["archived"],
        true
    );
    assert_eq!(
        c.get(&format!("{C}?archived=true")).await.1["results"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        c.get("/crm/objects/2026-09/contacts?archived=true").await.0,
        200,
        "date-versioned paths too"
    );
}

#[tokio::test]
async fn batch_upsert_reports_new_and_fails_whole_batches_on_conflicts() {
    let s = sim(HubSpotConfig::default()).await;
    let c = Client::new(&s);
    let upsert = |inputs: Value| json!({ "inputs": inputs });
    let (status, r) = c
        .post(
            &format!("{C}/batch/upsert"),
            upsert(json!([
                {"id": "a-1", "idProperty": "attio_record_id", "properties": {"email": "a@x.com"}},
                {"id": "a-2", "idProperty": "attio_record_id", "properties": {"email": "b@x.com"}},
            ])),
        )
        .await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["status"], "COMPLETE");
    assert!(
        r["results"]
            .as_array()
            .unwrap()
            .iter()
            .all(|x| x["new"] == true)
    );
    let (_, r) = c.post(&format!("{C}/batch/upsert"), upsert(json!([{"id": "a-1", "idProperty": "attio_record_id", "properties": {"firstname": "A"}}]))).await;
    assert_eq!(
        r["results"][0]["new"], false,
        "the second time it is an update"
    );
    let (status, r) = c
        .post(
            &format!("{C}/batch/upsert"),
            upsert(json!([
                {"id": "a-3", "idProperty": "attio_record_id", "properties": {"email": "c@x.com"}},
                {"id": "a-4", "idProperty": "attio_record_id", "properties": {"email": "a@x.com"}},
            ])),
        )
        .await;
    assert_eq!(
        (status, r["category"].as_str()),
        (409, Some("CONFLICT")),
        "one duplicate email fails the whole batch"
    );
    assert_eq!(
        c.get(&format!("{C}/a-3?idProperty=attio_record_id"))
            .await
            .0,
        404,
        "nothing of that batch was written"
    );
    let (status, r) = c
        .post(
            &format!("{C}/batch/upsert"),
            upsert(json!([{"id": "x", "idProperty": "firstname", "properties": {}}])),
        )
        .await;
    assert_eq!(status, 400);
    assert!(
        r["message"]
            .as_str()
            .unwrap()
            .contains("non-unique 0-1 property")
    );
    let many: Vec<Value> = (0..101)
        .map(|i| json!({"id": format!("m{i}"), "idProperty": "attio_record_id", "properties": {}}))
        .collect();
    assert_eq!(
        c.post(&format!("{C}/batch/upsert"), upsert(json!(many)))
            .await
            .0,
        400,
        "at most 100 inputs"
    );
    let (status, r) = c.post(&format!("{C}/batch/upsert"), upsert(json!([{"id": "a-5", "idProperty": "attio_record_id", "properties": {"shoe": "1"}}, {"id": "a-6", "idProperty": "attio_record_id", "properties": {}}]))).await;
    assert_eq!(
        (status, r["numErrors"].as_u64()),
        (207, Some(1)),
        "invalid inputs are per-record errors: {r}"
    );

    let ids: Vec<String> = c.post(&format!("{C}/batch/read"), json!({"inputs": [{"id": "a-1"}, {"id": "a-2"}], "idProperty": "attio_record_id", "properties": ["email"]})).await.1["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), 2);
    let (status, r) = c
        .post(
            &format!("{C}/batch/read"),
            json!({"inputs": [{"id": ids[0]}, {"id": "999999"}]}),
        )
        .await;
    assert_eq!(
        (status, r["numErrors"].as_u64()),
        (207, Some(1)),
        "missing ids are a 207"
    );
    assert_eq!(
        c.post(
            &format!("{C}/batch/archive"),
            json!({"inputs": [{"id": ids[0]}]})
        )
        .await
        .0,
        204
    );
    assert_eq!(c.get(&format!("{C}/{}", ids[0])).await.0, 404);
}

#[tokio::test]
async fn search_filters_sorts_pages_and_caps() {
    let s = sim(HubSpotConfig {
        searches_per_second: 1000,
        ..HubSpotConfig::default()
    })
    .await;
    let c = Client::new(&s);
    let start = time::OffsetDateTime::now_utc();
    for (i, (name, email)) in [
        ("Ada", "ada@acme.com"),
        ("Grace", "grace@navy.mil"),
        ("Alan", "alan@acme.com"),
        ("Edsger", "ewd@utexas.edu"),
    ]
    .iter()
    .enumerate()
    {
        c.post(C, json!({"properties": {"firstname": name, "email": email, "jobtitle": if i % 2 == 0 { "Engineer" } else { "" }}})).await;
    }
    let search = |filters: Value| json!({"filterGroups": [{"filters": filters}], "properties": ["firstname"], "sorts": [{"propertyName": "firstname", "direction": "ASCENDING"}]});
    let names = |v: &Value| -> Vec<String> {
        v["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["properties"]["firstname"].as_str().unwrap().to_owned())
            .collect()
    };
    let cases = [
        (
            json!([{"propertyName": "email", "operator": "EQ", "value": "ADA@acme.com"}]),
            vec!["Ada"],
        ),
        (
            json!([{"propertyName": "email", "operator": "CONTAINS_TOKEN", "value": "*acme.com"}]),
            vec!["Ada", "Alan"],
        ),
        (
            json!([{"propertyName": "firstname", "operator": "IN", "values": ["grace", "edsger"]}]),
            vec!["Edsger", "Grace"],
        ),
        (
            json!([{"propertyName": "jobtitle", "operator": "HAS_PROPERTY"}]),
            vec!["Ada", "Alan"],
        ),
        (
            json!([{"propertyName": "lastmodifieddate", "operator": "GTE", "value": ((start.unix_timestamp_nanos() / 1_000_000) - 1000).to_string()}]),
            vec!["Ada", "Alan", "Edsger", "Grace"],
        ),
    ];
    for (filters, want) in cases {
        let (status, r) = c
            .post(&format!("{C}/search"), search(filters.clone()))
            .await;
        assert_eq!(status, 200, "{r}");
        assert_eq!(names(&r), want, "{filters}");
        assert_eq!(r["total"].as_u64(), Some(want.len() as u64));
    }
    let (_, or) = c
        .post(
            &format!("{C}/search"),
            json!({"filterGroups": [
        {"filters": [{"propertyName": "firstname", "operator": "EQ", "value": "Ada"}]},
        {"filters": [{"propertyName": "firstname", "operator": "EQ", "value": "Grace"}]}]}),
        )
        .await;
    assert_eq!(or["total"], 2, "groups are ORed");
    let (_, page1) = c
        .post(
            &format!("{C}/search"),
            json!({"limit": 3, "sorts": ["firstname"], "properties": ["firstname"]}),
        )
        .await;
    assert_eq!(page1["paging"]["next"]["after"], "3");
    let (_, page2) = c
        .post(
            &format!("{C}/search"),
            json!({"limit": 3, "after": "3", "sorts": ["firstname"], "properties": ["firstname"]}),
        )
        .await;
    assert_eq!(names(&page2), ["Grace"]);
    assert!(page2.get("paging").is_none(), "no paging on the last page");
    assert_eq!(
        c.post(&format!("{C}/search"), json!({"after": "10000"}))
            .await
            .0,
        400,
        "the 10,000-result cap"
    );
    let groups: Vec<Value> = (0..6)
        .map(|_| json!({"filters": [{"propertyName": "email", "operator": "HAS_PROPERTY"}]}))
        .collect();
    assert_eq!(
        c.post(&format!("{C}/search"), json!({"filterGroups": groups}))
            .await
            .0,
        400,
        "at most five groups"
    );
    assert_eq!(
        c.post(&format!("{C}/search"), json!({"limit": 201}))
            .await
            .0,
        400
    );
}

#[tokio::test]
async fn budgets_answer_with_hubspots_headers_and_429_bodies() {
    let s = sim(HubSpotConfig {
        per_ten_seconds: 3,
        searches_per_second: 2,
        ..HubSpotConfig::default()
    })
    .await;
    let c = Client::new(&s);
    let (status, headers, _) = c.call(Method::GET, C, None).await;
    assert_eq!(status, 200);
    assert_eq!(headers["x-hubspot-ratelimit-max"], "3");
    assert_eq!(headers["x-hubspot-ratelimit-remaining"], "2");
    assert_eq!(
        headers["x-hubspot-ratelimit-interval-milliseconds"],
        "10000"
    );
    c.get(C).await;
    c.get(C).await;
    let (status, r) = c.get(C).await;
    assert_eq!(
        (status, r["policyName"].as_str(), r["errorType"].as_str()),
        (429, Some("TEN_SECONDLY_ROLLING"), Some("RATE_LIMIT"))
    );
    assert_eq!(
        r["message"],
        "You have reached your ten_secondly_rolling limit."
    );
    for _ in 0..2 {
        let (status, headers, _) = c
            .call(Method::POST, &format!("{C}/search"), Some(json!({})))
            .await;
        assert_eq!(status, 200, "search has its own budget");
        assert!(
            headers.get("x-hubspot-ratelimit-max").is_none(),
            "search answers carry no rate-limit headers"
        );
    }
    let (status, r) = c.post(&format!("{C}/search"), json!({})).await;
    assert_eq!(
        (status, r["message"].as_str()),
        (429, Some("You have reached your secondly limit."))
    );
    let (status, r) = reqwest::Client::new()
        .get(format!("{}{C}", s.url()))
        .send()
        .await
        .map(|r| r.status().as_u16())
        .map(|s| (s, ()))
        .unwrap();
    assert_eq!((status, r), (401, ()), "no token");
}

#[tokio::test]
async fn the_daily_allowance_is_counted_per_account_and_answers_daily_429s() {
    let s = sim(HubSpotConfig {
        daily_limit: 3,
        ..HubSpotConfig::default()
    })
    .await;
    let c = Client::new(&s);
    let (status, headers, _) = c.call(Method::GET, C, None).await;
    assert_eq!(status, 200);
    assert_eq!(headers["x-hubspot-ratelimit-daily"], "3");
    assert_eq!(headers["x-hubspot-ratelimit-daily-remaining"], "2");
    let (status, _) = c.post(&format!("{C}/search"), json!({})).await;
    assert_eq!(
        status, 200,
        "searches count against the daily allowance too"
    );
    let (_, headers, _) = c.call(Method::GET, C, None).await;
    assert_eq!(headers["x-hubspot-ratelimit-daily-remaining"], "0");
    let (status, r) = c.get(C).await;
    assert_eq!(
        (status, r["policyName"].as_str(), r["message"].as_str()),
        (
            429,
            Some("DAILY"),
            Some("You have reached your daily limit.")
        )
    );
    let other = Client::with_token(&s, "another-account");
    assert_eq!(
        other.get(C).await.0,
        200,
        "each account has its own allowance"
    );
}

#[tokio::test]
async fn default_associations_are_made_listed_and_removed_in_both_directions() {
    let s = sim(HubSpotConfig::default()).await;
    let c = Client::new(&s);
    let id = |r: &Value| r["id"].as_str().unwrap().to_owned();
    let ada = id(&c
        .post(C, json!({"properties": {"email": "ada@x.com"}}))
        .await
        .1);
    let acme = id(&c
        .post(
            "/crm/v3/objects/companies",
            json!({"properties": {"name": "Acme"}}),
        )
        .await
        .1);
    let deal = id(&c
        .post(
            "/crm/v3/objects/deals",
            json!({"properties": {"dealname": "Big"}}),
        )
        .await
        .1);
    let (status, _, r) = c
        .call(
            Method::PUT,
            &format!("/crm/v4/objects/contact/{ada}/associations/default/company/{acme}"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["status"], "COMPLETE");
    // HubSpot's `PublicDefaultAssociation`: from, to and the association's spec.
    assert_eq!(r["results"][0]["associationSpec"]["associationTypeId"], 279);
    assert_eq!(r["results"][1]["associationSpec"]["associationTypeId"], 280);
    // The dated prefix serves the same associations.
    let (status, _, _) = c
        .call(
            Method::PUT,
            &format!("/crm/objects/2026-09/deals/{deal}/associations/default/companies/{acme}"),
            None,
        )
        .await;
    assert_eq!(status, 200);
    let (status, r) = c
        .get(&format!(
            "/crm/v4/objects/companies/{acme}/associations/contacts"
        ))
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        r["results"],
        json!([{"toObjectId": ada.parse::<u64>().unwrap(),
                "associationTypes": [{"category": "HUBSPOT_DEFINED", "typeId": 280, "label": null}]}])
    );
    let (_, r) = c
        .get(&format!(
            "/crm/v4/objects/companies/{acme}/associations/deals"
        ))
        .await;
    assert_eq!(r["results"][0]["associationTypes"][0]["typeId"], 342);
    let bob = id(&c
        .post(C, json!({"properties": {"email": "bob@x.com"}}))
        .await
        .1);
    c.call(
        Method::PUT,
        &format!("/crm/v4/objects/contacts/{bob}/associations/default/companies/{acme}"),
        None,
    )
    .await;
    let page = format!("/crm/v4/objects/companies/{acme}/associations/contacts?limit=1");
    let (_, first) = c.get(&page).await;
    let after = first["paging"]["next"]["after"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, second) = c.get(&format!("{page}&after={after}")).await;
    assert_eq!(
        (
            first["results"][0]["toObjectId"].to_string(),
            second["results"][0]["toObjectId"].to_string()
        ),
        (ada.clone(), bob.clone())
    );
    assert!(second.get("paging").is_none(), "the last page has no next");
    c.call(
        Method::DELETE,
        &format!("/crm/v4/objects/contacts/{bob}/associations/companies/{acme}"),
        None,
    )
    .await;
    let (status, _, _) = c
        .call(
            Method::DELETE,
            &format!("/crm/v4/objects/contacts/{ada}/associations/companies/{acme}"),
            None,
        )
        .await;
    assert_eq!(status, 204);
    let (_, r) = c
        .get(&format!(
            "/crm/v4/objects/companies/{acme}/associations/contacts"
        ))
        .await;
    assert_eq!(r["results"], json!([]), "removed in both directions");
    // An archived record drops out of the listings and of inline reads.
    let cy = id(&c
        .post(C, json!({"properties": {"email": "cy@x.com"}}))
        .await
        .1);
    c.call(
        Method::PUT,
        &format!("/crm/v4/objects/contacts/{cy}/associations/default/companies/{acme}"),
        None,
    )
    .await;
    let path = format!("/crm/v4/objects/companies/{acme}/associations/contacts");
    let listed = || async { c.get(&path).await.1["results"].as_array().unwrap().len() };
    assert_eq!(listed().await, 1);
    let (status, _, _) = c.call(Method::DELETE, &format!("{C}/{cy}"), None).await;
    assert_eq!(status, 204);
    assert_eq!(listed().await, 0, "an archived contact is not listed");
    let (_, r) = c
        .get(&format!(
            "/crm/v3/objects/companies/{acme}?associations=contacts"
        ))
        .await;
    assert!(r["associations"].get("contacts").is_none(), "{r}");
    let (status, _, _) = c
        .call(
            Method::PUT,
            &format!("/crm/v4/objects/contacts/{ada}/associations/default/companies/999999"),
            None,
        )
        .await;
    assert_eq!(status, 404, "the other record must exist");
    let (status, _, _) = c
        .call(
            Method::PUT,
            &format!("/crm/v4/objects/contacts/{ada}/associations/default/contacts/{ada}"),
            None,
        )
        .await;
    assert_eq!(status, 400, "no default contact-to-contact type");
}

#[tokio::test]
async fn faults_are_injected_before_any_effect_and_validated() {
    let s = sim(HubSpotConfig::default()).await;
    let c = Client::new(&s);
    let http = reqwest::Client::new();
    let put = |body: Value| {
        http.put(format!("{}/_sim/faults", s.url()))
            .json(&body)
            .send()
    };
    assert_eq!(put(json!({"error_rate": 1.0})).await.unwrap().status(), 200);
    let (status, r) = c
        .post(C, json!({"properties": {"email": "ada@x.com"}}))
        .await;
    assert_eq!(
        (status, r["category"].as_str(), r["status"].as_str()),
        (500, Some("INTERNAL_ERROR"), Some("error"))
    );
    assert_eq!(
        put(json!({"timeout_rate": 1.0, "hang_ms": 5}))
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(c.get(C).await.0, 504);
    assert_eq!(
        put(json!({"error_rate": 1.0, "error_status": 477, "retry_after_s": 7}))
            .await
            .unwrap()
            .status(),
        200
    );
    let (status, headers, r) = c.call(Method::GET, C, None).await;
    assert_eq!(
        (
            status,
            headers["retry-after"].to_str().unwrap(),
            r["category"].as_str()
        ),
        (477, "7", Some("MIGRATION_IN_PROGRESS"))
    );
    assert_eq!(
        put(json!({"error_status": 418})).await.unwrap().status(),
        400
    );
    assert_eq!(put(json!({"error_rate": 1.5})).await.unwrap().status(), 400);
    assert_eq!(
        put(json!({"duplicate_rate": 0.5})).await.unwrap().status(),
        400,
        "unknown fault"
    );
    assert_eq!(
        put(json!({"drop_rate": 1.5})).await.unwrap().status(),
        400,
        "webhook drops are a rate"
    );
    assert_eq!(put(json!({})).await.unwrap().status(), 200);
    let (_, r) = c.get(C).await;
    assert_eq!(r["results"], json!([]), "the failed create had no effect");
    let faults: Value = http
        .get(format!("{}/_sim/faults", s.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(faults["error_rate"], 0.0);
}

#[tokio::test]
async fn the_binary_refuses_invalid_faults() {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_hubspot-sim"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--faults",
            r#"{"error_rate": 2}"#,
        ])
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("error_rate must be between 0 and 1"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn the_binary_prints_its_address_first_and_takes_its_daily_limit() {
    let (mut child, url) = spawn_binary(&["--listen", "127.0.0.1:0", "--daily-limit", "1"]).await;
    let r = reqwest::Client::new()
        .get(format!("{url}{C}"))
        .bearer_auth("t")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = reqwest::Client::new()
        .get(format!("{url}{C}"))
        .bearer_auth("t")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429, "--daily-limit 1 allows one request a day");
    child.kill().await.unwrap();
}

#[test]
fn subscriptions_parse_or_say_what_is_wrong() {
    use hubspot_sim::Subscription;
    let ok = Subscription::parse(3, "company.propertyChange:name").unwrap();
    assert_eq!(
        (ok.id, ok.event_type.as_str(), ok.property_name.as_deref()),
        (3, "company.propertyChange", Some("name"))
    );
    assert!(
        Subscription::parse(1, "deal.deletion")
            .unwrap()
            .property_name
            .is_none()
    );
    for (bad, says) in [
        ("contact", "OBJECT.ACTION"),
        ("ticket.creation", "contact, company or deal"),
        ("contact.propertyChange", "needs :PROPERTY"),
        ("contact.creation:email", "only propertyChange"),
        ("contact.restore", "the action must be"),
        ("contact.associationChange:email", "only propertyChange"),
        ("contact.merge:email", "only propertyChange"),
    ] {
        let e = Subscription::parse(1, bad).unwrap_err();
        assert!(e.contains(says), "{bad}: {e}");
    }
}

#[tokio::test]
async fn the_binary_delivers_webhooks_to_the_url_it_is_given() {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(axum::http::HeaderMap, String)>();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |h: axum::http::HeaderMap, body: String| {
            let tx = tx.clone();
            async move {
                let _ = tx.send((h, body));
                axum::http::StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let (mut child, url) = spawn_binary(&[
        "--listen",
        "127.0.0.1:0",
        "--webhook-url",
        &hook,
        "--webhook-secret",
        "shh",
        "--subscribe",
        "contact.creation",
    ])
    .await;
    let r = reqwest::Client::new()
        .post(format!("{url}{C}"))
        .bearer_auth("t")
        .json(&json!({"properties": {"email": "ada@x.com"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let (headers, body) = tokio::time::timeout(std::time::Duration::from_secs(10), rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(headers.contains_key("x-hubspot-signature-v3"));
    // v1: hex SHA-256 of the client secret followed by the body.
    use sha2::Digest;
    let v1: String = sha2::Sha256::digest(format!("shh{body}").as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(headers["x-hubspot-signature"].to_str().unwrap(), v1);
    assert_eq!(headers["x-hubspot-signature-version"], "v1");
    let events: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(events[0]["subscriptionType"], "contact.creation");
    assert_eq!(events[0]["subscriptionId"], 1);
    child.kill().await.unwrap();
}

#[tokio::test]
async fn the_binary_refuses_a_bad_subscription() {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_hubspot-sim"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--webhook-url",
            "http://127.0.0.1:9/",
            "--webhook-secret",
            "s",
            "--subscribe",
            "contact.propertyChange",
        ])
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("needs :PROPERTY"));
}

/// Starts the binary and reads the URL from its first line.
async fn spawn_binary(args: &[&str]) -> (tokio::process::Child, String) {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_hubspot-sim"))
        .args(args)
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = tokio::time::timeout(std::time::Duration::from_secs(30), lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let url = first.strip_prefix("listening on ").unwrap().to_owned();
    (child, url)
}

#[tokio::test]
async fn notes_and_tasks_need_a_timestamp_and_attach_to_records_by_default_association() {
    let s = sim(HubSpotConfig::default()).await;
    let c = Client::new(&s);
    let ada = c
        .post(C, json!({"properties": {"email": "ada@x.com"}}))
        .await
        .1["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // HubSpot refuses an engagement without `hs_timestamp`.
    let (status, r) = c
        .post(
            "/crm/v3/objects/notes",
            json!({"properties": {"hs_note_body": "hi"}}),
        )
        .await;
    assert_eq!(status, 400, "{r}");
    assert_eq!(r["category"], "VALIDATION_ERROR");
    assert!(
        r["message"].as_str().unwrap().contains("hs_timestamp"),
        "{r}"
    );
    let (status, note) = c
        .post(
            "/crm/v3/objects/notes",
            json!({"properties": {"hs_note_body": "hi", "hs_timestamp": "2026-12-01T10:00:00Z"}}),
        )
        .await;
    assert_eq!(status, 201, "{note}");
    let note = note["id"].as_str().unwrap().to_owned();
    let (status, _, r) = c
        .call(
            Method::PUT,
            &format!("/crm/v4/objects/notes/{note}/associations/default/contacts/{ada}"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{r}");
    // HubSpot's `PublicDefaultAssociation`: from, to and the association's spec.
    assert_eq!(r["results"][0]["associationSpec"]["associationTypeId"], 202);
    assert_eq!(r["results"][1]["associationSpec"]["associationTypeId"], 201);
    let (status, r) = c
        .get(&format!(
            "/crm/v4/objects/contacts/{ada}/associations/notes"
        ))
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        r["results"][0]["toObjectId"].to_string().trim_matches('"'),
        note
    );
    // Tasks: their own type (task → contact 204).
    let (_, task) = c
        .post(
            "/crm/v3/objects/tasks",
            json!({"properties": {"hs_task_subject": "Call", "hs_task_status": "NOT_STARTED", "hs_timestamp": "2026-12-01T10:00:00Z"}}),
        )
        .await;
    let task = task["id"].as_str().unwrap().to_owned();
    let (status, _, r) = c
        .call(
            Method::PUT,
            &format!("/crm/v4/objects/tasks/{task}/associations/default/contacts/{ada}"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["results"][0]["associationSpec"]["associationTypeId"], 204);
}

/// A merge is told as `contact.merge` (the survivor, the merged ids), not as a deletion of the
/// merged contact.
#[tokio::test]
async fn a_merge_is_delivered_as_a_merge_event_not_a_deletion() {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |body: String| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(body);
                axum::http::StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let subs = ["contact.merge", "contact.deletion"]
        .iter()
        .enumerate()
        .map(|(i, s)| hubspot_sim::Subscription::parse(i as u64 + 1, s).unwrap())
        .collect();
    let config = HubSpotConfig {
        webhooks: Some(hubspot_sim::WebhookSettings::new(&hook, "shh", subs)),
        ..Default::default()
    };
    let sim = hubspot_sim::start("127.0.0.1:0".parse().unwrap(), config)
        .await
        .unwrap();
    let http = reqwest::Client::new();
    let mut ids = Vec::new();
    for email in ["a@x.com", "b@x.com"] {
        let r: Value = http
            .post(format!("{}{C}", sim.url()))
            .bearer_auth("t")
            .json(&json!({"properties": {"email": email}}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        ids.push(r["id"].as_str().unwrap().parse::<u64>().unwrap());
    }
    let r = http
        .post(format!("{}{C}/merge", sim.url()))
        .bearer_auth("t")
        .json(
            &json!({"primaryObjectId": ids[0].to_string(), "objectIdToMerge": ids[1].to_string()}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body = tokio::time::timeout(std::time::Duration::from_secs(10), rx.recv())
        .await
        .unwrap()
        .unwrap();
    let events: Value = serde_json::from_str(&body).unwrap();
    let events = events.as_array().unwrap();
    assert_eq!(events.len(), 1, "{body}");
    assert_eq!(events[0]["subscriptionType"], "contact.merge");
    assert_eq!(events[0]["primaryObjectId"], ids[0]);
    assert_eq!(events[0]["newObjectId"], ids[0]);
    assert_eq!(events[0]["mergedObjectIds"], json!([ids[1]]));
    // Nothing else follows (no deletion of the merged contact).
    assert!(
        tokio::time::timeout(std::time::Duration::from_millis(500), rx.recv())
            .await
            .is_err()
    );
    // The merged id still updates the survivor through the single-record PATCH.
    let r: Value = http
        .patch(format!("{}{C}/{}", sim.url(), ids[1]))
        .bearer_auth("t")
        .json(&json!({"properties": {"jobtitle": "Merged"}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["id"], ids[0].to_string(), "{r}");
    // Merged again into a third contact: the third keeps both old ids.
    let third: Value = http
        .post(format!("{}{C}", sim.url()))
        .bearer_auth("t")
        .json(&json!({"properties": {"email": "c@x.com"}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let third = third["id"].as_str().unwrap().to_owned();
    let r = http
        .post(format!("{}{C}/merge", sim.url()))
        .bearer_auth("t")
        .json(&json!({"primaryObjectId": third, "objectIdToMerge": ids[0].to_string()}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r: Value = http
        .get(format!(
            "{}{C}/{third}?properties=hs_merged_object_ids",
            sim.url()
        ))
        .bearer_auth("t")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let kept: Vec<&str> = r["properties"]["hs_merged_object_ids"]
        .as_str()
        .unwrap()
        .split(';')
        .collect();
    assert_eq!(kept, [ids[0].to_string(), ids[1].to_string()], "{r}");
}

/// An association made or removed is told as `.associationChange`, one event per direction, and
/// a read with `?associations=companies` lists the associated records inline.
#[tokio::test]
async fn associations_are_read_inline_and_told_as_association_changes() {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |body: String| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(body);
                axum::http::StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let subs = ["contact.associationChange", "company.associationChange"]
        .iter()
        .enumerate()
        .map(|(i, s)| hubspot_sim::Subscription::parse(i as u64 + 1, s).unwrap())
        .collect();
    let config = HubSpotConfig {
        webhooks: Some(hubspot_sim::WebhookSettings::new(&hook, "shh", subs)),
        ..Default::default()
    };
    let sim = hubspot_sim::start("127.0.0.1:0".parse().unwrap(), config)
        .await
        .unwrap();
    let http = reqwest::Client::new();
    let create = |path: &'static str, props: Value| {
        let http = http.clone();
        let url = format!("{}{path}", sim.url());
        async move {
            let r: Value = http
                .post(url)
                .bearer_auth("t")
                .json(&json!({ "properties": props }))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            r["id"].as_str().unwrap().to_owned()
        }
    };
    let contact = create(C, json!({"email": "a@x.com"})).await;
    let company = create("/crm/v3/objects/companies", json!({"name": "Acme"})).await;
    let assoc = format!(
        "{}/crm/v4/objects/contacts/{contact}/associations/default/companies/{company}",
        sim.url()
    );
    let r = http.put(&assoc).bearer_auth("t").send().await.unwrap();
    assert_eq!(r.status(), 200);
    let events = two_events(&mut rx).await;
    let told: Vec<(String, String, String, bool)> = events
        .iter()
        .map(|e| {
            (
                e["subscriptionType"].as_str().unwrap().to_owned(),
                e["associationType"].as_str().unwrap().to_owned(),
                e["fromObjectId"].to_string(),
                e["associationRemoved"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        told,
        [
            (
                "contact.associationChange".into(),
                "CONTACT_TO_COMPANY".into(),
                contact.clone(),
                false
            ),
            (
                "company.associationChange".into(),
                "COMPANY_TO_CONTACT".into(),
                company.clone(),
                false
            ),
        ]
    );
    let read: Value = http
        .get(format!(
            "{}{C}/{contact}?associations=companies,deals",
            sim.url()
        ))
        .bearer_auth("t")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        read["associations"]["companies"]["results"][0]["id"],
        company
    );
    assert_eq!(
        read["associations"]["companies"]["results"][0]["type"],
        "contact_to_company"
    );
    assert!(read["associations"].get("deals").is_none(), "{read}");
    // Removed: told again, with `associationRemoved`; the read lists none.
    let r = http
        .delete(format!(
            "{}/crm/v4/objects/contacts/{contact}/associations/companies/{company}",
            sim.url()
        ))
        .bearer_auth("t")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let events = two_events(&mut rx).await;
    assert!(
        events.iter().all(|e| e["associationRemoved"] == true),
        "{events:?}"
    );
    let read: Value = http
        .get(format!("{}{C}/{contact}?associations=companies", sim.url()))
        .bearer_auth("t")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(read["associations"], json!({}));
}

/// The next two events delivered, in one batch or two.
async fn two_events(rx: &mut tokio::sync::mpsc::UnboundedReceiver<String>) -> Vec<Value> {
    let mut events = Vec::new();
    while events.len() < 2 {
        let body = tokio::time::timeout(std::time::Duration::from_secs(10), rx.recv())
            .await
            .unwrap()
            .unwrap();
        let batch: Value = serde_json::from_str(&body).unwrap();
        events.extend(batch.as_array().unwrap().iter().cloned());
    }
    events
}

/// Owners are listed page by page or by e-mail, and a record's `hubspot_owner_id` holds one.
#[tokio::test]
async fn owners_are_listed_and_filtered_by_email() {
    let sim = hubspot_sim::start("127.0.0.1:0".parse().unwrap(), HubSpotConfig::default())
        .await
        .unwrap();
    let http = reqwest::Client::new();
    for n in 0..3 {
        let r = http
            .post(format!("{}/_sim/owners", sim.url()))
            .json(&json!({"email": format!("o{n}@x.com"), "firstName": "O", "lastName": n.to_string()}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
    }
    let get = |q: &'static str| {
        let http = http.clone();
        let url = format!("{}/crm/v3/owners{q}", sim.url());
        async move {
            http.get(url)
                .bearer_auth("t")
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    let page = get("?limit=2").await;
    assert_eq!(page["results"].as_array().unwrap().len(), 2);
    let after = page["paging"]["next"]["after"].as_str().unwrap().to_owned();
    let rest: Value = http
        .get(format!("{}/crm/v3/owners?limit=2&after={after}", sim.url()))
        .bearer_auth("t")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(rest["results"][0]["email"], "o2@x.com");
    assert!(rest.get("paging").is_none(), "{rest}");
    let one = get("?email=O1@x.com").await;
    assert_eq!(one["results"].as_array().unwrap().len(), 1);
    let owner = one["results"][0]["id"].as_str().unwrap().to_owned();
    let made: Value = http
        .post(format!("{}{C}", sim.url()))
        .bearer_auth("t")
        .json(&json!({"properties": {"email": "d@x.com", "hubspot_owner_id": owner}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(made["properties"]["hubspot_owner_id"], owner, "{made}");
}
