//! A tenant's mappings as written (in the worker's file as `[[targets]]`, or stored per tenant
//! through the admin API), and the problems found in them. Every problem names the mapping
//! (its index) and the field it concerns, so all of them can be listed at once.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::deletes::DeletePolicy;
use crate::ids::{ObjectSlug, SystemId};
use crate::mapping::{ExternalProperty, FieldMapping, ObjectMapping};

/// One Attio object mapped to one object of one CRM, as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetDoc {
    pub attio_object: String,
    pub system: String,
    pub external_object: String,
    /// The external property holding the Attio record id (the upsert key).
    pub id_property: String,
    pub fields: Vec<FieldMapping>,
    /// This mapping's policy for Attio deletes (`archive`, `keep`, `hold`); the worker's
    /// default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_delete: Option<String>,
    /// This mapping's policy for CRM deletes; the worker's default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_crm_delete: Option<String>,
    /// Records born in the CRM create (or link) Attio records matched by this mapped Attio
    /// field (`email_addresses`, `domains`: a unique attribute); absent, they stay out of Attio.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_on: Option<String>,
    /// CRM properties and the text written to them only when the sync creates the record there
    /// (a value the CRM requires that Attio lacks, such as an Opportunity's `CloseDate`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub create_with: BTreeMap<String, String>,
}

/// A tenant's mappings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MappingDocument {
    pub targets: Vec<TargetDoc>,
}

/// One stored version of a tenant's mappings.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredMappings {
    pub tenant: crate::ids::TenantId,
    /// 1 for the first; each change adds one.
    pub version: u64,
    pub document: MappingDocument,
    /// Who made the change (as the operator's request names them).
    pub changed_by: String,
    pub changed_at: time::OffsetDateTime,
}

/// What is wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    /// Not well formed: a bad name, a field mapped twice, an unknown policy or system.
    Invalid,
    /// The Attio object or the CRM object does not exist.
    UnknownObject,
    /// No such Attio attribute (or part of one), or it is archived.
    UnknownAttribute,
    /// No such CRM property (field).
    UnknownProperty,
    /// The two sides' types cannot convert into each other.
    TypeMismatch,
    /// A value the mapping writes is not an option (or stage) of the target.
    MissingOption,
    /// The CRM requires a field on create that nothing is mapped to.
    RequiredUnmapped,
    /// A value would be written to a side that does not accept writes there.
    ReadOnly,
}

/// One problem, with where it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MappingProblem {
    /// The index of the mapping in `targets`.
    pub target: usize,
    /// The field it concerns: the Attio key, or the CRM property for CRM-side problems.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    pub kind: ProblemKind,
    pub message: String,
}

impl MappingProblem {
    pub fn new(target: usize, field: Option<&str>, kind: ProblemKind, message: String) -> Self {
        Self {
            target,
            field: field.map(str::to_owned),
            kind,
            message,
        }
    }
}

impl std::fmt::Display for MappingProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.field {
            Some(field) => write!(f, "targets[{}] {field}: {}", self.target, self.message),
            None => write!(f, "targets[{}]: {}", self.target, self.message),
        }
    }
}

/// One mapping, checked: the object mapping, its upsert key and its delete policies (`None`:
/// the worker's defaults).
#[derive(Debug, Clone, PartialEq)]
pub struct CheckedTarget {
    pub mapping: ObjectMapping,
    pub id_property: ExternalProperty,
    pub on_delete: Option<DeletePolicy>,
    pub on_crm_delete: Option<DeletePolicy>,
    /// Written only when the sync creates the CRM's record.
    pub create_with: BTreeMap<ExternalProperty, crate::field::FieldValue>,
}

impl MappingDocument {
    /// The checks that need no provider: names, policies, systems (`system_of` gives the id of
    /// a system a plugin serves, or `None`), and each mapping's own rules. Every problem is
    /// listed; the checked mappings come only when there are none.
    pub fn check(
        &self,
        system_of: impl Fn(&str) -> Option<SystemId>,
    ) -> Result<Vec<CheckedTarget>, Vec<MappingProblem>> {
        let mut problems = Vec::new();
        let mut checked = Vec::new();
        for (i, t) in self.targets.iter().enumerate() {
            let mut bad = |message: String| {
                problems.push(MappingProblem::new(i, None, ProblemKind::Invalid, message))
            };
            let object = ObjectSlug::parse(&t.attio_object).map_err(|e| bad(e.to_string()));
            let system = system_of(&t.system)
                .ok_or_else(|| bad(format!("unknown CRM system {:?}", t.system)));
            let id_property =
                ExternalProperty::parse(&t.id_property).map_err(|e| bad(e.to_string()));
            let policy = |what: &str, p: &Option<String>, bad: &mut dyn FnMut(String)| match p {
                None => Ok(None),
                Some(p) => DeletePolicy::parse(p).map(Some).ok_or_else(|| {
                    bad(format!(
                        "{what} must be \"archive\", \"keep\" or \"hold\", got {p:?}"
                    ))
                }),
            };
            let on_delete = policy("on_delete", &t.on_delete, &mut bad);
            let on_crm_delete = policy("on_crm_delete", &t.on_crm_delete, &mut bad);
            let create_with: Result<BTreeMap<_, _>, ()> = t
                .create_with
                .iter()
                .map(|(p, v)| {
                    ExternalProperty::parse(p)
                        .map(|p| (p, crate::field::FieldValue::text(v.clone())))
                        .map_err(|e| bad(format!("create_with: {e}")))
                })
                .collect();
            let (
                Ok(object),
                Ok(system),
                Ok(id_property),
                Ok(on_delete),
                Ok(on_crm_delete),
                Ok(create_with),
            ) = (
                object,
                system,
                id_property,
                on_delete,
                on_crm_delete,
                create_with,
            )
            else {
                continue;
            };
            let adopt = |m: ObjectMapping| match &t.match_on {
                None => Ok(m),
                Some(k) => crate::mapping::FieldKey::parse(k).and_then(|key| m.adopting(key)),
            };
            match ObjectMapping::new(object, system, &t.external_object, t.fields.clone())
                .and_then(adopt)
            {
                Ok(mapping) => checked.push((
                    i,
                    CheckedTarget {
                        mapping,
                        id_property,
                        on_delete,
                        on_crm_delete,
                        create_with,
                    },
                )),
                Err(e) => bad(e.to_string()),
            }
        }
        for (n, (i, a)) in checked.iter().enumerate() {
            let twice = checked[..n].iter().any(|(_, b)| {
                b.mapping.attio_object == a.mapping.attio_object
                    && b.mapping.system == a.mapping.system
            });
            if twice {
                problems.push(MappingProblem::new(
                    *i,
                    None,
                    ProblemKind::Invalid,
                    format!(
                        "{} is mapped to {} twice",
                        a.mapping.attio_object, a.mapping.system
                    ),
                ));
            }
        }
        problems.extend(unmapped_references(&checked));
        if problems.is_empty() {
            Ok(checked.into_iter().map(|(_, c)| c).collect())
        } else {
            Err(problems)
        }
    }
}

/// A reference is translated through the links of the object it refers to, so that object must
/// be mapped to the same CRM, and a reference is a whole value (no part of one).
fn unmapped_references(checked: &[(usize, CheckedTarget)]) -> Vec<MappingProblem> {
    let mut problems = Vec::new();
    for (i, t) in checked {
        for f in t.mapping.fields() {
            let Some(object) = &f.attio.references else {
                continue;
            };
            let field = f.key().to_string();
            if f.attio.part.is_some() {
                problems.push(MappingProblem::new(
                    *i,
                    Some(&field),
                    ProblemKind::Invalid,
                    "a reference maps the whole attribute, not a part of it".to_owned(),
                ));
            }
            let mapped = checked.iter().any(|(_, o)| {
                &o.mapping.attio_object == object && o.mapping.system == t.mapping.system
            });
            if !mapped {
                problems.push(MappingProblem::new(
                    *i,
                    Some(&field),
                    ProblemKind::Invalid,
                    format!(
                        "it refers to {object}, which is not mapped to {}: map {object} to {} too, so its records have ids there",
                        t.mapping.system, t.mapping.system
                    ),
                ));
            }
        }
    }
    problems
}
