//! Changes to a converged machine: the same state again does nothing, drift is corrected,
//! restart_on restarts, a bad sshd setting is refused, a failing item does not block the
//! others and a malformed desired file keeps the last valid state.

use crate::desired::{Spec, desired};
use crate::helpers::{item, put, ready_at, sh_ok, step, wait_status};
use orb_machines::Machine;
use serde_json::Value;
use std::path::Path;
use std::time::{Duration, Instant};

/// Generation 2 with the same items: no action, and `node-agent plan` shows nothing to do.
pub(crate) fn idempotent(t0: Instant, m1: &Machine, spec: &mut Spec) {
    spec.generation = 2;
    put(
        m1,
        "/etc/node-agent/desired.yml",
        desired(m1, spec).as_bytes(),
    );
    let s = wait_status(m1, "generation 2", Duration::from_secs(30), |s| {
        ready_at(s, 2) && s["last_pass"]["generation"] == 2
    });
    assert_eq!(
        s["last_pass"]["actions"],
        Value::Array(vec![]),
        "second application acted: {s}"
    );
    let plan = sh_ok(m1, "node-agent plan");
    assert!(
        plan.contains("generation 2\n") && plan.contains("0 action(s), 0 error(s)"),
        "{plan}"
    );
    step(t0, "idempotent (and `node-agent plan` shows nothing to do)");
}

/// A managed file edited and a managed unit stopped by hand, corrected within the interval.
pub(crate) fn drift(t0: Instant, m1: &Machine) {
    sh_ok(
        m1,
        "echo tampered > /etc/demo/demo.conf; systemctl stop demo.service",
    );
    let drift_start = Instant::now();
    let s = wait_status(m1, "drift correction", Duration::from_secs(20), |s| {
        s["last_change"]["trigger"] == "drift"
            && s["ready"] == true
            && s["last_change"]["actions"]
                .as_array()
                .is_some_and(|a| a.len() >= 2)
    });
    assert!(
        drift_start.elapsed() < Duration::from_secs(10),
        "drift took {:?} with a 3 s interval",
        drift_start.elapsed()
    );
    let actions = s["last_change"]["actions"].to_string();
    assert!(
        actions.contains("file:/etc/demo/demo.conf: write /etc/demo/demo.conf")
            && actions.contains("content differs"),
        "{actions}"
    );
    assert!(
        actions.contains("unit:demo.service: start demo.service: unit is inactive"),
        "{actions}"
    );
    assert_eq!(sh_ok(m1, "cat /etc/demo/demo.conf"), "one\n");
    assert_eq!(
        sh_ok(m1, "systemctl is-active demo.service").trim(),
        "active"
    );
    step(t0, "drift corrected and reported");
}

/// Generation 3 changes a file in demo.service's restart_on: the unit restarts.
pub(crate) fn restart_on(t0: Instant, m1: &Machine, spec: &mut Spec) {
    let pid_before = sh_ok(m1, "systemctl show -p MainPID --value demo.service");
    spec.generation = 3;
    spec.demo_conf = "two";
    put(
        m1,
        "/etc/node-agent/desired.yml",
        desired(m1, spec).as_bytes(),
    );
    let s = wait_status(m1, "generation 3", Duration::from_secs(30), |s| {
        ready_at(s, 3)
    });
    assert!(
        s["last_change"]["actions"]
            .to_string()
            .contains("restart demo.service if running: a file in restart_on changed"),
        "{s}"
    );
    assert_ne!(
        sh_ok(m1, "systemctl show -p MainPID --value demo.service"),
        pid_before
    );
    step(t0, "restart_on verified");
}

/// Generation 4 with a bad sshd setting: refused, previous drop-in kept, ssh still works.
pub(crate) fn bad_sshd_setting(t0: Instant, m1: &Machine, key: &Path, spec: &mut Spec) {
    spec.generation = 4;
    spec.sshd_max_auth = "lots";
    put(
        m1,
        "/etc/node-agent/desired.yml",
        desired(m1, spec).as_bytes(),
    );
    let s = wait_status(m1, "sshd rejection", Duration::from_secs(30), |s| {
        s["generation"] == 4 && !item(s, "sshd")["last_error"].is_null()
    });
    assert!(
        item(&s, "sshd")["last_error"]
            .as_str()
            .unwrap()
            .contains("sshd rejected the new configuration (previous drop-in restored"),
        "{s}"
    );
    assert!(
        item(&s, "unit:demo.service")["in_sync"] == true,
        "other items unaffected"
    );
    assert!(sh_ok(m1, "sshd -T 2>/dev/null | grep -i '^maxauthtries'").contains("maxauthtries 4"));
    assert!(
        String::from_utf8_lossy(&m1.ssh(key, "echo still-in").unwrap().stdout).contains("still-in")
    );
    step(t0, "bad sshd setting refused");
}

/// Generation 5 with a failing item, then a malformed generation 6.
pub(crate) fn failure_isolation(t0: Instant, m1: &Machine, spec: &mut Spec) {
    spec.generation = 5;
    spec.sshd_max_auth = "4";
    spec.extra = "  - kernelmodule: {name: node_agent_no_such_module}\n  - file: {path: /etc/demo/after-failure.conf, content: \"x\\n\"}\n";
    put(
        m1,
        "/etc/node-agent/desired.yml",
        desired(m1, spec).as_bytes(),
    );
    let s = wait_status(m1, "generation 5", Duration::from_secs(30), |s| {
        s["generation"] == 5 && item(s, "sshd")["in_sync"] == true
    });
    assert!(
        !item(&s, "kernelmodule:node_agent_no_such_module")["last_error"].is_null(),
        "{s}"
    );
    assert_eq!(
        item(&s, "file:/etc/demo/after-failure.conf")["in_sync"],
        true
    );
    assert_eq!(s["ready"], false);
    put(m1, "/etc/node-agent/desired.yml", b"kind: NodeDesired\nversion: v1\ngeneration: 6\nchangesallowed: true\nitems:\n  - file: {path: /etc/x, content: x, colour: red}\n");
    let s = wait_status(m1, "desired error", Duration::from_secs(30), |s| {
        s["desired_error"]
            .as_str()
            .is_some_and(|e| e.contains("desired.yml:6:"))
    });
    assert_eq!(s["generation"], 5, "the last valid state stays enforced");
    step(t0, "failure isolation and malformed input verified");
}
