//! End to end on real machines (root): a load balancer added to a running Orb on the Local
//! provider. Two machines hold a VIP with keepalived and forward its port with HAProxy to
//! three machines running a small HTTP service; this host is the client, sending one request
//! after another through the VIP for the whole test. A source outside the whitelist gets no
//! connection; a backend whose port starts refusing is taken out by HAProxy's checks without a failed
//! request; a backend port change rolls over the two machines without a failed request (HAProxy
//! reloads, it does not restart); the VIP holder's power cut moves the VIP to the other machine
//! within seconds and the record in Git says so. Prints the figures `bench/lb-failover.sh`
//! reports (`name=value`).

mod common;

use common::e2e::*;
use common::lb_client::{Client, get, get_from, outage};
use common::local_orb::*;
use common::*;
use orb_lb::{LbMachineObservation, LoadBalancerRecord, ServerStatus};
use orb_machines::{Group, Host, Machine};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const RECORD: &str = "orbiter/loadbalancers/loc.lb.yml";

/// The load balancer of the Orb: one VIP, transport `web` to the `web` pool.
struct Lb {
    vip: Ipv4Addr,
    backendport: u16,
    whitelist: Ipv4Addr,
}

/// Pools `lb` (2) and `web` (3); the app on `web` answers its hostname on ports 8080 and 8081;
/// the `lb` machines have a firewall (ssh only, plus what the load balancer adds).
fn orb_yaml(group: &str, lb: Option<&Lb>) -> String {
    let loadbalancing = lb.map_or(String::new(), |lb| {
        format!(
            "    loadbalancing:
      kind: DynamicLoadBalancer
      version: v2
      spec:
        lb:
          - ip: {vip}
            transport:
              - name: web
                frontendport: 80
                backendport: {port}
                backendpools: [web]
                whitelist: [{white}/32]
                healthchecks: {{protocol: http, path: /, code: 200}}
",
            vip = lb.vip,
            port = lb.backendport,
            white = lb.whitelist
        )
    });
    format!(
        r#"kind: Orb
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
        web:
          nodes: 3
{loadbalancing}software:
  app:
    kind: NodeSoftware
    version: v1
    spec:
      pools: [loc.web]
      items:
        - file:
            path: /usr/local/bin/app
            mode: "0755"
            content: |
              #!/usr/bin/perl
              use IO::Socket::INET;
              use IO::Select;
              $SIG{{PIPE}} = 'IGNORE';
              my $name = `hostname`; chomp $name;
              my $sel = IO::Select->new(map {{ IO::Socket::INET->new(LocalPort => $_, Listen => 64, ReuseAddr => 1) or die "listen $_: $!\n" }} (8080, 8081));
              while (1) {{ for my $s ($sel->can_read) {{ my $c = $s->accept or next; my $r = <$c>; print $c "HTTP/1.0 200 OK\r\n\r\n$name\n"; close $c; }} }}
        - unit:
            name: app.service
            content: |
              [Unit]
              Description=load balancer demo backend
              [Service]
              ExecStart=/usr/local/bin/app
              [Install]
              WantedBy=multi-user.target
            enabled: true
            active: true
            restart_on: [/usr/local/bin/app]
        - health: {{name: app, http: "http://127.0.0.1:8080/", expect: 200, timeout: 2s}}
  lbfirewall:
    kind: NodeSoftware
    version: v1
    spec:
      pools: [loc.lb]
      items:
        - firewall:
            allow:
              - {{protocol: tcp, ports: ["22"]}}
"#
    )
}

fn record(repo: &Path) -> Option<LoadBalancerRecord> {
    let out = Command::new("git")
        .arg("--git-dir")
        .arg(repo)
        .args(["show", &format!("main:{RECORD}")])
        .output()
        .ok()
        .filter(|o| o.status.success())?;
    orbiter::state::parse_yaml(&String::from_utf8_lossy(&out.stdout), RECORD).ok()
}

/// The holder the record names and how many backends it says are up.
fn recorded(repo: &Path) -> (Option<String>, usize) {
    record(repo)
        .and_then(|r| r.vips.into_iter().next())
        .map_or((None, 0), |v| {
            let up = v
                .transports
                .iter()
                .flat_map(|t| &t.backends)
                .filter(|b| b.status == "UP")
                .count();
            (v.holder, up)
        })
}

/// What the load balancer on `m` shows: the addresses on its VIP interface and HAProxy's view.
fn observe(m: &Machine) -> LbMachineObservation {
    let out = m.exec(&["bash", "-c", &orb_lb::observe_command()]).unwrap();
    orb_lb::parse_observation(&String::from_utf8_lossy(&out.stdout)).unwrap_or_default()
}

fn server_status(m: &Machine, server: &str) -> Option<ServerStatus> {
    observe(m).server("web", server).map(|s| s.status.clone())
}

fn haproxy_pid(m: &Machine) -> String {
    sh(m, "systemctl show -p MainPID --value haproxy.service")
}

/// An address of this host on the group's bridge, removed again when dropped.
struct Alias {
    addr: Ipv4Addr,
    bridge: String,
}

impl Alias {
    fn add(addr: Ipv4Addr, bridge: &str) -> Alias {
        let st = Command::new("ip")
            .args(["addr", "add", &format!("{addr}/32"), "dev", bridge])
            .status()
            .unwrap();
        assert!(st.success(), "ip addr add {addr} dev {bridge}");
        Alias {
            addr,
            bridge: bridge.to_owned(),
        }
    }
}

impl Drop for Alias {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args([
                "addr",
                "del",
                &format!("{}/32", self.addr),
                "dev",
                &self.bridge,
            ])
            .status();
    }
}

#[test]
fn vip_failover_backend_removal_transport_change_and_whitelist() {
    let host = Host::new().expect("this test needs root and the orb-machines host tools");
    let pid = std::process::id();
    let group = format!("lb{pid}");
    let (p, repo) = (Person::new(), orb_testsupport::bare_repo());
    let _cleanup = Cleanup {
        groups: vec![group.clone()],
        person: Some(p.home.path().to_owned()),
    };
    let bins = Binaries::snapshot();
    p.ok(&[
        "configure",
        "--repourl",
        &format!("file://{}", repo.path.display()),
    ]);
    human_commit(
        &repo.path,
        "orbiter.yml",
        &orb_yaml(&group, None),
        "Backends and two machines for a load balancer",
    );
    let listen = format!("127.0.0.1:{}", 20000 + (pid % 20000) as u16);
    let out = takeoff(&p, &bins, "900", &listen);
    assert!(
        out.status.success(),
        "takeoff failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The load balancer, a day-two change: its VIP in the group's subnet.
    let local = Group::attach(&host, &group).unwrap();
    let subnet = local.subnet();
    let lb = Lb {
        vip: subnet.host(200),
        backendport: 8080,
        whitelist: local.bridge_ip(),
    };
    let vip = SocketAddr::from((lb.vip, 80));
    human_commit(
        &repo.path,
        "orbiter.yml",
        &orb_yaml(&group, Some(&lb)),
        "A VIP in front of the web pool",
    );
    let added = Instant::now();
    wait_for("the VIP answering", Duration::from_secs(400), || {
        get(vip).is_ok()
    });
    let lb_up_s = added.elapsed().as_secs_f64();
    wait_for(
        "the record naming the holder and 3 backends up",
        Duration::from_secs(120),
        || matches!(recorded(&repo.path), (Some(_), 3)),
    );
    let lbs = [
        local.machine("lb-1").unwrap(),
        local.machine("lb-2").unwrap(),
    ];
    let holder = || lbs.iter().position(|m| observe(m).holds(lb.vip));
    let first = holder().expect("a machine holds the VIP");
    assert_eq!(recorded(&repo.path).0.as_deref(), Some(lbs[first].id()));
    let client = Client::start(vip);

    // The whitelist: this host's bridge address gets through, another address of it does not.
    let alias = Alias::add(subnet.host(253), local.bridge());
    let from_whitelisted = get_from(lb.whitelist, SocketAddrV4::new(lb.vip, 80));
    assert!(from_whitelisted.is_ok(), "{from_whitelisted:?}");
    let from_outside = get_from(alias.addr, SocketAddrV4::new(lb.vip, 80));
    assert!(from_outside.is_err(), "{from_outside:?}");
    drop(alias);

    // A backend's service goes away: its port refuses connections (a table of the test's own
    // in nftables; stopping the service would not last, its agent and Orbiter repair that).
    let web1 = local.machine("web-1").unwrap();
    let stopped = Instant::now();
    sh(
        &web1,
        "nft add table ip orbtest && nft add chain ip orbtest in '{ type filter hook input priority -10; }' && nft add rule ip orbtest in tcp dport '{ 8080, 8081 }' reject with tcp reset",
    );
    wait_for("HAProxy taking web-1 out", Duration::from_secs(20), || {
        server_status(&lbs[first], "web-1") == Some(ServerStatus::Down)
    });
    let backend_removed = stopped.elapsed();
    std::thread::sleep(Duration::from_secs(2));
    let (failed_backend_down, _) = outage(&client.since(stopped), stopped);
    let answered_by_web1_after = client
        .since(stopped + backend_removed)
        .iter()
        .filter(|o| o.answer.as_deref() == Ok("web-1"))
        .count();
    assert_eq!(answered_by_web1_after, 0);
    sh(&web1, "nft delete table ip orbtest");
    wait_for("web-1 back in", Duration::from_secs(60), || {
        server_status(&lbs[first], "web-1") == Some(ServerStatus::Up)
    });

    // The backend port changes: one machine at a time, HAProxy reloaded, no request lost.
    let pids: Vec<String> = lbs.iter().map(haproxy_pid).collect();
    let changed = Instant::now();
    let lb_8081 = Lb {
        backendport: 8081,
        ..lb
    };
    human_commit(
        &repo.path,
        "orbiter.yml",
        &orb_yaml(&group, Some(&lb_8081)),
        "The backends' other port",
    );
    let on_8081 = |m: &Machine| sh(m, "cat /etc/haproxy/haproxy.cfg").contains(":8081 check");
    wait_for(
        "both machines forwarding to 8081",
        Duration::from_secs(300),
        || {
            lbs.iter().all(|m| {
                on_8081(m)
                    && ["web-1", "web-2", "web-3"]
                        .iter()
                        .all(|s| server_status(m, s) == Some(ServerStatus::Up))
            })
        },
    );
    std::thread::sleep(Duration::from_secs(3));
    let transport_change_s = changed.elapsed().as_secs_f64();
    let (failed_transport_change, _) = outage(&client.since(changed), changed);
    let pids_after: Vec<String> = lbs.iter().map(haproxy_pid).collect();
    assert_eq!(pids, pids_after, "HAProxy was restarted, not reloaded");

    // The VIP holder loses power: the other machine takes the VIP.
    let first = holder().expect("a machine holds the VIP");
    let other = 1 - first;
    let cut = Instant::now();
    lbs[first].power_cut().unwrap();
    wait_for("the other machine serving", Duration::from_secs(60), || {
        let log = client.since(cut);
        log.len() > 40 && log[log.len() - 40..].iter().all(|o| o.answer.is_ok())
    });
    let (failed_failover, vip_failover) = outage(&client.since(cut), cut);
    assert!(observe(&lbs[other]).holds(lb.vip));
    wait_for(
        "the record naming the new holder",
        Duration::from_secs(120),
        || recorded(&repo.path).0.as_deref() == Some(lbs[other].id()),
    );
    let status = p.ok(&["lb", "status"]);
    assert!(
        status.contains(&lb.vip.to_string()) && status.contains(lbs[other].id()),
        "{status}"
    );
    let json = p.ok(&["lb", "status", "-o", "json"]);
    assert!(
        json.contains("\"holder\"") && !json.contains("vrrppassword"),
        "{json}"
    );
    drop(client);

    println!("lb_up_s={lb_up_s:.1}");
    println!("vip_failover_ms={}", vip_failover.as_millis());
    println!("failed_requests_failover={failed_failover}");
    println!("backend_removed_ms={}", backend_removed.as_millis());
    println!("failed_requests_backend_down={failed_backend_down}");
    println!("transport_change_s={transport_change_s:.1}");
    println!("transport_change_failed_requests={failed_transport_change}");
    println!("whitelist_blocked=yes");
}
