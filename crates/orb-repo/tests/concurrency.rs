//! Many writers on one repository at once: every write lands, history stays linear, lost
//! races are retried by re-deriving (not by force or merge).

mod common;

use std::sync::{Arc, Barrier};

use common::{Client, config, write};
use orb_repo::{HostKeyPolicy, OrbRepo, UpdateOutcome};
use orb_testsupport::bare_repo;

const WRITERS: usize = 4;
const ROUNDS: usize = 6;

#[test]
fn separate_clones_racing_all_land_linearly() {
    let bare = bare_repo();
    let url = format!("file://{}", bare.path.display());
    let barrier = Arc::new(Barrier::new(WRITERS));
    let handles: Vec<_> = (0..WRITERS)
        .map(|w| {
            let url = url.clone();
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                let client = Client::new();
                let mut opts = client.options(HostKeyPolicy::KnownOnly);
                // Generous but bounded: on 2 cores 4 writers can lose several times in a row.
                opts.max_push_attempts = 40;
                let mut repo = OrbRepo::open(&config(url, None), opts).unwrap();
                let mut attempts = Vec::new();
                let mut failures = Vec::new();
                for round in 0..ROUNDS {
                    // Start every round together so the pushes really race. A failing writer
                    // keeps meeting the barrier so the others cannot hang.
                    barrier.wait();
                    let result = repo.update(&format!("writer {w} round {round}"), |_| {
                        write(
                            &format!("writers/{w}/round-{round}"),
                            &format!("{w}:{round}"),
                        )
                    });
                    match result {
                        Ok(UpdateOutcome::Committed { attempts: a, .. }) => attempts.push(a),
                        other => failures.push(format!("writer {w} round {round}: {other:?}")),
                    }
                }
                assert!(failures.is_empty(), "{failures:#?}");
                attempts
            })
        })
        .collect();
    let attempts: Vec<u32> = handles
        .into_iter()
        .flat_map(|h| h.join().expect("writer thread panicked"))
        .collect();

    let files = bare.git(&["ls-tree", "-r", "--name-only", "main"]);
    for w in 0..WRITERS {
        for round in 0..ROUNDS {
            let path = format!("writers/{w}/round-{round}");
            assert!(files.lines().any(|l| l == path), "{path} missing:\n{files}");
            assert_eq!(
                bare.git(&["show", &format!("main:{path}")]),
                format!("{w}:{round}")
            );
        }
    }
    assert_eq!(
        bare.git(&["rev-list", "--merges", "main"]),
        "",
        "history must be linear"
    );
    assert_eq!(
        bare.git(&["rev-list", "--count", "main"]),
        (WRITERS * ROUNDS).to_string()
    );
    assert!(
        attempts.iter().any(|&a| a > 1),
        "no push race was observed: {attempts:?}"
    );
}

#[test]
fn writers_sharing_one_clone_are_serialized_by_its_lock() {
    let bare = bare_repo();
    let url = format!("file://{}", bare.path.display());
    let client = Client::new();
    let handles: Vec<_> = (0..3)
        .map(|w| {
            let cfg = config(url.clone(), None);
            let opts = client.options(HostKeyPolicy::KnownOnly);
            std::thread::spawn(move || {
                let mut repo = OrbRepo::open(&cfg, opts).unwrap();
                for round in 0..3 {
                    let out = repo
                        .update("shared clone", |_| write(&format!("s/{w}-{round}"), "x"))
                        .unwrap();
                    assert!(matches!(out, UpdateOutcome::Committed { .. }), "{out:?}");
                }
            })
        })
        .collect();
    for h in handles {
        h.join().expect("writer thread panicked");
    }
    assert_eq!(
        bare.git(&["ls-tree", "-r", "--name-only", "main"])
            .lines()
            .count(),
        9
    );
    assert_eq!(bare.git(&["rev-list", "--merges", "main"]), "");
    assert_eq!(bare.git(&["rev-list", "--count", "main"]), "9");
}

#[test]
fn racing_first_commits_into_an_empty_repository() {
    // The branch does not exist yet: losers see "reference already exists" on the server
    // or "fetch first" on their side; both must be retried, not reported.
    for run in 0..4 {
        let bare = bare_repo();
        let url = format!("file://{}", bare.path.display());
        let barrier = Arc::new(Barrier::new(WRITERS));
        let handles: Vec<_> = (0..WRITERS)
            .map(|w| {
                let url = url.clone();
                let barrier = Arc::clone(&barrier);
                std::thread::spawn(move || {
                    let client = Client::new();
                    let mut opts = client.options(HostKeyPolicy::KnownOnly);
                    opts.max_push_attempts = 40;
                    let mut repo = OrbRepo::open(&config(url, None), opts).unwrap();
                    barrier.wait();
                    repo.update("first", |_| write(&format!("w{w}"), "x"))
                })
            })
            .collect();
        for h in handles {
            let out = h.join().expect("writer thread panicked");
            assert!(
                matches!(out, Ok(UpdateOutcome::Committed { .. })),
                "run {run}: {out:?}"
            );
        }
        assert_eq!(
            bare.git(&["rev-list", "--count", "main"]),
            WRITERS.to_string()
        );
        assert_eq!(bare.git(&["rev-list", "--merges", "main"]), "");
    }
}
