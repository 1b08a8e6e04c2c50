use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use ports::clock::Clock;
use time::OffsetDateTime;

use crate::lock;

/// The real clock: UTC now, tokio sleeps.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

#[async_trait]
impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }

    async fn sleep(&self, duration: Duration) {
        tokio::time::sleep(duration).await;
    }
}

/// A clock that moves only when told to (or when something sleeps on it), for deterministic tests
/// of services.
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<OffsetDateTime>,
}

impl ManualClock {
    pub fn new(start: OffsetDateTime) -> Self {
        Self {
            now: Mutex::new(start),
        }
    }

    pub fn advance(&self, by: Duration) {
        let mut now = lock(&self.now);
        *now += by;
    }
}

#[async_trait]
impl Clock for ManualClock {
    fn now(&self) -> OffsetDateTime {
        *lock(&self.now)
    }

    /// Advances the clock by `duration` instead of waiting, then yields.
    async fn sleep(&self, duration: Duration) {
        self.advance(duration);
        tokio::task::yield_now().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn manual_clock_moves_only_when_told() {
        let c = ManualClock::new(OffsetDateTime::UNIX_EPOCH);
        assert_eq!(c.now(), OffsetDateTime::UNIX_EPOCH);
        c.sleep(Duration::from_secs(5)).await;
        c.advance(Duration::from_secs(1));
        assert_eq!(c.now(), OffsetDateTime::UNIX_EPOCH + Duration::from_secs(6));
    }
}
