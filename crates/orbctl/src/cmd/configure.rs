//! `orbctl configure`: write the orb config, prove read and write access to the repository, and
//! make sure the repository's keyring matches the masterkey — creating it for a new Orb, or
//! re-encrypting every secret in one commit when the masterkey changes.

use crate::args::{ConfigureArgs, Global};
use crate::context::{open_repo, read_keyring, read_text};
use anyhow::{Context as _, Result, anyhow, bail};
use orb_model::{ORBITER_YML, Orb};
use orb_repo::{FileChange, OrbConfig};
use orb_secrets::{Keyring, Masterkey, SecretError};

pub fn run(g: &Global, a: ConfigureArgs) -> Result<()> {
    let path = OrbConfig::resolve_path(g.orbconfig.as_deref());
    let previous = if path.exists() {
        Some(OrbConfig::load(&path)?)
    } else {
        None
    };
    let repokey = match &a.repokey_file {
        Some(f) => Some(
            std::fs::read_to_string(f)
                .with_context(|| format!("cannot read --repokey-file {}", f.display()))?
                .into(),
        ),
        None => previous
            .as_ref()
            .filter(|p| p.url == a.repourl)
            .and_then(|p| p.repokey.clone()),
    };
    let old_masterkey = previous
        .as_ref()
        .filter(|p| p.url == a.repourl)
        .map(|p| Masterkey::new(p.masterkey.expose().to_owned()))
        .transpose()?;
    let (masterkey, generated) = match (&a.masterkey, &old_masterkey) {
        (Some(m), _) => (Masterkey::new(m.clone()).context("--masterkey")?, false),
        (None, Some(old)) => (old.clone(), false),
        (None, None) => (Masterkey::generate(), true),
    };
    let config = OrbConfig {
        url: a.repourl.clone(),
        repokey,
        masterkey: masterkey.expose().to_owned().into(),
    };

    let mut repo = open_repo(g, &path, &config)?;
    repo.check_access()
        .context("the repository must be readable and writable with this configuration")?;
    eprintln!(
        "repository {}: read and write access confirmed",
        repo.display_url()
    );

    let message = match read_keyring(&repo.snapshot())? {
        None => "Orb keyring created\n\nby orbctl configure",
        Some(k) if k.unlock(&masterkey).is_ok() => "Orb keyring checked\n\nby orbctl configure",
        Some(_) => {
            "Masterkey rotated: every secret re-encrypted\n\nby orbctl configure --masterkey"
        }
    };
    let outcome = super::update(&mut repo, message, |snap| {
        let keyring = read_keyring(snap)?;
        match keyring {
            None => {
                if read_text(snap, ORBITER_YML)?.is_some_and(|t| t.contains("encrypted: v1")) {
                    bail!(
                        "{ORBITER_YML} holds secrets but the repository has no {}: they cannot be decrypted by any masterkey\n  hint: restore {} from the repository history",
                        Keyring::FILE,
                        Keyring::FILE
                    );
                }
                let (k, _) = Keyring::generate(&masterkey)?;
                Ok(vec![FileChange::write(Keyring::FILE, k.to_yaml())])
            }
            Some(k) => match k.unlock(&masterkey) {
                Ok(_) => Ok(Vec::new()),
                Err(SecretError::WrongMasterkey) => {
                    let old = old_masterkey.as_ref().ok_or_else(|| {
                        anyhow!("the masterkey does not match this Orb's {}\n  hint: pass the Orb's masterkey with --masterkey, or configure from the machine that has it and rotate there", Keyring::FILE)
                    })?;
                    rotate(snap, &k, old, &masterkey)
                }
                Err(e) => Err(e.into()),
            },
        }
    })?;
    config.save(&path)?;
    match (&outcome, generated) {
        (orb_repo::UpdateOutcome::Unchanged, _) => eprintln!("keyring: matches the masterkey"),
        (_, true) => eprintln!(
            "keyring: created with a new generated masterkey (kept only in {})",
            path.display()
        ),
        _ => super::report(&outcome, "keyring"),
    }
    eprintln!("orb config written to {}", path.display());
    Ok(())
}

/// Re-encrypts every secret from the old masterkey to the new one under a fresh salt.
fn rotate(
    snap: &orb_repo::Snapshot<'_>,
    keyring: &Keyring,
    old: &Masterkey,
    new: &Masterkey,
) -> Result<Vec<FileChange>> {
    let old_key = keyring
        .unlock(old)
        .context("neither the new nor the previous masterkey unlocks this Orb's keyring")?;
    let (new_keyring, new_key) = Keyring::generate(new)?;
    let mut changes = vec![FileChange::write(Keyring::FILE, new_keyring.to_yaml())];
    if let Some(text) = read_text(snap, ORBITER_YML)? {
        let mut orb = Orb::parse(&text, ORBITER_YML)?;
        let mut n = 0;
        for (path, slot) in orb.secrets_mut() {
            if let Some(env) = slot.as_ref() {
                let plain = old_key.open(&path, env)?;
                *slot = Some(new_key.seal(&path, &plain));
                n += 1;
            }
        }
        eprintln!("masterkey rotation: re-encrypting {n} secrets");
        changes.push(FileChange::write(ORBITER_YML, orb.to_yaml()));
    }
    Ok(changes)
}
