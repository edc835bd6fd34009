//! `orbctl node list|exec|reboot|replace`.

use crate::args::{Global, Output};
use crate::context::{Ctx, KeyCache, read_orb, read_text};
use anyhow::{Context as _, Result, anyhow, bail};
use orb_model::registry::MachineFlag;
use orb_model::{Located, ORBITER_YML};
use orb_repo::FileChange;
use orbiter::credentials::maintenance_private_path;
use orbiter::machine::MachineKey;
use orbiter::state::{self, GeneratedSecrets, HostKeys, OrbCurrent};
use std::io::Write as _;

fn current(ctx: &Ctx) -> Result<OrbCurrent> {
    match read_text(&ctx.repo.snapshot(), state::CURRENT)? {
        Some(t) => state::parse(&t, state::CURRENT),
        None => Ok(OrbCurrent::new()),
    }
}

pub fn list(g: &Global, output: Output) -> Result<()> {
    let ctx = Ctx::open(g)?;
    let current = current(&ctx)?;
    if output == Output::Json {
        println!("{}", serde_json::to_string_pretty(&current.machines)?);
        return Ok(());
    }
    if current.machines.is_empty() {
        println!("no machines recorded yet (orbctl takeoff brings the Orb up)");
        return Ok(());
    }
    println!(
        "{:<24} {:<12} {:<16} {:<12} {:<10} {:<4} {:<8} ERROR",
        "ID", "POOL", "IP", "STATE", "AGENT", "GEN", "UPDATES"
    );
    for (k, m) in &current.machines {
        let updates = match (m.pending_updates, m.reboot_required) {
            (n, true) => format!("{}+reboot", n.map_or("?".into(), |n| n.to_string())),
            (Some(n), false) => n.to_string(),
            (None, false) => "-".into(),
        };
        println!(
            "{:<24} {:<12} {:<16} {:<12} {:<10} {:<4} {:<8} {}",
            k.to_string(),
            m.pool,
            m.ip,
            m.state,
            m.agent.as_deref().unwrap_or("-"),
            m.generation
                .map(|g| g.to_string())
                .unwrap_or_else(|| "-".into()),
            updates,
            m.error.as_deref().unwrap_or("")
        );
    }
    Ok(())
}

pub fn exec(g: &Global, id: &str, command: &[String]) -> Result<()> {
    let key = MachineKey::parse(id).map_err(|e| anyhow!(e))?;
    let ctx = Ctx::open(g)?;
    let snap = ctx.repo.snapshot();
    let current = current(&ctx)?;
    let m = current.machines.get(&key).ok_or_else(|| {
        anyhow!(
            "no machine {key}; known: {}",
            current
                .machines
                .keys()
                .map(|k| k.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )
    })?;
    let hostkeys: HostKeys = state::parse(
        &read_text(&snap, state::HOSTKEYS)?.unwrap_or_default(),
        state::HOSTKEYS,
    )
    .unwrap_or_default();
    let pinned = hostkeys
        .keys
        .get(&key)
        .ok_or_else(|| anyhow!("{key}: its host key is not recorded yet"))?;
    let secrets: GeneratedSecrets = state::parse(
        &read_text(&snap, state::SECRETS)?
            .ok_or_else(|| anyhow!("no maintenance keys recorded yet"))?,
        state::SECRETS,
    )?;
    let path = maintenance_private_path(&key.provider);
    let env = secrets
        .secrets
        .get(&path)
        .ok_or_else(|| anyhow!("no maintenance key for provider {}", key.provider))?;
    let secret = KeyCache::new(ctx.masterkey()?)
        .key_for(&snap)?
        .open(&path, env)?;
    let user = read_orb(&snap)?
        .providers
        .get(&key.provider)
        .map_or("orbiter".to_owned(), |n| {
            n.spec.model().ssh_user().to_owned()
        });
    let dir = tempfile::Builder::new().prefix("orbctl-exec-").tempdir()?;
    let key_file = dir.path().join("key");
    let kh = dir.path().join("known_hosts");
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        let mut f = std::fs::OpenOptions::new()
            .create_new(true)
            .write(true)
            .mode(0o600)
            .open(&key_file)?;
        f.write_all(&secret)?;
    }
    std::fs::write(&kh, format!("{} {}\n", m.ip, pinned.0))?;
    let mut ssh = std::process::Command::new("ssh");
    ssh.args([
        "-F",
        "/dev/null",
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        "LogLevel=ERROR",
    ])
    .arg("-o")
    .arg(format!("UserKnownHostsFile={}", kh.display()))
    .arg("-i")
    .arg(&key_file);
    if command.is_empty() {
        ssh.arg("-t");
    }
    // `-l` and `--`: neither the user nor the address can be read as an option.
    ssh.arg("-l").arg(&user).arg("--").arg(&m.ip).args(command);
    let status = ssh
        .status()
        .context("cannot run ssh (install openssh-client)")?;
    drop(dir);
    std::process::exit(status.code().unwrap_or(255));
}

/// Adds machines to `rebootrequired` or `replacementrequired` of their provider.
pub fn flag(g: &Global, ids: &[String], reboot: bool) -> Result<()> {
    let keys: Vec<MachineKey> = ids
        .iter()
        .map(|i| MachineKey::parse(i).map_err(|e| anyhow!(e)))
        .collect::<Result<_>>()?;
    let mut ctx = Ctx::open(g)?;
    let known = current(&ctx)?.machines;
    for k in &keys {
        if !known.contains_key(k) {
            bail!(
                "no machine {k}; known: {}",
                known
                    .keys()
                    .map(|k| k.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }
    let what = if reboot { "Reboot" } else { "Replace" };
    let msg = format!(
        "{what} {}\n\nby orbctl node {}",
        ids.join(", "),
        what.to_lowercase()
    );
    let outcome = super::update(&mut ctx.repo, &msg, |snap| {
        let mut orb = read_orb(snap)?;
        for k in &keys {
            let node = orb
                .providers
                .get_mut(&k.provider)
                .ok_or_else(|| anyhow!("provider {} is not in {ORBITER_YML}", k.provider))?;
            let flag = if reboot {
                MachineFlag::Reboot
            } else {
                MachineFlag::Replace
            };
            let list = node.spec.flags_mut(flag);
            if !list.iter().any(|l| l.value == k.machine) {
                list.push(Located::new(k.machine.clone()));
            }
        }
        let text = orb.to_yaml();
        orb_model::Orb::parse(&text, ORBITER_YML)?;
        Ok(vec![FileChange::write(ORBITER_YML, text)])
    })?;
    super::report(&outcome, ORBITER_YML);
    Ok(())
}
