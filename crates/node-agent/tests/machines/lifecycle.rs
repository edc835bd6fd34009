//! The machine's later life: etcd-server upgraded from a newly added source and held, the
//! firewall item dropped, a reboot requested once, and the agent uninstalled.

use crate::desired::{ETCD_NEW, Spec, desired};
use crate::helpers::{
    item, make_proc_sys_net_writable, port_open_from, put, ready_at, sh, sh_ok, status, step,
    wait_status,
};
use orb_machines::Machine;
use std::time::{Duration, Instant};

/// Generation 7: the trixie source added and etcd-server 3.4.23 -> 3.5.16, held there.
pub(crate) fn upgrade(
    t0: Instant,
    m1: &Machine,
    m2: &Machine,
    spec: &mut Spec,
    bookworm: &str,
    both: &str,
) {
    assert_eq!(sh_ok(m1, "cat /etc/apt/sources.list.d/orb.list"), bookworm);
    assert!(
        !sh_ok(m1, "apt-cache policy etcd-server").contains(ETCD_NEW),
        "trixie must not be a source yet"
    );
    spec.generation = 7;
    spec.extra = "";
    spec.etcd = ETCD_NEW;
    spec.sources = both.to_owned();
    put(
        m1,
        "/etc/node-agent/desired.yml",
        desired(m1, spec).as_bytes(),
    );
    let s = wait_status(m1, "upgrade", Duration::from_secs(300), |s| ready_at(s, 7));
    assert_eq!(
        sh_ok(m1, "dpkg-query -W -f '${Version} ${Status}' etcd-server"),
        format!("{ETCD_NEW} hold ok installed")
    );
    assert_eq!(
        item(&s, "package:etcd-server")["observed"],
        format!("{ETCD_NEW} (held)")
    );
    assert_eq!(
        sh_ok(m1, "systemctl is-active etcd.service").trim(),
        "active"
    );
    assert_eq!(
        sh_ok(m1, "cat /etc/default/etcd").lines().next().unwrap(),
        "ETCD_LISTEN_CLIENT_URLS=\"http://0.0.0.0:2379\"",
        "conffile kept (--force-confold)"
    );
    assert!(port_open_from(m2, m1.ip(), 2379));
    step(t0, "etcd-server upgraded to 3.5.16 and held");
}

/// Generation 8 without a firewall item: the agent's table goes away.
pub(crate) fn firewall_removed(t0: Instant, m1: &Machine, m2: &Machine, spec: &mut Spec) {
    spec.generation = 8;
    spec.firewall = false;
    put(
        m1,
        "/etc/node-agent/desired.yml",
        desired(m1, spec).as_bytes(),
    );
    wait_status(m1, "firewall removal", Duration::from_secs(30), |s| {
        ready_at(s, 8)
    });
    assert!(!sh_ok(m1, "nft list tables").contains("node_agent"));
    assert!(
        port_open_from(m2, m1.ip(), 2380),
        "2380 must answer once the agent's table is gone"
    );
    step(t0, "firewall table removed");
}

/// Generation 9 requests a reboot: the machine reboots once and reports having booted after it.
pub(crate) fn reboot_once(t0: Instant, m1: &Machine, spec: Spec) {
    let mut spec = spec;
    let booted_before = m1.booted_at().unwrap();
    let init_before = m1.init_pid().unwrap();
    let req = node_protocol::timefmt::format_rfc3339(node_protocol::timefmt::now_secs());
    spec.generation = 9;
    let reboot_item = format!("  - reboot: {{requested_at: \"{req}\"}}\n");
    spec.extra = &reboot_item;
    std::thread::sleep(Duration::from_millis(1100));
    put(
        m1,
        "/etc/node-agent/desired.yml",
        desired(m1, &spec).as_bytes(),
    );
    let start = Instant::now();
    while m1.init_pid() == Some(init_before) || m1.init_pid().is_none() {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "the machine did not reboot"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    make_proc_sys_net_writable(m1);
    let s = wait_status(m1, "after reboot", Duration::from_secs(180), |s| {
        ready_at(s, 9) && item(s, "reboot")["in_sync"] == true
    });
    assert!(m1.booted_at().unwrap() > booted_before);
    let booted = node_protocol::timefmt::parse_rfc3339(s["booted_at"].as_str().unwrap()).unwrap();
    assert!(
        booted >= node_protocol::timefmt::parse_rfc3339(&req).unwrap(),
        "{s}"
    );
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(m1.init_pid().map(|p| p != init_before), Some(true));
    let s2 = status(m1).unwrap();
    assert_eq!(s2["booted_at"], s["booted_at"], "rebooted only once");
    step(t0, "reboot request honoured once");
}

/// The uninstall script removes the agent and what it owns; the workload stays.
pub(crate) fn uninstall(t0: Instant, m1: &Machine) {
    let out = sh_ok(m1, &node_protocol::install::uninstall_script());
    assert!(out.contains("node-agent-uninstall: done"), "{out}");
    let (_, left) = sh(
        m1,
        "ls -d /usr/local/bin/node-agent /etc/systemd/system/node-agent.service /var/lib/node-agent /etc/node-agent /etc/sysctl.d/90-node-agent.conf /etc/modules-load.d/node-agent.conf /etc/ssh/sshd_config.d/00-node-agent.conf 2>/dev/null",
    );
    assert_eq!(left.trim(), "", "left behind: {left}");
    assert_eq!(
        sh(m1, "systemctl is-active node-agent.service").1.trim(),
        "inactive"
    );
    assert_eq!(
        sh_ok(m1, "systemctl is-active etcd.service").trim(),
        "active"
    );
    step(t0, "uninstalled");
}
