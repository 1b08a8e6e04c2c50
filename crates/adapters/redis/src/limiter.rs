use async_trait::async_trait;
use domain::limits::{BudgetKey, Quota};
use ports::error::{PortError, PortResult};
use ports::limiter::{RateDecision, RateLimiter};

use crate::{RedisStore, rerr};

/// GCRA: the key holds the theoretical arrival time (ms, from the server clock, so replicas agree).
/// ARGV: interval ms (float), burst (requests), cost. Returns 0 when allowed, else the wait in ms.
const GCRA: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local interval, burst, cost = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + interval * cost
local allow_at = new_tat - interval * burst
if allow_at > now then
    return math.ceil(allow_at - now)
end
redis.call('SET', KEYS[1], tostring(new_tat), 'PX', math.ceil(new_tat - now) + 1)
return 0
"#;

#[async_trait]
impl RateLimiter for RedisStore {
    async fn try_acquire(
        &self,
        key: &BudgetKey,
        quota: Quota,
        cost: u32,
    ) -> PortResult<RateDecision> {
        if cost == 0 || cost > quota.limit().get() {
            return Err(PortError::Invalid(format!(
                "a cost of {cost} can never fit a limit of {}",
                quota.limit()
            )));
        }
        let wait_ms: u64 = redis::Script::new(GCRA)
            .key(self.key(&key.render()))
            .arg(quota.interval().as_secs_f64() * 1000.0)
            .arg(quota.limit().get())
            .arg(cost)
            .invoke_async(&mut self.conn())
            .await
            .map_err(rerr)?;
        Ok(if wait_ms == 0 {
            RateDecision::Allowed
        } else {
            RateDecision::Wait(std::time::Duration::from_millis(wait_ms))
        })
    }
}
