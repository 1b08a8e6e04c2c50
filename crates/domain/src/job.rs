//! Jobs of the durable queue, their keys (for ordering and coalescing) and the retry policy.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;

use crate::error::DomainError;
use crate::ids::{JobId, TenantId};

/// Orders and coalesces jobs: at most one job per key is in flight, jobs of one key run in the
/// order they were enqueued, and a new job for a key with a pending job folds into it.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct JobKey {
    pub tenant: TenantId,
    /// The partition workers can be limited to, e.g. an object type (`people`).
    pub partition: String,
    /// The entity within the partition, e.g. a record id.
    pub entity: String,
}

impl JobKey {
    pub fn new(tenant: TenantId, partition: &str, entity: &str) -> Result<Self, DomainError> {
        let check = |what: &'static str, s: &str| {
            if s.is_empty() || s.len() > 200 || s.contains(|c: char| c.is_whitespace() || c == '/')
            {
                Err(DomainError::InvalidId {
                    kind: what,
                    input: s.chars().take(80).collect(),
                    reason: "must be 1 to 200 bytes without whitespace or '/'",
                })
            } else {
                Ok(())
            }
        };
        check("job partition", partition)?;
        check("job entity", entity)?;
        Ok(Self {
            tenant,
            partition: partition.to_owned(),
            entity: entity.to_owned(),
        })
    }
}

impl fmt::Display for JobKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.tenant, self.partition, self.entity)
    }
}

impl fmt::Debug for JobKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "JobKey({self})")
    }
}

/// A job's payload: one JSON value, kept as its text. The queues store it as given (they never
/// look inside), so a payload made from text already at hand (a delivery's body) is never
/// parsed into a tree and printed again.
#[derive(Clone)]
pub struct JobPayload(Box<serde_json::value::RawValue>);

impl JobPayload {
    /// The value's JSON text.
    pub fn from_value(v: &Value) -> Self {
        // Serialising a `Value` cannot fail (its keys are strings).
        Self(
            serde_json::value::to_raw_value(v)
                .unwrap_or_else(|_| serde_json::value::RawValue::NULL.to_owned()),
        )
    }

    /// JSON text that serde has already checked (e.g. `serde_json::value::to_raw_value`).
    pub fn from_raw(raw: Box<serde_json::value::RawValue>) -> Self {
        Self(raw)
    }

    pub fn as_str(&self) -> &str {
        self.0.get()
    }

    pub fn as_raw(&self) -> &serde_json::value::RawValue {
        &self.0
    }

    /// The payload as a tree. `InvalidJson` cannot happen for a payload built by this type, but
    /// the text came from outside the process in the queues that store it.
    pub fn to_value(&self) -> Result<Value, DomainError> {
        serde_json::from_str(self.as_str()).map_err(|e| DomainError::InvalidJson(e.to_string()))
    }
}

impl PartialEq for JobPayload {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl fmt::Debug for JobPayload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "JobPayload({})", self.as_str())
    }
}

/// Written as the JSON it holds (not as a string).
impl Serialize for JobPayload {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl From<Value> for JobPayload {
    fn from(v: Value) -> Self {
        Self::from_value(&v)
    }
}

/// A job to enqueue.
#[derive(Debug, Clone, PartialEq)]
pub struct NewJob {
    pub key: JobKey,
    /// What happened; opaque to the queue. Folded payloads accumulate in order.
    pub payload: JobPayload,
    /// Not before `now + delay` (the debounce window).
    pub delay: Duration,
    /// Deliveries before the job is dead-lettered (at least 1).
    pub max_attempts: u32,
}

impl NewJob {
    pub fn new(key: JobKey, payload: impl Into<JobPayload>) -> Self {
        Self {
            key,
            payload: payload.into(),
            delay: Duration::ZERO,
            max_attempts: RetryPolicy::default().max_attempts,
        }
    }

    pub fn with_delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    pub fn with_max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = n.max(1);
        self
    }
}

/// A job as the queue hands it out.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    pub id: JobId,
    pub key: JobKey,
    /// Every payload folded into this job, oldest first.
    pub payloads: Vec<Value>,
    /// Deliveries so far, including the current one.
    pub attempts: u32,
    pub max_attempts: u32,
    pub enqueued_at: OffsetDateTime,
    /// The error of the previous failed attempt.
    pub last_error: Option<String>,
}

impl Job {
    /// Whether the current delivery is the last one allowed.
    pub fn is_last_attempt(&self) -> bool {
        self.attempts >= self.max_attempts
    }
}

/// A job that exhausted its attempts or failed permanently.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    pub job: Job,
    pub error: String,
    pub failed_at: OffsetDateTime,
    /// The effect may be partly applied: a person should reconcile before replaying.
    pub needs_reconciliation: bool,
}

impl DeadLetter {
    /// The kind of failure, for grouping dead letters: the error's text before its first `": "`
    /// (`hubspot rejected the request (400 INVALID_EMAIL)`), with any `(retry after …)` dropped;
    /// the whole text when it has no such part.
    pub fn cause(&self) -> &str {
        let head = self.error.split(": ").next().unwrap_or(&self.error);
        head.split(" (retry after").next().unwrap_or(head).trim()
    }
}

/// Exponential backoff with full jitter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    #[serde(with = "duration_ms")]
    pub base: Duration,
    #[serde(with = "duration_ms")]
    pub cap: Duration,
}

impl Default for RetryPolicy {
    /// Three attempts, from 2 s, capped at 5 minutes.
    fn default() -> Self {
        Self {
            max_attempts: 3,
            base: Duration::from_secs(2),
            cap: Duration::from_secs(300),
        }
    }
}

impl RetryPolicy {
    /// The delay before attempt `attempt + 1`, after `attempt` failed (1-based):
    /// `jitter × min(cap, base × 2^(attempt-1))`, with `jitter` drawn uniformly from [0, 1).
    pub fn delay(&self, attempt: u32, jitter: f64) -> Duration {
        let exp = attempt.saturating_sub(1).min(31);
        let ceiling = self.base.saturating_mul(1u32 << exp).min(self.cap);
        ceiling.mul_f64(jitter.clamp(0.0, 1.0))
    }

    /// The deterministic upper bound of [`Self::delay`].
    pub fn ceiling(&self, attempt: u32) -> Duration {
        self.delay(attempt, 1.0)
    }
}

mod duration_ms {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_dead_letters_cause_is_its_errors_kind() {
        let job = Job {
            id: crate::ids::JobId::from_uuid(uuid::Uuid::nil()),
            key: JobKey::new(TenantId::parse("acme").unwrap(), "people", "r1").unwrap(),
            payloads: vec![],
            attempts: 1,
            max_attempts: 1,
            enqueued_at: OffsetDateTime::UNIX_EPOCH,
            last_error: None,
        };
        for (error, cause) in [
            (
                "hubspot rejected the request (400 INVALID_EMAIL): Email address x is invalid",
                "hubspot rejected the request (400 INVALID_EMAIL)",
            ),
            (
                "crm-b refused the record: no such owner",
                "crm-b refused the record",
            ),
            ("rate limited (retry after 500 ms)", "rate limited"),
            ("not ready: company c1 is not linked", "not ready"),
            ("attio is unavailable", "attio is unavailable"),
            ("", ""),
        ] {
            let letter = DeadLetter {
                job: job.clone(),
                error: error.into(),
                failed_at: OffsetDateTime::UNIX_EPOCH,
                needs_reconciliation: false,
            };
            assert_eq!(letter.cause(), cause, "{error}");
        }
    }
    use super::*;

    #[test]
    fn a_payload_keeps_its_json_text_and_is_written_as_json() {
        let v = serde_json::json!({"source": "attio", "n": [1, 2]});
        let p = JobPayload::from_value(&v);
        assert_eq!(p.to_value().unwrap(), v);
        // Embedded in another document as JSON, not as a string.
        let written = serde_json::to_string(&[&p]).unwrap();
        assert_eq!(written, format!("[{}]", p.as_str()));
        let raw: Box<serde_json::value::RawValue> =
            serde_json::from_str(r#"{"b": 1,  "a": 2}"#).unwrap();
        let kept = JobPayload::from_raw(raw);
        assert_eq!(kept.as_str(), r#"{"b": 1,  "a": 2}"#, "text kept as given");
        assert_eq!(
            kept,
            JobPayload::from_raw(serde_json::from_str(r#"{"b": 1,  "a": 2}"#).unwrap())
        );
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let p = RetryPolicy::default();
        let table = [
            (1, 2),
            (2, 4),
            (3, 8),
            (4, 16),
            (8, 256),
            (9, 300),
            (40, 300),
        ];
        for (attempt, secs) in table {
            assert_eq!(
                p.ceiling(attempt),
                Duration::from_secs(secs),
                "attempt {attempt}"
            );
        }
        assert_eq!(p.delay(3, 0.0), Duration::ZERO);
        assert_eq!(p.delay(3, 0.5), Duration::from_secs(4));
    }

    #[test]
    fn job_keys_are_validated() {
        let t = TenantId::parse("acme").unwrap();
        assert!(JobKey::new(t.clone(), "people", "bf071e1f").is_ok());
        assert!(JobKey::new(t.clone(), "", "x").is_err());
        assert!(JobKey::new(t, "people", "a/b").is_err());
    }
}
