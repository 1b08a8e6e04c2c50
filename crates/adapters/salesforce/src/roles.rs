//! A deal's people in Salesforce: `OpportunityContactRole` rows, one per contact with a role on
//! the opportunity, read and written as one pseudo-field of `Opportunity`,
//! `OpportunityContactRole.ContactId` — the contacts' ids, as a list in id order.
//!
//! Reading it is one query; writing it sets the rows exactly (a row for each contact named, none
//! for any other), deleting and creating rows through sObject Collections, so a repeat writes
//! nothing. A row made here has no role (Salesforce does not require one).

use std::collections::BTreeMap;

use domain::field::FieldValue;
use domain::ids::ExternalId;
use domain::mapping::ExternalProperty;
use ports::error::{PortError, PortResult};
use reqwest::Method;
use serde_json::{Value, json};

use crate::{SalesforceClient, rejected};

/// The pseudo-field, as mappings name it.
pub const CONTACT_ROLES: &str = "OpportunityContactRole.ContactId";

/// Whether `p` is the pseudo-field of `object`.
pub(crate) fn is_roles(object: &str, p: &ExternalProperty) -> bool {
    object.eq_ignore_ascii_case("Opportunity") && p.as_str() == CONTACT_ROLES
}

/// A Salesforce id as it may go into SOQL (15 or 18 letters and digits).
fn soql_id(id: &str) -> PortResult<&str> {
    if matches!(id.len(), 15 | 18) && id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        Ok(id)
    } else {
        Err(PortError::Invalid(format!("{id:?} is not a Salesforce id")))
    }
}

/// `'a','b'` for a SOQL `IN`.
fn soql_ids<'a>(ids: impl Iterator<Item = &'a str>) -> PortResult<String> {
    Ok(ids
        .map(|id| soql_id(id).map(|id| format!("'{id}'")))
        .collect::<PortResult<Vec<_>>>()?
        .join(","))
}

impl SalesforceClient {
    /// A page of changed opportunities with their people: on the first page, the opportunities
    /// whose contact roles changed since `since` are added (a role row's change does not touch
    /// its opportunity), and every opportunity gets the pseudo-field. `select` is the
    /// opportunity fields the page was read with.
    pub(crate) async fn with_roles(
        &self,
        mut page: ports::crm::ChangePage,
        since: time::OffsetDateTime,
        first: bool,
        select: &str,
    ) -> PortResult<ports::crm::ChangePage> {
        let pseudo = ExternalProperty::parse(CONTACT_ROLES)?;
        if first {
            let soql = format!(
                "SELECT Id, OpportunityId FROM OpportunityContactRole WHERE SystemModstamp > {}",
                crate::wire::soql_time(since)
            );
            let mut touched = std::collections::BTreeSet::new();
            let mut next = None;
            loop {
                let rows = self.query(&soql, true, next.as_deref()).await?;
                for r in rows.records {
                    if let Some(FieldValue::Text(o)) =
                        r.properties.get(&ExternalProperty::parse("OpportunityId")?)
                        && !page.records.iter().any(|p| p.id.as_str() == o)
                    {
                        touched.insert(o.clone());
                    }
                }
                match rows.next {
                    Some(n) => next = Some(n),
                    None => break,
                }
            }
            if !touched.is_empty() {
                let soql = format!(
                    "SELECT {select} FROM Opportunity WHERE Id IN ({})",
                    soql_ids(touched.iter().map(String::as_str))?
                );
                page.records
                    .extend(self.query(&soql, true, None).await?.records);
            }
        }
        let live: Vec<&str> = page
            .records
            .iter()
            .filter(|r| !r.archived)
            .map(|r| r.id.as_str())
            .collect();
        let mut people: BTreeMap<String, Vec<String>> = BTreeMap::new();
        if !live.is_empty() {
            let soql = format!(
                "SELECT Id, OpportunityId, ContactId FROM OpportunityContactRole WHERE OpportunityId IN ({})",
                soql_ids(live.into_iter())?
            );
            let mut next = None;
            loop {
                let rows = self.query(&soql, false, next.as_deref()).await?;
                for r in rows.records {
                    let text = |f: &str| match r.properties.get(&ExternalProperty::parse(f).ok()?) {
                        Some(FieldValue::Text(t)) => Some(t.clone()),
                        _ => None,
                    };
                    if let (Some(o), Some(c)) = (text("OpportunityId"), text("ContactId")) {
                        people.entry(o).or_default().push(c);
                    }
                }
                match rows.next {
                    Some(n) => next = Some(n),
                    None => break,
                }
            }
        }
        for r in page.records.iter_mut().filter(|r| !r.archived) {
            let mut contacts = people.remove(r.id.as_str()).unwrap_or_default();
            contacts.sort();
            contacts.dedup();
            r.properties
                .insert(pseudo.clone(), FieldValue::List(contacts).normalized());
        }
        Ok(page)
    }

    /// The opportunity's contact-role rows: row id → contact id.
    async fn role_rows(&self, opportunity: &ExternalId) -> PortResult<BTreeMap<String, String>> {
        let soql = format!(
            "SELECT Id, ContactId FROM OpportunityContactRole WHERE OpportunityId = '{}'",
            soql_id(opportunity.as_str())?
        );
        let mut rows = BTreeMap::new();
        let mut next = None;
        loop {
            let page = self.query(&soql, false, next.as_deref()).await?;
            for r in page.records {
                if let Some(FieldValue::Text(c)) =
                    r.properties.get(&ExternalProperty::parse("ContactId")?)
                {
                    rows.insert(r.id.as_str().to_owned(), c.clone());
                }
            }
            match page.next {
                Some(n) => next = Some(n),
                None => return Ok(rows),
            }
        }
    }

    /// The contacts with a role on the opportunity, in id order (`Empty` for none).
    pub(crate) async fn contact_roles(&self, opportunity: &ExternalId) -> PortResult<FieldValue> {
        let mut contacts: Vec<String> = self.role_rows(opportunity).await?.into_values().collect();
        contacts.sort();
        contacts.dedup();
        Ok(FieldValue::List(contacts).normalized())
    }

    /// Sets the opportunity's contacts with a role to exactly `wanted` (contact ids). `Rejected`
    /// when Salesforce refuses a row (an id that is not a contact's).
    pub(crate) async fn set_contact_roles(
        &self,
        opportunity: &ExternalId,
        wanted: &FieldValue,
    ) -> PortResult<()> {
        let wanted: Vec<String> = match wanted.clone().normalized() {
            FieldValue::Empty => Vec::new(),
            FieldValue::Text(t) => vec![t],
            FieldValue::List(items) => items,
            other => {
                return Err(PortError::Invalid(format!(
                    "{CONTACT_ROLES} takes contact ids, not {other:?}"
                )));
            }
        };
        let rows = self.role_rows(opportunity).await?;
        let stale: Vec<&str> = rows
            .iter()
            .filter(|(_, c)| !wanted.contains(c))
            .map(|(row, _)| row.as_str())
            .collect();
        let missing: Vec<Value> = wanted
            .iter()
            .filter(|c| !rows.values().any(|have| have == *c))
            .map(|c| {
                json!({"attributes": {"type": "OpportunityContactRole"},
                       "OpportunityId": opportunity.as_str(), "ContactId": c})
            })
            .collect();
        if !stale.is_empty() {
            let a = self
                .send(
                    Method::DELETE,
                    "/composite/sobjects",
                    &[("ids", stale.join(",")), ("allOrNone", "true".into())],
                    None,
                )
                .await?;
            if a.status != 200 {
                return Err(rejected(a.status, &a.body));
            }
        }
        if !missing.is_empty() {
            let a = self
                .send(
                    Method::POST,
                    "/composite/sobjects",
                    &[],
                    Some(&json!({"allOrNone": true, "records": missing})),
                )
                .await?;
            if a.status != 200 {
                return Err(rejected(a.status, &a.body));
            }
            let items = a.body.as_array().map(Vec::as_slice).unwrap_or_default();
            if let Some(bad) = items.iter().find(|i| i["success"] != true) {
                return Err(rejected(400, bad));
            }
        }
        Ok(())
    }
}
