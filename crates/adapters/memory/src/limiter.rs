use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use domain::limits::{BudgetKey, Quota};
use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultKeyedRateLimiter, RateLimiter as Governor};
use ports::error::{PortError, PortResult};
use ports::limiter::{RateDecision, RateLimiter};

use crate::lock;

/// Token buckets (GCRA, from `governor`) per budget key, in this process only.
#[derive(Clone, Default)]
pub struct MemoryRateLimiter {
    limiters: Arc<Mutex<HashMap<Quota, Arc<DefaultKeyedRateLimiter<String>>>>>,
    clock: DefaultClock,
}

impl std::fmt::Debug for MemoryRateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryRateLimiter").finish_non_exhaustive()
    }
}

impl MemoryRateLimiter {
    fn limiter(&self, quota: Quota) -> PortResult<Arc<DefaultKeyedRateLimiter<String>>> {
        let mut map = lock(&self.limiters);
        if let Some(l) = map.get(&quota) {
            return Ok(l.clone());
        }
        let q = governor::Quota::with_period(quota.interval())
            .ok_or_else(|| PortError::Invalid(format!("quota {quota:?} has no interval")))?
            .allow_burst(quota.limit());
        let l = Arc::new(Governor::keyed(q));
        map.insert(quota, l.clone());
        Ok(l)
    }
}

#[async_trait]
impl RateLimiter for MemoryRateLimiter {
    async fn try_acquire(
        &self,
        key: &BudgetKey,
        quota: Quota,
        cost: u32,
    ) -> PortResult<RateDecision> {
        let n = NonZeroU32::new(cost).ok_or_else(|| PortError::Invalid("a cost of 0".into()))?;
        if n > quota.limit() {
            return Err(PortError::Invalid(format!(
                "a cost of {cost} can never fit a limit of {}",
                quota.limit()
            )));
        }
        match self.limiter(quota)?.check_key_n(&key.render(), n) {
            Ok(Ok(())) => Ok(RateDecision::Allowed),
            Ok(Err(not_until)) => Ok(RateDecision::Wait(
                not_until.wait_time_from(self.clock.now()),
            )),
            Err(insufficient) => Err(PortError::Invalid(insufficient.to_string())),
        }
    }
}
