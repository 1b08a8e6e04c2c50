//! Validated identifiers. Nothing outside this module can build an invalid one: every constructor
//! parses.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use uuid::Uuid;

use crate::error::DomainError;

macro_rules! uuid_id {
    ($(#[$meta:meta])* $name:ident, $kind:literal) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Uuid);

        impl $name {
            /// Wraps an already-parsed UUID.
            pub const fn from_uuid(id: Uuid) -> Self {
                Self(id)
            }

            /// Parses the hyphenated (or any RFC 9562) text form.
            pub fn parse(s: &str) -> Result<Self, DomainError> {
                Uuid::try_parse(s).map(Self).map_err(|_| DomainError::InvalidId {
                    kind: $kind,
                    input: s.chars().take(80).collect(),
                    reason: "not a UUID",
                })
            }

            pub const fn as_uuid(&self) -> &Uuid {
                &self.0
            }
        }

        impl FromStr for $name {
            type Err = DomainError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0.hyphenated(), f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0.hyphenated())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(&self.0.hyphenated())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                Self::parse(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

uuid_id!(/// An Attio workspace.
    WorkspaceId, "workspace id");
uuid_id!(/// An Attio object (people, companies, deals, custom objects) by its UUID.
    ObjectId, "object id");
uuid_id!(/// An Attio record.
    RecordId, "record id");
uuid_id!(/// An Attio list.
    ListId, "list id");
uuid_id!(/// An entry of an Attio list.
    EntryId, "entry id");
uuid_id!(/// An attribute of an object or a list, by its UUID.
    AttributeId, "attribute id");
uuid_id!(/// An Attio webhook subscription.
    WebhookId, "webhook id");
uuid_id!(/// An Attio note.
    NoteId, "note id");
uuid_id!(/// An Attio task.
    TaskId, "task id");
uuid_id!(/// A member of an Attio workspace.
    WorkspaceMemberId, "workspace member id");
uuid_id!(/// An option of a select attribute.
    OptionId, "select option id");
uuid_id!(/// A status of a status attribute.
    StatusId, "status id");
uuid_id!(/// An Attio comment.
    CommentId, "comment id");
uuid_id!(/// An Attio comment thread.
    ThreadId, "thread id");
uuid_id!(/// An Attio meeting.
    MeetingId, "meeting id");
uuid_id!(/// A call recording of a meeting.
    CallRecordingId, "call recording id");
uuid_id!(/// An Attio activity (2026 API revisions).
    ActivityId, "activity id");
uuid_id!(/// A job in the sync queue.
    JobId, "job id");
uuid_id!(/// A conflict waiting for a person's decision.
    ConflictId, "conflict id");
uuid_id!(/// A received webhook delivery in the inbox.
    InboxId, "inbox id");
uuid_id!(/// A delete seen on one side, propagated or held for approval.
    DeleteId, "delete id");

macro_rules! slug_id {
    ($(#[$meta:meta])* $name:ident, $kind:literal, max = $max:literal, valid = $valid:expr, reason = $reason:literal) => {
        $(#[$meta])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Box<str>);

        impl $name {
            /// Parses and validates.
            pub fn parse(s: &str) -> Result<Self, DomainError> {
                let err = |reason| DomainError::InvalidId {
                    kind: $kind,
                    input: s.chars().take(80).collect(),
                    reason,
                };
                if s.is_empty() {
                    return Err(err("must not be empty"));
                }
                if s.len() > $max {
                    return Err(err(concat!("longer than ", $max, " bytes")));
                }
                let valid: fn(&str) -> bool = $valid;
                if !valid(s) {
                    return Err(err($reason));
                }
                Ok(Self(s.into()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl FromStr for $name {
            type Err = DomainError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), &*self.0)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                Self::parse(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

fn is_tenant_slug(s: &str) -> bool {
    let b = s.as_bytes();
    (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-' || *c == b'_')
}

fn is_api_slug(s: &str) -> bool {
    // Attio's api slugs are snake_case or kebab-case; be tolerant of case, strict on characters
    // that could break a path or a cache key.
    s.bytes()
        .all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-')
}

fn is_token(s: &str) -> bool {
    s.bytes()
        .all(|c| c.is_ascii_graphic() && c != b'/' && c != b':')
}

slug_id!(/// One customer workspace of attio-sync (a tenant). Lower-case letters, digits, `-` and `_`,
    /// starting with a letter or digit; used in URLs, cache keys and queue partitions.
    TenantId, "tenant id", max = 63, valid = is_tenant_slug,
    reason = "use lower-case letters, digits, '-' and '_', starting with a letter or digit");
slug_id!(/// The `api_slug` of an Attio object (`people`, `companies`, ...).
    ObjectSlug, "object slug", max = 128, valid = is_api_slug,
    reason = "use letters, digits, '_' and '-'");
slug_id!(/// The `api_slug` of an attribute (`email_addresses`, `name`, ...).
    AttributeSlug, "attribute slug", max = 128, valid = is_api_slug,
    reason = "use letters, digits, '_' and '-'");
slug_id!(/// The `api_slug` of a list.
    ListSlug, "list slug", max = 128, valid = is_api_slug,
    reason = "use letters, digits, '_' and '-'");
slug_id!(/// An external system attio-sync talks to (`attio`, or a CRM plugin's
    /// name): a slug, not an enum, so a CRM is added by adding a crate.
    SystemId, "system id", max = 32, valid = is_tenant_slug,
    reason = "use lower-case letters, digits, '-' and '_', starting with a letter or digit");
slug_id!(/// The id of a record in an external CRM (an object id, an 18-character record id, ...).
    ExternalId, "external id", max = 255, valid = is_token,
    reason = "use visible ASCII without '/' or ':'");

impl SystemId {
    /// The system id of Attio itself.
    pub fn attio() -> Self {
        Self("attio".into())
    }

    /// Whether `name` is a valid system id, at compile time: a plugin states
    /// `const _: () = assert!(SystemId::valid(NAME));` and then builds its id with
    /// [`SystemId::from_static`], so no caller needs a fallback for a parse that cannot fail.
    pub const fn valid(name: &str) -> bool {
        let b = name.as_bytes();
        if b.is_empty() || b.len() > 32 || !(b[0].is_ascii_lowercase() || b[0].is_ascii_digit()) {
            return false;
        }
        let mut i = 0;
        while i < b.len() {
            let c = b[i];
            if !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-' || c == b'_') {
                return false;
            }
            i += 1;
        }
        true
    }

    /// A system id fixed in code, checked at compile time with [`SystemId::valid`] (and again
    /// here in debug builds).
    pub fn from_static(name: &'static str) -> Self {
        debug_assert!(Self::valid(name), "{name:?} is not a valid system id");
        Self(name.into())
    }
}

/// An object named either way Attio accepts in paths: UUID or `api_slug`.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub enum ObjectRef {
    Id(ObjectId),
    Slug(ObjectSlug),
}

impl ObjectRef {
    pub fn parse(s: &str) -> Result<Self, DomainError> {
        match ObjectId::parse(s) {
            Ok(id) => Ok(Self::Id(id)),
            Err(_) => ObjectSlug::parse(s).map(Self::Slug),
        }
    }
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Id(id) => id.fmt(f),
            Self::Slug(s) => s.fmt(f),
        }
    }
}

impl From<ObjectSlug> for ObjectRef {
    fn from(s: ObjectSlug) -> Self {
        Self::Slug(s)
    }
}

impl From<ObjectId> for ObjectRef {
    fn from(s: ObjectId) -> Self {
        Self::Id(s)
    }
}

impl Serialize for ObjectRef {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ObjectRef {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_ids_are_validated() {
        for ok in ["acme", "acme-eu_1", "0day"] {
            assert!(TenantId::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", "Acme", "-acme", "acme corp", "a/b", &"x".repeat(64)] {
            assert!(TenantId::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_compile_time_system_id_check_agrees_with_parse() {
        for name in [
            "attio",
            "crm-a",
            "x_1",
            "0day",
            "",
            "Crm",
            "-x",
            "a b",
            "a/b",
            &"x".repeat(32),
            &"x".repeat(33),
        ] {
            assert_eq!(
                SystemId::valid(name),
                SystemId::parse(name).is_ok(),
                "{name:?}"
            );
        }
    }

    #[test]
    fn uuid_ids_reject_garbage_and_round_trip() {
        let id = RecordId::parse("bf071e1f-6035-429d-b874-d83ea64ea13b").unwrap();
        assert_eq!(id.to_string(), "bf071e1f-6035-429d-b874-d83ea64ea13b");
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(serde_json::from_str::<RecordId>(&json).unwrap(), id);
        let err = RecordId::parse("people").unwrap_err();
        assert!(err.to_string().contains("record id"), "{err}");
        assert!(serde_json::from_str::<RecordId>("\"nope\"").is_err());
    }

    #[test]
    fn object_ref_takes_uuid_or_slug() {
        assert!(matches!(ObjectRef::parse("people"), Ok(ObjectRef::Slug(_))));
        assert!(matches!(
            ObjectRef::parse("97052eb9-e65e-443f-a297-f2d9a4a7f795"),
            Ok(ObjectRef::Id(_))
        ));
        assert!(ObjectRef::parse("peo ple").is_err());
    }

    #[test]
    fn external_ids_refuse_separators() {
        assert!(ExternalId::parse("0031x00000AbCdEAAZ").is_ok());
        assert!(ExternalId::parse("12345").is_ok());
        assert!(ExternalId::parse("a/b").is_err());
        assert!(ExternalId::parse("a b").is_err());
    }
}
