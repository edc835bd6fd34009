//! An Orb in the orbos format, made here for the `import-orbos` tests instead of being read from
//! outside the repository.
//!
//! orbos kept secrets inline as `{encryption: AES256, encoding: Base64, value}`: AES-256-CFB
//! (full-block CFB-128, as Go's `cipher.NewCFBEncrypter` and `openssl enc -aes-256-cfb`), key =
//! the masterkey's bytes (one trailing `'\n'` trimmed) zero-padded to 32, a 16-byte IV prepended
//! to the ciphertext, then URL-safe base64 with padding. No MAC, no KDF.
//!
//! [`encrypt`] writes exactly that, independently of the decoder in `orb-secrets` (which the
//! tests check against it). With [`MASTERKEY`] and the fixed IVs below, [`orbiter_yml`] is
//! byte for byte the orbos Orb that was made with OpenSSL for these tests; fixed IVs keep the
//! fixture reproducible (orbos drew a random one per value).

use std::path::{Path, PathBuf};

use aes::Aes256;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE;
use cfb_mode::Encryptor;
use cfb_mode::cipher::KeyIvInit;

/// The orbos Orb's masterkey (not a real one); its file, [`OrbosOrb::masterkey`], ends in `'\n'`
/// as orbos wrote it.
pub const MASTERKEY: &str = "Gx7vQ2pLw9sR4kT1mN8bZc3yHf6u";

/// Plaintext of `providers.kvm.spec.keys.bootstrapkeyprivate` (not a real key).
pub const BOOTSTRAPKEYPRIVATE: &str = "-----BEGIN OPENSSH PRIVATE KEY-----\n\
     fixture-not-a-real-key-0123456789abcdef\n\
     -----END OPENSSH PRIVATE KEY-----\n";
/// Plaintext of `providers.kvm.spec.keys.bootstrapkeypublic` (not a real key).
pub const BOOTSTRAPKEYPUBLIC: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFixtureFixtureFixtureFixtureFixture fixture\n";
/// Plaintext of `clusters.k8s.spec.kubeconfig`, the secret of the `KubernetesCluster`, a kind
/// without an equivalent in Orbiter yet.
pub const KUBECONFIG: &str = "apiVersion: v1\nkind: Config\nclusters: []\n";

/// The IVs of the three secrets (distinct, as orbos's random ones were).
const IV_BOOTSTRAPKEYPRIVATE: [u8; 16] =
    *b"\xb3\x91\x5a\xf8\xf9\x3e\x65\x13\xea\xdb\xd1\x7a\x45\xad\x0f\x8c";
const IV_BOOTSTRAPKEYPUBLIC: [u8; 16] =
    *b"\xa7\x67\x04\xe8\x39\x32\xb7\x32\xdd\xbd\x42\x31\x61\xf8\xb7\x19";
const IV_KUBECONFIG: [u8; 16] =
    *b"\x78\x3f\x7e\x37\x55\x2d\x0c\x8b\x12\x5f\xfe\x44\xe2\x43\xc3\x6d";

/// Encrypts `plaintext` as orbos did: base64url(IV ‖ AES-256-CFB(key, IV, plaintext)) with
/// padding, key = `masterkey` (one trailing `'\n'` trimmed) zero-padded to 32 bytes.
///
/// # Panics
/// When the masterkey is empty or longer than 32 bytes (orbos could not use it either).
pub fn encrypt(masterkey: &str, iv: [u8; 16], plaintext: &[u8]) -> String {
    let mk = masterkey.strip_suffix('\n').unwrap_or(masterkey).as_bytes();
    assert!(
        (1..=32).contains(&mk.len()),
        "an orbos masterkey has 1 to 32 bytes, this one has {}",
        mk.len()
    );
    let mut key = [0u8; 32];
    key[..mk.len()].copy_from_slice(mk);
    let mut raw = iv.to_vec();
    let mut ciphertext = plaintext.to_vec();
    Encryptor::<Aes256>::new(&key.into(), &iv.into()).encrypt(&mut ciphertext);
    raw.extend_from_slice(&ciphertext);
    URL_SAFE.encode(raw)
}

/// The orbos `orbiter.yml`: a `StaticProvider` v1 `kvm` with two encrypted bootstrap keys and
/// pools `masters` and `workers`, and a `KubernetesCluster` `k8s` (no equivalent in Orbiter)
/// with an encrypted kubeconfig, all secrets encrypted with `masterkey`.
pub fn orbiter_yml(masterkey: &str) -> String {
    let secret = |indent: &str, iv, plaintext: &str| {
        format!(
            "{indent}encryption: AES256\n{indent}encoding: Base64\n{indent}value: {}\n",
            encrypt(masterkey, iv, plaintext.as_bytes())
        )
    };
    let kubeconfig = secret("        ", IV_KUBECONFIG, KUBECONFIG);
    let private = secret("          ", IV_BOOTSTRAPKEYPRIVATE, BOOTSTRAPKEYPRIVATE);
    let public = secret("          ", IV_BOOTSTRAPKEYPUBLIC, BOOTSTRAPKEYPUBLIC);
    format!(
        "\
kind: orbiter.caos.ch/Orb
version: v0
clusters:
  k8s:
    kind: orbiter.caos.ch/KubernetesCluster
    version: v0
    spec:
      controlplane:
        nodes: 1
        pool: masters
        provider: kvm
        updatesdisabled: false
      kubeconfig:
{kubeconfig}      networking:
        dnsdomain: cluster.example
        network: calico
        podcidr: 100.127.224.0/20
        servicecidr: 100.126.4.0/22
      versions:
        kubernetes: v1.18.0
        orbiter: v0.18.0
      workers:
      - nodes: 1
        pool: workers
        provider: kvm
        updatesdisabled: false
providers:
  kvm:
    kind: orbiter.caos.ch/StaticProvider
    version: v1
    spec:
      remoteuser: orbiter
      remotepublickeypath: /home/orbiter/.ssh/authorized_keys
      keys:
        bootstrapkeyprivate:
{private}        bootstrapkeypublic:
{public}      pools:
        masters:
        - id: first
          hostname: master01
          ip: 192.168.122.61
        workers:
        - id: second
          hostname: worker01
          ip: 192.168.122.83
"
    )
}

/// The orbos Orb written to a temporary directory (removed on drop): `orbiter.yml`,
/// `masterkey` (with its trailing newline) and `expected-<field>` with the exact plaintext of
/// each secret (`bootstrapkeyprivate`, `bootstrapkeypublic`, `kubeconfig`).
pub struct OrbosOrb {
    dir: tempfile::TempDir,
}

impl OrbosOrb {
    /// Writes the files.
    pub fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("orb-orbos-")
            .tempdir()
            .expect("create temp dir for the orbos Orb");
        let files = [
            ("orbiter.yml", orbiter_yml(MASTERKEY)),
            ("masterkey", format!("{MASTERKEY}\n")),
            (
                "expected-bootstrapkeyprivate",
                BOOTSTRAPKEYPRIVATE.to_owned(),
            ),
            ("expected-bootstrapkeypublic", BOOTSTRAPKEYPUBLIC.to_owned()),
            ("expected-kubeconfig", KUBECONFIG.to_owned()),
        ];
        for (name, content) in files {
            let path = dir.path().join(name);
            std::fs::write(&path, content)
                .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        }
        Self { dir }
    }

    /// The directory holding the files.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The orbos `orbiter.yml`.
    pub fn orbiter_yml(&self) -> PathBuf {
        self.dir.path().join("orbiter.yml")
    }

    /// The masterkey file (ends in `'\n'`).
    pub fn masterkey(&self) -> PathBuf {
        self.dir.path().join("masterkey")
    }

    /// `expected-<field>`: the exact plaintext of a secret.
    pub fn expected(&self, field: &str) -> PathBuf {
        self.dir.path().join(format!("expected-{field}"))
    }
}

impl Default for OrbosOrb {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The OpenSSL vectors of `orb-secrets/tests/legacy.rs`, made with
    /// `(printf IV; openssl enc -aes-256-cfb -K <masterkey zero-padded> -iv IV) | base64 | tr '+/' '-_'`:
    /// [`encrypt`] is checked against OpenSSL, not against the decoder it feeds.
    #[test]
    fn encrypt_matches_openssl_aes_256_cfb() {
        let iv: [u8; 16] = std::array::from_fn(|i| i as u8);
        assert_eq!(
            encrypt(
                "legacy-test-masterkey",
                iv,
                "kubeconfig: not a real one\nline two with ünïcödé\n".as_bytes()
            ),
            "AAECAwQFBgcICQoLDA0OD8_2J7m0g-zHCe7eQjSRZqE5lHKQ2FtC4s00_Q83jD5-koZVxkSJmnRLzK8qQN_5qE1jXseg"
        );
        let iv: [u8; 16] = std::array::from_fn(|i| 0xf0 - 0x0f * i as u8);
        // One trailing newline of the masterkey is trimmed, as orbos did; `==` padding kept.
        assert_eq!(
            encrypt("legacy-test-masterkey\n", iv, b"short\n"),
            "8OHSw7Sllod4aVpLPC0eD11jF9jbZA=="
        );
    }

    #[test]
    fn the_orb_has_three_distinct_secrets_and_the_kubernetes_cluster() {
        let text = orbiter_yml(MASTERKEY);
        assert_eq!(text.matches("encryption: AES256").count(), 3, "{text}");
        assert!(text.contains("kind: orbiter.caos.ch/KubernetesCluster"));
        assert!(
            !text.contains("fixture-not-a-real-key"),
            "plaintext in {text}"
        );
        let orb = OrbosOrb::new();
        let mk = std::fs::read_to_string(orb.masterkey()).unwrap();
        assert_eq!(mk, format!("{MASTERKEY}\n"));
        assert_eq!(std::fs::read_to_string(orb.orbiter_yml()).unwrap(), text);
        assert_eq!(
            std::fs::read(orb.expected("kubeconfig")).unwrap(),
            KUBECONFIG.as_bytes()
        );
    }
}
