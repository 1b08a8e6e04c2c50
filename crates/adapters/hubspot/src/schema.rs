//! HubSpot's property definitions (`GET /crm/v3/properties/{objectType}`) as provider-neutral
//! fields: `type` (`string`, `number`, `date`, `datetime`, `enumeration`, `bool`) and
//! `fieldType` (`checkbox` makes an enumeration multi-valued) give the kind; `options` the
//! choices; `modificationMetadata.readOnlyValue` and `calculated` whether the API may write it.
//! HubSpot requires no property on create, so none is `required`.

use ports::crm::{ExternalField, FieldKind};
use ports::error::{PortError, PortResult};
use reqwest::Method;
use serde::Deserialize;

use crate::wire::decode;
use crate::{HubSpotClient, rejected};

#[derive(Debug, Deserialize)]
struct Properties {
    results: Vec<Property>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Property {
    name: String,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    field_type: String,
    #[serde(default)]
    options: Vec<Choice>,
    #[serde(default)]
    calculated: bool,
    #[serde(default)]
    modification_metadata: Option<Modification>,
}

#[derive(Debug, Deserialize)]
struct Choice {
    value: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Modification {
    #[serde(default)]
    read_only_value: bool,
}

impl Property {
    fn into_field(self) -> ExternalField {
        let kind = match (self.kind.as_str(), self.field_type.as_str()) {
            ("enumeration", "checkbox") => FieldKind::MultiChoice,
            ("enumeration", _) => FieldKind::Choice,
            ("string" | "phone_number", _) => FieldKind::Text,
            ("number", _) => FieldKind::Number,
            ("bool", _) => FieldKind::Bool,
            ("date", _) => FieldKind::Date,
            ("datetime", _) => FieldKind::DateTime,
            (other, _) => FieldKind::Other(other.to_owned()),
        };
        let read_only = self.calculated
            || self
                .modification_metadata
                .as_ref()
                .is_some_and(|m| m.read_only_value);
        ExternalField {
            name: self.name,
            kind,
            options: self.options.into_iter().map(|o| o.value).collect(),
            required: false,
            writable: !read_only,
        }
    }
}

impl HubSpotClient {
    /// The object's property definitions. `NotFound` for an unknown object type.
    pub(crate) async fn properties(&self, object: &str) -> PortResult<Vec<ExternalField>> {
        let path = format!(
            "{}/{object}",
            self.config
                .objects_prefix
                .replacen("objects", "properties", 1)
        );
        let answer = self.send(Method::GET, &path, &[], None).await?;
        match answer.status {
            200 => Ok(decode::<Properties>(answer.body, "property definitions")?
                .results
                .into_iter()
                .map(Property::into_field)
                .collect()),
            404 => Err(PortError::NotFound(format!("HubSpot object type {object}"))),
            status => Err(rejected(status, &answer.body)),
        }
    }
}
