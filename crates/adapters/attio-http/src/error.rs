//! Attio's error bodies, and how responses and transport failures map onto the port contract.

use std::time::Duration;

use domain::ids::SystemId;
use ports::error::PortError;
use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, thiserror::Error)]
pub enum AttioSetupError {
    #[error("invalid Attio configuration: {0}")]
    Config(String),
    #[error("cannot build the HTTP client")]
    Client(#[source] reqwest::Error),
}

/// An error body: `{"status_code","type","code","message"}` plus extras such as
/// `validation_errors` and `path`.
#[derive(Debug, Clone, Deserialize, thiserror::Error)]
#[error("Attio {status_code} {code}: {message}")]
pub struct AttioApiError {
    pub status_code: u16,
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default)]
    pub code: String,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub validation_errors: Option<Value>,
    #[serde(default)]
    pub path: Option<Value>,
}

impl AttioApiError {
    /// Decodes a body, or describes an unreadable one (a proxy's HTML, say).
    pub fn decode(status: u16, body: &[u8]) -> Self {
        serde_json::from_slice::<AttioApiError>(body).unwrap_or_else(|_| AttioApiError {
            status_code: status,
            kind: String::new(),
            code: "unreadable_error_body".into(),
            message: String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned(),
            validation_errors: None,
            path: None,
        })
    }
}

/// Statuses worth retrying: 408, 429 and 5xx except 501.
pub fn retryable_status(status: u16) -> bool {
    matches!(status, 408 | 429) || (500..600).contains(&status) && status != 501
}

/// The port error for a final (not retried, or out of retries) error response.
pub fn to_port_error(e: AttioApiError, retry_after: Option<Duration>) -> PortError {
    match e.status_code {
        401 => PortError::Unauthorized(e.message),
        403 if e.code == "unauthorized" => PortError::Unauthorized(e.message),
        404 => PortError::NotFound(e.message),
        429 => PortError::RateLimited { retry_after },
        s if s >= 500 => PortError::unavailable(format!("Attio ({s})"), e),
        s => PortError::Rejected {
            system: SystemId::attio(),
            status: s,
            code: e.code,
            message: e.message,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_classified() {
        for (s, r) in [
            (200, false),
            (400, false),
            (404, false),
            (408, true),
            (429, true),
            (500, true),
            (501, false),
            (503, true),
        ] {
            assert_eq!(retryable_status(s), r, "{s}");
        }
    }

    #[test]
    fn error_bodies_map_onto_the_contract() {
        let body = br#"{"status_code":400,"type":"invalid_request_error","code":"uniqueness_conflict","message":"dup"}"#;
        match to_port_error(AttioApiError::decode(400, body), None) {
            PortError::Rejected {
                status: 400, code, ..
            } => assert_eq!(code, "uniqueness_conflict"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            to_port_error(AttioApiError::decode(404, b"{\"status_code\":404}"), None),
            PortError::NotFound(_)
        ));
        let html = AttioApiError::decode(502, b"<html>bad gateway</html>");
        assert_eq!(html.code, "unreadable_error_body");
        assert!(to_port_error(html, None).is_retryable());
    }
}
