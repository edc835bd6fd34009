//! The must-show end to end (root): three machines from the cached base within 60 s,
//! SSH as orbiter, fast sudo, etcd-server from the group's apt repository, git over SSH,
//! power cut + start, reboot from inside, network cut, and `down` leaving nothing behind.

mod common;

use common::{assert_nothing_left, footprint, host, keypair, ok, unique, up};
use orb_machines::{MachineState, Suite};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

fn port_open(ip: std::net::Ipv4Addr, port: u16) -> bool {
    TcpStream::connect_timeout(&SocketAddr::from((ip, port)), Duration::from_millis(700)).is_ok()
}

#[test]
fn three_machines_full_lifecycle() {
    let host = host();
    host.base_image().expect("base image");
    let key = keypair();
    let name = unique("e2e");
    let guard = up(&host, &name, &key.public);
    let g = guard.group();

    let start = Instant::now();
    let step = |what: &str| eprintln!("[{:>6.1}s] {what}", start.elapsed().as_secs_f64());
    let t0 = Instant::now();
    let machines = g
        .create_machines(&["m1", "m2", "m3"])
        .expect("create machines");
    let boot = t0.elapsed();
    eprintln!("3 machines ready in {boot:?}");
    assert!(boot <= Duration::from_secs(60), "3 machines took {boot:?}");
    let list = g.machines().unwrap();
    assert_eq!(list.len(), 3);
    for info in &list {
        assert_eq!(info.state, MachineState::Running, "{info:?}");
        assert!(
            g.subnet()
                .to_string()
                .starts_with(&info.ip.to_string()[..info.ip.to_string().rfind('.').unwrap()])
        );
    }

    // SSH as orbiter with the key; hostname set and resolvable; sudo answers at once.
    for m in &machines {
        let out = ok(
            m.ssh(&key.private, "hostname; getent hosts $(hostname) >/dev/null && echo resolvable; s=$(date +%s%N); sudo -n true; e=$(date +%s%N); echo $(( (e-s)/1000000 ))").unwrap(),
            "ssh",
        );
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], m.hostname());
        assert_eq!(lines[1], "resolvable");
        let sudo_ms: u64 = lines[2].parse().unwrap();
        assert!(sudo_ms < 1000, "sudo took {sudo_ms} ms on {}", m.id());
    }
    // A wrong key is refused (the key really is what lets us in).
    let other = keypair();
    assert!(
        !machines[0]
            .ssh(&other.private, "true")
            .unwrap()
            .status
            .success()
    );

    step("ssh checks done");
    // etcd-server from the group's repository on all three; trixie's newer one offered too.
    g.add_packages(Suite::Bookworm, &["etcd-server"])
        .expect("bookworm packages");
    g.add_packages(Suite::Trixie, &["etcd-server", "etcd-client"])
        .expect("trixie packages");
    std::thread::scope(|s| {
        for m in &machines {
            let key = &key.private;
            s.spawn(move || {
                let install = "sudo apt-get update -q && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -q etcd-server";
                ok(m.ssh(key, install).unwrap(), "apt-get install etcd-server");
                let v = ok(m.exec(&["dpkg-query", "-W", "-f", "${Version}", "etcd-server"]).unwrap(), "dpkg-query");
                assert!(v.starts_with("3.4."), "bookworm's etcd-server is the default, got {v}");
            });
        }
    });
    let policy = ok(
        machines[2]
            .exec(&["apt-cache", "policy", "etcd-server"])
            .unwrap(),
        "apt-cache policy",
    );
    assert!(
        policy.contains("3.5.16"),
        "trixie's etcd-server is offered: {policy}"
    );
    ok(
        machines[2]
            .exec(&[
                "apt-get",
                "install",
                "-s",
                "etcd-server=3.5.16-4",
                "etcd-client=3.5.16-4",
            ])
            .unwrap(),
        "simulated upgrade to trixie's etcd",
    );

    step("etcd-server installed");
    // Git over SSH: push from the host, reachable from a machine.
    let git = g.git_host().expect("git host");
    git.add_deploy_key(&key.public).unwrap();
    let url = git.create_bare_repo("orb").unwrap();
    let work = tempfile::tempdir().unwrap();
    let known = work.path().join("known_hosts");
    std::fs::write(&known, format!("{}\n", git.known_hosts_line())).unwrap();
    let ssh_cmd = format!(
        "ssh -i {} -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile={}",
        key.private.display(),
        known.display()
    );
    let clone = work.path().join("clone");
    let git_cmd = |args: &[&str]| {
        let mut c = Command::new("git");
        c.env("GIT_SSH_COMMAND", &ssh_cmd)
            .args(["-c", "user.name=t", "-c", "user.email=t@t"])
            .args(args);
        ok(c.output().unwrap(), &format!("git {args:?}"))
    };
    git_cmd(&["clone", "-q", &url, clone.to_str().unwrap()]);
    std::fs::write(clone.join("orbiter.yml"), "kind: test\n").unwrap();
    git_cmd(&["-C", clone.to_str().unwrap(), "add", "orbiter.yml"]);
    git_cmd(&["-C", clone.to_str().unwrap(), "commit", "-q", "-m", "first"]);
    git_cmd(&[
        "-C",
        clone.to_str().unwrap(),
        "push",
        "-q",
        "origin",
        "HEAD:main",
    ]);
    assert!(git_cmd(&["ls-remote", &url]).contains("refs/heads/main"));
    assert!(git.host_key_fingerprint().starts_with("SHA256:"));
    let probe = format!(
        "exec 3<>/dev/tcp/{}/{} && head -c 4 <&3",
        g.bridge_ip(),
        git.port()
    );
    assert_eq!(
        ok(
            machines[0].exec(&["bash", "-c", &probe]).unwrap(),
            "git port from a machine"
        ),
        "SSH-"
    );

    step("git done");
    // Power cut and start: down at once, back with its disk.
    let m2 = &machines[1];
    let before = m2.booted_at().unwrap();
    m2.power_cut().unwrap();
    assert_eq!(g.machine("m2").unwrap().info().state, MachineState::Stopped);
    assert!(
        !port_open(m2.ip(), 22),
        "a power-cut machine must not answer"
    );
    m2.start().unwrap();
    assert!(m2.booted_at().unwrap() > before);
    assert_eq!(
        ok(
            m2.ssh(&key.private, "dpkg-query -W -f '${Status}' etcd-server")
                .unwrap(),
            "after power cut"
        ),
        "install ok installed"
    );

    step("power cut + start done");
    // Reboot from inside: the supervisor brings it back with a new PID 1.
    let m3 = &machines[2];
    let before = m3.booted_at().unwrap();
    m3.reboot().unwrap();
    assert!(m3.booted_at().unwrap() > before);
    assert_eq!(
        ok(m3.ssh(&key.private, "hostname").unwrap(), "after reboot").trim(),
        "m3"
    );

    step("reboot done");
    // Network cut and restore.
    let m1 = &machines[0];
    m1.cut_network().unwrap();
    assert_eq!(m1.info().state, MachineState::Unreachable);
    assert!(!port_open(m1.ip(), 22));
    m1.restore_network().unwrap();
    assert_eq!(m1.info().state, MachineState::Running);
    // Clean poweroff from inside, then boot again.
    m1.stop().unwrap();
    assert_eq!(m1.info().state, MachineState::Stopped);
    m1.start().unwrap();
    assert_eq!(m1.info().state, MachineState::Running);

    step("network cut + restore done");
    // down removes every namespace, link, bridge, mount and process of the group.
    let f = footprint(g);
    assert_eq!(f.netns.len(), 3);
    guard.down().expect("down");
    step("down done");
    assert_nothing_left(&f);
}
