//! Generation 1: the agent killed in the middle of installing etcd-server still converges,
//! and then every item kind is checked on the machine itself (packages, files, units, sysctl,
//! module, hostname, sshd, firewall with real connections from the other machine).

use crate::desired::{ETCD_OLD, Spec, desired};
use crate::helpers::{item, port_open_from, put, ready_at, sh, sh_ok, step, wait_status};
use orb_machines::Machine;
use serde_json::Value;
use std::path::Path;
use std::time::{Duration, Instant};

/// Writes generation 1, kills the agent during the package installation and waits until
/// generation 1 converged after the restart; returns that status.
pub(crate) fn converge_despite_kill(t0: Instant, m1: &Machine, spec: &Spec) -> Value {
    put(
        m1,
        "/etc/node-agent/desired.yml",
        desired(m1, spec).as_bytes(),
    );
    let start = Instant::now();
    let mut killed = false;
    while start.elapsed() < Duration::from_secs(120) {
        if sh(
            m1,
            "pgrep -x dpkg >/dev/null || pgrep -f 'apt-get .*install' >/dev/null",
        )
        .0
        {
            std::thread::sleep(Duration::from_millis(200));
            // The whole cgroup: the agent, apt-get and dpkg. (systemctl may report EIO for a
            // process that exited meanwhile; NRestarts below proves the kill.)
            sh(m1, "systemctl kill --signal=SIGKILL node-agent.service");
            killed = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(killed, "never saw the package installation running");
    step(t0, "agent killed during the package installation");
    let s = wait_status(
        m1,
        "convergence of generation 1 after the kill",
        Duration::from_secs(300),
        |s| ready_at(s, 1),
    );
    step(t0, "generation 1 converged after restart");
    s
}

/// Checks generation 1 on the machines, `s` being the converged status.
pub(crate) fn verify(t0: Instant, m1: &Machine, m2: &Machine, key: &Path, s: Value) {
    let restarts: u32 = sh_ok(m1, "systemctl show -p NRestarts --value node-agent.service")
        .trim()
        .parse()
        .unwrap();
    assert!(
        restarts >= 1,
        "systemd must have restarted the killed agent"
    );
    assert!(
        s["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["in_sync"] == true && i["last_error"].is_null()),
        "{s}"
    );
    assert_eq!(
        sh_ok(m1, "dpkg-query -W -f '${Version} ${Status}' etcd-server"),
        format!("{ETCD_OLD} hold ok installed")
    );
    assert_eq!(
        item(&s, "package:etcd-server")["observed"],
        format!("{ETCD_OLD} (held)")
    );
    assert_eq!(
        sh_ok(m1, "systemctl is-active etcd.service demo.service")
            .split_whitespace()
            .collect::<Vec<_>>(),
        ["active", "active"]
    );
    assert_eq!(
        sh_ok(m1, "systemctl is-enabled demo.service").trim(),
        "enabled"
    );
    assert!(sh_ok(m1, "systemctl show etcd.service -p LimitNOFILE").contains("LimitNOFILE=65536"));
    assert_eq!(sh_ok(m1, "cat /proc/sys/net/ipv4/ip_forward").trim(), "1");
    assert_eq!(
        sh_ok(m2, "cat /proc/sys/net/ipv4/ip_forward").trim(),
        "0",
        "per-namespace key: the other machine keeps its own value"
    );
    assert!(sh_ok(m1, "cat /etc/sysctl.d/90-node-agent.conf").contains("net.ipv4.ip_forward = 1"));
    assert!(sh_ok(m1, "cat /etc/modules-load.d/node-agent.conf").contains("\noverlay\n"));
    assert_eq!(item(&s, "kernelmodule:overlay")["observed"], "loaded");
    assert_eq!(item(&s, "swap")["observed"], "no active swap");
    assert_eq!(
        sh_ok(
            m1,
            "hostname; cat /etc/hostname; getent hosts na-node-1 | awk '{print $1}'"
        ),
        "na-node-1\nna-node-1\n127.0.1.1\n"
    );
    assert!(sh_ok(m1, "sshd -T 2>/dev/null | grep -i '^maxauthtries'").contains("maxauthtries 4"));
    assert_eq!(
        sh_ok(m1, "stat -c '%a %U' /etc/demo /etc/demo/demo.conf"),
        "750 root\n640 root\n"
    );
    // Firewall, with real connections from the other machine: 2379 allowed, 2380 (listening) blocked.
    assert!(
        sh_ok(m1, "ss -ltnH").contains(":2380"),
        "etcd must listen on 2380 for the blocked-port check"
    );
    assert!(
        port_open_from(m2, m1.ip(), 2379),
        "allowed port 2379 must connect"
    );
    assert!(
        !port_open_from(m2, m1.ip(), 2380),
        "port 2380 must be blocked"
    );
    assert!(port_open_from(m2, m1.ip(), 22), "ssh must stay reachable");
    assert!(
        sh_ok(m1, "nft list tables").contains("table inet someone_else"),
        "another table was touched"
    );
    let ssh = m1.ssh(key, "echo still-in").unwrap();
    assert!(String::from_utf8_lossy(&ssh.stdout).contains("still-in"));
    step(
        t0,
        "generation 1 verified (packages, files, units, sysctl, module, hostname, sshd, firewall)",
    );
}
