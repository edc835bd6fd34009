//! Stretching the masterkey (argon2id) and splitting it into purpose keys (HKDF-SHA256).

use argon2::{Algorithm, Argon2, Params, Version};
use hkdf::Hkdf;
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::Masterkey;

/// Length of the stretched key and of every subkey.
pub(crate) const KEY_LEN: usize = 32;
/// HKDF info for the key that seals secrets.
const SECRETS_INFO: &[u8] = b"orbiter/secrets/v1";
/// HKDF info for the key-check value stored in `keyring.yml`.
const KEYCHECK_INFO: &[u8] = b"orbiter/keycheck/v1";

/// The purpose keys derived from one masterkey and keyring.
pub(crate) struct Derived {
    pub(crate) secrets: Zeroizing<[u8; KEY_LEN]>,
    pub(crate) keycheck: [u8; KEY_LEN],
}

/// Runs argon2id over the masterkey and expands the result with HKDF.
///
/// The parameters must already be range-checked (see `Keyring`); argon2 rejecting them anyway
/// is reported as the `Err` string.
pub(crate) fn derive(
    mk: &Masterkey,
    salt: &[u8],
    memory_kib: u32,
    iterations: u32,
    parallelism: u32,
) -> Result<Derived, String> {
    let params = Params::new(memory_kib, iterations, parallelism, Some(KEY_LEN))
        .map_err(|e| format!("argon2id parameters rejected: {e}"))?;
    let mut stretched = Zeroizing::new([0u8; KEY_LEN]);
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password_into(mk.expose().as_bytes(), salt, stretched.as_mut_slice())
        .map_err(|e| format!("argon2id failed: {e}"))?;

    // argon2id output is already uniform and salted; HKDF only separates purposes.
    let hk = Hkdf::<Sha256>::new(None, stretched.as_slice());
    let mut secrets = Zeroizing::new([0u8; KEY_LEN]);
    let mut keycheck = [0u8; KEY_LEN];
    hk.expand(SECRETS_INFO, secrets.as_mut_slice())
        .map_err(|e| format!("HKDF expand failed: {e}"))?;
    hk.expand(KEYCHECK_INFO, &mut keycheck)
        .map_err(|e| format!("HKDF expand failed: {e}"))?;
    Ok(Derived { secrets, keycheck })
}

/// Compares without an early exit, so timing does not tell how much of a key check matched.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mk(s: &str) -> Masterkey {
        Masterkey::new(s).unwrap()
    }

    #[test]
    fn deterministic_and_purpose_separated() {
        let a = derive(&mk("0123456789abcdef"), &[7; 16], 8, 1, 1).unwrap();
        let b = derive(&mk("0123456789abcdef"), &[7; 16], 8, 1, 1).unwrap();
        assert_eq!(*a.secrets, *b.secrets);
        assert_eq!(a.keycheck, b.keycheck);
        assert_ne!(*a.secrets, a.keycheck);
    }

    #[test]
    fn every_input_changes_the_keys() {
        let base = derive(&mk("0123456789abcdef"), &[7; 16], 8, 1, 1).unwrap();
        let others = [
            derive(&mk("0123456789abcdeF"), &[7; 16], 8, 1, 1).unwrap(),
            derive(&mk("0123456789abcdef"), &[8; 16], 8, 1, 1).unwrap(),
            derive(&mk("0123456789abcdef"), &[7; 16], 16, 1, 1).unwrap(),
            derive(&mk("0123456789abcdef"), &[7; 16], 8, 2, 1).unwrap(),
            derive(&mk("0123456789abcdef"), &[7; 16], 16, 1, 2).unwrap(),
        ];
        for o in &others {
            assert_ne!(*o.secrets, *base.secrets);
            assert_ne!(o.keycheck, base.keycheck);
        }
    }

    #[test]
    fn argon2_rejection_is_reported() {
        let e = derive(&mk("0123456789abcdef"), &[7; 16], 8, 1, 2)
            .err()
            .unwrap();
        assert!(e.contains("argon2id parameters rejected"), "{e}");
    }

    #[test]
    fn constant_time_eq_works() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert!(constant_time_eq(b"", b""));
    }
}
