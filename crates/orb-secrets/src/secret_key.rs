//! Sealing and opening secrets with the Orb's derived key.

use std::fmt;

use chacha20poly1305::aead::{AeadInOut, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use zeroize::Zeroizing;

use crate::envelope::{self, NONCE_LEN};
use crate::kdf::KEY_LEN;
use crate::{Envelope, SecretError};

/// HKDF info for the key of [`SecretKey::digest`].
const DIGEST_INFO: &[u8] = b"orbiter/digest/v1";

/// The Orb's secret-sealing key, derived from the masterkey through `keyring.yml`
/// (see [`crate::Keyring::unlock`]). Debug output is redacted and the memory is zeroized on drop.
#[derive(Clone)]
pub struct SecretKey(Zeroizing<[u8; KEY_LEN]>);

impl SecretKey {
    pub(crate) fn from_derived(key: Zeroizing<[u8; KEY_LEN]>) -> SecretKey {
        SecretKey(key)
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        let key: &[u8; KEY_LEN] = &self.0;
        XChaCha20Poly1305::new(key.into())
    }

    /// Encrypts `plaintext` for the secret at `path` (e.g. `lab.bootstrapkeyprivate`) with a
    /// fresh random nonce; the path is authenticated, so the result opens only at that path.
    ///
    /// # Panics
    /// When the operating system's random number generator fails.
    #[must_use]
    pub fn seal(&self, path: &str, plaintext: &[u8]) -> Envelope {
        let mut nonce = [0u8; NONCE_LEN];
        crate::os_random(&mut nonce);
        let mut buf = Zeroizing::new(plaintext.to_vec());
        self.cipher()
            .encrypt_in_place(<&XNonce>::from(&nonce), &envelope::aad(path), &mut *buf)
            .expect("XChaCha20-Poly1305 encrypts any message shorter than 256 GiB");
        Envelope::new(path, &nonce, &buf)
    }

    /// A keyed digest of `data` (`hmac-sha256:<hex>`), for recording that a secret changed
    /// without recording anything a reader could test a guess against. The key is derived
    /// from the sealing key, so it changes when the masterkey is rotated.
    pub fn digest(&self, data: &[u8]) -> String {
        use hmac::{KeyInit as _, Mac as _};
        let hk = hkdf::Hkdf::<sha2::Sha256>::from_prk(self.0.as_slice())
            .expect("a 32-byte key is a valid HKDF-SHA256 PRK");
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        hk.expand(DIGEST_INFO, key.as_mut_slice())
            .expect("32 bytes are a valid HKDF-SHA256 output length");
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key.as_slice())
            .expect("HMAC takes any key length");
        mac.update(data);
        let tag = mac.finalize().into_bytes();
        let hex: String = tag.iter().map(|b| format!("{b:02x}")).collect();
        format!("hmac-sha256:{hex}")
    }

    /// Decrypts the envelope found at `path`.
    ///
    /// # Errors
    /// [`SecretError::UnsupportedVersion`] for an unknown `encrypted:` tag,
    /// [`SecretError::Moved`] when the envelope was sealed for another path,
    /// [`SecretError::Malformed`] when `value` is not a sealed secret, and
    /// [`SecretError::Tampered`] when authentication fails (the key was already proven by the
    /// keyring's key check, so the ciphertext, nonce or recorded path was changed).
    pub fn open(&self, path: &str, env: &Envelope) -> Result<Zeroizing<Vec<u8>>, SecretError> {
        let (nonce, sealed) = env.parts(path)?;
        let mut buf = Zeroizing::new(sealed);
        self.cipher()
            .decrypt_in_place(<&XNonce>::from(&nonce), &envelope::aad(path), &mut *buf)
            .map_err(|_| SecretError::Tampered {
                path: path.to_owned(),
            })?;
        Ok(buf)
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_redacted() {
        let k = SecretKey::from_derived(Zeroizing::new([0x41; KEY_LEN]));
        assert_eq!(format!("{k:?}"), "SecretKey(<redacted>)");
    }

    #[test]
    fn nonces_are_fresh() {
        let k = SecretKey::from_derived(Zeroizing::new([1; KEY_LEN]));
        let a = k.seal("lab.key", b"same");
        let b = k.seal("lab.key", b"same");
        assert_ne!(a.value, b.value);
        assert_eq!(*k.open("lab.key", &a).unwrap(), b"same");
        assert_eq!(*k.open("lab.key", &b).unwrap(), b"same");
    }

    #[test]
    fn digests_are_keyed_and_stable() {
        let k = SecretKey::from_derived(Zeroizing::new([1; KEY_LEN]));
        let other = SecretKey::from_derived(Zeroizing::new([2; KEY_LEN]));
        let d = k.digest(b"hunter2");
        assert!(d.starts_with("hmac-sha256:") && d.len() == 12 + 64, "{d}");
        assert_eq!(d, k.digest(b"hunter2"));
        assert_ne!(d, k.digest(b"hunter3"));
        assert_ne!(d, other.digest(b"hunter2"), "another key, another digest");
        let plain: String = {
            use sha2::Digest as _;
            sha2::Sha256::digest(b"hunter2")
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect()
        };
        assert!(!d.contains(&plain), "not a plain hash");
    }

    #[test]
    fn empty_plaintext_round_trips() {
        let k = SecretKey::from_derived(Zeroizing::new([1; KEY_LEN]));
        let e = k.seal("lab.key", b"");
        assert!(k.open("lab.key", &e).unwrap().is_empty());
    }
}
