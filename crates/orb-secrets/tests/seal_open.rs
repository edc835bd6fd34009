//! Property tests for sealing and opening: round trips, tampering, path binding, wrong keys.

use std::sync::OnceLock;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use orb_secrets::{Envelope, KdfParams, Keyring, Masterkey, SecretError, SecretKey};
use proptest::prelude::*;

const MASTERKEY: &str = "correct horse battery staple";

/// One cheap keyring for all cases; argon2id cost is not what these tests are about.
fn orb() -> &'static (Keyring, SecretKey) {
    static ORB: OnceLock<(Keyring, SecretKey)> = OnceLock::new();
    ORB.get_or_init(|| {
        Keyring::generate_with(
            &Masterkey::new(MASTERKEY).unwrap(),
            KdfParams::argon2id(8, 1, 1),
        )
        .unwrap()
    })
}

fn key() -> &'static SecretKey {
    &orb().1
}

/// Secret paths as orbctl builds them, plus arbitrary text to be sure nothing assumes a shape.
fn path() -> impl Strategy<Value = String> {
    prop_oneof!["[a-z0-9-]{1,20}\\.[a-z]{1,20}", any::<String>(),]
}

proptest! {
    #[test]
    fn round_trips_arbitrary_bytes(
        plaintext in proptest::collection::vec(any::<u8>(), 0..4096),
        path in path(),
    ) {
        let env = key().seal(&path, &plaintext);
        prop_assert_eq!(&env.encrypted, "v1");
        prop_assert_eq!(&env.path, &path);
        let opened = key().open(&path, &env).unwrap();
        prop_assert_eq!(opened.as_slice(), plaintext.as_slice());
        // The unlocked key of the same keyring opens it too.
        let unlocked = orb().0.unlock(&Masterkey::new(MASTERKEY).unwrap()).unwrap();
        let reopened = unlocked.open(&path, &env).unwrap();
        prop_assert_eq!(reopened.as_slice(), plaintext.as_slice());
    }

    #[test]
    fn any_flipped_bit_is_tampering(
        plaintext in proptest::collection::vec(any::<u8>(), 0..512),
        path in path(),
        bit in any::<usize>(),
    ) {
        let env = key().seal(&path, &plaintext);
        let mut raw = STANDARD.decode(&env.value).unwrap();
        let bit = bit % (raw.len() * 8);
        raw[bit / 8] ^= 1 << (bit % 8);
        let tampered = Envelope { value: STANDARD.encode(&raw), ..env };
        let err = key().open(&path, &tampered).unwrap_err();
        prop_assert!(
            matches!(&err, SecretError::Tampered { path: p } if *p == path),
            "bit {}: {:?}", bit, err
        );
    }

    #[test]
    fn another_path_fails_authentication_even_with_the_recorded_path_edited(
        plaintext in proptest::collection::vec(any::<u8>(), 0..512),
        from in path(),
        to in path(),
    ) {
        prop_assume!(from != to);
        let env = key().seal(&from, &plaintext);
        let forged = Envelope { path: to.clone(), ..env };
        let err = key().open(&to, &forged).unwrap_err();
        prop_assert!(matches!(&err, SecretError::Tampered { path } if *path == to), "{:?}", err);
    }

    #[test]
    fn a_copied_envelope_is_reported_as_moved(
        plaintext in proptest::collection::vec(any::<u8>(), 0..512),
        from in path(),
        to in path(),
    ) {
        prop_assume!(from != to);
        let env = key().seal(&from, &plaintext);
        let err = key().open(&to, &env).unwrap_err();
        prop_assert!(
            matches!(&err, SecretError::Moved { path, sealed_for } if *path == to && *sealed_for == from),
            "{:?}", err
        );
    }

    #[test]
    fn another_masterkey_does_not_unlock(other in "\\PC{16,40}") {
        prop_assume!(other != MASTERKEY);
        let err = orb().0.unlock(&Masterkey::new(other).unwrap()).unwrap_err();
        prop_assert!(matches!(err, SecretError::WrongMasterkey), "{:?}", err);
    }
}

#[test]
fn the_three_failures_have_distinct_messages_that_leak_nothing() {
    let secret = b"hunter2-very-secret-value";
    let env = key().seal("lab.bootstrapkeyprivate", secret);

    let mut raw = STANDARD.decode(&env.value).unwrap();
    let last = raw.len() - 1;
    raw[last] ^= 0x80;
    let tampered = Envelope {
        value: STANDARD.encode(&raw),
        ..env.clone()
    };
    let tampered = key()
        .open("lab.bootstrapkeyprivate", &tampered)
        .unwrap_err()
        .to_string();
    let moved = key()
        .open("lab.bootstrapkeypublic", &env)
        .unwrap_err()
        .to_string();
    let wrong = orb()
        .0
        .unlock(&Masterkey::new("not the right masterkey").unwrap())
        .unwrap_err()
        .to_string();

    assert!(
        tampered.contains("secret at lab.bootstrapkeyprivate was modified"),
        "{tampered}"
    );
    assert!(
        moved.contains(
            "ciphertext at lab.bootstrapkeypublic was sealed for lab.bootstrapkeyprivate"
        ),
        "{moved}"
    );
    assert!(wrong.contains("masterkey does not match"), "{wrong}");
    for msg in [&tampered, &moved, &wrong] {
        assert!(msg.contains("hint:"), "{msg}");
        assert!(!msg.contains("hunter2"), "{msg}");
        assert!(!msg.contains(MASTERKEY), "{msg}");
        assert!(!msg.contains(&env.value), "{msg}");
    }
    assert_ne!(tampered, moved);
}

#[test]
fn unknown_envelope_version_is_refused_before_decrypting() {
    let env = Envelope {
        encrypted: "v2".into(),
        ..key().seal("lab.key", b"x")
    };
    let err = key().open("lab.key", &env).unwrap_err();
    assert!(
        matches!(&err, SecretError::UnsupportedVersion { path, version } if path == "lab.key" && version == "v2"),
        "{err:?}"
    );
    assert!(err.to_string().contains("upgrade orbctl"), "{err}");
}

#[test]
fn envelope_yaml_round_trips() {
    let env = key().seal("lab.key", b"value");
    let text = serde_saphyr::to_string(&env).unwrap();
    let back: Envelope = serde_saphyr::from_str(&text).unwrap();
    assert_eq!(back, env);
    assert_eq!(*key().open("lab.key", &back).unwrap(), b"value");
}
