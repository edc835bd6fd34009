//! End to end on real machines (root): an EtcdCluster on a Local pool, driven only by commits.
//! Bootstrap of 3 with TLS and a backup moved to another machine, a key written and read back
//! through every step, a rolling upgrade 3.4 → 3.5, a downgrade across minors refused, one
//! member's machine power-cut and replaced automatically, and teardown.

mod common;

use common::e2e::*;
use common::etcd::*;
use common::*;
use orb_machines::{Group, Host};
use std::time::Duration;

struct Cleanup {
    group: String,
    person: std::path::PathBuf,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        kill_daemons(&self.person, true);
        if let Ok(host) = Host::new() {
            let _ = Group::remove(&host, &self.group);
        }
    }
}

fn orb_yaml(group: &str) -> String {
    format!(
        "kind: Orb
version: v1
providers:
  loc:
    kind: LocalProvider
    version: v1
    spec:
      group: {group}
      pools:
        etcd:
          nodes: 3
        backup:
          nodes: 1
clusters:
  kv:
    kind: EtcdCluster
    version: v1
    spec:
      provider: loc
      pool: etcd
      nodes: 3
      version: 3.4.23
      backup:
        every: 1h
        keep: 2
        target: loc.backup-1
"
    )
}

/// etcdctl as root on a member machine, with the client certificate Orbiter put there.
fn etcdctl(p: &Person, machine: &str, args: &str) -> String {
    let pki = "/etc/orb-etcd/kv/pki";
    p.ok(&[
        "node",
        "exec",
        machine,
        "--",
        &format!(
            "sudo ETCDCTL_API=3 etcdctl --endpoints=https://127.0.0.1:2379 --cacert={pki}/ca.crt --cert={pki}/client.crt --key={pki}/client.key {args}"
        ),
    ])
    .trim()
    .to_owned()
}

/// The record's leader (a member's machine name).
fn leader(p: &Person) -> Option<String> {
    p.ok(&["file", "print", "orbiter/clusters/kv/current.yml"])
        .lines()
        .find_map(|l| l.strip_prefix("leader: "))
        .map(|l| l.trim().to_owned())
}

/// `git show REV:PATH` of the bare repository (empty when absent).
fn show(bare: &std::path::Path, rev: &str, path: &str) -> String {
    let out = std::process::Command::new("git")
        .arg("--git-dir")
        .arg(bare)
        .args(["show", &format!("{rev}:{path}")])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `orbctl node reboot` of the leader while a client writes through another member: the
/// leadership moves before the reboot is requested (the first commit that asks the machine to
/// reboot already records another leader), the machine reboots once, and every write the
/// cluster acknowledged is there afterwards.
fn reboot_the_leader_with_a_writer(p: &Person, bare: &std::path::Path) {
    let old = leader(p).expect("a leader in the record");
    let writer = ["loc.etcd-1", "loc.etcd-2", "loc.etcd-3"]
        .into_iter()
        .find(|m| *m != old)
        .unwrap();
    let pki = "/etc/orb-etcd/kv/pki";
    let put = format!(
        "ETCDCTL_API=3 etcdctl --endpoints=https://127.0.0.1:2379 --cacert={pki}/ca.crt --cert={pki}/client.crt --key={pki}/client.key --command-timeout=5s put"
    );
    p.ok(&[
        "node",
        "exec",
        writer,
        "--",
        &format!(
            "sudo rm -f /root/acked; sudo systemd-run --unit=orb-e2e-writer sh -c 'i=0; while [ $i -lt 1000000 ]; do i=$((i+1)); if {put} w/$i $i >/dev/null 2>&1; then echo $i >> /root/acked; fi; done'"
        ),
    ]);
    std::thread::sleep(Duration::from_secs(3));
    p.ok(&["node", "reboot", &old]);
    wait_for(
        "the old leader rebooted and the cluster settled",
        Duration::from_secs(300),
        || {
            !read_from(bare, "orbiter.yml").contains("rebootrequired")
                && settled(p, 3, "3.5.16")
                && leader(p).is_some_and(|l| l != old)
        },
    );
    std::thread::sleep(Duration::from_secs(3));
    p.ok(&[
        "node",
        "exec",
        writer,
        "--",
        "sudo systemctl stop orb-e2e-writer",
    ]);
    let acked: usize = p
        .ok(&[
            "node",
            "exec",
            writer,
            "--",
            "sudo sh -c 'wc -l < /root/acked'",
        ])
        .trim()
        .parse()
        .unwrap();
    assert!(acked > 20, "the writer wrote too little: {acked}");
    let lost = p.ok(&[
        "node",
        "exec",
        writer,
        "--",
        &format!(
            "sudo sh -c '{} get w/ --prefix --keys-only | grep . | sed s#^w/## | sort > /root/present; sort /root/acked | comm -23 - /root/present | wc -l'",
            put.trim_end_matches(" put")
        ),
    ]);
    assert_eq!(
        lost.trim(),
        "0",
        "acknowledged writes lost ({acked} acknowledged)"
    );

    // Git tells the order: the first commit asking the old leader to reboot records another
    // leader already.
    let desired = format!("orbiter/nodes/{old}/desired.yml");
    let log = std::process::Command::new("git")
        .arg("--git-dir")
        .arg(bare)
        .args(["log", "--reverse", "--format=%H", "--", &desired])
        .output()
        .unwrap();
    let first = String::from_utf8_lossy(&log.stdout)
        .lines()
        .find(|c| show(bare, c, &desired).contains("requested_at"))
        .map(str::to_owned)
        .expect("a commit asking the old leader to reboot");
    let record = show(bare, &first, "orbiter/clusters/kv/current.yml");
    let then = record
        .lines()
        .find_map(|l| l.strip_prefix("leader: "))
        .map(str::trim);
    assert!(
        then.is_some_and(|l| l != old),
        "the reboot was requested while {old} still led:\n{record}"
    );
}

#[test]
fn etcd_bootstrap_backup_upgrade_refused_downgrade_self_healing_teardown() {
    let host = Host::new().expect("this test needs root and the orb-machines host tools");
    let group = format!("kv{}", std::process::id());
    let (p, repo) = (Person::new(), orb_testsupport::bare_repo());
    let cleanup = Cleanup {
        group: group.clone(),
        person: p.home.path().to_owned(),
    };
    p.ok(&[
        "configure",
        "--repourl",
        &format!("file://{}", repo.path.display()),
    ]);
    human_commit(&repo.path, "orbiter.yml", &orb_yaml(&group), "etcd kv");
    let port = 20000 + (std::process::id() % 20000) as u16;
    let out = p
        .cmd(&[
            "takeoff",
            "--timeout",
            "900",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--interval",
            "1",
        ])
        .env("ORBITER_NODE_AGENT", node_agent_binary())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "takeoff:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_for("3 healthy members", Duration::from_secs(300), || {
        settled(&p, 3, "3.4.23")
    });

    // TLS material: readable by the person, never plaintext in Git.
    assert!(
        p.ok(&["readsecret", "kv.clientcert"])
            .starts_with("-----BEGIN CERTIFICATE-----")
    );
    assert!(!read_from(&repo.path, "orbiter/secrets.yml").contains("PRIVATE KEY"));
    // The first backup was taken and moved to the backup machine.
    let record = read_from(&repo.path, "orbiter/clusters/kv/current.yml");
    assert!(
        record.contains("location: loc.backup-1:/var/backups/orb-etcd/kv-"),
        "{record}"
    );
    let listing = p.ok(&[
        "node",
        "exec",
        "loc.backup-1",
        "--",
        "sudo ls /var/backups/orb-etcd",
    ]);
    assert!(listing.contains("kv-"), "{listing}");

    assert_eq!(etcdctl(&p, "loc.etcd-1", "put probe written-on-3.4"), "OK");

    // Rolling upgrade, one member at a time.
    p.ok(&[
        "file",
        "patch",
        "orbiter.yml",
        "clusters.kv.spec.version",
        "--value",
        "3.5.16",
    ]);
    wait_for("every member on 3.5.16", Duration::from_secs(400), || {
        settled(&p, 3, "3.5.16")
    });
    assert!(etcdctl(&p, "loc.etcd-3", "get probe --print-value-only").contains("written-on-3.4"));

    reboot_the_leader_with_a_writer(&p, &repo.path);

    // A downgrade across minors is refused with the reason; nothing is touched.
    p.ok(&[
        "file",
        "patch",
        "orbiter.yml",
        "clusters.kv.spec.version",
        "--value",
        "3.4.23",
    ]);
    wait_for(
        "the refusal in the current state",
        Duration::from_secs(60),
        || read_from(&repo.path, "orbiter/current.yml").contains("downgrade"),
    );
    assert!(settled(&p, 3, "3.5.16"));
    p.ok(&[
        "file",
        "patch",
        "orbiter.yml",
        "clusters.kv.spec.version",
        "--value",
        "3.5.16",
    ]);

    // A member's machine loses power: the member is removed and a new machine joins.
    let g = Group::attach(&host, &group).unwrap();
    g.machine("etcd-2").unwrap().power_cut().unwrap();
    wait_for(
        "etcd-2 replaced by a new member",
        Duration::from_secs(400),
        || settled(&p, 3, "3.5.16") && !members(&p).iter().any(|m| m.0 == "loc.etcd-2"),
    );
    assert!(
        !g.machines().unwrap().iter().any(|m| m.id == "etcd-2"),
        "the dead machine was not destroyed"
    );
    assert!(etcdctl(&p, "loc.etcd-1", "get probe --print-value-only").contains("written-on-3.4"));

    // The restore drill: the recorded backup restores into a temporary etcd.
    let drill = p
        .cmd(&["cluster", "restore-drill", "kv"])
        .env("ORBITER_NODE_AGENT", node_agent_binary())
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&drill.stdout);
    assert!(
        drill.status.success() && report.contains("result:        restorable"),
        "{report}\n{}",
        String::from_utf8_lossy(&drill.stderr)
    );
    assert!(report.contains("matches the record"), "{report}");

    let out = p.run(&["teardown", "--yes"]);
    assert!(
        out.status.success(),
        "teardown:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!host.group_names().unwrap().contains(&group));
    drop(cleanup);
}
