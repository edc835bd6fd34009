//! Tidy checks of the edges between crates, read from `cargo metadata`: pure crates gain no I/O
//! dependencies, forbidden edges stay absent, every edge between workspace crates is listed in
//! [`ALLOWED`], and neither the graph nor the table has a cycle.
//!
//! Every failure names the crate and edge and says how to fix it. Changing one of the tables
//! below is a design decision: update `ARCHITECTURE.md` with it.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use common::{Graph, assert_none, cycles, rel};
use serde_json::Value;

/// Crates that hold logic only: they get data in and give data out, and never touch files,
/// processes, sockets or Git themselves. That keeps them deterministic and testable without
/// machines (`orbiter::plan` relies on it).
const PURE_CRATES: &[&str] = &[
    "node-protocol",
    "orb-model",
    "orb-secrets",
    "orb-etcd",
    "orb-lb",
];

/// Normal dependencies no pure crate may have directly: system-call wrappers (`libc`, `nix`,
/// `rustix`), the file system (`tempfile`), async runtimes and HTTP (`tokio`, `reqwest`, `ureq`),
/// Git libraries (`git2`, `gix`; we use the git CLI through `orb-repo`), and the workspace crates
/// that do I/O.
const FORBIDDEN_FOR_PURE_CRATES: &[&str] = &[
    "libc",
    "tempfile",
    "orb-repo",
    "orb-machines",
    "node-agent",
    "orbiter",
    "orbctl",
    "tokio",
    "reqwest",
    "ureq",
    "git2",
    "gix",
    "nix",
    "rustix",
];

/// Stands for every workspace crate in [`FORBIDDEN_EDGES`].
const ANY: &str = "*";

/// `(from, to, why)`: workspace edges that must never exist, whatever [`ALLOWED`] says.
const FORBIDDEN_EDGES: &[(&str, &str, &str)] = &[
    (
        "orb-model",
        "node-agent",
        "the desired-state model must not depend on the per-machine daemon; shared formats live in node-protocol",
    ),
    (
        "orbiter",
        "node-agent",
        "Orbiter talks to agents only through the documents of node-protocol, over SSH",
    ),
    (
        "orb-etcd",
        "orbiter",
        "a cluster kind's logic is pure; orbiter adapts it (clusters/etcd.rs), not the other way round",
    ),
    (
        "orb-lb",
        "orbiter",
        "the load balancer kind's logic is pure; orbiter adapts it, not the other way round",
    ),
    (
        "node-agent",
        "orbiter",
        "node-agent runs on every machine and must stay small; it never knows the reconciler",
    ),
    (
        "node-agent",
        "orb-model",
        "node-agent never sees orbiter.yml; it gets node-desired documents (node-protocol)",
    ),
    (
        "node-protocol",
        ANY,
        "node-protocol is the contract between Orbiter and node-agent and depends on neither side",
    ),
    (
        ANY,
        "orbctl",
        "orbctl is the CLI at the top of the graph; shared code belongs in a library crate",
    ),
];

/// Every workspace crate and the workspace crates it may depend on (normal dependencies only).
/// A new edge fails `workspace_edges_are_in_the_allowed_table` until it is added here on
/// purpose, with `ARCHITECTURE.md` updated. Rows and entries are sorted.
const ALLOWED: &[(&str, &[&str])] = &[
    (
        "mission-control",
        &["orb-etcd", "orb-lb", "orb-model", "orb-repo", "orbiter"],
    ),
    ("node-agent", &["node-protocol"]),
    ("node-protocol", &[]),
    ("orb-etcd", &["node-protocol", "orb-model"]),
    ("orb-lb", &["node-protocol", "orb-model"]),
    ("orb-machines", &[]),
    ("orb-model", &["node-protocol", "orb-secrets"]),
    ("orb-repo", &[]),
    ("orb-secrets", &[]),
    ("orb-testsupport", &[]),
    ("orb-tidy", &[]),
    (
        "orbctl",
        &[
            "mission-control",
            "node-protocol",
            "orb-lb",
            "orb-machines",
            "orb-model",
            "orb-repo",
            "orb-secrets",
            "orbiter",
        ],
    ),
    (
        "orbiter",
        &[
            "node-protocol",
            "orb-etcd",
            "orb-lb",
            "orb-machines",
            "orb-model",
            "orb-repo",
            "orb-secrets",
        ],
    ),
];

const THIS_FILE: &str = "crates/orb-tidy/tests/crate_edges.rs";

struct WorkspaceCrate {
    manifest: String,
    /// Names of the normal (not dev, not build) dependencies, for every target platform.
    normal: BTreeSet<String>,
    /// The workspace crates among them.
    workspace: BTreeSet<String>,
}

fn cargo() -> std::ffi::OsString {
    std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into())
}

fn host_triple() -> String {
    let out = Command::new(cargo())
        .arg("-vV")
        .output()
        .expect("cannot run `cargo -vV`");
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| l.strip_prefix("host: "))
        .unwrap_or_else(|| panic!("`cargo -vV` printed no host line:\n{text}"))
        .trim()
        .to_string()
}

/// The workspace crates by name, from `cargo metadata`.
///
/// `--filter-platform` keeps cargo from resolving other platforms' crates, which the offline
/// registry cache does not hold (e.g. `anstyle-wincon`). It does not filter `dependencies`, the
/// manifest's declarations: a `[target.'cfg(windows)'.dependencies]` entry is still seen.
fn workspace() -> BTreeMap<String, WorkspaceCrate> {
    let out = Command::new(cargo())
        .args([
            "metadata",
            "--format-version",
            "1",
            "--offline",
            "--filter-platform",
        ])
        .arg(host_triple())
        .arg("--manifest-path")
        .arg(common::WORKSPACE_MANIFEST)
        .output()
        .expect("cannot run `cargo metadata`");
    assert!(
        out.status.success(),
        "`cargo metadata --offline` failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: Value = serde_json::from_slice(&out.stdout).expect("cargo metadata prints JSON");
    let members: BTreeSet<&str> = meta["workspace_members"]
        .as_array()
        .expect("workspace_members is a list")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let packages: Vec<&Value> = meta["packages"]
        .as_array()
        .expect("packages is a list")
        .iter()
        .filter(|p| p["id"].as_str().is_some_and(|id| members.contains(id)))
        .collect();
    let names: BTreeSet<String> = packages.iter().map(|p| str_field(p, "name")).collect();
    packages
        .iter()
        .map(|p| {
            let normal: BTreeSet<String> = p["dependencies"]
                .as_array()
                .expect("dependencies is a list")
                .iter()
                .filter(|d| d["kind"].is_null())
                .map(|d| str_field(d, "name"))
                .collect();
            let workspace = normal
                .iter()
                .filter(|n| names.contains(*n))
                .cloned()
                .collect();
            let manifest = rel(std::path::Path::new(&str_field(p, "manifest_path")));
            (
                str_field(p, "name"),
                WorkspaceCrate {
                    manifest,
                    normal,
                    workspace,
                },
            )
        })
        .collect()
}

fn str_field(value: &Value, field: &str) -> String {
    value[field]
        .as_str()
        .unwrap_or_else(|| panic!("cargo metadata: `{field}` is not a string in {value}"))
        .to_string()
}

fn allowed() -> BTreeMap<&'static str, BTreeSet<&'static str>> {
    ALLOWED
        .iter()
        .map(|(from, to)| (*from, to.iter().copied().collect()))
        .collect()
}

fn forbidden_edge(from: &str, to: &str) -> Option<&'static str> {
    FORBIDDEN_EDGES
        .iter()
        .find(|(f, t, _)| (*f == from || *f == ANY) && (*t == to || *t == ANY) && from != to)
        .map(|(_, _, why)| *why)
}

#[test]
fn pure_crates_have_no_io_dependencies() {
    let workspace = workspace();
    let mut problems = Vec::new();
    for pure in PURE_CRATES {
        let Some(krate) = workspace.get(*pure) else {
            problems.push(format!(
                "`{pure}` is listed in PURE_CRATES ({THIS_FILE}) but is not a workspace crate: \
                 remove it or fix its name"
            ));
            continue;
        };
        for dep in FORBIDDEN_FOR_PURE_CRATES
            .iter()
            .filter(|d| krate.normal.contains(**d))
        {
            problems.push(format!(
                "pure crate `{pure}` depends on `{dep}` ({} [dependencies]). Pure crates do no \
                 I/O: keep the I/O in orbiter/orbctl (or another I/O crate) and pass data in, or \
                 make `{dep}` a [dev-dependencies] entry if only tests need it",
                krate.manifest
            ));
        }
    }
    assert_none(problems, "pure crates gained I/O dependencies");
}

#[test]
fn no_forbidden_workspace_edges() {
    let mut problems = Vec::new();
    for (from, krate) in &workspace() {
        for to in &krate.workspace {
            if let Some(why) = forbidden_edge(from, to) {
                problems.push(format!(
                    "forbidden edge `{from} -> {to}` ({} [dependencies]): {why}. Remove the \
                     dependency and move the shared code to a crate both may use",
                    krate.manifest
                ));
            }
        }
    }
    assert_none(problems, "forbidden edges between workspace crates");
}

#[test]
fn workspace_edges_are_in_the_allowed_table() {
    let allowed = allowed();
    let mut problems = Vec::new();
    for (from, krate) in &workspace() {
        let Some(may) = allowed.get(from.as_str()) else {
            let deps: Vec<String> = krate.workspace.iter().map(|d| format!("\"{d}\"")).collect();
            problems.push(format!(
                "workspace crate `{from}` has no row in ALLOWED ({THIS_FILE}): add \
                 `(\"{from}\", &[{}])` if these edges are intended, and describe the crate in \
                 ARCHITECTURE.md",
                deps.join(", ")
            ));
            continue;
        };
        for to in krate
            .workspace
            .iter()
            .filter(|to| !may.contains(to.as_str()))
        {
            problems.push(format!(
                "new edge `{from} -> {to}` ({} [dependencies]) is not in ALLOWED ({THIS_FILE}). \
                 If it is intended, add \"{to}\" to the row of `{from}` and update the crate table \
                 of ARCHITECTURE.md; otherwise remove the dependency (or make it a \
                 [dev-dependencies] entry if only tests need it)",
                krate.manifest
            ));
        }
    }
    assert_none(
        problems,
        "edges between workspace crates that ALLOWED does not list",
    );
}

#[test]
fn allowed_table_agrees_with_the_rules() {
    let workspace = workspace();
    let mut problems = Vec::new();
    let mut seen = BTreeSet::new();
    for (from, to) in ALLOWED {
        if !seen.insert(*from) {
            problems.push(format!("ALLOWED has two rows for `{from}`: merge them"));
        }
        if !workspace.contains_key(*from) {
            problems.push(format!(
                "ALLOWED has a row for `{from}`, which is not a workspace crate: remove or rename it"
            ));
        }
        for to in *to {
            if !workspace.contains_key(*to) {
                problems.push(format!(
                    "ALLOWED lets `{from}` depend on `{to}`, which is not a workspace crate: remove it"
                ));
            }
            if let Some(why) = forbidden_edge(from, to) {
                problems.push(format!(
                    "ALLOWED lets `{from}` depend on `{to}`, but FORBIDDEN_EDGES says: {why}. \
                     Remove it from ALLOWED"
                ));
            }
            if PURE_CRATES.contains(from) && FORBIDDEN_FOR_PURE_CRATES.contains(to) {
                problems.push(format!(
                    "ALLOWED lets pure crate `{from}` depend on `{to}`, an I/O dependency \
                     (FORBIDDEN_FOR_PURE_CRATES): remove it from ALLOWED"
                ));
            }
        }
    }
    problems.extend(ALLOWED.windows(2).filter(|w| w[0].0 >= w[1].0).map(|w| {
        format!(
            "ALLOWED rows are not sorted: `{}` comes before `{}`",
            w[0].0, w[1].0
        )
    }));
    assert_none(
        problems,
        format!("ALLOWED ({THIS_FILE}) contradicts itself or the rules").as_str(),
    );
}

#[test]
fn crate_graphs_have_no_cycle() {
    let actual: Graph = workspace()
        .into_iter()
        .map(|(name, krate)| (name, krate.workspace))
        .collect();
    let table: Graph = ALLOWED
        .iter()
        .map(|(from, to)| (from.to_string(), to.iter().map(|t| t.to_string()).collect()))
        .collect();
    let mut problems = Vec::new();
    for (graph, what, fix) in [
        (
            &actual,
            "the workspace's dependencies",
            "remove one of these dependencies",
        ),
        (&table, "ALLOWED", "remove one of these edges from ALLOWED"),
    ] {
        for (cycle, _) in cycles(graph) {
            problems.push(format!("{what}: cycle {}; {fix}", cycle.join(" -> ")));
        }
    }
    assert_none(problems, "cycles between workspace crates");
}
