//! The repository over real SSH (deploy key, pinned host key), and the file commands.

mod common;

use common::*;
use orb_testsupport::orbos::OrbosOrb;
use orb_testsupport::{Sshd, bare_repo, keypair};

#[test]
fn ssh_repository_with_pinned_host_key_and_changed_key_refused() {
    let (private, public) = keypair();
    let mut sshd = Sshd::start(&public);
    let repo = bare_repo();
    let p = Person::new();
    let keyfile = p.home.path().join("deploy-key");
    std::fs::write(&keyfile, &private).unwrap();
    let url = sshd.url(&repo.path);

    // Unknown host without a terminal or fingerprint: refused, fingerprint shown.
    let err = p.fails(&[
        "configure",
        "--repourl",
        &url,
        "--repokey-file",
        keyfile.to_str().unwrap(),
    ]);
    assert!(err.contains(&sshd.host_key_fingerprint()), "{err}");
    assert_eq!(repo.head(), None, "something was pushed");

    let fp = sshd.host_key_fingerprint();
    p.ok(&[
        "configure",
        "--repourl",
        &url,
        "--repokey-file",
        keyfile.to_str().unwrap(),
        "--accept-host-key",
        &fp,
    ]);
    let config = std::fs::read_to_string(&p.config).unwrap();
    assert!(config.contains("repokey"), "deploy key kept in the config");
    human_commit(&repo.path, "orbiter.yml", EXAMPLE, "Describe the lab");
    p.ok(&[
        "writesecret",
        "lab.bootstrapkeypublic",
        "--value",
        "over ssh",
    ]);
    assert_eq!(p.ok(&["readsecret", "lab.bootstrapkeypublic"]), "over ssh");

    sshd.restart_with_new_host_key();
    let before = repo.head();
    let err = p.fails(&[
        "writesecret",
        "lab.bootstrapkeypublic",
        "--value",
        "must not arrive",
    ]);
    assert!(err.contains("host key") && err.contains("changed"), "{err}");
    assert_eq!(repo.head(), before, "pushed despite a changed host key");
}

#[test]
fn file_print_patch_remove_and_validation_before_push() {
    let (p, repo) = orb_with_example();
    assert_eq!(p.ok(&["file", "print", "orbiter.yml"]), EXAMPLE);

    p.ok(&[
        "file",
        "patch",
        "orbiter.yml",
        "providers.lab.spec.pools.workers.1.ip",
        "--value",
        "10.17.0.23",
    ]);
    assert!(read_from(&repo.path, "orbiter.yml").contains("10.17.0.23"));
    assert_eq!(
        repo.git(&["log", "-1", "--format=%s"]),
        "Set providers.lab.spec.pools.workers.1.ip in orbiter.yml"
    );

    // An invalid value names its place and nothing is pushed.
    let before = commit_count(&repo);
    let err = p.fails(&[
        "file",
        "patch",
        "orbiter.yml",
        "providers.lab.spec.pools.workers.1.ip",
        "--value",
        "10.17.0.300",
    ]);
    assert!(
        err.contains("orbiter.yml:") && err.to_lowercase().contains("ip"),
        "{err}"
    );
    let err = p.fails(&[
        "file",
        "patch",
        "orbiter.yml",
        "clusters.kv.spec.nodes",
        "--value",
        "2",
    ]);
    assert!(err.contains("odd"), "{err}");
    // Secrets are not written through patch.
    p.ok(&["writesecret", "lab.bootstrapkeypublic", "--value", "k"]);
    let before_secret = commit_count(&repo);
    let err = p.fails(&[
        "file",
        "patch",
        "orbiter.yml",
        "providers.lab.spec.keys.bootstrapkeypublic.value",
        "--value",
        "AAAA",
    ]);
    assert!(err.contains("writesecret"), "{err}");
    assert_eq!(commit_count(&repo), before_secret);
    assert_eq!(before + 1, before_secret);

    // Patching to the same value makes no commit.
    p.ok(&[
        "file",
        "patch",
        "orbiter.yml",
        "providers.lab.spec.pools.workers.1.ip",
        "--value",
        "10.17.0.23",
    ]);
    assert_eq!(commit_count(&repo), before_secret);

    // Other files: any path, YAML checked by extension.
    p.ok(&[
        "file",
        "patch",
        "notes/extra.yml",
        "owner.team",
        "--value",
        "platform",
    ]);
    assert_eq!(
        p.ok(&["file", "print", "notes/extra.yml"]),
        "owner:\n  team: platform\n"
    );
    p.ok(&["file", "remove", "notes/extra.yml"]);
    let err = p.fails(&["file", "print", "notes/extra.yml"]);
    assert!(err.contains("does not exist"), "{err}");
    let err = p.fails(&["file", "remove", "keyring.yml"]);
    assert!(err.contains("unreadable"), "{err}");
    let err = p.fails(&["file", "print", "../etc/passwd"]);
    assert!(err.contains("not a repository path"), "{err}");
}

#[test]
fn validate_local_file_and_repository() {
    let (p, _repo) = orb_with_example();
    assert!(
        p.ok(&["validate"])
            .contains("valid (1 providers, 1 clusters, 3 machines)")
    );
    let bad = p.home.path().join("orbiter.yml");
    std::fs::write(&bad, EXAMPLE.replace("pool: workers", "pool: workrs")).unwrap();
    let err = p.fails(&["validate", bad.to_str().unwrap()]);
    let line = EXAMPLE
        .lines()
        .position(|l| l.contains("pool: workers"))
        .unwrap()
        + 1;
    assert!(
        err.contains(&format!(
            "{}:{line}:13: provider `lab` has no pool `workrs`",
            bad.display()
        )),
        "{err}"
    );
    assert!(err.contains("did you mean `workers`?"), "{err}");
}

#[test]
fn import_orbos_reencrypts_secrets_into_a_new_orb() {
    let orbos = OrbosOrb::new();
    let fixtures = orbos.dir().display();
    let repo = bare_repo();
    let p = Person::new();
    p.ok(&[
        "configure",
        "--repourl",
        &format!("file://{}", repo.path.display()),
    ]);
    let out = p.run(&[
        "import-orbos",
        &format!("{fixtures}/orbiter.yml"),
        "--orbos-masterkey-file",
        &format!("{fixtures}/masterkey"),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("cluster `k8s`"), "{stderr}");
    let imported = read_from(&repo.path, "orbiter.yml");
    assert!(
        imported.contains("kind: StaticProvider") && imported.contains("version: v1"),
        "{imported}"
    );
    assert!(!imported.contains("AES256"));
    let expected = std::fs::read(format!("{fixtures}/expected-bootstrapkeyprivate")).unwrap();
    let out = p.run(&["readsecret", "kvm.bootstrapkeyprivate"]);
    assert_eq!(out.stdout, expected);
    // A second import would overwrite people's work: refused.
    let err = p.fails(&[
        "import-orbos",
        &format!("{fixtures}/orbiter.yml"),
        "--orbos-masterkey-file",
        &format!("{fixtures}/masterkey"),
    ]);
    assert!(err.contains("already has an orbiter.yml"), "{err}");
}
