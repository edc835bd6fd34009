//! Benchmark on a real machine (run by bench/node-agent.sh with `--release -- --ignored`):
//! the release agent installed by its install script, enforcing a realistic desired state
//! (held package, its config file and unit, 20 files, a unit of its own, sysctl, host name,
//! sshd, firewall). Prints the four metric lines of the bench script. Needs root.

use node_agent::fsutil::sha256_hex;
use orb_machines::{GroupGuard, GroupSpec, Host, Machine, Suite};
use std::path::PathBuf;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_node-agent");

fn inside(m: &Machine, path: &str) -> PathBuf {
    PathBuf::from(format!(
        "/proc/{}/root{path}",
        m.init_pid().expect("machine running")
    ))
}

fn put(m: &Machine, path: &str, content: &[u8]) {
    let p = inside(m, path);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    let tmp = p.with_file_name(".bench.tmp");
    std::fs::write(&tmp, content).unwrap();
    std::fs::rename(&tmp, &p).unwrap();
}

fn sh(m: &Machine, cmd: &str) -> String {
    let out = m.exec(&["sh", "-c", cmd]).unwrap();
    assert!(
        out.status.success(),
        "`{cmd}`: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn desired(m: &Machine, generation: u64, changing: &str) -> String {
    let mut s = format!(
        "kind: NodeDesired\nversion: v1\ngeneration: {generation}\nchangesallowed: true\nitems:\n  - package: {{name: etcd-server, version: \"3.4.23-4+b4\"}}\n  - file: {{path: /etc/default/etcd, content: \"ETCD_LISTEN_CLIENT_URLS=http://0.0.0.0:2379\\nETCD_ADVERTISE_CLIENT_URLS=http://{}:2379\\n\"}}\n  - unit: {{name: etcd.service, dropins: {{10-limits.conf: \"[Service]\\nLimitNOFILE=65536\\n\"}}, enabled: true, active: true, restart_on: [/etc/default/etcd]}}\n  - directory: {{path: /etc/bench}}\n  - file: {{path: /etc/bench/changing.conf, content: \"{changing}\\n\"}}\n",
        m.ip()
    );
    for i in 0..20 {
        s.push_str(&format!(
            "  - file: {{path: /etc/bench/f{i:02}.conf, content: \"{}\\n\", mode: \"0640\"}}\n",
            "x".repeat(1000)
        ));
    }
    s.push_str("  - unit: {name: bench.service, content: \"[Service]\\nExecStart=/bin/sleep infinity\\n[Install]\\nWantedBy=multi-user.target\\n\", enabled: true, active: true}\n");
    s.push_str("  - sysctl: {key: net.ipv4.ip_forward, value: 1}\n  - hostname: {name: bench-1}\n  - sshd: {settings: {MaxAuthTries: \"4\"}}\n");
    s.push_str("  - firewall: {allow: [{protocol: tcp, ports: [22, 2379]}]}\n");
    s
}

fn wait_generation(m: &Machine, generation: u64, limit: Duration) -> Duration {
    let path = inside(m, "/var/lib/node-agent/current.yml");
    let want = format!("\ngeneration: {generation}\n");
    let start = Instant::now();
    loop {
        if std::fs::read_to_string(&path).is_ok_and(|c| c.contains(&want)) {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < limit,
            "generation {generation} not reported within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn proc_status_kib(m: &Machine, pid: &str, key: &str) -> u64 {
    let text = std::fs::read_to_string(inside(m, &format!("/proc/{pid}/status"))).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .unwrap()
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .unwrap()
}

/// CPU of the agent and of the commands it ran and reaped (utime+stime+cutime+cstime), in
/// clock ticks: one figure that cannot hide work in child processes.
fn cpu_ticks(m: &Machine, pid: &str) -> u64 {
    let stat = std::fs::read_to_string(inside(m, &format!("/proc/{pid}/stat"))).unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    after
        .split_whitespace()
        .skip(11)
        .take(4)
        .map(|f| f.parse::<u64>().unwrap())
        .sum()
}

#[test]
#[ignore = "benchmark: run by bench/node-agent.sh"]
fn bench_on_a_machine() {
    let idle_secs: u64 = std::env::var("IDLE_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let host = Host::new().expect("root and orb-machines host tools");
    let name = format!("nab-{}", std::process::id());
    let keydir = tempfile::tempdir().unwrap();
    let key = keydir.path().join("id");
    assert!(
        std::process::Command::new("ssh-keygen")
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
            name,
            pubkey,
            net_admin: true,
        },
    )
    .expect("group");
    let g = guard.group();
    g.add_packages(Suite::Bookworm, &["etcd-server"]).unwrap();
    let m = g.create_machine("m1").unwrap();
    // See tests/machines.rs: what nspawn's --private-network would give the machine.
    sh(
        &m,
        "mount --bind /proc/sys/net /proc/sys/net && mount -o remount,bind,rw /proc/sys/net",
    );
    let bin = std::fs::read(BIN).unwrap();
    put(&m, node_protocol::paths::UPLOAD, &bin);
    sh(
        &m,
        &node_protocol::install::install_script(&sha256_hex(&bin), node_agent::VERSION),
    );
    put(
        &m,
        "/etc/node-agent/desired.yml",
        desired(&m, 1, "start").as_bytes(),
    );
    wait_generation(&m, 1, Duration::from_secs(300));
    let status = std::fs::read_to_string(inside(&m, "/var/lib/node-agent/current.yml")).unwrap();
    assert!(
        status.contains("\nready: true\n"),
        "not converged: {status}"
    );
    std::thread::sleep(Duration::from_secs(3));
    let pid = sh(&m, "systemctl show -p MainPID --value node-agent.service")
        .trim()
        .to_string();
    let rss_idle = proc_status_kib(&m, &pid, "VmRSS:");

    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let cpu0 = cpu_ticks(&m, &pid);
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs(idle_secs));
    let cpu_pct = (cpu_ticks(&m, &pid) - cpu0) as f64 / hz / t0.elapsed().as_secs_f64() * 100.0;

    let mut lat = Vec::new();
    for generation in 2..22 {
        let start = Instant::now();
        put(
            &m,
            "/etc/node-agent/desired.yml",
            desired(&m, generation, &format!("change {generation}")).as_bytes(),
        );
        wait_generation(&m, generation, Duration::from_secs(30));
        lat.push(start.elapsed().as_secs_f64() * 1000.0);
        std::thread::sleep(Duration::from_millis(50));
    }
    lat.sort_by(f64::total_cmp);
    let median = (lat[9] + lat[10]) / 2.0;
    let rss_apply = proc_status_kib(&m, &pid, "VmHWM:");
    assert_eq!(sh(&m, "cat /etc/bench/changing.conf"), "change 21\n");
    eprintln!(
        "mode: release agent on an orb-machines Debian machine, realistic desired state; CPU = agent + the commands it ran (utime+stime+cutime+cstime)"
    );
    println!("rss_idle_kib={rss_idle}");
    println!("rss_apply_kib={rss_apply}");
    println!("cpu_idle_percent={cpu_pct:.3}");
    println!("apply_latency_ms={median:.0}");
}
