//! The worker's configuration: the shared store section, where the providers are, how the job
//! loop runs, and the field mappings — layered (defaults → TOML file → `ATTIO_SYNC_*`) and
//! validated before anything starts.

use std::path::Path;
use std::time::Duration;

use app_common::{ConfigError, QueueSettings, RawQueue, RawStore, StoreSettings};
use domain::ids::{AttributeSlug, SystemId, TenantId};
use domain::job::RetryPolicy;
use domain::mapping::{ExternalProperty, Transform};
use domain::tenant::Secret;
use ports::queue::ReserveFilter;
use serde::{Deserialize, Serialize};
use services::deletes::DeleteRules;
use services::outbound::SyncTarget;
use services::pipeline::{DeletePolicy, StageTarget};
use services::worker::WorkerSettings;

/// One mapping as written in the file (the same record a tenant's stored mappings hold).
pub type RawTarget = domain::mapping_doc::TargetDoc;

/// A list whose entries' status drives a CRM property of their parent records.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStage {
    /// The list's `api_slug`.
    pub list: String,
    /// The entry's status attribute.
    pub attribute: String,
    pub system: String,
    /// The CRM property (e.g. `dealstage`); the parent object must be mapped to the system.
    pub property: String,
    #[serde(default)]
    pub transform: Transform,
}

/// `[delete_breaker]`: the most deletes propagated within a window before further ones are
/// held for approval.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawDeleteBreaker {
    pub max: u64,
    /// A share (0 to 1) of the tenant's linked pairs; 0 counts only `max`.
    pub max_share: f64,
    pub window_s: u64,
}

impl Default for RawDeleteBreaker {
    fn default() -> Self {
        let d = domain::deletes::DeleteBreaker::default();
        Self {
            max: d.max,
            max_share: d.max_share.unwrap_or(0.0),
            window_s: d.window.as_secs(),
        }
    }
}

/// A CRM plugin's section, `[crm.<system>]`: how this worker reads its changes.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawCrm {
    /// Seconds between polls of this CRM for changes, for a plugin that is polled (it sends no
    /// webhooks here); 0 turns polling off. Run it on one worker: every poller reads the same
    /// changes.
    pub poll_interval_s: u64,
    /// How far back each poll looks; longer than the interval, so passes overlap.
    pub poll_window_s: u64,
}

impl Default for RawCrm {
    fn default() -> Self {
        Self {
            poll_interval_s: 0,
            poll_window_s: 120,
        }
    }
}

/// A polled CRM: its system, how often, and how far back each pass looks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PollSettings {
    pub system: SystemId,
    pub interval: Duration,
    pub window: Duration,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawConfig {
    pub store: RawStore,
    /// Where deliveries and jobs live: the store (default) or Redis.
    pub queue: RawQueue,
    pub master_key: Option<String>,
    /// Shared rate budgets across replicas; per-process budgets when absent.
    pub redis_url: Option<String>,
    /// Serve Prometheus metrics (`GET /metrics`) here; off when absent.
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// `https://api.attio.com`, or a simulator.
    pub attio_base_url: String,
    pub consumer: Option<String>,
    pub concurrency: usize,
    pub lease_s: u64,
    pub max_attempts: u32,
    pub retry_base_ms: u64,
    pub retry_cap_ms: u64,
    pub grace_s: u64,
    /// Only these job partitions (object ids, `list-…`, `notes`, `tasks`, a CRM's system id for
    /// its webhook changes); all when empty.
    pub partitions: Vec<String>,
    /// Only these tenants; all when empty.
    pub tenants: Vec<String>,
    /// What an Attio delete does to the linked CRM records: `archive`, `keep` or `hold` (for a
    /// person's approval).
    pub on_delete: String,
    /// What a CRM delete does to the linked Attio record: `keep` (default), `archive` (delete
    /// it) or `hold`.
    pub on_crm_delete: String,
    /// More than `max` deletes propagated within `window_s` and further deletes are held.
    pub delete_breaker: RawDeleteBreaker,
    /// Per CRM plugin, keyed by its system id (`[crm.<system>]`); a key no plugin serves is
    /// refused at start-up.
    pub crm: std::collections::BTreeMap<String, RawCrm>,
    /// Seconds between purges of the write ledger's expired entries (ADR 0020); 0 never purges.
    pub purge_interval_s: u64,
    /// Days the per-field audit trail keeps an entry (1 to 3650); older ones are purged with
    /// the ledger.
    pub audit_retention_days: u64,
    /// Seconds between scheduled reconciliations of every mapped object of every tenant (the
    /// first one interval after start); 0 schedules none (on-demand passes still run).
    pub reconcile_interval_s: u64,
    pub targets: Vec<RawTarget>,
    /// Lists whose entries' status is synced to the CRMs (deal stage sync).
    pub stages: Vec<RawStage>,
}

impl Default for RawConfig {
    fn default() -> Self {
        let retry = RetryPolicy::default();
        Self {
            store: RawStore::Memory,
            queue: RawQueue::Store,
            master_key: None,
            redis_url: None,
            metrics_listen: None,
            attio_base_url: "https://api.attio.com".into(),
            consumer: None,
            concurrency: 4,
            lease_s: 60,
            max_attempts: retry.max_attempts,
            retry_base_ms: retry.base.as_millis() as u64,
            retry_cap_ms: retry.cap.as_millis() as u64,
            grace_s: 20,
            partitions: Vec::new(),
            tenants: Vec::new(),
            on_delete: "archive".into(),
            on_crm_delete: "keep".into(),
            delete_breaker: RawDeleteBreaker::default(),
            crm: std::collections::BTreeMap::new(),
            purge_interval_s: 300,
            audit_retention_days: 90,
            reconcile_interval_s: 21_600,
            targets: Vec::new(),
            stages: Vec::new(),
        }
    }
}

/// The validated configuration. `Debug` shows no secret.
#[derive(Debug, Clone)]
pub struct Settings {
    pub store: StoreSettings,
    pub queue: QueueSettings,
    pub redis_url: Option<Secret>,
    pub metrics_listen: Option<std::net::SocketAddr>,
    pub attio_base_url: String,
    pub worker: WorkerSettings,
    pub delete_policy: DeletePolicy,
    /// Delete policies per mapping and the delete breaker.
    pub deletes: DeleteRules,
    /// The CRMs this worker polls (empty: none).
    pub polls: Vec<PollSettings>,
    /// `None`: the write ledger is never purged.
    pub purge_interval: Option<Duration>,
    /// How long the audit trail keeps an entry.
    pub audit_retention: Duration,
    /// How often this worker queues reconciliations; `None`: never.
    pub reconcile_interval: Option<Duration>,
    pub targets: Vec<SyncTarget>,
    pub stages: Vec<StageTarget>,
}

impl Settings {
    /// What is legal but almost certainly not meant, each saying what to set and where; the
    /// binary logs them at start-up.
    pub fn warnings(&self) -> Vec<String> {
        let mut w = Vec::new();
        if matches!(self.store, StoreSettings::Memory) {
            w.push("the store is `memory`: nothing this worker does outlives it, and it shares no queue with webhook-api; set [store] kind = sqlite or postgres in the configuration file (ATTIO_SYNC_STORE__KIND)".into());
        }
        if self.targets.is_empty() {
            w.push("no mappings: every job is acknowledged without syncing anything; add [[targets]] to the configuration file".into());
        }
        let mapped: std::collections::BTreeSet<_> = self
            .targets
            .iter()
            .map(|t| t.mapping.system.clone())
            .collect();
        for poll in &self.polls {
            if !mapped.contains(&poll.system) {
                w.push(format!(
                    "[crm.{}] polls a system no [[targets]] maps: every pass reads its changes and syncs none",
                    poll.system
                ));
            }
        }
        w
    }
}

impl RawConfig {
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        app_common::load(file)
    }

    /// Checks every value; the first problem is the error.
    pub fn validate(self) -> Result<Settings, ConfigError> {
        let bad = |m: String| Err(ConfigError::Invalid(m));
        let store = self.store.validate(self.master_key.as_deref())?;
        let queue = self.queue.validate()?;
        if !(self.attio_base_url.starts_with("https://")
            || self.attio_base_url.starts_with("http://"))
        {
            return bad(format!(
                "attio_base_url {:?} must be an http(s) URL",
                self.attio_base_url
            ));
        }
        if !(1..=256).contains(&self.concurrency) {
            return bad(format!(
                "concurrency must be between 1 and 256, got {}",
                self.concurrency
            ));
        }
        if !(5..=3600).contains(&self.lease_s) {
            return bad(format!(
                "lease_s must be between 5 and 3600, got {}",
                self.lease_s
            ));
        }
        if !(1..=100).contains(&self.max_attempts) {
            return bad(format!(
                "max_attempts must be between 1 and 100, got {}",
                self.max_attempts
            ));
        }
        if self.retry_base_ms == 0 || self.retry_cap_ms < self.retry_base_ms {
            return bad("retry_base_ms must be positive and at most retry_cap_ms".into());
        }
        let policy = |what: &str, given: &str| {
            DeletePolicy::parse(given).ok_or_else(|| {
                ConfigError::Invalid(format!(
                    "{what} must be \"archive\", \"keep\" or \"hold\", got {given:?}"
                ))
            })
        };
        let delete_policy = policy("on_delete", &self.on_delete)?;
        let on_crm_delete = policy("on_crm_delete", &self.on_crm_delete)?;
        if !(0.0..=1.0).contains(&self.delete_breaker.max_share) {
            return bad(format!(
                "delete_breaker.max_share must be 0 (off) to 1, got {}",
                self.delete_breaker.max_share
            ));
        }
        if self.delete_breaker.max == 0 || !(1..=86_400).contains(&self.delete_breaker.window_s) {
            return bad(format!(
                "delete_breaker needs max of at least 1 and window_s of 1 to 86400, got max {} and window_s {}",
                self.delete_breaker.max, self.delete_breaker.window_s
            ));
        }
        let mut deletes = DeleteRules {
            on_attio_delete: delete_policy,
            on_crm_delete,
            per_mapping: Default::default(),
            breaker: domain::deletes::DeleteBreaker {
                max: self.delete_breaker.max,
                max_share: (self.delete_breaker.max_share > 0.0)
                    .then_some(self.delete_breaker.max_share),
                window: Duration::from_secs(self.delete_breaker.window_s),
            },
        };
        let registry = app_common::registry::Registry::builtin();
        let polls = polls(&registry, &self.crm)?;
        let purge_interval =
            app_common::purge_interval(self.purge_interval_s, "the ledger's expired entries")?;
        if !(1..=3650).contains(&self.audit_retention_days) {
            return bad(format!(
                "audit_retention_days must be 1 to 3650, not {}",
                self.audit_retention_days
            ));
        }
        let audit_retention = Duration::from_secs(self.audit_retention_days * 86_400);
        let reconcile_interval = match self.reconcile_interval_s {
            0 => None,
            s @ 60..=604_800 => Some(Duration::from_secs(s)),
            s => {
                return bad(format!(
                    "reconcile_interval_s must be 0 (none) or 60 to 604800, not {s}"
                ));
            }
        };
        let redis_url = match self.redis_url {
            Some(u) if u.starts_with("redis://") || u.starts_with("rediss://") => {
                Some(Secret::new(u).map_err(|e| ConfigError::Invalid(e.to_string()))?)
            }
            Some(_) => return bad("redis_url must be a redis:// URL".into()),
            None => None,
        };
        let mut filter = ReserveFilter::all();
        for t in &self.tenants {
            filter.tenants.insert(
                TenantId::parse(t).map_err(|e| ConfigError::Invalid(format!("tenants: {e}")))?,
            );
        }
        filter.partitions = self.partitions.iter().cloned().collect();
        let document = domain::mapping_doc::MappingDocument {
            targets: self.targets,
        };
        let checked = document
            .check(|name| registry.system_of(name))
            .map_err(|problems| {
                let all: Vec<String> = problems.iter().map(ToString::to_string).collect();
                ConfigError::Invalid(all.join("; "))
            })?;
        let (targets, policies) = services::mappings::compile(checked);
        for (key, (attio, crm)) in policies {
            deletes.per_mapping.insert(
                key,
                (attio.unwrap_or(delete_policy), crm.unwrap_or(on_crm_delete)),
            );
        }
        let stages = self
            .stages
            .into_iter()
            .enumerate()
            .map(|(i, t)| {
                let at = |e: String| ConfigError::Invalid(format!("stages[{i}]: {e}"));
                let stage = StageTarget {
                    list: t.list,
                    attribute: AttributeSlug::parse(&t.attribute).map_err(|e| at(e.to_string()))?,
                    system: registry
                        .get(&t.system)
                        .map_err(|e| at(e.to_string()))?
                        .system(),
                    property: ExternalProperty::parse(&t.property)
                        .map_err(|e| at(e.to_string()))?,
                    transform: t.transform,
                };
                if stage.list.is_empty() {
                    return Err(at("list must name the list's api_slug".into()));
                }
                Ok(stage)
            })
            .collect::<Result<Vec<_>, ConfigError>>()?;
        let consumer = self
            .consumer
            .unwrap_or_else(|| format!("sync-worker-{}", std::process::id()));
        Ok(Settings {
            store,
            queue,
            redis_url,
            metrics_listen: self.metrics_listen,
            attio_base_url: self.attio_base_url.trim_end_matches('/').to_owned(),
            worker: WorkerSettings {
                consumer,
                concurrency: self.concurrency,
                lease: Duration::from_secs(self.lease_s),
                retry: RetryPolicy {
                    max_attempts: self.max_attempts,
                    base: Duration::from_millis(self.retry_base_ms),
                    cap: Duration::from_millis(self.retry_cap_ms),
                },
                filter,
                grace: Duration::from_secs(self.grace_s),
                idle_poll: Duration::from_millis(500),
            },
            delete_policy,
            deletes,
            polls,
            purge_interval,
            audit_retention,
            reconcile_interval,
            targets,
            stages,
        })
    }
}

/// The polled CRMs of the `[crm.<system>]` sections: each key a plugin of `registry`, polling
/// only for plugins that are polled, the window longer than the interval.
fn polls(
    registry: &app_common::registry::Registry,
    sections: &std::collections::BTreeMap<String, RawCrm>,
) -> Result<Vec<PollSettings>, ConfigError> {
    let mut polls = Vec::new();
    for (system, c) in sections {
        let at = |e: String| ConfigError::Invalid(format!("crm.{system}: {e}"));
        let provider = registry.get(system).map_err(|e| at(e.to_string()))?;
        if c.poll_interval_s == 0 {
            continue;
        }
        registry.polled(system).map_err(|e| at(e.to_string()))?;
        if c.poll_window_s <= c.poll_interval_s {
            return Err(at(format!(
                "poll_window_s ({}) must be longer than poll_interval_s ({}) so passes overlap",
                c.poll_window_s, c.poll_interval_s
            )));
        }
        polls.push(PollSettings {
            system: provider.system(),
            interval: Duration::from_secs(c.poll_interval_s),
            window: Duration::from_secs(c.poll_window_s),
        });
    }
    Ok(polls)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::result_large_err)]
    use super::*;

    const MAPPINGS: &str = r#"
[[targets]]
attio_object = "people"
system = "hubspot"
external_object = "contacts"
id_property = "attio_record_id"
fields = [
  { attio = { attribute = "email_addresses" }, external = "email", rule = "latest_wins", transform = { type = "lowercase" } },
  { attio = { attribute = "name", part = "first_name" }, external = "firstname", rule = "prefer_attio" },
]
"#;

    #[test]
    fn a_mappings_file_becomes_validated_targets() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("w.toml", MAPPINGS)?;
            jail.set_env("ATTIO_SYNC_CONCURRENCY", "8");
            let s = RawConfig::load(Some(Path::new("w.toml")))
                .map_err(|e| e.to_string())?
                .validate()
                .map_err(|e| e.to_string())?;
            assert_eq!(s.worker.concurrency, 8);
            assert_eq!(s.targets.len(), 1);
            assert_eq!(s.targets[0].mapping.fields().len(), 2);
            assert_eq!(s.worker.retry.max_attempts, 3);
            jail.create_file(
                "dup.toml",
                &MAPPINGS.replace("external = \"firstname\"", "external = \"email\""),
            )?;
            let e = RawConfig::load(Some(Path::new("dup.toml")))
                .map_err(|e| e.to_string())?
                .validate()
                .unwrap_err();
            assert!(e.to_string().contains("targets[0]"), "{e}");
            Ok(())
        });
    }

    #[test]
    fn a_polled_plugin_is_configured_in_its_own_section() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "w.toml",
                "[crm.salesforce]\npoll_interval_s = 30\n[crm.hubspot]\n",
            )?;
            jail.set_env("ATTIO_SYNC_CRM__SALESFORCE__POLL_WINDOW_S", "90");
            let s = RawConfig::load(Some(Path::new("w.toml")))
                .map_err(|e| e.to_string())?
                .validate()
                .map_err(|e| e.to_string())?;
            assert_eq!(
                s.polls,
                vec![PollSettings {
                    system: SystemId::parse("salesforce").unwrap(),
                    interval: Duration::from_secs(30),
                    window: Duration::from_secs(90),
                }],
                "a section without an interval polls nothing"
            );
            Ok(())
        });
    }

    #[test]
    fn a_worker_that_would_do_nothing_says_so() {
        let s = RawConfig::default().validate().unwrap();
        let w = s.warnings().join("\n");
        assert!(
            w.contains("the store is `memory`") && w.contains("no mappings"),
            "{w}"
        );
        figment::Jail::expect_with(|jail| {
            jail.create_file("w.toml", MAPPINGS)?;
            let s = RawConfig::load(Some(Path::new("w.toml")))
                .map_err(|e| e.to_string())?
                .validate()
                .map_err(|e| e.to_string())?;
            assert!(!s.warnings().iter().any(|w| w.contains("no mappings")));
            Ok(())
        });
    }

    #[test]
    fn bad_values_name_the_setting() {
        type Tweak = fn(&mut RawConfig);
        let cases: [(Tweak, &str); 17] = [
            (
                |c| {
                    c.crm.insert(
                        "salesforce".into(),
                        RawCrm {
                            poll_interval_s: 60,
                            poll_window_s: 30,
                        },
                    );
                },
                "poll_window_s",
            ),
            (
                |c| {
                    c.crm.insert("pipedrive".into(), RawCrm::default());
                },
                "crm.pipedrive: unknown CRM system",
            ),
            (
                |c| {
                    c.targets = vec![RawTarget {
                        attio_object: "people".into(),
                        system: "pipedrive".into(),
                        external_object: "persons".into(),
                        id_property: "attio_id".into(),
                        fields: Vec::new(),
                        on_delete: None,
                        on_crm_delete: None,
                        match_on: None,
                        create_with: Default::default(),
                    }]
                },
                "targets[0]: unknown CRM system \"pipedrive\"",
            ),
            (|c| c.concurrency = 0, "concurrency"),
            (|c| c.purge_interval_s = 90_000, "purge_interval_s"),
            (|c| c.audit_retention_days = 0, "audit_retention_days"),
            (|c| c.on_crm_delete = "erase".into(), "on_crm_delete"),
            (|c| c.delete_breaker.max = 0, "delete_breaker"),
            (
                |c| c.delete_breaker.max_share = 1.5,
                "delete_breaker.max_share",
            ),
            (|c| c.reconcile_interval_s = 5, "reconcile_interval_s"),
            (|c| c.lease_s = 1, "lease_s"),
            (|c| c.on_delete = "shred".into(), "on_delete"),
            (|c| c.redis_url = Some("http://x".into()), "redis_url"),
            (|c| c.retry_cap_ms = 1, "retry_base_ms"),
            (|c| c.tenants = vec!["Not Valid".into()], "tenants"),
            (
                |c| {
                    c.stages = vec![RawStage {
                        list: "sales".into(),
                        attribute: "Not A Slug".into(),
                        system: "hubspot".into(),
                        property: "dealstage".into(),
                        transform: Transform::Identity,
                    }]
                },
                "stages[0]",
            ),
            (
                |c| {
                    c.queue = RawQueue::Redis {
                        url: "http://x".into(),
                        namespace: "a".into(),
                    }
                },
                "queue.url",
            ),
        ];
        for (tweak, name) in cases {
            let mut c = RawConfig::default();
            tweak(&mut c);
            let e = c.validate().unwrap_err().to_string();
            assert!(e.contains(name), "{name}: {e}");
        }
    }
}
