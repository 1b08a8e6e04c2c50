//! Attio's error bodies: `{"status_code","type","code","message"}` plus optional extras.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use crate::respond::json_response;

/// An error as Attio sends it (boxed: handlers return it by value on every path).
#[derive(Debug, Clone)]
pub struct ApiError(Box<ApiErrorBody>);

#[derive(Debug, Clone)]
pub struct ApiErrorBody {
    pub status: StatusCode,
    pub kind: &'static str,
    pub code: &'static str,
    pub message: String,
    pub extra: Map<String, Value>,
    /// Seconds-precision HTTP-date for `Retry-After` (429 only).
    pub retry_after: Option<String>,
}

impl std::ops::Deref for ApiError {
    type Target = ApiErrorBody;
    fn deref(&self) -> &ApiErrorBody {
        &self.0
    }
}

impl ApiError {
    fn new(
        status: StatusCode,
        kind: &'static str,
        code: &'static str,
        message: impl Into<String>,
    ) -> Self {
        Self(Box::new(ApiErrorBody {
            status,
            kind,
            code,
            message: message.into(),
            extra: Map::new(),
            retry_after: None,
        }))
    }

    pub fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            code,
            message,
        )
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "invalid_request_error", code, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            "not_found",
            message,
        )
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "auth_error",
            "unauthorized",
            message,
        )
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "auth_error", "unauthorized", message)
    }

    pub fn rate_limited(retry_after: String) -> Self {
        let mut e = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limit_error",
            "rate_limit_exceeded",
            "Rate limit exceeded, please try again later",
        );
        e.0.retry_after = Some(retry_after);
        e
    }

    /// `validation_type` with one `validation_errors` entry, as for a missing `data.values`.
    pub fn body_validation(path: &[&str], message: &str, expected: &str, received: &str) -> Self {
        let mut e = Self::invalid("validation_type", "Body payload validation error.");
        e.0.extra.insert(
            "validation_errors".into(),
            json!([{ "code": "invalid_type", "path": path, "message": message, "expected": expected, "received": received }]),
        );
        e
    }

    pub fn with(mut self, key: &str, value: Value) -> Self {
        self.0.extra.insert(key.into(), value);
        self
    }

    pub fn body(&self) -> Value {
        let mut m = Map::new();
        m.insert("status_code".into(), json!(self.status.as_u16()));
        m.insert("type".into(), json!(self.kind));
        m.insert("code".into(), json!(self.code));
        m.insert("message".into(), json!(self.message));
        m.extend(self.extra.clone());
        Value::Object(m)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = json_response(self.status, &self.body());
        if let Some(at) = &self.retry_after
            && let Ok(v) = at.parse()
        {
            r.headers_mut().insert("retry-after", v);
        }
        r
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
