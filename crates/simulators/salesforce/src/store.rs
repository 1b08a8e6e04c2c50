//! The org's records as Salesforce keeps them: 18-character ids with key prefixes, a fixed schema
//! per object (unknown fields are refused), required fields, external-id fields (some unique),
//! system fields maintained on every write, and a delete log for `getDeleted`.

use std::collections::{BTreeMap, HashMap};

use serde_json::{Map, Value, json};
use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, UtcOffset};

/// A datetime as the REST API writes it: `2026-01-01T00:00:00.000+0000`.
pub fn sf_time(t: OffsetDateTime) -> String {
    let t = t.to_offset(UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}+0000",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

/// Parses the datetime forms Salesforce accepts: RFC 3339 (`Z` or `+hh:mm`) and `+hhmm`.
pub fn parse_time(s: &str) -> Option<OffsetDateTime> {
    if let Ok(t) = OffsetDateTime::parse(s, &Rfc3339) {
        return Some(t);
    }
    // `+0000` → `+00:00`
    let n = s.len();
    if n > 5
        && matches!(&s[n - 5..n - 4], "+" | "-")
        && s[n - 4..].bytes().all(|b| b.is_ascii_digit())
    {
        let fixed = format!("{}:{}", &s[..n - 2], &s[n - 2..]);
        return OffsetDateTime::parse(&fixed, &Rfc3339).ok();
    }
    None
}

/// The kinds of field the simulator distinguishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Text,
    /// A picklist with its active values (not restricted: other values are accepted, as
    /// Salesforce does for unrestricted picklists).
    Picklist(&'static [&'static str]),
    /// A multi-select picklist: its values joined with `;`.
    MultiPicklist(&'static [&'static str]),
    Number,
    Bool,
    Date,
    /// A datetime: any form [`parse_time`] reads is taken, and stored (so read back) as the
    /// REST API writes it, `2026-01-01T00:00:00.000+0000`, to the millisecond in UTC.
    DateTime,
    /// An id of another object (prefix).
    Reference(&'static str),
    /// A polymorphic reference: an id of any of these objects (prefixes), as `Task.WhoId`.
    AnyOf(&'static [&'static str]),
    /// Maintained by the platform; refused in writes.
    System,
}

/// One object's schema.
#[derive(Debug, Clone)]
pub struct ObjectSpec {
    pub name: &'static str,
    pub prefix: &'static str,
    pub fields: BTreeMap<String, Kind>,
    pub required: Vec<&'static str>,
    /// External-id fields and whether each is also Unique.
    pub external_ids: BTreeMap<String, bool>,
}

/// The objects Salesforce merges (in its UI or the SOAP `merge()` call; REST has no merge).
pub const MERGEABLE: &[&str] = &["Contact", "Account"];

const SYSTEM: &[&str] = &[
    "Id",
    "IsDeleted",
    "CreatedDate",
    "CreatedById",
    "LastModifiedDate",
    "LastModifiedById",
    "SystemModstamp",
];

impl ObjectSpec {
    /// Contact, Account and Opportunity with their common standard fields, plus the given
    /// external-id fields (`(field, unique)`) on each; and the activities `Task` (`WhoId` a
    /// Contact or Lead, `WhatId` an Account or Opportunity) and classic `Note`
    /// (`ParentId` and `Title` required).
    pub fn standard(external_ids: &[(String, bool)]) -> Vec<ObjectSpec> {
        let mk = |name, prefix, fields: &[(&str, Kind)], required: Vec<&'static str>| {
            let mut all: BTreeMap<String, Kind> =
                fields.iter().map(|(f, k)| ((*f).to_owned(), *k)).collect();
            all.extend(SYSTEM.iter().map(|f| ((*f).to_owned(), Kind::System)));
            // Objects a person can merge keep the survivor on each record merged away.
            if MERGEABLE.contains(&name) {
                all.insert("MasterRecordId".to_owned(), Kind::System);
            }
            for (f, _) in external_ids {
                all.insert(f.clone(), Kind::Text);
            }
            ObjectSpec {
                name,
                prefix,
                fields: all,
                required,
                external_ids: external_ids.iter().cloned().collect(),
            }
        };
        use Kind::*;
        vec![
            mk(
                "Contact",
                "003",
                &[
                    ("FirstName", Text),
                    ("LastName", Text),
                    ("Email", Text),
                    ("Phone", Text),
                    ("MobilePhone", Text),
                    ("Title", Text),
                    ("Department", Text),
                    ("Description", Text),
                    ("MailingCity", Text),
                    ("MailingCountry", Text),
                    (
                        "LeadSource",
                        Picklist(&[
                            "Web",
                            "Phone Inquiry",
                            "Partner Referral",
                            "Purchased List",
                            "Other",
                        ]),
                    ),
                    ("HasOptedOutOfEmail", Bool),
                    ("Birthdate", Date),
                    // When an e-mail to the contact bounced: a writable datetime.
                    ("EmailBouncedDate", DateTime),
                    ("AccountId", Reference("001")),
                    ("OwnerId", Reference("005")),
                    // The compound name: read-only, FirstName and LastName.
                    ("Name", System),
                ],
                vec!["LastName"],
            ),
            mk(
                "Account",
                "001",
                &[
                    ("Name", Text),
                    ("Website", Text),
                    ("OwnerId", Reference("005")),
                    (
                        "Industry",
                        Picklist(&[
                            "Agriculture",
                            "Banking",
                            "Education",
                            "Energy",
                            "Technology",
                            "Other",
                        ]),
                    ),
                    ("Phone", Text),
                    ("Description", Text),
                    ("BillingCity", Text),
                    ("BillingCountry", Text),
                    ("NumberOfEmployees", Number),
                    ("AnnualRevenue", Number),
                    // A custom multi-select picklist, as an org adds one.
                    (
                        "Tags__c",
                        MultiPicklist(&["B2B", "B2C", "SaaS", "Enterprise"]),
                    ),
                ],
                vec!["Name"],
            ),
            mk(
                "Opportunity",
                "006",
                &[
                    ("Name", Text),
                    (
                        "StageName",
                        Picklist(&[
                            "Prospecting",
                            "Qualification",
                            "Needs Analysis",
                            "Value Proposition",
                            "Id. Decision Makers",
                            "Perception Analysis",
                            "Proposal/Price Quote",
                            "Negotiation/Review",
                            "Closed Won",
                            "Closed Lost",
                        ]),
                    ),
                    ("CloseDate", Date),
                    ("Amount", Number),
                    ("Probability", Number),
                    ("Description", Text),
                    ("IsClosed", Bool),
                    ("AccountId", Reference("001")),
                    ("OwnerId", Reference("005")),
                ],
                vec!["Name", "StageName", "CloseDate"],
            ),
            mk(
                "Task",
                "00T",
                &[
                    ("Subject", Text),
                    ("Description", Text),
                    (
                        "Status",
                        Picklist(&[
                            "Not Started",
                            "In Progress",
                            "Completed",
                            "Waiting on someone else",
                            "Deferred",
                        ]),
                    ),
                    ("Priority", Picklist(&["High", "Normal", "Low"])),
                    ("ActivityDate", Date),
                    ("WhoId", AnyOf(&["003", "00Q"])),
                    ("WhatId", AnyOf(&["001", "006"])),
                ],
                vec![],
            ),
            // A deal's people: one row per contact with a role on the opportunity (a
            // contact or opportunity deleted takes its rows with it).
            mk(
                "OpportunityContactRole",
                "00K",
                &[
                    ("OpportunityId", Reference("006")),
                    ("ContactId", Reference("003")),
                    (
                        "Role",
                        Picklist(&[
                            "Business User",
                            "Decision Maker",
                            "Economic Buyer",
                            "Economic Decision Maker",
                            "Evaluator",
                            "Executive Sponsor",
                            "Influencer",
                            "Technical Buyer",
                            "Other",
                        ]),
                    ),
                    ("IsPrimary", Bool),
                ],
                vec!["OpportunityId", "ContactId"],
            ),
            // The org's users, whom records are owned by (`OwnerId`).
            mk(
                "User",
                "005",
                &[
                    ("FirstName", Text),
                    ("LastName", Text),
                    ("Email", Text),
                    ("IsActive", Bool),
                ],
                vec!["LastName", "Email"],
            ),
            mk(
                "Note",
                "002",
                &[
                    ("Title", Text),
                    ("Body", Text),
                    ("IsPrivate", Bool),
                    ("ParentId", AnyOf(&["001", "003", "006"])),
                ],
                vec!["ParentId", "Title"],
            ),
        ]
    }

    /// The field's canonical spelling (field names are case-insensitive).
    pub fn field(&self, name: &str) -> Option<(&str, Kind)> {
        self.fields
            .iter()
            .find(|(f, _)| f.eq_ignore_ascii_case(name))
            .map(|(f, k)| (f.as_str(), *k))
    }
}

/// A Salesforce error: `errorCode`/`statusCode`, message and fields.
#[derive(Debug, Clone, PartialEq)]
pub struct SfFault {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
    pub fields: Vec<String>,
}

impl SfFault {
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            fields: Vec::new(),
        }
    }

    pub fn on(mut self, fields: &[&str]) -> Self {
        self.fields = fields.iter().map(|f| (*f).to_owned()).collect();
        self
    }

    /// The single-resource shape: `{message, errorCode, fields}`.
    pub fn single(&self) -> Value {
        json!({"message": self.message, "errorCode": self.code, "fields": self.fields})
    }

    /// The collection-item shape: `{statusCode, message, fields}`.
    pub fn item(&self) -> Value {
        json!({"statusCode": self.code, "message": self.message, "fields": self.fields})
    }
}

pub type SfResult<T> = Result<T, SfFault>;

/// The case-insensitive checksum suffix that turns a 15-character id into 18 characters.
fn checksum(id15: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ012345";
    id15.as_bytes()
        .chunks(5)
        .map(|chunk| {
            let bits = chunk.iter().enumerate().fold(0usize, |acc, (i, b)| {
                acc | (usize::from(b.is_ascii_uppercase()) << i)
            });
            ALPHABET[bits] as char
        })
        .collect()
}

/// The 15-character id an 18-character one stands for, its letters' case restored from the
/// suffix (which is what makes 18-character ids safe in case-insensitive systems).
fn restore_case(id18: &str) -> Option<String> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ012345";
    let (body, suffix) = id18.split_at(15);
    let mut out = String::with_capacity(15);
    for (chunk, c) in body.as_bytes().chunks(5).zip(suffix.bytes()) {
        let bits = ALPHABET.iter().position(|a| *a == c.to_ascii_uppercase())?;
        for (i, b) in chunk.iter().enumerate() {
            let upper = bits & (1 << i) != 0;
            out.push(if upper {
                b.to_ascii_uppercase()
            } else {
                b.to_ascii_lowercase()
            } as char);
        }
    }
    Some(out)
}

/// Checks an id's shape, checksum and key prefix; returns its 18-character form.
pub fn check_id(spec: &ObjectSpec, id: &str) -> SfResult<String> {
    let malformed = || {
        SfFault::new(
            400,
            "MALFORMED_ID",
            format!("{} ID: id value of incorrect type: {id}", spec.name),
        )
        .on(&["Id"])
    };
    if !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(malformed());
    }
    let full = match id.len() {
        15 => format!("{id}{}", checksum(id)),
        18 => {
            let restored = restore_case(id).ok_or_else(malformed)?;
            format!("{restored}{}", checksum(&restored))
        }
        _ => return Err(malformed()),
    };
    if !full.starts_with(spec.prefix) {
        return Err(malformed());
    }
    Ok(full)
}

/// One record: its fields (custom and standard) plus the system fields kept apart.
#[derive(Debug, Clone)]
pub struct Record {
    pub id: String,
    pub fields: Map<String, Value>,
    pub created: OffsetDateTime,
    pub modified: OffsetDateTime,
    pub modstamp: OffsetDateTime,
    pub deleted: Option<OffsetDateTime>,
    /// Merged into this record (`MasterRecordId`), and deleted.
    pub master: Option<String>,
}

impl Record {
    /// A field's value, system fields included; `Null` when unset.
    pub fn get(&self, field: &str, user: &str) -> Value {
        match field {
            "Id" => json!(self.id),
            "IsDeleted" => json!(self.deleted.is_some()),
            "MasterRecordId" => self.master.as_ref().map_or(Value::Null, |m| json!(m)),
            "CreatedDate" => json!(sf_time(self.created)),
            "LastModifiedDate" => json!(sf_time(self.modified)),
            "SystemModstamp" => json!(sf_time(self.modstamp)),
            "CreatedById" | "LastModifiedById" => json!(user),
            // A Contact's compound name (an Account's or Opportunity's Name is stored).
            "Name" if !self.fields.contains_key("Name") => {
                let part = |f: &str| {
                    self.fields
                        .get(f)
                        .and_then(Value::as_str)
                        .filter(|s| !s.is_empty())
                };
                match (part("FirstName"), part("LastName")) {
                    (None, None) => Value::Null,
                    (first, last) => json!(
                        [first, last]
                            .into_iter()
                            .flatten()
                            .collect::<Vec<_>>()
                            .join(" ")
                    ),
                }
            }
            f => self.fields.get(f).cloned().unwrap_or(Value::Null),
        }
    }
}

/// One object's records and its delete log.
#[derive(Debug, Clone)]
pub struct Table {
    pub spec: ObjectSpec,
    pub records: BTreeMap<String, Record>,
    /// (unique external-id field, value) → id, for live records.
    pub unique_index: HashMap<(String, String), String>,
    /// External-id value → ids, per external-id field (lower-cased value), for live records.
    pub ext_index: HashMap<(String, String), Vec<String>>,
    pub delete_log: Vec<(String, OffsetDateTime)>,
    next: u64,
}

/// The external-id key of a value: text compared case-insensitively.
fn ext_key(field: &str, v: &Value) -> Option<(String, String)> {
    let s = match v {
        Value::String(s) if !s.is_empty() => s.to_lowercase(),
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    Some((field.to_owned(), s))
}

impl Table {
    pub fn new(spec: ObjectSpec) -> Self {
        Self {
            spec,
            records: BTreeMap::new(),
            unique_index: HashMap::new(),
            ext_index: HashMap::new(),
            delete_log: Vec::new(),
            next: 0,
        }
    }

    fn new_id(&mut self) -> String {
        self.next += 1;
        // Prefix, a pod-like "5g" and a base-62 counter: 15 characters, then the checksum.
        const DIGITS: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
        let mut n = self.next;
        let mut tail = [b'0'; 10];
        for slot in tail.iter_mut().rev() {
            *slot = DIGITS[(n % 62) as usize];
            n /= 62;
        }
        let id15 = format!("{}5g{}", self.spec.prefix, String::from_utf8_lossy(&tail));
        format!("{id15}{}", checksum(&id15))
    }

    /// Live records whose external-id field holds the value.
    pub fn matches(&self, field: &str, value: &str) -> Vec<String> {
        ext_key(field, &json!(value))
            .and_then(|k| self.ext_index.get(&k).cloned())
            .unwrap_or_default()
    }

    /// A live record, or `NOT_FOUND` / `ENTITY_IS_DELETED`.
    pub fn live(&self, id: &str) -> SfResult<&Record> {
        match self.records.get(id) {
            Some(r) if r.deleted.is_none() => Ok(r),
            Some(_) => Err(SfFault::new(404, "ENTITY_IS_DELETED", "entity is deleted")),
            None => Err(SfFault::new(
                404,
                "NOT_FOUND",
                "The requested resource does not exist",
            )),
        }
    }

    /// Checks a write body against the schema: fields exist, none is a system field, values
    /// have the field's type. Returns the body with canonical field names.
    pub fn validate(&self, body: &Map<String, Value>) -> SfResult<Map<String, Value>> {
        let mut out = Map::new();
        for (name, value) in body {
            if name == "attributes" {
                continue;
            }
            let Some((field, kind)) = self.spec.field(name) else {
                return Err(SfFault::new(
                    400,
                    "INVALID_FIELD",
                    format!(
                        "No such column '{name}' on sobject of type {}",
                        self.spec.name
                    ),
                ));
            };
            let bad_type = |what: &str| {
                SfFault::new(
                    400,
                    "JSON_PARSER_ERROR",
                    format!("Cannot deserialize instance of {what} from {value} for field {field}"),
                )
            };
            match (kind, value) {
                (Kind::System, _) if field == "Id" => {
                    return Err(SfFault::new(
                        400,
                        "INVALID_FIELD",
                        "The Id field should not be specified in the sobject data.",
                    ));
                }
                (Kind::System, _) => {
                    return Err(SfFault::new(
                        400,
                        "INVALID_FIELD_FOR_INSERT_UPDATE",
                        format!("Unable to create/update fields: {field}. Please check the security settings of this field and verify that it is read/write for your profile or permission set."),
                    )
                    .on(&[field]));
                }
                (_, Value::Null) => {}
                (Kind::Number, Value::Number(_)) | (Kind::Bool, Value::Bool(_)) => {}
                (Kind::Number, Value::String(s)) if s.parse::<f64>().is_ok() => {}
                (Kind::Number, _) => return Err(bad_type("double")),
                (Kind::Bool, _) => return Err(bad_type("boolean")),
                (
                    Kind::Text | Kind::Picklist(_) | Kind::MultiPicklist(_),
                    Value::String(_) | Value::Number(_),
                ) => {}
                (Kind::Text | Kind::Picklist(_) | Kind::MultiPicklist(_), _) => {
                    return Err(bad_type("string"));
                }
                (Kind::Date, Value::String(s))
                    if time::Date::parse(
                        s,
                        time::macros::format_description!("[year]-[month]-[day]"),
                    )
                    .is_ok() => {}
                (Kind::Date, _) => return Err(bad_type("date")),
                (Kind::DateTime, Value::String(s)) => match parse_time(s) {
                    Some(t) => {
                        out.insert(field.to_owned(), Value::String(sf_time(t)));
                        continue;
                    }
                    None => return Err(bad_type("datetime")),
                },
                (Kind::DateTime, _) => return Err(bad_type("datetime")),
                (Kind::Reference(prefix), Value::String(s)) => {
                    if !(s.starts_with(prefix) && matches!(s.len(), 15 | 18)) {
                        return Err(SfFault::new(
                            400,
                            "INVALID_CROSS_REFERENCE_KEY",
                            format!("invalid cross reference id: {s}"),
                        )
                        .on(&[field]));
                    }
                }
                (Kind::AnyOf(prefixes), Value::String(s)) => {
                    if !(prefixes.iter().any(|p| s.starts_with(p)) && matches!(s.len(), 15 | 18)) {
                        return Err(SfFault::new(
                            400,
                            "INVALID_CROSS_REFERENCE_KEY",
                            format!("invalid cross reference id: {s}"),
                        )
                        .on(&[field]));
                    }
                }
                (Kind::Reference(_) | Kind::AnyOf(_), _) => return Err(bad_type("id")),
            }
            out.insert(field.to_owned(), value.clone());
        }
        Ok(out)
    }

    /// A unique external-id value held by another live record → `DUPLICATE_VALUE`.
    fn check_unique(&self, id: Option<&str>, fields: &Map<String, Value>) -> SfResult<()> {
        for (field, unique) in &self.spec.external_ids {
            if !unique {
                continue;
            }
            let Some(key) = fields.get(field).and_then(|v| ext_key(field, v)) else {
                continue;
            };
            if let Some(other) = self.unique_index.get(&key)
                && Some(other.as_str()) != id
            {
                return Err(SfFault::new(
                    400,
                    "DUPLICATE_VALUE",
                    format!(
                        "duplicate value found: {field} duplicates value on record with id: {other}"
                    ),
                )
                .on(&[field]));
            }
        }
        Ok(())
    }

    fn index(&mut self, id: &str, fields: &Map<String, Value>, add: bool) {
        for (field, unique) in self.spec.external_ids.clone() {
            let Some(key) = fields.get(&field).and_then(|v| ext_key(&field, v)) else {
                continue;
            };
            if add {
                if unique {
                    self.unique_index.insert(key.clone(), id.to_owned());
                }
                self.ext_index.entry(key).or_default().push(id.to_owned());
            } else {
                if unique && self.unique_index.get(&key).map(String::as_str) == Some(id) {
                    self.unique_index.remove(&key);
                }
                if let Some(ids) = self.ext_index.get_mut(&key) {
                    ids.retain(|x| x != id);
                    if ids.is_empty() {
                        self.ext_index.remove(&key);
                    }
                }
            }
        }
    }

    /// Creates a record from a validated body; `REQUIRED_FIELD_MISSING` / `DUPLICATE_VALUE`.
    pub fn create(&mut self, fields: Map<String, Value>, now: OffsetDateTime) -> SfResult<String> {
        let missing: Vec<&str> = self
            .spec
            .required
            .iter()
            .copied()
            .filter(|f| fields.get(*f).is_none_or(|v| v.is_null() || v == ""))
            .collect();
        if !missing.is_empty() {
            return Err(SfFault::new(
                400,
                "REQUIRED_FIELD_MISSING",
                format!("Required fields are missing: [{}]", missing.join(", ")),
            )
            .on(&missing));
        }
        self.check_unique(None, &fields)?;
        let id = self.new_id();
        self.index(&id, &fields, true);
        self.records.insert(
            id.clone(),
            Record {
                id: id.clone(),
                fields,
                created: now,
                modified: now,
                modstamp: now,
                deleted: None,
                master: None,
            },
        );
        Ok(id)
    }

    /// Updates a live record from a validated body.
    pub fn update(
        &mut self,
        id: &str,
        fields: Map<String, Value>,
        now: OffsetDateTime,
    ) -> SfResult<()> {
        let old = self.live(id)?.fields.clone();
        let mut merged = old.clone();
        for (k, v) in fields {
            merged.insert(k, v);
        }
        for f in &self.spec.required {
            if merged.get(*f).is_none_or(|v| v.is_null() || v == "") {
                return Err(SfFault::new(
                    400,
                    "REQUIRED_FIELD_MISSING",
                    format!("Required fields are missing: [{f}]"),
                )
                .on(&[f]));
            }
        }
        self.check_unique(Some(id), &merged)?;
        self.index(id, &old, false);
        self.index(id, &merged, true);
        if let Some(r) = self.records.get_mut(id) {
            r.fields = merged;
            r.modified = now;
            r.modstamp = now;
        }
        Ok(())
    }

    /// Deletes a live record (to the Recycle Bin) and logs it for `getDeleted`.
    /// The live records whose `field` holds `id`.
    pub fn referring(&self, field: &str, id: &str) -> Vec<String> {
        self.records
            .values()
            .filter(|r| {
                r.deleted.is_none() && r.fields.get(field).and_then(Value::as_str) == Some(id)
            })
            .map(|r| r.id.clone())
            .collect()
    }

    pub fn delete(&mut self, id: &str, now: OffsetDateTime) -> SfResult<()> {
        let fields = self.live(id)?.fields.clone();
        self.index(id, &fields, false);
        if let Some(r) = self.records.get_mut(id) {
            r.deleted = Some(now);
            r.modstamp = now;
        }
        self.delete_log.push((id.to_owned(), now));
        Ok(())
    }

    /// Merges `merged` into `master` as Salesforce does: each merged record is deleted with
    /// `MasterRecordId` naming the survivor. `NOT_FOUND` for an id that is not a live record;
    /// `INVALID_OPERATION` for an object Salesforce does not merge or a record merged into itself.
    pub fn merge(&mut self, master: &str, merged: &[String], now: OffsetDateTime) -> SfResult<()> {
        if !MERGEABLE.contains(&self.spec.name) {
            return Err(SfFault::new(
                400,
                "INVALID_OPERATION",
                format!("{} records cannot be merged", self.spec.name),
            ));
        }
        self.live(master)?;
        for id in merged {
            if id == master {
                return Err(SfFault::new(
                    400,
                    "INVALID_OPERATION",
                    "a record cannot be merged into itself",
                ));
            }
            self.live(id)?;
        }
        for id in merged {
            self.delete(id, now)?;
            if let Some(r) = self.records.get_mut(id) {
                r.master = Some(master.to_owned());
            }
        }
        Ok(())
    }

    /// Points the live records' references to any of `from` at `to` (what a merge does to the
    /// merged records' children); returns how many records changed.
    pub fn reparent(&mut self, from: &[String], to: &str, now: OffsetDateTime) -> usize {
        let refs: Vec<String> = self
            .spec
            .fields
            .iter()
            .filter(|(_, k)| matches!(k, Kind::Reference(_) | Kind::AnyOf(_)))
            .map(|(f, _)| f.clone())
            .collect();
        let mut changed = 0;
        for r in self.records.values_mut().filter(|r| r.deleted.is_none()) {
            let mut touched = false;
            for f in &refs {
                if r.fields
                    .get(f)
                    .and_then(Value::as_str)
                    .is_some_and(|v| from.iter().any(|m| m == v))
                {
                    r.fields.insert(f.clone(), json!(to));
                    touched = true;
                }
            }
            if touched {
                r.modified = now;
                r.modstamp = now;
                changed += 1;
            }
        }
        changed
    }

    /// A record as the REST API returns it: `attributes` first, then the fields asked for
    /// (all when `None`).
    pub fn render(
        &self,
        r: &Record,
        fields: Option<&[String]>,
        version: &str,
        user: &str,
    ) -> Value {
        let mut out = Map::new();
        out.insert(
            "attributes".into(),
            json!({"type": self.spec.name, "url": format!("/services/data/v{version}/sobjects/{}/{}", self.spec.name, r.id)}),
        );
        match fields {
            Some(list) => {
                for f in list {
                    out.insert(f.clone(), r.get(f, user));
                }
            }
            None => {
                for f in self.spec.fields.keys() {
                    out.insert(f.clone(), r.get(f, user));
                }
            }
        }
        Value::Object(out)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn ids_are_18_characters_with_a_checksum_that_survives_case_folding() {
        let specs = ObjectSpec::standard(&[("Attio_Id__c".into(), true)]);
        let mut t = Table::new(specs[0].clone());
        let id = t.new_id();
        assert_eq!(id.len(), 18);
        assert!(id.starts_with("003"));
        assert_eq!(check_id(&t.spec, &id).unwrap(), id);
        assert_eq!(check_id(&t.spec, &id[..15]).unwrap(), id);
        assert_eq!(check_id(&t.spec, &id.to_lowercase()).map(|_| ()), Ok(()));
        assert_eq!(
            check_id(&t.spec, "003xyz").unwrap_err().code,
            "MALFORMED_ID"
        );
        let account = Table::new(specs[1].clone());
        assert_eq!(
            check_id(&account.spec, &id).unwrap_err().code,
            "MALFORMED_ID"
        );
    }

    #[test]
    fn the_known_checksum_of_a_documented_id() {
        // 001D000000IqhSL → 001D000000IqhSLIAZ (the id in "Create a Record").
        assert_eq!(checksum("001D000000IqhSL"), "IAZ");
    }

    #[test]
    fn times_round_trip_in_both_offset_forms() {
        let t = parse_time("2026-01-02T03:04:05.678+0000").unwrap();
        assert_eq!(sf_time(t), "2026-01-02T03:04:05.678+0000");
        assert_eq!(parse_time("2026-01-02T03:04:05Z").unwrap().second(), 5);
        assert!(parse_time("yesterday").is_none());
    }
}
