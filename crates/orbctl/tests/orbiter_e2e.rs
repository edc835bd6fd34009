//! End to end on real machines (root): takeoff of an Orb with a Static provider over three
//! machines and a Local provider pool of two, node software on both, the daemon handing over,
//! idle without commits, a human commit rolled out everywhere, an invalid orbiter.yml kept out,
//! a replacement finished by a restarted Orbiter after the daemon was killed mid-surge, and
//! teardown leaving the machines without anything Orbiter installed.

mod common;

use common::e2e::*;
use common::local_orb::*;
use common::*;
use orb_machines::{Group, GroupSpec, Host, Suite};
use orbiter::state::{self, OrbCurrent};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

fn current(repo: &Path) -> OrbCurrent {
    state::parse(&read_from(repo, state::CURRENT), state::CURRENT).unwrap()
}

/// bookworm's etcd-server, and trixie's, which installs on bookworm: a real upgrade path.
const OLD: &str = "3.4.23-4+b4";
const NEW: &str = "3.5.16-4";

fn orb_yaml(static_machines: &[(String, String)], local_group: &str, etcd: &str) -> String {
    let mut s = String::from(
        "kind: Orb\nversion: v1\nproviders:\n  lab:\n    kind: StaticProvider\n    version: v1\n    spec:\n      pools:\n        machines:\n",
    );
    for (id, ip) in static_machines {
        s.push_str(&format!(
            "          - id: {id}\n            hostname: {id}\n            ip: {ip}\n"
        ));
    }
    let lines = [
        "  loc:".to_owned(),
        "    kind: LocalProvider".to_owned(),
        "    version: v1".to_owned(),
        "    spec:".to_owned(),
        format!("      group: {local_group}"),
        "      pools:".to_owned(),
        "        extra:".to_owned(),
        "          nodes: 2".to_owned(),
        // Rollouts are another test's subject: a short settle window keeps this one quick.
        "rollout:".to_owned(),
        "  default:".to_owned(),
        "    settle: 3s".to_owned(),
        "software:".to_owned(),
        "  base:".to_owned(),
        "    kind: NodeSoftware".to_owned(),
        "    version: v1".to_owned(),
        "    spec:".to_owned(),
        "      pools: [lab.machines, loc.extra]".to_owned(),
        "      items:".to_owned(),
        format!("        - package: {{name: etcd-server, version: {etcd}}}"),
        r#"        - file: {path: /etc/orbiter-demo.conf, content: "managed by Orbiter\n"}"#.to_owned(),
        r#"        - unit: {name: orbiter-demo.service, content: "[Unit]\nDescription=demo\n[Service]\nExecStart=/bin/sleep infinity\n[Install]\nWantedBy=multi-user.target\n", enabled: true, active: true}"#.to_owned(),
    ];
    for l in lines {
        s.push_str(&l);
        s.push('\n');
    }
    s
}

#[test]
fn takeoff_rollout_idle_invalid_and_teardown() {
    let host = Host::new().expect("this test needs root and the orb-machines host tools");
    let pid = std::process::id();
    let (static_group, local_group) = (format!("st{pid}"), format!("lo{pid}"));
    let (p, repo) = (Person::new(), orb_testsupport::bare_repo());
    let mut cleanup = Cleanup {
        groups: vec![static_group.clone(), local_group.clone()],
        person: Some(p.home.path().to_owned()),
    };
    let _ = &mut cleanup;
    let bins = Binaries::snapshot();

    // Three machines that "already exist" for the Static provider, reachable with a bootstrap key.
    let (boot_priv, boot_pub) = orb_testsupport::keypair();
    let group = Group::up(
        &host,
        &GroupSpec {
            name: static_group.clone(),
            pubkey: boot_pub.clone(),
            net_admin: false,
        },
    )
    .unwrap();
    let machines: Vec<_> = ["s1", "s2", "s3"]
        .iter()
        .map(|id| group.create_machine(id).unwrap())
        .collect();
    group
        .add_packages(Suite::Bookworm, &["etcd-server"])
        .unwrap();
    group.add_packages(Suite::Trixie, &["etcd-server"]).unwrap();
    let listed: Vec<(String, String)> = machines
        .iter()
        .map(|m| (m.id().to_owned(), m.ip().to_string()))
        .collect();

    p.ok(&[
        "configure",
        "--repourl",
        &format!("file://{}", repo.path.display()),
    ]);
    human_commit(
        &repo.path,
        "orbiter.yml",
        &orb_yaml(&listed, &local_group, OLD),
        "Describe the Orb",
    );
    let keyfile = p.home.path().join("bootstrap");
    std::fs::write(&keyfile, &boot_priv).unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&keyfile, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert!(
        machines[0].ssh(&keyfile, "true").unwrap().status.success(),
        "the bootstrap key must work before takeoff"
    );
    p.ok(&[
        "writesecret",
        "lab.bootstrapkeyprivate",
        "--file",
        keyfile.to_str().unwrap(),
    ]);
    p.ok(&[
        "writesecret",
        "lab.bootstrapkeypublic",
        "--value",
        &boot_pub,
    ]);

    // Plan before anything exists: machines to create, keys, agents.
    let plan = p
        .cmd(&["plan"])
        .env("ORBITER_NODE_AGENT", bins.node_agent())
        .output()
        .unwrap();
    let plan_text = String::from_utf8_lossy(&plan.stdout);
    assert!(
        plan.status.success(),
        "{}",
        String::from_utf8_lossy(&plan.stderr)
    );
    assert!(
        plan_text.contains("create machine loc.extra-1"),
        "{plan_text}"
    );

    let port = 20000 + (pid % 20000) as u16;
    let listen = format!("127.0.0.1:{port}");
    let out = takeoff(&p, &bins, "900", &listen);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "takeoff failed:\n{log}");

    // Everything applied and recorded.
    let cur = current(&repo.path);
    assert_eq!(cur.machines.len(), 5, "{cur:?}");
    assert!(cur.machines.values().all(|m| m.state == "ready"), "{cur:?}");
    let local = Group::attach(&host, &local_group).unwrap();
    let all: Vec<orb_machines::Machine> = machines
        .iter()
        .cloned()
        .chain(
            local
                .machines()
                .unwrap()
                .iter()
                .map(|i| local.machine(&i.id).unwrap()),
        )
        .collect();
    assert_eq!(all.len(), 5);
    for m in &all {
        assert_eq!(
            sh(m, "dpkg-query -W -f '${Version}' etcd-server"),
            OLD,
            "{}",
            m.id()
        );
        assert_eq!(sh(m, "cat /etc/orbiter-demo.conf"), "managed by Orbiter");
        assert_eq!(sh(m, "systemctl is-active orbiter-demo.service"), "active");
        assert_eq!(sh(m, "apt-mark showhold"), "etcd-server");
    }
    // The bootstrap key was replaced by the maintenance key on the static machines.
    assert!(
        !machines[0].ssh(&keyfile, "true").unwrap().status.success(),
        "bootstrap key still works"
    );
    for f in [
        state::HOSTKEYS,
        state::SECRETS,
        "orbiter/nodes/lab.s1/desired.yml",
        "orbiter/nodes/lab.s1/current.yml",
    ] {
        read_from(&repo.path, f);
    }
    assert!(!read_from(&repo.path, state::SECRETS).contains("PRIVATE KEY"));

    // Converged: nothing to do, and the daemon commits nothing while idle.
    let plan = p
        .cmd(&["plan"])
        .env("ORBITER_NODE_AGENT", bins.node_agent())
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&plan.stdout).contains("nothing to do"),
        "{}",
        String::from_utf8_lossy(&plan.stdout)
    );
    let before = commit_count(&repo);
    std::thread::sleep(Duration::from_secs(12));
    assert_eq!(commit_count(&repo), before, "idle iterations made commits");
    let metrics = http_get(&listen, "/metrics");
    assert!(metrics.contains("orbiter_desired_valid 1"), "{metrics}");
    assert!(metrics.contains("orbiter_machines_ready 5"), "{metrics}");
    assert!(http_get(&listen, "/healthz").starts_with("ok"));

    // A person changes the package version: rolled out everywhere by the daemon.
    let with_secrets = read_from(&repo.path, "orbiter.yml");
    human_commit(
        &repo.path,
        "orbiter.yml",
        &with_secrets.replace(OLD, NEW),
        "etcd-server 3.5.16",
    );
    wait_for(
        "etcd-server 3.5.16 everywhere",
        Duration::from_secs(300),
        || {
            all.iter()
                .all(|m| sh(m, "dpkg-query -W -f '${Version}' etcd-server") == NEW)
        },
    );
    wait_for("the rollout recorded", Duration::from_secs(120), || {
        let c = current(&repo.path);
        c.waiting.is_empty()
            && c.machines
                .values()
                .all(|m| m.state == "ready" && m.generation == Some(2))
    });

    // An invalid orbiter.yml: recorded, metric, the last valid state stays, no empty commits.
    let valid = read_from(&repo.path, "orbiter.yml");
    human_commit(
        &repo.path,
        "orbiter.yml",
        &valid.replace("nodes: 2", "nodes: two"),
        "typo",
    );
    wait_for("the error recorded", Duration::from_secs(60), || {
        current(&repo.path).desired_error.is_some()
    });
    let err = current(&repo.path).desired_error.unwrap();
    assert!(
        err.contains("orbiter.yml:") && err.contains("nodes"),
        "{err}"
    );
    assert!(http_get(&listen, "/metrics").contains("orbiter_desired_valid 0"));
    let after_error = commit_count(&repo);
    std::thread::sleep(Duration::from_secs(6));
    assert_eq!(
        commit_count(&repo),
        after_error,
        "commits while the desired state is invalid"
    );
    assert_eq!(
        local.machines().unwrap().len(),
        2,
        "machines changed because of an invalid file"
    );
    human_commit(&repo.path, "orbiter.yml", &valid, "fix the typo");
    wait_for("the error cleared", Duration::from_secs(60), || {
        current(&repo.path).desired_error.is_none()
    });

    // Replace loc.extra-1 with the Orbiter killed in the middle: the daemon surges extra-3 and
    // dies (SIGKILL) before extra-1 is gone; the Orbiter started again finishes the replacement
    // from what Git and the machines say, without a second successor.
    p.ok(&["node", "replace", "loc.extra-1"]);
    assert_eq!(replacement_flags(&repo.path), ["extra-1"]);
    let local_ids = || -> Vec<String> {
        let mut ids: Vec<String> = local
            .machines()
            .unwrap()
            .into_iter()
            .map(|m| m.id)
            .collect();
        ids.sort();
        ids
    };
    wait_for(
        "the surge machine extra-3",
        Duration::from_secs(180),
        || local_ids().contains(&"extra-3".to_owned()),
    );
    let daemon = daemon_pid(p.home.path());
    // SAFETY: plain signal delivery to the daemon this test's takeoff started.
    assert_eq!(unsafe { libc::kill(daemon, libc::SIGKILL) }, 0);
    wait_for("the daemon gone", Duration::from_secs(10), || {
        !alive(daemon)
    });
    assert!(
        local_ids().contains(&"extra-1".to_owned()),
        "extra-1 was destroyed before the daemon was killed: {:?}",
        local_ids()
    );
    assert!(http_get_fails(&listen), "the killed daemon still answers");

    // A plan that needs a package the Local repository lacks shows the offering step and
    // changes nothing anywhere: the host's Local apt repository and the Orb repository stay
    // byte-identical.
    let jq = candidate_version("jq");
    let orb_now = read_from(&repo.path, "orbiter.yml");
    human_commit(
        &repo.path,
        "orbiter.yml",
        &orb_now.replacen(
            "\nsoftware:\n",
            &format!(
                "\nsoftware:\n  tools:\n    kind: NodeSoftware\n    version: v1\n    spec:\n      pools: [loc.extra]\n      items:\n        - package: {{name: jq, version: {jq}}}\n"
            ),
            1,
        ),
        "jq on the Local pool",
    );
    let apt_repo = local.state_dir().join("apt-repo");
    let before = (tree_digest(&apt_repo), tree_digest(&repo.path));
    let plan = p
        .cmd(&["plan"])
        .env("ORBITER_NODE_AGENT", bins.node_agent())
        .output()
        .unwrap();
    let plan_text = String::from_utf8_lossy(&plan.stdout);
    assert!(
        plan.status.success(),
        "{}",
        String::from_utf8_lossy(&plan.stderr)
    );
    assert!(
        plan_text.contains("offer jq in the package repository of provider loc"),
        "{plan_text}"
    );
    assert_eq!(
        (tree_digest(&apt_repo), tree_digest(&repo.path)),
        before,
        "orbctl plan changed the Local apt repository or the Orb repository"
    );
    let out = takeoff(&p, &bins, "600", &listen);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "takeoff after the kill failed:\n{log}"
    );
    assert_eq!(
        local_ids(),
        ["extra-2", "extra-3"],
        "the restarted Orbiter must finish the replacement, not start another:\n{log}"
    );
    assert!(
        replacement_flags(&repo.path).is_empty(),
        "replacement flag left in orbiter.yml"
    );
    let cur = current(&repo.path);
    let key = |id: &str| orbiter::machine::MachineKey::parse(id).unwrap();
    assert!(!cur.machines.contains_key(&key("loc.extra-1")), "{cur:?}");
    for id in ["loc.extra-2", "loc.extra-3"] {
        assert_eq!(
            cur.machines.get(&key(id)).map(|m| m.state.as_str()),
            Some("ready"),
            "{id}: {cur:?}"
        );
    }
    assert_eq!(cur.machines.len(), 5, "{cur:?}");
    let successor = local.machine("extra-3").unwrap();
    assert_eq!(
        sh(&successor, "dpkg-query -W -f '${Version}' etcd-server"),
        NEW
    );
    assert_eq!(
        sh(&successor, "cat /etc/orbiter-demo.conf"),
        "managed by Orbiter"
    );
    assert_eq!(sh(&successor, "dpkg-query -W -f '${Version}' jq"), jq);
    assert_eq!(
        sh(&successor, "systemctl is-active orbiter-demo.service"),
        "active"
    );
    wait_for(
        "the restarted Orbiter daemon answering /healthz",
        Duration::from_secs(60),
        || try_http_get(&listen, "/healthz").is_some_and(|b| b.starts_with("ok")),
    );

    // Teardown: the daemon stops, Local machines go, Static machines keep nothing of Orbiter's
    // and accept the person's bootstrap key again.
    let out = p.run(&["teardown", "--yes"]);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && !log.contains("warning"),
        "teardown:\n{log}"
    );
    assert!(
        !host.group_names().unwrap().contains(&local_group),
        "local machines left"
    );
    for m in &machines {
        assert_eq!(
            sh(
                m,
                "test -e /usr/local/bin/node-agent && echo present || echo gone"
            ),
            "gone"
        );
        assert_eq!(
            sh(m, "systemctl is-active node-agent.service || true"),
            "inactive"
        );
        let o = m.ssh(&keyfile, "true").unwrap();
        assert!(
            o.status.success(),
            "bootstrap key not restored on {}: {}\nauthorized_keys:\n{}",
            m.id(),
            String::from_utf8_lossy(&o.stderr),
            sh(
                m,
                "ls -la /home/orbiter/.ssh; cat /home/orbiter/.ssh/authorized_keys"
            )
        );
    }
    assert!(current(&repo.path).destroyed);
    assert!(
        http_get_fails(&listen),
        "the daemon still answers after teardown"
    );
    drop(cleanup);
}

/// Machines flagged in `replacementrequired` of the Local provider `loc`, as committed.
fn replacement_flags(repo: &Path) -> Vec<String> {
    let orb = orb_model::Orb::parse(&read_from(repo, "orbiter.yml"), "orbiter.yml").unwrap();
    match &orb.providers[&orb_model::Id::parse("loc").unwrap()].spec {
        orb_model::ProviderSpec::Local(l) => l
            .replacementrequired
            .iter()
            .map(|m| m.value.to_string())
            .collect(),
        other => panic!("loc is not a Local provider: {other:?}"),
    }
}

/// The pid of the Orbiter daemon takeoff started, from its pid file in the person's `~/.orb`.
fn daemon_pid(home: &Path) -> i32 {
    let dir = home.join(".orb");
    std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .find(|e| e.file_name().to_string_lossy().ends_with(".pid"))
        .and_then(|e| std::fs::read_to_string(e.path()).ok())
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or_else(|| panic!("no Orbiter pid file in {}", dir.display()))
}

/// Exists and is not a zombie (the detached daemon's reaper may be slow).
fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            != Some("Z")
    })
}

fn http_get(addr: &str, path: &str) -> String {
    try_http_get(addr, path).unwrap_or_else(|| panic!("GET http://{addr}{path} failed"))
}

fn http_get_fails(addr: &str) -> bool {
    std::net::TcpStream::connect(addr).is_err()
}

#[allow(dead_code)]
fn run(cmd: &mut Command) -> String {
    String::from_utf8_lossy(&cmd.output().unwrap().stdout).into_owned()
}

/// The version of `name` apt would install on this host (the Local repository fetches it).
fn candidate_version(name: &str) -> String {
    let policy = run(Command::new("apt-cache").args(["policy", name]));
    policy
        .lines()
        .find_map(|l| l.trim().strip_prefix("Candidate: "))
        .unwrap_or_else(|| panic!("no candidate of {name}:\n{policy}"))
        .to_owned()
}

/// Every file below `dir` with its content, hashed: equal digests mean byte-identical trees.
fn tree_digest(dir: &Path) -> String {
    use sha2::Digest as _;
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let path = e.path();
            if e.file_type().unwrap().is_dir() {
                stack.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files.sort();
    let mut h = sha2::Sha256::new();
    for f in files {
        h.update(f.strip_prefix(dir).unwrap().to_string_lossy().as_bytes());
        h.update(std::fs::read(&f).unwrap_or_default());
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}
