//! Helpers shared by the tidy checks: where the workspace is, which files it has, cycle
//! detection in small directed graphs, and how failures are reported.

// Each test binary uses a part of this module.
#![allow(dead_code)]

pub mod lexer;
pub mod modules;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Path, PathBuf};

/// The workspace manifest, as the brief of this crate fixes it.
pub const WORKSPACE_MANIFEST: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../Cargo.toml");

/// The workspace root directory (canonical, so that displayed paths are short).
pub fn workspace_root() -> PathBuf {
    let manifest = Path::new(WORKSPACE_MANIFEST);
    let root = manifest
        .parent()
        .expect("the workspace manifest has a directory");
    root.canonicalize()
        .unwrap_or_else(|e| panic!("cannot resolve the workspace root {}: {e}", root.display()))
}

/// `path` relative to the workspace root, with `/` separators, for failure messages.
pub fn rel(path: &Path) -> String {
    let root = workspace_root();
    let shown = path.strip_prefix(&root).unwrap_or(path);
    shown
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("/")
}

/// Every crate directory `crates/<name>` that has a `Cargo.toml`, sorted by name.
pub fn crate_dirs() -> Vec<(String, PathBuf)> {
    let crates = workspace_root().join("crates");
    let mut out = Vec::new();
    for entry in read_dir_sorted(&crates) {
        if entry.is_dir() && entry.join("Cargo.toml").is_file() {
            let name = entry
                .file_name()
                .expect("a directory entry has a name")
                .to_string_lossy()
                .into_owned();
            out.push((name, entry));
        }
    }
    assert!(
        !out.is_empty(),
        "no crates found under {}",
        crates.display()
    );
    out
}

/// The entries of `dir`, sorted; an absent directory has none.
pub fn read_dir_sorted(dir: &Path) -> Vec<PathBuf> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
        Err(e) => panic!("cannot list {}: {e}", dir.display()),
    };
    let mut out: Vec<PathBuf> = entries
        .map(|e| {
            e.unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
                .path()
        })
        .collect();
    out.sort();
    out
}

/// Every `*.rs` file below `dir` (recursively, not following symbolic links), sorted.
pub fn rust_files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in read_dir_sorted(&dir) {
            let Ok(meta) = std::fs::symlink_metadata(&entry) else {
                continue; // removed while we looked: someone is editing the tree
            };
            if meta.is_dir() {
                pending.push(entry);
            } else if meta.is_file() && entry.extension().is_some_and(|e| e == "rs") {
                out.push(entry);
            }
        }
    }
    out.sort();
    out
}

/// The text of a source file, or `None` when it vanished since it was listed (other people
/// edit the tree while the tests run).
pub fn read_source(path: &Path) -> Option<String> {
    match std::fs::read_to_string(path) {
        Ok(text) => Some(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => panic!("cannot read {}: {e}", rel(path)),
    }
}

/// A directed graph over names; `BTree*` keeps every report in a stable order.
pub type Graph = BTreeMap<String, BTreeSet<String>>;

/// One cycle per strongly connected component that has one (including a node with an edge to
/// itself), as `[a, b, …, a]`: the shortest cycle through the component's smallest node.
/// Returns the component's members alongside, because breaking the printed cycle alone may
/// leave another one in the same tangle.
pub fn cycles(graph: &Graph) -> Vec<(Vec<String>, BTreeSet<String>)> {
    let mut out = Vec::new();
    for component in strongly_connected_components(graph) {
        let first = component
            .iter()
            .next()
            .expect("components are not empty")
            .clone();
        let self_loop = graph.get(&first).is_some_and(|to| to.contains(&first));
        if component.len() == 1 && !self_loop {
            continue;
        }
        let cycle = shortest_cycle_through(graph, &first, &component);
        out.push((cycle, component));
    }
    out
}

/// Tarjan's algorithm, iteration order fixed by the `BTreeMap`.
fn strongly_connected_components(graph: &Graph) -> Vec<BTreeSet<String>> {
    struct State<'g> {
        graph: &'g Graph,
        index: BTreeMap<&'g str, usize>,
        low: BTreeMap<&'g str, usize>,
        stack: Vec<&'g str>,
        on_stack: BTreeSet<&'g str>,
        out: Vec<BTreeSet<String>>,
    }
    fn visit<'g>(s: &mut State<'g>, v: &'g str) {
        let n = s.index.len();
        s.index.insert(v, n);
        s.low.insert(v, n);
        s.stack.push(v);
        s.on_stack.insert(v);
        for w in s.graph.get(v).into_iter().flatten() {
            let w = w.as_str();
            if !s.index.contains_key(w) {
                visit(s, w);
                let lw = s.low[w];
                let lv = s.low.get_mut(v).expect("visited");
                *lv = (*lv).min(lw);
            } else if s.on_stack.contains(w) {
                let iw = s.index[w];
                let lv = s.low.get_mut(v).expect("visited");
                *lv = (*lv).min(iw);
            }
        }
        if s.low[v] == s.index[v] {
            let mut component = BTreeSet::new();
            loop {
                let w = s.stack.pop().expect("v is on the stack");
                s.on_stack.remove(w);
                component.insert(w.to_string());
                if w == v {
                    break;
                }
            }
            s.out.push(component);
        }
    }
    let mut s = State {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        out: Vec::new(),
    };
    let nodes: BTreeSet<&str> = graph
        .iter()
        .flat_map(|(from, to)| std::iter::once(from).chain(to))
        .map(String::as_str)
        .collect();
    for v in nodes {
        if !s.index.contains_key(v) {
            visit(&mut s, v);
        }
    }
    s.out.sort();
    s.out
}

/// Breadth-first search from `start` back to `start`, staying inside `component`.
fn shortest_cycle_through(graph: &Graph, start: &str, component: &BTreeSet<String>) -> Vec<String> {
    let mut came_from: BTreeMap<&str, &str> = BTreeMap::new();
    let mut queue = VecDeque::from([start]);
    while let Some(v) = queue.pop_front() {
        for w in graph.get(v).into_iter().flatten() {
            if !component.contains(w) {
                continue;
            }
            if w == start {
                let mut path = vec![start.to_string(), v.to_string()];
                let mut at = v;
                while at != start {
                    at = came_from[at];
                    path.push(at.to_string());
                }
                path.reverse();
                return path;
            }
            if w != start && !came_from.contains_key(w.as_str()) {
                came_from.insert(w, v);
                queue.push_back(w);
            }
        }
    }
    unreachable!("{start} is in a cycle of its strongly connected component")
}

/// Fails with every problem, one paragraph each, under `what`.
#[track_caller]
pub fn assert_none(problems: Vec<String>, what: &str) {
    assert!(
        problems.is_empty(),
        "{what} ({} problem{}):\n\n{}\n",
        problems.len(),
        if problems.len() == 1 { "" } else { "s" },
        problems.join("\n\n")
    );
}
