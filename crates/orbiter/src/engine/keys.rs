//! The Orb's secret key as this Orbiter derives it: argon2id is slow on purpose, so the key is
//! kept per keyring. When the repository's keyring no longer opens with the masterkey in hand
//! (a person rotated it), the Orbiter looks for the new one itself, so it keeps working with no
//! takeoff: its orb config re-read (the person's own config, on this host), then a masterkey
//! staged beside it (`orbctl configure` puts one on the Orbiter's machine before it pushes the
//! rotation), which is adopted into the config once it opens the keyring.

use anyhow::{Result, anyhow};
use orb_repo::{OrbConfig, Snapshot};
use orb_secrets::{Keyring, Masterkey, SecretError, SecretKey};
use std::path::PathBuf;

pub struct Keys {
    masterkey: Masterkey,
    /// The orb config this Orbiter runs with, when it has one on disk.
    config: Option<PathBuf>,
    cache: Option<(Keyring, SecretKey)>,
}

impl Keys {
    pub fn new(masterkey: Masterkey, config: Option<PathBuf>) -> Keys {
        Keys {
            masterkey,
            config,
            cache: None,
        }
    }

    /// The keyring the current key belongs to.
    pub fn keyring(&self) -> Option<&Keyring> {
        self.cache.as_ref().map(|(k, _)| k)
    }

    /// The secret key for the keyring of `snap`.
    pub fn key_for(&mut self, snap: &Snapshot<'_>) -> Result<SecretKey> {
        let text = snap.read(Keyring::FILE)?.ok_or_else(|| {
            anyhow!(
                "the repository has no {}; run `orbctl configure` first",
                Keyring::FILE
            )
        })?;
        let keyring = Keyring::from_yaml(&String::from_utf8_lossy(&text), Keyring::FILE)?;
        self.key_for_keyring(keyring)
    }

    pub fn key_for_keyring(&mut self, keyring: Keyring) -> Result<SecretKey> {
        if let Some((k, key)) = &self.cache
            && *k == keyring
        {
            return Ok(key.clone());
        }
        match keyring.unlock(&self.masterkey) {
            Ok(key) => {
                self.cache = Some((keyring, key.clone()));
                Ok(key)
            }
            Err(SecretError::WrongMasterkey) => self.rotated(keyring),
            Err(e) => Err(e.into()),
        }
    }

    /// The keyring was re-made with another masterkey: find it beside the config.
    fn rotated(&mut self, keyring: Keyring) -> Result<SecretKey> {
        let not_found = || {
            anyhow!(
                "{} does not open with this Orbiter's masterkey (it was rotated); hint: `orbctl configure --masterkey-file F` stages the new one for a running Orbiter, or run `orbctl takeoff` again",
                Keyring::FILE
            )
        };
        let Some(path) = self.config.clone() else {
            return Err(not_found());
        };
        let reread = OrbConfig::load(&path).ok().map(|c| c.masterkey);
        let staged = OrbConfig::read_staged_masterkey(&path)?;
        for (candidate, is_staged) in [(reread, false), (staged, true)] {
            let Some(candidate) = candidate else { continue };
            let Ok(mk) = Masterkey::new(candidate.expose().to_owned()) else {
                continue;
            };
            if let Ok(key) = keyring.unlock(&mk) {
                if is_staged {
                    adopt(&path, &mk)?;
                }
                tracing::info!(
                    "the masterkey was rotated; this Orbiter uses the new one from now on"
                );
                self.masterkey = mk;
                self.cache = Some((keyring, key.clone()));
                return Ok(key);
            }
        }
        Err(not_found())
    }
}

/// Writes the staged masterkey into the config and removes the staged copy.
fn adopt(path: &std::path::Path, mk: &Masterkey) -> Result<()> {
    let mut config = OrbConfig::load(path)?;
    config.masterkey = mk.expose().to_owned().into();
    config.save(path)?;
    let staged = OrbConfig::staged_masterkey_path(path);
    if let Err(e) = std::fs::remove_file(&staged)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        return Err(anyhow!("cannot remove {}: {e}", staged.display()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(dir: &std::path::Path, masterkey: &str) -> PathBuf {
        let path = dir.join("config");
        OrbConfig {
            url: "file:///nowhere".into(),
            repokey: None,
            masterkey: masterkey.to_owned().into(),
        }
        .save(&path)
        .unwrap();
        path
    }

    #[test]
    fn a_staged_masterkey_is_adopted_when_the_keyring_needs_it() {
        let dir = tempfile::tempdir().unwrap();
        let (old, new) = (
            "the old masterkey, long enough",
            "the new masterkey, long enough",
        );
        let path = config(dir.path(), old);
        let mut keys = Keys::new(Masterkey::new(old.to_owned()).unwrap(), Some(path.clone()));
        let (first, key) = Keyring::generate(&Masterkey::new(old.to_owned()).unwrap()).unwrap();
        let sealed = key.seal("x.y", b"v");
        assert_eq!(
            &keys
                .key_for_keyring(first)
                .unwrap()
                .open("x.y", &sealed)
                .unwrap()[..],
            b"v"
        );

        // Rotated: without a staged key the error says what to do, and nothing changes.
        let (rotated, new_key) =
            Keyring::generate(&Masterkey::new(new.to_owned()).unwrap()).unwrap();
        let e = keys
            .key_for_keyring(rotated.clone())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("rotated") && e.contains("orbctl configure"),
            "{e}"
        );
        // Staged: adopted into the config, the staged copy removed.
        OrbConfig::stage_masterkey(&path, new).unwrap();
        let key = keys.key_for_keyring(rotated).unwrap();
        let sealed = new_key.seal("x.y", b"w");
        assert_eq!(&key.open("x.y", &sealed).unwrap()[..], b"w");
        assert_eq!(OrbConfig::load(&path).unwrap().masterkey.expose(), new);
        assert!(!OrbConfig::staged_masterkey_path(&path).exists());
    }

    #[test]
    fn a_staged_key_that_does_not_open_the_keyring_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let old = "the old masterkey, long enough";
        let path = config(dir.path(), old);
        OrbConfig::stage_masterkey(&path, "some other masterkey, long enough").unwrap();
        let mut keys = Keys::new(Masterkey::new(old.to_owned()).unwrap(), Some(path.clone()));
        let (rotated, _) = Keyring::generate(
            &Masterkey::new("a third masterkey, long enough".to_owned()).unwrap(),
        )
        .unwrap();
        assert!(keys.key_for_keyring(rotated).is_err());
        assert_eq!(OrbConfig::load(&path).unwrap().masterkey.expose(), old);
        assert!(OrbConfig::staged_masterkey_path(&path).exists());
    }
}
