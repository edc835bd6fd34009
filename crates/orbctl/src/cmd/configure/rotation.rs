//! Masterkey rotation: everything the Orb has sealed — the secrets in orbiter.yml (providers',
//! clusters', software's) and those Orbiter generated (`orbiter/secrets.yml`: maintenance keys,
//! cluster certificates) and the revisions a rollout may go back to (`orbiter/rollouts/`) —
//! re-encrypted under a new keyring in one commit. If anything does not
//! open, nothing is written. A running Orbiter keeps working across it without a takeoff: the
//! new masterkey is staged beside its orb config first (here, and over SSH on the Orb's
//! machines that host one), and it adopts the staged key once the keyring needs it.

use crate::args::Global;
use crate::context::read_text;
use anyhow::{Context as _, Result, anyhow, bail};
use orb_model::{ORBITER_YML, Orb};
use orb_repo::{FileChange, OrbConfig, OrbRepo, Snapshot, UpdateOutcome};
use orb_secrets::{Keyring, Masterkey, SecretKey};
use orbiter::engine::keys::Keys;
use orbiter::engine::{Engine, session};
use orbiter::handover::{stage_masterkey_script, unstage_masterkey_script};
use orbiter::machine::MachineKey;
use orbiter::observe::as_root;
use orbiter::state::{self, GeneratedSecrets};
use std::path::Path;

pub fn rotate(
    _g: &Global,
    config_path: &Path,
    repo: OrbRepo,
    old: &Masterkey,
    new: &Masterkey,
) -> Result<UpdateOutcome> {
    let snap = repo.snapshot();
    let old_keyring = crate::context::read_keyring(&snap)?
        .ok_or_else(|| anyhow!("the repository has no {}", Keyring::FILE))?;
    let old_key = old_keyring
        .unlock(old)
        .context("neither the new nor the previous masterkey unlocks this Orb's keyring")?;
    let (new_keyring, new_key) = Keyring::generate(new)?;
    let keys = Resealing {
        old_keyring,
        old_key,
        new_keyring,
        new_key,
    };
    // Everything must open before anything is staged or pushed.
    let (n_orb, n_generated) = keys.count(&snap)?;
    drop(snap);
    eprintln!(
        "masterkey rotation: {n_orb} secrets in {ORBITER_YML} and {n_generated} in {} open; staging the new masterkey for running Orbiters",
        state::SECRETS
    );
    OrbConfig::stage_masterkey(config_path, new.expose())?;
    let mut engine = Engine::new(
        repo,
        Keys::new(old.clone(), None),
        orbiter::agent_binary::AgentBinary::none(),
    )?;
    let staged = stage_remote(&mut engine, new);
    let mut repo = engine.repo;
    let outcome = super::super::update(
        &mut repo,
        "Masterkey rotated: every secret re-encrypted\n\nby orbctl configure",
        |snap| keys.reseal(snap),
    );
    if outcome.is_err() {
        unstage_here(config_path);
        let mut engine = Engine::new(
            repo,
            Keys::new(old.clone(), None),
            orbiter::agent_binary::AgentBinary::none(),
        )?;
        unstage_remote(&mut engine, &staged);
    }
    outcome
}

/// Removes the masterkey staged beside this host's orb config (its config has it now, or the
/// rotation did not land).
pub fn unstage_here(config_path: &Path) {
    let staged = OrbConfig::staged_masterkey_path(config_path);
    let _ = std::fs::remove_file(staged);
}

struct Resealing {
    old_keyring: Keyring,
    old_key: SecretKey,
    new_keyring: Keyring,
    new_key: SecretKey,
}

impl Resealing {
    /// How many secrets each file holds, after proving every one opens.
    fn count(&self, snap: &Snapshot<'_>) -> Result<(usize, usize)> {
        let changes = self.reseal(snap)?;
        let n = |path: &str| {
            changes
                .iter()
                .find(|c| c.path == path)
                .and_then(|c| c.content.as_deref())
                .map_or(0, count_envelopes)
        };
        Ok((n(ORBITER_YML), n(state::SECRETS)))
    }

    /// The rotated files, derived from `snap`; an error if anything does not open.
    fn reseal(&self, snap: &Snapshot<'_>) -> Result<Vec<FileChange>> {
        match crate::context::read_keyring(snap)? {
            Some(k) if k == self.old_keyring => {}
            _ => bail!(
                "{} changed meanwhile (another rotation?); nothing was rotated, run `orbctl configure` again",
                Keyring::FILE
            ),
        }
        let mut changes = vec![FileChange::write(Keyring::FILE, self.new_keyring.to_yaml())];
        if let Some(text) = read_text(snap, ORBITER_YML)? {
            let mut orb = Orb::parse(&text, ORBITER_YML).map_err(|e| {
                anyhow!("{e}\n  (an invalid {ORBITER_YML} cannot be rotated: nothing was written; fix it first)")
            })?;
            for (path, slot) in orb.secrets_mut() {
                if let Some(env) = slot.as_ref() {
                    let plain = self.old_key.open(&path, env).with_context(|| {
                        format!("{ORBITER_YML}: secret {path} does not open; nothing was rotated")
                    })?;
                    *slot = Some(self.new_key.seal(&path, &plain));
                }
            }
            changes.push(FileChange::write(ORBITER_YML, orb.to_yaml()));
        }
        if let Some(text) = read_text(snap, state::SECRETS)? {
            let mut file: GeneratedSecrets =
                state::parse(&text, state::SECRETS).with_context(|| {
                    format!("{} cannot be read; nothing was rotated", state::SECRETS)
                })?;
            for (path, env) in file.secrets.iter_mut() {
                let plain = self.old_key.open(path, env).with_context(|| {
                    format!(
                        "{}: secret {path} does not open; nothing was rotated",
                        state::SECRETS
                    )
                })?;
                *env = self.new_key.seal(path, &plain);
            }
            changes.push(FileChange::write(state::SECRETS, state::render(&file)));
        }
        for path in snap.list()? {
            if orbiter::rollout::record_pool(&path).is_none() {
                continue;
            }
            let Some(text) = read_text(snap, &path)? else {
                continue;
            };
            let mut record: orbiter::rollout::RolloutRecord = state::parse(&text, &path)
                .with_context(|| format!("{path} cannot be read; nothing was rotated"))?;
            for rev in record.revisions.values_mut() {
                for (secret, env) in rev.secrets.iter_mut() {
                    let plain = self.old_key.open(secret, env).with_context(|| {
                        format!("{path}: secret {secret} does not open; nothing was rotated")
                    })?;
                    *env = self.new_key.seal(secret, &plain);
                }
            }
            changes.push(FileChange::write(path, state::render(&record)));
        }
        Ok(changes)
    }
}

fn count_envelopes(yaml: &[u8]) -> usize {
    String::from_utf8_lossy(yaml)
        .matches("encrypted: v1")
        .count()
}

/// Stages `new` on the machine that hosts the Orbiter (`orbiter/host.yml`; only that machine
/// holds the orb config, and no other machine may learn the masterkey); returns it. If it
/// cannot be reached, the Orbiter there stops at the rotation until `orbctl takeoff` runs again.
fn stage_remote(engine: &mut Engine, new: &Masterkey) -> Vec<MachineKey> {
    let host = match orbiter_host(engine) {
        Ok(Some(h)) => h,
        Ok(None) => return Vec::new(),
        Err(e) => {
            eprintln!("masterkey rotation: where the Orbiter runs is not known ({e:#})");
            return Vec::new();
        }
    };
    let l = match engine.load() {
        Ok(l) => l,
        Err(e) => {
            eprintln!("masterkey rotation: the Orbiter on {host} is not told ({e:#})");
            return Vec::new();
        }
    };
    let observed = engine.observe(&l);
    let script = stage_masterkey_script();
    let mut staged = Vec::new();
    for m in observed.machines().filter(|m| m.machine.key == host) {
        let Some((t, pinned, login)) = session(&l, m) else {
            eprintln!(
                "masterkey rotation: {host} is not reachable; the Orbiter there stops until `orbctl takeoff` runs again"
            );
            continue;
        };
        let cmd = as_root(&t.user, &script);
        match engine
            .ssh
            .exec(&t, pinned, login, &cmd, Some(new.expose().as_bytes()))
        {
            Ok(o) if o.success() && String::from_utf8_lossy(&o.stdout).contains("staged") => {
                eprintln!(
                    "masterkey rotation: staged for the Orbiter on {}",
                    m.machine.key
                );
                staged.push(m.machine.key.clone());
            }
            Ok(o) if o.success() => eprintln!(
                "masterkey rotation: {} has no Orbiter installed any more",
                m.machine.key
            ),
            Ok(o) => eprintln!(
                "masterkey rotation: staging on {} failed: {}",
                m.machine.key,
                String::from_utf8_lossy(&o.stderr).trim()
            ),
            Err(e) => eprintln!("masterkey rotation: {}: {e}", m.machine.key),
        }
    }
    staged
}

/// The machine `orbiter/host.yml` names, if the Orbiter was handed over to one.
fn orbiter_host(engine: &mut Engine) -> Result<Option<MachineKey>> {
    engine.repo.fetch()?;
    let snap = engine.repo.snapshot();
    read_text(&snap, state::ORBITER_HOST)?
        .map(|t| state::parse::<state::OrbiterHost>(&t, state::ORBITER_HOST).map(|h| h.machine))
        .transpose()
}

fn unstage_remote(engine: &mut Engine, staged: &[MachineKey]) {
    if staged.is_empty() {
        return;
    }
    let Ok(l) = engine.load() else { return };
    let observed = engine.observe(&l);
    for m in observed
        .machines()
        .filter(|m| staged.contains(&m.machine.key))
    {
        if let Some((t, pinned, login)) = session(&l, m) {
            let cmd = as_root(&t.user, &unstage_masterkey_script());
            let _ = engine.ssh.exec(&t, pinned, login, &cmd, None);
        }
    }
}
