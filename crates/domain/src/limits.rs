//! Rate budgets: token buckets per (tenant, provider, read/write).

use std::fmt;
use std::num::NonZeroU32;
use std::time::Duration;

use crate::error::DomainError;
use crate::ids::{SystemId, TenantId};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Access {
    Read,
    Write,
}

/// Names one budget.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BudgetKey {
    pub tenant: TenantId,
    pub system: SystemId,
    pub access: Access,
}

impl BudgetKey {
    pub fn render(&self) -> String {
        let access = match self.access {
            Access::Read => "read",
            Access::Write => "write",
        };
        format!("t:{}:rl:{}:{access}", self.tenant, self.system)
    }
}

impl fmt::Debug for BudgetKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BudgetKey({})", self.render())
    }
}

/// `limit` requests per `period`, with bursts up to `limit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Quota {
    limit: NonZeroU32,
    period: Duration,
}

impl Quota {
    pub fn new(limit: u32, period: Duration) -> Result<Self, DomainError> {
        let limit = NonZeroU32::new(limit).ok_or_else(|| DomainError::InvalidValue {
            target: "quota".into(),
            reason: "the limit must be at least 1".into(),
        })?;
        if period.is_zero() {
            return Err(DomainError::InvalidValue {
                target: "quota".into(),
                reason: "the period must be positive".into(),
            });
        }
        Ok(Self { limit, period })
    }

    pub fn per_second(limit: u32) -> Result<Self, DomainError> {
        Self::new(limit, Duration::from_secs(1))
    }

    pub fn limit(&self) -> NonZeroU32 {
        self.limit
    }

    pub fn period(&self) -> Duration {
        self.period
    }

    /// The time between two requests at the sustained rate.
    pub fn interval(&self) -> Duration {
        self.period / self.limit.get()
    }

    /// Attio's documented per-workspace budgets: 100 reads/s, 25 writes/s.
    pub fn attio(access: Access) -> Self {
        let limit = match access {
            Access::Read => NonZeroU32::MIN.saturating_add(99),
            Access::Write => NonZeroU32::MIN.saturating_add(24),
        };
        Self {
            limit,
            period: Duration::from_secs(1),
        }
    }
}
