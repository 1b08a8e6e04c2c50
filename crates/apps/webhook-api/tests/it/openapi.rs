//! `/openapi.json` describes every route, and every documented route is served (an unknown route
//! answers axum's empty 404 or 405; ours answer with a JSON body or a status of their own).

use serde_json::Value;

use crate::spawn_app;

#[tokio::test]
async fn the_document_lists_every_route_and_each_is_served() {
    let app = spawn_app().await;
    let doc: Value = app
        .http
        .get(format!("{}/openapi.json", app.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"), "{doc}");
    let paths = doc["paths"].as_object().unwrap();
    let routes = webhook_api::openapi::routes(&app_common::registry::Registry::builtin());
    assert_eq!(
        routes
            .iter()
            .map(|r| r.path.as_str())
            .collect::<std::collections::BTreeSet<_>>()
            .len(),
        paths.len()
    );
    for route in routes {
        let method = route.method_name();
        let op = &paths[route.path.as_str()][method];
        assert!(op.is_object(), "{method} {} is documented", route.path);
        assert!(!op["responses"].as_object().unwrap().is_empty());
        // Served: fill the path's parameters and send an empty request.
        let path = route
            .path
            .replace("{tenant}", "acme")
            .replace("{id}", "acme")
            .replace("{record}", "bf071e1f-6035-429d-b874-d83ea64ea13b")
            .replace("{job}", "bf071e1f-6035-429d-b874-d83ea64ea13b")
            .replace("{list}", "sales");
        let verb = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let r = app
            .http
            .request(verb, format!("{}{path}", app.url))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let body = r.text().await.unwrap();
        let unrouted = (status == 404 || status == 405) && body.is_empty();
        assert!(!unrouted, "{method} {path} is not served ({status})");
    }
}
