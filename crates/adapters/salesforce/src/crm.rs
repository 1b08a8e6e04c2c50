//! The external-CRM port over Salesforce, and the polling calls only Salesforce has
//! (getUpdated, getDeleted, SOQL).

use async_trait::async_trait;
use domain::ids::{ExternalId, SystemId};
use domain::mapping::ExternalProperty;
use ports::crm::{ChangePage, ExternalCrm, ExternalRecord, ExternalUpsert, RecordOutcome};
use ports::error::{PortError, PortResult};
use reqwest::Method;
use serde_json::{Map, Value, json};
use time::OffsetDateTime;

use crate::roles::is_roles;
use crate::wire::{SfError, parse_time, record, soql_time, to_salesforce};
use crate::{SalesforceClient, rejected, system};

/// sObject Collections take at most 200 records.
const MAX_BATCH: usize = 200;

/// What getUpdated reports.
#[derive(Debug, Clone, PartialEq)]
pub struct UpdatedIds {
    pub ids: Vec<ExternalId>,
    /// Where the next window should start.
    pub latest_date_covered: OffsetDateTime,
}

/// What getDeleted reports.
#[derive(Debug, Clone, PartialEq)]
pub struct DeletedPage {
    pub deleted: Vec<(ExternalId, OffsetDateTime)>,
    /// Deletes before this are gone from the log: a window starting earlier needs a full resync.
    pub earliest_date_available: OffsetDateTime,
    pub latest_date_covered: OffsetDateTime,
}

impl DeletedPage {
    /// Whether deletes may have been missed for a window starting at `start`.
    pub fn needs_resync(&self, start: OffsetDateTime) -> bool {
        start < self.earliest_date_available
    }
}

/// The objects Salesforce merges; their records carry `MasterRecordId`.
const MERGED_OBJECTS: &[&str] = &["Contact", "Account", "Lead"];

fn sobject(object: &str) -> PortResult<&str> {
    let ok = !object.is_empty()
        && object
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if ok {
        Ok(object)
    } else {
        Err(PortError::Invalid(format!(
            "{object:?} is not an sObject name"
        )))
    }
}

fn time_field(v: &Value, key: &str) -> PortResult<OffsetDateTime> {
    v[key].as_str().and_then(parse_time).ok_or_else(|| {
        PortError::backend("Salesforce", format!("{key} is missing or not a datetime"))
    })
}

/// A collection item's outcome.
fn outcome(item: &Value) -> PortResult<RecordOutcome> {
    if item["success"] == true {
        let id = ExternalId::parse(item["id"].as_str().unwrap_or_default())?;
        return Ok(if item["created"] == true {
            RecordOutcome::Created(id)
        } else {
            RecordOutcome::Updated(id)
        });
    }
    let e = SfError::decode(item).unwrap_or_else(|| SfError {
        code: "UNKNOWN".into(),
        message: item.to_string(),
        fields: Vec::new(),
    });
    Ok(RecordOutcome::Failed {
        retryable: e.retryable(),
        reason: e.to_string(),
    })
}

impl SalesforceClient {
    /// Runs a SOQL query (`query_all` includes deleted and merged rows) or continues one from a
    /// `nextRecordsUrl`. The query must select `Id` (records are keyed by it; a row without one
    /// is a `Backend` error). `Rejected` with `MALFORMED_QUERY` / `INVALID_FIELD` for bad SOQL.
    pub async fn query(
        &self,
        soql: &str,
        query_all: bool,
        next: Option<&str>,
    ) -> PortResult<ChangePage> {
        let answer = match next {
            Some(url) => {
                if !url.starts_with("/services/data/") {
                    return Err(PortError::Invalid(format!(
                        "{url:?} is not a nextRecordsUrl"
                    )));
                }
                self.send(Method::GET, url, &[], None).await?
            }
            None => {
                let path = if query_all { "/queryAll" } else { "/query" };
                self.send(Method::GET, path, &[("q", soql.to_owned())], None)
                    .await?
            }
        };
        if answer.status != 200 {
            return Err(rejected(answer.status, &answer.body));
        }
        let records = answer.body["records"]
            .as_array()
            .ok_or_else(|| PortError::backend("Salesforce", "a query answer has no records"))?
            .iter()
            .map(record)
            .collect::<PortResult<Vec<_>>>()?;
        let next = answer.body["nextRecordsUrl"].as_str().map(str::to_owned);
        Ok(ChangePage { records, next })
    }

    /// Upserts one record by an external id (`PATCH /sobjects/{object}/{field}/{value}`).
    /// `Conflict` when the value matches several records (300) or collides with a unique field.
    pub async fn upsert_one(
        &self,
        object: &str,
        field: &ExternalProperty,
        record: &ExternalUpsert,
    ) -> PortResult<RecordOutcome> {
        let body: Map<String, Value> = record
            .properties
            .iter()
            .filter(|(k, _)| *k != field)
            .map(|(k, v)| (k.as_str().to_owned(), to_salesforce(v)))
            .collect();
        let path = format!(
            "/sobjects/{}/{}/{}",
            sobject(object)?,
            field.as_str(),
            utf8_percent(&record.key)
        );
        let a = self
            .send(Method::PATCH, &path, &[], Some(&Value::Object(body)))
            .await?;
        match a.status {
            200 | 201 => outcome(&a.body),
            // API versions before 46.0 answer an update with no body (not configurable here:
            // `validate` requires 46.0, so this is defensive).
            204 => Err(PortError::backend(
                "Salesforce",
                "an upsert answered 204 without the record id",
            )),
            s => Err(rejected(s, &a.body)),
        }
    }

    /// One getUpdated/getDeleted call (`kind` = `updated` or `deleted`) over `[start, end)`.
    async fn replication(
        &self,
        object: &str,
        kind: &str,
        start: OffsetDateTime,
        end: OffsetDateTime,
    ) -> PortResult<Value> {
        let path = format!("/sobjects/{}/{kind}/", sobject(object)?);
        let query = [("start", soql_time(start)), ("end", soql_time(end))];
        let a = self.send(Method::GET, &path, &query, None).await?;
        if a.status != 200 {
            return Err(rejected(a.status, &a.body));
        }
        Ok(a.body)
    }

    /// Ids of records changed in `[start, end)` (minute granularity, at most 30 days back).
    pub async fn updated(
        &self,
        object: &str,
        start: OffsetDateTime,
        end: OffsetDateTime,
    ) -> PortResult<UpdatedIds> {
        let a = self.replication(object, "updated", start, end).await?;
        let ids = a["ids"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(ExternalId::parse)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(UpdatedIds {
            ids,
            latest_date_covered: time_field(&a, "latestDateCovered")?,
        })
    }

    /// Records deleted in `[start, end)` (at most 15 days back).
    pub async fn deleted(
        &self,
        object: &str,
        start: OffsetDateTime,
        end: OffsetDateTime,
    ) -> PortResult<DeletedPage> {
        let a = self.replication(object, "deleted", start, end).await?;
        let deleted = a["deletedRecords"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|d| {
                Ok((
                    ExternalId::parse(d["id"].as_str().unwrap_or_default())?,
                    time_field(d, "deletedDate")?,
                ))
            })
            .collect::<PortResult<Vec<_>>>()?;
        Ok(DeletedPage {
            deleted,
            earliest_date_available: time_field(&a, "earliestDateAvailable")?,
            latest_date_covered: time_field(&a, "latestDateCovered")?,
        })
    }
}

/// Path-segment encoding: everything but RFC 3986's unreserved characters.
const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Percent-encodes a value for one path segment.
fn utf8_percent(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, SEGMENT).to_string()
}

#[async_trait]
impl ExternalCrm for SalesforceClient {
    fn system(&self) -> SystemId {
        system()
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
        let mut fields = vec!["Id".to_owned(), "SystemModstamp".to_owned()];
        fields.extend(
            properties
                .iter()
                .filter(|p| !is_roles(object, p))
                .map(|p| p.as_str().to_owned()),
        );
        let path = format!(
            "/sobjects/{}/{}",
            sobject(object)?,
            utf8_percent(id.as_str())
        );
        let a = self
            .send(Method::GET, &path, &[("fields", fields.join(","))], None)
            .await?;
        let mut r = match a.status {
            200 => record(&a.body)?,
            s => return Err(rejected(s, &a.body)),
        };
        // A deal's people: its contact roles, read apart.
        if let Some(roles) = properties.iter().find(|p| is_roles(object, p)) {
            r.properties
                .insert(roles.clone(), self.contact_roles(&r.id).await?);
        }
        Ok(r)
    }

    async fn upsert_batch(
        &self,
        object: &str,
        id_property: &ExternalProperty,
        records: &[ExternalUpsert],
    ) -> PortResult<Vec<RecordOutcome>> {
        if records.len() > MAX_BATCH {
            return Err(PortError::Invalid(format!(
                "sObject Collections take at most {MAX_BATCH} records, got {}",
                records.len()
            )));
        }
        if records.is_empty() {
            return Ok(Vec::new());
        }
        let given = object;
        let object = sobject(object)?;
        let items: Vec<Value> = records
            .iter()
            .map(|r| {
                let mut m: Map<String, Value> = r
                    .properties
                    .iter()
                    .filter(|(k, _)| !is_roles(given, k))
                    .map(|(k, v)| (k.as_str().to_owned(), to_salesforce(v)))
                    .collect();
                m.insert("attributes".into(), json!({"type": object}));
                m.insert(id_property.as_str().to_owned(), json!(r.key));
                Value::Object(m)
            })
            .collect();
        let a = self
            .send(
                Method::PATCH,
                &format!("/composite/sobjects/{object}/{}", id_property.as_str()),
                &[],
                Some(&json!({"allOrNone": false, "records": items})),
            )
            .await?;
        if a.status != 200 {
            return Err(rejected(a.status, &a.body));
        }
        let results = a
            .body
            .as_array()
            .filter(|r| r.len() == records.len())
            .ok_or_else(|| {
                PortError::backend(
                    "Salesforce",
                    "a collection answer does not match its request",
                )
            })?;
        let outcomes: Vec<RecordOutcome> =
            results.iter().map(outcome).collect::<PortResult<_>>()?;
        // A deal's people, set on each opportunity written: a refusal fails that record only.
        let mut done = Vec::with_capacity(outcomes.len());
        for (o, r) in outcomes.into_iter().zip(records) {
            let roles = r.properties.iter().find(|(k, _)| is_roles(given, k));
            let (Some((_, wanted)), RecordOutcome::Created(id) | RecordOutcome::Updated(id)) =
                (roles, &o)
            else {
                done.push(o);
                continue;
            };
            match self.set_contact_roles(id, wanted).await {
                Ok(()) => done.push(o),
                Err(e @ PortError::Rejected { .. }) => done.push(RecordOutcome::Failed {
                    retryable: false,
                    reason: format!("{}: {e}", crate::roles::CONTACT_ROLES),
                }),
                Err(e) => return Err(e),
            }
        }
        Ok(done)
    }

    async fn archive_batch(
        &self,
        object: &str,
        ids: &[ExternalId],
    ) -> PortResult<Vec<RecordOutcome>> {
        sobject(object)?;
        if ids.len() > MAX_BATCH {
            return Err(PortError::Invalid(format!(
                "sObject Collections take at most {MAX_BATCH} ids, got {}",
                ids.len()
            )));
        }
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let list = ids
            .iter()
            .map(ExternalId::as_str)
            .collect::<Vec<_>>()
            .join(",");
        let a = self
            .send(
                Method::DELETE,
                "/composite/sobjects",
                &[("ids", list), ("allOrNone", "false".into())],
                None,
            )
            .await?;
        if a.status != 200 {
            return Err(rejected(a.status, &a.body));
        }
        let results = a
            .body
            .as_array()
            .filter(|r| r.len() == ids.len())
            .ok_or_else(|| {
                PortError::backend(
                    "Salesforce",
                    "a collection answer does not match its request",
                )
            })?;
        results.iter().map(outcome).collect()
    }

    /// Pages through `queryAll` on `SystemModstamp`, so deletions (still in the Recycle Bin)
    /// come back as archived records.
    async fn changed_since(
        &self,
        object: &str,
        since: OffsetDateTime,
        properties: &[ExternalProperty],
        after: Option<String>,
    ) -> PortResult<ChangePage> {
        let mut fields = vec!["Id", "SystemModstamp", "IsDeleted"];
        // A record merged away is deleted with the survivor's id.
        if MERGED_OBJECTS.contains(&sobject(object)?) {
            fields.push("MasterRecordId");
        }
        fields.extend(
            properties
                .iter()
                .filter(|p| !is_roles(object, p))
                .map(ExternalProperty::as_str),
        );
        let soql = format!(
            "SELECT {} FROM {} WHERE SystemModstamp > {} ORDER BY SystemModstamp ASC",
            fields.join(", "),
            sobject(object)?,
            soql_time(since)
        );
        let first = after.is_none();
        let page = self.query(&soql, true, after.as_deref()).await?;
        if properties.iter().any(|p| is_roles(object, p)) {
            return self
                .with_roles(page, since, first, &fields.join(", "))
                .await;
        }
        Ok(page)
    }

    /// `GET /sobjects/{object}/describe`: each field's `type` (`string`, `email`, `phone`,
    /// `url`, `textarea` as text; `double`, `int`, `currency`, `percent` as numbers; `boolean`;
    /// `date`; `datetime`; `picklist`, `multipicklist` with their active `picklistValues`;
    /// `reference`, `id`), required when it is not `nillable`, not `defaultedOnCreate` and
    /// `createable`, writable when `updateable`.
    async fn describe(&self, object: &str) -> PortResult<Vec<ports::crm::ExternalField>> {
        use ports::crm::{ExternalField, FieldKind};
        let answer = self
            .send(
                Method::GET,
                &format!("/sobjects/{}/describe", sobject(object)?),
                &[],
                None,
            )
            .await?;
        match answer.status {
            200 => {}
            404 => return Err(PortError::NotFound(format!("sObject {object}"))),
            status => return Err(rejected(status, &answer.body)),
        }
        let fields = answer.body["fields"]
            .as_array()
            .ok_or_else(|| PortError::backend("Salesforce", "a describe answer has no fields"))?;
        // An opportunity's people: its contact roles, as one writable reference field.
        let roles = sobject(object)?
            .eq_ignore_ascii_case("Opportunity")
            .then(|| ExternalField {
                name: crate::roles::CONTACT_ROLES.to_owned(),
                kind: FieldKind::Reference,
                options: Vec::new(),
                required: false,
                writable: true,
            });
        Ok(fields
            .iter()
            .filter_map(|f| {
                let name = f["name"].as_str()?.to_owned();
                let flag = |k: &str| f[k].as_bool().unwrap_or(false);
                let kind = match f["type"].as_str().unwrap_or_default() {
                    "string" | "email" | "phone" | "url" | "textarea" | "encryptedstring" => {
                        FieldKind::Text
                    }
                    "double" | "int" | "long" | "currency" | "percent" => FieldKind::Number,
                    "boolean" => FieldKind::Bool,
                    "date" => FieldKind::Date,
                    "datetime" => FieldKind::DateTime,
                    "picklist" => FieldKind::Choice,
                    "multipicklist" => FieldKind::MultiChoice,
                    "reference" | "id" => FieldKind::Reference,
                    other => FieldKind::Other(other.to_owned()),
                };
                let options = f["picklistValues"]
                    .as_array()
                    .map(|vs| {
                        vs.iter()
                            .filter(|v| v["active"].as_bool().unwrap_or(true))
                            .filter_map(|v| v["value"].as_str().map(str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default();
                Some(ExternalField {
                    name,
                    kind,
                    options,
                    required: !flag("nillable") && !flag("defaultedOnCreate") && flag("createable"),
                    writable: flag("updateable"),
                })
            })
            .chain(roles)
            .collect())
    }

    /// `PATCH /sobjects/{object}/{id}`.
    async fn update(
        &self,
        object: &str,
        id: &ExternalId,
        properties: &std::collections::BTreeMap<ExternalProperty, domain::field::FieldValue>,
    ) -> PortResult<()> {
        let body: Map<String, Value> = properties
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), to_salesforce(v)))
            .collect();
        let path = format!(
            "/sobjects/{}/{}",
            sobject(object)?,
            utf8_percent(id.as_str())
        );
        let a = self
            .send(Method::PATCH, &path, &[], Some(&Value::Object(body)))
            .await?;
        match a.status {
            200 | 204 => Ok(()),
            404 => Err(PortError::NotFound(format!(
                "Salesforce {object} {}",
                id.as_str()
            ))),
            s => Err(rejected(s, &a.body)),
        }
    }

    /// The org's active users (`User`, whom `OwnerId` names), every page.
    async fn owners(&self) -> PortResult<Vec<ports::crm::CrmOwner>> {
        let mut out = Vec::new();
        let mut next: Option<String> = None;
        loop {
            let page = self
                .query(
                    "SELECT Id, Email, IsActive FROM User",
                    false,
                    next.as_deref(),
                )
                .await?;
            for r in page.records {
                let active = !matches!(
                    r.properties.get(&ExternalProperty::parse("IsActive")?),
                    Some(domain::field::FieldValue::Bool(false))
                );
                if let Some(domain::field::FieldValue::Text(email)) =
                    r.properties.get(&ExternalProperty::parse("Email")?)
                    && active
                {
                    out.push(ports::crm::CrmOwner {
                        id: r.id,
                        email: email.clone(),
                    });
                }
            }
            match page.next {
                Some(n) => next = Some(n),
                None => return Ok(out),
            }
        }
    }

    /// `queryAll` of the record's `MasterRecordId` (Contact, Account and Lead are merged; a
    /// merged record is deleted with it set).
    async fn successor(&self, object: &str, id: &ExternalId) -> PortResult<Option<ExternalId>> {
        let object = sobject(object)?;
        if !MERGED_OBJECTS.contains(&object) {
            return Ok(None);
        }
        if !id.as_str().bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(PortError::Invalid(format!(
                "{:?} is not a Salesforce id",
                id.as_str()
            )));
        }
        let soql = format!(
            "SELECT Id, MasterRecordId FROM {object} WHERE Id = '{}'",
            id.as_str()
        );
        let page = self.query(&soql, true, None).await?;
        Ok(page.records.into_iter().find_map(|r| r.merged_into))
    }

    async fn merge(
        &self,
        _object: &str,
        _primary: &ExternalId,
        _secondary: &ExternalId,
    ) -> PortResult<ExternalId> {
        // Salesforce merges only through SOAP or Apex, not the REST API.
        Err(PortError::Unsupported {
            adapter: "salesforce",
            operation: "merge",
        })
    }
}
