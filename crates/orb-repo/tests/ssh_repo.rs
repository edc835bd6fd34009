//! OrbRepo over SSH against a real sshd on loopback: host keys are pinned on first contact
//! only when accepted, and a changed host key stops everything.

mod common;

use common::{Client, config, write};
use orb_repo::{HostKeyPolicy, OrbRepo, RepoError, UpdateOutcome};
use orb_testsupport::{Sshd, bare_repo, keypair};

#[test]
fn unknown_host_is_refused_without_a_policy_that_trusts_it() {
    let (private, public) = keypair();
    let sshd = Sshd::start(&public);
    let bare = bare_repo();
    let client = Client::new();
    let cfg = config(sshd.url(&bare.path), Some(&private));

    let err = OrbRepo::open(&cfg, client.options(HostKeyPolicy::KnownOnly)).unwrap_err();
    let RepoError::HostKeyUnknown { host, fingerprints } = &err else {
        panic!("expected HostKeyUnknown, got {err}");
    };
    assert_eq!(host, &format!("[127.0.0.1]:{}", sshd.port));
    let fp = sshd.host_key_fingerprint();
    assert!(
        fingerprints.iter().any(|f| f.starts_with(&fp)),
        "{fingerprints:?} vs {fp}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains(&fp) && msg.contains("--accept-host-key"),
        "{msg}"
    );
    assert!(!msg.contains("PRIVATE KEY"), "{msg}");
    // Prompt without a terminal (cargo test) refuses as well.
    let err = OrbRepo::open(&cfg, client.options(HostKeyPolicy::Prompt)).unwrap_err();
    assert!(matches!(err, RepoError::HostKeyUnknown { .. }), "{err}");
    assert!(!client.known_hosts().exists(), "nothing may be recorded");

    let err = OrbRepo::open(
        &cfg,
        client.options(HostKeyPolicy::Accept(
            "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".to_owned(),
        )),
    )
    .unwrap_err();
    assert!(matches!(err, RepoError::HostKeyMismatch { .. }), "{err}");
    assert!(err.to_string().contains(&fp), "{err}");
    assert!(!client.known_hosts().exists(), "nothing may be recorded");
    assert_eq!(bare.head(), None);
}

#[test]
fn accepted_host_key_is_pinned_and_git_works_over_ssh() {
    let (private, public) = keypair();
    let sshd = Sshd::start(&public);
    let bare = bare_repo();
    let client = Client::new();
    let cfg = config(sshd.url(&bare.path), Some(&private));

    let mut repo = OrbRepo::open(
        &cfg,
        client.options(HostKeyPolicy::Accept(sshd.host_key_fingerprint())),
    )
    .unwrap();
    let known = std::fs::read_to_string(client.known_hosts()).unwrap();
    assert!(
        known.starts_with(&format!("[127.0.0.1]:{} ssh-ed25519 ", sshd.port)),
        "{known}"
    );
    let out = repo
        .update("over ssh", |_| write("orbiter.yml", "kind: Orb\n"))
        .unwrap();
    assert!(
        matches!(out, UpdateOutcome::Committed { attempts: 1, .. }),
        "{out:?}"
    );
    assert_eq!(bare.git(&["show", "main:orbiter.yml"]), "kind: Orb");
    repo.check_access().unwrap();
    assert_eq!(bare.git(&["for-each-ref", "refs/orbiter"]), "");
    drop(repo);

    // Later runs need no policy: the key is known now. The clone is reused.
    let repo = OrbRepo::open(&cfg, client.options(HostKeyPolicy::KnownOnly)).unwrap();
    assert_eq!(
        repo.snapshot().read("orbiter.yml").unwrap().unwrap(),
        b"kind: Orb\n"
    );
    assert_eq!(
        std::fs::read_to_string(client.known_hosts()).unwrap(),
        known
    );
}

#[test]
fn changed_host_key_is_refused_and_nothing_is_pushed() {
    let (private, public) = keypair();
    let mut sshd = Sshd::start(&public);
    let bare = bare_repo();
    let client = Client::new();
    let cfg = config(sshd.url(&bare.path), Some(&private));
    let mut repo = OrbRepo::open(
        &cfg,
        client.options(HostKeyPolicy::Accept(sshd.host_key_fingerprint())),
    )
    .unwrap();
    repo.update("before", |_| write("a", "1")).unwrap();
    let head = bare.head();

    sshd.restart_with_new_host_key();

    // The open handle stops at its next contact with the server.
    let mut derive_calls = 0;
    let err = repo
        .update("after", |_| {
            derive_calls += 1;
            write("a", "2")
        })
        .unwrap_err();
    assert_changed(&err, &sshd, &client);
    assert_eq!(
        derive_calls, 0,
        "nothing may be derived from an unverified server"
    );
    assert!(matches!(
        repo.fetch(),
        Err(RepoError::HostKeyChanged { .. })
    ));
    assert!(matches!(
        repo.check_access(),
        Err(RepoError::HostKeyChanged { .. })
    ));

    // Opening again is refused too, even when the new fingerprint is offered as accepted:
    // replacing a pinned key is a deliberate edit of known_hosts.
    for policy in [
        HostKeyPolicy::KnownOnly,
        HostKeyPolicy::Accept(sshd.host_key_fingerprint()),
    ] {
        let err = OrbRepo::open(&cfg, client.options(policy)).unwrap_err();
        assert_changed(&err, &sshd, &client);
    }
    assert_eq!(bare.head(), head, "nothing may be pushed");
    assert_eq!(bare.git(&["show", "main:a"]), "1");
}

fn assert_changed(err: &RepoError, sshd: &Sshd, client: &Client) {
    let RepoError::HostKeyChanged { host, known_hosts } = err else {
        panic!("expected HostKeyChanged, got {err}");
    };
    assert_eq!(host, &format!("[127.0.0.1]:{}", sshd.port));
    assert_eq!(known_hosts, &client.known_hosts());
    let msg = err.to_string();
    assert!(msg.contains("host key of [127.0.0.1]:"), "{msg}");
    assert!(msg.contains("changed"), "{msg}");
    assert!(msg.contains("remove its line from"), "{msg}");
    assert!(
        msg.contains(&client.known_hosts().display().to_string()),
        "{msg}"
    );
}

#[test]
fn a_key_the_server_does_not_authorize_is_reported_with_a_hint() {
    let (_, authorized) = keypair();
    let (other_private, _) = keypair();
    let sshd = Sshd::start(&authorized);
    let bare = bare_repo();
    let client = Client::new();
    let cfg = config(sshd.url(&bare.path), Some(&other_private));
    let err = OrbRepo::open(
        &cfg,
        client.options(HostKeyPolicy::Accept(sshd.host_key_fingerprint())),
    )
    .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("Permission denied"), "{msg}");
    assert!(
        msg.contains("hint: the server refused the repo key"),
        "{msg}"
    );
    assert!(!msg.contains("PRIVATE KEY"), "{msg}");
}

#[test]
fn ssh_url_without_repokey_is_refused_before_connecting() {
    let bare = bare_repo();
    let client = Client::new();
    let cfg = config(
        format!("ssh://root@127.0.0.1:1{}", bare.path.display()),
        None,
    );
    let err = OrbRepo::open(&cfg, client.options(HostKeyPolicy::KnownOnly)).unwrap_err();
    assert!(err.to_string().contains("repokey"), "{err}");
}
