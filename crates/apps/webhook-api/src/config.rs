//! Configuration: defaults, then a TOML file, then `ATTIO_SYNC_*` environment variables (nested
//! keys with `__`, e.g. `ATTIO_SYNC_STORE__URL`), validated into [`Settings`] before anything
//! starts. Secrets (the database URL, the master key) become [`Secret`]s at once and never print.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

pub use app_common::{ConfigError, QueueSettings, RawQueue, RawStore, StoreSettings};
use domain::tenant::Secret;
use serde::{Deserialize, Serialize};

/// The raw, layered form.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub listen: SocketAddr,
    /// This service's public URL: CRM webhook signatures may cover the full URL they called.
    pub public_url: String,
    pub store: RawStore,
    /// Where deliveries and jobs live: the store (default) or Redis.
    pub queue: RawQueue,
    /// 64 hex characters (AES-256) sealing credentials at rest; required unless `memory`.
    pub master_key: Option<String>,
    pub max_body_bytes: usize,
    /// The answer to a webhook, contact-API or operations request must start within this (Attio
    /// waits 5 s); a later one is answered 503 with a JSON body and logged.
    pub request_timeout_ms: u64,
    /// The same for the admin API, whose tenant creation waits for Attio.
    pub admin_timeout_ms: u64,
    /// A request's headers must arrive within this after the connection (or the previous
    /// answer); a slow sender's connection is closed.
    pub header_read_timeout_ms: u64,
    /// A connection on which nothing is read or written for this long is closed (idle
    /// keep-alive, a silent peer, an HTTP/2 connection that sends nothing).
    pub idle_timeout_s: u64,
    /// Connections served at once; further ones wait in the listen backlog.
    pub max_connections: usize,
    pub dedupe_retention_hours: u64,
    /// How often stored deliveries past the dedupe retention (and an hour's grace) are forgotten,
    /// with their keys' claims (ADR 0020); 0 never forgets them.
    pub purge_interval_s: u64,
    /// Deliveries forgotten per statement of a purge. Small, because each statement competes
    /// with the intake's commits while it runs (ADR 0023).
    pub purge_batch: usize,
    /// Jobs wait this long so bursts of events for one record fold into one job.
    pub debounce_ms: u64,
    /// Attempts before a job is dead-lettered.
    pub max_attempts: u32,
    /// The operator token of `/v1/admin` (at least 32 characters); the admin API is off without.
    pub admin_token: Option<String>,
    /// Where new tenants' webhooks are registered: `https://api.attio.com` or a simulator.
    pub attio_base_url: String,
}

impl Default for RawConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            public_url: "http://127.0.0.1:8080".into(),
            store: RawStore::Memory,
            queue: RawQueue::Store,
            master_key: None,
            max_body_bytes: 1024 * 1024,
            request_timeout_ms: 4_000,
            admin_timeout_ms: 20_000,
            header_read_timeout_ms: 5_000,
            idle_timeout_s: 60,
            max_connections: 4_096,
            dedupe_retention_hours: 96,
            purge_interval_s: 300,
            purge_batch: 100,
            debounce_ms: 1_000,
            max_attempts: 3,
            admin_token: None,
            attio_base_url: "https://api.attio.com".into(),
        }
    }
}

/// The validated configuration. `Debug` shows no secret.
#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    pub public_url: String,
    pub store: StoreSettings,
    pub queue: QueueSettings,
    pub max_body_bytes: usize,
    pub request_timeout: Duration,
    pub admin_timeout: Duration,
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
    pub dedupe_retention: Duration,
    /// `None`: the inbox is never purged.
    pub purge_interval: Option<Duration>,
    pub purge_batch: usize,
    pub debounce: Duration,
    pub max_attempts: u32,
    pub admin_token: Option<Secret>,
    pub attio_base_url: String,
}

impl RawConfig {
    /// Defaults, then `file` (when given), then the environment.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        app_common::load(file)
    }

    /// Checks every value; the first problem is the error.
    pub fn validate(self) -> Result<Settings, ConfigError> {
        let bad = |m: String| Err(ConfigError::Invalid(m));
        if !(self.public_url.starts_with("https://") || self.public_url.starts_with("http://")) {
            return bad(format!(
                "public_url {:?} must be an http(s) URL",
                self.public_url
            ));
        }
        if !(1024..=64 * 1024 * 1024).contains(&self.max_body_bytes) {
            return bad(format!(
                "max_body_bytes must be between 1 KiB and 64 MiB, got {}",
                self.max_body_bytes
            ));
        }
        if !(100..=30_000).contains(&self.request_timeout_ms) {
            return bad(format!(
                "request_timeout_ms must be between 100 and 30000, got {}",
                self.request_timeout_ms
            ));
        }
        if !(1_000..=120_000).contains(&self.admin_timeout_ms) {
            return bad(format!(
                "admin_timeout_ms must be between 1000 and 120000, got {}",
                self.admin_timeout_ms
            ));
        }
        if !(100..=60_000).contains(&self.header_read_timeout_ms) {
            return bad(format!(
                "header_read_timeout_ms must be between 100 and 60000, got {}",
                self.header_read_timeout_ms
            ));
        }
        if !(1..=3_600).contains(&self.idle_timeout_s)
            || self.idle_timeout_s * 1000 <= self.request_timeout_ms.max(self.admin_timeout_ms)
        {
            return bad(format!(
                "idle_timeout_s must be between 1 and 3600 and longer than the request and admin timeouts, got {}",
                self.idle_timeout_s
            ));
        }
        if !(1..=1_000_000).contains(&self.max_connections) {
            return bad(format!(
                "max_connections must be between 1 and 1000000, got {}",
                self.max_connections
            ));
        }
        if self.dedupe_retention_hours < 72 {
            return bad(format!(
                "dedupe_retention_hours must cover Attio's ~3-day retry horizon (at least 72), got {}",
                self.dedupe_retention_hours
            ));
        }
        let purge_interval =
            app_common::purge_interval(self.purge_interval_s, "deliveries for good")?;
        if !(1..=100_000).contains(&self.purge_batch) {
            return bad(format!(
                "purge_batch must be between 1 and 100000, got {}",
                self.purge_batch
            ));
        }
        if self.max_attempts == 0 || self.max_attempts > 100 {
            return bad(format!(
                "max_attempts must be between 1 and 100, got {}",
                self.max_attempts
            ));
        }
        let store = self.store.validate(self.master_key.as_deref())?;
        let queue = self.queue.validate()?;
        let admin_token = match self.admin_token {
            Some(t) if t.len() >= 32 => {
                Some(Secret::new(t).map_err(|e| ConfigError::Invalid(e.to_string()))?)
            }
            Some(_) => return bad("admin_token must be at least 32 characters".into()),
            None => None,
        };
        if !(self.attio_base_url.starts_with("https://")
            || self.attio_base_url.starts_with("http://"))
        {
            return bad(format!(
                "attio_base_url {:?} must be an http(s) URL",
                self.attio_base_url
            ));
        }
        Ok(Settings {
            listen: self.listen,
            public_url: self.public_url.trim_end_matches('/').to_owned(),
            store,
            queue,
            max_body_bytes: self.max_body_bytes,
            request_timeout: Duration::from_millis(self.request_timeout_ms),
            admin_timeout: Duration::from_millis(self.admin_timeout_ms),
            header_read_timeout: Duration::from_millis(self.header_read_timeout_ms),
            idle_timeout: Duration::from_secs(self.idle_timeout_s),
            max_connections: self.max_connections,
            dedupe_retention: Duration::from_secs(self.dedupe_retention_hours * 3600),
            purge_interval,
            purge_batch: self.purge_batch,
            debounce: Duration::from_millis(self.debounce_ms),
            max_attempts: self.max_attempts,
            admin_token,
            attio_base_url: self.attio_base_url.trim_end_matches('/').to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::result_large_err)]
    use super::*;

    #[test]
    fn the_defaults_are_valid() {
        let s = RawConfig::default().validate().unwrap();
        assert_eq!(s.max_attempts, 3);
        assert!(matches!(s.store, StoreSettings::Memory));
    }

    #[test]
    fn bad_values_are_refused_with_the_setting_named() {
        type Tweak = Box<dyn Fn(&mut RawConfig)>;
        let cases: Vec<(Tweak, &str)> = vec![
            (Box::new(|c| c.public_url = "ftp://x".into()), "public_url"),
            (Box::new(|c| c.max_body_bytes = 10), "max_body_bytes"),
            (
                Box::new(|c| c.request_timeout_ms = 60_000),
                "request_timeout_ms",
            ),
            (
                Box::new(|c| c.dedupe_retention_hours = 1),
                "dedupe_retention_hours",
            ),
            (
                Box::new(|c| c.purge_interval_s = 90_000),
                "purge_interval_s",
            ),
            (Box::new(|c| c.purge_batch = 0), "purge_batch"),
            (Box::new(|c| c.max_attempts = 0), "max_attempts"),
            (
                Box::new(|c| c.admin_token = Some("short".into())),
                "admin_token",
            ),
            (
                Box::new(|c| c.attio_base_url = "attio.com".into()),
                "attio_base_url",
            ),
            (
                Box::new(|c| {
                    c.store = RawStore::Postgres {
                        url: "postgres://x".into(),
                        schema: None,
                        max_connections: None,
                        intake_batch: None,
                        intake_slots: None,
                    }
                }),
                "master_key",
            ),
            (
                Box::new(|c| {
                    c.store = RawStore::Postgres {
                        url: "mysql://x".into(),
                        schema: None,
                        max_connections: None,
                        intake_batch: None,
                        intake_slots: None,
                    };
                    c.master_key = Some("ab".repeat(32));
                }),
                "store.url",
            ),
            (
                Box::new(|c| {
                    c.store = RawStore::Sqlite {
                        path: "x.db".into(),
                    };
                    c.master_key = Some("zz".into());
                }),
                "master_key",
            ),
            (
                Box::new(|c| {
                    c.queue = RawQueue::Redis {
                        url: "http://x".into(),
                        namespace: "a".into(),
                    }
                }),
                "queue.url",
            ),
            (
                Box::new(|c| {
                    c.queue = RawQueue::Redis {
                        url: "redis://x".into(),
                        namespace: "No Spaces".into(),
                    }
                }),
                "queue.namespace",
            ),
        ];
        for (tweak, name) in cases {
            let mut c = RawConfig::default();
            tweak(&mut c);
            let e = c.validate().unwrap_err().to_string();
            assert!(e.contains(name), "{name}: {e}");
        }
    }

    #[test]
    fn secrets_do_not_print() {
        let c = RawConfig {
            store: RawStore::Postgres {
                url: "postgres://u:hunter2@db/x".into(),
                schema: None,
                max_connections: None,
                intake_batch: None,
                intake_slots: None,
            },
            master_key: Some("ab".repeat(32)),
            ..RawConfig::default()
        };
        let s = c.validate().unwrap();
        let shown = format!("{s:?}");
        assert!(
            !shown.contains("hunter2") && !shown.contains(&"ab".repeat(32)),
            "{shown}"
        );
    }

    #[test]
    fn a_file_then_the_environment_override_the_defaults() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "c.toml",
                "max_attempts = 7\n[store]\nkind = \"sqlite\"\npath = \"a.db\"\n",
            )?;
            jail.set_env("ATTIO_SYNC_MAX_ATTEMPTS", "9");
            jail.set_env("ATTIO_SYNC_MASTER_KEY", "cd".repeat(32));
            jail.set_env("ATTIO_SYNC_QUEUE__KIND", "redis");
            jail.set_env("ATTIO_SYNC_QUEUE__URL", "redis://:pw@127.0.0.1:6379");
            let raw = RawConfig::load(Some(Path::new("c.toml"))).map_err(|e| e.to_string())?;
            assert_eq!(raw.max_attempts, 9);
            assert!(matches!(raw.store, RawStore::Sqlite { .. }));
            let settings = raw.validate().map_err(|e| e.to_string())?;
            let QueueSettings::Redis { namespace, .. } = &settings.queue else {
                panic!(
                    "the environment chose the Redis queue: {:?}",
                    settings.queue
                );
            };
            assert_eq!(namespace, "attio-sync", "the default namespace");
            assert!(
                !format!("{settings:?}").contains(":pw@"),
                "the Redis URL's password never prints"
            );
            jail.create_file("bad.toml", "nonsense_key = 1\n")?;
            assert!(
                RawConfig::load(Some(Path::new("bad.toml"))).is_err(),
                "unknown keys are refused"
            );
            assert!(RawConfig::load(Some(Path::new("missing.toml"))).is_err());
            Ok(())
        });
    }
}
