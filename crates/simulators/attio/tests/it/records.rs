//! Records: writes, Attio's value semantics, queries.

use attio_sim::SimConfig;
use serde_json::{Value, json};

use crate::{Client, sim, token};

async fn person(c: &Client, first: &str, last: &str, emails: &[&str]) -> Value {
    let (status, body) = c
        .post("/v2/objects/people/records", json!({"data": {"values": {
            "name": [{"first_name": first, "last_name": last, "full_name": format!("{first} {last}")}],
            "email_addresses": emails,
        }}}))
        .await;
    assert_eq!(status, 200, "{body}");
    body["data"].clone()
}

fn id(record: &Value) -> String {
    record["id"]["record_id"].as_str().unwrap().to_owned()
}

async fn query(c: &Client, object: &str, body: Value) -> Vec<Value> {
    let (status, resp) = c
        .post(&format!("/v2/objects/{object}/records/query"), body)
        .await;
    assert_eq!(status, 200, "{resp}");
    resp["data"].as_array().unwrap().clone()
}

fn names(records: &[Value]) -> Vec<String> {
    records
        .iter()
        .map(|r| {
            r["values"]["name"][0]["full_name"]
                .as_str()
                .unwrap_or("")
                .to_owned()
        })
        .collect()
}

#[tokio::test]
async fn a_created_record_has_every_attribute_and_attios_value_envelope() {
    let s = sim(SimConfig::default()).await;
    let c = Client::new(&s, &token('a'));
    let p = person(&c, "Ada", "Lovelace", &["Ada@Example.com"]).await;
    let values = p["values"].as_object().unwrap();
    for slug in [
        "record_id",
        "name",
        "email_addresses",
        "company",
        "job_title",
        "phone_numbers",
        "created_at",
        "created_by",
    ] {
        assert!(values.contains_key(slug), "{slug} missing");
    }
    assert_eq!(values["job_title"], json!([]), "empty attributes are []");
    let email = &values["email_addresses"][0];
    assert_eq!(email["original_email_address"], "Ada@Example.com");
    assert_eq!(email["email_address"], "ada@example.com");
    assert_eq!(email["email_domain"], "example.com");
    assert_eq!(email["attribute_type"], "email-address");
    assert_eq!(email["active_until"], Value::Null);
    assert_eq!(email["created_by_actor"]["type"], "api-token");
    let ts = email["active_from"].as_str().unwrap();
    assert_eq!(
        ts.len(),
        "2023-01-01T15:00:00.000000000Z".len(),
        "nanosecond timestamps: {ts}"
    );
    assert_eq!(values["record_id"][0]["value"], p["id"]["record_id"]);
    // The payload decodes into the domain model and re-encodes unchanged.
    let typed: domain::record::Record = serde_json::from_value(p.clone()).unwrap();
    assert_eq!(serde_json::to_value(&typed).unwrap(), p);
}

#[tokio::test]
async fn unique_values_conflict_and_bad_values_are_typed_errors() {
    let s = sim(SimConfig::default()).await;
    let c = Client::new(&s, &token('a'));
    let first = person(&c, "Ada", "L", &["ada@x.com"]).await;
    let (status, body) = c
        .post(
            "/v2/objects/people/records",
            json!({"data": {"values": {"email_addresses": ["ADA@x.com"]}}}),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["code"], "uniqueness_conflict");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .ends_with(&format!("Conflicting record IDs: {}", id(&first)))
    );
    let cases = [
        (json!({"data": {}}), "validation_type"),
        (
            json!({"data": {"values": {"email_addresses": ["not-an-email"]}}}),
            "validation_type",
        ),
        (json!({"data": {"values": {"shoe_size": 42}}}), "not_found"),
        (
            json!({"data": {"values": {"record_id": "x"}}}),
            "immutable_value",
        ),
    ];
    for (body, code) in cases {
        let (status, resp) = c.post("/v2/objects/people/records", body.clone()).await;
        assert_eq!(
            (status >= 400, resp["code"].as_str()),
            (true, Some(code)),
            "{body} → {resp}"
        );
    }
    let (status, resp) = c
        .post(
            "/v2/objects/deals/records",
            json!({"data": {"values": {"name": "Big deal"}}}),
        )
        .await;
    assert_eq!(
        (status, resp["code"].as_str()),
        (400, Some("missing_value")),
        "deals need a stage: {resp}"
    );
    let (status, resp) = c
        .post(
            "/v2/objects/deals/records",
            json!({"data": {"values": {"name": "Big deal", "stage": "Negotiating"}}}),
        )
        .await;
    assert_eq!(
        (status, resp["code"].as_str()),
        (400, Some("value_not_found"))
    );
    let (status, resp) = c.post("/v2/objects/deals/records", json!({"data": {"values": {"name": "Big deal", "stage": "In Progress", "value": 1200}}})).await;
    assert_eq!(status, 200, "{resp}");
    assert_eq!(
        resp["data"]["values"]["stage"][0]["status"]["title"],
        "In Progress"
    );
    assert_eq!(resp["data"]["values"]["value"][0]["currency_code"], "USD");
    let (status, resp) = c
        .post("/v2/objects/pets/records", json!({"data": {"values": {}}}))
        .await;
    assert_eq!(
        (status, resp["message"].as_str()),
        (404, Some("Object with slug/ID \"pets\" not found."))
    );
}

#[tokio::test]
async fn patch_appends_put_replaces_and_history_is_kept() {
    let s = sim(SimConfig::default()).await;
    let c = Client::new(&s, &token('a'));
    let p = person(&c, "Ada", "L", &["ada@x.com"]).await;
    let path = format!("/v2/objects/people/records/{}", id(&p));
    let (_, patched) = c
        .call(
            reqwest::Method::PATCH,
            &path,
            Some(
                json!({"data": {"values": {"email_addresses": ["ada@y.com"], "job_title": "CTO"}}}),
            ),
        )
        .await;
    let emails: Vec<&str> = patched["data"]["values"]["email_addresses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["email_address"].as_str().unwrap())
        .collect();
    assert_eq!(
        emails,
        ["ada@y.com", "ada@x.com"],
        "PATCH prepends to a multiselect"
    );
    let (_, put) = c
        .call(
            reqwest::Method::PUT,
            &path,
            Some(
                json!({"data": {"values": {"email_addresses": ["ada@z.com"], "job_title": "CEO"}}}),
            ),
        )
        .await;
    let emails: Vec<&str> = put["data"]["values"]["email_addresses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["email_address"].as_str().unwrap())
        .collect();
    assert_eq!(emails, ["ada@z.com"], "PUT replaces a multiselect");
    assert_eq!(put["data"]["values"]["job_title"][0]["value"], "CEO");
    let (_, history) = c
        .get(&format!(
            "{path}/attributes/job_title/values?show_historic=true"
        ))
        .await;
    let h = history["data"].as_array().unwrap();
    assert_eq!(h.len(), 2, "{history}");
    assert_eq!(
        (h[0]["value"].as_str(), h[1]["value"].as_str()),
        (Some("CTO"), Some("CEO")),
        "oldest first"
    );
    assert!(h[0]["active_until"].is_string() && h[1]["active_until"].is_null());
    assert_eq!(
        c.get(&format!("{path}/attributes/job_title/values"))
            .await
            .1["data"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        c.call(reqwest::Method::DELETE, &path, None).await,
        (200, json!({}))
    );
    assert_eq!(c.get(&path).await.0, 404);
}

#[tokio::test]
async fn assert_creates_then_updates_by_the_matching_attribute() {
    let s = sim(SimConfig::default()).await;
    let c = Client::new(&s, &token('a'));
    let body = |emails: Value, title: &str| json!({"data": {"values": {"email_addresses": emails, "job_title": title}}});
    let path = "/v2/objects/people/records?matching_attribute=email_addresses";
    let (_, first) = c
        .call(
            reqwest::Method::PUT,
            path,
            Some(body(json!(["grace@x.com"]), "Admiral")),
        )
        .await;
    let (_, second) = c
        .call(
            reqwest::Method::PUT,
            path,
            Some(body(
                json!(["grace@x.com", "grace@navy.mil"]),
                "Rear Admiral",
            )),
        )
        .await;
    assert_eq!(
        id(&first["data"]),
        id(&second["data"]),
        "the same person is updated"
    );
    assert_eq!(
        second["data"]["values"]["email_addresses"]
            .as_array()
            .unwrap()
            .len(),
        2,
        "the matching multiselect gains values"
    );
    assert_eq!(
        second["data"]["values"]["job_title"][0]["value"],
        "Rear Admiral"
    );
    assert_eq!(query(&c, "people", json!({})).await.len(), 1);
    let (status, resp) = c
        .call(
            reqwest::Method::PUT,
            "/v2/objects/people/records?matching_attribute=job_title",
            Some(body(json!([]), "x")),
        )
        .await;
    assert_eq!(
        (status, resp["code"].as_str()),
        (400, Some("value_not_found")),
        "a non-unique matching attribute"
    );
}

#[tokio::test]
async fn filters_sorts_and_pages() {
    let s = sim(SimConfig::default()).await;
    let c = Client::new(&s, &token('a'));
    let (_, acme) = c
        .post(
            "/v2/objects/companies/records",
            json!({"data": {"values": {"name": "Acme", "domains": ["acme.com"]}}}),
        )
        .await;
    for (first, last, email) in [
        ("Ada", "Lovelace", "ada@acme.com"),
        ("Grace", "Hopper", "grace@navy.mil"),
        ("Alan", "Turing", "alan@acme.com"),
        ("Edsger", "Dijkstra", "ewd@utexas.edu"),
    ] {
        person(&c, first, last, &[email]).await;
    }
    let ada = query(
        &c,
        "people",
        json!({"filter": {"email_addresses": "ada@acme.com"}}),
    )
    .await;
    c.call(reqwest::Method::PATCH, &format!("/v2/objects/people/records/{}", id(&ada[0])), Some(json!({"data": {"values": {"company": [{"target_object": "companies", "target_record_id": id(&acme["data"])}]}}}))).await;

    let cases: Vec<(Value, Vec<&str>)> = vec![
        (json!({"name": "Grace Hopper"}), vec!["Grace Hopper"]),
        (
            json!({"email_addresses": {"email_domain": {"$eq": "acme.com"}}}),
            vec!["Ada Lovelace", "Alan Turing"],
        ),
        (
            json!({"name": {"first_name": {"$starts_with": "a"}}}),
            vec!["Ada Lovelace", "Alan Turing"],
        ),
        (
            json!({"name": {"last_name": {"$contains": "OPP"}}}),
            vec!["Grace Hopper"],
        ),
        (
            json!({"email_addresses": {"email_address": {"$ends_with": ".edu"}}}),
            vec!["Edsger Dijkstra"],
        ),
        (
            json!({"email_addresses": {"$in": ["ewd@utexas.edu", "grace@navy.mil"]}}),
            vec!["Grace Hopper", "Edsger Dijkstra"],
        ),
        (
            json!({"$or": [{"name": "Ada Lovelace"}, {"name": "Alan Turing"}]}),
            vec!["Ada Lovelace", "Alan Turing"],
        ),
        (
            json!({"$and": [{"email_addresses": {"email_domain": "acme.com"}}, {"$not": {"name": "Ada Lovelace"}}]}),
            vec!["Alan Turing"],
        ),
        (
            json!({"company": {"$not_empty": true}}),
            vec!["Ada Lovelace"],
        ),
        (
            json!({"path": [["people", "company"], ["companies", "domains"]], "constraints": {"domain": "acme.com"}}),
            vec!["Ada Lovelace"],
        ),
    ];
    for (filter, want) in cases {
        let got = names(&query(&c, "people", json!({"filter": filter.clone()})).await);
        assert_eq!(got, want, "{filter}");
    }
    let sorted = names(
        &query(
            &c,
            "people",
            json!({"sorts": [{"direction": "desc", "attribute": "name", "field": "last_name"}]}),
        )
        .await,
    );
    assert_eq!(
        sorted,
        [
            "Alan Turing",
            "Ada Lovelace",
            "Grace Hopper",
            "Edsger Dijkstra"
        ]
    );
    let page2 = names(&query(&c, "people", json!({"sorts": [{"direction": "asc", "attribute": "name", "field": "first_name"}], "limit": 2, "offset": 2})).await);
    assert_eq!(page2, ["Edsger Dijkstra", "Grace Hopper"]);

    let (status, resp) = c
        .post(
            "/v2/objects/people/records/query",
            json!({"filter": {"name": {"$ne": "x"}}}),
        )
        .await;
    assert_eq!(
        (status, resp["code"].as_str()),
        (400, Some("filter_error")),
        "there is no $ne"
    );
    let (status, resp) = c
        .post(
            "/v2/objects/people/records/query",
            json!({"filter": {"shoe_size": 42}}),
        )
        .await;
    assert_eq!(
        (status, resp["code"].as_str(), resp["path"].clone()),
        (
            400,
            Some("unknown_filter_attribute_slug"),
            json!(["shoe_size"])
        )
    );
}

/// An attribute made through the API (`POST /v2/objects/{object}/attributes`) is listed and
/// takes values of its type; a slug the object has is 409 `slug_conflict`; a type the
/// simulator does not make is 400 `validation_type`.
#[tokio::test]
async fn attributes_made_through_the_api_take_values_of_their_type() {
    let s = sim(SimConfig::default()).await;
    let c = Client::new(&s, &token('a'));
    let new = |slug: &str, kind: &str| {
        json!({"data": {"title": slug, "api_slug": slug, "type": kind,
        "description": null, "is_required": false, "is_unique": false, "is_multiselect": false, "config": {}}})
    };
    let (status, body) = c
        .post("/v2/objects/deals/attributes", new("close_on", "date"))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["api_slug"], "close_on");
    assert_eq!(body["data"]["type"], "date");
    let (status, body) = c
        .post("/v2/objects/deals/attributes", new("fit", "rating"))
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = c
        .post(
            "/v2/objects/deals/records",
            json!({"data": {"values": {
                "name": "Engine", "stage": "Lead", "close_on": "2027-03-31", "fit": 4,
            }}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["values"]["close_on"][0]["value"], "2027-03-31");
    assert_eq!(body["data"]["values"]["fit"][0]["value"], 4);

    let (status, body) = c
        .post("/v2/objects/deals/attributes", new("close_on", "text"))
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("slug_conflict")),
        "{body}"
    );
    let (status, body) = c
        .post("/v2/objects/deals/attributes", new("phase", "status"))
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("validation_type")),
        "{body}"
    );
    let (status, body) = c
        .post("/v2/objects/deals/attributes", new("Bad Slug", "text"))
        .await;
    assert_eq!(status, 400, "{body}");
}
