//! Accounts, objects and records as HubSpot keeps them: numeric-string ids, string property values,
//! per-property history, archiving, unique properties.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Instant;

use serde_json::{Map, Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// ISO 8601 with milliseconds and `Z`, as HubSpot writes it.
pub fn iso(t: OffsetDateTime) -> String {
    let t = t
        .replace_nanosecond(t.millisecond() as u32 * 1_000_000)
        .unwrap_or(t);
    t.format(&Rfc3339).unwrap_or_default()
}

/// One object type.
#[derive(Debug, Clone)]
pub struct ObjectSpec {
    pub name: &'static str,
    pub type_id: &'static str,
    /// `lastmodifieddate` on contacts, `hs_lastmodifieddate` elsewhere.
    pub modified_property: &'static str,
    pub properties: Vec<String>,
    pub unique: Vec<String>,
    /// Returned when a request names no properties.
    pub defaults: Vec<&'static str>,
    /// Properties a create must set (`hs_timestamp` on notes and tasks).
    pub required: Vec<&'static str>,
}

const READ_ONLY: &[&str] = &[
    "createdate",
    "lastmodifieddate",
    "hs_lastmodifieddate",
    "hs_object_id",
];

/// The singular of an object name (`contacts` → `contact`, `companies` → `company`).
pub(crate) fn singular(name: &str) -> String {
    name.strip_suffix("ies")
        .map(|s| format!("{s}y"))
        .unwrap_or_else(|| name.trim_end_matches('s').to_owned())
}

impl ObjectSpec {
    /// What a write answers with: the properties written plus the ones HubSpot always returns
    /// from a create or an update (`createdate`, `hs_object_id` and the last-modified date).
    pub fn written<'a>(&self, props: impl IntoIterator<Item = &'a String>) -> Vec<String> {
        let mut names: Vec<String> = props.into_iter().cloned().collect();
        for p in ["createdate", "hs_object_id", self.modified_property] {
            if !names.iter().any(|n| n == p) {
                names.push(p.to_owned());
            }
        }
        names
    }

    /// The singular name HubSpot uses in event types and messages: `contact`, `company`, `deal`.
    pub fn singular(&self) -> String {
        singular(self.name)
    }

    pub fn standard(extra_unique: &[String]) -> Vec<ObjectSpec> {
        let mk = |name,
                  type_id,
                  modified,
                  props: &[&str],
                  unique: &[&str],
                  defaults: &[&'static str]| {
            let mut properties: Vec<String> = props.iter().map(|p| (*p).to_owned()).collect();
            properties.extend(READ_ONLY.iter().map(|p| (*p).to_owned()));
            properties.push("hs_merged_object_ids".to_owned());
            let mut unique: Vec<String> = unique.iter().map(|p| (*p).to_owned()).collect();
            for u in extra_unique {
                if !properties.contains(u) {
                    properties.push(u.clone());
                }
                unique.push(u.clone());
            }
            ObjectSpec {
                name,
                type_id,
                modified_property: modified,
                properties,
                unique,
                defaults: defaults.to_vec(),
                required: Vec::new(),
            }
        };
        // Engagements: notes and tasks, which need `hs_timestamp` when created.
        let engagement = |name, type_id, props: &[&str], defaults: &[&'static str]| {
            let mut spec = mk(name, type_id, "hs_lastmodifieddate", props, &[], defaults);
            spec.unique.clear();
            spec.required = vec!["hs_timestamp"];
            spec
        };
        vec![
            mk(
                "contacts",
                "0-1",
                "lastmodifieddate",
                &[
                    "email",
                    "firstname",
                    "lastname",
                    "phone",
                    "company",
                    "jobtitle",
                    "website",
                    "lifecyclestage",
                    "hs_additional_emails",
                    "hubspot_owner_id",
                ],
                &["email"],
                &[
                    "createdate",
                    "email",
                    "firstname",
                    "hs_object_id",
                    "lastmodifieddate",
                    "lastname",
                ],
            ),
            mk(
                "companies",
                "0-2",
                "hs_lastmodifieddate",
                &[
                    "name",
                    "domain",
                    "phone",
                    "website",
                    "industry",
                    "city",
                    "country",
                    "description",
                    "hubspot_owner_id",
                    // A custom multiple-checkbox property, as a portal adds one.
                    "tags",
                ],
                &[],
                &[
                    "name",
                    "domain",
                    "createdate",
                    "hs_lastmodifieddate",
                    "hs_object_id",
                ],
            ),
            mk(
                "deals",
                "0-3",
                "hs_lastmodifieddate",
                &[
                    "dealname",
                    "amount",
                    "closedate",
                    "pipeline",
                    "dealstage",
                    "description",
                    "dealtype",
                    "hubspot_owner_id",
                ],
                &[],
                &[
                    "dealname",
                    "amount",
                    "closedate",
                    "pipeline",
                    "dealstage",
                    "createdate",
                    "hs_lastmodifieddate",
                    "hs_object_id",
                ],
            ),
            engagement(
                "notes",
                "0-46",
                &["hs_timestamp", "hs_note_body", "hubspot_owner_id"],
                &["createdate", "hs_lastmodifieddate", "hs_object_id"],
            ),
            engagement(
                "tasks",
                "0-27",
                &[
                    "hs_timestamp",
                    "hs_task_subject",
                    "hs_task_body",
                    "hs_task_status",
                    "hs_task_priority",
                    "hs_task_type",
                    "hubspot_owner_id",
                ],
                &["createdate", "hs_lastmodifieddate", "hs_object_id"],
            ),
        ]
    }

    pub fn is_read_only(p: &str) -> bool {
        READ_ONLY.contains(&p)
    }

    /// Unique values compare without case for e-mail addresses.
    pub fn norm(&self, property: &str, value: &str) -> String {
        if property.contains("email") {
            value.to_lowercase()
        } else {
            value.to_owned()
        }
    }
}

#[derive(Debug, Clone)]
pub struct HistoryEntry {
    pub value: String,
    pub timestamp: String,
}

#[derive(Debug, Clone)]
pub struct Record {
    pub id: u64,
    pub properties: BTreeMap<String, String>,
    pub history: BTreeMap<String, Vec<HistoryEntry>>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub archived: bool,
    pub archived_at: Option<OffsetDateTime>,
}

impl Record {
    /// The API form, with the requested properties (or the object's defaults) and history.
    pub fn json(&self, spec: &ObjectSpec, wanted: &[String], with_history: &[String]) -> Value {
        let names: Vec<String> = if wanted.is_empty() {
            spec.defaults.iter().map(|s| (*s).to_owned()).collect()
        } else {
            wanted.to_vec()
        };
        let mut props = Map::new();
        for n in names {
            props.insert(
                n.clone(),
                self.properties.get(&n).map_or(Value::Null, |v| json!(v)),
            );
        }
        let mut out = json!({
            "id": self.id.to_string(),
            "properties": props,
            "createdAt": iso(self.created_at),
            "updatedAt": iso(self.updated_at),
            "archived": self.archived,
        });
        if let Some(at) = self.archived_at {
            out["archivedAt"] = json!(iso(at));
        }
        if !with_history.is_empty() {
            let h: Map<String, Value> = with_history
                .iter()
                .map(|p| {
                    let entries: Vec<Value> = self.history.get(p).into_iter().flatten().rev()
                        .map(|e| json!({"value": e.value, "timestamp": e.timestamp, "sourceType": "API", "sourceId": "attio-sync", "sourceLabel": "API"}))
                        .collect();
                    (p.clone(), Value::Array(entries))
                })
                .collect();
            out["propertiesWithHistory"] = Value::Object(h);
        }
        out
    }

    /// Sets properties (an empty string clears one) and bumps the modification time.
    pub fn set(
        &mut self,
        spec: &ObjectSpec,
        props: &BTreeMap<String, String>,
        now: OffsetDateTime,
    ) {
        let ts = iso(now);
        for (k, v) in props {
            if v.is_empty() {
                self.properties.remove(k);
            } else {
                self.properties.insert(k.clone(), v.clone());
            }
            self.history
                .entry(k.clone())
                .or_default()
                .push(HistoryEntry {
                    value: v.clone(),
                    timestamp: ts.clone(),
                });
        }
        self.updated_at = now;
        self.properties
            .insert(spec.modified_property.to_owned(), ts);
    }
}

#[derive(Debug)]
pub struct ObjectStore {
    pub spec: ObjectSpec,
    pub records: BTreeMap<u64, Record>,
    /// (unique property, normalised value) → the live record holding it; kept current by
    /// [`ObjectStore::reindex_touched`] after every request.
    index: HashMap<(String, String), u64>,
    /// The index keys each record holds, to drop them when it changes.
    keys_of: HashMap<u64, Vec<(String, String)>>,
}

impl ObjectStore {
    pub fn new(spec: ObjectSpec) -> Self {
        Self {
            spec,
            records: BTreeMap::new(),
            index: HashMap::new(),
            keys_of: HashMap::new(),
        }
    }

    /// The live record holding `value` in unique property `property`.
    pub fn by_unique(&self, property: &str, value: &str) -> Option<&Record> {
        let v = self.spec.norm(property, value);
        let id = self.index.get(&(property.to_owned(), v.clone()))?;
        self.records.get(id).filter(|r| {
            !r.archived
                && r.properties
                    .get(property)
                    .is_some_and(|x| self.spec.norm(property, x) == v)
        })
    }

    /// Re-indexes one record's unique values (none once it is archived).
    fn reindex(&mut self, id: u64) {
        for key in self.keys_of.remove(&id).unwrap_or_default() {
            if self.index.get(&key) == Some(&id) {
                self.index.remove(&key);
            }
        }
        let Some(r) = self.records.get(&id).filter(|r| !r.archived) else {
            return;
        };
        let keys: Vec<(String, String)> = self
            .spec
            .unique
            .iter()
            .filter_map(|u| {
                let v = r.properties.get(u).filter(|v| !v.is_empty())?;
                Some((u.clone(), self.spec.norm(u, v)))
            })
            .collect();
        for key in &keys {
            self.index.insert(key.clone(), id);
        }
        self.keys_of.insert(id, keys);
    }

    /// Re-indexes every record created, changed or archived at or after `since` (every write
    /// stamps one of those times), so lookups by unique value stay O(1).
    pub fn reindex_touched(&mut self, since: OffsetDateTime) {
        let touched: Vec<u64> = self
            .records
            .values()
            .filter(|r| {
                r.updated_at >= since
                    || r.created_at >= since
                    || r.archived_at.is_some_and(|t| t >= since)
            })
            .map(|r| r.id)
            .collect();
        for id in touched {
            self.reindex(id);
        }
    }

    /// The first unique value of `props` another live record already holds.
    pub fn conflict(
        &self,
        props: &BTreeMap<String, String>,
        except: Option<u64>,
    ) -> Option<(String, u64)> {
        self.spec.unique.iter().find_map(|u| {
            let v = props.get(u).filter(|v| !v.is_empty())?;
            let other = self.by_unique(u, v).filter(|r| Some(r.id) != except)?;
            Some((u.clone(), other.id))
        })
    }
}

#[derive(Debug)]
pub struct Account {
    pub objects: BTreeMap<&'static str, ObjectStore>,
    pub next_id: u64,
    /// Request times in the rolling 10-second window.
    pub window: VecDeque<Instant>,
    /// Search request times in the last second.
    pub search_window: VecDeque<Instant>,
    /// Requests counted against the daily limit on `day` (UTC).
    pub daily_used: u64,
    pub day: time::Date,
    /// Unlabelled associations, both directions: (from object, from id, to object, to id).
    pub associations: std::collections::BTreeSet<(&'static str, u64, &'static str, u64)>,
}

impl Account {
    pub fn new(extra_unique: &[String]) -> Self {
        let objects = ObjectSpec::standard(extra_unique)
            .into_iter()
            .map(|spec| (spec.name, ObjectStore::new(spec)))
            .collect();
        Self {
            objects,
            next_id: 100_001,
            window: VecDeque::new(),
            search_window: VecDeque::new(),
            daily_used: 0,
            day: OffsetDateTime::now_utc().date(),
            associations: Default::default(),
        }
    }
}

/// A new record with its system properties, taking the account's next id.
pub fn new_record(spec: &ObjectSpec, next_id: &mut u64, now: OffsetDateTime) -> Record {
    {
        let id = *next_id;
        *next_id += 1;
        let ts = iso(now);
        let mut properties = BTreeMap::new();
        properties.insert("createdate".to_owned(), ts.clone());
        properties.insert("hs_object_id".to_owned(), id.to_string());
        properties.insert(spec.modified_property.to_owned(), ts);
        Record {
            id,
            properties,
            history: BTreeMap::new(),
            created_at: now,
            updated_at: now,
            archived: false,
            archived_at: None,
        }
    }
}
