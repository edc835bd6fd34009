//! A person's Orb on the Local provider with the daemon on this host: the binaries under test
//! copied aside, `orbctl takeoff` from them, and the cleanup of machine groups and daemons.

use super::Person;
use super::e2e::{kill_daemons, node_agent_binary};
use orb_machines::{Group, Host};
use std::process::Command;

/// Always removes the test's machine groups and stops its daemon, also when the test fails.
pub struct Cleanup {
    pub groups: Vec<String>,
    pub person: Option<std::path::PathBuf>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(home) = &self.person {
            kill_daemons(home, true);
        }
        if let Ok(host) = Host::new() {
            for g in &self.groups {
                let _ = Group::remove(&host, g);
            }
        }
    }
}

/// Copies of the binaries under test, taken when the test starts. Takeoff starts the daemon from
/// its own executable and the daemon installs the agent from its file for minutes afterwards; a
/// rebuild of the shared target directory meanwhile would leave a deleted path or another agent.
pub struct Binaries {
    dir: tempfile::TempDir,
}

impl Binaries {
    pub fn snapshot() -> Binaries {
        let dir = tempfile::Builder::new()
            .prefix("orbiter-e2e-bin-")
            .tempdir()
            .unwrap();
        std::fs::copy(env!("CARGO_BIN_EXE_orbctl"), dir.path().join("orbctl")).unwrap();
        std::fs::copy(node_agent_binary(), dir.path().join("node-agent")).unwrap();
        Binaries { dir }
    }

    pub fn orbctl(&self) -> std::path::PathBuf {
        self.dir.path().join("orbctl")
    }

    pub fn node_agent(&self) -> std::path::PathBuf {
        self.dir.path().join("node-agent")
    }
}

/// `orbctl takeoff` as the person (see [`Person::cmd`]), run from the snapshot of the binary.
pub fn takeoff(p: &Person, bins: &Binaries, timeout: &str, listen: &str) -> std::process::Output {
    Command::new(bins.orbctl())
        .arg("-f")
        .arg(&p.config)
        .args([
            "takeoff",
            "--timeout",
            timeout,
            "--listen",
            listen,
            "--interval",
            "1",
            // The Static machines' keys are confirmed here; the Local ones are vouched for.
            "--accept-new-hostkeys",
        ])
        .env("HOME", p.home.path())
        .env("GIT_AUTHOR_NAME", "Test Person")
        .env("GIT_AUTHOR_EMAIL", "person@example.test")
        .env("ORBITER_NODE_AGENT", bins.node_agent())
        .env_remove("ORBCONFIG")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap()
}

/// The body, or None while nothing answers (a daemon still starting).
pub fn try_http_get(addr: &str, path: &str) -> Option<String> {
    use std::io::{Read as _, Write as _};
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).ok()?;
    Some(
        body.split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default(),
    )
}
