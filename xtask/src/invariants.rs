//! The architecture's dependency rules (design §2), checked over `cargo metadata`:
//!
//! - `domain` depends (transitively, normal dependencies, all features) on no async runtime, HTTP,
//!   SQL or Redis crate;
//! - `ports` on no HTTP, SQL or Redis crate;
//! - adapters depend on no other adapter and on no service;
//! - only apps depend on adapters (tests and xtask aside; dev-dependencies are not counted);
//! - simulators depend on no adapter.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};
use serde_json::Value;

/// The role of a workspace crate, from where it lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Domain,
    Ports,
    Adapter,
    Service,
    App,
    Simulator,
    Tool,
}

impl Role {
    fn of(relative_dir: &str) -> Role {
        let p = relative_dir.trim_end_matches('/');
        if p == "crates/domain" {
            Role::Domain
        } else if p == "crates/ports" {
            Role::Ports
        } else if p.starts_with("crates/adapters/") {
            Role::Adapter
        } else if p == "crates/services" || p.starts_with("crates/services/") {
            Role::Service
        } else if p.starts_with("crates/apps/") {
            Role::App
        } else if p.starts_with("crates/simulators/") {
            Role::Simulator
        } else {
            Role::Tool
        }
    }
}

/// Crates the ports must never pull in.
const NOT_IN_PORTS: &[&str] = &[
    "reqwest",
    "sqlx",
    "axum",
    "redis",
    "hyper",
    "opentelemetry_sdk",
];
/// What the domain must not pull in besides those (it does no I/O at all).
const ALSO_NOT_IN_DOMAIN: &[&str] = &["tokio"];

/// Package names and their normal dependency edges.
#[derive(Debug, Default)]
pub struct Graph {
    /// Workspace crate name → role.
    pub workspace: BTreeMap<String, Role>,
    /// Crate name → names of its normal dependencies.
    pub edges: BTreeMap<String, BTreeSet<String>>,
}

impl Graph {
    pub fn workspace_len(&self) -> usize {
        self.workspace.len()
    }

    /// Reads the workspace's resolved graph (all features) from `cargo metadata`.
    pub fn from_workspace() -> Result<Self> {
        let out = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args(["metadata", "--format-version", "1", "--all-features"])
            .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(".."))
            .output()
            .context("cannot run cargo metadata")?;
        if !out.status.success() {
            bail!(
                "cargo metadata failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let meta: Value =
            serde_json::from_slice(&out.stdout).context("cargo metadata output is not JSON")?;
        Self::from_metadata(&meta)
    }

    pub fn from_metadata(meta: &Value) -> Result<Self> {
        let root = meta["workspace_root"]
            .as_str()
            .context("no workspace_root")?;
        let members: BTreeSet<&str> = meta["workspace_members"]
            .as_array()
            .context("no workspace_members")?
            .iter()
            .filter_map(Value::as_str)
            .collect();
        let mut names = BTreeMap::new();
        let mut graph = Graph::default();
        for p in meta["packages"].as_array().context("no packages")? {
            let (id, name) = (
                p["id"].as_str().unwrap_or_default(),
                p["name"].as_str().unwrap_or_default(),
            );
            names.insert(id.to_owned(), name.to_owned());
            if members.contains(id) {
                let manifest = p["manifest_path"].as_str().unwrap_or_default();
                let dir = Path::new(manifest).parent().unwrap_or(Path::new(""));
                let rel = dir
                    .strip_prefix(root)
                    .unwrap_or(dir)
                    .to_string_lossy()
                    .replace('\\', "/");
                graph.workspace.insert(name.to_owned(), Role::of(&rel));
            }
        }
        for node in meta["resolve"]["nodes"]
            .as_array()
            .context("no resolve graph")?
        {
            let from = names
                .get(node["id"].as_str().unwrap_or_default())
                .cloned()
                .unwrap_or_default();
            let deps = graph.edges.entry(from).or_default();
            for d in node["deps"].as_array().into_iter().flatten() {
                let normal = d["dep_kinds"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|k| k["kind"].is_null());
                if let Some(to) = names.get(d["pkg"].as_str().unwrap_or_default())
                    && normal
                {
                    deps.insert(to.clone());
                }
            }
        }
        Ok(graph)
    }

    /// A dependency path from `from` to any crate `bad` accepts, if one exists.
    fn path_to(&self, from: &str, bad: &dyn Fn(&str) -> bool) -> Option<Vec<String>> {
        let mut seen = BTreeSet::new();
        let mut queue = std::collections::VecDeque::from([vec![from.to_owned()]]);
        while let Some(path) = queue.pop_front() {
            let last = path.last().cloned().unwrap_or_default();
            for next in self.edges.get(&last).into_iter().flatten() {
                if !seen.insert(next.clone()) {
                    continue;
                }
                let mut p = path.clone();
                p.push(next.clone());
                if bad(next) {
                    return Some(p);
                }
                queue.push_back(p);
            }
        }
        None
    }

    fn role(&self, name: &str) -> Option<Role> {
        self.workspace.get(name).copied()
    }
}

/// Every broken rule, as a sentence naming the dependency path.
pub fn violations(g: &Graph) -> Vec<String> {
    let mut found = Vec::new();
    let forbidden = |lists: &'static [&'static [&'static str]]| {
        move |name: &str| lists.iter().any(|l| l.contains(&name))
    };
    for (name, role) in &g.workspace {
        match role {
            Role::Domain => {
                if let Some(p) = g.path_to(name, &forbidden(&[NOT_IN_PORTS, ALSO_NOT_IN_DOMAIN])) {
                    found.push(format!(
                        "the domain crate must not depend on I/O or telemetry-SDK crates: {}",
                        p.join(" → ")
                    ));
                }
            }
            Role::Ports => {
                if let Some(p) = g.path_to(name, &forbidden(&[NOT_IN_PORTS])) {
                    found.push(format!(
                        "the ports crate must not depend on HTTP, SQL, Redis or telemetry-SDK crates: {}",
                        p.join(" → ")
                    ));
                }
            }
            _ => {}
        }
        for dep in g.edges.get(name).into_iter().flatten() {
            let Some(dep_role) = g.role(dep) else {
                continue;
            };
            match (role, dep_role) {
                (Role::Adapter, Role::Adapter) => {
                    found.push(format!("adapter {name} must not depend on adapter {dep}"))
                }
                (Role::Adapter, Role::Service) => {
                    found.push(format!("adapter {name} must not depend on services ({dep})"))
                }
                (Role::Simulator, Role::Adapter) => found.push(format!(
                    "simulator {name} must not depend on adapter {dep}: simulators are written from the vendor's documentation"
                )),
                (Role::Domain | Role::Ports | Role::Service, Role::Adapter) => {
                    found.push(format!("{name} must not depend on adapter {dep}: only apps wire adapters"))
                }
                _ => {}
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph(crates: &[(&str, Role)], edges: &[(&str, &str)]) -> Graph {
        let mut g = Graph::default();
        for (n, r) in crates {
            g.workspace.insert((*n).into(), *r);
        }
        for (a, b) in edges {
            g.edges.entry((*a).into()).or_default().insert((*b).into());
        }
        g
    }

    #[test]
    fn the_workspace_keeps_its_invariants() {
        let g = Graph::from_workspace().unwrap();
        assert_eq!(
            g.role("domain"),
            Some(Role::Domain),
            "the check must see the domain crate"
        );
        assert_eq!(
            g.role("ports"),
            Some(Role::Ports),
            "the check must see the ports crate"
        );
        assert_eq!(g.role("adapter-memory"), Some(Role::Adapter));
        // The ports crate pulls tokio (the trace task-local), and metadata is read with all
        // features: the graph is really resolved.
        assert!(g.path_to("ports", &|n| n == "tokio").is_some());
        let v = violations(&g);
        assert!(v.is_empty(), "{v:#?}");
    }

    #[test]
    fn a_transitive_runtime_in_the_domain_is_caught() {
        let g = graph(
            &[("domain", Role::Domain)],
            &[("domain", "helper"), ("helper", "tokio")],
        );
        let v = violations(&g);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(v[0].contains("domain → helper → tokio"), "{}", v[0]);
    }

    #[test]
    fn sql_in_ports_is_caught_but_tokio_is_allowed() {
        let g = graph(
            &[("ports", Role::Ports)],
            &[("ports", "tokio"), ("ports", "sqlx")],
        );
        let v = violations(&g);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(v[0].contains("sqlx"));
    }

    #[test]
    fn layering_between_crates_is_enforced() {
        let g = graph(
            &[
                ("adapter-a", Role::Adapter),
                ("adapter-b", Role::Adapter),
                ("services", Role::Service),
                ("attio-sim", Role::Simulator),
                ("webhook-api", Role::App),
            ],
            &[
                ("adapter-a", "adapter-b"),
                ("adapter-a", "services"),
                ("services", "adapter-b"),
                ("attio-sim", "adapter-a"),
                ("webhook-api", "adapter-a"),
                ("webhook-api", "adapter-b"),
            ],
        );
        let v = violations(&g);
        assert_eq!(v.len(), 4, "{v:#?}");
        assert!(
            !v.iter().any(|s| s.contains("webhook-api")),
            "apps may wire adapters: {v:?}"
        );
    }

    #[test]
    fn roles_follow_the_layout() {
        assert_eq!(Role::of("crates/domain"), Role::Domain);
        assert_eq!(Role::of("crates/adapters/postgres"), Role::Adapter);
        assert_eq!(Role::of("crates/apps/webhook-api"), Role::App);
        assert_eq!(Role::of("crates/simulators/attio"), Role::Simulator);
        assert_eq!(Role::of("xtask"), Role::Tool);
    }
}
