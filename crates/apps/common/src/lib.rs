//! What the binaries share, so each stays a thin composition root:
//!
//! - [`load`]: defaults, then a TOML file, then `ATTIO_SYNC_*` environment variables (nested
//!   keys with `__`), into a binary's own raw configuration type;
//! - [`RawStore`] / [`StoreSettings`] / [`open_stores`]: where tenants, deliveries, jobs, links,
//!   the ledger and conflicts live (memory, SQLite or PostgreSQL), validated with the master key
//!   that seals credentials, and opened as port trait objects;
//! - [`RawQueue`] / [`QueueSettings`]: where deliveries and jobs live — the store's own tables,
//!   or Redis (the inbox, the queue and the dead letters together, ADR 0011);
//! - [`init_tracing`] and [`shutdown_signal`] (SIGTERM or Ctrl-C);
//! - [`directory::TenantDirectory`]: a tenant's provider clients built from its stored
//!   credentials.

pub mod directory;
pub mod registry;
pub mod telemetry;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use domain::tenant::Secret;
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use ports::cache::Cache;
use ports::queue::{DeadLetterQueue, JobQueue};
use ports::stores::{
    AuditLog, ConflictStore, DeleteStore, Inbox, LinkStore, MappingStore, SyncStateStore,
    TenantEraser, TenantStore, WriteLedger,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the configuration")]
    Load(#[source] Box<figment::Error>),
    #[error("invalid configuration: {0}")]
    Invalid(String),
    #[error("cannot open the store")]
    Store(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Defaults (`T::default()`), then `file` when given, then the environment.
pub fn load<T: Serialize + DeserializeOwned + Default>(
    file: Option<&Path>,
) -> Result<T, ConfigError> {
    let mut f = Figment::from(Serialized::defaults(T::default()));
    if let Some(path) = file {
        if !path.exists() {
            return Err(ConfigError::Invalid(format!(
                "the configuration file {} does not exist",
                path.display()
            )));
        }
        f = f.merge(Toml::file(path));
    }
    // `ATTIO_SYNC_CONFIG` names the file itself (the binaries' `--config`), not a setting.
    f.merge(Env::prefixed("ATTIO_SYNC_").ignore(&["CONFIG"]).split("__"))
        .extract()
        .map_err(|e| ConfigError::Load(Box::new(e)))
}

/// Defaults (`T::default()`), then the TOML `text`, without the environment: what the loader
/// makes of a file's contents (the config fuzz target drives it).
pub fn load_toml<T: Serialize + DeserializeOwned + Default>(text: &str) -> Result<T, ConfigError> {
    Figment::from(Serialized::defaults(T::default()))
        .merge(Toml::string(text))
        .extract()
        .map_err(|e| ConfigError::Load(Box::new(e)))
}

/// The raw store section.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum RawStore {
    /// In-process (tests and trials; nothing survives a restart, nothing is shared).
    #[default]
    Memory,
    Sqlite {
        path: PathBuf,
    },
    Postgres {
        url: String,
        /// The schema to work in (created if missing); the connection's default when absent.
        #[serde(default)]
        schema: Option<String>,
        /// Connections in each process's pool (default 10).
        #[serde(default)]
        max_connections: Option<u32>,
        /// The most deliveries the inbox commits in one transaction (default 64; ADR 0014).
        #[serde(default)]
        intake_batch: Option<u32>,
        /// Inbox batches committing at once, each on a pooled connection (default 2).
        #[serde(default)]
        intake_slots: Option<u32>,
    },
}

/// How a PostgreSQL store is sized, validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PgTuning {
    pub max_connections: u32,
    pub intake_batch: u32,
    pub intake_slots: u32,
}

/// Where the stores live. `Debug` shows no secret.
#[derive(Debug, Clone)]
pub enum StoreSettings {
    Memory,
    Sqlite {
        path: PathBuf,
        master_key: Secret,
    },
    Postgres {
        url: Secret,
        schema: Option<String>,
        master_key: Secret,
        tuning: PgTuning,
    },
}

impl RawStore {
    /// Checks the section with the master key (64 hex characters, required unless `memory`).
    pub fn validate(&self, master_key: Option<&str>) -> Result<StoreSettings, ConfigError> {
        let key = |kind: &str| -> Result<Secret, ConfigError> {
            let k = master_key.ok_or_else(|| {
                ConfigError::Invalid(format!("master_key is required with the {kind} store"))
            })?;
            if !(k.len() == 64 && k.bytes().all(|b| b.is_ascii_hexdigit())) {
                return Err(ConfigError::Invalid(
                    "master_key must be 64 hex characters".into(),
                ));
            }
            Secret::new(k).map_err(|e| ConfigError::Invalid(e.to_string()))
        };
        Ok(match self {
            RawStore::Memory => StoreSettings::Memory,
            RawStore::Sqlite { path } => StoreSettings::Sqlite {
                path: path.clone(),
                master_key: key("sqlite")?,
            },
            RawStore::Postgres {
                url,
                schema,
                max_connections,
                intake_batch,
                intake_slots,
            } => {
                if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
                    return Err(ConfigError::Invalid(
                        "store.url must be a postgres:// URL".into(),
                    ));
                }
                // The adapter's own defaults where a value is not set.
                let group = adapter_postgres::GroupCommitConfig::default();
                let or = |v: &Option<u32>, default: usize| {
                    v.unwrap_or(u32::try_from(default).unwrap_or(u32::MAX))
                };
                let tuning = PgTuning {
                    max_connections: max_connections
                        .unwrap_or(adapter_postgres::PgConfig::DEFAULT_MAX_CONNECTIONS),
                    intake_batch: or(intake_batch, group.max_batch),
                    intake_slots: or(intake_slots, group.concurrency),
                };
                if !(2..=1000).contains(&tuning.max_connections) {
                    return Err(ConfigError::Invalid(
                        "store.max_connections must be between 2 and 1000".into(),
                    ));
                }
                if !(1..=1000).contains(&tuning.intake_batch) {
                    return Err(ConfigError::Invalid(
                        "store.intake_batch must be between 1 and 1000".into(),
                    ));
                }
                if tuning.intake_slots == 0 || tuning.intake_slots >= tuning.max_connections {
                    return Err(ConfigError::Invalid(
                        "store.intake_slots must be at least 1 and fewer than store.max_connections"
                            .into(),
                    ));
                }
                StoreSettings::Postgres {
                    url: Secret::new(url.clone())
                        .map_err(|e| ConfigError::Invalid(e.to_string()))?,
                    schema: schema.clone(),
                    master_key: key("postgres")?,
                    tuning,
                }
            }
        })
    }
}

/// The raw queue section: `kind = "store"` (the default: the store's own tables) or
/// `kind = "redis"` with `url` and an optional `namespace`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum RawQueue {
    #[default]
    Store,
    Redis {
        url: String,
        #[serde(default = "default_namespace")]
        namespace: String,
    },
}

fn default_namespace() -> String {
    "attio-sync".into()
}

/// Where the inbox, the job queue and the dead letters live. `Debug` shows no secret.
#[derive(Debug, Clone)]
pub enum QueueSettings {
    /// In the configured store.
    Store,
    /// In Redis, under `namespace`.
    Redis { url: Secret, namespace: String },
}

impl RawQueue {
    pub fn validate(&self) -> Result<QueueSettings, ConfigError> {
        Ok(match self {
            RawQueue::Store => QueueSettings::Store,
            RawQueue::Redis { url, namespace } => {
                if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
                    return Err(ConfigError::Invalid(
                        "queue.url must be a redis:// or rediss:// URL".into(),
                    ));
                }
                if namespace.is_empty()
                    || namespace.len() > 64
                    || !namespace.bytes().all(|b| {
                        b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_'
                    })
                {
                    return Err(ConfigError::Invalid(format!(
                        "queue.namespace {namespace:?} must be 1-64 lower-case letters, digits, '-' or '_'"
                    )));
                }
                QueueSettings::Redis {
                    url: Secret::new(url.clone())
                        .map_err(|e| ConfigError::Invalid(e.to_string()))?,
                    namespace: namespace.clone(),
                }
            }
        })
    }
}

/// Every store a binary may need, as ports.
#[derive(Clone)]
pub struct Stores {
    pub tenants: Arc<dyn TenantStore>,
    pub inbox: Arc<dyn Inbox>,
    pub queue: Arc<dyn JobQueue>,
    pub dead: Arc<dyn DeadLetterQueue>,
    pub links: Arc<dyn LinkStore>,
    pub ledger: Arc<dyn WriteLedger>,
    pub conflicts: Arc<dyn ConflictStore>,
    /// The per-field audit trail.
    pub audit: Arc<dyn AuditLog>,
    /// Deletes propagated or held for approval.
    pub deletes: Arc<dyn DeleteStore>,
    /// Each tenant's mappings, versioned.
    pub mappings: Arc<dyn MappingStore>,
    pub sync_state: Arc<dyn SyncStateStore>,
    /// Provider requests per tenant and day.
    pub usage: Arc<dyn ports::stores::UsageLog>,
    /// Cached Attio schema and records: in-process, or Redis (shared by every process) with the
    /// Redis queue.
    pub cache: Arc<dyn Cache>,
    /// Every store that keeps tenant data, for a tenant's deletion.
    pub erasers: Vec<Arc<dyn TenantEraser>>,
    /// PostgreSQL's `min_wal_size` in bytes, when the store is PostgreSQL and it could be read.
    pub min_wal_size: Option<u64>,
    /// Whether Redis keeps its data on disk (AOF or RDB snapshots), when the queue is Redis and
    /// its `CONFIG GET` answered.
    pub redis_persists: Option<bool>,
}

impl Stores {
    /// Erases `tenant`'s data from every store; the counts by kind, summed. The first store that
    /// fails ends it with its error (erasing again finishes the job).
    pub async fn erase_tenant(
        &self,
        tenant: &domain::ids::TenantId,
    ) -> Result<ports::stores::Erased, ports::PortError> {
        let mut all = ports::stores::Erased::new();
        for e in &self.erasers {
            for (what, n) in e.erase_tenant(tenant).await? {
                *all.entry(what).or_default() += n;
            }
        }
        Ok(all)
    }
}

impl std::fmt::Debug for Stores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stores").finish_non_exhaustive()
    }
}

impl Stores {
    /// Every port from one store that implements them all (PostgreSQL, SQLite).
    pub fn from_one<S>(s: Arc<S>) -> Stores
    where
        S: TenantStore
            + SyncStateStore
            + Inbox
            + JobQueue
            + DeadLetterQueue
            + LinkStore
            + WriteLedger
            + ConflictStore
            + AuditLog
            + DeleteStore
            + MappingStore
            + ports::stores::UsageLog
            + TenantEraser
            + 'static,
    {
        Stores {
            erasers: vec![s.clone()],
            min_wal_size: None,
            redis_persists: None,
            tenants: s.clone(),
            inbox: s.clone(),
            queue: s.clone(),
            dead: s.clone(),
            links: s.clone(),
            ledger: s.clone(),
            conflicts: s.clone(),
            audit: s.clone(),
            deletes: s.clone(),
            mappings: s.clone(),
            usage: s.clone(),
            sync_state: s,
            cache: Arc::new(adapter_memory::MemoryCache::default()),
        }
    }
}

/// Opens the configured stores, with the inbox, queue and dead letters where `queue` says.
pub async fn open_stores(
    settings: &StoreSettings,
    queue: &QueueSettings,
) -> Result<Stores, ConfigError> {
    let mut stores = open_store(settings).await?;
    if let QueueSettings::Redis { url, namespace } = queue {
        let redis = adapter_redis::RedisStore::connect(&adapter_redis::RedisConfig {
            url: url.clone(),
            namespace: namespace.clone(),
        })
        .await
        .map_err(|e| ConfigError::Store(Box::new(e)))?;
        let persists = redis.persists().await.ok();
        stores.redis_persists = persists;
        if persists == Some(false) {
            tracing::warn!(
                "Redis keeps the inbox and the queue but has neither AOF nor RDB snapshots on: \
                 accepted deliveries are lost if it restarts"
            );
        }
        let redis = Arc::new(redis);
        stores.erasers.push(redis.clone());
        stores.inbox = redis.clone();
        stores.queue = redis.clone();
        stores.dead = redis.clone();
        stores.cache = redis;
    }
    Ok(stores)
}

async fn open_store(settings: &StoreSettings) -> Result<Stores, ConfigError> {
    let boxed = |e: Box<dyn std::error::Error + Send + Sync>| ConfigError::Store(e);
    match settings {
        StoreSettings::Memory => {
            use adapter_memory::*;
            let queue = Arc::new(MemoryQueue::default());
            let inbox = Arc::new(MemoryInbox::new(
                (*queue).clone(),
                MemoryIdempotencyStore::default(),
            ));
            let links = Arc::new(MemoryLinkStore::default());
            let ledger = Arc::new(MemoryWriteLedger::default());
            let conflicts = Arc::new(MemoryConflictStore::default());
            let audit = Arc::new(MemoryAuditLog::default());
            let deletes = Arc::new(MemoryDeleteStore::default());
            let mappings = Arc::new(MemoryMappingStore::default());
            let sync_state = Arc::new(MemorySyncStateStore::default());
            let usage = Arc::new(MemoryUsageLog::default());
            Ok(Stores {
                min_wal_size: None,
                redis_persists: None,
                tenants: Arc::new(MemoryTenantStore::default()),
                erasers: vec![
                    inbox.clone(),
                    queue.clone(),
                    links.clone(),
                    ledger.clone(),
                    conflicts.clone(),
                    audit.clone(),
                    deletes.clone(),
                    mappings.clone(),
                    sync_state.clone(),
                    usage.clone(),
                ],
                inbox,
                queue: queue.clone(),
                dead: queue,
                links,
                ledger,
                conflicts,
                audit,
                deletes,
                mappings,
                sync_state,
                usage,
                cache: Arc::new(MemoryCache::default()),
            })
        }
        StoreSettings::Sqlite { path, master_key } => {
            let key = adapter_sqlite::MasterKey::from_hex(master_key.expose())
                .map_err(|e| boxed(Box::new(e)))?;
            let s = adapter_sqlite::SqliteStore::open(path, &key)
                .await
                .map_err(|e| boxed(Box::new(e)))?;
            Ok(Stores::from_one(Arc::new(s)))
        }
        StoreSettings::Postgres {
            url,
            schema,
            master_key,
            tuning,
        } => {
            let key = adapter_postgres::MasterKey::from_hex(master_key.expose())
                .map_err(|e| boxed(Box::new(e)))?;
            let config = pg_config(url, schema, key, tuning);
            let s = adapter_postgres::PgStore::connect(&config)
                .await
                .map_err(|e| boxed(Box::new(e)))?;
            let min_wal_size = s.min_wal_size().await.ok();
            if let Some(warning) = min_wal_size.and_then(wal_reserve_warning) {
                tracing::warn!("{warning}");
            }
            let mut stores = Stores::from_one(Arc::new(s));
            stores.min_wal_size = min_wal_size;
            Ok(stores)
        }
    }
}

/// A `purge_interval_s` setting: at most a day, 0 turning the purge off (`None`). The error names
/// the setting and what 0 keeps (ADR 0020).
pub fn purge_interval(
    secs: u64,
    zero_keeps: &str,
) -> Result<Option<std::time::Duration>, ConfigError> {
    if secs > 24 * 3600 {
        return Err(ConfigError::Invalid(format!(
            "purge_interval_s must be at most a day (86400), or 0 to keep {zero_keeps}, got {secs}"
        )));
    }
    Ok((secs > 0).then(|| std::time::Duration::from_secs(secs)))
}

/// The `min_wal_size` below which a burst after a quiet period pays for new WAL segments in its
/// commits (ADR 0018): 1 GiB holds a five-minute checkpoint interval at 1,000 deliveries/s.
pub const MIN_WAL_RESERVE: u64 = 1 << 30;

/// What to tell the operator about the server's `min_wal_size` (in bytes), if anything.
pub fn wal_reserve_warning(min_wal_size: u64) -> Option<String> {
    (min_wal_size < MIN_WAL_RESERVE).then(|| {
        format!(
            "PostgreSQL keeps {} MB of recycled WAL (min_wal_size): after a quiet period, a burst \
             of deliveries makes commits create new WAL segments, each a pause of tens of \
             milliseconds for every answer; set min_wal_size to 1GB or more (deploy/README.md)",
            min_wal_size >> 20
        )
    })
}

/// The PostgreSQL adapter's configuration from the validated settings.
fn pg_config(
    url: &Secret,
    schema: &Option<String>,
    key: adapter_postgres::MasterKey,
    tuning: &PgTuning,
) -> adapter_postgres::PgConfig {
    let mut config = adapter_postgres::PgConfig::new(url.clone(), key);
    config.schema = schema.clone();
    config.max_connections = tuning.max_connections;
    config.group_commit = adapter_postgres::GroupCommitConfig {
        max_batch: tuning.intake_batch as usize,
        concurrency: tuning.intake_slots as usize,
    };
    config
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutdown requested");
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::result_large_err)]
    use super::*;

    #[derive(Debug, Default, Serialize, Deserialize)]
    #[serde(default, deny_unknown_fields)]
    struct Raw {
        attempts: u32,
        store: RawStore,
        master_key: Option<String>,
    }

    #[test]
    fn a_wal_reserve_under_one_gib_is_reported_with_its_size() {
        let mb = 1u64 << 20;
        let cases = [
            (80 * mb, Some("keeps 80 MB")),
            (MIN_WAL_RESERVE - 1, Some("keeps 1023 MB")),
            (MIN_WAL_RESERVE, None),
            (4 * MIN_WAL_RESERVE, None),
        ];
        for (bytes, said) in cases {
            let got = wal_reserve_warning(bytes);
            match said {
                Some(part) => {
                    let w = got.unwrap_or_else(|| panic!("{bytes} bytes: no warning"));
                    assert!(w.contains(part) && w.contains("min_wal_size"), "{w}");
                }
                None => assert_eq!(got, None, "{bytes} bytes"),
            }
        }
    }

    #[test]
    fn postgres_tuning_defaults_overrides_and_bounds() {
        let pg = |c: Option<u32>, b: Option<u32>, s: Option<u32>| RawStore::Postgres {
            url: "postgres://h/db".into(),
            schema: None,
            max_connections: c,
            intake_batch: b,
            intake_slots: s,
        };
        let key = "ab".repeat(32);
        let tuning = |r: RawStore| match r.validate(Some(&key)) {
            Ok(StoreSettings::Postgres { tuning, .. }) => Ok(tuning),
            Ok(other) => panic!("not postgres: {other:?}"),
            Err(e) => Err(e.to_string()),
        };
        let t = |max_connections, intake_batch, intake_slots| {
            Ok(PgTuning {
                max_connections,
                intake_batch,
                intake_slots,
            })
        };
        assert_eq!(tuning(pg(None, None, None)), t(10, 64, 2));
        assert_eq!(tuning(pg(Some(20), Some(1), Some(19))), t(20, 1, 19));
        let refused = [
            (pg(Some(1), None, Some(1)), "store.max_connections"),
            (pg(Some(1001), None, None), "store.max_connections"),
            (pg(None, Some(0), None), "store.intake_batch"),
            (pg(None, Some(1001), None), "store.intake_batch"),
            (pg(None, None, Some(0)), "store.intake_slots"),
            (pg(Some(4), None, Some(4)), "store.intake_slots"),
        ];
        for (raw, name) in refused {
            let e = tuning(raw.clone()).expect_err(name);
            assert!(e.contains(name), "{raw:?}: {e}");
        }
        // ... and they reach the adapter.
        let c = pg_config(
            &Secret::new("postgres://h/db").unwrap(),
            &None,
            adapter_postgres::MasterKey::from_hex(&key).unwrap(),
            &PgTuning {
                max_connections: 20,
                intake_batch: 8,
                intake_slots: 3,
            },
        );
        assert_eq!(
            (
                c.max_connections,
                c.group_commit.max_batch,
                c.group_commit.concurrency
            ),
            (20, 8, 3)
        );
        // From the environment, as an operator would set them.
        figment::Jail::expect_with(|jail| {
            jail.set_env("ATTIO_SYNC_STORE__KIND", "postgres");
            jail.set_env("ATTIO_SYNC_STORE__URL", "postgres://h/db");
            jail.set_env("ATTIO_SYNC_STORE__MAX_CONNECTIONS", "24");
            jail.set_env("ATTIO_SYNC_STORE__INTAKE_SLOTS", "3");
            let raw: Raw = load(None).map_err(|e| e.to_string())?;
            assert_eq!(tuning(raw.store), t(24, 64, 3));
            Ok(())
        });
    }

    #[test]
    fn layers_apply_in_order_and_stores_validate() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "c.toml",
                "attempts = 7\n[store]\nkind = \"sqlite\"\npath = \"a.db\"\n",
            )?;
            jail.set_env("ATTIO_SYNC_ATTEMPTS", "9");
            jail.set_env("ATTIO_SYNC_CONFIG", "c.toml");
            let raw: Raw = load(Some(Path::new("c.toml"))).map_err(|e| e.to_string())?;
            assert_eq!(raw.attempts, 9);
            assert!(
                raw.store
                    .validate(None)
                    .unwrap_err()
                    .to_string()
                    .contains("master_key")
            );
            assert!(matches!(
                raw.store.validate(Some(&"ab".repeat(32))),
                Ok(StoreSettings::Sqlite { .. })
            ));
            assert!(load::<Raw>(Some(Path::new("missing.toml"))).is_err());
            jail.create_file("bad.toml", "nope = 1\n")?;
            assert!(load::<Raw>(Some(Path::new("bad.toml"))).is_err());
            Ok(())
        });
        let pg = RawStore::Postgres {
            url: "mysql://x".into(),
            schema: None,
            max_connections: None,
            intake_batch: None,
            intake_slots: None,
        };
        assert!(
            pg.validate(Some(&"ab".repeat(32)))
                .unwrap_err()
                .to_string()
                .contains("store.url")
        );
        let pg = RawStore::Postgres {
            url: "postgres://u:hunter2@h/db".into(),
            schema: None,
            max_connections: None,
            intake_batch: None,
            intake_slots: None,
        };
        let shown = format!("{:?}", pg.validate(Some(&"ab".repeat(32))).unwrap());
        assert!(!shown.contains("hunter2"), "{shown}");
    }
}
