//! `orbctl configure`: write the orb config, prove read and write access to the repository, and
//! make sure the repository's keyring matches the masterkey — creating it for a new Orb, or
//! rotating: every secret the Orb has sealed re-encrypted in one commit (see `rotation`).

mod rotation;

use crate::args::{ConfigureArgs, Global, MasterkeySource};
use crate::context::{open_repo, read_keyring, read_text};
use anyhow::{Context as _, Result, anyhow, bail};
use orb_model::ORBITER_YML;
use orb_repo::{FileChange, OrbConfig};
use orb_secrets::{Keyring, Masterkey, SecretError};
use std::io::Read as _;
use zeroize::Zeroizing;

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
    let (masterkey, generated) = match (given_masterkey(&a.masterkey)?, &old_masterkey) {
        (Some(m), _) => (m, false),
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

    let keyring = read_keyring(&repo.snapshot())?;
    let rotating = keyring
        .as_ref()
        .is_some_and(|k| matches!(k.unlock(&masterkey), Err(SecretError::WrongMasterkey)));
    if rotating {
        let old = old_masterkey.as_ref().ok_or_else(|| {
            anyhow!("the masterkey does not match this Orb's {}\n  hint: pass the Orb's masterkey, or configure from the machine that has it and rotate there", Keyring::FILE)
        })?;
        let outcome = rotation::rotate(g, &path, repo, old, &masterkey)?;
        config.save(&path)?;
        rotation::unstage_here(&path);
        super::report(&outcome, "masterkey rotation");
        eprintln!("orb config written to {}", path.display());
        return Ok(());
    }
    let message = match keyring {
        None => "Orb keyring created\n\nby orbctl configure",
        Some(_) => "Orb keyring checked\n\nby orbctl configure",
    };
    let outcome = super::update(&mut repo, message, |snap| match read_keyring(snap)? {
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
            Err(SecretError::WrongMasterkey) => bail!(
                "{} was rotated by someone else meanwhile; run `orbctl configure` again",
                Keyring::FILE
            ),
            Err(e) => Err(e.into()),
        },
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

/// The masterkey from `--masterkey`, `--masterkey-file` or `--masterkey-stdin`, if given.
fn given_masterkey(src: &MasterkeySource) -> Result<Option<Masterkey>> {
    let text = if let Some(v) = &src.masterkey {
        Zeroizing::new(v.clone())
    } else if let Some(f) = &src.masterkey_file {
        Zeroizing::new(
            std::fs::read_to_string(f)
                .with_context(|| format!("cannot read --masterkey-file {}", f.display()))?,
        )
    } else if src.masterkey_stdin {
        let mut s = Zeroizing::new(String::new());
        std::io::stdin()
            .read_to_string(&mut s)
            .context("cannot read the masterkey from standard input")?;
        s
    } else {
        return Ok(None);
    };
    let trimmed = text.strip_suffix('\n').unwrap_or(&text);
    let trimmed = trimmed.strip_suffix('\r').unwrap_or(trimmed);
    Ok(Some(
        Masterkey::new(trimmed.to_owned()).context("the given masterkey")?,
    ))
}
