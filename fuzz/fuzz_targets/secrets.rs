//! Secrets as they come from Git: `keyring.yml` (`Keyring::from_yaml`), sealed envelopes
//! (`{encrypted, path, value}`, opened with a real key), orbos values for the import, and
//! masterkeys as people type them.
#![no_main]

use libfuzzer_sys::fuzz_target;
use orb_secrets::{Envelope, KdfParams, Keyring, Masterkey, SecretKey, legacy};
use std::sync::OnceLock;

/// A real key with cheap KDF parameters, made once per process.
fn key() -> &'static SecretKey {
    static KEY: OnceLock<SecretKey> = OnceLock::new();
    KEY.get_or_init(|| {
        let mk = Masterkey::new("fuzzing-masterkey-0123456789").unwrap();
        Keyring::generate_with(&mk, KdfParams::argon2id(8, 1, 1))
            .unwrap()
            .1
    })
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(k) = Keyring::from_yaml(&text, "keyring.yml") {
        // Only cheap parameters are worth unlocking on every input.
        if k.kdf.memory_kib <= 64 && k.kdf.iterations <= 2 {
            let mk = Masterkey::new("fuzzing-masterkey-0123456789").unwrap();
            let _ = k.unlock(&mk);
        }
        let _ = Keyring::from_yaml(&k.to_yaml(), "keyring.yml").expect("a keyring re-reads");
    }
    if let Ok(env) = serde_saphyr::from_str::<Envelope>(&text) {
        let _ = key().open(&env.path, &env);
        let _ = key().open("lab.key", &env);
    }
    let (first, rest) = text.split_once('\n').unwrap_or((&text, ""));
    let _ = legacy::decrypt_orbos(first, rest);
    let _ = legacy::decrypt_orbos("orbos-masterkey", &text);
    let _ = Masterkey::new(text.to_string());
});
