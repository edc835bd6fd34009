//! End to end on real machines (root): an Orb of three Static machines whose repository lives
//! on an SSH git server the machines reach. Takeoff hands over to an Orbiter service on one of
//! them; then, with the laptop out of the loop: a reboot with the Orbiter killed in the middle
//! (one reboot, not two), an unreachable machine while the others proceed, a changed host key
//! refused until a person unpins it, and teardown removing the Orbiter from the Orb.

mod common;

use common::Person;
use common::e2e::*;
use orb_machines::{Group, GroupSpec, Host, Machine, Suite};
use orbiter::state::{self, OrbCurrent};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

struct Cleanup(String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        if std::thread::panicking()
            && let Ok(host) = Host::new()
            && let Ok(g) = Group::attach(&host, &self.0)
        {
            // What the Orbiter inside the Orb and the agents said, for the failure report.
            if let Ok(m) = g.machine("s1") {
                eprintln!(
                    "--- plan on s1:\n{}",
                    sh(
                        &m,
                        "HOME=/var/lib/orbiter ORBITER_NODE_AGENT=/usr/local/lib/orbiter/node-agent /usr/local/lib/orbiter/orbctl -f /var/lib/orbiter/config plan 2>&1"
                    )
                );
            }
            for id in ["s1", "s2", "s3"] {
                if let Ok(m) = g.machine(id) {
                    eprintln!(
                        "--- {id}:\n{}",
                        sh(
                            &m,
                            "journalctl -u orbiter -u node-agent -n 60 --no-pager -o cat 2>&1 | tail -60; grep -E 'booted_at|generation|ready' /var/lib/node-agent/current.yml"
                        )
                    );
                }
            }
        }
        if let Ok(host) = Host::new() {
            let _ = Group::remove(&host, &self.0);
        }
    }
}

/// A person's own clone of the Orb repository over SSH, as plain git would do it.
struct HumanClone {
    dir: tempfile::TempDir,
    ssh: String,
}

impl HumanClone {
    fn new(url: &str, key: &Path, known_hosts: &Path) -> HumanClone {
        let dir = tempfile::tempdir().unwrap();
        let ssh = format!(
            "ssh -i {} -o IdentitiesOnly=yes -o UserKnownHostsFile={} -o StrictHostKeyChecking=yes",
            key.display(),
            known_hosts.display()
        );
        let c = HumanClone { dir, ssh };
        c.git(&["clone", "--quiet", url, "w"], c.dir.path());
        c
    }

    fn work(&self) -> PathBuf {
        self.dir.path().join("w")
    }

    fn git(&self, args: &[&str], cwd: &Path) -> String {
        let out = Command::new("git")
            .current_dir(cwd)
            .env("GIT_SSH_COMMAND", &self.ssh)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn read(&self, file: &str) -> Option<String> {
        let w = self.work();
        self.git(&["fetch", "--quiet", "origin"], &w);
        let out = Command::new("git")
            .current_dir(&w)
            .args(["show", &format!("origin/main:{file}")])
            .output()
            .unwrap();
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn commit(&self, file: &str, content: &str, message: &str) {
        let w = self.work();
        self.git(&["fetch", "--quiet", "origin"], &w);
        self.git(&["reset", "--quiet", "--hard", "origin/main"], &w);
        std::fs::write(w.join(file), content).unwrap();
        self.git(&["add", file], &w);
        self.git(
            &[
                "-c",
                "user.name=Human",
                "-c",
                "user.email=h@example.test",
                "commit",
                "--quiet",
                "-m",
                message,
            ],
            &w,
        );
        self.git(&["push", "--quiet", "origin", "HEAD:main"], &w);
    }

    fn current(&self) -> OrbCurrent {
        state::parse(&self.read(state::CURRENT).unwrap(), state::CURRENT).unwrap()
    }

    fn machine_state(&self, key: &str) -> (String, Option<String>) {
        let c = self.current();
        let m = c
            .machines
            .iter()
            .find(|(k, _)| k.to_string() == key)
            .map(|(_, m)| m.clone())
            .unwrap_or_else(|| panic!("{key} not in current.yml: {c:?}"));
        (m.state, m.error)
    }
}

fn orb_yaml(machines: &[Machine], motd: &str) -> String {
    let mut s = String::from(
        "kind: Orb\nversion: v1\nproviders:\n  lab:\n    kind: StaticProvider\n    version: v1\n    spec:\n      pools:\n        machines:\n",
    );
    for m in machines {
        s.push_str(&format!(
            "          - id: {id}\n            hostname: {id}\n            ip: {ip}\n",
            id = m.id(),
            ip = m.ip()
        ));
    }
    s.push_str(&format!(
        "software:\n  base:\n    kind: NodeSoftware\n    version: v1\n    spec:\n      pools: [lab.machines]\n      items:\n        - file: {{path: /etc/motd, content: \"{motd}\\n\"}}\n"
    ));
    s
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
    let host = Host::new().expect("this test needs root and the orb-machines host tools");
    let name = format!("in{}", std::process::id());
    let cleanup = Cleanup(name.clone());
    let (boot_priv, boot_pub) = orb_testsupport::keypair();
    let group = Group::up(
        &host,
        &GroupSpec {
            name: name.clone(),
            pubkey: boot_pub.clone(),
            net_admin: false,
        },
    )
    .unwrap();
    let machines: Vec<Machine> = ["s1", "s2", "s3"]
        .iter()
        .map(|id| group.create_machine(id).unwrap())
        .collect();
    // The Orbiter on a machine clones over git and ssh; the local apt repository has git.
    group
        .add_packages(Suite::Bookworm, &["git", "openssh-client"])
        .unwrap();

    // The Orb repository on the group's git server, with a deploy key for the person.
    let git = group.git_host().unwrap();
    let url = git.create_bare_repo("orb").unwrap();
    let (deploy_priv, deploy_pub) = orb_testsupport::keypair();
    git.add_deploy_key(&deploy_pub).unwrap();
    let p = Person::new();
    let keys = p.home.path().join("keys");
    std::fs::create_dir_all(&keys).unwrap();
    let secret_file = |name: &str, content: &str| {
        use std::os::unix::fs::PermissionsExt as _;
        let f = keys.join(name);
        std::fs::write(&f, content).unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
        f
    };
    let deploy_file = secret_file("deploy", &deploy_priv);
    let boot_file = secret_file("bootstrap", &boot_priv);
    let known_hosts = secret_file("known_hosts", &format!("{}\n", git.known_hosts_line()));

    p.ok(&[
        "--accept-host-key",
        git.host_key_fingerprint(),
        "configure",
        "--repourl",
        &url,
        "--repokey-file",
        deploy_file.to_str().unwrap(),
    ]);
    let human = HumanClone::new(&url, &deploy_file, &known_hosts);
    human.commit("orbiter.yml", &orb_yaml(&machines, "one"), "Three machines");
    p.ok(&[
        "writesecret",
        "lab.bootstrapkeyprivate",
        "--file",
        boot_file.to_str().unwrap(),
    ]);
    p.ok(&[
        "writesecret",
        "lab.bootstrapkeypublic",
        "--value",
        &boot_pub,
    ]);

    // Takeoff: converge from here, then hand over to an Orbiter service on lab.s1.
    let out = p
        .cmd(&["takeoff", "--timeout", "600", "--interval", "1"])
        .env("ORBITER_NODE_AGENT", node_agent_binary())
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "takeoff failed:\n{log}");
    assert!(log.contains("the Orbiter runs on lab.s1"), "{log}");
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
    for m in &machines {
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
    set_motd(&p, "two");
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
    // nothing written there, until a person unpins it.
    sh(
        s3,
        "rm -f /etc/ssh/ssh_host_*; ssh-keygen -A >/dev/null; systemctl stop ssh; pkill -KILL sshd; systemctl start ssh",
    );
    set_motd(&p, "three");
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
    for m in &machines {
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
            let blob = boot_pub.split_whitespace().nth(1).unwrap();
            assert!(
                sh(
                    m,
                    "cat /home/*/.ssh/authorized_keys /root/.ssh/authorized_keys 2>/dev/null"
                )
                .contains(blob)
            );
        } else {
            assert!(
                m.ssh(&boot_file, "true").unwrap().status.success(),
                "{}",
                m.id()
            );
        }
    }
    assert!(human.current().destroyed);
    drop(cleanup);
}
