//! No crate outside a CRM's own crates names that CRM: the invariant that keeps adding a CRM to
//! its crates, one registry line and a config section (ARCHITECTURE.md, "Adding a CRM").
//!
//! The CRMs are found, not listed: every `crates/adapters/<name>` whose sources implement
//! `CrmProvider` is one. Their names (any case) must not appear in the code of any other crate,
//! except in:
//! - the CRM's own `crates/adapters/<name>` and `crates/simulators/<name>`;
//! - the registry files ([`REGISTRIES`]);
//! - test code: `tests/` and `benches/` folders, the `tests/` and `bench/` crates, `xtask`, and
//!   the rest of a source file from its first `#[cfg(test)]`;
//! - comments (lines whose code starts with `//`): prose may say what a port is modelled on.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// The files that list CRMs by name: the plugin registry, and the demo's simulators.
pub const REGISTRIES: &[&str] = &[
    "crates/apps/common/src/registry.rs",
    "crates/apps/cli/src/demo/crms.rs",
];

/// Folders whose code is test or tool code, relative to the root.
const TOOL_DIRS: &[&str] = &["tests", "bench", "xtask", "target", "fuzz"];

/// The CRMs of the tree at `root`: adapter folders whose sources implement `CrmProvider`.
pub fn crms(root: &Path) -> Result<Vec<String>> {
    let mut names = Vec::new();
    let adapters = root.join("crates/adapters");
    for entry in std::fs::read_dir(&adapters)
        .with_context(|| format!("cannot read {}", adapters.display()))?
    {
        let dir = entry?.path();
        let mut files = Vec::new();
        rust_files(&dir.join("src"), &mut files)?;
        let is_crm = files
            .iter()
            .any(|f| std::fs::read_to_string(f).is_ok_and(|s| s.contains("impl CrmProvider for")));
        if is_crm && let Some(n) = dir.file_name().and_then(|n| n.to_str()) {
            names.push(n.to_owned());
        }
    }
    names.sort();
    Ok(names)
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    for entry in entries {
        let p = entry?.path();
        if p.is_dir() {
            rust_files(&p, out)?;
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
    Ok(())
}

/// Whether `rel` (a `/`-separated path under the root) may name `crm`.
fn may_name(rel: &str, crm: &str) -> bool {
    let first = rel.split('/').next().unwrap_or_default();
    TOOL_DIRS.contains(&first)
        || rel.split('/').any(|seg| seg == "tests" || seg == "benches")
        || REGISTRIES.contains(&rel)
        || rel.starts_with(&format!("crates/adapters/{crm}/"))
        || rel.starts_with(&format!("crates/simulators/{crm}/"))
}

/// Every line of non-test code outside `crm`'s crates that names it, as `path:line: text`.
pub fn violations(root: &Path) -> Result<Vec<String>> {
    let crms = crms(root)?;
    let mut files = Vec::new();
    rust_files(&root.join("crates"), &mut files)?;
    let mut found = Vec::new();
    for file in files {
        let rel = file
            .strip_prefix(root)
            .unwrap_or(&file)
            .to_string_lossy()
            .replace('\\', "/");
        let text = std::fs::read_to_string(&file).with_context(|| format!("cannot read {rel}"))?;
        for (n, line) in text.lines().enumerate() {
            if line.trim_start().starts_with("#[cfg(test)]") {
                break;
            }
            if line.trim_start().starts_with("//") {
                continue;
            }
            let lower = line.to_lowercase();
            for crm in crms
                .iter()
                .filter(|c| lower.contains(c.as_str()) && !may_name(&rel, c))
            {
                found.push(format!("{rel}:{}: names {crm}: {}", n + 1, line.trim()));
            }
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A throw-away tree with one CRM plugin and the given files.
    fn tree(files: &[(&str, &str)]) -> PathBuf {
        let root = std::env::temp_dir().join(format!(
            "xtask-crm-names-{}-{}",
            std::process::id(),
            files.len() * 1000 + files.iter().map(|f| f.1.len()).sum::<usize>()
        ));
        let _ = std::fs::remove_dir_all(&root);
        let plugin = (
            "crates/adapters/pipedrive/src/plugin.rs",
            "impl CrmProvider for Pipedrive {}\nconst SYSTEM: &str = \"pipedrive\";\n",
        );
        for (path, text) in files.iter().chain([&plugin]) {
            let p = root.join(path);
            std::fs::create_dir_all(p.parent().unwrap_or(&root)).unwrap_or_else(|e| panic!("{e}"));
            std::fs::write(&p, text).unwrap_or_else(|e| panic!("{e}"));
        }
        root
    }

    #[test]
    fn the_workspace_names_no_crm_outside_its_crates() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let crms = crms(&root).unwrap_or_else(|e| panic!("{e:#}"));
        assert!(crms.len() >= 2, "the CRM plugins are found: {crms:?}");
        let found = violations(&root).unwrap_or_else(|e| panic!("{e:#}"));
        assert!(found.is_empty(), "{}", found.join("\n"));
    }

    #[test]
    fn a_planted_name_is_caught_and_allowed_places_are_not() {
        let root = tree(&[
            (
                "crates/services/src/poll.rs",
                "// Polls Pipedrive.\nfn f() { let s = \"PipeDrive\"; }\n#[cfg(test)]\nmod tests { const S: &str = \"pipedrive\"; }\n",
            ),
            (
                "crates/apps/common/src/registry.rs",
                "static P = &[&adapter_pipedrive::PROVIDER];\n",
            ),
            (
                "crates/simulators/pipedrive/src/lib.rs",
                "const S: &str = \"pipedrive\";\n",
            ),
            (
                "crates/apps/webhook-api/tests/it/main.rs",
                "const S: &str = \"pipedrive\";\n",
            ),
        ]);
        assert_eq!(
            crms(&root).unwrap_or_default(),
            vec!["pipedrive".to_owned()]
        );
        let found = violations(&root).unwrap_or_else(|e| panic!("{e:#}"));
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].starts_with("crates/services/src/poll.rs:2: names pipedrive"),
            "{found:?}"
        );
        let _ = std::fs::remove_dir_all(&root);
    }
}
