//! PostgreSQL adapters: the job queue with dead letters, the inbox, and every store, on one pool.
//!
//! - Migrations are embedded ([`PgStore::migrate`]) and run at start-up.
//! - Every tenant-owned row carries `tenant_id` under a row-level-security policy. The pool's
//!   connections work as a role without `BYPASSRLS` (`attio_sync_app` by default) and every
//!   transaction declares its tenant (`app.tenant_id`); the few cross-tenant operations (queue
//!   dispatch, tenant administration, purges) declare `app.scope = system` instead.
//! - Tenant credentials are encrypted with AES-256-GCM under the configured master key.
//! - The queue reserves with `FOR UPDATE SKIP LOCKED`, serialises enqueues per key with an advisory
//!   lock (so a key's jobs commit in sequence order), and wakes idle workers with `LISTEN/NOTIFY`.
//! - The inbox commits concurrent deliveries together, one transaction and one WAL flush per
//!   batch, each answered only after its batch committed (ADR 0014).

mod error;
mod intake;
mod queue;
mod stores;
mod tenants;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use domain::ids::TenantId;
use domain::tenant::Secret;
use ports::error::PortResult;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, Executor, PgPool, Postgres, Transaction};
use tokio::sync::Notify;

pub use error::PgError;
pub use intake::{GroupCommitConfig, IntakeStats, SLOW};
pub use sealing::{CryptoError, MasterKey};

use error::db;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// How to reach the database.
#[derive(Debug, Clone)]
pub struct PgConfig {
    /// `postgres://user[:password]@host:port/db`; may hold a password, hence a secret.
    pub url: Secret,
    /// The schema to work in (created if missing); `None` for the connection's default.
    pub schema: Option<String>,
    /// The role every pooled connection switches to; it must not have `BYPASSRLS`.
    pub app_role: String,
    pub max_connections: u32,
    pub acquire_timeout: Duration,
    pub master_key: MasterKey,
    /// How the inbox groups concurrent deliveries into one transaction (ADR 0014).
    pub group_commit: GroupCommitConfig,
}

impl PgConfig {
    /// The pool's size unless configured.
    pub const DEFAULT_MAX_CONNECTIONS: u32 = 10;

    pub fn new(url: Secret, master_key: MasterKey) -> Self {
        Self {
            url,
            schema: None,
            app_role: "attio_sync_app".into(),
            max_connections: Self::DEFAULT_MAX_CONNECTIONS,
            acquire_timeout: Duration::from_secs(5),
            master_key,
            group_commit: GroupCommitConfig::default(),
        }
    }
}

fn check_identifier(kind: &str, s: &str) -> Result<(), PgError> {
    let ok = !s.is_empty()
        && s.len() <= 48
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && !s.as_bytes()[0].is_ascii_digit();
    if ok {
        Ok(())
    } else {
        Err(PgError::Config(format!(
            "{kind} {s:?} must be 1-48 lower-case letters, digits or '_', not starting with a digit"
        )))
    }
}

/// Stops a background task (LISTEN, NOTIFY) when the last handle goes.
#[derive(Debug)]
struct ListenerTask(tokio::task::JoinHandle<()>);

impl Drop for ListenerTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The PostgreSQL adapter. Cheap to clone.
#[derive(Clone)]
pub struct PgStore {
    pool: PgPool,
    cipher: Arc<sealing::Cipher>,
    notify: Arc<Notify>,
    /// Asks the notifier task to NOTIFY the workers (see [`PgStore::wake_workers`]).
    wake: Arc<Notify>,
    channel: String,
    /// Accepts deliveries, grouping concurrent ones into one transaction.
    intake: intake::GroupCommit,
    _listener: Arc<ListenerTask>,
    _notifier: Arc<ListenerTask>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("channel", &self.channel)
            .finish_non_exhaustive()
    }
}

/// The connections the pool keeps open at all times, within its size: two for each batch the
/// intake commits at once (a connection goes back to the pool a moment after its batch is
/// answered, while the next batch already wants one), the listener's, the notifier's, and two
/// for the rest (tenant reads, the admin API).
fn warm_connections(config: &PgConfig) -> u32 {
    let slots = u32::try_from(config.group_commit.concurrency).unwrap_or(u32::MAX);
    slots
        .saturating_mul(2)
        .saturating_add(4)
        .min(config.max_connections)
}

impl PgStore {
    /// Creates the schema if needed, runs the migrations as the connecting user, then opens a pool
    /// whose connections act as `app_role`, and starts listening for new jobs.
    pub async fn connect(config: &PgConfig) -> Result<Self, PgError> {
        check_identifier("app role", &config.app_role)?;
        let mut options = PgConnectOptions::from_str(config.url.expose()).map_err(|e| {
            PgError::Config(format!(
                "invalid database URL: {}",
                redact(&e.to_string(), &config.url)
            ))
        })?;
        if let Some(schema) = &config.schema {
            check_identifier("schema", schema)?;
            let mut admin = sqlx::PgConnection::connect_with(&options)
                .await
                .map_err(PgError::Connect)?;
            // `schema` passed check_identifier above.
            admin
                .execute(sqlx::AssertSqlSafe(format!(
                    "CREATE SCHEMA IF NOT EXISTS {schema}"
                )))
                .await
                .map_err(PgError::Migrate)?;
            admin.close().await.map_err(PgError::Connect)?;
            options = options
                .options([("search_path", schema.as_str())])
                .application_name(schema);
        }
        let mut admin = sqlx::PgConnection::connect_with(&options)
            .await
            .map_err(PgError::Connect)?;
        MIGRATOR
            .run(&mut admin)
            .await
            .map_err(|e| PgError::Migrate(e.into()))?;
        admin.close().await.map_err(PgError::Connect)?;

        let set_role = format!("SET ROLE {}", config.app_role);
        let pool = PgPoolOptions::new()
            .max_connections(config.max_connections)
            // Warm connections kept ready (ADR 0021): a connection opened on demand, when a
            // burst begins after a quiet spell, costs the deliveries waiting for it the connect
            // and a new backend's first calls. The pool opens these at start-up and replaces
            // them in the background when they are closed for idleness or age.
            .min_connections(warm_connections(config))
            .acquire_timeout(config.acquire_timeout)
            // A dead connection surfaces as an error of the statement, which maps to
            // `Unavailable`; pinging on every acquire would cost a round trip per operation.
            .test_before_acquire(false)
            .after_connect(move |conn, _meta| {
                let set_role = set_role.clone();
                Box::pin(async move {
                    // `app_role` passed check_identifier in `connect`.
                    conn.execute(sqlx::AssertSqlSafe(set_role)).await?;
                    intake::warm_up(conn).await
                })
            })
            .connect_with(options)
            .await
            .map_err(PgError::Connect)?;

        let channel = format!(
            "attio_sync_jobs_{}",
            config.schema.as_deref().unwrap_or("public")
        );
        let notify = Arc::new(Notify::new());
        let listener = tokio::spawn(listen(pool.clone(), channel.clone(), notify.clone()));
        let wake = Arc::new(Notify::new());
        let notifier = tokio::spawn(notifier(pool.clone(), channel.clone(), wake.clone()));
        let intake = intake::GroupCommit::start(pool.clone(), config.group_commit);
        Ok(Self {
            pool,
            intake,
            cipher: Arc::new(sealing::Cipher::new(&config.master_key)),
            notify,
            wake,
            channel,
            _listener: Arc::new(ListenerTask(listener)),
            _notifier: Arc::new(ListenerTask(notifier)),
        })
    }

    /// What the inbox's group commit has done so far (ADR 0014).
    pub fn intake_stats(&self) -> IntakeStats {
        self.intake.stats()
    }

    /// How many bytes of WAL the server keeps as recycled segments after a checkpoint
    /// (`min_wal_size`). With less than a burst needs, a burst after a quiet period makes the
    /// committing backends create and zero-fill new 16 MB segments while every commit waits
    /// (ADR 0018). `Unavailable` when the server cannot be reached.
    pub async fn min_wal_size(&self) -> PortResult<u64> {
        let bytes: i64 =
            sqlx::query_scalar("SELECT pg_size_bytes(current_setting('min_wal_size'))")
                .fetch_one(&self.pool)
                .await
                .map_err(db)?;
        Ok(u64::try_from(bytes).unwrap_or(0))
    }

    /// The pool, for operational checks (readiness) and tests.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// A transaction that can see and write only `tenant`'s rows.
    pub async fn begin_tenant(
        &self,
        tenant: &TenantId,
    ) -> PortResult<Transaction<'static, Postgres>> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        sqlx::query("SELECT set_config('app.tenant_id', $1, true)")
            .bind(tenant.as_str())
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        Ok(tx)
    }

    /// A tenant transaction whose commit does not wait for the WAL flush. Only for queue steps
    /// that at-least-once delivery makes safe to lose in a crash (a lost lease, ack or retry
    /// means the job is delivered again); never for enqueueing or accepting a delivery.
    /// Its statements (ack, retry, extend, dead-letter: each finds its job by key) run with
    /// sequential scans off. Row-level security makes the planner expect one visible row, and it
    /// then preferred reading the whole queue (ADR 0019).
    pub(crate) async fn begin_tenant_relaxed(
        &self,
        tenant: &TenantId,
    ) -> PortResult<Transaction<'static, Postgres>> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        sqlx::query("SELECT set_config('app.tenant_id', $1, true), set_config('synchronous_commit', 'off', true), set_config('enable_seqscan', 'off', true)")
            .bind(tenant.as_str())
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        Ok(tx)
    }

    /// A transaction for cross-tenant work (dispatch, administration, purges).
    async fn begin_system(&self) -> PortResult<Transaction<'static, Postgres>> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        sqlx::query("SELECT set_config('app.scope', 'system', true)")
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        Ok(tx)
    }

    /// A cross-tenant transaction for reservations, whose loss in a crash only means redelivery.
    /// Sequential scans and sorts are off, which leaves the reserve one plan: walk `jobs_seq`
    /// from the oldest job and stop at the first one it may take. Row-level security makes the
    /// planner expect a single visible row, and it then scanned and sorted the whole queue on
    /// every reserve (ADR 0019).
    async fn begin_system_relaxed(&self) -> PortResult<Transaction<'static, Postgres>> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        sqlx::query("SELECT set_config('app.scope', 'system', true), set_config('synchronous_commit', 'off', true), set_config('enable_seqscan', 'off', true), set_config('enable_sort', 'off', true)")
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        Ok(tx)
    }
}

impl PgStore {
    /// Tells every process's workers that a job may have become deliverable, after the change
    /// committed. Wake-ups that arrive while a NOTIFY is being sent fold into the next one.
    pub(crate) fn wake_workers(&self) {
        self.wake.notify_one();
    }
}

/// Sends the NOTIFYs, one per burst of wake-ups, each in its own short transaction. A NOTIFY
/// inside a change's transaction would hold PostgreSQL's global notification lock across that
/// commit's WAL flush and so serialise every commit of the database (ADR 0011). A lost NOTIFY
/// (a crash, an error) costs only latency: workers poll as well. So its transaction does not
/// wait for the WAL flush either: a NOTIFY takes a transaction id, and a durable commit would be
/// one more flush of the disk per burst, as many as there are accepts at a moderate rate.
///
/// NOTIFYs are at least [`NOTIFY_SPACING`] apart: at a steady 1,000 accepts/s each would
/// otherwise be a NOTIFY of its own (a transaction, a queue entry, a message to every listener),
/// for workers that, when busy, do not wait for it.
async fn notifier(pool: PgPool, channel: String, wake: Arc<Notify>) {
    loop {
        wake.notified().await;
        match sqlx::query("SELECT set_config('synchronous_commit', 'off', true), pg_notify($1, '')")
            .bind(&channel)
            .execute(&pool)
            .await
        {
            Ok(_) => tokio::time::sleep(NOTIFY_SPACING).await,
            Err(e) => {
                tracing::warn!(error = %ports::Chain(&e), "cannot NOTIFY the workers; they will poll");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// The shortest time between two NOTIFYs of one store; wake-ups meanwhile fold into the next.
const NOTIFY_SPACING: Duration = Duration::from_millis(2);

/// Wakes waiting workers on every NOTIFY; reconnects after errors.
async fn listen(pool: PgPool, channel: String, notify: Arc<Notify>) {
    loop {
        match sqlx::postgres::PgListener::connect_with(&pool).await {
            Ok(mut listener) => {
                if let Err(e) = listener.listen(&channel).await {
                    tracing::warn!(error = %ports::Chain(&e), "cannot LISTEN for new jobs");
                } else {
                    while listener.recv().await.is_ok() {
                        // Wake every waiting consumer, and leave a permit for one that is between
                        // an empty `reserve` and its wait, which would otherwise sleep through
                        // this job.
                        notify.notify_waiters();
                        notify.notify_one();
                    }
                }
            }
            Err(e) => tracing::warn!(error = %ports::Chain(&e), "cannot open a LISTEN connection"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Removes a URL's password from a message, should a driver echo the URL.
fn redact(message: &str, url: &Secret) -> String {
    let mut out = message.replace(url.expose(), "postgres://***");
    if let Some(password) = url
        .expose()
        .split_once("://")
        .and_then(|(_, rest)| rest.split_once('@'))
        .and_then(|(userinfo, _)| userinfo.split_once(':'))
        .map(|(_, p)| p)
        .filter(|p| !p.is_empty())
    {
        out = out.replace(password, "***");
    }
    out
}
