//! Cache keys, tags and TTL categories. Every key and tag is scoped to a tenant by construction.

use std::fmt;
use std::time::Duration;

use crate::error::DomainError;
use crate::ids::TenantId;

/// What is cached, which decides the TTL (design §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CacheCategory {
    /// Objects and attributes: 30 minutes.
    Schema,
    /// Records: 5 minutes.
    Record,
    /// Lists and entries: 2 minutes.
    List,
    /// Notes: 1 minute.
    Note,
}

impl CacheCategory {
    pub fn ttl(self) -> Duration {
        match self {
            Self::Schema => Duration::from_secs(30 * 60),
            Self::Record => Duration::from_secs(5 * 60),
            Self::List => Duration::from_secs(2 * 60),
            Self::Note => Duration::from_secs(60),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Schema => "schema",
            Self::Record => "record",
            Self::List => "list",
            Self::Note => "note",
        }
    }
}

fn check_name(kind: &'static str, name: &str) -> Result<(), DomainError> {
    if name.is_empty()
        || name.len() > 400
        || name.contains(|c: char| c.is_whitespace() || c.is_control())
    {
        return Err(DomainError::InvalidId {
            kind,
            input: name.chars().take(80).collect(),
            reason: "must be 1 to 400 bytes without whitespace",
        });
    }
    Ok(())
}

/// A cache key: tenant, category and a name within them.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct CacheKey {
    pub tenant: TenantId,
    pub category: CacheCategory,
    name: String,
}

impl CacheKey {
    pub fn new(tenant: TenantId, category: CacheCategory, name: &str) -> Result<Self, DomainError> {
        check_name("cache key", name)?;
        Ok(Self {
            tenant,
            category,
            name: name.to_owned(),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The flat form adapters store under: `t:{tenant}:{category}:{name}`.
    pub fn render(&self) -> String {
        format!("t:{}:{}:{}", self.tenant, self.category.as_str(), self.name)
    }
}

impl fmt::Debug for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CacheKey({})", self.render())
    }
}

/// A tag several keys share, flushed at once by a webhook event (e.g. `record:{id}`).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct CacheTag {
    pub tenant: TenantId,
    name: String,
}

impl CacheTag {
    pub fn new(tenant: TenantId, name: &str) -> Result<Self, DomainError> {
        check_name("cache tag", name)?;
        Ok(Self {
            tenant,
            name: name.to_owned(),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn render(&self) -> String {
        format!("t:{}:tag:{}", self.tenant, self.name)
    }
}

impl fmt::Debug for CacheTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CacheTag({})", self.render())
    }
}
