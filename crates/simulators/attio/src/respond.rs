//! Response helpers: Attio's content type and execution id on every response.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

pub fn json_response(status: StatusCode, body: &Value) -> Response {
    let mut r = (status, body.to_string()).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    if let Ok(id) = HeaderValue::from_str(&uuid::Uuid::new_v4().to_string()) {
        h.insert("x-attio-execution-id", id);
    }
    r
}

/// `200 {"data": …}`.
pub fn data(v: Value) -> Response {
    json_response(StatusCode::OK, &json!({ "data": v }))
}

/// `200 {}` (deletes).
pub fn empty() -> Response {
    json_response(StatusCode::OK, &json!({}))
}
