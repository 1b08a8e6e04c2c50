//! Lists and entries.

use attio_sim::SimConfig;
use serde_json::{Value, json};

use crate::{Client, sim, token};

async fn deal(c: &Client, name: &str) -> String {
    let (status, body) = c
        .post(
            "/v2/objects/deals/records",
            json!({"data": {"values": {"name": name, "stage": "Lead"}}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body["data"]["id"]["record_id"].as_str().unwrap().to_owned()
}

fn entry_body(deal: &str, stage: &str) -> Value {
    json!({"data": {"parent_record_id": deal, "parent_object": "deals", "entry_values": {"stage": stage}}})
}

#[tokio::test]
async fn the_sample_pipeline_list_and_its_attributes() {
    let s = sim(SimConfig::default()).await;
    let c = Client::new(&s, &token('a'));
    let (_, lists) = c.get("/v2/lists").await;
    assert_eq!(lists["data"][0]["api_slug"], "sales");
    assert_eq!(lists["data"][0]["parent_object"], json!(["deals"]));
    let list_id = lists["data"][0]["id"]["list_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        c.get(&format!("/v2/lists/{list_id}")).await.1["data"]["name"],
        "Sales Pipeline",
        "by id too"
    );
    let (_, statuses) = c.get("/v2/lists/sales/attributes/stage/statuses").await;
    let titles: Vec<&str> = statuses["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["title"].as_str().unwrap())
        .collect();
    assert_eq!(titles, ["Lead", "In Progress", "Won 🎉", "Lost"]);
    assert_eq!(
        statuses["data"][0]["id"]["object_id"].as_str(),
        Some(list_id.as_str()),
        "as in the document, a list status is identified by object_id (the list id)"
    );
    assert_eq!(
        c.get("/v2/lists/nope").await.1["message"],
        "List with slug/ID \"nope\" not found."
    );
}

#[tokio::test]
async fn entries_move_through_the_pipeline() {
    let s = sim(SimConfig::default()).await;
    let c = Client::new(&s, &token('a'));
    let (d1, d2) = (deal(&c, "Acme renewal").await, deal(&c, "Globex").await);
    let (status, e1) = c
        .post("/v2/lists/sales/entries", entry_body(&d1, "Lead"))
        .await;
    assert_eq!(status, 200, "{e1}");
    assert_eq!(e1["data"]["parent_record_id"], d1.as_str());
    assert_eq!(
        e1["data"]["entry_values"]["stage"][0]["status"]["title"],
        "Lead"
    );
    let e1_id = e1["data"]["id"]["entry_id"].as_str().unwrap().to_owned();
    c.post("/v2/lists/sales/entries", entry_body(&d2, "In Progress"))
        .await;

    let (_, leads) = c
        .post(
            "/v2/lists/sales/entries/query",
            json!({"filter": {"stage": "Lead"}}),
        )
        .await;
    assert_eq!(leads["data"].as_array().unwrap().len(), 1);

    let path = format!("/v2/lists/sales/entries/{e1_id}");
    let (_, won) = c
        .call(
            reqwest::Method::PATCH,
            &path,
            Some(json!({"data": {"entry_values": {"stage": "Won 🎉"}}})),
        )
        .await;
    assert_eq!(
        won["data"]["entry_values"]["stage"][0]["status"]["title"],
        "Won 🎉"
    );
    let (_, history) = c
        .get(&format!(
            "{path}/attributes/stage/values?show_historic=true"
        ))
        .await;
    assert_eq!(history["data"].as_array().unwrap().len(), 2);

    // Assert matches on the parent record.
    let (_, asserted) = c
        .call(
            reqwest::Method::PUT,
            "/v2/lists/sales/entries",
            Some(entry_body(&d1, "Lost")),
        )
        .await;
    assert_eq!(asserted["data"]["id"]["entry_id"], e1_id.as_str());
    c.post("/v2/lists/sales/entries", entry_body(&d1, "Lead"))
        .await;
    let (status, resp) = c
        .call(
            reqwest::Method::PUT,
            "/v2/lists/sales/entries",
            Some(entry_body(&d1, "Lead")),
        )
        .await;
    assert_eq!(
        (status, resp["code"].as_str()),
        (400, Some("multiple_match_results"))
    );

    let (status, resp) = c
        .post(
            "/v2/lists/sales/entries",
            entry_body(&uuid::Uuid::new_v4().to_string(), "Lead"),
        )
        .await;
    assert_eq!(
        (status, resp["code"].as_str()),
        (400, Some("value_not_found")),
        "an unknown parent"
    );
    let (status, resp) = c
        .call(reqwest::Method::PATCH, &path, Some(entry_body(&d2, "Lead")))
        .await;
    assert_eq!(
        (status, resp["code"].as_str()),
        (400, Some("immutable_value")),
        "the parent cannot change"
    );
    assert_eq!(
        c.call(reqwest::Method::DELETE, &path, None).await,
        (200, json!({}))
    );
    assert_eq!(c.get(&path).await.0, 404);
}
