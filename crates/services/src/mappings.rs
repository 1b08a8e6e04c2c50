//! Mappings per tenant: checking a mapping document against the live schemas of Attio and the
//! tenant's CRMs, and the catalog the sync reads each tenant's mappings from (the tenant's
//! stored mappings, else the worker's file).
//!
//! The live check lists every problem at once, each with its mapping and field: an Attio object,
//! attribute (or part) or CRM object or property that does not exist; types that cannot convert
//! (the table in [`converts`]); a value the mapping writes that is not an option of the target
//! (a value map's CRM side against the CRM's enumeration or picklist; an Attio select's or
//! status's options, mapped, likewise); a field the CRM requires on create left unmapped; and a
//! side written to that does not accept writes.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use domain::deletes::DeletePolicy;
use domain::ids::{ObjectRef, ObjectSlug, SystemId, TenantId};
use domain::mapping::{ExternalProperty, FieldMapping, SyncRule, Transform};
use domain::mapping_doc::{CheckedTarget, MappingDocument, MappingProblem, ProblemKind};
use domain::schema::Attribute;
use domain::value::AttributeType;
use ports::attio::AttributeTarget;
use ports::crm::{ExternalField, FieldKind};
use ports::directory::TenantClients;
use ports::error::PortError;
use ports::stores::MappingStore;

use crate::error::ServiceResult;
use crate::outbound::SyncTarget;

/// Per mapping (Attio object, CRM): its own delete policies for Attio and CRM deletes (`None`:
/// the worker's default).
pub type DeletePolicies =
    BTreeMap<(ObjectSlug, SystemId), (Option<DeletePolicy>, Option<DeletePolicy>)>;

/// The sync targets and per-mapping delete policies of checked mappings.
pub fn compile(checked: Vec<CheckedTarget>) -> (Vec<SyncTarget>, DeletePolicies) {
    let mut policies = BTreeMap::new();
    let targets = checked
        .into_iter()
        .map(|c| {
            policies.insert(
                (c.mapping.attio_object.clone(), c.mapping.system.clone()),
                (c.on_delete, c.on_crm_delete),
            );
            SyncTarget {
                mapping: c.mapping,
                id_property: c.id_property,
                create_with: c.create_with,
            }
        })
        .collect();
    (targets, policies)
}

/// Whether an Attio attribute of `kind` (a `part` of it, multi-valued or not) and a CRM field of
/// `crm` convert into each other. Unknown kinds on either side are given the benefit of the
/// doubt.
pub fn converts(kind: &AttributeType, part: Option<&str>, multi: bool, crm: &FieldKind) -> bool {
    use AttributeType as A;
    use FieldKind as C;
    if matches!(crm, C::Other(_)) || matches!(kind, A::Other(_)) {
        return true;
    }
    match (kind, part, crm) {
        (_, _, C::Text) if !matches!(kind, A::RecordReference | A::ActorReference) => true,
        (A::PersonalName | A::Location, Some(_), C::Choice) => true,
        (A::Text, None, C::Choice | C::MultiChoice) => true,
        (A::Number | A::Currency | A::Rating, _, C::Number) => true,
        (A::Checkbox, None, C::Bool) => true,
        (A::Date, None, C::Date | C::DateTime) => true,
        (A::Timestamp | A::Interaction, _, C::DateTime | C::Date) => true,
        (A::Select | A::Status, None, C::Choice) => !multi,
        (A::Select, None, C::MultiChoice) => multi,
        (A::RecordReference, None, C::Reference) => true,
        // An owner: HubSpot's `hubspot_owner_id` (an enumeration of owners, or text), a
        // Salesforce `OwnerId` (a reference to a User).
        (A::ActorReference, None, C::Text | C::Choice | C::Reference) => !multi,
        _ => false,
    }
}

/// The parts an Attio attribute type has.
fn parts(kind: &AttributeType) -> &'static [&'static str] {
    match kind {
        AttributeType::PersonalName => &["first_name", "last_name", "full_name"],
        AttributeType::Location => &[
            "line_1",
            "line_2",
            "locality",
            "region",
            "postcode",
            "country_code",
        ],
        AttributeType::Currency => &["currency_value", "currency_code"],
        _ => &[],
    }
}

/// The values a field writes into the CRM when they come from a fixed set: an Attio select's or
/// status's option titles through the transform, or a value map's CRM side.
async fn written_choices(
    clients: &TenantClients,
    object: &ObjectSlug,
    attr: &Attribute,
    f: &FieldMapping,
) -> Result<Vec<(String, String)>, PortError> {
    let target = AttributeTarget::Object(ObjectRef::from(object.clone()));
    let slug = &f.attio.attribute;
    let titles: Vec<String> = match attr.attribute_type {
        AttributeType::Select => clients
            .schema
            .list_options(&target, slug)
            .await?
            .into_iter()
            .filter(|o| !o.is_archived)
            .map(|o| o.title)
            .collect(),
        AttributeType::Status => clients
            .schema
            .list_statuses(&target, slug)
            .await?
            .into_iter()
            .filter(|s| !s.is_archived)
            .map(|s| s.title)
            .collect(),
        _ => match &f.transform {
            Transform::MapValues { values } => {
                return Ok(values
                    .pairs()
                    .map(|(a, e)| (a.to_owned(), e.to_owned()))
                    .collect());
            }
            _ => Vec::new(),
        },
    };
    Ok(titles
        .into_iter()
        .map(|t| {
            let out = f
                .transform
                .to_external(&domain::field::FieldValue::text(t.clone()));
            let out = match out {
                domain::field::FieldValue::Text(s) => s,
                other => format!("{other:?}"),
            };
            (t, out)
        })
        .collect())
}

/// Checks one field against the Attio attribute and the CRM field it maps.
async fn check_field(
    clients: &TenantClients,
    object: &ObjectSlug,
    system: &SystemId,
    f: &FieldMapping,
    attr: &Attribute,
    prop: &ExternalField,
    problem: &mut (dyn FnMut(Option<&str>, ProblemKind, String) + Send),
) -> Result<(), PortError> {
    let key = f.key().to_string();
    let slug = f.attio.attribute.as_str();
    if let Some(p) = &f.attio.part
        && !parts(&attr.attribute_type).contains(&p.as_str())
    {
        problem(
            Some(&key),
            ProblemKind::UnknownAttribute,
            format!(
                "{object}.{slug} is {} and has no part {p:?}",
                attr.attribute_type
            ),
        );
        return Ok(());
    }
    let part = f.attio.part.as_deref();
    let is_reference = attr.attribute_type == AttributeType::RecordReference;
    if is_reference != f.attio.references.is_some() {
        let message = if is_reference {
            format!(
                "{object}.{slug} is a record reference: name the object it refers to (`references`)"
            )
        } else {
            format!(
                "{object}.{slug} is {}, not a record reference: `references` does not apply",
                attr.attribute_type
            )
        };
        problem(Some(&key), ProblemKind::TypeMismatch, message);
    }
    if !converts(&attr.attribute_type, part, attr.is_multiselect, &prop.kind) {
        problem(
            Some(&key),
            ProblemKind::TypeMismatch,
            format!(
                "{object}.{slug} is {}{} and {system} {} is {:?}: their values cannot convert",
                attr.attribute_type,
                if attr.is_multiselect { " (multi)" } else { "" },
                prop.name,
                prop.kind
            ),
        );
    }
    if f.rule.flows_to_external() && !prop.writable {
        problem(
            Some(&key),
            ProblemKind::ReadOnly,
            format!(
                "{system} {} is read-only, but Attio's changes to {object}.{slug} flow to it",
                prop.name
            ),
        );
    }
    if f.rule.flows_to_attio() && f.rule != SyncRule::ExternalToAttio && !attr.is_writable {
        problem(
            Some(&key),
            ProblemKind::ReadOnly,
            format!(
                "{object}.{slug} cannot be written through Attio's API, but {system} {}'s changes flow to it (make the rule attio_to_external)",
                prop.name
            ),
        );
    } else if f.rule == SyncRule::ExternalToAttio && !attr.is_writable {
        problem(
            Some(&key),
            ProblemKind::ReadOnly,
            format!("{object}.{slug} cannot be written through Attio's API"),
        );
    }
    if matches!(prop.kind, FieldKind::Choice | FieldKind::MultiChoice)
        && f.rule.flows_to_external()
        && !prop.options.is_empty()
    {
        for (from, to) in written_choices(clients, object, attr, f).await? {
            if !prop.options.contains(&to) {
                problem(
                    Some(&key),
                    ProblemKind::MissingOption,
                    format!(
                        "{object}.{slug} {from:?} is written to {system} {} as {to:?}, which is not one of its options ({})",
                        prop.name,
                        prop.options.join(", ")
                    ),
                );
            }
        }
    }
    Ok(())
}

/// Checks checked mappings against the live schemas of the tenant's Attio workspace and CRMs.
/// `targets` pairs each mapping with its index in the document. A provider that cannot be
/// reached ends the check with its error (nothing can be said about that part).
pub async fn check_live(
    clients: &TenantClients,
    targets: &[(usize, SyncTarget)],
) -> ServiceResult<Vec<MappingProblem>> {
    let mut problems = Vec::new();
    let mut attributes: HashMap<ObjectSlug, Option<Vec<Attribute>>> = HashMap::new();
    let mut described: HashMap<(SystemId, String), Option<Vec<ExternalField>>> = HashMap::new();
    for (i, t) in targets {
        let m = &t.mapping;
        let mut problem = |field: Option<&str>, kind, message| {
            problems.push(MappingProblem::new(*i, field, kind, message))
        };
        let Some(crm) = clients.crms.get(&m.system) else {
            problem(
                None,
                ProblemKind::Invalid,
                format!("the tenant has no {} connection", m.system),
            );
            continue;
        };
        if !attributes.contains_key(&m.attio_object) {
            let found = match clients
                .schema
                .list_attributes(&AttributeTarget::Object(ObjectRef::from(
                    m.attio_object.clone(),
                )))
                .await
            {
                Ok(a) => Some(a),
                Err(PortError::NotFound(_)) => None,
                Err(e) => return Err(e.into()),
            };
            attributes.insert(m.attio_object.clone(), found);
        }
        let key = (m.system.clone(), m.external_object.clone());
        if !described.contains_key(&key) {
            let found = match crm.describe(&m.external_object).await {
                Ok(f) => Some(f),
                Err(PortError::NotFound(_)) => None,
                Err(e) => return Err(e.into()),
            };
            described.insert(key.clone(), found);
        }
        let (Some(Some(attrs)), Some(Some(fields))) =
            (attributes.get(&m.attio_object), described.get(&key))
        else {
            if matches!(attributes.get(&m.attio_object), Some(None)) {
                problem(
                    None,
                    ProblemKind::UnknownObject,
                    format!("Attio has no object {}", m.attio_object),
                );
            }
            if matches!(described.get(&key), Some(None)) {
                problem(
                    None,
                    ProblemKind::UnknownObject,
                    format!("{} has no object {}", m.system, m.external_object),
                );
            }
            continue;
        };
        for f in m.fields() {
            let key = f.key().to_string();
            let slug = f.attio.attribute.as_str();
            let attr = attrs.iter().find(|a| a.api_slug == slug);
            let prop = fields.iter().find(|p| p.name == f.external.as_str());
            match (attr, prop) {
                (None, _) => problem(
                    Some(&key),
                    ProblemKind::UnknownAttribute,
                    format!("Attio's {} have no attribute {slug}", m.attio_object),
                ),
                (Some(a), _) if a.is_archived => problem(
                    Some(&key),
                    ProblemKind::UnknownAttribute,
                    format!("{}.{slug} is archived", m.attio_object),
                ),
                _ => {}
            }
            if prop.is_none() {
                problem(
                    Some(f.external.as_str()),
                    ProblemKind::UnknownProperty,
                    format!(
                        "{} {} has no property {}",
                        m.system,
                        m.external_object,
                        f.external.as_str()
                    ),
                );
            }
            if let (Some(a), Some(p)) = (attr, prop)
                && !a.is_archived
            {
                check_field(clients, &m.attio_object, &m.system, f, a, p, &mut problem).await?;
            }
        }
        let mapped: BTreeSet<&str> = m
            .fields()
            .iter()
            .map(|f| f.external.as_str())
            .chain([t.id_property.as_str()])
            .chain(t.create_with.keys().map(ExternalProperty::as_str))
            .collect();
        for p in fields {
            if p.required && p.writable && !mapped.contains(p.name.as_str()) {
                problem(
                    Some(&p.name),
                    ProblemKind::RequiredUnmapped,
                    format!(
                        "{} {} requires {} on create, and no Attio field is mapped to it (map one, or give it in create_with)",
                        m.system, m.external_object, p.name
                    ),
                );
            }
        }
        if !fields.iter().any(|p| p.name == t.id_property.as_str()) {
            problem(
                Some(t.id_property.as_str()),
                ProblemKind::UnknownProperty,
                format!(
                    "{} {} has no property {} to hold the Attio record id",
                    m.system,
                    m.external_object,
                    t.id_property.as_str()
                ),
            );
        }
    }
    Ok(problems)
}

/// Gives the id of a system a plugin of this build serves, or `None`.
pub type SystemOf = dyn Fn(&str) -> Option<SystemId> + Send + Sync;

/// Checks a tenant's mappings of its connected CRMs against the live schemas (after an Attio
/// attribute changed, and before each scheduled reconciliation: a CRM's schema can change
/// without telling us). Each problem is logged with its system and counted in
/// `mapping_problems_found_total`. `Err` when a provider cannot be asked.
pub async fn recheck(
    clients: &TenantClients,
    tenant: &TenantId,
    targets: &[SyncTarget],
) -> ServiceResult<Vec<(SystemId, MappingProblem)>> {
    let connected: Vec<(usize, SyncTarget)> = targets
        .iter()
        .filter(|t| clients.crms.contains_key(&t.mapping.system))
        .cloned()
        .enumerate()
        .collect();
    let problems: Vec<(SystemId, MappingProblem)> = check_live(clients, &connected)
        .await?
        .into_iter()
        .map(|p| (connected[p.target].1.mapping.system.clone(), p))
        .collect();
    metrics::counter!("mapping_problems_found_total").increment(problems.len() as u64);
    for (system, p) in &problems {
        tracing::warn!(tenant = %tenant, system = %system, problem = %p, "a mapping no longer fits the live schemas");
    }
    Ok(problems)
}

/// A tenant's compiled mappings.
#[derive(Debug, Clone, Default)]
pub struct TenantMappings {
    pub targets: Arc<Vec<SyncTarget>>,
    /// The stored mappings' delete policies; `None` for the worker's file (whose policies the
    /// worker's delete rules hold).
    pub policies: Option<Arc<DeletePolicies>>,
    /// The stored version they came from; `None` for the worker's file.
    pub version: Option<u64>,
}

/// Where the sync reads a tenant's mappings: its stored ones (kept `ttl`), else the defaults
/// (the worker's file). A stored document that no longer compiles (a plugin was removed) is
/// logged and the defaults are used.
pub struct MappingCatalog {
    defaults: Arc<Vec<SyncTarget>>,
    store: Option<Arc<dyn MappingStore>>,
    system_of: Box<SystemOf>,
    ttl: Duration,
    cache: Mutex<HashMap<TenantId, (Instant, TenantMappings)>>,
}

impl std::fmt::Debug for MappingCatalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MappingCatalog")
            .field("defaults", &self.defaults.len())
            .field("stored", &self.store.is_some())
            .finish_non_exhaustive()
    }
}

impl MappingCatalog {
    /// The same mappings for every tenant.
    pub fn fixed(targets: Vec<SyncTarget>) -> Self {
        Self {
            defaults: Arc::new(targets),
            store: None,
            system_of: Box::new(|_| None),
            ttl: Duration::ZERO,
            cache: Mutex::default(),
        }
    }

    /// Each tenant's stored mappings (read again after `ttl`), `defaults` for tenants without.
    pub fn stored(
        defaults: Vec<SyncTarget>,
        store: Arc<dyn MappingStore>,
        system_of: impl Fn(&str) -> Option<SystemId> + Send + Sync + 'static,
        ttl: Duration,
    ) -> Self {
        Self {
            defaults: Arc::new(defaults),
            store: Some(store),
            system_of: Box::new(system_of),
            ttl,
            cache: Mutex::default(),
        }
    }

    /// The worker's own mappings.
    pub fn defaults(&self) -> &[SyncTarget] {
        &self.defaults
    }

    /// The tenant's mappings. `Unavailable` when the store cannot be read.
    pub async fn of(&self, tenant: &TenantId) -> ServiceResult<TenantMappings> {
        let Some(store) = &self.store else {
            return Ok(TenantMappings {
                targets: self.defaults.clone(),
                policies: None,
                version: None,
            });
        };
        if let Some((at, m)) = self
            .cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(tenant)
            && at.elapsed() < self.ttl
        {
            return Ok(m.clone());
        }
        let found = match store.current(tenant).await? {
            None => TenantMappings {
                targets: self.defaults.clone(),
                policies: None,
                version: None,
            },
            Some(stored) => match stored.document.check(&self.system_of) {
                Ok(checked) => {
                    let (targets, policies) = compile(checked);
                    TenantMappings {
                        targets: Arc::new(targets),
                        policies: Some(Arc::new(policies)),
                        version: Some(stored.version),
                    }
                }
                Err(problems) => {
                    let first = problems
                        .first()
                        .map(ToString::to_string)
                        .unwrap_or_default();
                    tracing::error!(tenant = %tenant, version = stored.version, problems = problems.len(), first = %first, "the tenant's stored mappings no longer check; the worker's file is used");
                    TenantMappings {
                        targets: self.defaults.clone(),
                        policies: None,
                        version: None,
                    }
                }
            },
        };
        self.cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(tenant.clone(), (Instant::now(), found.clone()));
        Ok(found)
    }

    /// A candidate document's sync targets (for a dry run), or its problems.
    pub fn candidate(
        &self,
        document: &MappingDocument,
    ) -> Result<Vec<SyncTarget>, Vec<MappingProblem>> {
        document
            .check(&self.system_of)
            .map(|checked| compile(checked).0)
    }

    /// Forgets a tenant's cached mappings (after they were replaced).
    pub fn forget(&self, tenant: &TenantId) {
        self.cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(tenant);
    }
}

/// A document's static check and, when it passes, the live one: every problem.
pub async fn validate(
    document: &MappingDocument,
    clients: &TenantClients,
    system_of: impl Fn(&str) -> Option<SystemId>,
) -> ServiceResult<Vec<MappingProblem>> {
    match document.check(system_of) {
        Err(problems) => Ok(problems),
        Ok(checked) => {
            let (targets, _) = compile(checked);
            let indexed: Vec<(usize, SyncTarget)> = targets.into_iter().enumerate().collect();
            check_live(clients, &indexed).await
        }
    }
}
