//! The contact service for "your app": find a person by e-mail (read through the cache), upsert a
//! person (Attio's assert on `email_addresses`: idempotent, and the cached copy is dropped), add a
//! note, create a task, put a record in a list at a stage. Writes go through the Attio client, so
//! they spend the workspace's write budget.

use std::sync::Arc;

use domain::cache::{CacheCategory, CacheKey, CacheTag};
use domain::field::FieldValue;
use domain::ids::{
    AttributeSlug, EntryId, ListSlug, NoteId, ObjectRef, ObjectSlug, RecordId, TaskId, TenantId,
};
use domain::record::Record;
use domain::schema::ContentFormat;
use domain::value::AttributeType;
use domain::write::{RecordWrite, WriteValue};
use ports::attio::{EntryWrite, ListRef, NewNote, NewTask, Query, TaskLink};
use ports::cache::Cache;
use ports::directory::ClientDirectory;
use ports::error::PortError;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::error::ServiceResult;

/// A person as the contact API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Person {
    pub id: RecordId,
    pub email: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub job_title: Option<String>,
}

/// What an upsert writes; absent fields are left as they are.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PersonInput {
    pub email: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub job_title: Option<String>,
}

fn text(v: FieldValue) -> Option<String> {
    match v {
        FieldValue::Empty => None,
        FieldValue::Text(s) => Some(s),
        FieldValue::Number(n) => Some(n.to_string()),
        FieldValue::Bool(b) => Some(b.to_string()),
        FieldValue::List(items) => Some(items.join(", ")),
    }
}

impl Person {
    fn from_record(r: &Record) -> Self {
        let field = |attr: &str, part: Option<&str>| {
            let values = r
                .values
                .iter()
                .find(|(s, _)| s.as_str() == attr)
                .map(|(_, v)| v.as_slice())
                .unwrap_or_default();
            text(FieldValue::from_attio(values, part, false))
        };
        Person {
            id: r.id.record_id,
            email: field("email_addresses", None),
            first_name: field("name", Some("first_name")),
            last_name: field("name", Some("last_name")),
            job_title: field("job_title", None),
        }
    }
}

fn slug(s: &str) -> ServiceResult<AttributeSlug> {
    Ok(AttributeSlug::parse(s)?)
}

fn people() -> ServiceResult<ObjectRef> {
    Ok(ObjectRef::from(ObjectSlug::parse("people")?))
}

/// The contact service.
pub struct ContactService {
    directory: Arc<dyn ClientDirectory>,
    cache: Arc<dyn Cache>,
}

impl std::fmt::Debug for ContactService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContactService").finish_non_exhaustive()
    }
}

impl ContactService {
    pub fn new(directory: Arc<dyn ClientDirectory>, cache: Arc<dyn Cache>) -> Self {
        Self { directory, cache }
    }

    fn key(tenant: &TenantId, email: &str) -> ServiceResult<CacheKey> {
        Ok(CacheKey::new(
            tenant.clone(),
            CacheCategory::Record,
            &format!("person-by-email:{}", email.trim().to_lowercase()),
        )?)
    }

    fn tag(tenant: &TenantId, id: RecordId) -> ServiceResult<CacheTag> {
        Ok(CacheTag::new(tenant.clone(), &format!("record:{id}"))?)
    }

    /// The person with this e-mail address, from the cache or Attio. `Ok(None)` when there is
    /// none; `Domain` for an address that is not one.
    pub async fn find_by_email(
        &self,
        tenant: &TenantId,
        email: &str,
    ) -> ServiceResult<Option<Person>> {
        WriteValue::from_json(&AttributeType::EmailAddress, &json!(email))?;
        let key = Self::key(tenant, email)?;
        match self.cache.get(&key).await {
            Ok(Some(bytes)) => {
                if let Ok(p) = serde_json::from_slice::<Person>(&bytes) {
                    return Ok(Some(p));
                }
            }
            Ok(None) => {}
            // A cache that cannot answer is a miss: read through.
            Err(e) => {
                tracing::warn!(error = %ports::Chain(&e), "the cache is unavailable; reading Attio")
            }
        }
        let clients = self.directory.clients(tenant).await?;
        let query = Query {
            filter: Some(json!({"email_addresses": email.trim()})),
            limit: Some(1),
            ..Query::default()
        };
        let found = clients.attio.query_records(&people()?, &query).await?;
        let Some(record) = found.first() else {
            return Ok(None);
        };
        let person = Person::from_record(record);
        let bytes = serde_json::to_vec(&person).map_err(|e| PortError::backend("cache", e))?;
        if let Err(e) = self
            .cache
            .put(
                &key,
                bytes,
                key.category.ttl(),
                &[Self::tag(tenant, person.id)?],
            )
            .await
        {
            tracing::warn!(error = %ports::Chain(&e), "cannot cache a person");
        }
        Ok(Some(person))
    }

    /// Creates or updates the person with this e-mail (Attio's assert): running it twice changes
    /// nothing more. Drops the cached copy. `Domain` for bad input.
    pub async fn upsert_person(
        &self,
        tenant: &TenantId,
        input: &PersonInput,
    ) -> ServiceResult<Person> {
        let email =
            WriteValue::from_json(&AttributeType::EmailAddress, &json!(input.email.trim()))?;
        let mut write = RecordWrite::new().set(slug("email_addresses")?, vec![email]);
        if input.first_name.is_some() || input.last_name.is_some() {
            write = write.set(
                slug("name")?,
                vec![WriteValue::personal_name(
                    input.first_name.as_deref().unwrap_or_default(),
                    input.last_name.as_deref().unwrap_or_default(),
                )],
            );
        }
        if let Some(t) = &input.job_title {
            write = write.set(slug("job_title")?, vec![WriteValue::Text(t.clone())]);
        }
        let clients = self.directory.clients(tenant).await?;
        let record = clients
            .attio
            .assert_record(&people()?, &slug("email_addresses")?, &write)
            .await?;
        let person = Person::from_record(&record);
        let key = Self::key(tenant, &input.email)?;
        for r in [
            self.cache.delete(&key).await,
            self.cache
                .invalidate_tag(&Self::tag(tenant, person.id)?)
                .await
                .map(|_| ()),
        ] {
            if let Err(e) = r {
                tracing::warn!(error = %ports::Chain(&e), "cannot drop a cached person; it expires with its TTL");
            }
        }
        Ok(person)
    }

    /// Drops every cached copy of a record (an Attio event says it changed). Cache failures are
    /// logged: the copies expire with their TTL.
    pub async fn invalidate_record(&self, tenant: &TenantId, record: RecordId) {
        match Self::tag(tenant, record) {
            Ok(tag) => {
                if let Err(e) = self.cache.invalidate_tag(&tag).await {
                    tracing::warn!(error = %ports::Chain(&e), "cannot drop cached copies of a record");
                }
            }
            Err(e) => tracing::warn!(error = %ports::Chain(&e), "cannot name a record's cache tag"),
        }
    }

    /// Adds a note to a record of `object`.
    pub async fn add_note(
        &self,
        tenant: &TenantId,
        object: &str,
        record: RecordId,
        title: &str,
        content: &str,
    ) -> ServiceResult<NoteId> {
        ObjectSlug::parse(object)?;
        let clients = self.directory.clients(tenant).await?;
        let note = clients
            .notes
            .create_note(&NewNote {
                parent_object: object.to_owned(),
                parent_record_id: record,
                title: title.to_owned(),
                format: ContentFormat::Plaintext,
                content: content.to_owned(),
                created_at: None,
            })
            .await?;
        Ok(note.id.note_id)
    }

    /// Creates a task, linked to a record when given.
    pub async fn create_task(
        &self,
        tenant: &TenantId,
        content: &str,
        deadline: Option<time::OffsetDateTime>,
        linked: Option<(String, RecordId)>,
    ) -> ServiceResult<TaskId> {
        if content.trim().is_empty() || content.chars().count() > 2_000 {
            return Err(PortError::Invalid(
                "a task's content must be 1 to 2,000 characters".into(),
            )
            .into());
        }
        let clients = self.directory.clients(tenant).await?;
        let task = clients
            .tasks
            .create_task(&NewTask {
                content: content.to_owned(),
                deadline_at: deadline,
                is_completed: false,
                linked_records: linked
                    .into_iter()
                    .map(|(target_object, target_record_id)| TaskLink {
                        target_object,
                        target_record_id,
                    })
                    .collect(),
                assignees: Vec::new(),
            })
            .await?;
        Ok(task.id.task_id)
    }

    /// Puts a record in a list (a pipeline) at a stage: the list's `stage` status attribute.
    /// Asserting the entry makes it idempotent per record.
    pub async fn add_to_list(
        &self,
        tenant: &TenantId,
        list: &str,
        object: &str,
        record: RecordId,
        stage: &str,
    ) -> ServiceResult<EntryId> {
        let list = ListRef::Slug(ListSlug::parse(list)?);
        ObjectSlug::parse(object)?;
        let clients = self.directory.clients(tenant).await?;
        let entry = clients
            .lists
            .assert_entry(
                &list,
                &EntryWrite {
                    parent_object: object.to_owned(),
                    parent_record_id: record,
                    entry_values: [(slug("stage")?, vec![WriteValue::Status(stage.to_owned())])]
                        .into(),
                },
            )
            .await?;
        if let Err(e) = self.cache.invalidate_tag(&Self::tag(tenant, record)?).await {
            tracing::warn!(error = %ports::Chain(&e), "cannot drop cached copies of a record");
        }
        Ok(entry.id.entry_id)
    }
}
