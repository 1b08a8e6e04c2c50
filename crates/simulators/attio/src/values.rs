//! Writes: from Attio's write forms to stored values, with Attio's rules (reference §3.3, §4):
//! lookups of statuses, options, members and referenced records; uniqueness; single-value
//! attributes replace, multiselects append (PATCH) or are set exactly (PUT); replaced values stay
//! in the history with `active_until` set.

use domain::actor::{Actor, ActorType};
use domain::ids::RecordId;
use domain::timestamp::Timestamp;
use domain::value::{
    ActorReferenceValue, Amount, AttributeValue, CheckboxValue, CurrencyValue, DateValue,
    DomainValue, EmailAddressValue, LocationValue, NumberValue, PersonalNameValue,
    PhoneNumberValue, RatingValue, RecordReferenceValue, SelectValue, StatusValue, TextValue,
    TimestampValue, ValueData,
};
use domain::write::{MemberRef, RecordTarget, WriteValue};
use serde_json::{Map, Value, json};
use time::macros::format_description;

use crate::error::{ApiError, ApiResult};
use crate::world::{AttrDef, ObjectDef, StoredRecord, Workspace};

/// How a write treats multiselect attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `PATCH` and create: add values.
    Append,
    /// `PUT`: set values exactly.
    Overwrite,
}

fn root_domain(domain: &str) -> String {
    let labels: Vec<&str> = domain.split('.').filter(|l| !l.is_empty()).collect();
    if labels.len() <= 2 {
        labels.join(".")
    } else {
        labels[labels.len() - 2..].join(".")
    }
}

fn bare_domain(input: &str) -> String {
    let d = input.trim().to_lowercase();
    let d = d
        .strip_prefix("https://")
        .or_else(|| d.strip_prefix("http://"))
        .unwrap_or(&d);
    d.split(['/', '?', '#'])
        .next()
        .unwrap_or_default()
        .trim_start_matches("www.")
        .to_owned()
}

fn invalid_value(attr: &AttrDef, reason: &str) -> ApiError {
    ApiError::invalid(
        "validation_type",
        format!(
            "An invalid value was passed to attribute with slug \"{}\".",
            attr.slug()
        ),
    )
    .with(
        "validation_errors",
        json!([{ "code": "invalid_type", "path": [attr.slug()], "message": reason }]),
    )
}

/// E.164 from what a person typed, with Attio's country inference for a few codes.
fn e164(original: &str, country: Option<&str>) -> (String, Option<String>) {
    let digits: String = original.chars().filter(char::is_ascii_digit).collect();
    if original.trim_start().starts_with('+') {
        let cc = if digits.starts_with('1') {
            Some("US")
        } else if digits.starts_with("44") {
            Some("GB")
        } else if digits.starts_with("49") {
            Some("DE")
        } else if digits.starts_with("33") {
            Some("FR")
        } else {
            None
        };
        return (
            format!("+{digits}"),
            country.map(str::to_owned).or(cc.map(str::to_owned)),
        );
    }
    match country.unwrap_or("US") {
        "GB" => (
            format!("+44{}", digits.trim_start_matches('0')),
            Some("GB".into()),
        ),
        "DE" => (
            format!("+49{}", digits.trim_start_matches('0')),
            Some("DE".into()),
        ),
        "FR" => (
            format!("+33{}", digits.trim_start_matches('0')),
            Some("FR".into()),
        ),
        other => (
            format!("+1{}", digits.trim_start_matches('1')),
            Some(other.to_owned()),
        ),
    }
}

/// The comparable identity of a value (for multiselect de-duplication and uniqueness).
pub fn identity(data: &ValueData) -> String {
    match data {
        ValueData::EmailAddress(e) => e.email_address.to_lowercase(),
        ValueData::Domain(d) => d.domain.to_lowercase(),
        ValueData::Text(t) => t.value.clone(),
        ValueData::RecordReference(r) => r.target_record_id.to_string(),
        ValueData::Select(s) => s.option.id.option_id.to_string(),
        ValueData::Status(s) => s.status.id.status_id.to_string(),
        ValueData::PhoneNumber(p) => p.phone_number.clone(),
        other => serde_json::to_string(&AttributeValue {
            active_from: None,
            active_until: None,
            created_by_actor: None,
            data: other.clone(),
        })
        .unwrap_or_default(),
    }
}

/// Finds a record of `object` whose unique-attribute value matches `raw` (a write form).
fn find_by(
    ws: &Workspace,
    object: &ObjectDef,
    attribute: &str,
    raw: &Value,
) -> ApiResult<Option<RecordId>> {
    let Some(attr) = object.attribute(attribute) else {
        return Err(ApiError::invalid(
            "value_not_found",
            format!("Cannot find attribute with slug/ID \"{attribute}\"."),
        ));
    };
    let wanted = materialize(
        ws,
        attr,
        WriteValue::from_json(&attr.attr.attribute_type, raw)
            .map_err(|e| invalid_value(attr, &e.to_string()))?,
    )?;
    let key = identity(&wanted);
    Ok(object
        .records
        .iter()
        .find(|r| r.active(attr.slug()).any(|v| identity(&v.data) == key))
        .map(|r| r.id))
}

/// One write input in its stored form.
pub fn materialize(ws: &Workspace, attr: &AttrDef, w: WriteValue) -> ApiResult<ValueData> {
    let extra = Map::new;
    Ok(match w {
        WriteValue::Text(value) => ValueData::Text(TextValue {
            value,
            extra: extra(),
        }),
        WriteValue::Number(value) => ValueData::Number(NumberValue {
            value,
            extra: extra(),
        }),
        WriteValue::Checkbox(value) => ValueData::Checkbox(CheckboxValue {
            value,
            extra: extra(),
        }),
        WriteValue::Currency(n) => {
            let code = attr
                .attr
                .config
                .as_ref()
                .and_then(|c| c["currency"]["default_currency_code"].as_str())
                .unwrap_or("USD")
                .to_owned();
            ValueData::Currency(CurrencyValue {
                currency_value: Amount::Number(n),
                currency_code: Some(code),
                extra: extra(),
            })
        }
        WriteValue::Date(d) => ValueData::Date(DateValue {
            value: d
                .format(format_description!("[year]-[month]-[day]"))
                .unwrap_or_default(),
            extra: extra(),
        }),
        WriteValue::Timestamp(t) => ValueData::Timestamp(TimestampValue {
            value: Timestamp::from_datetime(t.as_datetime()),
            extra: extra(),
        }),
        WriteValue::Rating(r) => ValueData::Rating(RatingValue {
            value: r.get(),
            extra: extra(),
        }),
        WriteValue::Status(s) => {
            let status = attr
                .statuses
                .iter()
                .find(|st| !st.is_archived && (st.title == s || st.id.status_id.to_string() == s))
                .ok_or_else(|| {
                    ApiError::invalid(
                        "value_not_found",
                        format!("Cannot find status attribute with status title \"{s}\"."),
                    )
                })?;
            ValueData::Status(StatusValue {
                status: status.clone(),
                extra: extra(),
            })
        }
        WriteValue::Select(s) => {
            let option = attr
                .options
                .iter()
                .find(|o| !o.is_archived && (o.title == s || o.id.option_id.to_string() == s))
                .ok_or_else(|| {
                    ApiError::invalid(
                        "value_not_found",
                        format!("Cannot find select attribute with select option title \"{s}\"."),
                    )
                })?;
            ValueData::Select(SelectValue {
                option: option.clone(),
                extra: extra(),
            })
        }
        WriteValue::RecordReference {
            target_object,
            target,
        } => {
            let allowed = attr.target_object.as_deref().unwrap_or_default();
            let Some(object) = ws
                .object(target_object.as_str())
                .filter(|o| o.slug() == allowed)
            else {
                return Err(invalid_value(
                    attr,
                    &format!(
                        "records of \"{target_object}\" cannot be referenced here; expected \"{allowed}\""
                    ),
                ));
            };
            let id = match target {
                RecordTarget::Id(id) => object.record(id).map(|r| r.id),
                RecordTarget::Matching { attribute, values } => {
                    let mut found = None;
                    for v in &values {
                        found = found.or(find_by(ws, object, attribute.as_str(), v)?);
                    }
                    found
                }
            };
            let id = id.ok_or_else(|| {
                ApiError::invalid(
                    "value_not_found",
                    format!("Referenced record in \"{}\" was not found.", object.slug()),
                )
            })?;
            ValueData::RecordReference(RecordReferenceValue {
                target_object: object.slug().to_owned(),
                target_record_id: id,
                extra: extra(),
            })
        }
        WriteValue::RecordReferenceByText(text) => {
            let target = attr.target_object.as_deref().unwrap_or_default();
            let object = ws
                .object(target)
                .ok_or_else(|| invalid_value(attr, "no target object"))?;
            let by = match target {
                "companies" => "domains",
                "people" => "email_addresses",
                "users" => "user_id",
                _ => {
                    return Err(invalid_value(
                        attr,
                        "plain strings only reference people, companies or users",
                    ));
                }
            };
            let id = find_by(ws, object, by, &Value::String(text.clone()))?.ok_or_else(|| {
                ApiError::invalid(
                    "value_not_found",
                    format!("Referenced record \"{text}\" was not found."),
                )
            })?;
            ValueData::RecordReference(RecordReferenceValue {
                target_object: target.to_owned(),
                target_record_id: id,
                extra: extra(),
            })
        }
        WriteValue::ActorReference(m) => {
            let member = match &m {
                MemberRef::Email(e) => ws.member_by_email(e.as_str()),
                MemberRef::Id(id) => ws.members.iter().find(|x| x.id.workspace_member_id == *id),
            }
            .ok_or_else(|| {
                ApiError::invalid("value_not_found", "Workspace member was not found.")
            })?;
            ValueData::ActorReference(ActorReferenceValue {
                referenced_actor_type: ActorType::WorkspaceMember,
                referenced_actor_id: Some(member.id.workspace_member_id.to_string()),
                extra: extra(),
            })
        }
        WriteValue::Location(l) => ValueData::Location(LocationValue {
            line_1: l.line_1,
            line_2: l.line_2,
            line_3: l.line_3,
            line_4: l.line_4,
            locality: l.locality,
            region: l.region,
            postcode: l.postcode,
            country_code: l.country_code,
            latitude: l.latitude,
            longitude: l.longitude,
            extra: extra(),
        }),
        WriteValue::LocationText(s) => ValueData::Location(LocationValue {
            line_1: Some(s),
            ..LocationValue::default()
        }),
        WriteValue::Domain(d) => {
            let domain = bare_domain(&d);
            ValueData::Domain(DomainValue {
                root_domain: root_domain(&domain),
                domain,
                extra: extra(),
            })
        }
        WriteValue::EmailAddress(e) => {
            let original = e.as_str().to_owned();
            let email = original.to_lowercase();
            let (local, domain) = email.split_once('@').unwrap_or((&email, ""));
            ValueData::EmailAddress(EmailAddressValue {
                original_email_address: original.clone(),
                email_root_domain: root_domain(domain),
                email_domain: domain.to_owned(),
                email_local_specifier: local.split('+').next().unwrap_or(local).to_owned(),
                email_address: email.clone(),
                extra: extra(),
            })
        }
        WriteValue::PhoneNumber {
            original_phone_number,
            country_code,
        } => {
            let (phone_number, country_code) =
                e164(&original_phone_number, country_code.as_deref());
            ValueData::PhoneNumber(PhoneNumberValue {
                original_phone_number,
                country_code,
                phone_number,
                extra: extra(),
            })
        }
        WriteValue::PersonalName {
            first_name,
            last_name,
            full_name,
        } => ValueData::PersonalName(PersonalNameValue {
            first_name: Some(first_name),
            last_name: Some(last_name),
            full_name: Some(full_name),
            extra: extra(),
        }),
    })
}

/// Parses an attribute's input (`values[slug]`) into stored forms.
pub fn parse_input(ws: &Workspace, attr: &AttrDef, raw: &Value) -> ApiResult<Vec<ValueData>> {
    if !attr.attr.is_writable {
        return Err(ApiError::invalid(
            "immutable_value",
            format!("Attribute with slug \"{}\" is not writable.", attr.slug()),
        ));
    }
    if matches!(raw, Value::Null) {
        return Ok(Vec::new());
    }
    let writes = WriteValue::list_from_json(&attr.attr.attribute_type, raw)
        .map_err(|e| invalid_value(attr, &e.to_string()))?;
    if !attr.attr.is_multiselect && writes.len() > 1 {
        return Err(ApiError::invalid(
            "multiple_values_for_single_value_attribute",
            format!(
                "Attribute with slug \"{}\" accepts a single value.",
                attr.slug()
            ),
        ));
    }
    writes
        .into_iter()
        .map(|w| materialize(ws, attr, w))
        .collect()
}

/// Applies new values of one attribute to a record: single-value attributes and `PUT` replace
/// (closing values not wanted any more), multiselect `PATCH` adds. New values go first among the
/// active ones (Attio prepends). Returns whether anything changed.
pub fn apply(
    rec: &mut StoredRecord,
    attr: &AttrDef,
    new: Vec<ValueData>,
    mode: Mode,
    now: &Timestamp,
    actor: &Actor,
) -> bool {
    let all = rec.values.entry(attr.slug().to_owned()).or_default();
    let replace = !attr.attr.is_multiselect || mode == Mode::Overwrite;
    let wanted: Vec<String> = new.iter().map(identity).collect();
    let mut changed = false;
    if replace {
        for v in all.iter_mut().filter(|v| v.is_active()) {
            if !wanted.contains(&identity(&v.data)) {
                v.active_until = Some(now.clone());
                changed = true;
            }
        }
    }
    for data in new.into_iter().rev() {
        let id = identity(&data);
        if all.iter().any(|v| v.is_active() && identity(&v.data) == id) {
            continue;
        }
        all.insert(0, AttributeValue::new(data, now.clone(), actor.clone()));
        changed = true;
    }
    changed
}

/// 400 `uniqueness_conflict` when another record holds one of the record's unique values.
pub fn check_unique(object: &ObjectDef, rec: &StoredRecord) -> ApiResult<()> {
    for attr in object
        .attributes
        .iter()
        .filter(|a| a.attr.is_unique && a.attr.is_writable)
    {
        for v in rec.active(attr.slug()) {
            let key = identity(&v.data);
            if let Some(other) = object
                .records
                .iter()
                .find(|o| o.id != rec.id && o.active(attr.slug()).any(|x| identity(&x.data) == key))
            {
                return Err(ApiError::invalid(
                    "uniqueness_conflict",
                    format!(
                        "A value provided for attribute with slug \"{}\" conflicts with one already in the system. This attribute has a uniqueness constraint. Please ensure all values for this attribute do not exist on another record. Conflicting record IDs: {}",
                        attr.slug(),
                        other.id
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// 400 `missing_value` when a required attribute has no value.
pub fn check_required(object: &ObjectDef, rec: &StoredRecord) -> ApiResult<()> {
    for attr in object.attributes.iter().filter(|a| a.attr.is_required) {
        if rec.active(attr.slug()).next().is_none() {
            return Err(ApiError::invalid(
                "missing_value",
                format!(
                    "Required value for attribute with ID \"{}\" was not provided.",
                    attr.attr.id.attribute_id
                ),
            ));
        }
    }
    Ok(())
}

/// The system values every record carries from its creation.
pub fn system_values(rec: &mut StoredRecord, actor: &Actor) {
    let system = Actor::new(ActorType::System, None);
    let at = rec.created_at.clone();
    rec.values.insert(
        "record_id".into(),
        vec![AttributeValue::new(
            ValueData::Text(TextValue {
                value: rec.id.to_string(),
                extra: Map::new(),
            }),
            at.clone(),
            system.clone(),
        )],
    );
    rec.values.insert(
        "created_at".into(),
        vec![AttributeValue::new(
            ValueData::Timestamp(TimestampValue {
                value: at.clone(),
                extra: Map::new(),
            }),
            at.clone(),
            system.clone(),
        )],
    );
    rec.values.insert(
        "created_by".into(),
        vec![AttributeValue::new(
            ValueData::ActorReference(ActorReferenceValue {
                referenced_actor_type: actor.actor_type.clone().unwrap_or(ActorType::System),
                referenced_actor_id: actor.id.clone(),
                extra: Map::new(),
            }),
            at,
            system,
        )],
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_and_phones_normalise() {
        assert_eq!(
            bare_domain("https://www.App.Attio.com/path"),
            "app.attio.com"
        );
        assert_eq!(root_domain("app.attio.com"), "attio.com");
        assert_eq!(
            e164("5558675309", Some("US")),
            ("+15558675309".into(), Some("US".into()))
        );
        assert_eq!(
            e164("+44 20 7946 0958", None),
            ("+442079460958".into(), Some("GB".into()))
        );
        assert_eq!(
            e164("020 7946 0958", Some("GB")),
            ("+442079460958".into(), Some("GB".into()))
        );
    }
}
