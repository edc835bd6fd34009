//! End to end on real machines (root): an etcd cluster's client endpoint behind a VIP of the
//! Orb's load balancer. A client writes through the VIP all the time (verifying the members'
//! certificates against the VIP, which Orbiter adds to them), while the machine holding the VIP
//! loses power and an etcd member's machine is replaced; the load balancer's backends follow
//! the members without anyone editing the transport, and no acknowledged write is lost.
//! Prints `etcd_vip_*` figures (`name=value`).

mod common;

use common::e2e::*;
use common::etcd::*;
use common::local_orb::*;
use common::*;
use orb_machines::{Group, Host, Machine};
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

const PKI: &str = "/etc/orb-etcd/kv/pki";

fn orb_yaml(group: &str, vip: Option<Ipv4Addr>) -> String {
    let (loadbalancing, endpoint) = match vip {
        Some(vip) => (
            format!(
                "    loadbalancing:
      kind: DynamicLoadBalancer
      version: v2
      spec:
        lb:
          - ip: {vip}
            transport:
              - name: kv
                frontendport: 2379
                backendport: 2379
                backendpools: [etcd]
                healthchecks: {{protocol: tcp}}
"
            ),
            "      endpoint: kv\n",
        ),
        None => (String::new(), ""),
    };
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
        lb:
          nodes: 2
        etcd:
          nodes: 3
{loadbalancing}clusters:
  kv:
    kind: EtcdCluster
    version: v1
    spec:
      provider: loc
      pool: etcd
      nodes: 3
      version: 3.4.23
{endpoint}"
    )
}

fn etcdctl_via(vip: Ipv4Addr) -> String {
    format!(
        "ETCDCTL_API=3 etcdctl --endpoints=https://{vip}:2379 --cacert={PKI}/ca.crt --cert={PKI}/client.crt --key={PKI}/client.key --dial-timeout=2s --command-timeout=5s"
    )
}

/// Milliseconds of each write the cluster acknowledged, and how many failed, from the log.
fn writes(m: &Machine) -> (Vec<(u64, u64)>, usize) {
    let log = sh(m, "cat /root/vip-writes 2>/dev/null");
    let mut ok = Vec::new();
    let mut failed = 0;
    for line in log.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        match (
            f.first().and_then(|i| i.parse().ok()),
            f.get(1).and_then(|t| t.parse().ok()),
            f.get(2),
        ) {
            (Some(i), Some(t), Some(&"ok")) => ok.push((i, t)),
            (Some(_), Some(_), Some(_)) => failed += 1,
            _ => {}
        }
    }
    (ok, failed)
}

/// The longest time between two acknowledged writes.
fn longest_gap(ok: &[(u64, u64)]) -> u64 {
    ok.windows(2)
        .map(|w| w[1].1.saturating_sub(w[0].1))
        .max()
        .unwrap_or(0)
}

/// On failure: what a plan says now (what Orbiter waits for).
struct PlanOnPanic<'a> {
    person: &'a Person,
    bins: &'a Binaries,
}

impl Drop for PlanOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let plan = self
                .person
                .cmd(&["plan"])
                .env("ORBITER_NODE_AGENT", self.bins.node_agent())
                .output()
                .unwrap();
            eprintln!("--- plan:\n{}", String::from_utf8_lossy(&plan.stdout));
        }
    }
}

#[test]
fn the_etcd_endpoint_behind_a_vip_serves_a_writer_through_power_cut_and_replacement() {
    let host = Host::new().expect("this test needs root and the orb-machines host tools");
    let pid = std::process::id();
    let group = format!("ev{pid}");
    let (p, repo) = (Person::new(), orb_testsupport::bare_repo());
    let _cleanup = Cleanup {
        groups: vec![group.clone()],
        person: Some(p.home.path().to_owned()),
    };
    let bins = Binaries::snapshot();
    let _plan = PlanOnPanic {
        person: &p,
        bins: &bins,
    };
    p.ok(&[
        "configure",
        "--repourl",
        &format!("file://{}", repo.path.display()),
    ]);
    human_commit(
        &repo.path,
        "orbiter.yml",
        &orb_yaml(&group, None),
        "etcd kv",
    );
    let listen = format!("127.0.0.1:{}", 20000 + (pid % 20000) as u16);
    let out = takeoff(&p, &bins, "900", &listen);
    assert!(
        out.status.success(),
        "takeoff failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_for("3 healthy members", Duration::from_secs(300), || {
        settled(&p, 3, "3.4.23")
    });

    // The endpoint: a VIP in the group's subnet, in front of the members.
    let local = Group::attach(&host, &group).unwrap();
    let vip = local.subnet().host(200);
    human_commit(
        &repo.path,
        "orbiter.yml",
        &orb_yaml(&group, Some(vip)),
        "kv behind a VIP",
    );
    let writer = local.machine("etcd-1").unwrap();
    let via = etcdctl_via(vip);
    let added = Instant::now();
    wait_for(
        "etcd answering through the VIP, its certificate naming the VIP",
        Duration::from_secs(400),
        || sh(&writer, &format!("{via} endpoint health 2>&1")).contains("is healthy"),
    );
    let endpoint_up_s = added.elapsed().as_secs_f64();
    p.ok(&[
        "node",
        "exec",
        "loc.etcd-1",
        "--",
        &format!(
            "sudo rm -f /root/vip-writes; sudo systemd-run --unit=vip-writer sh -c 'i=0; while true; do i=$((i+1)); t=$(date +%s%3N); if {via} put w/$i $i >/dev/null 2>&1; then r=ok; else r=failed; fi; echo \"$i $t $r\" >> /root/vip-writes; done'"
        ),
    ]);
    std::thread::sleep(Duration::from_secs(5));

    // The VIP holder loses power.
    let lbs = [
        local.machine("lb-1").unwrap(),
        local.machine("lb-2").unwrap(),
    ];
    let holds = |m: &Machine| sh(m, "ip -o -4 addr show dev eth0").contains(&format!("{vip}/"));
    let first = lbs.iter().position(holds).expect("a machine holds the VIP");
    lbs[first].power_cut().unwrap();
    wait_for(
        "the other machine holding the VIP",
        Duration::from_secs(30),
        || holds(&lbs[1 - first]),
    );
    std::thread::sleep(Duration::from_secs(5));

    // A member's machine is replaced: the load balancer follows without a person.
    p.ok(&["node", "replace", "loc.etcd-3"]);
    wait_for(
        "etcd-3 replaced by a new member",
        Duration::from_secs(500),
        || settled(&p, 3, "3.4.23") && !members(&p).iter().any(|m| m.0 == "loc.etcd-3"),
    );
    let newcomer = members(&p)
        .into_iter()
        .map(|m| m.0)
        .find(|m| !["loc.etcd-1", "loc.etcd-2"].contains(&m.as_str()))
        .unwrap();
    let new_id = newcomer.trim_start_matches("loc.").to_owned();
    wait_for(
        "HAProxy sending to the new member and not to etcd-3",
        Duration::from_secs(300),
        || {
            let cfg = sh(&lbs[1 - first], "cat /etc/haproxy/haproxy.cfg");
            cfg.contains(&format!("server {new_id} ")) && !cfg.contains("server etcd-3 ")
        },
    );
    std::thread::sleep(Duration::from_secs(5));
    p.ok(&[
        "node",
        "exec",
        "loc.etcd-1",
        "--",
        "sudo systemctl stop vip-writer",
    ]);

    let (ok, failed) = writes(&writer);
    assert!(ok.len() > 50, "the writer wrote too little: {}", ok.len());
    let present = sh(
        &writer,
        &format!("{via} get w/ --prefix --keys-only | grep . | sed s#^w/## | sort"),
    );
    let present: std::collections::BTreeSet<u64> = present
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    let lost = ok.iter().filter(|(i, _)| !present.contains(i)).count();
    assert_eq!(
        lost,
        0,
        "acknowledged writes lost ({} acknowledged)",
        ok.len()
    );
    let gap = longest_gap(&ok);
    assert!(gap < 20_000, "writes stopped for {gap} ms");

    println!("etcd_vip_endpoint_up_s={endpoint_up_s:.1}");
    println!("etcd_vip_acked_writes={}", ok.len());
    println!("etcd_vip_failed_writes={failed}");
    println!("etcd_vip_longest_gap_ms={gap}");
    println!("etcd_vip_lost_acked_writes={lost}");
}
