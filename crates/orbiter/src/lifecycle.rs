//! Takeoff (iterate until the Orb converged) and teardown (remove what Orbiter installed, destroy
//! Local machines, commit that the Orb was destroyed).

use crate::engine::{Engine, key_blob, session, update};
use crate::observe::as_root;
use crate::state::{self, OrbCurrent};
use anyhow::{Result, bail};
use orb_repo::FileChange;
use std::time::{Duration, Instant};

/// Iterates until converged (every machine reports its desired generation in sync, nothing
/// waits) or `timeout`. A destroyed Orb is brought back first.
pub fn takeoff(engine: &mut Engine, timeout: Duration) -> Result<()> {
    update(&mut engine.repo, "Takeoff\n\nby orbctl takeoff", |snap| {
        let Some(text) = snap.read(state::CURRENT)? else {
            return Ok(Vec::new());
        };
        let mut current: OrbCurrent =
            state::parse(&String::from_utf8_lossy(&text), state::CURRENT)?;
        if !current.destroyed {
            return Ok(Vec::new());
        }
        current.destroyed = false;
        Ok(vec![FileChange::write(
            state::CURRENT,
            state::render(&current),
        )])
    })?;
    let started = Instant::now();
    let mut last_waiting = Vec::new();
    loop {
        let r = engine.iterate(true)?;
        for s in &r.applied {
            tracing::info!("  done: {s}");
        }
        for s in &r.failed {
            tracing::warn!("  FAILED: {s}");
        }
        if r.plan.waiting != last_waiting {
            for w in &r.plan.waiting {
                tracing::info!("  waiting: {w}");
            }
            last_waiting = r.plan.waiting.clone();
        }
        for (m, why) in &r.plan.blocked {
            tracing::info!("  blocked: {m}: {why}");
        }
        if r.converged {
            tracing::info!("converged after {:.0}s", started.elapsed().as_secs_f64());
            return Ok(());
        }
        if started.elapsed() > timeout {
            bail!(
                "not converged after {:?}; `orbctl node list` shows what each machine reports",
                timeout
            );
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// Runs `script` as root on `m`; a failure is added to `problems` as "`what` failed".
fn run_as_root(
    engine: &Engine,
    l: &crate::engine::Loaded,
    m: &crate::observed::MachineObserved,
    script: &str,
    what: &str,
    problems: &mut Vec<String>,
) -> bool {
    let key = &m.machine.key;
    let Some((t, pinned, login)) = session(l, m) else {
        return false;
    };
    match engine
        .ssh
        .exec(&t, pinned, login, &as_root(&t.user, script), None)
    {
        Ok(o) if o.success() => true,
        Ok(o) => {
            problems.push(format!(
                "{key}: {what} failed: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            ));
            false
        }
        Err(e) => {
            problems.push(format!("{key}: {e}"));
            false
        }
    }
}

/// Removes the agent and its state from every reachable machine, gives Static machines back to
/// the person's bootstrap key, destroys Local machines, and commits `destroyed: true`.
pub fn teardown(engine: &mut Engine) -> Result<Vec<String>> {
    let l = engine.load()?;
    let observed = engine.observe(&l);
    let mut problems = Vec::new();
    let logged_in: Vec<_> = observed
        .machines()
        .filter(|m| m.reach.logged_in())
        .collect();
    // First the Orbiter inside the Orb, wherever it runs: it would re-install what follows.
    let remove_orbiter = crate::handover::remove_script();
    for m in &logged_in {
        run_as_root(
            engine,
            &l,
            m,
            &remove_orbiter,
            "removing the Orbiter service",
            &mut problems,
        );
    }
    // Then what cluster kinds put on their machines (services, data, keys).
    for (id, kind) in &l.clusters {
        let command = kind.teardown_command();
        let (provider, pool) = kind.pool();
        for m in crate::clusters::pool_machines(&observed, provider, pool)
            .into_iter()
            .filter(|m| m.reach.logged_in())
        {
            let what = format!("removing cluster {id}");
            if run_as_root(engine, &l, m, &command, &what, &mut problems) {
                tracing::info!("{}: cluster {id} removed", m.machine.key);
            }
        }
    }
    for m in observed.machines().filter(|m| !m.reach.logged_in()) {
        problems.push(format!(
            "{}: not reachable, left as it is ({:?})",
            m.machine.key, m.reach
        ));
    }
    let uninstall = node_protocol::install::uninstall_script();
    for m in &logged_in {
        let key = &m.machine.key;
        let Some((t, pinned, login)) = session(&l, m) else {
            continue;
        };
        if run_as_root(engine, &l, m, &uninstall, "uninstall", &mut problems) {
            tracing::info!("{key}: node-agent removed");
        }
        let creds = l.creds.get(&key.provider).cloned().unwrap_or_default();
        // Machines Orbiter did not create go back to the person's own key.
        let given_back = l
            .providers
            .get(&key.provider)
            .is_some_and(|p| !p.creates_machines());
        if given_back && creds.bootstrap_public.is_none() {
            problems.push(format!(
                "{key}: no {}.bootstrapkeypublic secret, so the person's key cannot be put back; the maintenance key stays authorized",
                key.provider
            ));
        }
        if let (Some(bootstrap), Some(maint)) = (
            creds.bootstrap_public.as_deref(),
            creds.maintenance_public.as_deref(),
        ) {
            let cmd = format!(
                "f=~/.ssh/authorized_keys; (grep -qF {b} $f || echo {bl} >> $f) && grep -vF {mk} $f > $f.new; mv $f.new $f",
                b = crate::ssh::quote(key_blob(bootstrap)),
                bl = crate::ssh::quote(bootstrap.trim()),
                mk = crate::ssh::quote(key_blob(maint))
            );
            match engine.ssh.exec(&t, pinned, login, &cmd, None) {
                Ok(o) if o.success() => {
                    tracing::info!("{key}: bootstrap key restored, maintenance key removed")
                }
                Ok(o) => problems.push(format!(
                    "{key}: restoring the bootstrap key failed: {}",
                    String::from_utf8_lossy(&o.stderr).trim()
                )),
                Err(e) => problems.push(format!("{key}: {e}")),
            }
        }
        engine.ssh.close(&t);
    }
    for (pid, p) in &l.providers {
        if let Err(e) = p.teardown() {
            problems.push(format!("provider {pid}: {e:#}"));
        }
    }
    update(
        &mut engine.repo,
        "Orb destroyed\n\nby orbctl teardown",
        |snap| {
            let mut changes = Vec::new();
            for path in snap.list()? {
                if path.starts_with("orbiter/") && path != state::CURRENT {
                    changes.push(FileChange::delete(path));
                }
            }
            let mut current = OrbCurrent::new();
            current.destroyed = true;
            changes.push(FileChange::write(state::CURRENT, state::render(&current)));
            Ok(changes)
        },
    )?;
    Ok(problems)
}
