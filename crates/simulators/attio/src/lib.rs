//! `attio-sim`: a local simulator of Attio's REST API v2, written from Attio's documentation and
//! the provider reference (not from our adapter), for tests, benchmarks and users' development.
//!
//! Served: authentication and scopes (open mode: every well-formed 64-character token is a
//! workspace of its own; or a tokens file), `/v2/self`, objects, attributes with their options and
//! statuses, records (query with filters, sorts and pagination; create; assert; get; `PATCH`/`PUT`;
//! delete; attribute values with history), lists and entries, notes, tasks, workspace members,
//! webhook subscriptions and signed deliveries of record, entry, note and task changes,
//! per-workspace rate limits with `429` and an HTTP-date `Retry-After`, Attio's error bodies and
//! headers, and fault injection (`Faults`).

mod activities;
mod auth;
mod deliveries;
mod error;
mod extract;
mod faults;
mod filter;
mod lists;
mod objects;
mod records;
mod respond;
mod router;
mod values;
mod webhooks;
mod world;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use axum::http::HeaderMap;
use domain::ids::WorkspaceId;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use auth::{Presented, TokenEntry, check_scopes, not_found_key, presented, wrong_length};
pub use auth::{TokenSpec, TokensFile};
pub use deliveries::{DeliveryConfig, sign};
use error::{ApiError, ApiResult};
pub use faults::Faults;
use world::Workspace;

/// How the simulator behaves.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// `None`: open mode, every well-formed token is a workspace of its own (all scopes).
    pub tokens: Option<TokensFile>,
    /// Read requests per second per workspace (Attio: 100).
    pub reads_per_second: u32,
    /// Write requests per second per workspace (Attio: 25).
    pub writes_per_second: u32,
    /// Webhook delivery retries, timeout and pace.
    pub deliveries: DeliveryConfig,
    /// Faults to inject from the start (changeable later through `/_sim/faults`).
    pub faults: Faults,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            tokens: None,
            reads_per_second: 100,
            writes_per_second: 25,
            deliveries: DeliveryConfig::default(),
            faults: Faults::default(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    Read,
    Write,
}

#[derive(Debug, Default)]
pub(crate) struct World {
    tokens: HashMap<String, TokenEntry>,
    pub(crate) workspaces: HashMap<WorkspaceId, Workspace>,
}

/// The simulator's state, shared by its handlers.
pub struct Sim {
    world: Mutex<World>,
    open: bool,
    reads: DefaultKeyedRateLimiter<WorkspaceId>,
    writes: DefaultKeyedRateLimiter<WorkspaceId>,
    outbox: tokio::sync::mpsc::UnboundedSender<deliveries::Delivery>,
    faults: std::sync::RwLock<Faults>,
}

impl std::fmt::Debug for Sim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sim")
            .field("open", &self.open)
            .finish_non_exhaustive()
    }
}

fn quota(per_second: u32) -> Quota {
    Quota::per_second(NonZeroU32::new(per_second).unwrap_or(NonZeroU32::MIN))
}

impl Sim {
    /// The simulator and the receiving end of its delivery queue (see `start`).
    pub(crate) fn new(
        config: &SimConfig,
    ) -> (
        Self,
        tokio::sync::mpsc::UnboundedReceiver<deliveries::Delivery>,
    ) {
        let (outbox, deliveries) = tokio::sync::mpsc::unbounded_channel();
        let mut world = World::default();
        if let Some(file) = &config.tokens {
            let mut by_name: HashMap<String, WorkspaceId> = HashMap::new();
            for t in &file.tokens {
                let ws = *by_name.entry(t.workspace.clone()).or_insert_with(|| {
                    let w = Workspace::new(&t.workspace);
                    let id = w.id;
                    world.workspaces.insert(id, w);
                    id
                });
                world.tokens.insert(
                    t.token.clone(),
                    TokenEntry {
                        workspace: ws,
                        token_id: uuid::Uuid::new_v4().to_string(),
                        scopes: Some(t.scopes.clone()),
                    },
                );
            }
        }
        let sim = Self {
            world: Mutex::new(world),
            open: config.tokens.is_none(),
            reads: RateLimiter::keyed(quota(config.reads_per_second)),
            writes: RateLimiter::keyed(quota(config.writes_per_second)),
            outbox,
            faults: std::sync::RwLock::new(config.faults.clone()),
        };
        (sim, deliveries)
    }

    /// The faults in force.
    pub fn faults(&self) -> Faults {
        self.faults
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub fn set_faults(&self, faults: Faults) {
        *self.faults.write().unwrap_or_else(PoisonError::into_inner) = faults;
    }

    pub(crate) fn world(&self) -> MutexGuard<'_, World> {
        self.world.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The entry of a well-formed token; in open mode an unknown token gets a new workspace.
    fn entry(&self, token: &str) -> Option<TokenEntry> {
        let mut world = self.world();
        if let Some(e) = world.tokens.get(token) {
            return Some(e.clone());
        }
        if !self.open {
            return None;
        }
        let ws = Workspace::new(&format!("Workspace {}", &token[..8]));
        let entry = TokenEntry {
            workspace: ws.id,
            token_id: uuid::Uuid::new_v4().to_string(),
            scopes: None,
        };
        world.workspaces.insert(ws.id, ws);
        world.tokens.insert(token.to_owned(), entry.clone());
        Some(entry)
    }

    /// The entry of a token for `/v2/self` (which takes no budget and needs no scope).
    pub(crate) fn entry_public(&self, token: &str) -> Option<TokenEntry> {
        self.entry(token)
    }

    /// Authenticates, checks scopes, then takes one request from the workspace's budget.
    pub(crate) fn authenticate(
        &self,
        headers: &HeaderMap,
        needed: &[&str],
        access: Access,
    ) -> ApiResult<TokenEntry> {
        let entry = match presented(headers) {
            Presented::None | Presented::Malformed => return Err(not_found_key()),
            Presented::WrongLength => return Err(wrong_length()),
            Presented::Token(t) => self.entry(&t).ok_or_else(not_found_key)?,
        };
        check_scopes(&entry, needed)?;
        let limiter = if access == Access::Read {
            &self.reads
        } else {
            &self.writes
        };
        if limiter.check_key(&entry.workspace).is_err() {
            let at = SystemTime::now() + Duration::from_secs(1);
            return Err(ApiError::rate_limited(httpdate::fmt_http_date(at)));
        }
        Ok(entry)
    }
}

/// A simulator serving on a local port, stopped (with its delivery sender) when dropped. `url()`
/// is the base URL clients use (without `/v2`).
pub type RunningSim = sim_support::Running<Sim>;

impl sim_support::HasFaults for Sim {
    type Faults = Faults;

    fn faults(&self) -> Faults {
        Sim::faults(self)
    }

    fn set_faults(&self, faults: Faults) {
        Sim::set_faults(self, faults);
    }
}

/// Starts a simulator on `addr` (`127.0.0.1:0` for any free port).
pub async fn start(addr: SocketAddr, config: SimConfig) -> std::io::Result<RunningSim> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let (sim, outbox) = Sim::new(&config);
    let sim = Arc::new(sim);
    let app = router::router(sim.clone());
    let sender = tokio::spawn(deliveries::run(
        sim.clone(),
        outbox,
        config.deliveries.clone(),
    ));
    sim_support::spawn("attio-sim", listener, app, sim, vec![sender])
}
