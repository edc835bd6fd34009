//! Repository paths and trees: validating paths, reading `git ls-tree -z` output, and
//! turning a list of file changes into `git update-index --index-info` input.

use std::collections::{BTreeMap, BTreeSet};

use crate::error::RepoError;

/// One entry of `git ls-tree` output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TreeEntry {
    pub(crate) mode: String,
    pub(crate) kind: String,
    pub(crate) sha: String,
    pub(crate) path: String,
}

const NULL_SHA: &str = "0000000000000000000000000000000000000000";

/// A path git stores as a file: relative, slash-separated, no empty, `.`, `..` or `.git`
/// components, no control characters.
pub(crate) fn validate_path(path: &str) -> Result<(), RepoError> {
    let bad = |reason: &str| {
        Err(RepoError::InvalidPath {
            path: path.to_owned(),
            reason: reason.to_owned(),
        })
    };
    if path.is_empty() {
        return bad("it is empty");
    }
    if path.starts_with('/') {
        return bad("it must be relative to the repository root (no leading '/')");
    }
    if path.chars().any(char::is_control) {
        return bad("it contains control characters");
    }
    for part in path.split('/') {
        match part {
            "" => return bad("it has an empty component ('//' or a trailing '/')"),
            "." | ".." => return bad("'.' and '..' components are not allowed"),
            p if p.eq_ignore_ascii_case(".git") => return bad("'.git' is reserved by git"),
            _ => {}
        }
    }
    Ok(())
}

/// Parses `git ls-tree -z` (without `--name-only`) output.
pub(crate) fn parse_ls_tree(out: &[u8]) -> Result<Vec<TreeEntry>, RepoError> {
    let text = String::from_utf8_lossy(out);
    let mut entries = Vec::new();
    for record in text.split('\0').filter(|r| !r.is_empty()) {
        let parsed = record.split_once('\t').and_then(|(meta, path)| {
            let mut m = meta.split(' ');
            Some(TreeEntry {
                mode: m.next()?.to_owned(),
                kind: m.next()?.to_owned(),
                sha: m.next()?.to_owned(),
                path: path.to_owned(),
            })
        });
        match parsed {
            Some(e) => entries.push(e),
            None => {
                return Err(RepoError::Git {
                    op: "ls-tree".to_owned(),
                    stderr: format!("unexpected output line {record:?}"),
                });
            }
        }
    }
    Ok(entries)
}

/// Computes the `update-index -z --index-info` input that applies `changes` (path → new
/// blob id, `None` = delete; later changes to a path win) on top of the tree `entries`
/// (from `ls-tree -r`). `None` when nothing would change. Refuses changes that would turn a
/// file into a directory or back, because git would silently drop the other side's files.
pub(crate) fn plan(
    entries: &[TreeEntry],
    changes: &[(String, Option<String>)],
) -> Result<Option<Vec<u8>>, RepoError> {
    let current: BTreeMap<&str, &TreeEntry> =
        entries.iter().map(|e| (e.path.as_str(), e)).collect();
    let mut wanted: BTreeMap<&str, Option<&str>> = BTreeMap::new();
    for (path, blob) in changes {
        wanted.insert(path.as_str(), blob.as_deref());
    }
    let mut files: BTreeSet<&str> = current.keys().copied().collect();
    for (path, blob) in &wanted {
        match blob {
            Some(_) => files.insert(path),
            None => files.remove(path),
        };
    }
    let mut info = Vec::new();
    for (path, blob) in &wanted {
        let prefix = format!("{path}/");
        let is_dir = files
            .range::<&str, _>(prefix.as_str()..)
            .next()
            .is_some_and(|f| f.starts_with(&prefix));
        match (blob, current.get(path)) {
            (None, None) if is_dir => {
                return Err(RepoError::InvalidPath {
                    path: (*path).to_owned(),
                    reason: "it is a directory; delete the files in it one by one".to_owned(),
                });
            }
            (None, None) => {}
            (None, Some(_)) => info.extend_from_slice(format!("0 {NULL_SHA}\t{path}\0").as_bytes()),
            (Some(blob), existing) => {
                if is_dir {
                    return Err(RepoError::InvalidPath {
                        path: (*path).to_owned(),
                        reason: "it is a directory in the repository; a file cannot replace it"
                            .to_owned(),
                    });
                }
                if let Some(parent) = ancestors(path).find(|a| files.contains(a)) {
                    return Err(RepoError::InvalidPath {
                        path: (*path).to_owned(),
                        reason: format!("its parent {parent:?} is a file"),
                    });
                }
                let mode = match existing {
                    Some(e) if e.kind == "blob" && e.sha == *blob && e.mode != "120000" => continue,
                    Some(e) if e.mode == "100755" => "100755",
                    _ => "100644",
                };
                info.extend_from_slice(format!("{mode} {blob}\t{path}\0").as_bytes());
            }
        }
    }
    Ok((!info.is_empty()).then_some(info))
}

/// `a/b/c` → `a`, `a/b`.
fn ancestors(path: &str) -> impl Iterator<Item = &str> {
    path.match_indices('/').map(move |(i, _)| &path[..i])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(path: &str, sha: &str) -> TreeEntry {
        TreeEntry {
            mode: "100644".into(),
            kind: "blob".into(),
            sha: sha.into(),
            path: path.into(),
        }
    }

    fn change(path: &str, blob: Option<&str>) -> (String, Option<String>) {
        (path.to_owned(), blob.map(str::to_owned))
    }

    #[test]
    fn path_rules() {
        for ok in [
            "orbiter.yml",
            "caos-internal/orbiter/current.yml",
            ".gitignore",
            "a b",
        ] {
            validate_path(ok).unwrap();
        }
        for (bad, why) in [
            ("", "empty"),
            ("/abs", "relative"),
            ("a//b", "empty component"),
            ("a/", "empty component"),
            ("../x", "'..'"),
            ("./x", "'.'"),
            (".git/config", ".git"),
            ("a/.GIT/x", ".git"),
            ("a\nb", "control"),
        ] {
            let err = validate_path(bad).unwrap_err().to_string();
            assert!(
                err.contains(why) && err.contains(&format!("{bad:?}")),
                "{bad:?}: {err}"
            );
        }
    }

    #[test]
    fn ls_tree_parsing() {
        let out = b"100644 blob aaaa\tx y.yml\x00100755 blob bbbb\tbin/run\x00";
        let e = parse_ls_tree(out).unwrap();
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].path, "x y.yml");
        assert_eq!(e[1].mode, "100755");
        assert!(parse_ls_tree(b"garbage\0").is_err());
    }

    #[test]
    fn unchanged_content_plans_nothing() {
        let entries = [entry("a", "1111"), entry("d/b", "2222")];
        assert_eq!(plan(&entries, &[]).unwrap(), None);
        assert_eq!(plan(&entries, &[change("a", Some("1111"))]).unwrap(), None);
        assert_eq!(plan(&entries, &[change("gone", None)]).unwrap(), None);
    }

    #[test]
    fn writes_and_deletes() {
        let mut exec = entry("run", "3333");
        exec.mode = "100755".into();
        let entries = [entry("a", "1111"), exec];
        let info = plan(
            &entries,
            &[
                change("a", None),
                change("run", Some("4444")),
                change("n/x", Some("5555")),
            ],
        )
        .unwrap()
        .unwrap();
        let info = String::from_utf8(info).unwrap();
        assert_eq!(
            info,
            format!("0 {NULL_SHA}\ta\x00100644 5555\tn/x\x00100755 4444\trun\x00")
        );
        // Later change to the same path wins.
        let info = plan(
            &entries,
            &[change("a", Some("9")), change("a", Some("1111"))],
        )
        .unwrap();
        assert_eq!(info, None);
    }

    #[test]
    fn file_directory_conflicts_are_refused() {
        let entries = [entry("a", "1111"), entry("d/b", "2222")];
        let err = plan(&entries, &[change("a/x", Some("3"))])
            .unwrap_err()
            .to_string();
        assert!(err.contains("parent \"a\" is a file"), "{err}");
        let err = plan(&entries, &[change("d", Some("3"))])
            .unwrap_err()
            .to_string();
        assert!(err.contains("is a directory"), "{err}");
        let err = plan(&entries, &[change("d", None)])
            .unwrap_err()
            .to_string();
        assert!(err.contains("is a directory"), "{err}");
        // Replacing the directory's only file by a file of the same name is fine.
        plan(&entries, &[change("d/b", None), change("d", Some("3"))])
            .unwrap()
            .unwrap();
    }
}
