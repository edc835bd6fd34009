//! Tidy checks of the source tree: files of at most [`MAX_LINES`] lines, and no cycles between
//! the modules of a crate (top level and inside directory modules). The crate edges are checked
//! in `crate_edges.rs`.
//!
//! Every failure names the crate and file and says how to fix it.

mod common;

use common::{Graph, assert_none, crate_dirs, cycles, read_source, rel, rust_files_under};

// ---------------------------------------------------------------------------------------------
// File size
// ---------------------------------------------------------------------------------------------

/// The longest a source file may be. Longer files hide more than one job: split them along the
/// jobs (a directory module with one file per part, tests next to what they test).
const MAX_LINES: usize = 600;

#[test]
fn no_source_file_over_600_lines() {
    let mut offenders = Vec::new();
    for (_, dir) in crate_dirs() {
        for sub in ["src", "tests", "benches"] {
            for path in rust_files_under(&dir.join(sub)) {
                let Some(text) = read_source(&path) else {
                    continue;
                };
                let lines = text.lines().count();
                if lines > MAX_LINES {
                    offenders.push(format!("{}: {lines} lines", rel(&path)));
                }
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "{} source file{} over {MAX_LINES} lines; split each into modules along its jobs (for \
         tests, one file per behaviour or a `tests/<name>/main.rs` with submodules):\n  {}\n",
        offenders.len(),
        if offenders.len() == 1 { " is" } else { "s are" },
        offenders.join("\n  ")
    );
}

// ---------------------------------------------------------------------------------------------
// Module cycles
// ---------------------------------------------------------------------------------------------

/// Cycles between the children of the crate roots (`top_level`) or of directory modules.
fn module_cycles(top_level: bool) -> Vec<String> {
    let mut problems = Vec::new();
    for (crate_name, dir) in crate_dirs() {
        for level in common::modules::levels(&dir) {
            if level.parent.is_empty() != top_level {
                continue;
            }
            for (cycle, tangle) in cycles(&level.graph()) {
                let mut text = format!("{}: {}", level.name(&crate_name), cycle.join(" -> "));
                let inside =
                    |(from, to): &&(String, String)| tangle.contains(from) && tangle.contains(to);
                if tangle.len() > cycle.len() - 1 {
                    let all: Vec<&str> = tangle.iter().map(String::as_str).collect();
                    text += &format!(
                        "\n    one cycle of the tangle {}; all its edges:",
                        all.join(", ")
                    );
                }
                for (from, to) in level.edges.keys().filter(inside) {
                    let seen = &level.edges[&(from.clone(), to.clone())];
                    let test_only = if seen.test_only {
                        " (test code only)"
                    } else {
                        ""
                    };
                    text += &format!(
                        "\n    {from} -> {to}: {}:{} uses `{}`{test_only}",
                        seen.file, seen.line, seen.path
                    );
                }
                problems.push(text);
            }
        }
    }
    problems
}

const MODULE_CYCLE_FIX: &str = "Break each cycle: move what both sides need into a module \
     that depends on neither (or into the lower one), or pass it in (a parameter, a trait). \
     Paths in comments, strings, lib.rs/main.rs/mod.rs and `#[cfg(test)]` modules do not count";

#[test]
fn no_cycles_between_top_level_modules() {
    let problems = module_cycles(true);
    assert_none(
        problems,
        format!("import cycles between top-level modules. {MODULE_CYCLE_FIX}").as_str(),
    );
}

#[test]
fn no_cycles_between_modules_of_a_directory() {
    let problems = module_cycles(false);
    assert_none(
        problems,
        format!("import cycles between the modules of a directory module. {MODULE_CYCLE_FIX}")
            .as_str(),
    );
}

// ---------------------------------------------------------------------------------------------
// The checks' own tools
// ---------------------------------------------------------------------------------------------

#[test]
fn lexer_skips_comments_strings_and_chars() {
    use common::lexer::{Kind, tokenize};
    let src = r####"
        // crate::a
        /* crate::b /* nested crate::c */ crate::d */
        /// crate::e
        let s1 = "crate::f \" crate::g";
        let r1 = r#"crate::h "# ;
        let c1 = '"'; let q1 = '\''; let l1: &'static str = x;
        crate::i::j
    "####;
    let tokens = tokenize(src);
    let idents: Vec<&str> = tokens.iter().filter_map(|t| t.ident()).collect();
    assert!(
        !idents
            .iter()
            .any(|w| ["a", "b", "c", "d", "e", "f", "g", "h"].contains(w))
    );
    let strings = tokens
        .iter()
        .filter(|t| matches!(t.kind, Kind::Str(_)))
        .count();
    assert_eq!(strings, 2, "{tokens:?}");
    let i = tokens
        .iter()
        .position(|t| t.is_ident("i"))
        .expect("crate::i is code");
    assert_eq!(tokens[i].line, 8);
    assert!(idents.contains(&"static"));
}

#[test]
fn cycles_are_reported_once_per_tangle() {
    let mut graph = Graph::new();
    for (from, to) in [
        ("a", "b"),
        ("b", "c"),
        ("c", "a"),
        ("c", "b"),
        ("d", "d"),
        ("e", "a"),
    ] {
        graph.entry(from.into()).or_default().insert(to.into());
    }
    let found: Vec<String> = cycles(&graph)
        .into_iter()
        .map(|(c, _)| c.join(" -> "))
        .collect();
    assert_eq!(found, ["a -> b -> c -> a", "d -> d"]);
}

#[test]
fn module_scanner_resolves_paths() {
    let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/modules");
    let found: Vec<String> = common::modules::levels(std::path::Path::new(fixture))
        .iter()
        .flat_map(|level| {
            level.edges.iter().map(|((from, to), seen)| {
                let test = if seen.test_only { " (test)" } else { "" };
                format!("{}: {from} -> {to}{test}", level.name("fixture"))
            })
        })
        .collect();
    let expected = [
        "fixture: a -> b",
        "fixture: b -> a",
        "fixture: b -> e",
        "fixture: e -> a",
        "fixture::b: c -> d",
        "fixture::b: d -> c",
    ];
    assert_eq!(found, expected);
}
