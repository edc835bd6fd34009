//! `orbctl plan`, `takeoff`, `teardown`, `orbiter run`: the reconciler driven from the CLI.

use crate::args::{DaemonArgs, Global, Output, TakeoffArgs};
use crate::context::{Committer, Ctx, interactive};
use crate::picker::ask;
use anyhow::{Context as _, Result, bail};
use orbiter::daemon::{DaemonOptions, run as run_daemon};
use orbiter::engine::Engine;
use orbiter::handover;
use orbiter::machine::MachineKey;
use std::path::{Path, PathBuf};
use std::time::Duration;
use zeroize::Zeroizing;

fn engine(g: &Global) -> Result<(Engine, PathBuf, String)> {
    let ctx = Ctx::open_as(g, Committer::Orbiter)?;
    let orb_id = ctx.config.orb_id();
    let config_path = ctx.config_path.clone();
    Ok((ctx.engine()?, config_path, orb_id))
}

pub fn plan(g: &Global, output: Output) -> Result<()> {
    let (mut engine, _, _) = engine(g)?;
    let mut loaded = engine.load()?;
    let (_, plan) = engine.observe_and_plan(&mut loaded);
    if output == Output::Json {
        println!("{}", serde_json::to_string_pretty(&plan)?);
        return Ok(());
    }
    if let Some(e) = &loaded.desired_error {
        println!("orbiter.yml is invalid (nothing would be applied from it):\n{e}\n");
    }
    if plan.steps.is_empty() {
        println!("nothing to do: every machine matches orbiter.yml");
    } else {
        println!("Orbiter would:");
        for s in &plan.steps {
            let mark = if s.destructive { "-" } else { "+" };
            println!(
                "  {mark} {}\n      because {}",
                s.action.summary(),
                s.reason
            );
        }
        let destructive = plan.steps.iter().filter(|s| s.destructive).count();
        println!("\n{} steps, {destructive} destructive", plan.steps.len());
    }
    for w in &plan.waiting {
        println!("  waiting: {w}");
    }
    for (m, why) in &plan.blocked {
        println!("  blocked: {m}: {why}");
    }
    Ok(())
}

pub fn takeoff(g: &Global, a: TakeoffArgs) -> Result<()> {
    let ctx = Ctx::open_as(g, Committer::Orbiter)?;
    let (config_path, orb_id) = (ctx.config_path.clone(), ctx.config.orb_id());
    let handover = if a.no_handover {
        None
    } else {
        Some(Handover {
            config: Zeroizing::new(
                serde_saphyr::to_string(&ctx.config).context("cannot render the orb config")?,
            ),
            url: ctx.config.url.clone(),
            known_hosts: std::fs::read_to_string(config_path.with_file_name("known_hosts"))
                .unwrap_or_default(),
        })
    };
    let mut engine = ctx.engine()?;
    engine.host_keys.accept_all = a.accept_new_hostkeys;
    if !a.accept_new_hostkeys && interactive() {
        engine.ask_host_key = Some(Box::new(|machine, ip, fingerprint| {
            let q = format!(
                "First contact with {machine} ({ip}): its SSH host key is {fingerprint}. Trust it? [y/N]"
            );
            matches!(ask(&q, &['y', 'n']), Ok('y'))
        }));
    }
    let local = engine.load()?.providers.values().any(|p| p.on_this_host());
    let on = a
        .orbiter_on
        .as_deref()
        .map(MachineKey::parse)
        .transpose()
        .map_err(|e| anyhow::anyhow!("--orbiter-on: {e}"))?;
    if let Some(h) = &handover
        && !local
    {
        // Before converging: a repository no machine reaches is a configuration error.
        handover::check_reachable_url(&h.url)?;
    }
    eprintln!("takeoff: converging the Orb");
    orbiter::lifecycle::takeoff(&mut engine, Duration::from_secs(a.timeout))?;
    let Some(h) = handover else {
        return Ok(());
    };
    if local {
        // Local machines live on this host, so their Orbiter does too.
        handover::record_host(&mut engine, None)?;
        let pid = start_daemon(&config_path, &orb_id, &a.daemon)?;
        eprintln!(
            "takeoff: done; the Orbiter daemon runs on this host (pid {pid}), metrics on http://{}/metrics",
            a.daemon.listen
        );
        return Ok(());
    }
    let l = engine.load()?;
    let observed = engine.observe(&l);
    let m = handover::choose(&l, &observed, on.as_ref())?;
    eprintln!("takeoff: deploying the Orbiter to {}", m.machine.key);
    let spec = handover::HandoverSpec {
        config: h.config,
        known_hosts: h.known_hosts,
        orbctl: running_program(),
        listen: a.daemon.listen,
        interval: a.daemon.interval.max(1),
    };
    handover::deploy(&engine, &l, m, &spec)?;
    let host = m.machine.key.clone();
    handover::record_host(&mut engine, Some(&host))?;
    eprintln!(
        "takeoff: done; the Orbiter runs on {} ({}), metrics on http://{} there",
        m.machine.key,
        handover::UNIT,
        a.daemon.listen
    );
    Ok(())
}

/// This very program, also when its file was replaced meanwhile (an upgrade, a rebuild):
/// `/proc/self/exe` still opens the image that runs.
fn running_program() -> PathBuf {
    PathBuf::from("/proc/self/exe")
}

/// What goes into the Orb with its Orbiter.
struct Handover {
    config: Zeroizing<String>,
    url: String,
    known_hosts: String,
}

pub fn run(g: &Global, a: DaemonArgs) -> Result<()> {
    let (engine, _, _) = engine(g)?;
    run_daemon(
        engine,
        DaemonOptions {
            listen: a.listen,
            interval: Duration::from_secs(a.interval.max(1)),
        },
    )
}

pub fn teardown(g: &Global, yes: bool) -> Result<()> {
    if !yes {
        if !interactive() {
            bail!(
                "teardown destroys Local machines and removes what Orbiter installed; confirm with --yes"
            );
        }
        if ask(
            "Remove everything Orbiter installed and destroy Local machines? [y/N]",
            &['y', 'n'],
        )? != 'y'
        {
            bail!("aborted");
        }
    }
    let (mut engine, config_path, orb_id) = engine(g)?;
    stop_daemon(&config_path, &orb_id)?;
    let problems = orbiter::lifecycle::teardown(&mut engine)?;
    for p in &problems {
        eprintln!("warning: {p}");
    }
    eprintln!("teardown: the Orb is destroyed (committed)");
    Ok(())
}

fn pid_file(config_path: &Path, orb_id: &str) -> PathBuf {
    config_path.with_file_name(format!("orbiter-{orb_id}.pid"))
}

/// Whether the process exists and is not a zombie (nobody may reap a detached daemon).
fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            stat.rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next())
                != Some("Z")
        }
        Err(_) => false,
    }
}

fn running_pid(config_path: &Path, orb_id: &str) -> Option<i32> {
    let pid: i32 = std::fs::read_to_string(pid_file(config_path, orb_id))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    alive(pid).then_some(pid)
}

/// Starts `orbctl orbiter run` detached from this terminal, logging next to the config.
fn start_daemon(config_path: &Path, orb_id: &str, d: &DaemonArgs) -> Result<i32> {
    if let Some(pid) = running_pid(config_path, orb_id) {
        eprintln!("takeoff: an Orbiter daemon already runs (pid {pid})");
        return Ok(pid);
    }
    let log_path = config_path.with_file_name(format!("orbiter-{orb_id}.log"));
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .with_context(|| format!("cannot open {}", log_path.display()))?;
    let mut cmd = std::process::Command::new(running_program());
    cmd.arg("-f")
        .arg(config_path)
        .args([
            "orbiter",
            "run",
            "--listen",
            &d.listen.to_string(),
            "--interval",
            &d.interval.to_string(),
        ])
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    use std::os::unix::process::CommandExt as _;
    // SAFETY: setsid is async-signal-safe; it detaches the daemon from our session and terminal.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    let child = cmd.spawn().context("cannot start the Orbiter daemon")?;
    let pid = child.id() as i32;
    std::fs::write(pid_file(config_path, orb_id), format!("{pid}\n"))?;
    eprintln!("takeoff: daemon log {}", log_path.display());
    Ok(pid)
}

fn stop_daemon(config_path: &Path, orb_id: &str) -> Result<()> {
    let Some(pid) = running_pid(config_path, orb_id) else {
        return Ok(());
    };
    eprintln!("teardown: stopping the Orbiter daemon (pid {pid})");
    // SAFETY: plain signal delivery to a pid we started.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    for _ in 0..600 {
        if !alive(pid) {
            let _ = std::fs::remove_file(pid_file(config_path, orb_id));
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!("the Orbiter daemon (pid {pid}) did not stop within 60 s")
}
