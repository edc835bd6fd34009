//! The agent installed with its own install script, twice (the second run changes nothing),
//! and its first report before any desired file exists.

use crate::helpers::{put, sh_ok, step, wait_status};
use node_agent::fsutil::sha256_hex;
use orb_machines::Machine;
use serde_json::Value;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_node-agent");

/// Installs the agent on `m1` with a 3 s drift interval and waits for its first report.
pub(crate) fn install_twice(t0: Instant, m1: &Machine) {
    let bin = std::fs::read(BIN).unwrap();
    let sha = sha256_hex(&bin);
    // A shorter drift interval for the test, as an ordinary systemd drop-in.
    put(
        m1,
        "/etc/systemd/system/node-agent.service.d/10-e2e.conf",
        b"[Service]\nExecStart=\nExecStart=/usr/local/bin/node-agent run --drift-interval 3s\n",
    );
    put(m1, node_protocol::paths::UPLOAD, &bin);
    let script = node_protocol::install::install_script(&sha, node_agent::VERSION);
    let out = sh_ok(m1, &script);
    assert!(
        out.contains("binary=installed unit=installed service=restarted"),
        "{out}"
    );
    let out = sh_ok(m1, &script);
    assert!(
        out.contains("binary=unchanged unit=unchanged service=running"),
        "second install must be a no-op: {out}"
    );
    assert_eq!(
        sh_ok(m1, "systemctl is-active node-agent.service").trim(),
        "active"
    );
    let s = wait_status(m1, "first report", Duration::from_secs(30), |s| {
        s["desired_error"]
            .as_str()
            .is_some_and(|e| e.contains("does not exist"))
    });
    assert_eq!(s["generation"], Value::Null);
    step(t0, "agent installed (idempotent install verified)");
}
