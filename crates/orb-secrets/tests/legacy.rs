//! orbos import: an orbos Orb made by `orb_testsupport::orbos` (encrypted independently of the
//! decoder, checked there against OpenSSL), and self-contained OpenSSL vectors.

use orb_secrets::SecretError;
use orb_secrets::legacy::decrypt_orbos;
use orb_testsupport::orbos::OrbosOrb;
use serde::Deserialize;

fn read(path: &std::path::Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("reading fixture {}: {e}", path.display()))
}

/// Just the parts of an orbos `orbiter.yml` that hold the secrets; the rest is ignored.
#[derive(Deserialize)]
struct OrbosDoc {
    clusters: std::collections::BTreeMap<String, Cluster>,
    providers: std::collections::BTreeMap<String, Provider>,
}
#[derive(Deserialize)]
struct Cluster {
    spec: ClusterSpec,
}
#[derive(Deserialize)]
struct ClusterSpec {
    kubeconfig: OrbosSecret,
}
#[derive(Deserialize)]
struct Provider {
    spec: ProviderSpec,
}
#[derive(Deserialize)]
struct ProviderSpec {
    keys: Keys,
}
#[derive(Deserialize)]
struct Keys {
    bootstrapkeyprivate: OrbosSecret,
    bootstrapkeypublic: OrbosSecret,
}
#[derive(Deserialize)]
struct OrbosSecret {
    encryption: String,
    encoding: String,
    value: String,
}

#[test]
fn decrypts_the_orbos_fixture_byte_for_byte() {
    let fixture = OrbosOrb::new();
    let masterkey = String::from_utf8(read(&fixture.masterkey())).unwrap();
    assert!(
        masterkey.ends_with('\n'),
        "fixture masterkey keeps its newline"
    );
    let text = String::from_utf8(read(&fixture.orbiter_yml())).unwrap();
    let orb: OrbosDoc = serde_saphyr::from_str(&text).unwrap();
    let keys = &orb.providers["kvm"].spec.keys;
    let cases = [
        (
            &keys.bootstrapkeyprivate,
            fixture.expected("bootstrapkeyprivate"),
        ),
        (
            &keys.bootstrapkeypublic,
            fixture.expected("bootstrapkeypublic"),
        ),
        (
            &orb.clusters["k8s"].spec.kubeconfig,
            fixture.expected("kubeconfig"),
        ),
    ];
    for (secret, expected) in cases {
        assert_eq!(
            (secret.encryption.as_str(), secret.encoding.as_str()),
            ("AES256", "Base64")
        );
        let plain = decrypt_orbos(&masterkey, &secret.value).unwrap();
        assert_eq!(
            plain.as_slice(),
            read(&expected).as_slice(),
            "{}",
            expected.display()
        );
    }
}

#[test]
fn wrong_masterkey_on_the_fixture_is_a_clear_error() {
    let fixture = OrbosOrb::new();
    let text = String::from_utf8(read(&fixture.orbiter_yml())).unwrap();
    let orb: OrbosDoc = serde_saphyr::from_str(&text).unwrap();
    let value = &orb.providers["kvm"].spec.keys.bootstrapkeyprivate.value;
    let err = decrypt_orbos("not-the-orbos-masterkey", value)
        .unwrap_err()
        .at("providers.kvm.spec.keys.bootstrapkeyprivate");
    assert!(matches!(err, SecretError::Malformed { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("secret at providers.kvm.spec.keys.bootstrapkeyprivate")
            && msg.contains("masterkey is wrong")
            && msg.contains("hint:"),
        "{msg}"
    );
}

// Made with:
//   K=$(printf legacy-test-masterkey | xxd -p) zero-padded to 64 hex digits
//   (printf IV; openssl enc -aes-256-cfb -K $K -iv $IV -in PLAINTEXT) | base64 -w0 | tr '+/' '-_'
const MASTERKEY: &str = "legacy-test-masterkey";
/// IV 000102…0f, plaintext of 53 bytes (not a whole number of blocks), no base64 padding needed.
const VECTOR_LONG: &str =
    "AAECAwQFBgcICQoLDA0OD8_2J7m0g-zHCe7eQjSRZqE5lHKQ2FtC4s00_Q83jD5-koZVxkSJmnRLzK8qQN_5qE1jXseg";
const PLAIN_LONG: &str = "kubeconfig: not a real one\nline two with ünïcödé\n";
/// IV f0e1d2…0f, plaintext "short\n", base64 with `==` padding as Go's URLEncoding writes it.
const VECTOR_SHORT: &str = "8OHSw7Sllod4aVpLPC0eD11jF9jbZA==";

#[test]
fn decrypts_openssl_aes_256_cfb_vectors() {
    assert_eq!(
        decrypt_orbos(MASTERKEY, VECTOR_LONG).unwrap().as_slice(),
        PLAIN_LONG.as_bytes()
    );
    assert_eq!(
        decrypt_orbos(MASTERKEY, VECTOR_SHORT).unwrap().as_slice(),
        b"short\n"
    );
    // orbos trimmed one trailing newline from the masterkey file.
    assert_eq!(
        decrypt_orbos(&format!("{MASTERKEY}\n"), VECTOR_SHORT)
            .unwrap()
            .as_slice(),
        b"short\n"
    );
    // A hand-edited value without padding, or with surrounding blanks, still reads.
    assert_eq!(
        decrypt_orbos(MASTERKEY, " 8OHSw7Sllod4aVpLPC0eD11jF9jbZA \n")
            .unwrap()
            .as_slice(),
        b"short\n"
    );
}

#[test]
fn an_iv_without_ciphertext_is_the_empty_secret() {
    assert!(
        decrypt_orbos(MASTERKEY, "AAECAwQFBgcICQoLDA0ODw==")
            .unwrap()
            .is_empty()
    );
}

#[test]
fn wrong_masterkey_is_not_utf8() {
    let err = decrypt_orbos("legacy-test-masterkez", VECTOR_LONG).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("does not decrypt to UTF-8") && msg.contains("masterkey is wrong"),
        "{msg}"
    );
    assert!(!msg.contains("legacy-test"), "{msg}");
}

#[test]
fn bad_inputs_are_named() {
    let long = "x".repeat(33);
    let cases: [(&str, &str, &str); 5] = [
        (
            "",
            VECTOR_SHORT,
            "invalid masterkey: an orbos masterkey has 1 to 32 bytes",
        ),
        ("\n", VECTOR_SHORT, "invalid masterkey"),
        (&long, VECTOR_SHORT, "invalid masterkey"),
        (MASTERKEY, "AAECAw==", "at least the 16-byte IV"),
        (MASTERKEY, "not/url+safe", "not URL-safe base64"),
    ];
    for (mk, value, words) in cases {
        let msg = decrypt_orbos(mk, value)
            .unwrap_err()
            .at("clusters.k8s.spec.kubeconfig")
            .to_string();
        assert!(msg.contains(words), "{msg}");
        assert!(msg.contains("hint:"), "{msg}");
    }
    // 32 bytes plus the trimmed newline is still a valid orbos key length.
    let err = decrypt_orbos(&format!("{}\n", "x".repeat(32)), VECTOR_SHORT).unwrap_err();
    assert!(
        !matches!(err, SecretError::InvalidMasterkey { .. }),
        "{err}"
    );
}
