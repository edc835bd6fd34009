//! The one error type of this crate. Messages name the place and give a hint, and never carry
//! plaintext or key material.

/// What went wrong with a masterkey, the keyring or a secret.
#[derive(thiserror::Error, Debug)]
pub enum SecretError {
    /// The masterkey does not produce the key-check value stored in `keyring.yml`.
    #[error(
        "the masterkey does not match this Orb's keyring.yml (its key check differs); \
         hint: check the masterkey in ~/.orb/config, or the orb config given with -f/--orbconfig or ORBCONFIG"
    )]
    WrongMasterkey,

    /// Authentication failed although the key (key check) and the path match.
    #[error(
        "secret at {path} was modified: it fails authentication with this Orb's key; \
         hint: restore it from git history or write it again (orbctl writesecret {path})"
    )]
    Tampered { path: String },

    /// The envelope was sealed for another path and copied here.
    #[error(
        "ciphertext at {path} was sealed for {sealed_for}; copying ciphertexts between fields is refused; \
         hint: write the secret again at {path} (orbctl writesecret {path})"
    )]
    Moved { path: String, sealed_for: String },

    /// The envelope's `encrypted:` tag names a format this version does not read.
    #[error(
        "secret at {path} has envelope version {version:?}, but this orbctl reads only \"v1\"; \
         hint: upgrade orbctl, or write the secret again"
    )]
    UnsupportedVersion { path: String, version: String },

    /// The envelope (or orbos value) cannot be decoded at all.
    #[error("secret at {path} is malformed: {reason}")]
    Malformed { path: String, reason: String },

    /// `keyring.yml` is unreadable or has values out of range. `file` is the place: the file
    /// name, followed by `:line:col` when the problem has a position.
    #[error("{file}: {reason}")]
    Keyring { file: String, reason: String },

    /// The masterkey itself is unusable (empty, too short, too long for orbos).
    #[error("invalid masterkey: {reason}")]
    InvalidMasterkey { reason: String },
}

impl SecretError {
    /// Replaces the secret path in path-carrying variants. [`crate::legacy::decrypt_orbos`] does
    /// not know where its value came from; the importer names the place with this.
    #[must_use]
    pub fn at(self, place: &str) -> SecretError {
        let place = place.to_owned();
        match self {
            SecretError::Tampered { .. } => SecretError::Tampered { path: place },
            SecretError::Moved { sealed_for, .. } => SecretError::Moved {
                path: place,
                sealed_for,
            },
            SecretError::UnsupportedVersion { version, .. } => SecretError::UnsupportedVersion {
                path: place,
                version,
            },
            SecretError::Malformed { reason, .. } => SecretError::Malformed {
                path: place,
                reason,
            },
            other => other,
        }
    }
}
