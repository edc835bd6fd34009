//! Three Static machines whose Orb repository lives on the group's SSH git server (which the
//! machines reach), a person configured for it with a deploy key, their own git clone, and the
//! bootstrap key pair: the start of every test of an Orbiter inside its Orb. Dropping it takes
//! the group down; when the test is failing it first prints what the Orbiter and agents said.

use super::Person;
use super::e2e::{node_agent_binary, sh};
use super::human::HumanClone;
use orb_machines::{Group, GroupSpec, Host, Machine, Suite};
use std::path::PathBuf;

pub struct StaticLab {
    pub name: String,
    pub group: Group,
    pub machines: Vec<Machine>,
    pub person: Person,
    pub human: HumanClone,
    pub boot_pub: String,
    pub boot_file: PathBuf,
}

impl StaticLab {
    /// Group `name` with machines s1, s2, s3; `packages` (besides git and ssh, which the
    /// Orbiter on a machine clones with) are offered in the group's apt repository.
    pub fn up(name: &str, packages: &[&str]) -> StaticLab {
        let host = Host::new().expect("this test needs root and the orb-machines host tools");
        let (boot_priv, boot_pub) = orb_testsupport::keypair();
        let group = Group::up(
            &host,
            &GroupSpec {
                name: name.to_owned(),
                pubkey: boot_pub.clone(),
                net_admin: false,
            },
        )
        .unwrap();
        // From here on, a failure takes the group down with the guard.
        let guard = Guard(name.to_owned());
        let machines: Vec<Machine> = ["s1", "s2", "s3"]
            .iter()
            .map(|id| group.create_machine(id).unwrap())
            .collect();
        let mut offered = vec!["git", "openssh-client"];
        offered.extend(packages);
        group.add_packages(Suite::Bookworm, &offered).unwrap();

        let git = group.git_host().unwrap();
        let url = git.create_bare_repo("orb").unwrap();
        let (deploy_priv, deploy_pub) = orb_testsupport::keypair();
        git.add_deploy_key(&deploy_pub).unwrap();
        let person = Person::new();
        let deploy_file = person.secret_file("deploy", deploy_priv.as_bytes());
        let boot_file = person.secret_file("bootstrap", boot_priv.as_bytes());
        let known_hosts = person.secret_file(
            "known_hosts",
            format!("{}\n", git.known_hosts_line()).as_bytes(),
        );
        person.ok(&[
            "--accept-host-key",
            git.host_key_fingerprint(),
            "configure",
            "--repourl",
            &url,
            "--repokey-file",
            deploy_file.to_str().unwrap(),
        ]);
        let human = HumanClone::new(&url, &deploy_file, &known_hosts);
        std::mem::forget(guard);
        StaticLab {
            name: name.to_owned(),
            group,
            machines,
            person,
            human,
            boot_pub,
            boot_file,
        }
    }

    /// The bootstrap key pair as the Static provider's secrets.
    pub fn write_bootstrap_secrets(&self) {
        let p = &self.person;
        p.ok(&[
            "writesecret",
            "lab.bootstrapkeyprivate",
            "--file",
            self.boot_file.to_str().unwrap(),
        ]);
        p.ok(&[
            "writesecret",
            "lab.bootstrapkeypublic",
            "--value",
            &self.boot_pub,
        ]);
    }

    /// `orbctl takeoff`: converges from here, then hands over to an Orbiter service on lab.s1.
    pub fn takeoff(&self) -> String {
        let out = self
            .person
            .cmd(&["takeoff", "--timeout", "900", "--interval", "1"])
            .env("ORBITER_NODE_AGENT", node_agent_binary())
            .output()
            .unwrap();
        let log = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "takeoff failed:\n{log}");
        assert!(log.contains("the Orbiter runs on lab.s1"), "{log}");
        log
    }

    /// `provider lab` with a pool `machines` of s1, s2, s3, as orbiter.yml lines, each with
    /// the host key the person knows it by (as a person copies it from the machine's console).
    pub fn provider_yaml(&self) -> String {
        let mut s = String::from(
            "providers:\n  lab:\n    kind: StaticProvider\n    version: v1\n    spec:\n      pools:\n        machines:\n",
        );
        for m in &self.machines {
            s.push_str(&format!(
                "          - id: {id}\n            hostname: {id}\n            ip: {ip}\n            hostkey: \"{key}\"\n",
                id = m.id(),
                ip = m.ip(),
                key = m.host_public_key().unwrap()
            ));
        }
        s
    }
}

impl Drop for StaticLab {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // What the Orbiter inside the Orb and the agents said, for the failure report.
            if let Some(m) = self.machines.first() {
                eprintln!(
                    "--- plan on s1:\n{}",
                    sh(
                        m,
                        "HOME=/var/lib/orbiter ORBITER_NODE_AGENT=/usr/local/lib/orbiter/node-agent /usr/local/lib/orbiter/orbctl -f /var/lib/orbiter/config plan 2>&1"
                    )
                );
            }
            for m in &self.machines {
                eprintln!(
                    "--- {}:\n{}",
                    m.id(),
                    sh(
                        m,
                        "journalctl -u orbiter -u node-agent -n 60 --no-pager -o cat 2>&1 | tail -60; grep -E 'booted_at|generation|ready' /var/lib/node-agent/current.yml"
                    )
                );
            }
        }
        drop(Guard(self.name.clone()));
    }
}

/// Removes the group when dropped.
struct Guard(String);

impl Drop for Guard {
    fn drop(&mut self) {
        if let Ok(host) = Host::new() {
            let _ = Group::remove(&host, &self.0);
        }
    }
}
