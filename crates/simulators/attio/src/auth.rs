//! Authentication and scopes as Attio answers them (reference §1).

use axum::http::HeaderMap;
use base64::Engine;
use domain::ids::WorkspaceId;
use serde::Deserialize;

use crate::error::ApiError;

/// A token the simulator knows.
#[derive(Debug, Clone)]
pub struct TokenEntry {
    pub workspace: WorkspaceId,
    /// The id `created_by_actor` and webhook `actor` carry for this token's writes.
    pub token_id: String,
    /// `None` grants every scope.
    pub scopes: Option<Vec<String>>,
}

/// A tokens file: `{"tokens": [{"token": "…64 chars…", "workspace": "Acme", "scopes": [...]}]}`.
/// Tokens naming the same workspace share it.
#[derive(Debug, Clone, Deserialize)]
pub struct TokensFile {
    pub tokens: Vec<TokenSpec>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct TokenSpec {
    pub token: String,
    pub workspace: String,
    pub scopes: Vec<String>,
}

/// What a request presented.
#[derive(Debug, PartialEq, Eq)]
pub enum Presented {
    None,
    /// Not a Bearer or Basic header we can read.
    Malformed,
    WrongLength,
    Token(String),
}

pub fn is_well_formed(token: &str) -> bool {
    token.len() == 64
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Bearer, or Basic with the token as user name and a blank password.
pub fn presented(headers: &HeaderMap) -> Presented {
    let Some(value) = headers.get("authorization").and_then(|v| v.to_str().ok()) else {
        return Presented::None;
    };
    let token = if let Some(t) = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
    {
        t.trim().to_owned()
    } else if let Some(b) = value
        .strip_prefix("Basic ")
        .or_else(|| value.strip_prefix("basic "))
    {
        let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(b.trim()) else {
            return Presented::Malformed;
        };
        let Ok(text) = String::from_utf8(decoded) else {
            return Presented::Malformed;
        };
        text.split_once(':')
            .map(|(user, _)| user.to_owned())
            .unwrap_or(text)
    } else {
        return Presented::Malformed;
    };
    if token.is_empty() {
        Presented::Malformed
    } else if is_well_formed(&token) {
        Presented::Token(token)
    } else if token.len() != 64 {
        Presented::WrongLength
    } else {
        Presented::Malformed
    }
}

pub fn not_found_key() -> ApiError {
    ApiError::unauthorized(
        "The API Key provided could not be found. Please check that you have copied the full key and that it has not been revoked.",
    )
}

pub fn wrong_length() -> ApiError {
    ApiError::unauthorized(
        "The API Key provided was invalid because it was the wrong length (API Keys should be 64 characters long). Please check that you have copied the full key.",
    )
}

fn label(scope_family: &str) -> &'static str {
    match scope_family {
        "record_permission" => "Records",
        "object_configuration" => "Object Configuration",
        "list_entry" => "List Entries",
        "list_configuration" => "List Configuration",
        "note" => "Notes",
        "task" => "Tasks",
        "webhook" => "Webhooks",
        "user_management" => "User Management",
        "comment" => "Comments",
        _ => "Other",
    }
}

/// Whether `granted` satisfies `needed` (`x:read-write` implies `x:read`).
fn satisfies(granted: &[String], needed: &str) -> bool {
    granted.iter().any(|g| {
        g == needed
            || needed
                .strip_suffix(":read")
                .is_some_and(|family| g == &format!("{family}:read-write"))
    })
}

/// 403 when a needed scope is missing, with Attio's wording.
pub fn check_scopes(entry: &TokenEntry, needed: &[&str]) -> Result<(), ApiError> {
    let Some(granted) = &entry.scopes else {
        return Ok(());
    };
    let missing: Vec<String> = needed
        .iter()
        .filter(|n| !satisfies(granted, n))
        .map(|n| {
            let (family, level) = n.split_once(':').unwrap_or((n, "read"));
            let level = if level == "read-write" {
                "Read-Write"
            } else {
                "Read"
            };
            format!("{level} access to the {} scope", label(family))
        })
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(ApiError::forbidden(format!(
            "The API Key provided is not authorized to perform the requested action. This request requires scopes: {}.",
            missing.join(", ")
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_bearer_and_basic_and_classifies_bad_ones() {
        let t = "a".repeat(64);
        let mut h = HeaderMap::new();
        assert_eq!(presented(&h), Presented::None);
        h.insert("authorization", format!("Bearer {t}").parse().unwrap());
        assert_eq!(presented(&h), Presented::Token(t.clone()));
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("{t}:"));
        h.insert("authorization", format!("Basic {basic}").parse().unwrap());
        assert_eq!(presented(&h), Presented::Token(t));
        h.insert("authorization", "Bearer short".parse().unwrap());
        assert_eq!(presented(&h), Presented::WrongLength);
        h.insert("authorization", "Token abc".parse().unwrap());
        assert_eq!(presented(&h), Presented::Malformed);
    }

    #[test]
    fn read_write_implies_read() {
        let entry = TokenEntry {
            workspace: WorkspaceId::from_uuid(uuid::Uuid::nil()),
            token_id: "t".into(),
            scopes: Some(vec!["record_permission:read-write".into()]),
        };
        assert!(check_scopes(&entry, &["record_permission:read"]).is_ok());
        let err = check_scopes(
            &entry,
            &["record_permission:read", "object_configuration:read"],
        )
        .unwrap_err();
        assert!(
            err.message
                .ends_with("requires scopes: Read access to the Object Configuration scope."),
            "{}",
            err.message
        );
    }
}
