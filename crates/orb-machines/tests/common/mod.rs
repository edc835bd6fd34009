//! Shared helpers for the root-only integration tests: a Drop guard that always takes the group
//! down, unique names, key pairs, and the "nothing left behind" check.
#![allow(dead_code)]

use orb_machines::{Group, GroupGuard, GroupSpec, Host};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// These tests need root and a working systemd-nspawn; CI runs them as root, so a missing
/// precondition is a failure, never a skip.
pub fn host() -> Host {
    Host::new().unwrap_or_else(|e| {
        panic!("orb-machines integration tests need root and the host tools: {e}")
    })
}

/// A group name unique per process and call (parallel test runs never collide).
pub fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

pub struct KeyPair {
    pub dir: tempfile::TempDir,
    pub private: PathBuf,
    pub public: String,
}

pub fn keypair() -> KeyPair {
    let dir = tempfile::tempdir().unwrap();
    let private = dir.path().join("id_ed25519");
    let st = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&private)
        .status()
        .unwrap();
    assert!(st.success());
    let public = std::fs::read_to_string(private.with_extension("pub")).unwrap();
    KeyPair {
        dir,
        private,
        public,
    }
}

/// Takes the group down when dropped, also when the test panics.
/// A guarded group (taken down on drop) named `name`, with `pubkey` authorized.
pub fn up(host: &Host, name: &str, pubkey: &str) -> GroupGuard {
    up_with(host, name, pubkey, false)
}

pub fn up_with(host: &Host, name: &str, pubkey: &str, net_admin: bool) -> GroupGuard {
    let spec = GroupSpec {
        name: name.to_string(),
        pubkey: pubkey.to_string(),
        net_admin,
    };
    GroupGuard::up(host, &spec).unwrap_or_else(|e| panic!("Group::up({name}): {e}"))
}

/// Everything of a group the host could still hold, recorded before `down`.
pub struct Footprint {
    pub state_dir: PathBuf,
    pub bridge: String,
    pub netns: Vec<String>,
    pub veths: Vec<String>,
}

pub fn footprint(g: &Group) -> Footprint {
    let mut netns = Vec::new();
    let mut veths = Vec::new();
    for info in g.machines().unwrap() {
        let m = g.machine(&info.id).unwrap();
        netns.push(m.netns().to_string());
        veths.push(m.veth().to_string());
    }
    Footprint {
        state_dir: g.state_dir().to_path_buf(),
        bridge: g.bridge().to_string(),
        netns,
        veths,
    }
}

/// Fails with a list of whatever of the group still exists on the host.
pub fn assert_nothing_left(f: &Footprint) {
    let mut left = Vec::new();
    if Path::new("/sys/class/net").join(&f.bridge).exists() {
        left.push(format!("bridge {}", f.bridge));
    }
    for v in &f.veths {
        if Path::new("/sys/class/net").join(v).exists() {
            left.push(format!("veth {v}"));
        }
    }
    for n in &f.netns {
        if Path::new("/run/netns").join(n).exists() {
            left.push(format!("netns {n}"));
        }
    }
    let marker = f.state_dir.to_string_lossy().to_string();
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    for l in mountinfo.lines().filter(|l| l.contains(&marker)) {
        left.push(format!("mount {l}"));
    }
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if pid == std::process::id() {
            continue;
        }
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let zombie = stat
            .rsplit_once(')')
            .is_some_and(|(_, r)| r.trim_start().starts_with('Z'));
        if !zombie && cmdline.contains(&marker) {
            left.push(format!("process {pid}: {cmdline}"));
        }
    }
    if f.state_dir.exists() {
        left.push(format!("state dir {}", f.state_dir.display()));
    }
    assert!(left.is_empty(), "left behind after down: {left:#?}");
}

/// stdout of a successful command, or a panic with everything needed to see why.
pub fn ok(out: std::process::Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what}: {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
