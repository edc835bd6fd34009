//! keyring.yml: generation, unlock, YAML round trip and errors that name file:line:col.

use orb_secrets::{Envelope, KdfParams, Keyring, Masterkey, SecretError};

fn mk(s: &str) -> Masterkey {
    Masterkey::new(s).unwrap()
}

fn cheap(mk: &Masterkey) -> Keyring {
    Keyring::generate_with(mk, KdfParams::argon2id(8, 1, 1))
        .unwrap()
        .0
}

/// The error for `text`, with the keyring error's parts.
fn keyring_err(text: &str) -> (String, String, String) {
    match Keyring::from_yaml(text, "orbs/lab/keyring.yml") {
        Err(e @ SecretError::Keyring { .. }) => {
            let msg = e.to_string();
            let SecretError::Keyring { file, reason } = e else {
                unreachable!()
            };
            (file, reason, msg)
        }
        other => panic!("expected a keyring error for\n{text}\ngot {other:?}"),
    }
}

const GOOD: &str = "\
kind: Keyring
version: v1
kdf:
  algorithm: argon2id
  salt: AAECAwQFBgcICQoLDA0ODw==
  memory_kib: 8
  iterations: 1
  parallelism: 1
keycheck: AAECAwQFBgcICQoLDA0ODwABAgMEBQYHCAkKCwwNDg8=
";

#[test]
fn generated_keyring_round_trips_through_yaml_and_unlocks() {
    let key = mk("correct horse battery staple");
    let (keyring, sealing) = Keyring::generate_with(&key, KdfParams::argon2id(8, 1, 1)).unwrap();
    let text = keyring.to_yaml();
    assert!(text.starts_with("# Orbiter keyring"), "{text}");
    let parsed = Keyring::from_yaml(&text, Keyring::FILE).unwrap();
    assert_eq!(parsed, keyring);

    let env = sealing.seal("lab.bootstrapkeyprivate", b"-----BEGIN KEY-----");
    let unlocked = parsed.unlock(&key).unwrap();
    assert_eq!(
        *unlocked.open("lab.bootstrapkeyprivate", &env).unwrap(),
        b"-----BEGIN KEY-----"
    );
}

#[test]
fn keyring_text_holds_no_secret() {
    let key = mk("correct horse battery staple");
    let text = cheap(&key).to_yaml();
    assert!(!text.contains("correct horse"), "{text}");
    assert!(!format!("{:?}", cheap(&key)).contains("correct horse"));
}

#[test]
fn same_masterkey_gets_a_fresh_salt_per_orb() {
    let key = mk("correct horse battery staple");
    let (a, ka) = Keyring::generate_with(&key, KdfParams::argon2id(8, 1, 1)).unwrap();
    let (b, _) = Keyring::generate_with(&key, KdfParams::argon2id(8, 1, 1)).unwrap();
    assert_ne!(a.kdf.salt, b.kdf.salt);
    assert_ne!(a.keycheck, b.keycheck);
    // A secret of one Orb does not open with another Orb's key, even with the same masterkey.
    let env = ka.seal("lab.key", b"x");
    assert!(matches!(
        b.unlock(&key).unwrap().open("lab.key", &env),
        Err(SecretError::Tampered { .. })
    ));
}

#[test]
fn generate_uses_the_recommended_argon2id_parameters() {
    let key = mk("correct horse battery staple");
    let (keyring, sealing) = Keyring::generate(&key).unwrap();
    assert_eq!(keyring.kind, "Keyring");
    assert_eq!(keyring.version, "v1");
    assert_eq!(keyring.kdf.algorithm, "argon2id");
    assert_eq!(
        (
            keyring.kdf.memory_kib,
            keyring.kdf.iterations,
            keyring.kdf.parallelism
        ),
        (65536, 3, 1)
    );
    assert_eq!(keyring.kdf.salt.len(), 24, "16 bytes in base64");
    let env = sealing.seal("lab.key", b"v");
    assert_eq!(
        *keyring.unlock(&key).unwrap().open("lab.key", &env).unwrap(),
        b"v"
    );
}

#[test]
fn wrong_masterkey_is_reported_before_any_secret() {
    let keyring = cheap(&mk("correct horse battery staple"));
    let err = keyring
        .unlock(&mk("correct horse battery stapler"))
        .unwrap_err();
    assert!(matches!(err, SecretError::WrongMasterkey), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("keyring.yml") && msg.contains("hint:") && msg.contains("~/.orb/config"),
        "{msg}"
    );
}

#[test]
fn out_of_range_parameters_are_refused_on_generate_and_unlock() {
    let key = mk("correct horse battery staple");
    for params in [
        KdfParams::argon2id(4, 1, 1),
        KdfParams::argon2id(8, 0, 1),
        KdfParams::argon2id(8, 1, 0),
        KdfParams::argon2id(16, 1, 4),
        KdfParams::argon2id(2 * 1024 * 1024, 1, 1),
        KdfParams::argon2id(8, 65, 1),
        KdfParams::argon2id(1024, 1, 17),
    ] {
        let err = Keyring::generate_with(&key, params.clone()).unwrap_err();
        assert!(
            matches!(err, SecretError::Keyring { .. }),
            "{params:?}: {err:?}"
        );
    }
    let mut keyring = cheap(&key);
    keyring.kdf.algorithm = "scrypt".into();
    let msg = keyring.unlock(&key).unwrap_err().to_string();
    assert!(
        msg.starts_with("keyring.yml: kdf.algorithm \"scrypt\" is not supported"),
        "{msg}"
    );
}

#[test]
fn good_fixture_parses() {
    let k = Keyring::from_yaml(GOOD, "keyring.yml").unwrap();
    assert_eq!(k.kdf.memory_kib, 8);
    // Its keycheck is made up, so unlocking says so rather than handing out a wrong key.
    assert!(matches!(
        k.unlock(&mk("correct horse battery staple")),
        Err(SecretError::WrongMasterkey)
    ));
}

#[test]
fn yaml_errors_name_file_line_and_column() {
    // (replace, with, expected place, words in the reason)
    let cases: &[(&str, &str, &str, &[&str])] = &[
        (
            "keycheck:",
            "extra: 1\nkeycheck:",
            "orbs/lab/keyring.yml:9:1",
            &["extra"],
        ),
        (
            "  parallelism: 1\n",
            "  parallelism: 1\n  pepper: x\n",
            "orbs/lab/keyring.yml:9:3",
            &["pepper"],
        ),
        (
            "memory_kib: 8",
            "memory_kib: lots",
            "orbs/lab/keyring.yml:6:15",
            &[],
        ),
        (
            "memory_kib: 8",
            "memory_kib: -8",
            "orbs/lab/keyring.yml:6:15",
            &[],
        ),
        (
            "kind: Keyring",
            "kind: Orb",
            "orbs/lab/keyring.yml:1:7",
            &["kind is \"Orb\", expected \"Keyring\""],
        ),
        (
            "version: v1",
            "version: v2",
            "orbs/lab/keyring.yml:2:10",
            &["version \"v2\" is not supported"],
        ),
        (
            "argon2id",
            "pbkdf2",
            "orbs/lab/keyring.yml:4:14",
            &["kdf.algorithm \"pbkdf2\""],
        ),
        (
            "salt: AAECAwQFBgcICQoLDA0ODw==",
            "salt: AAECAw==",
            "orbs/lab/keyring.yml:5:9",
            &["kdf.salt has 4 bytes"],
        ),
        (
            "salt: AAECAwQFBgcICQoLDA0ODw==",
            "salt: not*base64",
            "orbs/lab/keyring.yml:5:9",
            &["kdf.salt is not standard base64"],
        ),
        (
            "memory_kib: 8",
            "memory_kib: 4",
            "orbs/lab/keyring.yml:6:15",
            &["kdf.memory_kib is 4"],
        ),
        (
            "iterations: 1",
            "iterations: 0",
            "orbs/lab/keyring.yml:7:15",
            &["kdf.iterations is 0"],
        ),
        (
            "parallelism: 1",
            "parallelism: 99",
            "orbs/lab/keyring.yml:8:16",
            &["kdf.parallelism is 99"],
        ),
        (
            "keycheck: AAECAwQFBgcICQoLDA0ODwABAgMEBQYHCAkKCwwNDg8=",
            "keycheck: AAECAwQFBgcICQoLDA0ODw==",
            "orbs/lab/keyring.yml:9:11",
            &["keycheck has 16 bytes, expected 32"],
        ),
        ("kdf:\n", "kdf: [\n", "orbs/lab/keyring.yml:", &[]),
    ];
    for (from, to, place, words) in cases {
        assert!(GOOD.contains(from), "bad test case {from:?}");
        let text = GOOD.replacen(from, to, 1);
        let (file, reason, msg) = keyring_err(&text);
        assert!(file.starts_with(place), "{file} for\n{text}\n{msg}");
        assert!(
            file.len() > "orbs/lab/keyring.yml:".len(),
            "no line:col in {file}\n{msg}"
        );
        for w in *words {
            assert!(reason.contains(w), "{reason:?} lacks {w:?}");
        }
        assert!(msg.starts_with(&format!("{file}: ")), "{msg}");
        assert!(msg.contains("hint:"), "{msg}");
        assert!(!msg.contains('\n'), "one-line message expected: {msg}");
    }
}

#[test]
fn missing_field_is_named() {
    let text = GOOD.replace("  iterations: 1\n", "");
    let (file, reason, _) = keyring_err(&text);
    assert!(file.starts_with("orbs/lab/keyring.yml"), "{file}");
    assert!(reason.contains("iterations"), "{reason}");
}

#[test]
fn unknown_envelope_field_is_rejected() {
    let ok: Envelope = serde_saphyr::from_str("encrypted: v1\npath: a.b\nvalue: AAAA\n").unwrap();
    assert_eq!(ok.path, "a.b");
    let err = serde_saphyr::from_str::<Envelope>(
        "encrypted: v1\npath: a.b\nvalue: AAAA\nencoding: Base64\n",
    )
    .unwrap_err();
    assert!(err.to_string().contains("encoding"), "{err}");
}
