//! Rate budgets shared by every replica that uses the same backend.

use std::time::Duration;

use async_trait::async_trait;
use domain::limits::{BudgetKey, Quota};

use crate::error::PortResult;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateDecision {
    Allowed,
    /// Not now: the cost fits after this wait.
    Wait(Duration),
}

#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait RateLimiter: Send + Sync {
    /// Takes `cost` units from the budget if they are available now (GCRA / token bucket with
    /// bursts up to the quota's limit). `Invalid` when `cost` is 0 or exceeds the quota's limit
    /// (it could never fit); `Unavailable` when a shared backend cannot be reached.
    async fn try_acquire(
        &self,
        key: &BudgetKey,
        quota: Quota,
        cost: u32,
    ) -> PortResult<RateDecision>;
}
