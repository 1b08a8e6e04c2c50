//! A circuit breaker per circuit key (an adapter is per tenant, so per (tenant, key); Attio keys
//! by object).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ports::error::PortError;

#[derive(Debug, Clone, Copy)]
enum State {
    Closed {
        failures: u32,
    },
    Open {
        until: Instant,
    },
    /// One probe is in flight; others are refused until it settles.
    Probing,
}

#[derive(Debug)]
pub struct Breaker {
    threshold: u32,
    open_for: Duration,
    states: Mutex<HashMap<String, State>>,
}

impl Breaker {
    pub fn new(threshold: u32, open_for: Duration) -> Self {
        Self {
            threshold: threshold.max(1),
            open_for,
            states: Mutex::default(),
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut HashMap<String, State>) -> R) -> R {
        let mut guard = self
            .states
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut guard)
    }

    /// `Unavailable` (naming `provider` and `key`) while the circuit of `key` is open, or its
    /// probe is in flight.
    pub fn allow(&self, provider: &str, key: &str) -> Result<(), PortError> {
        self.with(|m| {
            let state = m
                .entry(key.to_owned())
                .or_insert(State::Closed { failures: 0 });
            match *state {
                State::Closed { .. } => Ok(()),
                State::Open { until } if Instant::now() >= until => {
                    *state = State::Probing;
                    Ok(())
                }
                State::Open { .. } | State::Probing => Err(PortError::unavailable(
                    format!("{provider} ({key})"),
                    format!("the circuit for {key} is open after repeated failures"),
                )),
            }
        })
    }

    pub fn success(&self, key: &str) {
        self.with(|m| m.insert(key.to_owned(), State::Closed { failures: 0 }));
    }

    /// Counts a final failure; true when it opened the circuit.
    pub fn failure(&self, key: &str) -> bool {
        let (threshold, open_for) = (self.threshold, self.open_for);
        self.with(|m| {
            let state = m
                .entry(key.to_owned())
                .or_insert(State::Closed { failures: 0 });
            let was_open = matches!(*state, State::Open { .. });
            *state = match *state {
                State::Closed { failures } if failures + 1 < threshold => State::Closed {
                    failures: failures + 1,
                },
                _ => State::Open {
                    until: Instant::now() + open_for,
                },
            };
            !was_open && matches!(*state, State::Open { .. })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_the_threshold_probes_once_and_closes_on_success() {
        let b = Breaker::new(2, Duration::from_millis(20));
        assert!(!b.failure("people"), "one failure opens nothing");
        assert!(b.allow("Attio", "people").is_ok());
        assert!(b.failure("people"), "the second opens the circuit");
        assert!(
            b.allow("Attio", "people").is_err(),
            "open after two failures"
        );
        assert!(b.allow("Attio", "companies").is_ok(), "per object");
        std::thread::sleep(Duration::from_millis(30));
        assert!(
            b.allow("Attio", "people").is_ok(),
            "one probe after the open period"
        );
        assert!(
            b.allow("Attio", "people").is_err(),
            "only one probe at a time"
        );
        assert!(b.failure("people"), "a failed probe opens it again");
        assert!(
            b.allow("Attio", "people").is_err(),
            "a failed probe re-opens"
        );
        std::thread::sleep(Duration::from_millis(30));
        assert!(b.allow("Attio", "people").is_ok());
        b.success("people");
        assert!(
            b.allow("Attio", "people").is_ok() && b.allow("Attio", "people").is_ok(),
            "closed again"
        );
    }
}
