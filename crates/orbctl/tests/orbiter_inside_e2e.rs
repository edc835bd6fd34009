//! End to end on real machines (root): an Orb of three Static machines whose repository lives
//! on an SSH git server the machines reach. Takeoff hands over to an Orbiter service on one of
//! them; then, with the laptop out of the loop: a reboot with the Orbiter killed in the middle
//! (one reboot, not two), an unreachable machine while the others proceed, a changed host key
//! refused until a person declares the new key in orbiter.yml, and teardown removing the
//! Orbiter from the Orb.

mod common;

use common::Person;
use common::e2e::*;
use common::static_lab::StaticLab;
use orb_machines::Machine;
use orbiter::state;
use std::time::{Duration, SystemTime};

fn orb_yaml(lab: &StaticLab, motd: &str) -> String {
    format!(
        "kind: Orb\nversion: v1\n{}rollout:\n  default:\n    settle: 3s\n    maxunavailable: 2\nsoftware:\n  base:\n    kind: NodeSoftware\n    version: v1\n    spec:\n      pools: [lab.machines]\n      items:\n        - file: {{path: /etc/motd, content: \"{motd}\\n\"}}\n",
        lab.provider_yaml()
    )
}

/// A person changes the node software with orbctl (orbiter.yml carries their secrets).
fn set_motd(p: &Person, text: &str) {
    p.ok(&[
        "file",
        "patch",
        "orbiter.yml",
        "software.base.spec.items.0.file.content",
        "--value",
        &format!("{text}\n"),
    ]);
}

fn boot_time(m: &Machine) -> SystemTime {
    m.booted_at().unwrap()
}

#[test]
fn orbiter_inside_the_orb_reboot_unreachable_hostkey_teardown() {
    let lab = StaticLab::up(&format!("in{}", std::process::id()), &[]);
    let (p, human, machines) = (&lab.person, &lab.human, &lab.machines);
    human.commit("orbiter.yml", &orb_yaml(&lab, "one"), "Three machines");
    lab.write_bootstrap_secrets();

    // Takeoff: converge from here, then hand over to an Orbiter service on lab.s1.
    lab.takeoff();
    let s1 = &machines[0];
    assert_eq!(sh(s1, "systemctl is-active orbiter.service"), "active");
    assert_eq!(sh(s1, "stat -c %a /var/lib/orbiter/config"), "600");
    assert!(
        !p.home.path().join(".orb").read_dir().unwrap().any(|e| e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .ends_with(".pid")),
        "a daemon was started on this host although the Orbiter went into the Orb"
    );
    for m in machines {
        assert_eq!(sh(m, "cat /etc/motd"), "one");
    }

    // Reboot through the Orbiter inside the Orb, which is killed right after it asked for it.
    let s2 = &machines[1];
    let booted = boot_time(s2);
    p.ok(&["node", "reboot", "lab.s2"]);
    wait_for(
        "the reboot request in s2's node-desired file",
        Duration::from_secs(60),
        || {
            human
                .read("orbiter/nodes/lab.s2/desired.yml")
                .is_some_and(|d| d.contains("reboot"))
        },
    );
    sh(s1, "systemctl kill -s KILL orbiter.service");
    wait_for("the reboot flag cleared", Duration::from_secs(180), || {
        !human
            .read("orbiter.yml")
            .unwrap()
            .contains("rebootrequired")
    });
    let rebooted = boot_time(s2);
    assert!(rebooted > booted, "s2 did not reboot");
    std::thread::sleep(Duration::from_secs(8));
    assert_eq!(boot_time(s2), rebooted, "s2 rebooted a second time");
    assert_eq!(sh(s1, "systemctl is-active orbiter.service"), "active");

    // An unreachable machine is reported; the others get the change.
    let s3 = &machines[2];
    s3.cut_network().unwrap();
    set_motd(p, "two");
    wait_for(
        "motd two on s1 and s2, s3 reported unreachable",
        Duration::from_secs(180),
        || {
            sh(s1, "cat /etc/motd") == "two"
                && sh(s2, "cat /etc/motd") == "two"
                && human.machine_state("lab.s3").0 == "unreachable"
        },
    );
    assert_eq!(sh(s3, "cat /etc/motd"), "one");
    s3.restore_network().unwrap();
    wait_for("s3 catches up", Duration::from_secs(180), || {
        sh(s3, "cat /etc/motd") == "two" && human.machine_state("lab.s3").0 == "ready"
    });

    // A changed host key (as after a reinstall, which also ends every SSH session): refused,
    // nothing written there; unpinning alone does not help (orbiter.yml declares the old key),
    // declaring the new key does.
    sh(
        s3,
        "rm -f /etc/ssh/ssh_host_*; ssh-keygen -A >/dev/null; systemctl stop ssh; pkill -KILL sshd; systemctl start ssh",
    );
    set_motd(p, "three");
    wait_for(
        "s3 refused for its host key, the others updated",
        Duration::from_secs(180),
        || sh(s1, "cat /etc/motd") == "three" && human.machine_state("lab.s3").0 == "refused",
    );
    let (_, err) = human.machine_state("lab.s3");
    assert!(
        err.as_deref()
            .is_some_and(|e| e.contains("host key changed")),
        "{err:?}"
    );
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        sh(s3, "cat /etc/motd"),
        "two",
        "written despite a changed host key"
    );
    let pins = human.read(state::HOSTKEYS).unwrap();
    let unpinned: String = pins
        .lines()
        .filter(|l| !l.contains("lab.s3"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_ne!(pins, unpinned, "no pin of lab.s3 in {pins}");
    human.commit(state::HOSTKEYS, &unpinned, "s3 was reinstalled: unpin it");
    wait_for(
        "s3 met again, and refused: it offers another key than orbiter.yml declares",
        Duration::from_secs(120),
        || {
            let (state, err) = human.machine_state("lab.s3");
            state == "new"
                && err.is_some_and(|e| e.contains("orbiter.yml declares another host key"))
        },
    );
    assert_eq!(sh(s3, "cat /etc/motd"), "two");
    // The person reads the new key on the machine's console and declares it.
    let new_key = sh(s3, "cut -d' ' -f1,2 /etc/ssh/ssh_host_ed25519_key.pub");
    p.ok(&[
        "file",
        "patch",
        "orbiter.yml",
        "providers.lab.spec.pools.machines.2.hostkey",
        "--value",
        &new_key,
    ]);
    wait_for(
        "s3 pinned again and updated",
        Duration::from_secs(180),
        || sh(s3, "cat /etc/motd") == "three" && human.machine_state("lab.s3").0 == "ready",
    );

    // Teardown from the laptop stops the Orbiter inside the Orb first.
    let out = p.run(&["teardown", "--yes"]);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && !log.contains("warning"),
        "teardown:\n{log}"
    );
    for m in machines {
        assert_eq!(
            sh(
                m,
                "test -e /etc/systemd/system/orbiter.service -o -e /var/lib/orbiter -o -e /usr/local/bin/node-agent && echo present || echo gone"
            ),
            "gone",
            "{}",
            m.id()
        );
        // s3's host key changed after orb-machines recorded it: check its authorized_keys.
        if m.id() == "s3" {
            let blob = lab.boot_pub.split_whitespace().nth(1).unwrap();
            assert!(
                sh(
                    m,
                    "cat /home/*/.ssh/authorized_keys /root/.ssh/authorized_keys 2>/dev/null"
                )
                .contains(blob)
            );
        } else {
            assert!(
                m.ssh(&lab.boot_file, "true").unwrap().status.success(),
                "{}",
                m.id()
            );
        }
    }
    assert!(human.current().destroyed);
    drop(lab);
}
