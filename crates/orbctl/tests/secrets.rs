//! Secrets through the real binary on a real repository: round trips, no-op writes, bad paths,
//! tampering, moved ciphertexts, wrong masterkeys, rotation and concurrent writers.

mod common;

use common::*;

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
