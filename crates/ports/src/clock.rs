//! Time, injected so services can be tested without waiting.

use std::time::Duration;

use async_trait::async_trait;
use time::OffsetDateTime;

#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait Clock: Send + Sync {
    /// The current time (UTC).
    fn now(&self) -> OffsetDateTime;
    /// Waits for `duration` (a test clock may advance instead).
    async fn sleep(&self, duration: Duration);
}
