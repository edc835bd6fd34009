//! Writing Orbiter's files: the observed state, committed only when it differs from the head;
//! generated secrets, sealed into the head's own file (never over a rotation); flags cleared
//! in orbiter.yml, re-derived from the newest head. No secret value is ever rendered here.

use super::{Engine, Loaded, read};
use crate::action::Plan;
use crate::machine::MachineKey;
use crate::observed::{MachineObserved, Observed, Reach};
use crate::recorded::machine_ready;
use crate::state::{self, GeneratedSecrets, HostKeys, MachineCurrent, OrbCurrent};
use crate::text;
use anyhow::{Result, anyhow, bail};
use orb_model::registry::MachineFlag;
use orb_model::{ORBITER_YML, Orb};
use orb_repo::{FileChange, OrbRepo, Snapshot, UpdateOutcome};
use orb_secrets::Keyring;
use std::collections::BTreeMap;
use zeroize::Zeroizing;

/// Machines' errors named in one commit message; the rest are in orbiter/current.yml.
const MESSAGE_ERRORS: usize = 20;
/// Items of an agent's report recorded (a document has far fewer; more is a broken agent).
const REPORT_ITEMS: usize = 2000;

impl Engine {
    /// Seals `new` (plaintexts by path) into `orbiter/secrets.yml` of the newest head and
    /// commits at once. Only into a head whose keyring is the one this key opened: sealed with
    /// a rotated-away key, the secrets would be lost.
    pub(super) fn seal_secrets(
        &mut self,
        l: &mut Loaded,
        new: &BTreeMap<String, Zeroizing<Vec<u8>>>,
        message: &str,
    ) -> Result<()> {
        let (keyring, key) = (l.keyring.clone(), l.key.clone());
        let mut last = None;
        update(&mut self.repo, message, |snap| {
            let head = read(snap, Keyring::FILE)?
                .map(|t| Keyring::from_yaml(&t, Keyring::FILE))
                .transpose()?;
            if head.as_ref() != Some(&keyring) {
                bail!(
                    "the Orb's masterkey was rotated meanwhile; nothing was sealed (the next iteration uses the new key)"
                );
            }
            let mut file: GeneratedSecrets = match read(snap, state::SECRETS)? {
                Some(t) => state::parse(&t, state::SECRETS)?,
                None => GeneratedSecrets::new(),
            };
            let mut changed = false;
            for (path, plain) in new {
                let same = file
                    .secrets
                    .get(path)
                    .and_then(|env| key.open(path, env).ok())
                    .is_some_and(|old| old[..] == plain[..]);
                if !same {
                    file.secrets.insert(path.clone(), key.seal(path, plain));
                    changed = true;
                }
            }
            let changes = if changed {
                vec![FileChange::write(state::SECRETS, state::render(&file))]
            } else {
                Vec::new()
            };
            last = Some(file);
            Ok(changes)
        })?;
        if let Some(file) = last {
            l.secrets = file;
        }
        Ok(())
    }

    /// Removes a machine from `rebootrequired`/`replacementrequired` in orbiter.yml, re-derived
    /// from the newest head (people may have pushed meanwhile); an invalid head is left alone.
    pub(super) fn clear_flag(&mut self, machine: &MachineKey, flag: MachineFlag) -> Result<()> {
        let what = match flag {
            MachineFlag::Reboot => "reboot",
            MachineFlag::Replace => "replacement",
        };
        let msg = format!("Machine {machine}: {what} done, flag cleared\n\nby Orbiter");
        update(&mut self.repo, &msg, |snap| {
            let Some(text) = read(snap, ORBITER_YML)? else {
                return Ok(Vec::new());
            };
            let Ok(mut orb) = Orb::parse(&text, ORBITER_YML) else {
                return Ok(Vec::new());
            };
            let Some(node) = orb.providers.get_mut(&machine.provider) else {
                return Ok(Vec::new());
            };
            let list = node.spec.flags_mut(flag);
            let before = list.len();
            list.retain(|id| id.value != machine.machine);
            if list.len() == before {
                return Ok(Vec::new());
            }
            Ok(vec![FileChange::write(ORBITER_YML, orb.to_yaml())])
        })?;
        Ok(())
    }

    /// Clears people's rollout flags (`undo`, `retry`) the plan acted on, in orbiter.yml of
    /// the newest head; an invalid head is left alone.
    pub(super) fn clear_rollout_flags(&mut self, flags: &[(String, &'static str)]) -> Result<()> {
        let names: Vec<String> = flags.iter().map(|(p, f)| format!("{p} {f}")).collect();
        let msg = format!(
            "Rollout: {} done, flag cleared\n\nby Orbiter",
            names.join(", ")
        );
        update(&mut self.repo, &msg, |snap| {
            let Some(text) = read(snap, ORBITER_YML)? else {
                return Ok(Vec::new());
            };
            let Ok(mut orb) = Orb::parse(&text, ORBITER_YML) else {
                return Ok(Vec::new());
            };
            let mut changed = false;
            for (pool, flag) in flags {
                if let Some(s) = orb.rollout.pools.get_mut(pool) {
                    let slot = match *flag {
                        "undo" => &mut s.value.undo,
                        _ => &mut s.value.retry,
                    };
                    changed |= slot.take().is_some();
                }
            }
            Ok(if changed {
                vec![FileChange::write(ORBITER_YML, orb.to_yaml())]
            } else {
                Vec::new()
            })
        })?;
        Ok(())
    }

    /// Commits Orbiter's files if they differ from the head. Returns whether it committed.
    pub fn commit(&mut self, l: &Loaded, observed: &Observed, p: &Plan) -> Result<bool> {
        let files = render_state(l, observed, p);
        let mut message = String::from("Current state changed\n\nby Orbiter\n");
        for (key, e) in l.errors.iter().take(MESSAGE_ERRORS) {
            message.push_str(&format!("\n{key}: {}", text::remote_line(e, 300)));
        }
        if l.errors.len() > MESSAGE_ERRORS {
            message.push_str(&format!(
                "\n… and {} more machines with errors (orbiter/current.yml)",
                l.errors.len() - MESSAGE_ERRORS
            ));
        }
        let outcome = update(&mut self.repo, &message, |snap| {
            let mut files = files.clone();
            // Rollout records hold envelopes sealed with the key this iteration read; after
            // a rotation meanwhile, the head's (re-sealed) records stay.
            let head_keyring = read(snap, Keyring::FILE)?
                .map(|t| Keyring::from_yaml(&t, Keyring::FILE))
                .transpose()?;
            let rotated = head_keyring.as_ref() != Some(&l.keyring);
            if rotated {
                files.retain(|path, _| !path.starts_with(crate::rollout::RECORDS_DIR));
            }
            // Pins: the head's file (a person may have just unpinned a machine) plus this
            // iteration's own changes.
            if let Some(text) = read(snap, state::HOSTKEYS)? {
                let mut head: HostKeys = state::parse(&text, state::HOSTKEYS)?;
                for (m, k) in &l.pin_changes {
                    match k {
                        Some(k) => head.keys.insert(m.clone(), k.clone()),
                        None => head.keys.remove(m),
                    };
                }
                files.insert(state::HOSTKEYS.to_owned(), state::render(&head));
            }
            let mut changes: Vec<FileChange> = files
                .iter()
                .map(|(path, text)| FileChange::write(path.clone(), text.as_bytes()))
                .collect();
            for path in snap.list()? {
                let owned = path.starts_with("orbiter/nodes/")
                    || (!rotated && path.starts_with(crate::rollout::RECORDS_DIR));
                if owned && !files.contains_key(&path) {
                    changes.push(FileChange::delete(path));
                }
            }
            Ok(changes)
        })?;
        let committed = matches!(outcome, UpdateOutcome::Committed { .. });
        if committed {
            self.metrics.commit();
        }
        Ok(committed)
    }
}

/// What the Orbiter-managed files (but the sealed secrets, see [`Engine::seal_secrets`]) look
/// like for this state.
pub fn render_state(l: &Loaded, observed: &Observed, p: &Plan) -> BTreeMap<String, String> {
    let mut files = BTreeMap::new();
    files.insert(state::HOSTKEYS.to_owned(), state::render(&l.hostkeys));
    for (_, kind) in &l.clusters {
        files.extend(kind.files());
    }
    let mut current = OrbCurrent::new();
    current.desired_error = l.desired_error.clone();
    current.destroyed = l.destroyed;
    current.waiting = p.waiting.iter().map(|w| text::remote(w, 2000)).collect();
    for m in observed.machines() {
        let key = &m.machine.key;
        if let Some(doc) = l.recorded.node_desired.get(key) {
            match doc.render() {
                Ok(text) => {
                    files.insert(state::node_desired_path(key), text);
                }
                Err(e) => tracing::error!(machine = %key, "node-desired record not written: {e}"),
            }
        }
        if let Some(c) = &m.current {
            let mut c = c.clone();
            c.last_pass = None;
            text::report(&mut c, REPORT_ITEMS);
            if let Ok(text) = c.to_yaml() {
                files.insert(state::node_current_path(key), text);
            }
        }
        current
            .machines
            .insert(key.clone(), machine_current(m, l, p));
    }
    files.insert(state::CURRENT.to_owned(), state::render(&current));
    for (pool, r) in &p.rollouts {
        files.insert(crate::rollout::record_path(pool), state::render(r));
    }
    files
}

fn machine_current(m: &MachineObserved, l: &Loaded, p: &Plan) -> MachineCurrent {
    let key = &m.machine.key;
    let blocked = p
        .blocked
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, e)| e.clone());
    let (state, error) = match &m.reach {
        Reach::HostKeyChanged { .. } => ("refused", blocked),
        Reach::Unreachable(_) | Reach::AuthFailed(_) => ("unreachable", blocked),
        Reach::NotPinned(_) => ("new", blocked),
        _ if l.errors.contains_key(key) => ("failed", l.errors.get(key).cloned()),
        _ if machine_ready(m, &l.recorded) => ("ready", None),
        _ => (
            "converging",
            m.current
                .as_ref()
                .and_then(|c| c.items.iter().find_map(|i| i.last_error.clone())),
        ),
    };
    MachineCurrent {
        pool: m.machine.pool.to_string(),
        ip: m.machine.ip.to_string(),
        state: state.to_owned(),
        agent: m
            .agent
            .as_ref()
            .map(|a| text::remote_line(&a.version, 100))
            .filter(|v| !v.is_empty()),
        generation: m.current.as_ref().and_then(|c| c.generation),
        error: error.map(|e| text::remote(&e, 2000)),
        pending_updates: m.current.as_ref().and_then(|c| c.pending_updates),
        reboot_required: m.current.as_ref().is_some_and(|c| c.reboot_required),
    }
}

/// `OrbRepo::update` with anyhow errors.
pub fn update<F>(repo: &mut OrbRepo, message: &str, mut derive: F) -> Result<UpdateOutcome>
where
    F: FnMut(&Snapshot<'_>) -> Result<Vec<FileChange>>,
{
    match repo.update(message, |s| derive(s).map_err(|e| e.into())) {
        Ok(o) => Ok(o),
        Err(orb_repo::RepoError::Derive(e)) => Err(anyhow!(e)),
        Err(e) => Err(e.into()),
    }
}
