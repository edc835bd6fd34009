//! OrbRepo against bare repositories on this machine (file:// URLs and plain paths).

mod common;

use std::fs::Permissions;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use common::{Client, config, write};
use orb_repo::{FileChange, HostKeyPolicy, OrbRepo, RepoError, UpdateOutcome};
use orb_testsupport::bare_repo;

fn open(url: String, client: &Client) -> OrbRepo {
    OrbRepo::open(&config(url, None), client.options(HostKeyPolicy::KnownOnly)).unwrap()
}

fn file_url(p: &Path) -> String {
    format!("file://{}", p.display())
}

#[test]
fn empty_repo_first_commit_creates_main_and_reads_back() {
    let bare = bare_repo();
    let client = Client::new();
    let mut repo = open(file_url(&bare.path), &client);
    assert_eq!(repo.snapshot().head(), None);
    assert_eq!(repo.snapshot().list().unwrap(), Vec::<String>::new());
    assert_eq!(repo.snapshot().read("orbiter.yml").unwrap(), None);
    assert_eq!(repo.branch(), "main");

    let out = repo
        .update("Desired state written", |s| {
            assert_eq!(s.head(), None);
            write("orbiter.yml", "kind: Orb\n")
        })
        .unwrap();
    let UpdateOutcome::Committed { commit, attempts } = out else {
        panic!("expected a commit, got {out:?}")
    };
    assert_eq!(attempts, 1);
    assert_eq!(bare.head().as_deref(), Some(commit.as_str()));
    assert_eq!(bare.git(&["show", "main:orbiter.yml"]), "kind: Orb");
    assert_eq!(
        bare.git(&["log", "-1", "--format=%an <%ae>|%cn <%ce>|%s", "main"]),
        "Orbiter Test <orbiter-test@example.org>|Orbiter Test <orbiter-test@example.org>|Desired state written"
    );
    let snap = repo.snapshot();
    assert_eq!(snap.head(), Some(commit.as_str()));
    assert_eq!(snap.read("orbiter.yml").unwrap().unwrap(), b"kind: Orb\n");
    assert_eq!(snap.list().unwrap(), vec!["orbiter.yml".to_owned()]);
}

#[test]
fn equal_content_is_unchanged_and_makes_no_commit() {
    let bare = bare_repo();
    let client = Client::new();
    let mut repo = open(file_url(&bare.path), &client);
    repo.update("first", |_| write("a/b.yml", "x: 1\n"))
        .unwrap();
    let before = bare.head();
    for changes in [
        vec![FileChange::write("a/b.yml", "x: 1\n")],
        vec![],
        vec![FileChange::delete("does/not/exist")],
    ] {
        let out = repo.update("again", |_| Ok(changes.clone())).unwrap();
        assert_eq!(out, UpdateOutcome::Unchanged, "{changes:?}");
    }
    assert_eq!(bare.head(), before);
    assert_eq!(bare.git(&["rev-list", "--count", "main"]), "1");
}

#[test]
fn deletes_and_binary_content() {
    let bare = bare_repo();
    let client = Client::new();
    let mut repo = open(file_url(&bare.path), &client);
    let binary: Vec<u8> = (0..=255u8).chain([0, 0, 10, 13]).collect();
    repo.update("two files", |_| {
        Ok(vec![
            FileChange::write("keep.bin", binary.clone()),
            FileChange::write("dir/gone.yml", "bye\n"),
        ])
    })
    .unwrap();
    repo.update("delete one", |_| {
        Ok(vec![FileChange::delete("dir/gone.yml")])
    })
    .unwrap();
    let snap = repo.snapshot();
    assert_eq!(snap.list().unwrap(), vec!["keep.bin".to_owned()]);
    assert_eq!(snap.read("keep.bin").unwrap().unwrap(), binary);
    assert_eq!(snap.read("dir/gone.yml").unwrap(), None);
}

#[test]
fn plain_absolute_and_relative_paths_work() {
    let bare = bare_repo();
    let client = Client::new();
    let mut repo = open(bare.path.display().to_string(), &client);
    repo.update("via absolute path", |_| write("f", "1"))
        .unwrap();

    let rel = relative_to_cwd(&bare.path);
    assert!(rel.starts_with("./") || rel.starts_with("../"), "{rel}");
    let client2 = Client::new();
    let repo2 = open(rel, &client2);
    assert_eq!(repo2.snapshot().read("f").unwrap().unwrap(), b"1");
}

#[test]
fn persistent_clone_is_reused_and_fetch_sees_other_writers() {
    let bare = bare_repo();
    let client = Client::new();
    let other_client = Client::new();
    let url = file_url(&bare.path);
    let mut repo = open(url.clone(), &client);
    let mut other = open(url.clone(), &other_client);
    other.update("by other", |_| write("x", "1")).unwrap();

    // The snapshot is what was fetched; fetch() brings the new commit in.
    assert_eq!(repo.snapshot().read("x").unwrap(), None);
    repo.fetch().unwrap();
    assert_eq!(repo.snapshot().read("x").unwrap().unwrap(), b"1");
    drop(repo);

    // Reopening reuses the clone directory.
    let clones: Vec<_> = std::fs::read_dir(client.dir.path().join("repos"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    let repo = open(url, &client);
    let clones_after: Vec<_> = std::fs::read_dir(client.dir.path().join("repos"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(clones, clones_after);
    assert!(clones.iter().any(|c| c.ends_with(".lock")), "{clones:?}");
    assert_eq!(repo.snapshot().read("x").unwrap().unwrap(), b"1");
}

#[test]
fn lost_race_rederives_on_the_new_head() {
    let bare = bare_repo();
    let (c1, c2) = (Client::new(), Client::new());
    let url = file_url(&bare.path);
    let mut repo = open(url.clone(), &c1);
    let mut other = open(url, &c2);
    repo.update("seed", |_| write("counter", "0")).unwrap();

    let mut seen = Vec::new();
    let out = repo
        .update("increment", |snap| {
            let current: u32 = String::from_utf8(snap.read("counter")?.unwrap())?.parse()?;
            seen.push(current);
            if seen.len() == 1 {
                // Someone else increments between our fetch and our push.
                other
                    .update("other increment", |s| {
                        let n: u32 = String::from_utf8(s.read("counter")?.unwrap())?.parse()?;
                        write("counter", &(n + 1).to_string())
                    })
                    .unwrap();
            }
            write("counter", &(current + 1).to_string())
        })
        .unwrap();
    assert!(
        matches!(out, UpdateOutcome::Committed { attempts: 2, .. }),
        "{out:?}"
    );
    assert_eq!(seen, vec![0, 1], "derive must run again on the new head");
    assert_eq!(bare.git(&["show", "main:counter"]), "2");
    assert_eq!(bare.git(&["rev-list", "--merges", "main"]), "");
    assert_eq!(bare.git(&["rev-list", "--count", "main"]), "3");
}

#[test]
fn push_race_is_bounded_and_never_overwrites() {
    let bare = bare_repo();
    let (c1, c2) = (Client::new(), Client::new());
    let url = file_url(&bare.path);
    let mut opts = c1.options(HostKeyPolicy::KnownOnly);
    opts.max_push_attempts = 3;
    let mut repo = OrbRepo::open(&config(url.clone(), None), opts).unwrap();
    let mut other = open(url, &c2);
    let mut calls = 0;
    let err = repo
        .update("mine", |_| {
            calls += 1;
            // Every attempt, someone else wins the race.
            other
                .update(&format!("theirs {calls}"), |_| {
                    write(&format!("theirs-{calls}"), "t")
                })
                .unwrap();
            write("mine", "m")
        })
        .unwrap_err();
    assert!(matches!(err, RepoError::PushRace { attempts: 3 }), "{err}");
    assert!(err.to_string().contains("3 push attempts"), "{err}");
    assert_eq!(calls, 3);
    let files = bare.git(&["ls-tree", "--name-only", "main"]);
    assert_eq!(files, "theirs-1\ntheirs-2\ntheirs-3");
    assert_eq!(bare.git(&["rev-list", "--count", "main"]), "3");
}

#[test]
fn derive_errors_and_bad_paths_commit_nothing() {
    let bare = bare_repo();
    let client = Client::new();
    let mut repo = open(file_url(&bare.path), &client);
    repo.update("seed", |_| write("dir/file", "1")).unwrap();
    let head = bare.head();

    let err = repo
        .update("fails", |_| {
            Err("model is invalid at orbiter.yml:3:1".into())
        })
        .unwrap_err();
    assert!(err.to_string().contains("orbiter.yml:3:1"), "{err}");

    for (path, reason) in [
        ("../escape", "'..'"),
        ("/abs", "relative"),
        (".git/config", ".git"),
        ("dir", "is a directory"),
        ("dir/file/x", "parent \"dir/file\" is a file"),
    ] {
        let err = repo.update("bad", |_| write(path, "x")).unwrap_err();
        assert!(
            matches!(err, RepoError::InvalidPath { .. }),
            "{path}: {err}"
        );
        let msg = err.to_string();
        assert!(msg.contains(path) && msg.contains(reason), "{path}: {msg}");
    }
    let err = repo.update("  ", |_| write("a", "b")).unwrap_err();
    assert!(err.to_string().contains("commit message"), "{err}");
    assert_eq!(bare.head(), head);

    let err = repo.snapshot().read("dir").unwrap_err().to_string();
    assert!(err.contains("\"dir\"") && err.contains("tree"), "{err}");
}

#[test]
fn check_access_leaves_no_refs_behind() {
    let bare = bare_repo();
    let client = Client::new();
    let mut repo = open(file_url(&bare.path), &client);
    repo.check_access().unwrap(); // empty repository
    assert_eq!(bare.head(), None);
    repo.update("seed", |_| write("f", "1")).unwrap();
    repo.check_access().unwrap();
    assert_eq!(bare.git(&["for-each-ref", "refs/orbiter"]), "");
    assert_eq!(
        bare.git(&["for-each-ref", "--format=%(refname)"]),
        "refs/heads/main"
    );
}

#[test]
fn check_access_reports_a_read_only_repository() {
    let bare = bare_repo();
    let client = Client::new();
    let mut repo = open(file_url(&bare.path), &client);
    // The server refuses every ref update, like a read-only deploy key.
    let hook = bare.path.join("hooks/pre-receive");
    std::fs::write(
        &hook,
        "#!/bin/sh\necho 'read-only deploy key' >&2\nexit 1\n",
    )
    .unwrap();
    std::fs::set_permissions(&hook, Permissions::from_mode(0o755)).unwrap();
    let err = repo.check_access().unwrap_err().to_string();
    assert!(
        err.contains("write access check") && err.contains("read-only deploy key"),
        "{err}"
    );
}

#[test]
fn log_lists_newest_first() {
    let bare = bare_repo();
    let client = Client::new();
    let mut repo = open(file_url(&bare.path), &client);
    assert!(repo.log(5).unwrap().is_empty());
    repo.update("first\n\nwith body", |_| write("a", "1"))
        .unwrap();
    repo.update("second", |_| write("a", "2")).unwrap();
    let log = repo.log(10).unwrap();
    assert_eq!(log.len(), 2);
    assert_eq!(log[0].message, "second");
    assert_eq!(log[1].message, "first\n\nwith body");
    assert_eq!(log[0].author, "Orbiter Test <orbiter-test@example.org>");
    assert_eq!(Some(log[0].id.as_str()), bare.head().as_deref());
    assert!(log[0].date > 1_600_000_000);
    assert_eq!(repo.log(1).unwrap().len(), 1);
}

#[test]
fn missing_repository_fails_with_hint() {
    let client = Client::new();
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.git");
    let err = OrbRepo::open(
        &config(file_url(&missing), None),
        client.options(HostKeyPolicy::KnownOnly),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("nope.git"), "{err}");
    assert!(err.contains("hint: check the repository URL"), "{err}");
}

/// `path` relative to the test's working directory (`./…` or `../…`).
fn relative_to_cwd(path: &Path) -> String {
    let cwd = std::env::current_dir().unwrap();
    let ups = cwd
        .components()
        .filter(|c| matches!(c, Component::Normal(_)))
        .count();
    let mut rel = PathBuf::new();
    for _ in 0..ups {
        rel.push("..");
    }
    rel.push(path.strip_prefix("/").unwrap());
    rel.display().to_string()
}

#[test]
fn a_force_pushed_history_is_refused_until_a_person_accepts_it() {
    let bare = bare_repo();
    let client = Client::new();
    let mut repo = open(file_url(&bare.path), &client);
    repo.update("one", |_| write("orbiter.yml", "a: 1\n"))
        .unwrap();
    repo.update("two", |_| write("orbiter.yml", "a: 2\n"))
        .unwrap();
    let seen = bare.head().unwrap();
    // Someone rewrites main: one commit back, and another commit on top of that.
    bare.git(&["update-ref", "refs/heads/main", "main~1"]);
    let other_client = Client::new();
    let mut other = open(file_url(&bare.path), &other_client);
    other
        .update("rewritten", |_| write("orbiter.yml", "a: evil\n"))
        .unwrap();
    let rewritten = bare.head().unwrap();

    let e = repo.fetch().unwrap_err();
    assert!(
        matches!(&e, RepoError::HistoryRewritten { seen: s, new, .. } if *s == seen && *new == rewritten),
        "{e:?}"
    );
    assert!(e.to_string().contains("orbctl repo accept-history"), "{e}");
    // Nothing of the rewritten history is read meanwhile.
    assert_eq!(repo.snapshot().head(), Some(seen.as_str()));
    assert_eq!(
        repo.snapshot().read("orbiter.yml").unwrap().unwrap(),
        b"a: 2\n"
    );
    // A write refuses too: it fetches first.
    assert!(matches!(
        repo.update("on top", |_| write("x", "1")),
        Err(RepoError::HistoryRewritten { .. })
    ));
    let (before, now) = repo.accept_history().unwrap();
    assert_eq!(
        (before.as_deref(), now.as_deref()),
        (Some(seen.as_str()), Some(rewritten.as_str()))
    );
    repo.fetch().unwrap();
    assert_eq!(
        repo.snapshot().read("orbiter.yml").unwrap().unwrap(),
        b"a: evil\n"
    );
}
