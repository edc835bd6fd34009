//! Secrets through the real binary on a real repository: round trips, no-op writes, bad paths,
//! tampering, moved ciphertexts, wrong masterkeys, rotation, concurrent writers, and the
//! secrets Orbiter generated (readable, listed, never written; internal ones never printed).

mod common;

use common::*;
use orb_repo::OrbConfig;
use orb_secrets::{Keyring, Masterkey, SecretKey};
use orbiter::state::{self, GeneratedSecrets};

#[test]
fn configure_writes_private_config_and_keyring_without_printing_the_masterkey() {
    let repo = orb_testsupport::bare_repo();
    let p = Person::new();
    let out = p.run(&[
        "configure",
        "--repourl",
        &format!("file://{}", repo.path.display()),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&p.config).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let config = std::fs::read_to_string(&p.config).unwrap();
    let mk = config
        .lines()
        .find_map(|l| l.strip_prefix("masterkey: "))
        .unwrap()
        .trim_matches(|c| c == '"' || c == '\'');
    assert!(mk.len() >= 32, "generated masterkey too short");
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!all.contains(mk), "the masterkey was printed");
    assert!(read_from(&repo.path, "keyring.yml").contains("argon2id"));
    // No temporary access-check ref is left behind.
    assert_eq!(
        repo.git(&["for-each-ref", "--format=%(refname)"]),
        "refs/heads/main"
    );
    // Configuring again changes nothing.
    let before = commit_count(&repo);
    p.ok(&[
        "configure",
        "--repourl",
        &format!("file://{}", repo.path.display()),
    ]);
    assert_eq!(commit_count(&repo), before);
}

#[test]
fn write_read_round_trip_and_unchanged_value_makes_no_commit() {
    let (p, repo) = orb_with_example();
    let value = b"-----BEGIN KEY-----\n\x00\xffbinary\n";
    let out = p.with_stdin(
        &["writesecret", "lab.bootstrapkeyprivate", "--stdin"],
        value,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let after_write = commit_count(&repo);
    let out = p.run(&["readsecret", "lab.bootstrapkeyprivate"]);
    assert!(out.status.success());
    assert_eq!(out.stdout, value);
    let text = read_from(&repo.path, "orbiter.yml");
    assert!(!text.contains("BEGIN KEY"), "plaintext in git");
    assert!(text.contains("path: lab.bootstrapkeyprivate"));
    let out = p.with_stdin(
        &["writesecret", "lab.bootstrapkeyprivate", "--stdin"],
        value,
    );
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unchanged"));
    assert_eq!(
        commit_count(&repo),
        after_write,
        "an unchanged value made a commit"
    );
    let list = p.ok(&["secrets", "list"]);
    assert!(
        list.contains("lab.bootstrapkeyprivate") && list.contains(" set"),
        "{list}"
    );
    assert!(
        list.contains("lab.maintenancekeyprivate") && list.contains("unset"),
        "{list}"
    );
    let log = repo.git(&["log", "-1", "--format=%an|%s"]);
    assert_eq!(log, "Test Person|Secret lab.bootstrapkeyprivate written");
}

#[test]
fn wrong_path_lists_valid_paths() {
    let (p, repo) = orb_with_example();
    let before = commit_count(&repo);
    let err = p.fails(&["writesecret", "lab.bootstrapkey", "--value", "x"]);
    assert!(err.contains("no secret at `lab.bootstrapkey`"), "{err}");
    assert!(
        err.contains("lab.bootstrapkeyprivate, lab.bootstrapkeypublic"),
        "{err}"
    );
    assert_eq!(commit_count(&repo), before);
}

#[test]
fn tampered_moved_and_wrong_key_are_three_distinct_errors_and_push_nothing() {
    let (p, repo) = orb_with_example();
    p.ok(&[
        "writesecret",
        "lab.bootstrapkeyprivate",
        "--value",
        "private-one",
    ]);
    p.ok(&[
        "writesecret",
        "lab.bootstrapkeypublic",
        "--value",
        "public-one",
    ]);
    let good = read_from(&repo.path, "orbiter.yml");

    // Tampered: change one character of the ciphertext.
    let tampered = flip_value_char(&good, "path: lab.bootstrapkeyprivate");
    human_commit(&repo.path, "orbiter.yml", &tampered, "tamper");
    let before = commit_count(&repo);
    let e1 = p.fails(&["readsecret", "lab.bootstrapkeyprivate"]);
    assert!(
        e1.contains("lab.bootstrapkeyprivate") && e1.to_lowercase().contains("modified"),
        "{e1}"
    );

    // Moved: the private key's envelope copied onto the public key's field.
    let moved = copy_envelope(&good, "lab.bootstrapkeyprivate", "lab.bootstrapkeypublic");
    human_commit(&repo.path, "orbiter.yml", &moved, "copy ciphertext");
    let e2 = p.fails(&["readsecret", "lab.bootstrapkeypublic"]);
    assert!(e2.contains("sealed for lab.bootstrapkeyprivate"), "{e2}");

    // Wrong masterkey.
    human_commit(&repo.path, "orbiter.yml", &good, "restore");
    let config = std::fs::read_to_string(&p.config).unwrap();
    let mk = config
        .lines()
        .find_map(|l| l.strip_prefix("masterkey: "))
        .unwrap()
        .to_owned();
    std::fs::write(
        &p.config,
        config.replace(&mk, "a-completely-different-masterkey"),
    )
    .unwrap();
    let e3 = p.fails(&["readsecret", "lab.bootstrapkeyprivate"]);
    assert!(e3.to_lowercase().contains("masterkey"), "{e3}");
    let e3w = p.fails(&["writesecret", "lab.bootstrapkeyprivate", "--value", "y"]);
    assert!(e3w.to_lowercase().contains("masterkey"), "{e3w}");

    assert!(e1 != e2 && e2 != e3 && e1 != e3);
    assert_eq!(
        commit_count(&repo),
        before + 2,
        "a failing command pushed something"
    );
}

#[test]
fn masterkey_rotation_reencrypts_every_secret_in_one_commit() {
    let (p, repo) = orb_with_example();
    p.ok(&[
        "writesecret",
        "lab.bootstrapkeyprivate",
        "--value",
        "private-one",
    ]);
    p.ok(&[
        "writesecret",
        "lab.maintenancekeypublic",
        "--value",
        "public-two",
    ]);
    let before = commit_count(&repo);
    let old_text = read_from(&repo.path, "orbiter.yml");
    p.ok(&[
        "configure",
        "--repourl",
        &format!("file://{}", repo.path.display()),
        "--masterkey",
        "the new masterkey, long enough",
    ]);
    assert_eq!(commit_count(&repo), before + 1);
    let changed = repo.git(&["show", "--name-only", "--format=", "main"]);
    assert_eq!(
        changed.lines().collect::<Vec<_>>(),
        ["keyring.yml", "orbiter.yml"]
    );
    assert_ne!(read_from(&repo.path, "orbiter.yml"), old_text);
    assert_eq!(
        p.ok(&["readsecret", "lab.bootstrapkeyprivate"]),
        "private-one"
    );
    assert_eq!(
        p.ok(&["readsecret", "lab.maintenancekeypublic"]),
        "public-two"
    );
}

/// The example Orb plus NodeSoftware whose file takes its content from a secret.
const SOFTWARE: &str = "software:
  app:
    kind: NodeSoftware
    version: v1
    spec:
      pools: [lab.workers]
      items:
        - file: {path: /etc/app/token, secret: apitoken, mode: \"0600\"}
";

#[test]
fn software_secrets_are_written_by_name_and_never_stored_in_plaintext() {
    let (p, repo) = orb_with_example();
    human_commit(
        &repo.path,
        "orbiter.yml",
        &format!("{EXAMPLE}{SOFTWARE}"),
        "App token",
    );
    let list = p.ok(&["secrets", "list"]);
    assert!(list.contains("app.apitoken"), "{list}");
    p.with_stdin(&["writesecret", "app.apitoken", "--stdin"], b"tok-3141\n");
    assert_eq!(p.run(&["readsecret", "app.apitoken"]).stdout, b"tok-3141\n");
    let text = read_from(&repo.path, "orbiter.yml");
    assert!(!text.contains("tok-3141"), "plaintext in git:\n{text}");
    assert!(
        text.contains("secret: apitoken") && text.contains("path: app.apitoken"),
        "{text}"
    );
}

#[test]
fn rotation_covers_generated_and_software_secrets_and_refuses_what_does_not_open() {
    let (p, repo) = orb_with_example();
    human_commit(
        &repo.path,
        "orbiter.yml",
        &format!("{EXAMPLE}{SOFTWARE}"),
        "App token",
    );
    p.ok(&["writesecret", "app.apitoken", "--value", "tok-1"]);
    p.ok(&["writesecret", "lab.bootstrapkeypublic", "--value", "mine"]);
    let key = orb_key(&p, &repo);
    let mut generated = GeneratedSecrets::new();
    for (path, value) in [
        ("kv.ca", "the CA certificate"),
        ("orbiter.lab.maintenancekeyprivate", "maintenance key"),
    ] {
        generated
            .secrets
            .insert(path.to_owned(), key.seal(path, value.as_bytes()));
    }
    commit_file(&repo.path, state::SECRETS, &state::render(&generated));
    let url = format!("file://{}", repo.path.display());
    let newkey = p.home.path().join("new-masterkey");
    std::fs::write(&newkey, "a new masterkey from a file, long enough\n").unwrap();

    // A damaged generated secret: refused, nothing pushed, the config keeps the old key.
    let good = state::render(&generated);
    let damaged = flip_value_char(&good, "path: kv.ca");
    commit_file(&repo.path, state::SECRETS, &damaged);
    let before = (commit_count(&repo), std::fs::read(&p.config).unwrap());
    let e = p.fails(&[
        "configure",
        "--repourl",
        &url,
        "--masterkey-file",
        newkey.to_str().unwrap(),
    ]);
    assert!(
        e.contains("kv.ca") && e.contains("nothing was rotated"),
        "{e}"
    );
    assert_eq!(
        (commit_count(&repo), std::fs::read(&p.config).unwrap()),
        before
    );
    let staged = OrbConfig::staged_masterkey_path(&p.config);
    assert!(!staged.exists(), "a refused rotation left its staged key");
    assert_eq!(p.ok(&["readsecret", "app.apitoken"]), "tok-1");

    // Repaired: one commit re-seals all three files; every secret reads with the new key.
    commit_file(&repo.path, state::SECRETS, &good);
    let before = commit_count(&repo);
    p.ok(&[
        "configure",
        "--repourl",
        &url,
        "--masterkey-file",
        newkey.to_str().unwrap(),
    ]);
    assert_eq!(commit_count(&repo), before + 1);
    let changed = repo.git(&["show", "--name-only", "--format=", "main"]);
    assert_eq!(
        changed.lines().collect::<Vec<_>>(),
        ["keyring.yml", "orbiter.yml", state::SECRETS]
    );
    assert!(
        std::fs::read_to_string(&p.config)
            .unwrap()
            .contains("a new masterkey from a file"),
        "the config has the new masterkey"
    );
    assert!(
        !staged.exists(),
        "the staged key is gone once the config has it"
    );
    assert_eq!(p.ok(&["readsecret", "app.apitoken"]), "tok-1");
    assert_eq!(p.ok(&["readsecret", "lab.bootstrapkeypublic"]), "mine");
    assert_eq!(p.ok(&["readsecret", "kv.ca"]), "the CA certificate");
    let key = orb_key(&p, &repo);
    let rotated: GeneratedSecrets =
        state::parse(&read_from(&repo.path, state::SECRETS), state::SECRETS).unwrap();
    let path = "orbiter.lab.maintenancekeyprivate";
    assert_eq!(
        &key.open(path, &rotated.secrets[path]).unwrap()[..],
        b"maintenance key"
    );
}

#[test]
fn concurrent_writers_keep_every_value_with_linear_history() {
    let (p, repo) = orb_with_example();
    let paths = [
        "lab.bootstrapkeyprivate",
        "lab.bootstrapkeypublic",
        "lab.maintenancekeyprivate",
        "lab.maintenancekeypublic",
    ];
    const ROUNDS: usize = 3;
    // Separate people (separate clones and configs) sharing the masterkey, as on different laptops.
    let config = std::fs::read_to_string(&p.config).unwrap();
    let people: Vec<Person> = paths
        .iter()
        .map(|_| {
            let q = Person::new();
            std::fs::create_dir_all(q.config.parent().unwrap()).unwrap();
            std::fs::write(&q.config, &config).unwrap();
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&q.config, std::fs::Permissions::from_mode(0o600)).unwrap();
            q
        })
        .collect();
    for round in 0..ROUNDS {
        let children: Vec<_> = people
            .iter()
            .zip(paths)
            .map(|(q, path)| {
                q.cmd(&["writesecret", path, "--value", &format!("{path}-{round}")])
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for c in children {
            let out = c.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    for path in paths {
        assert_eq!(
            p.ok(&["readsecret", path]),
            format!("{path}-{}", ROUNDS - 1)
        );
    }
    assert_eq!(
        repo.git(&["rev-list", "--merges", "main"]),
        "",
        "history is not linear"
    );
    assert_eq!(commit_count(&repo), 1 + 1 + paths.len() * ROUNDS);
}

#[test]
fn generated_secrets_are_read_and_listed_but_not_written_and_internal_ones_stay_hidden() {
    let (p, repo) = orb_with_example();
    p.ok(&["writesecret", "lab.bootstrapkeypublic", "--value", "mine"]);
    let key = orb_key(&p, &repo);
    let ca = "-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n";
    let client_key: &[u8] = b"client key\x00\xff\n";
    let maintenance = "-----BEGIN OPENSSH PRIVATE KEY-----\nsecret-maintenance\n";
    let mut generated = GeneratedSecrets::new();
    for (path, value) in [
        ("etcd.ca", ca.as_bytes()),
        ("etcd.clientkey", client_key),
        ("orbiter.lab.maintenancekeyprivate", maintenance.as_bytes()),
    ] {
        generated
            .secrets
            .insert(path.to_owned(), key.seal(path, value));
    }
    // Sealed for etcd.ca but stored at etcd.clientcert: must not open there.
    let moved = generated.secrets["etcd.ca"].clone();
    generated
        .secrets
        .insert("etcd.clientcert".to_owned(), moved);
    commit_file(&repo.path, state::SECRETS, &state::render(&generated));

    assert_eq!(p.ok(&["readsecret", "etcd.ca"]), ca);
    assert_eq!(p.run(&["readsecret", "etcd.clientkey"]).stdout, client_key);
    assert_eq!(p.ok(&["readsecret", "lab.bootstrapkeypublic"]), "mine");
    let e = p.fails(&["readsecret", "etcd.clientcert"]);
    assert!(e.contains("sealed for etcd.ca"), "{e}");

    let list = p.ok(&["secrets", "list"]);
    let row = |path: &str| {
        list.lines()
            .find(|l| l.split_whitespace().next() == Some(path))
            .map(|l| l.split_whitespace().nth(1).unwrap_or("").to_owned())
    };
    assert_eq!(row("etcd.ca").as_deref(), Some("generated"), "{list}");
    assert_eq!(
        row("etcd.clientkey").as_deref(),
        Some("generated"),
        "{list}"
    );
    assert_eq!(
        row("lab.bootstrapkeypublic").as_deref(),
        Some("set"),
        "{list}"
    );
    assert_eq!(
        row("lab.bootstrapkeyprivate").as_deref(),
        Some("unset"),
        "{list}"
    );
    assert!(
        !list.contains("orbiter."),
        "internal secret listed:\n{list}"
    );

    // Internal: refused with the reason, never printed.
    let out = p.run(&["readsecret", "orbiter.lab.maintenancekeyprivate"]);
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && out.stdout.is_empty(), "{e}");
    assert!(
        e.contains("internal to Orbiter") && e.contains("node exec"),
        "{e}"
    );
    assert!(!e.contains("secret-maintenance"), "{e}");

    // A typo gets a suggestion over every readable path, generated ones included.
    let e = p.fails(&["readsecret", "etcd.clientky"]);
    assert!(e.contains("did you mean `etcd.clientkey`?"), "{e}");
    assert!(
        e.contains("lab.bootstrapkeyprivate") && e.contains("etcd.ca"),
        "{e}"
    );

    // Only Orbiter writes its file.
    let before = commit_count(&repo);
    let e = p.fails(&["writesecret", "etcd.ca", "--value", "forged"]);
    assert!(e.contains("only Orbiter writes it"), "{e}");
    let e = p.fails(&[
        "writesecret",
        "orbiter.lab.maintenancekeyprivate",
        "--value",
        "x",
    ]);
    assert!(e.contains("only Orbiter writes it"), "{e}");
    assert_eq!(commit_count(&repo), before, "a refused write committed");
    assert_eq!(p.ok(&["readsecret", "etcd.ca"]), ca);

    // A damaged orbiter/secrets.yml is named, and keeps nobody from orbiter.yml's secrets.
    commit_file(
        &repo.path,
        state::SECRETS,
        "kind: OrbiterSecrets\nsecrets: [\n",
    );
    assert_eq!(p.ok(&["readsecret", "lab.bootstrapkeypublic"]), "mine");
    let e = p.fails(&["readsecret", "etcd.ca"]);
    assert!(e.contains(state::SECRETS), "{e}");
}

/// The Orb's secret key, unlocked like orbctl does: the person's masterkey and the keyring.
fn orb_key(p: &Person, repo: &orb_testsupport::BareRepo) -> SecretKey {
    let config = OrbConfig::load(&p.config).unwrap();
    let mk = Masterkey::new(config.masterkey.expose().to_owned()).unwrap();
    Keyring::from_yaml(&read_from(&repo.path, Keyring::FILE), Keyring::FILE)
        .unwrap()
        .unlock(&mk)
        .unwrap()
}

/// Commits one file (parent directories created) the way a person with plain git would.
fn commit_file(bare: &std::path::Path, file: &str, content: &str) {
    let work = tempfile::tempdir().unwrap();
    let w = work.path().join("w");
    let git = |dir: &std::path::Path, args: &[&str]| {
        let out = std::process::Command::new("git")
            .current_dir(dir)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .args(["-c", "user.name=Human", "-c", "user.email=h@example.test"])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    git(
        work.path(),
        &["clone", "--quiet", &bare.display().to_string(), "w"],
    );
    let path = w.join(file);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, content).unwrap();
    git(&w, &["add", file]);
    git(&w, &["commit", "--quiet", "-m", &format!("write {file}")]);
    git(&w, &["push", "--quiet", "origin", "HEAD:main"]);
}

fn flip_value_char(text: &str, after: &str) -> String {
    let start = text.find(after).unwrap();
    let vpos = start + text[start..].find("value: ").unwrap() + "value: ".len() + 10;
    let mut bytes = text.as_bytes().to_vec();
    bytes[vpos] = if bytes[vpos] == b'A' { b'B' } else { b'A' };
    String::from_utf8(bytes).unwrap()
}

/// Replaces the value of `to`'s envelope with `from`'s envelope (path line included).
fn copy_envelope(text: &str, from: &str, to: &str) -> String {
    let block = |p: &str| {
        let s = text.find(&format!("path: {p}")).unwrap();
        let line_start = text[..s].rfind("encrypted:").unwrap();
        let v = s + text[s..].find("value: ").unwrap();
        let end = v + text[v..].find('\n').unwrap();
        (line_start, end)
    };
    let (fs, fe) = block(from);
    let (ts, te) = block(to);
    format!("{}{}{}", &text[..ts], &text[fs..fe], &text[te..])
}
