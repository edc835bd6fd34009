//! The masterkey exactly as a person gave it (or as orbctl generated it).

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use zeroize::Zeroizing;

use crate::SecretError;

/// Shortest accepted masterkey, in characters. argon2id slows guessing down, it cannot make a
/// six-letter word safe.
pub(crate) const MIN_CHARS: usize = 16;

/// The Orb's masterkey as given by the person (human passphrase or generated).
///
/// Debug output is redacted and the memory is zeroized on drop.
#[derive(Clone)]
pub struct Masterkey(Zeroizing<String>);

impl Masterkey {
    /// Accepts a masterkey read from a flag, a file or the orb config.
    ///
    /// One trailing line ending (`\n` or `\r\n`) is removed, as files and `echo` add one.
    ///
    /// # Errors
    /// [`SecretError::InvalidMasterkey`] when it is empty or shorter than 16 characters.
    pub fn new(s: impl Into<String>) -> Result<Masterkey, SecretError> {
        let mut s = Zeroizing::new(s.into());
        if s.ends_with('\n') {
            s.pop();
            if s.ends_with('\r') {
                s.pop();
            }
        }
        if s.is_empty() {
            return Err(SecretError::InvalidMasterkey {
                reason:
                    "it is empty; hint: leave --masterkey out and orbctl generates a strong one"
                        .into(),
            });
        }
        let chars = s.chars().count();
        if chars < MIN_CHARS {
            return Err(SecretError::InvalidMasterkey {
                reason: format!(
                    "it has {chars} characters, at least {MIN_CHARS} are needed; \
                     hint: use a longer passphrase, or leave --masterkey out and orbctl generates a strong one"
                ),
            });
        }
        Ok(Masterkey(s))
    }

    /// A fresh masterkey: 32 random bytes, base64url without padding (43 characters).
    ///
    /// # Panics
    /// When the operating system's random number generator fails.
    #[must_use]
    pub fn generate() -> Masterkey {
        let mut bytes = Zeroizing::new([0u8; 32]);
        crate::os_random(bytes.as_mut_slice());
        Masterkey(Zeroizing::new(URL_SAFE_NO_PAD.encode(bytes.as_slice())))
    }

    /// The masterkey text. Only for writing the orb config; never log it.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Masterkey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Masterkey(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_one_line_ending_only() {
        assert_eq!(
            Masterkey::new("0123456789abcdef\n").unwrap().expose(),
            "0123456789abcdef"
        );
        assert_eq!(
            Masterkey::new("0123456789abcdef\r\n").unwrap().expose(),
            "0123456789abcdef"
        );
        assert_eq!(
            Masterkey::new("0123456789abcdef\n\n").unwrap().expose(),
            "0123456789abcdef\n"
        );
        assert_eq!(
            Masterkey::new(" 0123456789abcdef ").unwrap().expose(),
            " 0123456789abcdef "
        );
    }

    #[test]
    fn rejects_empty_and_short_with_hint() {
        for empty in ["", "\n", "\r\n"] {
            let e = Masterkey::new(empty).unwrap_err().to_string();
            assert!(e.contains("empty") && e.contains("hint:"), "{e}");
        }
        let e = Masterkey::new("short-secret\n").unwrap_err().to_string();
        assert!(
            e.contains("12 characters") && e.contains("at least 16"),
            "{e}"
        );
        assert!(!e.contains("short-secret"), "message leaks the key: {e}");
        // Characters, not bytes: 15 multi-byte characters are still too short.
        assert!(Masterkey::new("ä".repeat(15)).is_err());
        assert!(Masterkey::new("ä".repeat(16)).is_ok());
    }

    #[test]
    fn generated_keys_are_43_url_safe_chars_and_differ() {
        let a = Masterkey::generate();
        let b = Masterkey::generate();
        assert_eq!(a.expose().len(), 43);
        assert!(
            a.expose()
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        );
        assert_ne!(a.expose(), b.expose());
        assert!(Masterkey::new(a.expose()).is_ok());
    }

    #[test]
    fn debug_is_redacted() {
        let mk = Masterkey::new("correct horse battery staple").unwrap();
        let dbg = format!("{mk:?}");
        assert_eq!(dbg, "Masterkey(<redacted>)");
    }
}
