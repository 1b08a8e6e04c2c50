//! Reads beyond the port: by a unique property, in batches, and the paged list of an object.

use domain::mapping::ExternalProperty;
use ports::crm::{ChangePage, ExternalRecord};
use ports::error::{PortError, PortResult};
use reqwest::Method;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::wire::{Batch, HsObject, decode};
use crate::{HubSpotClient, rejected};

/// HubSpot's batch read takes at most 100 inputs; a list page holds at most 100 records.
const MAX_BATCH: usize = 100;

/// What a batch read found, and the inputs it did not (HubSpot's 207 `context.ids`).
#[derive(Debug, Clone, PartialEq)]
pub struct BatchRead {
    pub found: Vec<ExternalRecord>,
    pub missing: Vec<String>,
}

#[derive(Deserialize)]
struct ListPage {
    #[serde(default)]
    results: Vec<HsObject>,
    paging: Option<Paging>,
}

#[derive(Deserialize)]
struct Paging {
    next: Option<Next>,
}

#[derive(Deserialize)]
struct Next {
    after: String,
}

fn names(props: &[ExternalProperty]) -> Vec<&str> {
    props.iter().map(ExternalProperty::as_str).collect()
}

/// Path-segment encoding: everything but RFC 3986's unreserved characters.
const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Percent-encodes a value for one path segment.
fn segment(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, SEGMENT).to_string()
}

impl HubSpotClient {
    /// Reads the record whose unique `id_property` holds `value` (`?idProperty=`), with property
    /// history. `NotFound` when none does.
    pub async fn get_by(
        &self,
        object: &str,
        id_property: &ExternalProperty,
        value: &str,
        properties: &[ExternalProperty],
    ) -> PortResult<ExternalRecord> {
        let csv = names(properties).join(",");
        let query = [
            ("idProperty", id_property.as_str().to_owned()),
            ("properties", csv.clone()),
            ("propertiesWithHistory", csv),
        ];
        let path = format!("{}/{}", self.objects(object), segment(value));
        let a = self.send(Method::GET, &path, &query, None).await?;
        if a.status != 200 {
            return Err(rejected(a.status, &a.body));
        }
        decode::<HsObject>(a.body, "object")?.into_record(properties)
    }

    /// Reads up to 100 records by id, or by a unique property's values. Inputs HubSpot cannot
    /// find are listed in `missing`, not errors. `Invalid` above 100 inputs.
    pub async fn batch_read(
        &self,
        object: &str,
        keys: &[String],
        id_property: Option<&ExternalProperty>,
        properties: &[ExternalProperty],
    ) -> PortResult<BatchRead> {
        if keys.len() > MAX_BATCH {
            return Err(PortError::Invalid(format!(
                "HubSpot batch reads take at most {MAX_BATCH} inputs, got {}",
                keys.len()
            )));
        }
        if keys.is_empty() {
            return Ok(BatchRead {
                found: Vec::new(),
                missing: Vec::new(),
            });
        }
        let inputs: Vec<Value> = keys.iter().map(|k| json!({ "id": k })).collect();
        let mut body = json!({
            "inputs": inputs,
            "properties": names(properties),
            "propertiesWithHistory": names(properties),
        });
        if let Some(p) = id_property {
            body["idProperty"] = json!(p.as_str());
        }
        let a = self
            .send(
                Method::POST,
                &format!("{}/batch/read", self.objects(object)),
                &[],
                Some(&body),
            )
            .await?;
        if !matches!(a.status, 200 | 207) {
            return Err(rejected(a.status, &a.body));
        }
        let batch: Batch = decode(a.body, "batch read")?;
        let missing = batch
            .errors
            .iter()
            .flat_map(|e| {
                e["context"]["ids"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
            })
            .collect();
        let found = batch
            .results
            .into_iter()
            .map(|o| o.into_record(properties))
            .collect::<PortResult<Vec<_>>>()?;
        Ok(BatchRead { found, missing })
    }

    /// One page (100 records) of an object's records in id order; `next` continues it.
    pub async fn list(
        &self,
        object: &str,
        properties: &[ExternalProperty],
        after: Option<String>,
    ) -> PortResult<ChangePage> {
        let mut query = vec![
            ("limit", MAX_BATCH.to_string()),
            ("properties", names(properties).join(",")),
        ];
        if let Some(a) = after {
            query.push(("after", a));
        }
        let a = self
            .send(Method::GET, &self.objects(object), &query, None)
            .await?;
        if a.status != 200 {
            return Err(rejected(a.status, &a.body));
        }
        let page: ListPage = decode(a.body, "list page")?;
        Ok(ChangePage {
            records: page
                .results
                .into_iter()
                .map(|o| o.into_record(properties))
                .collect::<PortResult<Vec<_>>>()?,
            next: page.paging.and_then(|p| p.next).map(|n| n.after),
        })
    }
}
