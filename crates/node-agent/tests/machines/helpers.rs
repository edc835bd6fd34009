//! Shared fixtures of the scenario: the machine's files seen from the host, files put the way
//! Orbiter puts them, shell commands inside a machine, the agent's status and waiting for it.

use orb_machines::Machine;
use serde_json::Value;
use std::path::PathBuf;
use std::time::{Duration, Instant};

pub(crate) fn step(t0: Instant, what: &str) {
    eprintln!("[{:>6.1}s] {what}", t0.elapsed().as_secs_f64());
}

/// The machine's filesystem as seen from the host.
fn inside(m: &Machine, path: &str) -> PathBuf {
    let pid = m.init_pid().expect("machine running");
    PathBuf::from(format!("/proc/{pid}/root{path}"))
}

/// Writes a file into the machine the way Orbiter does: temp file, then rename into place.
pub(crate) fn put(m: &Machine, path: &str, content: &[u8]) {
    let p = inside(m, path);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    let tmp = p.with_file_name(format!(".{}.tmp", p.file_name().unwrap().to_string_lossy()));
    std::fs::write(&tmp, content).unwrap();
    std::fs::rename(&tmp, &p).unwrap();
}

/// Runs a shell command inside the machine: (success, stdout+stderr).
pub(crate) fn sh(m: &Machine, cmd: &str) -> (bool, String) {
    let out = m.exec(&["sh", "-c", cmd]).unwrap();
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

pub(crate) fn sh_ok(m: &Machine, cmd: &str) -> String {
    let (ok, out) = sh(m, cmd);
    assert!(ok, "`{cmd}` failed on {}: {out}", m.id());
    out
}

pub(crate) fn status(m: &Machine) -> Option<Value> {
    let (ok, out) = sh(m, "node-agent status -o json 2>/dev/null");
    if ok {
        serde_json::from_str(&out).ok()
    } else {
        None
    }
}

pub(crate) fn wait_status(
    m: &Machine,
    what: &str,
    limit: Duration,
    pred: impl Fn(&Value) -> bool,
) -> Value {
    let start = Instant::now();
    let mut last = None;
    while start.elapsed() < limit {
        if let Some(s) = status(m) {
            if pred(&s) {
                return s;
            }
            last = Some(s);
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    panic!(
        "timed out after {limit:?} waiting for {what}; last status: {}",
        serde_json::to_string_pretty(&last).unwrap()
    );
}

pub(crate) fn item<'a>(s: &'a Value, id: &str) -> &'a Value {
    s["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == id)
        .unwrap_or_else(|| panic!("no item {id} in {s}"))
}

pub(crate) fn ready_at(s: &Value, generation: u64) -> bool {
    s["generation"] == generation && s["ready"] == true
}

pub(crate) fn port_open_from(client: &Machine, ip: std::net::Ipv4Addr, port: u16) -> bool {
    sh(
        client,
        &format!("timeout 3 bash -c '</dev/tcp/{ip}/{port}'"),
    )
    .0
}

pub(crate) fn make_proc_sys_net_writable(m: &Machine) {
    let start = Instant::now();
    while !sh(m, "mountpoint -q /proc/sys/net || { mount --bind /proc/sys/net /proc/sys/net && mount -o remount,bind,rw /proc/sys/net; }").0 {
        assert!(start.elapsed() < Duration::from_secs(30), "cannot make /proc/sys/net writable in {}", m.id());
        std::thread::sleep(Duration::from_millis(200));
    }
}
