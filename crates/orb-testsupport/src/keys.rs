//! SSH key material for tests, made by the real `ssh-keygen`.

use std::path::Path;

use crate::run::{checked, clean};

/// Generates an ed25519 key pair without passphrase: (private key in OpenSSH PEM form,
/// public key line `ssh-ed25519 AAAA… comment`).
pub fn keypair() -> (String, String) {
    let dir = tempfile::Builder::new()
        .prefix("orb-key-")
        .tempdir()
        .expect("create temp dir for key pair");
    let key = dir.path().join("id_ed25519");
    generate(&key, "orbiter-test");
    let private = std::fs::read_to_string(&key).expect("read generated private key");
    let public = std::fs::read_to_string(key.with_extension("pub")).expect("read public key");
    (private, public.trim_end().to_owned())
}

/// `ssh-keygen -t ed25519 -N '' -f PATH`; PATH must not exist yet.
pub(crate) fn generate(path: &Path, comment: &str) {
    checked(
        clean("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
            .arg(path),
    );
}

/// The `SHA256:…` fingerprint of a public key line, as `ssh-keygen -lf` prints it.
pub fn fingerprint(public_key_line: &str) -> String {
    let dir = tempfile::Builder::new()
        .prefix("orb-fp-")
        .tempdir()
        .expect("create temp dir for fingerprint");
    let file = dir.path().join("key.pub");
    std::fs::write(&file, format!("{public_key_line}\n")).expect("write public key");
    let out = checked(clean("ssh-keygen").arg("-lf").arg(&file));
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .nth(1)
        .unwrap_or_else(|| panic!("unexpected ssh-keygen -lf output: {text}"))
        .to_owned()
}
