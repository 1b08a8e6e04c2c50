//! References as HubSpot keeps them: associations, not properties. The port's provider-neutral
//! records name a reference by the pseudo-property HubSpot's own search uses for it,
//! `associations.{objectType}` (`associations.companies` on a contact), holding the associated
//! records' ids: none (`Empty`), one (`Text`) or several (`List`). Reads ask for them inline
//! (`?associations=companies`, every page of a long list through associations v4); writes make the
//! record's default (unlabelled) associations exactly the ids given, associating the missing
//! ones and removing the others; `describe` lists one per object the record can associate with.

use std::collections::{BTreeMap, BTreeSet};

use domain::field::FieldValue;
use domain::ids::ExternalId;
use domain::mapping::ExternalProperty;
use ports::crm::{ExternalField, FieldKind};
use ports::error::PortResult;
use serde::Deserialize;

use crate::HubSpotClient;

const PREFIX: &str = "associations.";

/// The object a pseudo-property associates with (`companies` for `associations.companies`).
pub(crate) fn association_of(p: &ExternalProperty) -> Option<&str> {
    p.as_str().strip_prefix(PREFIX).filter(|t| !t.is_empty())
}

/// Splits properties into HubSpot's own and the association pseudo-properties.
pub(crate) fn split(props: &[ExternalProperty]) -> (Vec<ExternalProperty>, Vec<ExternalProperty>) {
    props
        .iter()
        .cloned()
        .partition(|p| association_of(p).is_none())
}

/// The associations inline in a record read with `?associations=…`:
/// `{"companies": {"results": [{"id": "…", "type": "contact_to_company"}], "paging": …}}`.
#[derive(Debug, Default, Deserialize)]
pub struct Inline(pub BTreeMap<String, InlineList>);

#[derive(Debug, Deserialize)]
pub struct InlineList {
    #[serde(default)]
    results: Vec<InlineResult>,
    #[serde(default)]
    paging: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
struct InlineResult {
    id: serde_json::Value,
}

/// Ids as a neutral value: sorted, each once (HubSpot lists an id once per association type).
pub(crate) fn value_of(ids: impl IntoIterator<Item = String>) -> FieldValue {
    let ids: BTreeSet<String> = ids.into_iter().filter(|s| !s.is_empty()).collect();
    match ids.len() {
        0 => FieldValue::Empty,
        1 => FieldValue::Text(ids.into_iter().next().unwrap_or_default()),
        _ => FieldValue::List(ids.into_iter().collect()),
    }
}

fn ids_in(v: &FieldValue) -> Vec<String> {
    match v.clone().normalized() {
        FieldValue::Text(t) => vec![t],
        FieldValue::List(items) => items,
        FieldValue::Number(n) => vec![n.to_string()],
        FieldValue::Empty | FieldValue::Bool(_) => Vec::new(),
    }
}

/// The objects each object can associate with by a default association type.
fn associable(object: &str) -> &'static [&'static str] {
    match object {
        "contacts" | "0-1" => &["companies", "deals"],
        "companies" | "0-2" => &["contacts", "deals"],
        "deals" | "0-3" => &["contacts", "companies"],
        _ => &[],
    }
}

/// The pseudo-properties `describe` lists for `object`.
pub(crate) fn fields(object: &str) -> Vec<ExternalField> {
    associable(object)
        .iter()
        .map(|to| ExternalField {
            name: format!("{PREFIX}{to}"),
            kind: FieldKind::Reference,
            options: Vec::new(),
            required: false,
            writable: true,
        })
        .collect()
}

impl HubSpotClient {
    /// The values of the association pseudo-properties `wanted` from a read's inline
    /// associations; a list with more pages is read whole through associations v4.
    pub(crate) async fn inline_values(
        &self,
        object: &str,
        id: &ExternalId,
        mut inline: Inline,
        wanted: &[ExternalProperty],
    ) -> PortResult<BTreeMap<ExternalProperty, FieldValue>> {
        let mut out = BTreeMap::new();
        for p in wanted {
            let Some(to) = association_of(p) else {
                continue;
            };
            let value = match inline.0.remove(to) {
                Some(list) if list.paging.is_none() => {
                    value_of(list.results.into_iter().map(|r| match r.id {
                        serde_json::Value::String(s) => s,
                        other => other.to_string(),
                    }))
                }
                Some(_) => value_of(
                    self.associations(object, id, to)
                        .await?
                        .into_iter()
                        .map(|i| i.to_string()),
                ),
                None => FieldValue::Empty,
            };
            out.insert(p.clone(), value);
        }
        Ok(out)
    }

    /// Makes the record's default associations with each pseudo-property's object exactly the
    /// ids it holds. `NotFound` when an associated record does not exist.
    pub(crate) async fn set_associations(
        &self,
        object: &str,
        id: &ExternalId,
        wanted: &BTreeMap<ExternalProperty, FieldValue>,
    ) -> PortResult<()> {
        for (p, v) in wanted {
            let Some(to) = association_of(p) else {
                continue;
            };
            let want: BTreeSet<String> = ids_in(v).into_iter().collect();
            let have: BTreeSet<String> = self
                .associations(object, id, to)
                .await?
                .into_iter()
                .map(|i| i.to_string())
                .collect();
            for add in want.difference(&have) {
                let to_id = ExternalId::parse(add).map_err(|e| {
                    ports::error::PortError::Invalid(format!("{p:?} holds {add:?}: {e}"))
                })?;
                self.associate(object, id, to, &to_id).await?;
            }
            for gone in have.difference(&want) {
                let to_id = ExternalId::parse(gone).map_err(|e| {
                    ports::error::PortError::backend("HubSpot association id", e.to_string())
                })?;
                self.dissociate(object, id, to, &to_id).await?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pseudo_properties_name_the_associated_object() {
        let p = |s: &str| ExternalProperty::parse(s).unwrap();
        assert_eq!(
            association_of(&p("associations.companies")),
            Some("companies")
        );
        assert_eq!(association_of(&p("associations.")), None);
        assert_eq!(association_of(&p("email")), None);
        let (plain, refs) = split(&[p("email"), p("associations.companies")]);
        assert_eq!(
            (plain, refs),
            (vec![p("email")], vec![p("associations.companies")])
        );
    }

    #[test]
    fn ids_become_one_value() {
        assert_eq!(value_of(Vec::<String>::new()), FieldValue::Empty);
        assert_eq!(
            value_of(["7".to_owned(), "7".to_owned()]),
            FieldValue::text("7")
        );
        assert_eq!(
            value_of(["9".to_owned(), "7".to_owned()]),
            FieldValue::List(vec!["7".into(), "9".into()])
        );
        assert_eq!(
            ids_in(&FieldValue::List(vec!["9".into(), "7".into()])),
            ["7", "9"]
        );
        assert!(ids_in(&FieldValue::Empty).is_empty());
    }

    #[test]
    fn each_object_describes_its_associations() {
        let names: Vec<String> = fields("contacts").into_iter().map(|f| f.name).collect();
        assert_eq!(names, ["associations.companies", "associations.deals"]);
        assert!(fields("tickets").is_empty());
    }
}
