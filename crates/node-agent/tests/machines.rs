//! End to end on real machines (systemd-nspawn Debian bookworm from crate orb-machines, with
//! the group's local apt repository): the agent is installed with its own install script and
//! driven only through its desired file, as Orbiter will. Needs root; fails (not skips)
//! without it. One test, run in sequence, because machines and package installs are costly.

use node_agent::fsutil::sha256_hex;
use orb_machines::{GroupGuard, GroupSpec, Host, Machine, Suite};
use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_node-agent");
const ETCD_OLD: &str = "3.4.23-4+b4";
const ETCD_NEW: &str = "3.5.16-4";

fn step(t0: Instant, what: &str) {
    eprintln!("[{:>6.1}s] {what}", t0.elapsed().as_secs_f64());
}

/// The machine's filesystem as seen from the host.
fn inside(m: &Machine, path: &str) -> PathBuf {
    let pid = m.init_pid().expect("machine running");
    PathBuf::from(format!("/proc/{pid}/root{path}"))
}

/// Writes a file into the machine the way Orbiter does: temp file, then rename into place.
fn put(m: &Machine, path: &str, content: &[u8]) {
    let p = inside(m, path);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    let tmp = p.with_file_name(format!(".{}.tmp", p.file_name().unwrap().to_string_lossy()));
    std::fs::write(&tmp, content).unwrap();
    std::fs::rename(&tmp, &p).unwrap();
}

/// Runs a shell command inside the machine: (success, stdout+stderr).
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

fn status(m: &Machine) -> Option<Value> {
    let (ok, out) = sh(m, "node-agent status -o json 2>/dev/null");
    if ok {
        serde_json::from_str(&out).ok()
    } else {
        None
    }
}

fn wait_status(m: &Machine, what: &str, limit: Duration, pred: impl Fn(&Value) -> bool) -> Value {
    let start = Instant::now();
    let mut last = None;
    while start.elapsed() < limit {
        if let Some(s) = status(m) {
            if pred(&s) {
                return s;
            }
            last = Some(s);
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    panic!(
        "timed out after {limit:?} waiting for {what}; last status: {}",
        serde_json::to_string_pretty(&last).unwrap()
    );
}

fn item<'a>(s: &'a Value, id: &str) -> &'a Value {
    s["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == id)
        .unwrap_or_else(|| panic!("no item {id} in {s}"))
}

fn ready_at(s: &Value, generation: u64) -> bool {
    s["generation"] == generation && s["ready"] == true
}

fn port_open_from(client: &Machine, ip: std::net::Ipv4Addr, port: u16) -> bool {
    sh(
        client,
        &format!("timeout 3 bash -c '</dev/tcp/{ip}/{port}'"),
    )
    .0
}

fn make_proc_sys_net_writable(m: &Machine) {
    let start = Instant::now();
    while !sh(m, "mountpoint -q /proc/sys/net || { mount --bind /proc/sys/net /proc/sys/net && mount -o remount,bind,rw /proc/sys/net; }").0 {
        assert!(start.elapsed() < Duration::from_secs(30), "cannot make /proc/sys/net writable in {}", m.id());
        std::thread::sleep(Duration::from_millis(200));
    }
}

struct Spec<'a> {
    generation: u64,
    /// Content of the machine's apt source file (orb-machines' /etc/apt/sources.list.d/orb.list).
    sources: String,
    etcd: &'a str,
    firewall: bool,
    sshd_max_auth: &'a str,
    demo_conf: &'a str,
    extra: &'a str,
}

fn desired(m: &Machine, s: &Spec) -> String {
    let ip = m.ip();
    let firewall = if s.firewall {
        "  - firewall:\n      allow:\n        - {protocol: tcp, ports: [22]}\n        - {protocol: tcp, ports: [2379], sources: [\"10.0.0.0/8\", \"172.16.0.0/12\", \"192.168.0.0/16\"]}\n"
    } else {
        ""
    };
    format!(
        r#"kind: NodeDesired
version: v1
generation: {generation}
changesallowed: true
items:
  - aptsource: {{name: orb, content: "{sources}"}}
  - package: {{name: etcd-server, version: "{etcd}"}}
  - file:
      path: /etc/default/etcd
      content: |
        ETCD_LISTEN_CLIENT_URLS="http://0.0.0.0:2379"
        ETCD_ADVERTISE_CLIENT_URLS="http://{ip}:2379"
        ETCD_LISTEN_PEER_URLS="http://0.0.0.0:2380"
  - unit:
      name: etcd.service
      dropins: {{10-node-agent.conf: "[Service]\nLimitNOFILE=65536\n"}}
      enabled: true
      active: true
      restart_on: [/etc/default/etcd]
  - directory: {{path: /etc/demo, mode: "0750"}}
  - file: {{path: /etc/demo/demo.conf, content: "{demo}\n", mode: "0640"}}
  - unit:
      name: demo.service
      content: "[Unit]\nDescription=node-agent e2e demo\n[Service]\nExecStart=/bin/sleep infinity\n[Install]\nWantedBy=multi-user.target\n"
      enabled: true
      active: true
      restart_on: [/etc/demo/demo.conf]
  - sysctl: {{key: net.ipv4.ip_forward, value: 1}}
  - kernelmodule: {{name: overlay}}
  - swap: {{enabled: false}}
  - hostname: {{name: na-node-1}}
  - sshd: {{settings: {{MaxAuthTries: "{sshd}"}}}}
{firewall}{extra}"#,
        generation = s.generation,
        sources = s.sources.replace('\n', "\\n"),
        etcd = s.etcd,
        demo = s.demo_conf,
        sshd = s.sshd_max_auth,
        extra = s.extra,
    )
}

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
    let bin = std::fs::read(BIN).unwrap();
    let sha = sha256_hex(&bin);
    // A shorter drift interval for the test, as an ordinary systemd drop-in.
    put(
        m1,
        "/etc/systemd/system/node-agent.service.d/10-e2e.conf",
        b"[Service]\nExecStart=\nExecStart=/usr/local/bin/node-agent run --drift-interval 3s\n",
    );
    put(m1, node_protocol::paths::UPLOAD, &bin);
    let script = node_protocol::install::install_script(&sha, node_agent::VERSION);
    let out = sh_ok(m1, &script);
    assert!(
        out.contains("binary=installed unit=installed service=restarted"),
        "{out}"
    );
    let out = sh_ok(m1, &script);
    assert!(
        out.contains("binary=unchanged unit=unchanged service=running"),
        "second install must be a no-op: {out}"
    );
    assert_eq!(
        sh_ok(m1, "systemctl is-active node-agent.service").trim(),
        "active"
    );
    let s = wait_status(m1, "first report", Duration::from_secs(30), |s| {
        s["desired_error"]
            .as_str()
            .is_some_and(|e| e.contains("does not exist"))
    });
    assert_eq!(s["generation"], Value::Null);
    step(t0, "agent installed (idempotent install verified)");

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
    put(
        m1,
        "/etc/node-agent/desired.yml",
        desired(m1, &spec).as_bytes(),
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
    let ssh = m1.ssh(&key, "echo still-in").unwrap();
    assert!(String::from_utf8_lossy(&ssh.stdout).contains("still-in"));
    step(
        t0,
        "generation 1 verified (packages, files, units, sysctl, module, hostname, sshd, firewall)",
    );

    // --- Idempotence: the same state again (new generation number only) does nothing.
    spec.generation = 2;
    put(
        m1,
        "/etc/node-agent/desired.yml",
        desired(m1, &spec).as_bytes(),
    );
    let s = wait_status(m1, "generation 2", Duration::from_secs(30), |s| {
        ready_at(s, 2) && s["last_pass"]["generation"] == 2
    });
    assert_eq!(
        s["last_pass"]["actions"],
        Value::Array(vec![]),
        "second application acted: {s}"
    );
    let plan = sh_ok(m1, "node-agent plan");
    assert!(
        plan.contains("generation 2\n") && plan.contains("0 action(s), 0 error(s)"),
        "{plan}"
    );
    step(t0, "idempotent (and `node-agent plan` shows nothing to do)");

    // --- Drift: a managed file edited and a managed unit stopped by hand.
    sh_ok(
        m1,
        "echo tampered > /etc/demo/demo.conf; systemctl stop demo.service",
    );
    let drift_start = Instant::now();
    let s = wait_status(m1, "drift correction", Duration::from_secs(20), |s| {
        s["last_change"]["trigger"] == "drift"
            && s["ready"] == true
            && s["last_change"]["actions"]
                .as_array()
                .is_some_and(|a| a.len() >= 2)
    });
    assert!(
        drift_start.elapsed() < Duration::from_secs(10),
        "drift took {:?} with a 3 s interval",
        drift_start.elapsed()
    );
    let actions = s["last_change"]["actions"].to_string();
    assert!(
        actions.contains("file:/etc/demo/demo.conf: write /etc/demo/demo.conf")
            && actions.contains("content differs"),
        "{actions}"
    );
    assert!(
        actions.contains("unit:demo.service: start demo.service: unit is inactive"),
        "{actions}"
    );
    assert_eq!(sh_ok(m1, "cat /etc/demo/demo.conf"), "one\n");
    assert_eq!(
        sh_ok(m1, "systemctl is-active demo.service").trim(),
        "active"
    );
    step(t0, "drift corrected and reported");

    // --- restart_on: changing a file restarts the unit that depends on it.
    let pid_before = sh_ok(m1, "systemctl show -p MainPID --value demo.service");
    spec.generation = 3;
    spec.demo_conf = "two";
    put(
        m1,
        "/etc/node-agent/desired.yml",
        desired(m1, &spec).as_bytes(),
    );
    let s = wait_status(m1, "generation 3", Duration::from_secs(30), |s| {
        ready_at(s, 3)
    });
    assert!(
        s["last_change"]["actions"]
            .to_string()
            .contains("restart demo.service if running: a file in restart_on changed"),
        "{s}"
    );
    assert_ne!(
        sh_ok(m1, "systemctl show -p MainPID --value demo.service"),
        pid_before
    );
    step(t0, "restart_on verified");

    // --- A bad sshd setting is refused by `sshd -t`: previous drop-in kept, item reports it.
    spec.generation = 4;
    spec.sshd_max_auth = "lots";
    put(
        m1,
        "/etc/node-agent/desired.yml",
        desired(m1, &spec).as_bytes(),
    );
    let s = wait_status(m1, "sshd rejection", Duration::from_secs(30), |s| {
        s["generation"] == 4 && !item(s, "sshd")["last_error"].is_null()
    });
    assert!(
        item(&s, "sshd")["last_error"]
            .as_str()
            .unwrap()
            .contains("sshd rejected the new configuration (previous drop-in restored"),
        "{s}"
    );
    assert!(
        item(&s, "unit:demo.service")["in_sync"] == true,
        "other items unaffected"
    );
    assert!(sh_ok(m1, "sshd -T 2>/dev/null | grep -i '^maxauthtries'").contains("maxauthtries 4"));
    assert!(
        String::from_utf8_lossy(&m1.ssh(&key, "echo still-in").unwrap().stdout)
            .contains("still-in")
    );
    step(t0, "bad sshd setting refused");

    // --- A failing item does not block the others; a malformed file keeps the last valid state.
    spec.generation = 5;
    spec.sshd_max_auth = "4";
    spec.extra = "  - kernelmodule: {name: node_agent_no_such_module}\n  - file: {path: /etc/demo/after-failure.conf, content: \"x\\n\"}\n";
    put(
        m1,
        "/etc/node-agent/desired.yml",
        desired(m1, &spec).as_bytes(),
    );
    let s = wait_status(m1, "generation 5", Duration::from_secs(30), |s| {
        s["generation"] == 5 && item(s, "sshd")["in_sync"] == true
    });
    assert!(
        !item(&s, "kernelmodule:node_agent_no_such_module")["last_error"].is_null(),
        "{s}"
    );
    assert_eq!(
        item(&s, "file:/etc/demo/after-failure.conf")["in_sync"],
        true
    );
    assert_eq!(s["ready"], false);
    put(m1, "/etc/node-agent/desired.yml", b"kind: NodeDesired\nversion: v1\ngeneration: 6\nchangesallowed: true\nitems:\n  - file: {path: /etc/x, content: x, colour: red}\n");
    let s = wait_status(m1, "desired error", Duration::from_secs(30), |s| {
        s["desired_error"]
            .as_str()
            .is_some_and(|e| e.contains("desired.yml:6:"))
    });
    assert_eq!(s["generation"], 5, "the last valid state stays enforced");
    step(t0, "failure isolation and malformed input verified");

    // --- Upgrade: etcd-server 3.4.23 -> 3.5.16 from the group's repository, held there.
    assert_eq!(sh_ok(m1, "cat /etc/apt/sources.list.d/orb.list"), bookworm);
    assert!(
        !sh_ok(m1, "apt-cache policy etcd-server").contains(ETCD_NEW),
        "trixie must not be a source yet"
    );
    spec.generation = 7;
    spec.extra = "";
    spec.etcd = ETCD_NEW;
    spec.sources = both.clone();
    put(
        m1,
        "/etc/node-agent/desired.yml",
        desired(m1, &spec).as_bytes(),
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

    // --- Without a firewall item the agent's table goes away; the blocked port answers.
    spec.generation = 8;
    spec.firewall = false;
    put(
        m1,
        "/etc/node-agent/desired.yml",
        desired(m1, &spec).as_bytes(),
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

    // --- Reboot request: once, then the machine reports having booted after it.
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

    // --- Uninstall removes the agent and what it owns; the workload stays.
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

    drop(guard);
}
