//! Attio's timestamps: ISO-8601 UTC with nanoseconds (`2022-11-21T13:22:49.061281000Z`).

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{OffsetDateTime, UtcOffset};

use crate::error::DomainError;

/// A point in time as Attio writes it.
///
/// Parsing keeps the original text so that re-encoding a payload is byte-for-byte lossless;
/// equality, ordering and hashing use the instant only.
#[derive(Clone)]
pub struct Timestamp {
    at: OffsetDateTime,
    raw: Option<Box<str>>,
}

impl Timestamp {
    /// Parses an RFC 3339 timestamp, keeping the text.
    pub fn parse(s: &str) -> Result<Self, DomainError> {
        let at = OffsetDateTime::parse(s, &Rfc3339).map_err(|e| DomainError::InvalidTimestamp {
            input: s.chars().take(64).collect(),
            reason: e.to_string(),
        })?;
        Ok(Self {
            at: at.to_offset(UtcOffset::UTC),
            raw: Some(s.into()),
        })
    }

    /// A timestamp for an instant; encodes in Attio's canonical form.
    pub fn from_datetime(at: OffsetDateTime) -> Self {
        Self {
            at: at.to_offset(UtcOffset::UTC),
            raw: None,
        }
    }

    /// Seconds since the Unix epoch (for tests and fixtures).
    pub fn from_unix(secs: i64) -> Result<Self, DomainError> {
        OffsetDateTime::from_unix_timestamp(secs)
            .map(Self::from_datetime)
            .map_err(|e| DomainError::InvalidTimestamp {
                input: secs.to_string(),
                reason: e.to_string(),
            })
    }

    pub fn as_datetime(&self) -> OffsetDateTime {
        self.at
    }

    /// Attio's canonical form: UTC, nine fractional digits, `Z`.
    pub fn to_attio_string(&self) -> String {
        let fmt = format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:9]Z"
        );
        // Formatting a UTC OffsetDateTime with a fixed description only fails for years
        // outside 0..=9999, which Attio cannot produce; fall back to RFC 3339 then.
        self.at
            .format(fmt)
            .or_else(|_| self.at.format(&Rfc3339))
            .unwrap_or_default()
    }
}

impl PartialEq for Timestamp {
    fn eq(&self, other: &Self) -> bool {
        self.at == other.at
    }
}
impl Eq for Timestamp {}
impl PartialOrd for Timestamp {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Timestamp {
    fn cmp(&self, other: &Self) -> Ordering {
        self.at.cmp(&other.at)
    }
}
impl Hash for Timestamp {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.at.hash(state);
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.raw {
            Some(raw) => f.write_str(raw),
            None => f.write_str(&self.to_attio_string()),
        }
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Timestamp({self})")
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl From<OffsetDateTime> for Timestamp {
    fn from(at: OffsetDateTime) -> Self {
        Self::from_datetime(at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_text_and_compares_instants() {
        let a = Timestamp::parse("2022-11-21T13:22:49.061281000Z").unwrap();
        let b = Timestamp::parse("2022-11-21T14:22:49.061281+01:00").unwrap();
        assert_eq!(a, b);
        assert_eq!(a.to_string(), "2022-11-21T13:22:49.061281000Z");
        assert_eq!(b.to_string(), "2022-11-21T14:22:49.061281+01:00");
        assert_eq!(b.to_attio_string(), "2022-11-21T13:22:49.061281000Z");
    }

    #[test]
    fn rejects_non_rfc3339() {
        for bad in ["2022-11-21", "yesterday", "2022-11-21 13:22:49"] {
            assert!(Timestamp::parse(bad).is_err(), "{bad}");
        }
    }
}
