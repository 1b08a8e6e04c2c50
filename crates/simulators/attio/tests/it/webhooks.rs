//! Webhook subscriptions: validation as Attio does it.

use attio_sim::SimConfig;
use serde_json::json;

use crate::{Client, sim, token};

#[tokio::test]
async fn subscriptions_are_validated() {
    let s = sim(SimConfig::default()).await;
    let c = Client::new(&s, &token('a'));
    let body = |url: &str, subs: serde_json::Value| json!({"data": {"target_url": url, "subscriptions": subs}});
    let ok = json!([{"event_type": "record.created", "filter": null}]);
    let (status, created) = c
        .post("/v2/webhooks", body("https://example.com/h", ok.clone()))
        .await;
    assert_eq!(status, 200, "{created}");
    assert_eq!(created["data"]["secret"].as_str().unwrap().len(), 64);
    let bad = [
        body("http://example.com/h", ok.clone()),
        body(
            "https://example.com/h",
            json!([{"event_type": "record.teleported", "filter": null}]),
        ),
        body(
            "https://example.com/h",
            json!([{"event_type": "record.created"}]),
        ),
        body(
            "https://example.com/h",
            json!([{"event_type": "record.created", "filter": {"$xor": []}}]),
        ),
        body(
            "https://example.com/h",
            json!([{"event_type": "record.created", "filter": {"$and": [{"field": "x", "operator": "contains", "value": "y"}]}}]),
        ),
        json!({"data": {"subscriptions": ok}}),
    ];
    for b in bad {
        let (status, resp) = c.post("/v2/webhooks", b.clone()).await;
        assert_eq!(
            (status, resp["code"].as_str()),
            (400, Some("validation_type")),
            "{b} → {resp}"
        );
    }
    assert_eq!(
        c.get("/v2/webhooks?limit=5").await.0,
        400,
        "limit is 10 to 100"
    );
    assert_eq!(
        c.get("/v2/webhooks").await.1["data"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert!(
        c.get("/v2/webhooks").await.1["data"][0]
            .get("secret")
            .is_none(),
        "no secret after creation"
    );
}
