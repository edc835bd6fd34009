//! One machine: a systemd-nspawn container on an overlay of the base image, in its own network
//! namespace, run under a supervisor that restarts it when it reboots itself.

use crate::Error;
use crate::cmd::{self, cmd, path_str, tail};
use crate::detach;
use crate::mounts;
use crate::names;
use crate::net;
use crate::procs;
use crate::state::{GroupRecord, MachinePaths, MachineRecord};
use serde::{Deserialize, Serialize};
use std::ffi::OsString;
use std::io::Read;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant, SystemTime};

/// How long a boot (or reboot) may take before it counts as failed.
const BOOT_TIMEOUT: Duration = Duration::from_secs(120);
const PATH_INSIDE: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// What `list` reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MachineState {
    /// Booted, link up, sshd answering.
    Running,
    /// No machine process (powered off, power cut, never started).
    Stopped,
    /// Booted, but its link is down or sshd does not answer.
    Unreachable,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MachineInfo {
    pub id: String,
    pub hostname: String,
    pub ip: Ipv4Addr,
    pub state: MachineState,
}

/// A handle on one machine of a group (cheap; all state lives on disk and in /proc).
#[derive(Clone, Debug)]
pub struct Machine {
    pub(crate) group: GroupRecord,
    pub(crate) paths: MachinePaths,
    pub(crate) rec: MachineRecord,
}

impl Machine {
    pub fn id(&self) -> &str {
        &self.rec.id
    }
    pub fn ip(&self) -> Ipv4Addr {
        self.rec.ip
    }
    pub fn hostname(&self) -> &str {
        &self.rec.hostname
    }
    pub fn group(&self) -> &str {
        &self.group.name
    }
    /// Host-side names of its network namespace and veth (for diagnostics and leak checks).
    pub fn netns(&self) -> &str {
        &self.rec.netns
    }
    pub fn veth(&self) -> &str {
        &self.rec.veth
    }

    /// The machine's SSH host public key line (generated per machine at creation).
    pub fn host_public_key(&self) -> Result<String, Error> {
        let p = self.paths.known_hosts();
        let line = std::fs::read_to_string(&p).map_err(Error::io("read", &p))?;
        Ok(line
            .split_whitespace()
            .skip(1)
            .collect::<Vec<_>>()
            .join(" "))
    }

    /// A known_hosts file that pins this machine's host key, for ssh -o UserKnownHostsFile.
    pub fn known_hosts_file(&self) -> std::path::PathBuf {
        self.paths.known_hosts()
    }

    /// Runs `cmd` over SSH as user orbiter with the private key `key`, verifying the pinned
    /// host key. The command's own exit status is in the Output, not an error.
    pub fn ssh(&self, key: &Path, command: &str) -> Result<Output, Error> {
        let mut c = ssh_command(self, Some(key));
        c.arg("--").arg(command);
        cmd::output(&mut c)
    }

    /// Runs `argv` inside the machine as root without SSH (nsenter into its PID 1's namespaces).
    /// The command's own exit status is in the Output, not an error.
    pub fn exec(&self, argv: &[&str]) -> Result<Output, Error> {
        let init = self.init_pid().ok_or_else(|| self.not_running())?;
        cmd::output(&mut nsenter(init, argv))
    }

    /// Hard stop: SIGKILL to the machine's own PID 1 (its whole PID namespace dies) and its link
    /// down, so nothing of it answers on the network any more.
    pub fn power_cut(&self) -> Result<(), Error> {
        let init = self.init_pid().ok_or_else(|| self.not_running())?;
        // The supervisor goes first, so it cannot start the machine again.
        if let Some(sup) = procs::owned_pid(&self.paths.supervisor_pid(), &self.marker()) {
            procs::signal(sup, libc::SIGKILL);
        }
        procs::signal(init, libc::SIGKILL);
        net::set_link(&self.rec.veth, false)?;
        self.wait_nspawn_gone(Duration::from_secs(20))
    }

    /// Boots the machine (after a power cut or stop) and waits until it is ready; a running
    /// machine is only waited for.
    pub fn start(&self) -> Result<(), Error> {
        if self.init_pid().is_none() {
            self.launch()?;
        }
        self.wait_ready(BOOT_TIMEOUT)
    }

    /// Clean shutdown from inside (systemctl poweroff); falls back to a power cut after 60 s.
    pub fn stop(&self) -> Result<(), Error> {
        let Some(_) = self.init_pid() else {
            return Ok(());
        };
        self.exec(&["systemctl", "poweroff"])?;
        if self.wait_nspawn_gone(Duration::from_secs(60)).is_err() && self.init_pid().is_some() {
            self.power_cut()?;
        }
        net::set_link(&self.rec.veth, false)
    }

    /// Reboot from inside (systemctl reboot): nspawn exits 133, the supervisor boots it again.
    /// Returns once a new PID 1 is ready.
    pub fn reboot(&self) -> Result<(), Error> {
        let old = self.init_pid().ok_or_else(|| self.not_running())?;
        // The command may die with the namespace it runs in; only spawning it must work.
        self.exec(&["systemctl", "reboot"])?;
        let deadline = Instant::now() + BOOT_TIMEOUT;
        loop {
            match self.init_pid() {
                Some(new) if new != old => break,
                _ if Instant::now() > deadline => {
                    return Err(self.timeout("the machine to come back after reboot", BOOT_TIMEOUT));
                }
                _ => std::thread::sleep(Duration::from_millis(100)),
            }
        }
        self.wait_ready(BOOT_TIMEOUT)
    }

    /// Takes the machine's link down (it keeps running, unreachable).
    pub fn cut_network(&self) -> Result<(), Error> {
        net::set_link(&self.rec.veth, false)
    }

    pub fn restore_network(&self) -> Result<(), Error> {
        net::set_link(&self.rec.veth, true)?;
        net::configure_inside(
            &self.rec.netns,
            self.rec.ip,
            self.group.subnet,
            self.group.bridge_ip,
        )
    }

    /// When the machine's current PID 1 started: its "booted at" (machines share the host kernel,
    /// so /proc/uptime and the boot id inside are the host's).
    pub fn booted_at(&self) -> Result<SystemTime, Error> {
        let init = self.init_pid().ok_or_else(|| self.not_running())?;
        procs::start_time(init).ok_or_else(|| self.not_running())
    }

    /// The machine's PID 1 as seen from the host, when it runs.
    pub fn init_pid(&self) -> Option<i32> {
        self.nspawn_pids()
            .into_iter()
            .flat_map(procs::children)
            .find(|&p| procs::inner_pid(p) == Some(1))
    }

    pub fn info(&self) -> MachineInfo {
        let state = if self.init_pid().is_none() {
            MachineState::Stopped
        } else if !net::link_is_up(&self.rec.veth)
            || !ssh_banner(self.rec.ip, Duration::from_millis(500))
        {
            MachineState::Unreachable
        } else {
            MachineState::Running
        };
        MachineInfo {
            id: self.rec.id.clone(),
            hostname: self.rec.hostname.clone(),
            ip: self.rec.ip,
            state,
        }
    }

    /// Every machine process of ours mentions the machine directory (nspawn -D, supervisor
    /// pidfile); a trailing slash keeps "m1" from matching "m10".
    pub(crate) fn marker(&self) -> String {
        format!("{}/", self.paths.root.display())
    }

    fn nspawn_pids(&self) -> Vec<i32> {
        procs::pids_mentioning(&self.marker())
            .into_iter()
            .filter(|&p| procs::comm(p).as_deref() == Some("systemd-nspawn"))
            .collect()
    }

    fn not_running(&self) -> Error {
        Error::NotRunning {
            group: self.group.name.clone(),
            id: self.rec.id.clone(),
        }
    }

    fn timeout(&self, what: &str, t: Duration) -> Error {
        let log = std::fs::read_to_string(self.paths.console_log()).unwrap_or_default();
        Error::Timeout {
            what: format!(
                "{what} (machine {:?} of group {:?})",
                self.rec.id, self.group.name
            ),
            secs: t.as_secs(),
            hint: format!(
                "console log {}, last lines: {}",
                self.paths.console_log().display(),
                tail(&log, 600)
            ),
        }
    }

    fn wait_nspawn_gone(&self, t: Duration) -> Result<(), Error> {
        let deadline = Instant::now() + t;
        while !self.nspawn_pids().is_empty() {
            if Instant::now() > deadline {
                return Err(self.timeout("systemd-nspawn to exit", t));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    /// Network up and the supervisor (with nspawn under it) started; does not wait.
    pub(crate) fn launch(&self) -> Result<(), Error> {
        let rootfs = self.paths.rootfs();
        if !mounts::is_mounted(&rootfs) {
            mounts::mount_overlay(
                &self.group.base_rootfs,
                &self.paths.upper(),
                &self.paths.work(),
                &rootfs,
            )?;
        }
        if !net::netns_exists(&self.rec.netns) {
            net::create_machine_link(&self.rec.netns, &self.rec.veth, &self.group.bridge)?;
        }
        net::set_link(&self.rec.veth, true)?;
        net::configure_inside(
            &self.rec.netns,
            self.rec.ip,
            self.group.subnet,
            self.group.bridge_ip,
        )?;
        let mut argv: Vec<OsString> = [
            "systemd-nspawn",
            "--boot",
            "--register=no",
            "--keep-unit",
            "--console=read-only",
            "--link-journal=no",
            "--resolv-conf=off",
        ]
        .iter()
        .map(OsString::from)
        .collect();
        argv.push(format!("--directory={}", rootfs.display()).into());
        argv.push(format!("--machine={}", self.rec.nspawn_name).into());
        argv.push(format!("--hostname={}", self.rec.hostname).into());
        argv.push(format!("--network-namespace-path=/run/netns/{}", self.rec.netns).into());
        if self.group.net_admin {
            argv.push("--capability=CAP_NET_ADMIN".into());
        }
        detach::spawn(
            detach::SUPERVISOR,
            "orb-machines-supervisor",
            &self.paths.supervisor_pid(),
            &argv,
            &self.paths.console_log(),
            &self.marker(),
        )?;
        Ok(())
    }

    /// Ready = systemd reports running or degraded and sshd sends its banner.
    pub(crate) fn wait_ready(&self, t: Duration) -> Result<(), Error> {
        let deadline = Instant::now() + t;
        let started = Instant::now();
        loop {
            match self.init_pid() {
                Some(init) => {
                    let mut probe = Command::new("timeout");
                    probe
                        .arg("10")
                        .arg("nsenter")
                        .args(nsenter_args(init, &["systemctl", "is-system-running"]));
                    let state = cmd::output(&mut probe)
                        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
                        .unwrap_or_default();
                    if (state == "running" || state == "degraded")
                        && ssh_banner(self.rec.ip, Duration::from_secs(2))
                    {
                        return Ok(());
                    }
                }
                None if started.elapsed() > Duration::from_secs(3)
                    && procs::owned_pid(&self.paths.supervisor_pid(), &self.marker()).is_none() =>
                {
                    let log = std::fs::read_to_string(self.paths.console_log()).unwrap_or_default();
                    return Err(Error::Command {
                        command: format!(
                            "systemd-nspawn for machine {:?} of group {:?}",
                            self.rec.id, self.group.name
                        ),
                        status: "exited".into(),
                        stderr: format!(
                            "{} (console log {})",
                            tail(&log, 800),
                            self.paths.console_log().display()
                        ),
                    });
                }
                None => {}
            }
            if Instant::now() > deadline {
                return Err(self.timeout("systemd to report running and sshd to answer", t));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// nsenter into every namespace of the machine's init, with a clean environment.
fn nsenter(init: i32, argv: &[&str]) -> Command {
    let mut c = Command::new("nsenter");
    c.args(nsenter_args(init, argv));
    c
}

fn nsenter_args(init: i32, argv: &[&str]) -> Vec<String> {
    let mut v = vec!["--target".to_string(), init.to_string()];
    for a in [
        "--mount",
        "--uts",
        "--ipc",
        "--net",
        "--pid",
        "--",
        "env",
        "-i",
        PATH_INSIDE,
        "HOME=/root",
        "LANG=C.UTF-8",
        "TERM=dumb",
    ] {
        v.push(a.to_string());
    }
    v.extend(argv.iter().map(|a| a.to_string()));
    v
}

/// `ssh` as orbiter to the machine, host key pinned by the machine's known_hosts file.
pub(crate) fn ssh_command(m: &Machine, key: Option<&Path>) -> Command {
    let mut c = cmd(
        "ssh",
        [
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "GlobalKnownHostsFile=/dev/null",
            "-o",
            "ConnectTimeout=10",
            "-o",
            "LogLevel=ERROR",
        ],
    );
    c.arg("-o").arg(format!(
        "UserKnownHostsFile={}",
        path_str(&m.paths.known_hosts())
    ));
    if let Some(key) = key {
        c.arg("-o").arg("IdentitiesOnly=yes").arg("-i").arg(key);
    }
    c.arg(format!("orbiter@{}", m.rec.ip));
    c
}

/// True when something on ip:22 sends an SSH banner within `t`.
fn ssh_banner(ip: Ipv4Addr, t: Duration) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&SocketAddr::from((ip, 22)), t) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(t));
    let mut buf = [0u8; 4];
    s.read_exact(&mut buf).is_ok() && &buf == b"SSH-"
}

/// Removes everything of one machine: processes, overlay mount, namespace, veth, directory.
/// Works from names alone, so damaged state files do not leave anything behind.
pub(crate) fn teardown(group: &str, paths: &MachinePaths) -> Result<(), Error> {
    let id = paths
        .root
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let marker = format!("{}/", paths.root.display());
    if let Some(sup) = procs::owned_pid(&paths.supervisor_pid(), &marker) {
        procs::signal(sup, libc::SIGKILL);
    }
    let nspawns: Vec<i32> = procs::pids_mentioning(&marker)
        .into_iter()
        .filter(|&p| procs::comm(p).as_deref() == Some("systemd-nspawn"))
        .collect();
    for &n in &nspawns {
        for init in procs::children(n) {
            procs::signal(init, libc::SIGKILL);
        }
    }
    for &n in &nspawns {
        if !procs::wait_gone(n, Duration::from_secs(10)) {
            procs::signal(n, libc::SIGKILL);
            procs::wait_gone(n, Duration::from_secs(5));
        }
    }
    for p in procs::pids_mentioning(&marker) {
        procs::terminate(p, Duration::from_secs(2));
    }
    for m in mounts::mounts_under(&paths.root) {
        mounts::unmount(&m)?;
    }
    net::delete_netns(&names::netns_name(group, &id))?;
    net::delete_link(&names::veth_name(group, &id))?;
    let propagate = Path::new("/run/systemd/nspawn/propagate").join(names::nspawn_name(group, &id));
    if propagate.exists() {
        let _ = std::fs::remove_dir_all(&propagate);
    }
    mounts::remove_tree(&paths.root)
}
