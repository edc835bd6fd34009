//! Secrets of an Orb: how they are keyed, sealed into `orbiter.yml`, and imported from orbos.
//!
//! # Key derivation, and why
//!
//! People may pass a human passphrase as `--masterkey`, so the masterkey is never used as a key
//! directly (orbos did that, zero-padded). It is stretched once per Orb with **argon2id**
//! (64 MiB, 3 passes by default) and a random per-Orb salt kept in the public repository file
//! [`Keyring::FILE`]: every offline guess then costs a full argon2id run, and precomputed tables
//! for one Orb are useless for another. From the one stretched key **HKDF-SHA256** derives
//! independent subkeys by purpose (`orbiter/secrets/v1` for sealing, `orbiter/keycheck/v1` for
//! the key-check value in the keyring), so publishing the key check reveals nothing about the
//! sealing key, and later purposes get their own keys without another expensive stretch.
//!
//! The key check lets Orbiter say "wrong masterkey" before touching any secret; after it passed,
//! an authentication failure can only mean the ciphertext was modified ([`SecretError::Tampered`]).
//!
//! # Envelope
//!
//! A secret sits at its own position in the YAML as an [`Envelope`]: XChaCha20-Poly1305 with a
//! random 24-byte nonce, and the secret's path as associated data, so a ciphertext copied to
//! another field fails to open instead of silently becoming that field's value.
//!
//! # orbos
//!
//! [`legacy::decrypt_orbos`] reads the old unauthenticated AES-256-CFB format once, for the
//! import; nothing here can write it.
//!
//! This crate does no I/O: callers hand it text and bytes.

mod envelope;
mod error;
mod kdf;
mod keyring;
pub mod legacy;
mod masterkey;
mod secret_key;

pub use envelope::Envelope;
pub use error::SecretError;
pub use keyring::{KdfParams, Keyring};
pub use masterkey::Masterkey;
pub use secret_key::SecretKey;

/// Re-exported so callers name the zeroizing buffer type that [`SecretKey::open`] returns
/// without depending on `zeroize` themselves.
pub use zeroize::Zeroizing;

/// Fills `buf` from the operating system's random number generator.
///
/// # Panics
/// When the OS generator fails (on Linux the `getrandom` syscall does not fail once the pool is
/// initialised). Continuing without randomness would produce predictable keys or reused nonces,
/// so there is no sensible fallback.
pub(crate) fn os_random(buf: &mut [u8]) {
    getrandom::fill(buf).expect("the operating system's random number generator failed");
}
