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

/// The document describes the bodies: the tenant body's schema names what the admin API takes,
/// a body built from it is accepted, and a field it does not name is refused, as it says.
#[tokio::test]
async fn the_document_describes_the_tenant_body_the_api_takes() {
    const TOKEN: &str = "openapi-admin-token-0123456789abcdef0123";
    let mut s = crate::settings();
    s.admin_token = Some(domain::tenant::Secret::new(TOKEN).unwrap());
    let app = crate::spawn_app_with(crate::memory_stores().await, s, None).await;
    let doc: Value = app
        .http
        .get(format!("{}/openapi.json", app.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let schema = &doc["paths"]["/v1/admin/tenants"]["post"]["requestBody"]["content"]["application/json"]
        ["schema"];
    assert_eq!(
        schema["required"],
        serde_json::json!(["id", "name", "attio"])
    );
    assert_eq!(schema["additionalProperties"], false);
    let props: Vec<&str> = schema["properties"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(props, ["id", "name", "attio", "crms", "register_webhook"]);
    assert!(
        doc["paths"]["/v1/admin/tenants"]["get"]["responses"]["200"]["content"]["application/json"]
            ["schema"]["items"]["properties"]["created_at"]["format"]
            == "date-time"
    );
    let body = serde_json::json!({
        "id": "schema", "name": "Schema", "register_webhook": false,
        "attio": {"api_token": "s".repeat(40), "webhook_secrets": ["w".repeat(20)]},
        "crms": [{"system": "hubspot", "settings": {}, "secrets": {"token": "pat"}}],
    });
    let (status, answer) = app
        .call(
            reqwest::Method::POST,
            "/v1/admin/tenants",
            TOKEN,
            Some(body.clone()),
        )
        .await;
    assert_eq!(status, 201, "{answer}");
    let mut extra = body;
    extra["id"] = serde_json::json!("schema2");
    extra["surprise"] = serde_json::json!(1);
    let (status, _) = app
        .call(
            reqwest::Method::POST,
            "/v1/admin/tenants",
            TOKEN,
            Some(extra),
        )
        .await;
    assert_eq!(status, 400, "a field the schema does not name is refused");
}
