//! Reading orbos secrets, once, for `orbctl import-orbos`. Read-only: this format has no
//! integrity protection and no KDF, so nothing here can write it.

use aes::Aes256;
use base64::Engine as _;
use base64::alphabet::URL_SAFE;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use cfb_mode::Decryptor;
use cfb_mode::cipher::KeyIvInit;
use zeroize::Zeroizing;

use crate::SecretError;

/// AES block / IV length.
const IV_LEN: usize = 16;
/// AES-256 key length; orbos zero-padded the masterkey to this.
const KEY_LEN: usize = 32;
/// Placeholder path in errors; the importer names the real place with [`SecretError::at`].
const PLACE: &str = "(orbos value)";

/// orbos wrote padded URL-safe base64; a hand-edited value without padding is still accepted.
const ORBOS_BASE64: GeneralPurpose = GeneralPurpose::new(
    &URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Decrypts an orbos secret `value` (the `value:` under `encryption: AES256`).
///
/// AES-256-CFB (full-block CFB-128, Go `cipher.NewCFBDecrypter` / `openssl aes-256-cfb`), key =
/// masterkey bytes (one trailing `'\n'` trimmed) zero-padded to 32, IV = first 16 bytes of the
/// base64url value. As in orbos, the only possible check is that the result is UTF-8.
///
/// # Errors
/// [`SecretError::InvalidMasterkey`] for an empty masterkey or one longer than 32 bytes;
/// [`SecretError::Malformed`] (path `(orbos value)`, rename with [`SecretError::at`]) for bad
/// base64, a value shorter than the IV, or a result that is not UTF-8 (wrong masterkey, or the
/// value was modified).
pub fn decrypt_orbos(masterkey: &str, value: &str) -> Result<Zeroizing<Vec<u8>>, SecretError> {
    let mk = masterkey.strip_suffix('\n').unwrap_or(masterkey).as_bytes();
    if mk.is_empty() || mk.len() > KEY_LEN {
        return Err(SecretError::InvalidMasterkey {
            reason: format!(
                "an orbos masterkey has 1 to {KEY_LEN} bytes, this one has {}; \
                 hint: pass the masterkey of the orbos Orb (from its orbconfig)",
                if mk.is_empty() { "none" } else { "more" }
            ),
        });
    }
    let malformed = |reason: String| SecretError::Malformed {
        path: PLACE.to_owned(),
        reason,
    };
    let raw = ORBOS_BASE64.decode(value.trim()).map_err(|e| {
        malformed(format!(
            "value is not URL-safe base64 as orbos wrote it ({e}); hint: copy the value unchanged from the orbos orbiter.yml"
        ))
    })?;
    if raw.len() < IV_LEN {
        return Err(malformed(format!(
            "value decodes to {} bytes, an orbos secret has at least the {IV_LEN}-byte IV; \
             hint: copy the value unchanged from the orbos orbiter.yml",
            raw.len()
        )));
    }
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    key[..mk.len()].copy_from_slice(mk);
    let (iv, ciphertext) = raw.split_at(IV_LEN);
    let mut plain = Zeroizing::new(ciphertext.to_vec());
    let key_ref: &[u8; KEY_LEN] = &key;
    let iv_ref: &[u8; IV_LEN] = iv.try_into().expect("split_at(IV_LEN) yields IV_LEN bytes");
    Decryptor::<Aes256>::new(key_ref.into(), iv_ref.into()).decrypt(&mut plain);
    if std::str::from_utf8(&plain).is_err() {
        return Err(malformed(
            "it does not decrypt to UTF-8 text: the masterkey is wrong or the value was modified \
             (orbos secrets carry no integrity check); hint: pass the masterkey of the orbos Orb (from its orbconfig)"
                .to_owned(),
        ));
    }
    Ok(plain)
}
