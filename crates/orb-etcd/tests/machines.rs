//! The crate's items and steps on real machines (systemd-nspawn Debian bookworm from
//! orb-machines, real node-agent, real etcd 3.4.23 and 3.5.16 from the group's apt
//! repository), driven by hand the way Orbiter will: desired.yml written per machine, step
//! commands run as root on their machine. Needs root (skips with a message otherwise) and the
//! node-agent binary (`cargo build -p node-agent`, or `ORBITER_NODE_AGENT`).

use node_protocol::{Item, NodeDesired};
use orb_etcd::items::{
    ClusterView, InitialState, MemberConfig, Tuning, initial_cluster, member_items, paths,
    removed_items,
};
use orb_etcd::load;
use orb_etcd::observe::{MemberView, observe_command, parse};
use orb_etcd::steps::{EtcdStep, parse_add_result, parse_restore_result, parse_snapshot_result};
use orb_etcd::tls::{self, Ca, CertPem, MemberCerts};
use orb_machines::{GroupGuard, GroupSpec, Host, Machine, Suite};
use serde_json::Value;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

const OLD: &str = "3.4.23-4+b4";
const NEW: &str = "3.5.16-4";
const CLUSTER: &str = "kv";

fn log(t0: Instant, what: &str) {
    eprintln!("[{:>6.1}s] {what}", t0.elapsed().as_secs_f64());
}

fn agent_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("ORBITER_NODE_AGENT") {
        return PathBuf::from(p);
    }
    // target/<profile>/deps/machines-… → target/<profile>/node-agent
    let exe = std::env::current_exe().unwrap();
    let p = exe.parent().unwrap().parent().unwrap().join("node-agent");
    assert!(
        p.is_file(),
        "node-agent binary not found at {}; hint: cargo build -p node-agent, or set ORBITER_NODE_AGENT",
        p.display()
    );
    p
}

fn sh(m: &Machine, cmd: &str) -> (bool, String) {
    let out = m.exec(&["sh", "-c", cmd]).unwrap();
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

fn sh_ok(m: &Machine, cmd: &str) -> String {
    let (ok, out) = sh(m, cmd);
    assert!(ok, "`{cmd}` failed on {}: {out}", m.id());
    out
}

fn run_step(ms: &[Machine], step: &EtcdStep) -> String {
    let m = ms
        .iter()
        .find(|m| m.id() == step.machine())
        .expect("step machine");
    let (ok, out) = sh(m, &step.command());
    assert!(ok, "step `{}` failed: {out}", step.summary());
    out
}

/// Like [`run_step`], retrying while etcd refuses a membership change because it has not yet
/// seen every member connected for 5 s ("unhealthy cluster"), as right after a start.
fn run_step_settled(ms: &[Machine], step: &EtcdStep) -> String {
    let m = ms.iter().find(|m| m.id() == step.machine()).unwrap();
    let start = Instant::now();
    loop {
        let (ok, out) = sh(m, &step.command());
        if ok {
            return out;
        }
        assert!(
            out.contains("unhealthy cluster") && start.elapsed() < Duration::from_secs(30),
            "step `{}` failed: {out}",
            step.summary()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Writes a file into the machine the way Orbiter does: temp file, then rename.
fn put(m: &Machine, path: &str, content: &[u8]) {
    let pid = m.init_pid().expect("running");
    let p = PathBuf::from(format!("/proc/{pid}/root{path}"));
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    let tmp = p.with_extension("tmp");
    std::fs::write(&tmp, content).unwrap();
    std::fs::rename(&tmp, &p).unwrap();
}

fn write_desired(m: &Machine, generation: u64, items: Vec<Item>) {
    let doc = NodeDesired::new(generation, items);
    put(
        m,
        node_protocol::paths::DESIRED,
        doc.render_for_machine().as_bytes(),
    );
}

fn agent_status(m: &Machine) -> Option<Value> {
    let (ok, out) = sh(m, "node-agent status -o json 2>/dev/null");
    ok.then(|| serde_json::from_str(&out).ok()).flatten()
}

fn wait_agent(m: &Machine, generation: u64, limit: Duration) {
    let start = Instant::now();
    let mut last = None;
    while start.elapsed() < limit {
        if let Some(s) = agent_status(m) {
            if s["generation"] == generation && s["ready"] == true {
                return;
            }
            last = Some(s);
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    panic!(
        "{}: generation {generation} not applied within {limit:?}: {}",
        m.id(),
        serde_json::to_string_pretty(&last).unwrap()
    );
}

fn observe(m: &Machine) -> (MemberView, String) {
    let (_, out) = sh(m, &observe_command(CLUSTER));
    (parse(&out), out)
}

fn wait_member(
    m: &Machine,
    what: &str,
    limit: Duration,
    pred: impl Fn(&MemberView) -> bool,
) -> MemberView {
    let start = Instant::now();
    loop {
        let (v, raw) = observe(m);
        if pred(&v) {
            return v;
        }
        if start.elapsed() > limit {
            panic!(
                "{}: timed out waiting for {what}: {v:?}\nraw: {raw}",
                m.id()
            );
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

struct Lab {
    ca: Ca,
    client: CertPem,
    certs: Vec<MemberCerts>,
    generation: u64,
}

impl Lab {
    fn items(
        &self,
        ms: &[Machine],
        i: usize,
        version: &str,
        members: &[usize],
        state: InitialState,
    ) -> Vec<Item> {
        let ic = initial_cluster(
            members
                .iter()
                .map(|&j| (ms[j].id(), IpAddr::V4(ms[j].ip()))),
        );
        let view = ClusterView {
            id: CLUSTER,
            ca_cert: &self.ca.pem.cert,
            client: &self.client,
        };
        let m = MemberConfig {
            name: ms[i].id(),
            ip: IpAddr::V4(ms[i].ip()),
            package_version: version,
            tuning: Tuning {
                heartbeatms: 100,
                electiontimeoutms: 1000,
                quotabytes: 1 << 31,
            },
            initial_cluster: &ic,
            initial_state: state,
            certs: &self.certs[i],
        };
        member_items(&view, &m)
    }
}

fn healthy_with(n: usize) -> impl Fn(&MemberView) -> bool {
    move |v| {
        v.healthy
            && v.members
                .as_ref()
                .is_some_and(|ms| ms.len() == n && ms.iter().all(|m| m.started))
    }
}

#[test]
fn items_and_steps_on_real_machines() {
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: the orb-etcd machine test needs root (systemd-nspawn machines)");
        return;
    }
    let t0 = Instant::now();
    let bin = std::fs::read(agent_binary()).unwrap();
    let host = Host::new().expect("orb-machines host");
    host.base_image().expect("base image");
    let name = format!("oe-{}", std::process::id());
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
    let guard = GroupGuard::up(
        &host,
        &GroupSpec {
            name: name.clone(),
            pubkey,
            net_admin: false,
        },
    )
    .expect("group up");
    let g = guard.group();
    g.add_packages(Suite::Bookworm, &["etcd-server", "etcd-client"])
        .expect("bookworm packages");
    g.add_packages(Suite::Trixie, &["etcd-server", "etcd-client"])
        .expect("trixie packages");
    let ms = g
        .create_machines(&["e1", "e2", "e3", "e4", "e5", "ld"])
        .expect("machines");
    log(t0, "machines up");

    // node-agent on every machine, with its own install script.
    let sha = node_agent::fsutil::sha256_hex(&bin);
    let script = node_protocol::install::install_script(&sha, node_agent::VERSION);
    std::thread::scope(|s| {
        for m in &ms {
            let (bin, script) = (&bin, &script);
            s.spawn(move || {
                put(m, node_protocol::paths::UPLOAD, bin);
                sh_ok(m, script);
            });
        }
    });
    log(t0, "node-agent installed");

    let ca = tls::generate_ca(CLUSTER).unwrap();
    let client = tls::client_cert(&ca, "orbiter").unwrap();
    let certs = ms
        .iter()
        .map(|m| tls::member_certs(&ca, m.id(), IpAddr::V4(m.ip())).unwrap())
        .collect();
    let mut lab = Lab {
        ca,
        client,
        certs,
        generation: 1,
    };

    // --- Bootstrap 3 with TLS.
    let first = [0, 1, 2];
    for &i in &first {
        write_desired(
            &ms[i],
            lab.generation,
            lab.items(&ms, i, OLD, &first, InitialState::New),
        );
    }
    for &i in &first {
        wait_agent(&ms[i], lab.generation, Duration::from_secs(120));
    }
    let v = wait_member(
        &ms[0],
        "3 healthy members",
        Duration::from_secs(60),
        healthy_with(3),
    );
    log(t0, "bootstrapped 3 members");
    assert_eq!(v.version.as_deref(), Some("3.4.23"));
    assert_eq!(v.package.as_deref(), Some(OLD));
    assert!(v.data_dir && v.running && v.leader.is_some() && v.raft_index.unwrap() > 0);
    assert_eq!(v.name.as_deref(), Some("e1"));
    let disk = v.config.clone().expect("config read back");
    assert_eq!(
        (disk.initial_state.as_str(), disk.package.as_str()),
        ("new", OLD)
    );
    assert_eq!(disk.initial_cluster.matches("https://").count(), 3);
    assert!(v.alarms.is_empty(), "{:?}", v.alarms);
    // The packaged instance never ran: no default data, only our listeners.
    for &i in &first {
        let out = sh_ok(
            &ms[i],
            "ls /var/lib/etcd; systemctl is-enabled etcd.service || true",
        );
        assert!(!out.contains("default"), "{out}");
        assert!(out.contains("masked"), "{out}");
        let ls = sh_ok(&ms[i], "stat -c '%a %U' /etc/orb-etcd/kv/pki/server.key");
        assert_eq!(ls.trim(), "600 etcd");
    }
    // Without the client certificate the member refuses clients.
    let (ok, out) = sh(
        &ms[0],
        "ETCDCTL_API=3 etcdctl --endpoints=https://127.0.0.1:2379 --cacert=/etc/orb-etcd/kv/pki/ca.crt --command-timeout=3s endpoint health",
    );
    assert!(!ok, "a client without certificate must be refused: {out}");
    let put_key = |m: &Machine, k: &str| {
        sh_ok(
            m,
            &format!("{} put {k} v", orb_etcd::observe::etcdctl(CLUSTER)),
        );
    };
    put_key(&ms[0], "before-scale");

    // --- A load client on the sixth machine writes through every operation below.
    let ld = &ms[5];
    write_desired(
        ld,
        1,
        load::client_items(&lab.ca.pem.cert, &lab.client, OLD),
    );
    wait_agent(ld, 1, Duration::from_secs(120));
    let endpoints: Vec<String> = ms[..5]
        .iter()
        .map(|m| orb_etcd::items::client_url(IpAddr::V4(m.ip())))
        .collect();
    // The voters' endpoints, as the record gives them to clients (a learner refuses requests).
    sh_ok(ld, &load::start_command(&endpoints[..3], "load"));
    let mark = || -> u64 { sh_ok(ld, load::NOW_MS).trim().parse().unwrap() };
    let mut windows: Vec<(&str, u64, u64)> = Vec::new();
    let mut t = mark();

    // --- Scale out to 5, one member at a time.
    let mut members: Vec<usize> = first.to_vec();
    for new in [3usize, 4] {
        let peer = orb_etcd::items::peer_url(IpAddr::V4(ms[new].ip()));
        let step = EtcdStep::AddMember {
            cluster: CLUSTER.into(),
            via: ms[0].id().into(),
            name: ms[new].id().into(),
            peer_url: peer.clone(),
        };
        let out = run_step_settled(&ms, &step);
        let id = parse_add_result(&out, &peer).unwrap();
        // Repeating the step (a crash before recording) adds nothing and finds the same id.
        let again = run_step(&ms, &step);
        assert!(again.contains("@@already"), "{again}");
        assert_eq!(parse_add_result(&again, &peer).unwrap(), id);
        let v = observe(&ms[0]).0;
        let entry = v.members.unwrap().into_iter().find(|m| m.id == id).unwrap();
        assert!(!entry.started && entry.name.is_empty() && entry.learner);
        members.push(new);
        write_desired(
            &ms[new],
            lab.generation,
            lab.items(&ms, new, OLD, &members, InitialState::Existing),
        );
        wait_agent(&ms[new], lab.generation, Duration::from_secs(120));
        // The learner started: what it reports about itself, then its promotion (etcd
        // refuses until it caught up; the planner retries the same way).
        let lv = wait_member(
            &ms[0],
            "the learner started",
            Duration::from_secs(60),
            |v| {
                v.members
                    .as_ref()
                    .is_some_and(|l| l.iter().any(|e| e.id == id && e.started && e.learner))
            },
        );
        assert!(lv.healthy, "voters stay healthy while a learner joins");
        let (own, raw) = observe(&ms[new]);
        eprintln!(
            "learner's own view: running={} healthy={} error={:?}",
            own.running, own.healthy, own.error
        );
        assert!(!own.healthy, "a learner is not counted healthy: {raw}");
        let promote = EtcdStep::PromoteMember {
            cluster: CLUSTER.into(),
            via: ms[0].id().into(),
            id,
            name: ms[new].id().into(),
        };
        let start = Instant::now();
        loop {
            let (ok, out) = sh(&ms[0], &promote.command());
            if ok {
                break;
            }
            assert!(
                out.contains("in sync") && start.elapsed() < Duration::from_secs(30),
                "promote failed: {out}"
            );
            std::thread::sleep(Duration::from_millis(500));
        }
        assert!(run_step(&ms, &promote).contains("@@already a voter"));
        let v = wait_member(
            &ms[new],
            "the new member healthy",
            Duration::from_secs(60),
            healthy_with(members.len()),
        );
        assert_eq!(v.id, Some(id));
        log(t0, &format!("scaled out to {}", members.len()));
    }
    let t1 = mark();
    windows.push(("scale_out_3_to_5", t, t1));
    t = t1;
    let out = sh_ok(
        &ms[4],
        &format!(
            "{} get before-scale --print-value-only",
            orb_etcd::observe::etcdctl(CLUSTER)
        ),
    );
    assert_eq!(out.trim(), "v");

    // --- Move leadership to e5, then remove e5 (the leader case: move away first).
    let v = observe(&ms[0]).0;
    let leader = v.leader.unwrap();
    let e5 = observe(&ms[4]).0.id.unwrap();
    let leader_machine = ms.iter().find(|m| observe(m).0.id == Some(leader)).unwrap();
    if leader != e5 {
        run_step(
            &ms,
            &EtcdStep::MoveLeader {
                cluster: CLUSTER.into(),
                via: leader_machine.id().into(),
                to: e5,
                to_name: "e5".into(),
            },
        );
        wait_member(&ms[0], "e5 leads", Duration::from_secs(20), |v| {
            v.leader == Some(e5)
        });
    }
    // e5 leads; move leadership to e1 before removing e5.
    run_step(
        &ms,
        &EtcdStep::MoveLeader {
            cluster: CLUSTER.into(),
            via: "e5".into(),
            to: v.id.unwrap(),
            to_name: "e1".into(),
        },
    );
    wait_member(&ms[0], "e1 leads", Duration::from_secs(20), |x| {
        x.leader == v.id
    });
    let remove = EtcdStep::RemoveMember {
        cluster: CLUSTER.into(),
        via: "e1".into(),
        id: e5,
        name: "e5".into(),
    };
    assert!(remove.destructive());
    run_step_settled(&ms, &remove);
    assert!(run_step(&ms, &remove).contains("@@already removed"));
    lab.generation += 1;
    write_desired(&ms[4], lab.generation, removed_items(CLUSTER));
    wait_agent(&ms[4], lab.generation, Duration::from_secs(60));
    let wipe = EtcdStep::WipeMember {
        cluster: CLUSTER.into(),
        on: "e5".into(),
    };
    assert!(run_step(&ms, &wipe).contains("@@wiped"));
    let v5 = observe(&ms[4]).0;
    assert!(!v5.running && !v5.data_dir, "{v5:?}");
    assert_eq!(
        sh_ok(
            &ms[4],
            &format!("systemctl is-enabled {} || true", paths::unit(CLUSTER))
        )
        .trim(),
        "disabled"
    );
    wait_member(
        &ms[0],
        "4 healthy members",
        Duration::from_secs(30),
        healthy_with(4),
    );
    log(t0, "removed e5 (leadership moved away first), wiped");
    let t1 = mark();
    windows.push(("leader_moves_and_remove", t, t1));
    t = t1;

    // --- Rolling upgrade of one member 3.4.23 -> 3.5.16 (its config names the version).
    put_key(&ms[0], "before-upgrade");
    members.retain(|&i| i != 4);
    let e2_before = observe(&ms[1]).0;
    // e2 keeps the initial cluster it was bootstrapped with: only the version changes.
    lab.generation += 1;
    write_desired(
        &ms[1],
        lab.generation,
        lab.items(&ms, 1, NEW, &first, InitialState::New),
    );
    wait_agent(&ms[1], lab.generation, Duration::from_secs(180));
    let v = wait_member(
        &ms[1],
        "e2 on 3.5.16, healthy",
        Duration::from_secs(60),
        |v| v.version.as_deref() == Some("3.5.16") && healthy_with(4)(v),
    );
    assert_eq!(v.id, e2_before.id, "the member keeps its identity and data");
    assert_eq!(v.package.as_deref(), Some(NEW));
    assert_eq!(v.config.as_ref().map(|c| c.package.as_str()), Some(NEW));
    let out = sh_ok(
        &ms[1],
        &format!(
            "{} get before-upgrade --print-value-only",
            orb_etcd::observe::etcdctl(CLUSTER)
        ),
    );
    assert_eq!(out.trim(), "v");
    log(t0, "e2 upgraded to 3.5.16, mixed cluster healthy");
    windows.push(("upgrade_one_member", t, mark()));
    let log_text = sh_ok(ld, &load::stop_command());
    // Read back through the members that stayed (e5 was removed).
    let keys = sh_ok(ld, &load::read_back_command(&endpoints[..4], "load"));
    let all = load::analyze(&log_text, &keys, "load", None);
    assert!(all.acked > 20, "the load client barely wrote: {all:?}");
    assert_eq!(all.lost_acked_writes, 0, "{all:?}");
    for (op, from, to) in &windows {
        let r = load::analyze(&log_text, &keys, "load", Some((*from, *to)));
        eprintln!(
            "op={op} duration_s={:.1} {r} acked={}",
            (to - from) as f64 / 1000.0,
            r.acked
        );
        assert_eq!(r.lost_acked_writes, 0, "{op}: {r:?}");
    }

    // --- The observation parser on real 3.4 and 3.5 output.
    let (v34, raw34) = observe(&ms[0]);
    let (v35, raw35) = observe(&ms[1]);
    for (v, raw, ver) in [(&v34, &raw34, "3.4.23"), (&v35, &raw35, "3.5.16")] {
        assert_eq!(v.version.as_deref(), Some(ver), "{raw}");
        assert!(v.healthy && v.running && v.error.is_none(), "{v:?}\n{raw}");
        assert_eq!(v.members.as_ref().unwrap().len(), 4);
        assert!(v.id.unwrap() > 0 && v.cluster_id.is_some() && v.db_size.unwrap() > 0);
    }
    assert_eq!(v34.cluster_id, v35.cluster_id);
    assert_eq!(v34.leader, v35.leader);

    // --- A snapshot through a member, and pruning.
    for n in 1..=3 {
        let snap = EtcdStep::Snapshot {
            cluster: CLUSTER.into(),
            via: "e1".into(),
            path: format!("/var/backups/orb-etcd/kv-2026010{n}T000000Z.db"),
        };
        let (size, sha) = parse_snapshot_result(&run_step(&ms, &snap)).unwrap();
        assert!(size > 0 && sha.len() == 64);
    }
    let prune = EtcdStep::PruneSnapshots {
        cluster: CLUSTER.into(),
        on: "e1".into(),
        dir: "/var/backups/orb-etcd".into(),
        keep: 2,
    };
    let out = run_step(&ms, &prune);
    assert!(out.contains("kv-20260101T000000Z.db"), "{out}");
    let left = sh_ok(&ms[0], "ls /var/backups/orb-etcd");
    assert_eq!(left.split_whitespace().count(), 2, "{left}");
    log(t0, "snapshots taken and pruned");

    // --- Restore drill: the newest snapshot becomes a fresh one-member cluster on e5 (wiped
    // above), which must serve every key the load client had acknowledged.
    let newest = "/var/backups/orb-etcd/kv-20260103T000000Z.db";
    let bytes = std::fs::read(format!("/proc/{}/root{newest}", ms[0].init_pid().unwrap())).unwrap();
    put(&ms[4], "/var/tmp/restore.db", &bytes);
    let e5_peer = orb_etcd::items::peer_url(IpAddr::V4(ms[4].ip()));
    let restore = EtcdStep::Restore {
        cluster: CLUSTER.into(),
        on: "e5".into(),
        snapshot: "/var/tmp/restore.db".into(),
        name: "e5".into(),
        peer_url: e5_peer,
    };
    let report = parse_restore_result(&run_step(&ms, &restore)).unwrap();
    assert!(report.total_keys > all.acked, "{report:?}");
    let (ok, out) = sh(&ms[4], &restore.command());
    assert!(
        !ok && out.contains("already holds data"),
        "a second restore must refuse: {out}"
    );
    lab.generation += 1;
    write_desired(
        &ms[4],
        lab.generation,
        lab.items(&ms, 4, OLD, &[4], InitialState::New),
    );
    wait_agent(&ms[4], lab.generation, Duration::from_secs(60));
    let v = wait_member(
        &ms[4],
        "the restored member healthy",
        Duration::from_secs(60),
        healthy_with(1),
    );
    assert_ne!(
        v.cluster_id, v34.cluster_id,
        "a restore makes a new cluster"
    );
    let e = orb_etcd::observe::etcdctl(CLUSTER);
    assert_eq!(
        sh_ok(
            &ms[4],
            &format!("{e} get before-upgrade --print-value-only")
        )
        .trim(),
        "v"
    );
    let restored_keys = sh_ok(&ms[4], &format!("{e} get --prefix --keys-only load/"));
    let lost = load::analyze(&log_text, &restored_keys, "load", None);
    assert_eq!(
        lost.lost_acked_writes, 0,
        "acknowledged writes missing after restore: {lost:?}"
    );
    log(
        t0,
        &format!(
            "restore drill: revision {} with {} keys, every acknowledged write readable",
            report.revision, report.total_keys
        ),
    );

    // --- A stopped member: observed as not running with the reason, never an error.
    sh_ok(&ms[2], &format!("systemctl stop {}", paths::unit(CLUSTER)));
    let (v, _) = observe(&ms[2]);
    assert!(!v.running && !v.healthy && v.error.is_some(), "{v:?}");
    assert_eq!(v.unit, "inactive");
    log(t0, "done");
}
