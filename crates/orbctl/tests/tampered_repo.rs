//! A repository rewritten or cut down behind Orbiter's back: a missing `orbiter/hostkeys.yml`
//! or `orbiter/secrets.yml` while machines are managed stops it with an error that says how to
//! restore the file; it never pins machines again or makes a new maintenance key on its own.

mod common;

use common::e2e::node_agent_binary;
use common::*;

/// Two Static machines on loopback addresses where nothing listens (observation fails fast),
/// and records that say Orbiter managed them.
fn managed_orb() -> (Person, orb_testsupport::BareRepo) {
    let (p, repo) = orb_with_example();
    let yaml = "kind: Orb
version: v1
providers:
  lab:
    kind: StaticProvider
    version: v1
    spec:
      pools:
        machines:
          - {id: s1, hostname: s1, ip: 127.0.0.2}
          - {id: s2, hostname: s2, ip: 127.0.0.3}
";
    human_commit(&repo.path, "orbiter.yml", yaml, "Two machines");
    let record = "kind: NodeDesired\nversion: v1\ngeneration: 3\nchangesallowed: true\nitems: []\n";
    human_commit(
        &repo.path,
        "orbiter/nodes/lab.s1/desired.yml",
        record,
        "as Orbiter wrote it",
    );
    (p, repo)
}

fn plan(p: &Person) -> (bool, String) {
    let out = p
        .cmd(&["plan"])
        .env("ORBITER_NODE_AGENT", node_agent_binary())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn a_missing_hostkeys_file_is_an_error_not_a_reason_to_pin_again() {
    let (p, repo) = managed_orb();
    let before = commit_count(&repo);
    let (ok, text) = plan(&p);
    assert!(!ok, "{text}");
    assert!(
        text.contains("orbiter/hostkeys.yml is missing although Orbiter manages 1 machines")
            && text.contains("restored"),
        "{text}"
    );
    assert_eq!(commit_count(&repo), before, "plan wrote something");
}

#[test]
fn a_missing_secrets_file_is_an_error_not_a_new_maintenance_key() {
    let (p, repo) = managed_orb();
    human_commit(
        &repo.path,
        "orbiter/hostkeys.yml",
        "kind: HostKeys\nversion: v1\nkeys:\n  lab.s1: ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n",
        "pins",
    );
    let (ok, text) = plan(&p);
    assert!(ok, "{text}");
    assert!(!text.contains("generate the maintenance key"), "{text}");
    assert!(
        text.contains("its maintenance key is missing from orbiter/secrets.yml"),
        "{text}"
    );
}
