//! Shared fixtures of the scenario: the node-agent binary, shell commands and step commands
//! inside a machine, files put the way Orbiter puts them, desired documents, and waiting for
//! the agent or for the member's observation.

use crate::lab::CLUSTER;
use node_protocol::{Item, NodeDesired};
use orb_etcd::observe::{MemberView, observe_command, parse};
use orb_etcd::steps::EtcdStep;
use orb_machines::Machine;
use serde_json::Value;
use std::path::PathBuf;
use std::time::{Duration, Instant};

pub(crate) fn log(t0: Instant, what: &str) {
    eprintln!("[{:>6.1}s] {what}", t0.elapsed().as_secs_f64());
}

pub(crate) fn agent_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("ORBITER_NODE_AGENT") {
        return PathBuf::from(p);
    }
    // target/<profile>/deps/machines-… → target/<profile>/node-agent
    let exe = std::env::current_exe().unwrap();
    let p = exe.parent().unwrap().parent().unwrap().join("node-agent");
    assert!(
        p.is_file(),
        "node-agent binary not found at {}; hint: cargo build -p node-agent, or set ORBITER_NODE_AGENT",
        p.display()
    );
    p
}

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

pub(crate) fn run_step(ms: &[Machine], step: &EtcdStep) -> String {
    let m = ms
        .iter()
        .find(|m| m.id() == step.machine())
        .expect("step machine");
    let (ok, out) = sh(m, &step.command());
    assert!(ok, "step `{}` failed: {out}", step.summary());
    out
}

/// Like [`run_step`], retrying while etcd refuses a membership change because it has not yet
/// seen every member connected for 5 s ("unhealthy cluster"), as right after a start.
pub(crate) fn run_step_settled(ms: &[Machine], step: &EtcdStep) -> String {
    let m = ms.iter().find(|m| m.id() == step.machine()).unwrap();
    let start = Instant::now();
    loop {
        let (ok, out) = sh(m, &step.command());
        if ok {
            return out;
        }
        assert!(
            out.contains("unhealthy cluster") && start.elapsed() < Duration::from_secs(30),
            "step `{}` failed: {out}",
            step.summary()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Writes a file into the machine the way Orbiter does: temp file, then rename.
pub(crate) fn put(m: &Machine, path: &str, content: &[u8]) {
    let pid = m.init_pid().expect("running");
    let p = PathBuf::from(format!("/proc/{pid}/root{path}"));
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    let tmp = p.with_extension("tmp");
    std::fs::write(&tmp, content).unwrap();
    std::fs::rename(&tmp, &p).unwrap();
}

pub(crate) fn write_desired(m: &Machine, generation: u64, items: Vec<Item>) {
    let doc = NodeDesired::new(generation, items);
    put(
        m,
        node_protocol::paths::DESIRED,
        doc.render_for_machine().as_bytes(),
    );
}

fn agent_status(m: &Machine) -> Option<Value> {
    let (ok, out) = sh(m, "node-agent status -o json 2>/dev/null");
    ok.then(|| serde_json::from_str(&out).ok()).flatten()
}

pub(crate) fn wait_agent(m: &Machine, generation: u64, limit: Duration) {
    let start = Instant::now();
    let mut last = None;
    while start.elapsed() < limit {
        if let Some(s) = agent_status(m) {
            if s["generation"] == generation && s["ready"] == true {
                return;
            }
            last = Some(s);
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    panic!(
        "{}: generation {generation} not applied within {limit:?}: {}",
        m.id(),
        serde_json::to_string_pretty(&last).unwrap()
    );
}

pub(crate) fn observe(m: &Machine) -> (MemberView, String) {
    let (_, out) = sh(m, &observe_command(CLUSTER));
    (parse(&out), out)
}

pub(crate) fn wait_member(
    m: &Machine,
    what: &str,
    limit: Duration,
    pred: impl Fn(&MemberView) -> bool,
) -> MemberView {
    let start = Instant::now();
    loop {
        let (v, raw) = observe(m);
        if pred(&v) {
            return v;
        }
        if start.elapsed() > limit {
            panic!(
                "{}: timed out waiting for {what}: {v:?}\nraw: {raw}",
                m.id()
            );
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

pub(crate) fn healthy_with(n: usize) -> impl Fn(&MemberView) -> bool {
    move |v| {
        v.healthy
            && v.members
                .as_ref()
                .is_some_and(|ms| ms.len() == n && ms.iter().all(|m| m.started))
    }
}

/// Writes key `k` (value `v`) through the member on `m`.
pub(crate) fn put_key(m: &Machine, k: &str) {
    sh_ok(
        m,
        &format!("{} put {k} v", orb_etcd::observe::etcdctl(CLUSTER)),
    );
}
