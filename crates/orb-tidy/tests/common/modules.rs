//! The module tree of a crate's `src/` and the references between its modules.
//!
//! A file's module path comes from where it is (`src/a/b.rs` and `src/a/b/mod.rs` are `a::b`,
//! `lib.rs` and `main.rs` the root), or from a `#[path = "…"] mod m;` attribute in another file.
//! `src/bin/` holds separate binaries and is left out. References are the paths that start with
//! `crate::`, `self::` or `super::` (also inside `use … {…}` groups), resolved against the file's
//! module path and the inline `mod m { … }` blocks around them; comments and string literals do
//! not count. Re-exports are not followed: `crate::Item` re-exported by `lib.rs` points at the
//! root, not at the module that defines it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use super::lexer::{Kind, Token, tokenize};
use super::{Graph, read_source, rel, rust_files_under};

/// Where an edge between two modules was seen first (outside test code if anywhere).
#[derive(Debug, Clone)]
pub struct Evidence {
    pub file: String,
    pub line: usize,
    pub path: String,
    /// Every reference behind the edge is test code: inside a `#[cfg(test)] mod`, inline or
    /// in its own file.
    pub test_only: bool,
}

/// The direct children of one module (the crate root or a directory module) and the
/// references between them.
#[derive(Debug)]
pub struct Level {
    /// The parent module, empty for the crate root.
    pub parent: Vec<String>,
    pub edges: BTreeMap<(String, String), Evidence>,
}

impl Level {
    pub fn graph(&self) -> Graph {
        let mut graph = Graph::new();
        for (from, to) in self.edges.keys() {
            graph.entry(from.clone()).or_default().insert(to.clone());
        }
        graph
    }

    /// `orbiter` for the crate root, `orbiter::engine` for a directory module.
    pub fn name(&self, crate_name: &str) -> String {
        std::iter::once(crate_name)
            .chain(self.parent.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join("::")
    }
}

struct SourceFile {
    path: PathBuf,
    module: Vec<String>,
    tokens: Vec<Token>,
}

struct Reference {
    /// The module the reference is written in (file module plus inline modules).
    from: Vec<String>,
    /// The absolute path it names, without `crate`.
    to: Vec<String>,
    file: String,
    line: usize,
}

/// What one file says: its references, and the modules it declares under `#[cfg(test)]`.
struct Scan {
    references: Vec<Reference>,
    test_modules: Vec<Vec<String>>,
}

/// Every level of `crate_dir/src` with at least two child modules, outermost first.
pub fn levels(crate_dir: &Path) -> Vec<Level> {
    let files = source_files(&crate_dir.join("src"));
    let mut children: BTreeMap<Vec<String>, BTreeSet<String>> = BTreeMap::new();
    for file in &files {
        for depth in 0..file.module.len() {
            let parent = file.module[..depth].to_vec();
            children
                .entry(parent)
                .or_default()
                .insert(file.module[depth].clone());
        }
    }
    let mut levels: BTreeMap<Vec<String>, Level> = children
        .iter()
        .filter(|(_, c)| c.len() >= 2)
        .map(|(parent, _)| {
            let level = Level {
                parent: parent.clone(),
                edges: BTreeMap::new(),
            };
            (parent.clone(), level)
        })
        .collect();
    let scans: Vec<Scan> = files.iter().map(scan).collect();
    let test_modules: Vec<&Vec<String>> = scans.iter().flat_map(|s| &s.test_modules).collect();
    for r in scans.iter().flat_map(|s| &s.references) {
        let test_only = test_modules.iter().any(|m| r.from.starts_with(m));
        if test_only {
            // Tests may reach across their crate (a kind's test parses a whole Orb).
            continue;
        }
        for depth in 0..r.from.len().min(r.to.len()) {
            if r.from[..depth] != r.to[..depth] {
                break;
            }
            let (Some(level), Some(kids)) = (
                levels.get_mut(&r.from[..depth]),
                children.get(&r.from[..depth]),
            ) else {
                continue;
            };
            let (from, to) = (&r.from[depth], &r.to[depth]);
            if from != to && kids.contains(from) && kids.contains(to) {
                let evidence = Evidence {
                    file: r.file.clone(),
                    line: r.line,
                    path: format!("crate::{}", r.to.join("::")),
                    test_only,
                };
                let seen = level.edges.entry((from.clone(), to.clone()));
                let seen = seen.or_insert_with(|| evidence.clone());
                if seen.test_only && !test_only {
                    *seen = evidence;
                }
            }
        }
    }
    levels.into_values().collect()
}

fn source_files(src: &Path) -> Vec<SourceFile> {
    let bin = src.join("bin");
    let mut files: Vec<SourceFile> = rust_files_under(src)
        .into_iter()
        .filter(|path| !path.starts_with(&bin))
        .filter_map(|path| {
            let text = read_source(&path)?;
            let module = default_module_path(src, &path);
            Some(SourceFile {
                path,
                module,
                tokens: tokenize(&text),
            })
        })
        .collect();
    // `#[path = "x.rs"] mod m;` in a file of module `a` makes `x.rs` the module `a::m`.
    let mut moved = Vec::new();
    for file in &files {
        for (target, name) in path_attributes(&file.tokens) {
            let dir = file.path.parent().expect("a source file has a directory");
            let mut module = file.module.clone();
            module.push(name);
            moved.push((canonical(&dir.join(target)), module));
        }
    }
    for (target, module) in moved {
        for file in files.iter_mut().filter(|f| canonical(&f.path) == target) {
            file.module = module.clone();
        }
    }
    files
}

fn canonical(path: &Path) -> PathBuf {
    path.canonicalize().unwrap_or_else(|_| path.to_path_buf())
}

fn default_module_path(src: &Path, path: &Path) -> Vec<String> {
    let relative = path.strip_prefix(src).expect("source files are under src/");
    let mut parts: Vec<String> = relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    let file = parts.pop().expect("a file has a name");
    let stem = file.strip_suffix(".rs").unwrap_or(&file);
    let is_root = parts.is_empty() && (stem == "lib" || stem == "main");
    if stem != "mod" && !is_root {
        parts.push(stem.to_string());
    }
    parts
}

/// `(path, module name)` of every `#[path = "…"] … mod name;` in a file.
fn path_attributes(tokens: &[Token]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for i in 0..tokens.len() {
        let attribute = tokens[i].is_punct('#')
            && tokens.get(i + 1).is_some_and(|t| t.is_punct('['))
            && tokens.get(i + 2).is_some_and(|t| t.is_ident("path"))
            && tokens.get(i + 3).is_some_and(|t| t.is_punct('='))
            && tokens.get(i + 5).is_some_and(|t| t.is_punct(']'));
        let Some(Kind::Str(target)) = tokens.get(i + 4).map(|t| &t.kind).filter(|_| attribute)
        else {
            continue;
        };
        // Other attributes and a visibility may come between the attribute and `mod`.
        for j in i + 6..tokens.len() {
            if tokens[j].is_punct(';') || tokens[j].is_punct('{') {
                break;
            }
            if tokens[j].is_ident("mod") {
                if let Some(name) = tokens.get(j + 1).and_then(Token::ident) {
                    out.push((target.clone(), name.to_string()));
                }
                break;
            }
        }
    }
    out
}

/// Whether the `mod` at `tokens[at]` carries a `#[cfg(…test…)]` attribute (not `not(test)`).
fn cfg_test_before(tokens: &[Token], at: usize) -> bool {
    let mut k = at;
    // The visibility: `pub`, `pub(crate)`, `pub(in crate::x)`.
    while k > 0 {
        let t = &tokens[k - 1];
        let visibility = matches!(t.ident(), Some("pub" | "crate" | "super" | "self" | "in"))
            || t.is_punct('(')
            || t.is_punct(')')
            || t.kind == Kind::PathSep;
        if !visibility {
            break;
        }
        k -= 1;
    }
    // The attributes, last first.
    while k > 0 && tokens[k - 1].is_punct(']') {
        let Some(open) = (0..k - 1).rev().find(|&j| tokens[j].is_punct('[')) else {
            return false;
        };
        let body = &tokens[open + 1..k - 1];
        let is_cfg = body.first().is_some_and(|t| t.is_ident("cfg"));
        if is_cfg
            && body.iter().any(|t| t.is_ident("test"))
            && !body.iter().any(|t| t.is_ident("not"))
        {
            return true;
        }
        if open == 0 || !tokens[open - 1].is_punct('#') {
            return false;
        }
        k = open - 1;
    }
    false
}

fn scan(file: &SourceFile) -> Scan {
    let tokens = &file.tokens;
    let shown = rel(&file.path);
    let mut out = Vec::new();
    let mut test_modules = Vec::new();
    let mut depth = 0usize;
    let mut inline: Vec<(String, usize)> = Vec::new();
    for (i, token) in tokens.iter().enumerate() {
        if token.is_ident("mod") {
            let name = tokens.get(i + 1).and_then(Token::ident);
            let body = tokens
                .get(i + 2)
                .filter(|t| t.is_punct('{') || t.is_punct(';'));
            if let (Some(name), Some(_)) = (name, body)
                && cfg_test_before(tokens, i)
            {
                let mut module = file.module.clone();
                module.extend(inline.iter().map(|(n, _)| n.clone()));
                module.push(name.to_string());
                test_modules.push(module);
            }
            continue;
        }
        if token.is_punct('{') {
            if i >= 2
                && tokens[i - 2].is_ident("mod")
                && let Some(name) = tokens[i - 1].ident()
            {
                inline.push((name.to_string(), depth));
            }
            depth += 1;
            continue;
        }
        if token.is_punct('}') {
            depth = depth.saturating_sub(1);
            if inline.last().is_some_and(|(_, d)| *d == depth) {
                inline.pop();
            }
            continue;
        }
        let starts_path = matches!(token.ident(), Some("crate" | "self" | "super"))
            && tokens.get(i + 1).is_some_and(|t| t.kind == Kind::PathSep)
            && (i == 0 || tokens[i - 1].kind != Kind::PathSep);
        if !starts_path {
            continue;
        }
        let mut here = file.module.clone();
        here.extend(inline.iter().map(|(name, _)| name.clone()));
        let mut base = match token.ident() {
            Some("crate") => Vec::new(),
            _ => here.clone(),
        };
        let mut pos = i;
        let mut beyond_root = false;
        // `self::` stays, each `super::` goes one module up.
        loop {
            match tokens.get(pos).and_then(Token::ident) {
                Some("super") if tokens.get(pos + 1).is_some_and(|t| t.kind == Kind::PathSep) => {
                    beyond_root |= base.pop().is_none();
                    pos += 2;
                }
                Some("crate" | "self") if pos == i => pos += 2,
                _ => break,
            }
        }
        if beyond_root {
            continue; // not a path of this crate's modules
        }
        let mut paths = Vec::new();
        use_tree(
            tokens,
            std::mem::take(&mut base),
            pos,
            token.line,
            &mut paths,
        );
        for (to, line) in paths {
            out.push(Reference {
                from: here.clone(),
                to,
                file: shown.clone(),
                line,
            });
        }
    }
    Scan {
        references: out,
        test_modules,
    }
}

/// Reads the path (or `use` tree) that continues at `pos`, right after a `::`, and pushes
/// every complete path it names. Returns the position after it.
fn use_tree(
    tokens: &[Token],
    mut path: Vec<String>,
    mut pos: usize,
    mut line: usize,
    out: &mut Vec<(Vec<String>, usize)>,
) -> usize {
    loop {
        let Some(token) = tokens.get(pos) else {
            out.push((path, line));
            return pos;
        };
        if token.is_punct('{') {
            pos += 1;
            loop {
                match tokens.get(pos) {
                    None => return pos,
                    Some(t) if t.is_punct('}') => return pos + 1,
                    Some(t) => pos = use_tree(tokens, path.clone(), pos, t.line, out),
                }
                // Skip `as alias` and the like up to the next item.
                let mut nested = 0usize;
                while let Some(t) = tokens.get(pos) {
                    if nested == 0 && (t.is_punct(',') || t.is_punct('}')) {
                        break;
                    }
                    if t.is_punct('{') {
                        nested += 1;
                    } else if t.is_punct('}') {
                        nested -= 1;
                    }
                    pos += 1;
                }
                if tokens.get(pos).is_some_and(|t| t.is_punct(',')) {
                    pos += 1;
                }
            }
        }
        match token.ident() {
            Some("self") => {
                out.push((path, token.line));
                return pos + 1;
            }
            Some(word) => {
                path.push(word.to_string());
                line = token.line;
                pos += 1;
                if tokens.get(pos).is_some_and(|t| t.kind == Kind::PathSep) {
                    pos += 1;
                    continue;
                }
                out.push((path, line));
                return pos;
            }
            None => {
                // `*`, `<` of a turbofish, …: the path so far.
                out.push((path, line));
                return pos;
            }
        }
    }
}
