//! End to end on real machines (systemd-nspawn Debian bookworm from crate orb-machines, with
//! the group's local apt repository): the agent is installed with its own install script and
//! driven only through its desired file, as Orbiter will. Needs root; fails (not skips)
//! without it. One test, run in sequence, because machines and package installs are costly.
//!
//! This file holds the scenario in its order; each phase lives in a module named for what it
//! shows: `install`, `first_generation`, `changes` (idempotence, drift, restart_on, refusals,
//! failure isolation) and `lifecycle` (upgrade, firewall removal, reboot, uninstall), on top of
//! `helpers` (files into machines, commands, waiting for a status) and `desired` (the document).

mod changes;
mod desired;
mod first_generation;
mod helpers;
mod install;
mod lifecycle;

use desired::{ETCD_OLD, Spec};
use helpers::{make_proc_sys_net_writable, sh_ok, step};
use orb_machines::{GroupGuard, GroupSpec, Host, Suite};
use std::process::Command;
use std::time::Instant;

#[test]
fn must_show_on_real_machines() {
    let t0 = Instant::now();
    let host = Host::new().unwrap_or_else(|e| {
        panic!("node-agent machine tests need root and the orb-machines host tools: {e}")
    });
    host.base_image().expect("base image");
    let name = format!("na-{}", std::process::id());
    let keydir = tempfile::tempdir().unwrap();
    let key = keydir.path().join("id");
    assert!(
        Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", ""])
            .arg("-f")
            .arg(&key)
            .status()
            .unwrap()
            .success()
    );
    let pubkey = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    let spec = GroupSpec {
        name: name.clone(),
        pubkey,
        net_admin: true,
    };
    let guard = GroupGuard::up(&host, &spec).expect("group up");
    let g = guard.group();
    g.add_packages(Suite::Bookworm, &["etcd-server"])
        .expect("bookworm packages");
    g.add_packages(Suite::Trixie, &["etcd-server"])
        .expect("trixie packages");
    let ms = g.create_machines(&["m1", "m2"]).expect("machines");
    let (m1, m2) = (&ms[0], &ms[1]);
    step(t0, "machines up");

    // --- Install with the install script (twice: the second run changes nothing).
    install::install_twice(t0, m1);

    // nspawn leaves /proc/sys read-only unless it created the network namespace itself
    // (--private-network); orb-machines hands it one by path. A machine owning its network
    // namespace (like a VM) can set net.* keys: give m1 what --private-network would.
    make_proc_sys_net_writable(m1);

    // A table of someone else's, which the agent must not touch.
    sh_ok(
        m1,
        "nft add table inet someone_else && nft add chain inet someone_else c",
    );

    // --- Generation 1, and the agent killed in the middle of installing etcd-server.
    // Only bookworm at first: 3.5.16 (trixie) becomes installable when the source item adds it.
    let bookworm = format!("deb [trusted=yes] {}bookworm ./\n", g.apt_url());
    let both = format!("{bookworm}deb [trusted=yes] {}trixie ./\n", g.apt_url());
    let mut spec = Spec {
        generation: 1,
        sources: bookworm.clone(),
        etcd: ETCD_OLD,
        firewall: true,
        sshd_max_auth: "4",
        demo_conf: "one",
        extra: "",
    };
    let s = first_generation::converge_despite_kill(t0, m1, &spec);
    first_generation::verify(t0, m1, m2, &key, s);

    // --- Idempotence: the same state again (new generation number only) does nothing.
    changes::idempotent(t0, m1, &mut spec);

    // --- Drift: a managed file edited and a managed unit stopped by hand.
    changes::drift(t0, m1);

    // --- restart_on: changing a file restarts the unit that depends on it.
    changes::restart_on(t0, m1, &mut spec);

    // --- A bad sshd setting is refused by `sshd -t`: previous drop-in kept, item reports it.
    changes::bad_sshd_setting(t0, m1, &key, &mut spec);

    // --- A failing item does not block the others; a malformed file keeps the last valid state.
    changes::failure_isolation(t0, m1, &mut spec);

    // --- Upgrade: etcd-server 3.4.23 -> 3.5.16 from the group's repository, held there.
    lifecycle::upgrade(t0, m1, m2, &mut spec, &bookworm, &both);

    // --- Without a firewall item the agent's table goes away; the blocked port answers.
    lifecycle::firewall_removed(t0, m1, m2, &mut spec);

    // --- Reboot request: once, then the machine reports having booted after it.
    lifecycle::reboot_once(t0, m1, spec);

    // --- Uninstall removes the agent and what it owns; the workload stays.
    lifecycle::uninstall(t0, m1);

    drop(guard);
}
