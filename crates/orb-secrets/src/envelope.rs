//! The inline YAML form of a sealed secret and its byte layout.
//!
//! ```yaml
//! bootstrapkeyprivate:
//!   encrypted: v1                   # envelope version
//!   path: lab.bootstrapkeyprivate   # where it was sealed (diagnostics; the AAD binds it)
//!   value: <base64 std: nonce(24) || ciphertext || tag(16)>
//! ```

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

use crate::SecretError;

/// XChaCha20-Poly1305 nonce length.
pub(crate) const NONCE_LEN: usize = 24;
/// Poly1305 tag length.
pub(crate) const TAG_LEN: usize = 16;
/// Domain separation for the associated data; the NUL keeps prefix and path apart.
const AAD_PREFIX: &[u8] = b"orbiter-secret/v1\0";

/// A sealed secret at its position in `orbiter.yml`. Contains no plaintext, so Debug is fine.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Envelope {
    /// Envelope version; [`Envelope::VERSION`] is the only one so far.
    pub encrypted: String,
    /// The path the secret was sealed for.
    pub path: String,
    /// Standard base64 (with padding) of nonce || ciphertext || tag.
    pub value: String,
}

impl Envelope {
    /// The version this crate writes and reads.
    pub const VERSION: &'static str = "v1";

    pub(crate) fn new(path: &str, nonce: &[u8; NONCE_LEN], sealed: &[u8]) -> Envelope {
        let mut raw = Vec::with_capacity(NONCE_LEN + sealed.len());
        raw.extend_from_slice(nonce);
        raw.extend_from_slice(sealed);
        Envelope {
            encrypted: Envelope::VERSION.to_owned(),
            path: path.to_owned(),
            value: STANDARD.encode(raw),
        }
    }

    /// Checks version and path, then splits `value` into nonce and ciphertext-with-tag.
    /// The order matters: a moved envelope is reported as moved, not as tampered.
    pub(crate) fn parts(&self, path: &str) -> Result<([u8; NONCE_LEN], Vec<u8>), SecretError> {
        if self.encrypted != Envelope::VERSION {
            return Err(SecretError::UnsupportedVersion {
                path: path.to_owned(),
                version: self.encrypted.clone(),
            });
        }
        if self.path != path {
            return Err(SecretError::Moved {
                path: path.to_owned(),
                sealed_for: self.path.clone(),
            });
        }
        let malformed = |reason: String| SecretError::Malformed {
            path: path.to_owned(),
            reason: format!(
                "{reason}; hint: restore it from git history or write it again (orbctl writesecret {path})"
            ),
        };
        let mut raw = STANDARD
            .decode(self.value.trim())
            .map_err(|e| malformed(format!("value is not standard base64 ({e})")))?;
        if raw.len() < NONCE_LEN + TAG_LEN {
            return Err(malformed(format!(
                "value decodes to {} bytes, a sealed secret has at least {}",
                raw.len(),
                NONCE_LEN + TAG_LEN
            )));
        }
        let sealed = raw.split_off(NONCE_LEN);
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&raw);
        Ok((nonce, sealed))
    }
}

/// The associated data that binds a ciphertext to its path.
pub(crate) fn aad(path: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(AAD_PREFIX.len() + path.len());
    aad.extend_from_slice(AAD_PREFIX);
    aad.extend_from_slice(path.as_bytes());
    aad
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(value: &str) -> Envelope {
        Envelope {
            encrypted: "v1".into(),
            path: "lab.key".into(),
            value: value.into(),
        }
    }

    #[test]
    fn version_is_checked_first_then_path() {
        let mut e = env("!!");
        e.encrypted = "v9".into();
        e.path = "other.key".into();
        assert!(matches!(
            e.parts("lab.key"),
            Err(SecretError::UnsupportedVersion { ref version, .. }) if version == "v9"
        ));
        e.encrypted = "v1".into();
        assert!(matches!(
            e.parts("lab.key"),
            Err(SecretError::Moved { ref path, ref sealed_for }) if path == "lab.key" && sealed_for == "other.key"
        ));
    }

    #[test]
    fn bad_base64_and_short_values_are_malformed_and_name_the_path() {
        for value in ["not base64!", "AAAA", ""] {
            let err = env(value).parts("lab.key").unwrap_err();
            assert!(matches!(err, SecretError::Malformed { .. }), "{err:?}");
            let msg = err.to_string();
            assert!(msg.contains("secret at lab.key is malformed"), "{msg}");
            assert!(msg.contains("hint:"), "{msg}");
        }
    }

    #[test]
    fn layout_round_trips() {
        let nonce = [3u8; NONCE_LEN];
        let e = Envelope::new("lab.key", &nonce, &[9u8; TAG_LEN + 5]);
        let (n, sealed) = e.parts("lab.key").unwrap();
        assert_eq!(n, nonce);
        assert_eq!(sealed, vec![9u8; TAG_LEN + 5]);
    }

    #[test]
    fn aad_separates_prefix_and_path() {
        assert_eq!(aad("a.b"), b"orbiter-secret/v1\0a.b".to_vec());
    }
}
