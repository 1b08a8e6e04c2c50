//! The external-CRM port over HubSpot.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;

use async_trait::async_trait;
use domain::ids::{ExternalId, SystemId};
use domain::mapping::ExternalProperty;
use ports::crm::{ChangePage, ExternalCrm, ExternalRecord, ExternalUpsert, RecordOutcome};
use ports::error::{PortError, PortResult};
use reqwest::Method;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::references;
use crate::wire::{Batch, HsObject, decode, to_hubspot};
use crate::{HubSpotClient, rejected};

const MAX_BATCH: usize = 100;
const PAGE: u64 = 100;
/// HubSpot's search stops at 10,000 results for one query.
const SEARCH_CAP: u64 = 10_000;

type Outcomes<'a> = Pin<Box<dyn Future<Output = PortResult<Vec<RecordOutcome>>> + Send + 'a>>;

/// The last-modified property of an object.
fn modified(object: &str) -> &'static str {
    if object == "contacts" || object == "0-1" {
        "lastmodifieddate"
    } else {
        "hs_lastmodifieddate"
    }
}

fn csv(props: &[ExternalProperty]) -> String {
    props
        .iter()
        .map(ExternalProperty::as_str)
        .collect::<Vec<_>>()
        .join(",")
}

fn ms(t: OffsetDateTime) -> i128 {
    t.unix_timestamp_nanos() / 1_000_000
}

/// The error messages of a batch, by the input key they name.
fn errors_by_key(errors: &[Value]) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for e in errors {
        let message = e["message"].as_str().unwrap_or("failed").to_owned();
        for key in e["context"]["id"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            out.insert(key.to_owned(), message.clone());
        }
    }
    out
}

impl HubSpotClient {
    /// Upserts one chunk; a whole-batch 409 (one record conflicts) is bisected until the record is
    /// isolated, so every other record still lands.
    fn upsert_chunk<'a>(
        &'a self,
        object: &'a str,
        id_property: &'a ExternalProperty,
        records: &'a [ExternalUpsert],
    ) -> Outcomes<'a> {
        Box::pin(async move {
            let inputs: Vec<Value> = records
                .iter()
                .map(|r| {
                    let props: serde_json::Map<String, Value> = r
                        .properties
                        .iter()
                        .filter(|(k, _)| references::association_of(k).is_none())
                        .map(|(k, v)| (k.as_str().to_owned(), json!(to_hubspot(v))))
                        .collect();
                    json!({"id": r.key, "idProperty": id_property.as_str(), "properties": props})
                })
                .collect();
            let path = format!("{}/batch/upsert", self.objects(object));
            let answer = self
                .send(Method::POST, &path, &[], Some(&json!({ "inputs": inputs })))
                .await?;
            match answer.status {
                200 | 207 => {
                    let batch: Batch = decode(answer.body, "batch upsert")?;
                    let mut results: HashMap<String, (String, bool)> = HashMap::new();
                    for r in batch.results {
                        if let Some(Some(key)) = r.properties.get(id_property.as_str()) {
                            results.insert(key.clone(), (r.id.clone(), r.new.unwrap_or(false)));
                        }
                    }
                    let failed = errors_by_key(&batch.errors);
                    records
                        .iter()
                        .map(|r| match results.get(&r.key) {
                            Some((id, created)) => {
                                let id = ExternalId::parse(id).map_err(|e| {
                                    PortError::backend("HubSpot object id", e.to_string())
                                })?;
                                Ok(if *created {
                                    RecordOutcome::Created(id)
                                } else {
                                    RecordOutcome::Updated(id)
                                })
                            }
                            None => Ok(RecordOutcome::Failed {
                                reason: failed.get(&r.key).cloned().unwrap_or_else(|| {
                                    "HubSpot returned no result for this record".into()
                                }),
                                retryable: !failed.contains_key(&r.key),
                            }),
                        })
                        .collect()
                }
                409 if records.len() > 1 => {
                    let (left, right) = records.split_at(records.len() / 2);
                    let mut out = self.upsert_chunk(object, id_property, left).await?;
                    out.extend(self.upsert_chunk(object, id_property, right).await?);
                    Ok(out)
                }
                // A unique value (a contact's e-mail) another record holds. Retried: in a sync
                // that other record is most often one whose delete or merge is still to be
                // handled (Attio keeps e-mails unique among live people), after which the write
                // goes through; a lasting clash is dead-lettered once the attempts run out.
                409 => Ok(vec![RecordOutcome::Failed {
                    reason: answer.body["message"]
                        .as_str()
                        .unwrap_or("conflict")
                        .to_owned(),
                    retryable: true,
                }]),
                s => Err(rejected(s, &answer.body)),
            }
        })
    }
}

#[async_trait]
impl ExternalCrm for HubSpotClient {
    fn system(&self) -> SystemId {
        crate::system()
    }

    fn max_batch(&self) -> usize {
        MAX_BATCH
    }

    async fn get(
        &self,
        object: &str,
        id: &ExternalId,
        properties: &[ExternalProperty],
    ) -> PortResult<ExternalRecord> {
        let (plain, refs) = references::split(properties);
        let mut query = vec![
            ("properties", csv(&plain)),
            ("propertiesWithHistory", csv(&plain)),
        ];
        if !refs.is_empty() {
            let objects: Vec<&str> = refs.iter().filter_map(references::association_of).collect();
            query.push(("associations", objects.join(",")));
        }
        let answer = self
            .send(
                Method::GET,
                &format!("{}/{id}", self.objects(object)),
                &query,
                None,
            )
            .await?;
        if answer.status != 200 {
            return Err(rejected(answer.status, &answer.body));
        }
        let mut found = decode::<HsObject>(answer.body, "object")?;
        let inline = std::mem::take(&mut found.associations);
        let mut record = found.into_record(&plain)?;
        let linked = self
            .inline_values(object, &record.id, inline, &refs)
            .await?;
        record.properties.extend(linked);
        Ok(record)
    }

    async fn upsert_batch(
        &self,
        object: &str,
        id_property: &ExternalProperty,
        records: &[ExternalUpsert],
    ) -> PortResult<Vec<RecordOutcome>> {
        if records.len() > MAX_BATCH {
            return Err(PortError::Invalid(format!(
                "HubSpot batches take at most {MAX_BATCH} records, got {}",
                records.len()
            )));
        }
        if records.is_empty() {
            return Ok(Vec::new());
        }
        let mut outcomes = self.upsert_chunk(object, id_property, records).await?;
        // Associations are not properties: made once the records exist.
        for (r, outcome) in records.iter().zip(outcomes.iter_mut()) {
            let (RecordOutcome::Created(id) | RecordOutcome::Updated(id)) = &*outcome else {
                continue;
            };
            match self.set_associations(object, id, &r.properties).await {
                Ok(()) => {}
                Err(
                    e @ (PortError::NotFound(_)
                    | PortError::Invalid(_)
                    | PortError::Rejected { .. }),
                ) => {
                    *outcome = RecordOutcome::Failed {
                        reason: format!("its associations could not be set: {e}"),
                        retryable: false,
                    };
                }
                Err(e) => return Err(e),
            }
        }
        Ok(outcomes)
    }

    /// HubSpot archives unknown ids silently, so the ids are read first and unknown ones reported.
    async fn archive_batch(
        &self,
        object: &str,
        ids: &[ExternalId],
    ) -> PortResult<Vec<RecordOutcome>> {
        if ids.len() > MAX_BATCH {
            return Err(PortError::Invalid(format!(
                "HubSpot batches take at most {MAX_BATCH} records, got {}",
                ids.len()
            )));
        }
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let inputs: Vec<Value> = ids.iter().map(|id| json!({ "id": id.as_str() })).collect();
        let read = self
            .send(
                Method::POST,
                &format!("{}/batch/read", self.objects(object)),
                &[],
                Some(&json!({"inputs": inputs, "properties": []})),
            )
            .await?;
        if !matches!(read.status, 200 | 207) {
            return Err(rejected(read.status, &read.body));
        }
        let found: Batch = decode(read.body, "batch read")?;
        let known: std::collections::HashSet<String> =
            found.results.into_iter().map(|r| r.id).collect();
        let to_archive: Vec<Value> = ids
            .iter()
            .filter(|id| known.contains(id.as_str()))
            .map(|id| json!({ "id": id.as_str() }))
            .collect();
        if !to_archive.is_empty() {
            let done = self
                .send(
                    Method::POST,
                    &format!("{}/batch/archive", self.objects(object)),
                    &[],
                    Some(&json!({ "inputs": to_archive })),
                )
                .await?;
            if done.status != 204 && done.status != 200 {
                return Err(rejected(done.status, &done.body));
            }
        }
        Ok(ids
            .iter()
            .map(|id| {
                if known.contains(id.as_str()) {
                    RecordOutcome::Updated(id.clone())
                } else {
                    RecordOutcome::Failed {
                        reason: format!("{object} {id} does not exist"),
                        retryable: false,
                    }
                }
            })
            .collect())
    }

    /// Search on the last-modified property (`GTE`, ascending). The cursor is `{since_ms}:{offset}`;
    /// before the 10,000-result cap it restarts from the last timestamp seen, so records sharing
    /// that timestamp may come twice (callers deduplicate by id).
    async fn changed_since(
        &self,
        object: &str,
        since: OffsetDateTime,
        properties: &[ExternalProperty],
        after: Option<String>,
    ) -> PortResult<ChangePage> {
        let (since_ms, offset): (i128, u64) = match after.as_deref().and_then(|c| c.split_once(':'))
        {
            Some((s, o)) => (
                s.parse().map_err(|_| {
                    PortError::Invalid(format!("not a HubSpot change cursor: {after:?}"))
                })?,
                o.parse().map_err(|_| {
                    PortError::Invalid(format!("not a HubSpot change cursor: {after:?}"))
                })?,
            ),
            None if after.is_some() => {
                return Err(PortError::Invalid(format!(
                    "not a HubSpot change cursor: {after:?}"
                )));
            }
            None => (ms(since), 0),
        };
        let modified = modified(object);
        // Search returns no associations: a change to them comes by webhook
        // (`*.associationChange`), and a sync of the record reads them.
        let (properties, _) = references::split(properties);
        let properties = properties.as_slice();
        let mut wanted: Vec<String> = properties.iter().map(|p| p.as_str().to_owned()).collect();
        wanted.push(modified.to_owned());
        let body = json!({
            "filterGroups": [{"filters": [{"propertyName": modified, "operator": "GTE", "value": since_ms.to_string()}]}],
            "sorts": [{"propertyName": modified, "direction": "ASCENDING"}],
            "properties": wanted,
            "limit": PAGE,
            "after": offset.to_string(),
        });
        let answer = self
            .send(
                Method::POST,
                &format!("{}/search", self.objects(object)),
                &[],
                Some(&body),
            )
            .await?;
        if answer.status != 200 {
            return Err(rejected(answer.status, &answer.body));
        }
        let next_offset = answer.body["paging"]["next"]["after"]
            .as_str()
            .and_then(|a| a.parse::<u64>().ok());
        let objects: Vec<HsObject> = decode(answer.body["results"].clone(), "search results")?;
        let last_modified = objects
            .last()
            .and_then(|o| o.properties.get(modified).cloned().flatten())
            .and_then(|v| OffsetDateTime::parse(&v, &Rfc3339).ok())
            .map(ms);
        let records = objects
            .into_iter()
            .map(|o| o.into_record(properties))
            .collect::<PortResult<Vec<_>>>()?;
        let next = match (next_offset, last_modified) {
            (Some(n), Some(last)) if n + PAGE > SEARCH_CAP => Some(format!("{last}:0")),
            (Some(n), _) => Some(format!("{since_ms}:{n}")),
            (None, _) => None,
        };
        Ok(ChangePage { records, next })
    }

    async fn describe(&self, object: &str) -> PortResult<Vec<ports::crm::ExternalField>> {
        let mut fields = self.properties(object).await?;
        fields.extend(references::fields(object));
        Ok(fields)
    }

    /// `PATCH /crm/v3/objects/{object}/{id}`, which also takes an id merged into another.
    async fn update(
        &self,
        object: &str,
        id: &ExternalId,
        properties: &std::collections::BTreeMap<ExternalProperty, domain::field::FieldValue>,
    ) -> PortResult<()> {
        let props: serde_json::Map<String, serde_json::Value> = properties
            .iter()
            .filter(|(k, _)| references::association_of(k).is_none())
            .map(|(k, v)| (k.as_str().to_owned(), json!(crate::wire::to_hubspot(v))))
            .collect();
        if props.len() < properties.len() {
            self.set_associations(object, id, properties).await?;
            if props.is_empty() {
                return Ok(());
            }
        }
        let answer = self
            .send(
                Method::PATCH,
                &format!("{}/{}", self.objects(object), id.as_str()),
                &[],
                Some(&json!({ "properties": props })),
            )
            .await?;
        match answer.status {
            200 => Ok(()),
            404 => Err(PortError::NotFound(format!(
                "HubSpot {object} {}",
                id.as_str()
            ))),
            s => Err(rejected(s, &answer.body)),
        }
    }

    /// `GET /crm/v3/owners`, every page; an owner's `id` is what `hubspot_owner_id` holds.
    async fn owners(&self) -> PortResult<Vec<ports::crm::CrmOwner>> {
        let mut out = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let mut query = vec![("limit", "500".to_owned())];
            if let Some(a) = &after {
                query.push(("after", a.clone()));
            }
            let answer = self
                .send(Method::GET, "/crm/v3/owners", &query, None)
                .await?;
            if answer.status != 200 {
                return Err(rejected(answer.status, &answer.body));
            }
            for o in answer.body["results"].as_array().into_iter().flatten() {
                let (Some(id), Some(email)) = (o["id"].as_str(), o["email"].as_str()) else {
                    continue;
                };
                out.push(ports::crm::CrmOwner {
                    id: ExternalId::parse(id)
                        .map_err(|e| PortError::backend("HubSpot owner id", e.to_string()))?,
                    email: email.to_owned(),
                });
            }
            match answer.body["paging"]["next"]["after"].as_str() {
                Some(a) => after = Some(a.to_owned()),
                None => return Ok(out),
            }
        }
    }

    /// A search for the record whose `hs_merged_object_ids` holds `id` (`CONTAINS_TOKEN`, then
    /// checked exactly, since a token search also matches longer ids).
    async fn successor(&self, object: &str, id: &ExternalId) -> PortResult<Option<ExternalId>> {
        const MERGED: &str = "hs_merged_object_ids";
        let body = json!({
            "filterGroups": [{"filters": [{"propertyName": MERGED, "operator": "CONTAINS_TOKEN", "value": id.as_str()}]}],
            "properties": [MERGED],
            "limit": 10,
        });
        let answer = self
            .send(
                Method::POST,
                &format!("{}/search", self.objects(object)),
                &[],
                Some(&body),
            )
            .await?;
        if answer.status != 200 {
            return Err(rejected(answer.status, &answer.body));
        }
        let found: Vec<HsObject> = decode(answer.body["results"].clone(), "search results")?;
        found
            .into_iter()
            .find(|o| {
                o.properties
                    .get(MERGED)
                    .and_then(Option::as_deref)
                    .is_some_and(|ids| ids.split(';').any(|m| m.trim() == id.as_str()))
            })
            .map(|o| {
                ExternalId::parse(&o.id)
                    .map_err(|e| PortError::backend("HubSpot object id", e.to_string()))
            })
            .transpose()
    }

    async fn merge(
        &self,
        object: &str,
        primary: &ExternalId,
        secondary: &ExternalId,
    ) -> PortResult<ExternalId> {
        let body =
            json!({"primaryObjectId": primary.as_str(), "objectIdToMerge": secondary.as_str()});
        let answer = self
            .send(
                Method::POST,
                &format!("{}/merge", self.objects(object)),
                &[],
                Some(&body),
            )
            .await?;
        if answer.status != 200 {
            return Err(rejected(answer.status, &answer.body));
        }
        let merged: HsObject = decode(answer.body, "merge result")?;
        ExternalId::parse(&merged.id)
            .map_err(|e| PortError::backend("HubSpot object id", e.to_string()))
    }
}
