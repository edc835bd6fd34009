//! Deploying the Orbiter into the Orb it manages: a systemd service on one machine of the Orb
//! runs `orbctl orbiter run` with the orb config delivered 0600, so after takeoff nobody's
//! laptop has to stay on. The machine reaches the repository itself, so the repository URL
//! must be one a machine can reach (ssh or https), and its SSH host key travels along.

use crate::engine::{Engine, Loaded, session};
use crate::machine::MachineKey;
use crate::observe::as_root;
use crate::observed::{MachineObserved, Observed, Reach};
use crate::plan::machine_ready;
use crate::state;
use anyhow::{Context as _, Result, anyhow, bail};
use std::net::SocketAddr;
use std::path::PathBuf;
use zeroize::Zeroizing;

pub const UNIT: &str = "orbiter.service";
const UNIT_PATH: &str = "/etc/systemd/system/orbiter.service";
/// The config, its known_hosts and the repository cache: one root-only directory.
pub const STATE_DIR: &str = "/var/lib/orbiter";
const BIN_DIR: &str = "/usr/local/lib/orbiter";

/// The orb config of the Orbiter inside the Orb.
pub fn config_path() -> std::path::PathBuf {
    std::path::Path::new(STATE_DIR).join("config")
}

/// Stages `stdin` (a new masterkey) for an Orbiter on this machine, if one is installed;
/// prints `staged` then. Run as root, before the rotation is pushed.
pub fn stage_masterkey_script() -> String {
    let config = config_path();
    let staged = orb_repo::OrbConfig::staged_masterkey_path(&config);
    format!(
        "[ -f {c} ] || exit 0
umask 077
cat > {s}.tmp && mv -f {s}.tmp {s} && echo staged",
        c = config.display(),
        s = staged.display()
    )
}

/// Takes a staged masterkey back (the rotation did not land).
pub fn unstage_masterkey_script() -> String {
    let staged = orb_repo::OrbConfig::staged_masterkey_path(&config_path());
    format!("rm -f {}", staged.display())
}

/// What the Orbiter on the machine gets.
pub struct HandoverSpec {
    /// The orb config (YAML with the repository key and the masterkey).
    pub config: Zeroizing<String>,
    /// known_hosts lines for the repository's SSH host.
    pub known_hosts: String,
    /// The `orbctl` binary to run there (this very program).
    pub orbctl: PathBuf,
    /// `/metrics` and `/healthz` on the machine.
    pub listen: SocketAddr,
    pub interval: u64,
}

/// Whether an Orbiter on a machine could reach this repository at all.
pub fn check_reachable_url(url: &str) -> Result<()> {
    match orb_repo::url::parse(url)? {
        orb_repo::url::RepoUrl::File(p) => bail!(
            "the Orb repository is a path on this computer ({}), which no machine of the Orb can reach\n  hint: host it where the machines reach it (ssh:// or https://) and `orbctl configure --repourl` it, or keep the Orbiter here with `orbctl orbiter run`",
            p.display()
        ),
        _ => Ok(()),
    }
}

/// The machine that hosts the Orbiter: `wanted`, else the first ready machine of a provider
/// that does not create machines (those outlive the Orbiter's own decisions; machines it
/// creates, it may also destroy).
pub fn choose<'a>(
    l: &Loaded,
    observed: &'a Observed,
    wanted: Option<&MachineKey>,
) -> Result<&'a MachineObserved> {
    let usable = |m: &MachineObserved| {
        matches!(m.reach, Reach::Maintenance) && machine_ready(m, &l.recorded)
    };
    if let Some(key) = wanted {
        let m = observed.machine(key).ok_or_else(|| {
            anyhow!("machine {key} is not part of the Orb\n  hint: `orbctl node list` shows the machines")
        })?;
        if !usable(m) {
            bail!(
                "machine {key} is not ready ({:?}); the Orbiter goes only to a ready machine",
                m.reach
            );
        }
        return Ok(m);
    }
    observed
        .machines()
        .filter(|m| {
            l.providers
                .get(&m.machine.key.provider)
                .is_some_and(|p| !p.creates_machines())
        })
        .find(|m| usable(m))
        .ok_or_else(|| {
            anyhow!("no ready machine of a provider whose machines outlive the Orb (Static) can host the Orbiter; hint: name one with --orbiter-on")
        })
}

fn unit(listen: SocketAddr, interval: u64) -> String {
    format!(
        "[Unit]\nDescription=Orbiter: reconciles this Orb with its Git repository\nAfter=network-online.target\nWants=network-online.target\n\n[Service]\nEnvironment=HOME={STATE_DIR}\nEnvironment=ORBITER_NODE_AGENT={BIN_DIR}/node-agent\nExecStart={BIN_DIR}/orbctl -f {STATE_DIR}/config orbiter run --listen {listen} --interval {interval}\nRestart=always\nRestartSec=5\nKillMode=mixed\nTimeoutStopSec=120\n\n[Install]\nWantedBy=multi-user.target\n"
    )
}

/// Installs git and ssh when missing (the Orbiter clones over them), then the binaries, the
/// config (0600) and the unit; starts the service and checks that it stays up.
pub fn deploy(engine: &Engine, l: &Loaded, m: &MachineObserved, spec: &HandoverSpec) -> Result<()> {
    let key = &m.machine.key;
    let (t, pinned, login) =
        session(l, m).ok_or_else(|| anyhow!("{key}: host key not pinned or no login key"))?;
    let run = |script: &str, what: &str| -> Result<String> {
        let out = engine
            .ssh
            .exec(&t, pinned, login, &as_root(&t.user, script), None)?;
        if !out.success() {
            bail!(
                "{key}: {what} failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    };
    run(
        "command -v git >/dev/null && command -v ssh >/dev/null && exit 0\nexport DEBIAN_FRONTEND=noninteractive\napt-get update -qq >&2 && apt-get install -y -qq --no-install-recommends git openssh-client >&2",
        "installing git and openssh-client (the Orbiter needs them)",
    )?;
    let write = |path: &str, mode: u32, bytes: &[u8]| -> Result<()> {
        engine
            .ssh
            .write_file(&t, pinned, login, path, mode, bytes)
            .with_context(|| format!("{key}: writing {path}"))
    };
    let orbctl = std::fs::read(&spec.orbctl)
        .with_context(|| format!("cannot read {}", spec.orbctl.display()))?;
    let agent = std::fs::read(&engine.agent.path)
        .with_context(|| format!("cannot read {}", engine.agent.path.display()))?;
    write(&format!("{BIN_DIR}/orbctl"), 0o755, &orbctl)?;
    write(&format!("{BIN_DIR}/node-agent"), 0o755, &agent)?;
    run(
        &format!("install -d -m 0700 {STATE_DIR}"),
        "creating the state directory",
    )?;
    write(
        &config_path().display().to_string(),
        0o600,
        spec.config.as_bytes(),
    )?;
    write(
        &format!("{STATE_DIR}/known_hosts"),
        0o600,
        spec.known_hosts.as_bytes(),
    )?;
    write(
        UNIT_PATH,
        0o644,
        unit(spec.listen, spec.interval).as_bytes(),
    )?;
    run(
        &format!(
            "systemctl daemon-reload && systemctl enable {UNIT} >/dev/null 2>&1 && systemctl restart {UNIT}"
        ),
        "starting the Orbiter service",
    )?;
    // It opens the repository first: a wrong URL, key or host key makes it exit quickly.
    std::thread::sleep(std::time::Duration::from_secs(3));
    let state = run(
        &format!("systemctl is-active {UNIT} || journalctl -u {UNIT} -n 20 --no-pager -o cat"),
        "checking the Orbiter service",
    )
    .unwrap_or_else(|e| format!("{e:#}"));
    if state.trim() != "active" {
        bail!(
            "{key}: the Orbiter service does not stay up:\n{}",
            state.trim()
        );
    }
    Ok(())
}

/// Records (or, with `None`, forgets) where the Orbiter runs, in `orbiter/host.yml`.
pub fn record_host(engine: &mut Engine, machine: Option<&MachineKey>) -> Result<()> {
    let message = match machine {
        Some(m) => format!("The Orbiter runs on {m}\n\nby orbctl takeoff"),
        None => "The Orbiter runs where it was started\n\nby orbctl takeoff".to_owned(),
    };
    crate::engine::update(&mut engine.repo, &message, |snap| {
        let exists = snap.read(state::ORBITER_HOST)?.is_some();
        Ok(match machine {
            Some(m) => vec![orb_repo::FileChange::write(
                state::ORBITER_HOST,
                state::render(&state::OrbiterHost::new(m.clone())),
            )],
            None if exists => vec![orb_repo::FileChange::delete(state::ORBITER_HOST)],
            None => Vec::new(),
        })
    })?;
    Ok(())
}

/// Stops and removes an Orbiter service; safe on machines that never had one.
pub fn remove_script() -> String {
    format!(
        "if [ -e {UNIT_PATH} ]; then systemctl disable --now {UNIT} >/dev/null 2>&1 || true; rm -f {UNIT_PATH}; systemctl daemon-reload; fi\nrm -rf {BIN_DIR} {STATE_DIR}"
    )
}
