//! The simulated workspaces: objects with their attributes, records with value history, members.

use std::collections::BTreeMap;

use domain::actor::{Actor, ActorType};
use domain::ids::{
    AttributeId, ListId, ObjectId, OptionId, RecordId, StatusId, WorkspaceId, WorkspaceMemberId,
};
use domain::schema::{
    Attribute, AttributeIdentifier, List, ListIdentifier, Object, ObjectIdentifier,
    WorkspaceMember, WorkspaceMemberIdentifier,
};
use domain::timestamp::Timestamp;
use domain::value::{
    AttributeType, AttributeValue, OptionIdentifier, SelectOption, Status, StatusIdentifier,
};
use serde_json::{Map, Value, json};
use uuid::Uuid;

pub fn now() -> Timestamp {
    Timestamp::from_datetime(time::OffsetDateTime::now_utc())
}

/// One attribute with its options and statuses.
#[derive(Debug, Clone)]
pub struct AttrDef {
    pub attr: Attribute,
    pub options: Vec<SelectOption>,
    pub statuses: Vec<Status>,
    /// For record references: the object slug they point to.
    pub target_object: Option<String>,
}

impl AttrDef {
    pub fn slug(&self) -> &str {
        &self.attr.api_slug
    }
}

/// A stored record: every value ever written, current ones with `active_until: None`.
#[derive(Debug, Clone)]
pub struct StoredRecord {
    pub id: RecordId,
    pub created_at: Timestamp,
    pub values: BTreeMap<String, Vec<AttributeValue>>,
    /// For list entries: the parent record's object slug and id.
    pub parent: Option<(String, RecordId)>,
}

impl StoredRecord {
    pub fn active(&self, slug: &str) -> impl Iterator<Item = &AttributeValue> {
        self.values
            .get(slug)
            .into_iter()
            .flatten()
            .filter(|v| v.is_active())
    }
}

#[derive(Debug, Clone)]
pub struct ObjectDef {
    pub object: Object,
    pub attributes: Vec<AttrDef>,
    pub records: Vec<StoredRecord>,
}

impl ObjectDef {
    pub fn slug(&self) -> &str {
        self.object.api_slug.as_deref().unwrap_or_default()
    }

    /// An attribute by slug or id.
    pub fn attribute(&self, key: &str) -> Option<&AttrDef> {
        self.attributes
            .iter()
            .find(|a| a.attr.api_slug == key || a.attr.id.attribute_id.to_string() == key)
    }

    pub fn record(&self, id: RecordId) -> Option<&StoredRecord> {
        self.records.iter().find(|r| r.id == id)
    }
}

#[derive(Debug, Clone)]
pub struct Workspace {
    pub id: WorkspaceId,
    pub name: String,
    pub slug: String,
    pub objects: Vec<ObjectDef>,
    pub lists: Vec<ListDef>,
    pub members: Vec<WorkspaceMember>,
    /// Webhook subscriptions with their secrets (returned only at creation).
    pub webhooks: Vec<(domain::schema::Webhook, String)>,
    pub notes: Vec<domain::schema::Note>,
    pub tasks: Vec<domain::schema::Task>,
}

impl Workspace {
    /// An object by slug or id.
    pub fn object(&self, key: &str) -> Option<&ObjectDef> {
        self.objects
            .iter()
            .find(|o| o.slug() == key || o.object.id.object_id.to_string() == key)
    }

    pub fn object_mut(&mut self, key: &str) -> Option<&mut ObjectDef> {
        self.objects
            .iter_mut()
            .find(|o| o.slug() == key || o.object.id.object_id.to_string() == key)
    }

    /// A list by slug or id.
    pub fn list(&self, key: &str) -> Option<&ListDef> {
        self.lists
            .iter()
            .find(|l| l.slug() == key || l.list.id.list_id.to_string() == key)
    }

    pub fn list_mut(&mut self, key: &str) -> Option<&mut ListDef> {
        self.lists
            .iter_mut()
            .find(|l| l.slug() == key || l.list.id.list_id.to_string() == key)
    }

    pub fn member_by_email(&self, email: &str) -> Option<&WorkspaceMember> {
        self.members
            .iter()
            .find(|m| m.email_address.eq_ignore_ascii_case(email))
    }
}

fn id() -> Uuid {
    Uuid::new_v4()
}

struct Spec {
    slug: &'static str,
    title: &'static str,
    ty: AttributeType,
    unique: bool,
    multi: bool,
    required: bool,
    writable: bool,
    system: bool,
    target: Option<&'static str>,
}

const fn spec(slug: &'static str, title: &'static str, ty: AttributeType) -> Spec {
    Spec {
        slug,
        title,
        ty,
        unique: false,
        multi: false,
        required: false,
        writable: true,
        system: false,
        target: None,
    }
}

impl Spec {
    const fn unique(mut self) -> Self {
        self.unique = true;
        self
    }
    const fn multi(mut self) -> Self {
        self.multi = true;
        self
    }
    const fn required(mut self) -> Self {
        self.required = true;
        self
    }
    const fn system(mut self) -> Self {
        self.system = true;
        self.writable = false;
        self
    }
    const fn to(mut self, target: &'static str) -> Self {
        self.target = Some(target);
        self
    }
}

fn standard_specs(object: &str) -> Vec<Spec> {
    use AttributeType as T;
    let mut v = vec![spec("record_id", "Record ID", T::Text).unique().system()];
    v.extend(match object {
        "people" => vec![
            spec("name", "Name", T::PersonalName),
            spec("email_addresses", "Email addresses", T::EmailAddress)
                .unique()
                .multi(),
            spec("description", "Description", T::Text),
            spec("company", "Company", T::RecordReference).to("companies"),
            spec("job_title", "Job title", T::Text),
            spec("phone_numbers", "Phone numbers", T::PhoneNumber).multi(),
            spec("primary_location", "Primary location", T::Location),
            spec("linkedin", "LinkedIn", T::Text),
            spec("twitter", "Twitter", T::Text),
        ],
        "companies" => vec![
            spec("name", "Name", T::Text),
            spec("domains", "Domains", T::Domain).unique().multi(),
            spec("description", "Description", T::Text),
            spec("team", "Team", T::RecordReference)
                .multi()
                .to("people"),
            spec("categories", "Categories", T::Select).multi(),
            spec("primary_location", "Primary location", T::Location),
            spec("employee_range", "Employee range", T::Select),
        ],
        "deals" => vec![
            spec("name", "Deal name", T::Text).required(),
            spec("stage", "Deal stage", T::Status).required(),
            spec("owner", "Deal owner", T::ActorReference),
            spec("value", "Deal value", T::Currency),
            spec("associated_people", "Associated people", T::RecordReference)
                .multi()
                .to("people"),
            spec(
                "associated_company",
                "Associated company",
                T::RecordReference,
            )
            .to("companies"),
        ],
        "users" => vec![
            spec("person", "Person", T::RecordReference).to("people"),
            spec(
                "primary_email_address",
                "Primary email address",
                T::EmailAddress,
            )
            .unique(),
            spec("user_id", "User ID", T::Text).unique(),
        ],
        _ => vec![],
    });
    v.push(spec("created_at", "Created at", T::Timestamp).system());
    v.push(spec("created_by", "Created by", T::ActorReference).system());
    v
}

fn option_titles(object: &str, slug: &str) -> &'static [&'static str] {
    match (object, slug) {
        ("companies", "categories") => &["B2B", "B2C", "SaaS", "Enterprise"],
        ("companies", "employee_range") => &["1-10", "11-50", "51-250", "251-1K", "1K+"],
        _ => &[],
    }
}

fn status_titles(object: &str, slug: &str) -> &'static [&'static str] {
    match (object, slug) {
        ("deals", "stage") | ("list:sales", "stage") => &["Lead", "In Progress", "Won 🎉", "Lost"],
        _ => &[],
    }
}

/// Who owns an attribute: an object or a list.
#[derive(Clone, Copy)]
enum Owner {
    Object(ObjectId),
    List(ListId),
}

fn build_attributes(
    ws: WorkspaceId,
    owner: Owner,
    key: &str,
    specs: Vec<Spec>,
    created_at: &Timestamp,
) -> Vec<AttrDef> {
    // Attio's document identifies list attributes, options and statuses by `object_id` too,
    // holding the list's id.
    let (object_id, list_id) = match owner {
        Owner::Object(o) => (Some(o), None),
        Owner::List(l) => (Some(ObjectId::from_uuid(*l.as_uuid())), None::<ListId>),
    };
    specs
        .into_iter()
        .map(|s| {
            let attribute_id = AttributeId::from_uuid(id());
            let options = option_titles(key, s.slug)
                .iter()
                .map(|t| SelectOption {
                    id: OptionIdentifier { workspace_id: ws, object_id, list_id, attribute_id, option_id: OptionId::from_uuid(id()) },
                    title: (*t).to_owned(),
                    is_archived: false,
                    extra: Map::new(),
                })
                .collect();
            let statuses = status_titles(key, s.slug)
                .iter()
                .map(|t| Status {
                    id: StatusIdentifier { workspace_id: ws, object_id, list_id, attribute_id, status_id: StatusId::from_uuid(id()) },
                    title: (*t).to_owned(),
                    is_archived: false,
                    celebration_enabled: t.contains('🎉'),
                    target_time_in_status: None,
                    extra: Map::new(),
                })
                .collect();
            let config = json!({
                "currency": { "default_currency_code": if s.ty == AttributeType::Currency { Value::from("USD") } else { Value::Null }, "display_type": Value::Null },
                "record_reference": { "allowed_object_ids": Value::Null }
            });
            AttrDef {
                attr: Attribute {
                    id: AttributeIdentifier { workspace_id: ws, object_id, list_id, attribute_id },
                    title: s.title.to_owned(),
                    description: None,
                    api_slug: s.slug.to_owned(),
                    attribute_type: s.ty,
                    is_system_attribute: s.system,
                    is_writable: s.writable,
                    is_required: s.required,
                    is_unique: s.unique,
                    is_multiselect: s.multi,
                    is_default_value_enabled: false,
                    is_archived: false,
                    default_value: None,
                    relationship: None,
                    created_at: created_at.clone(),
                    config: Some(config),
                    extra: Map::new(),
                },
                options,
                statuses,
                target_object: s.target.map(str::to_owned),
            }
        })
        .collect()
}

impl ObjectDef {
    /// A new attribute made through the API (`POST /v2/objects/{object}/attributes`): writable,
    /// not a system attribute, with no options.
    pub fn new_attribute(
        &self,
        title: &str,
        description: Option<String>,
        api_slug: &str,
        attribute_type: AttributeType,
        (is_required, is_unique, is_multiselect): (bool, bool, bool),
    ) -> AttrDef {
        let ids = &self.object.id;
        let config = json!({
            "currency": { "default_currency_code": if attribute_type == AttributeType::Currency { Value::from("USD") } else { Value::Null }, "display_type": Value::Null },
            "record_reference": { "allowed_object_ids": Value::Null }
        });
        AttrDef {
            attr: Attribute {
                id: AttributeIdentifier {
                    workspace_id: ids.workspace_id,
                    object_id: Some(ids.object_id),
                    list_id: None,
                    attribute_id: AttributeId::from_uuid(id()),
                },
                title: title.to_owned(),
                description,
                api_slug: api_slug.to_owned(),
                attribute_type,
                is_system_attribute: false,
                is_writable: true,
                is_required,
                is_unique,
                is_multiselect,
                is_default_value_enabled: false,
                is_archived: false,
                default_value: None,
                relationship: None,
                created_at: now(),
                config: Some(config),
                extra: Map::new(),
            },
            options: Vec::new(),
            statuses: Vec::new(),
            target_object: None,
        }
    }
}

fn build_object(
    ws: WorkspaceId,
    slug: &'static str,
    singular: &str,
    plural: &str,
    created_at: &Timestamp,
) -> ObjectDef {
    let object_id = ObjectId::from_uuid(id());
    ObjectDef {
        object: Object {
            id: ObjectIdentifier {
                workspace_id: ws,
                object_id,
            },
            api_slug: Some(slug.to_owned()),
            singular_noun: Some(singular.to_owned()),
            plural_noun: Some(plural.to_owned()),
            created_at: created_at.clone(),
            extra: Map::new(),
        },
        attributes: build_attributes(
            ws,
            Owner::Object(object_id),
            slug,
            standard_specs(slug),
            created_at,
        ),
        records: Vec::new(),
    }
}

/// A list: its definition, and its attributes and entries held as an object-like definition so
/// that filters, sorts and value rules apply to entries as they do to records.
#[derive(Debug, Clone)]
pub struct ListDef {
    pub list: List,
    pub def: ObjectDef,
}

impl ListDef {
    pub fn slug(&self) -> &str {
        &self.list.api_slug
    }
}

/// The sample pipeline every workspace has: deals by stage.
fn build_sales_list(ws: WorkspaceId, member: WorkspaceMemberId, created_at: &Timestamp) -> ListDef {
    let list_id = ListId::from_uuid(id());
    let specs = vec![
        spec("stage", "Stage", AttributeType::Status),
        spec("priority", "Priority", AttributeType::Rating),
    ];
    let attributes = build_attributes(ws, Owner::List(list_id), "list:sales", specs, created_at);
    ListDef {
        list: List {
            id: ListIdentifier {
                workspace_id: ws,
                list_id,
            },
            api_slug: "sales".into(),
            name: "Sales Pipeline".into(),
            parent_object: vec!["deals".into()],
            workspace_access: Some("full-access".into()),
            workspace_member_access: vec![],
            created_by_actor: Some(Actor::new(
                ActorType::WorkspaceMember,
                Some(member.to_string()),
            )),
            created_at: created_at.clone(),
            extra: Map::new(),
        },
        def: ObjectDef {
            object: Object {
                id: ObjectIdentifier {
                    workspace_id: ws,
                    object_id: ObjectId::from_uuid(*list_id.as_uuid()),
                },
                api_slug: Some("sales".into()),
                singular_noun: Some("Entry".into()),
                plural_noun: Some("Entries".into()),
                created_at: created_at.clone(),
                extra: Map::new(),
            },
            attributes,
            records: Vec::new(),
        },
    }
}

impl Workspace {
    /// A new workspace with the standard objects (people, companies, deals, users) and one admin.
    pub fn new(name: &str) -> Self {
        let ws = WorkspaceId::from_uuid(id());
        let created_at = now();
        let slug: String = name
            .to_lowercase()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        let admin = WorkspaceMemberId::from_uuid(id());
        Self {
            id: ws,
            name: name.to_owned(),
            lists: vec![build_sales_list(ws, admin, &created_at)],
            webhooks: Vec::new(),
            notes: Vec::new(),
            tasks: Vec::new(),
            objects: vec![
                build_object(ws, "people", "Person", "People", &created_at),
                build_object(ws, "companies", "Company", "Companies", &created_at),
                build_object(ws, "deals", "Deal", "Deals", &created_at),
                build_object(ws, "users", "User", "Users", &created_at),
            ],
            // An admin, and a member who owns records (a deal's owner, matched by e-mail to a
            // CRM's owner).
            members: vec![
                WorkspaceMember {
                    id: WorkspaceMemberIdentifier {
                        workspace_id: ws,
                        workspace_member_id: admin,
                    },
                    first_name: Some("Ada".into()),
                    last_name: Some("Admin".into()),
                    avatar_url: None,
                    email_address: format!("admin@{slug}.example"),
                    access_level: "admin".into(),
                    created_at: created_at.clone(),
                    extra: Map::new(),
                },
                WorkspaceMember {
                    id: WorkspaceMemberIdentifier {
                        workspace_id: ws,
                        workspace_member_id: WorkspaceMemberId::from_uuid(id()),
                    },
                    first_name: Some("Sam".into()),
                    last_name: Some("Seller".into()),
                    avatar_url: None,
                    email_address: format!("sales@{slug}.example"),
                    access_level: "member".into(),
                    created_at,
                    extra: Map::new(),
                },
            ],
            slug,
        }
    }
}

/// The actor of a write made with an API token.
pub fn token_actor(token_id: &str) -> Actor {
    Actor::new(ActorType::ApiToken, Some(token_id.to_owned()))
}
