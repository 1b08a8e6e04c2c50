//! Query strings as HubSpot's clients send them. `properties`, `propertiesWithHistory` and
//! `associations` are `style: form, explode: true` arrays in HubSpot's documents
//! (`?properties=email&properties=firstname`), and comma-separated lists work too; booleans are
//! read without regard to case (`archived=True`, as the Python client sends them). A bad value is
//! answered with HubSpot's JSON error, never plain text.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use crate::HsError;

/// The query parameters of the object routes.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct ListQuery {
    pub limit: Option<usize>,
    pub after: Option<String>,
    pub properties: Vec<String>,
    pub properties_with_history: Vec<String>,
    pub associations: Vec<String>,
    pub archived: Option<bool>,
    pub id_property: Option<String>,
}

fn boolean(name: &str, v: &str) -> Result<bool, HsError> {
    match v.to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(HsError::validation(format!(
            "Invalid input JSON on line 1: {name} must be true or false, got {v:?}"
        ))),
    }
}

impl ListQuery {
    /// Reads a raw query string (without `?`).
    pub(crate) fn parse(query: &str) -> Result<Self, HsError> {
        let mut q = Self::default();
        for (k, v) in form_urlencoded::parse(query.as_bytes()) {
            let list = |into: &mut Vec<String>| {
                into.extend(v.split(',').filter(|p| !p.is_empty()).map(str::to_owned));
            };
            match k.as_ref() {
                "limit" => {
                    q.limit = Some(v.parse().map_err(|_| {
                        HsError::validation(format!("limit must be a whole number, got {v:?}"))
                    })?)
                }
                "after" => q.after = Some(v.into_owned()),
                "properties" => list(&mut q.properties),
                "propertiesWithHistory" => list(&mut q.properties_with_history),
                "associations" => list(&mut q.associations),
                "archived" => q.archived = Some(boolean("archived", &v)?),
                "idProperty" => q.id_property = Some(v.into_owned()),
                // HubSpot ignores parameters an endpoint does not know.
                _ => {}
            }
        }
        Ok(q)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ListQuery {
    type Rejection = HsError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, HsError> {
        Self::parse(parts.uri.query().unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrays_come_exploded_or_comma_separated_and_booleans_in_any_case() {
        let q = ListQuery::parse(
            "properties=email&properties=firstname,lastname&archived=True&limit=5&associations=companies",
        )
        .unwrap_or_default();
        assert_eq!(q.properties, ["email", "firstname", "lastname"]);
        assert_eq!((q.archived, q.limit), (Some(true), Some(5)));
        assert_eq!(q.associations, ["companies"]);
        assert!(ListQuery::parse("archived=maybe").is_err());
        assert!(ListQuery::parse("limit=ten").is_err());
    }
}
