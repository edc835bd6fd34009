//! Rendering: the configuration text (binds, servers, whitelist, checks, VRRP), the items as a
//! valid machine document, firewall rules, and determinism.

use super::*;
use crate::input::{LbMachine, Packages};
use node_protocol::{Firewall, Form, NodeDesired};
use orb_model::Orb;
use orb_model::kinds::load_balancer::DynamicLoadBalancer;
use std::collections::BTreeSet;

pub(crate) const ORB: &str = "kind: Orb
version: v1
providers:
  lab:
    kind: StaticProvider
    version: v1
    spec:
      pools:
        lb:
          - {id: lb-1, hostname: lb-1, ip: 10.0.0.11}
          - {id: lb-2, hostname: lb-2, ip: 10.0.0.12}
        workers:
          - {id: w-1, hostname: w-1, ip: 10.0.0.21}
          - {id: w-2, hostname: w-2, ip: 10.0.0.22}
    loadbalancing:
      kind: DynamicLoadBalancer
      version: v2
      spec:
        lb:
          - ip: 10.0.0.100
            transport:
              - name: web
                frontendport: 443
                backendport: 8443
                backendpools: [workers]
                whitelist: [192.0.2.0/24, 10.0.0.0/8]
                healthchecks: {protocol: https, path: /healthz, code: 204}
                proxyprotocol: true
              - {name: kv, frontendport: 12379, backendport: 2379, backendpools: [workers, lb]}
          - ip: 10.0.0.101
            transport:
              - {name: api, frontendport: 80, backendport: 8080, backendpools: [workers], whitelist: [], healthchecks: {protocol: http, path: /ready}}
";

pub(crate) fn spec() -> DynamicLoadBalancer {
    let orb = Orb::parse(ORB, "orbiter.yml").unwrap();
    orb.providers["lab"]
        .spec
        .model()
        .loadbalancing()
        .unwrap()
        .clone()
}

pub(crate) fn id(s: &str) -> Id {
    Id::parse(s).unwrap()
}

/// The provider's machines, each pool in the order given.
pub(crate) fn machines(lb: &[(&str, [u8; 4])]) -> BTreeMap<Id, Vec<LbMachine>> {
    let m = |name: &str, ip: [u8; 4]| LbMachine {
        id: id(name),
        ip: ip.into(),
    };
    BTreeMap::from([
        (id("lb"), lb.iter().map(|(n, ip)| m(n, *ip)).collect()),
        (
            id("workers"),
            vec![m("w-2", [10, 0, 0, 22]), m("w-1", [10, 0, 0, 21])],
        ),
    ])
}

fn two() -> BTreeMap<Id, Vec<LbMachine>> {
    machines(&[("lb-2", [10, 0, 0, 12]), ("lb-1", [10, 0, 0, 11])])
}

fn packages() -> Packages {
    Packages {
        keepalived: "1:2.3.3-1".into(),
        haproxy: "3.0.11-1".into(),
    }
}

fn rendered(machines: &BTreeMap<Id, Vec<LbMachine>>) -> BTreeMap<Id, MachineLb> {
    let (spec, packages, provider) = (spec(), packages(), id("lab"));
    // lb-2's address was observed on ens4; lb-1 is not observed yet (the default).
    let interfaces = BTreeMap::from([(id("lb-2"), "ens4".to_owned())]);
    render(&LbInput {
        provider: &provider,
        spec: &spec,
        machines,
        vrrp_password: b"s3cret-vrrp-password",
        interfaces: &interfaces,
        interface: "host0",
        serving: &BTreeMap::new(),
        vip_prefix: 32,
        packages: &packages,
    })
    .unwrap()
}

fn file(m: &MachineLb, path: &str) -> String {
    m.items
        .iter()
        .find_map(|i| match i {
            Item::File(f) if f.path == path => {
                f.bytes().map(|b| String::from_utf8_lossy(b).into_owned())
            }
            _ => None,
        })
        .unwrap_or_else(|| panic!("no file {path}"))
}

#[test]
fn haproxy_binds_every_vip_and_lists_every_backend() {
    let out = rendered(&two());
    let cfg = file(&out[&id("lb-1")], HAPROXY_CFG);
    assert_eq!(
        cfg,
        file(&out[&id("lb-2")], HAPROXY_CFG),
        "the same on every LB machine"
    );
    for line in [
        "frontend fe-web\n    bind 10.0.0.100:443\n",
        "    tcp-request connection reject unless { src 10.0.0.0/8 192.0.2.0/24 }\n    default_backend be-web\n",
        "backend be-web\n    option httpchk GET /healthz\n    http-check expect status 204\n",
        "    server w-1 10.0.0.21:8443 check inter 1s fall 2 rise 2 check-ssl verify none send-proxy-v2\n    server w-2 10.0.0.22:8443 check",
        "frontend fe-kv\n    bind 10.0.0.100:12379\n    default_backend be-kv\n",
        "backend be-kv\n    server lb-1 10.0.0.11:2379 check inter 1s fall 2 rise 2\n    server lb-2 10.0.0.12:2379 check inter 1s fall 2 rise 2\n    server w-1 10.0.0.21:2379",
        // `[]`: only the provider's machines.
        "bind 10.0.0.101:80\n    tcp-request connection reject unless { src 10.0.0.11 10.0.0.12 10.0.0.21 10.0.0.22 }\n",
        "backend be-api\n    option httpchk GET /ready\n    http-check expect status 200\n    server w-1 10.0.0.21:8080 check inter 1s fall 2 rise 2\n",
        "frontend orb-ready\n    mode http\n    bind 127.0.0.1:29999\n    monitor-uri /ready\n",
        "    bind 127.0.0.1:29998\n    stats enable\n    stats uri /stats\n",
        "    mode tcp\n",
        "    stats socket /run/haproxy/admin.sock",
    ] {
        assert!(cfg.contains(line), "missing\n{line}\nin\n{cfg}");
    }
    assert!(!cfg.contains("send-proxy-v2\n    server lb-1"), "{cfg}");
}

#[test]
fn a_cluster_endpoint_sends_only_to_serving_members() {
    let (spec, packages, provider, machines) = (spec(), packages(), id("lab"), two());
    let (none, serving) = (
        BTreeMap::new(),
        BTreeMap::from([("kv".to_owned(), BTreeSet::from([id("w-2"), id("lb-1")]))]),
    );
    let out = render(&LbInput {
        provider: &provider,
        spec: &spec,
        machines: &machines,
        vrrp_password: b"s3cret-vrrp-password",
        interfaces: &none,
        interface: "host0",
        serving: &serving,
        vip_prefix: 32,
        packages: &packages,
    })
    .unwrap();
    let cfg = file(&out[&id("lb-1")], HAPROXY_CFG);
    let kv = &cfg[cfg.find("\nbackend be-kv").unwrap() + 1..];
    let kv = &kv[..kv.find("\n\n").unwrap_or(kv.len())];
    assert_eq!(
        kv,
        "backend be-kv\n    server lb-1 10.0.0.11:2379 check inter 1s fall 2 rise 2\n    server w-2 10.0.0.22:2379 check inter 1s fall 2 rise 2\n"
            .trim_end(),
    );
    // Other transports still send to every machine of their pools.
    assert!(cfg.contains("server w-1 10.0.0.21:8443"), "{cfg}");
    // The firewall still lets the load balancers reach every backend machine.
    assert!(out[&id("w-1")].firewall.iter().any(|r| r.ports == ["2379"]));
}

#[test]
fn keepalived_is_unicast_backup_with_ordered_priorities() {
    let out = rendered(&two());
    let one = file(&out[&id("lb-1")], KEEPALIVED_CONF);
    let two = file(&out[&id("lb-2")], KEEPALIVED_CONF);
    for line in [
        "global_defs {\n    enable_script_security\n    script_user root\n}\n",
        "vrrp_script chk_proxy {\n    script \"/usr/local/lib/orbiter/lb-ready\"\n    interval 1\n    timeout 2\n    fall 2\n    rise 2\n}\n",
        "vrrp_instance vip_10_0_0_100 {\n    state BACKUP\n    nopreempt\n    interface host0\n    virtual_router_id 100\n    priority 254\n    advert_int 1\n",
        "    unicast_src_ip 10.0.0.11\n    unicast_peer {\n        10.0.0.12\n    }\n",
        "    authentication {\n        auth_type PASS\n        auth_pass s3cret-v\n    }\n",
        "    track_script {\n        chk_proxy\n    }\n",
        "    virtual_ipaddress {\n        10.0.0.100/32 dev host0\n    }\n",
        "virtual_router_id 101\n",
    ] {
        assert!(one.contains(line), "missing\n{line}\nin\n{one}");
    }
    assert!(
        two.contains("    priority 253\n") && !two.contains("priority 254"),
        "{two}"
    );
    assert!(
        two.contains("    interface ens4\n") && two.contains("10.0.0.100/32 dev ens4\n"),
        "each machine's own interface: {two}"
    );
    assert!(
        two.contains(
            "    unicast_src_ip 10.0.0.12\n    unicast_peer {\n        10.0.0.11\n    }\n"
        )
    );
    assert!(!one.contains("MASTER"));
}

#[test]
fn a_pool_of_one_stays_unicast() {
    let out = rendered(&machines(&[("lb-1", [10, 0, 0, 11])]));
    let conf = file(&out[&id("lb-1")], KEEPALIVED_CONF);
    assert!(
        conf.contains("    unicast_peer {\n        127.0.0.1\n    }\n"),
        "{conf}"
    );
    assert!(
        !out[&id("lb-1")]
            .firewall
            .iter()
            .any(|r| r.protocol == Protocol::Vrrp)
    );
}

#[test]
fn items_form_a_valid_machine_document() {
    let out = rendered(&two());
    let lb = &out[&id("lb-1")];
    let ids: Vec<String> = lb.items.iter().map(Item::id).collect();
    assert_eq!(
        ids,
        [
            "package:keepalived",
            "package:haproxy",
            "sysctl:net.ipv4.ip_nonlocal_bind",
            "directory:/usr/local/lib/orbiter",
            "file:/usr/local/lib/orbiter/lb-ready",
            "file:/etc/haproxy/haproxy.cfg",
            "file:/etc/keepalived/keepalived.conf",
            "unit:haproxy.service",
            "unit:keepalived.service",
            "health:lb-proxy",
            "health:lb-vrrp",
        ]
    );
    let keepalived = lb
        .items
        .iter()
        .find(|i| i.id() == "file:/etc/keepalived/keepalived.conf");
    assert!(matches!(keepalived, Some(Item::File(f)) if f.is_secret() && f.mode == "0600"));
    assert!(
        matches!(&lb.items[7], Item::Unit(u) if u.reload_on == [HAPROXY_CFG] && u.restart_on.is_empty() && u.active == Some(true))
    );
    assert!(
        matches!(&lb.items[9], Item::Health(h) if h.http.as_deref() == Some("http://127.0.0.1:29999/ready"))
    );
    let script = file(lb, READY_SCRIPT);
    assert!(script.starts_with("#!/bin/bash\n") && script.contains("/dev/tcp/127.0.0.1/29999"));
    let mut items = lb.items.clone();
    items.push(Item::Firewall(Firewall {
        allow: vec![Rule {
            protocol: Protocol::Tcp,
            ports: vec!["22".into()],
            sources: vec![],
        }],
        ssh_port: 22,
    }));
    assert!(add_firewall_rules(&mut items, &lb.firewall));
    assert!(
        add_firewall_rules(&mut items, &lb.firewall),
        "adding twice changes nothing"
    );
    let doc = NodeDesired::new(1, items);
    let text = node_protocol::secret::reveal(|| doc.render_for_machine());
    let back = NodeDesired::parse(&text, "lb-1", Form::Machine).unwrap();
    let Some(Item::Firewall(fw)) = back.items.last() else {
        panic!()
    };
    assert_eq!(fw.allow.len(), 1 + lb.firewall.len());
    assert!(
        !add_firewall_rules(&mut lb.items.clone(), &lb.firewall),
        "no firewall item: left open"
    );
}

#[test]
fn firewall_rules_follow_the_whitelist_and_the_pools() {
    let out = rendered(&two());
    let rule = |p: Protocol, port: &str, sources: &[&str]| Rule {
        protocol: p,
        ports: if port.is_empty() {
            vec![]
        } else {
            vec![port.into()]
        },
        sources: sources.iter().map(|s| s.to_string()).collect(),
    };
    let machines = ["10.0.0.11", "10.0.0.12", "10.0.0.21", "10.0.0.22"];
    assert_eq!(
        out[&id("lb-1")].firewall,
        [
            rule(Protocol::Tcp, "12379", &[]),
            rule(Protocol::Tcp, "2379", &["10.0.0.11", "10.0.0.12"]),
            rule(Protocol::Tcp, "443", &["10.0.0.0/8", "192.0.2.0/24"]),
            rule(Protocol::Tcp, "80", &machines),
            rule(Protocol::Vrrp, "", &["10.0.0.12"]),
        ]
    );
    assert_eq!(
        out[&id("w-1")].firewall,
        [
            rule(Protocol::Tcp, "2379", &["10.0.0.11", "10.0.0.12"]),
            rule(Protocol::Tcp, "8080", &["10.0.0.11", "10.0.0.12"]),
            rule(Protocol::Tcp, "8443", &["10.0.0.11", "10.0.0.12"]),
        ]
    );
    assert!(out[&id("w-1")].items.is_empty());
}

#[test]
fn the_same_input_gives_the_same_bytes_in_any_order() {
    let a = rendered(&two());
    let b = rendered(&machines(&[
        ("lb-1", [10, 0, 0, 11]),
        ("lb-2", [10, 0, 0, 12]),
    ]));
    let bytes = |m: &BTreeMap<Id, MachineLb>| {
        let docs: Vec<String> = m
            .values()
            .map(|x| {
                let doc = NodeDesired::new(1, x.items.clone());
                node_protocol::secret::reveal(|| doc.render_for_machine())
                    + &format!("{:?}", x.firewall)
            })
            .collect();
        docs.join("\n---\n")
    };
    assert_eq!(bytes(&a), bytes(&b));
    assert_eq!(bytes(&a), bytes(&rendered(&two())));
    assert_eq!(
        a.keys().map(Id::as_str).collect::<Vec<_>>(),
        ["lb-1", "lb-2", "w-1", "w-2"]
    );
}

#[test]
fn auth_pass_is_eight_printable_characters() {
    assert_eq!(auth_pass(b"abcdefghijk").unwrap(), "abcdefgh");
    assert_eq!(auth_pass(&[0, 1, 2, 0xff, 9]).unwrap(), "000102ff");
    assert_eq!(auth_pass(b"has space!").unwrap(), "68617320");
    assert!(auth_pass(b"short").is_err());
    assert!(auth_pass(&[1, 2, 3]).is_err());
}

#[test]
fn bad_input_is_refused() {
    let (spec, packages, provider, machines) = (spec(), packages(), id("lab"), two());
    let none = BTreeMap::new();
    let input = LbInput {
        provider: &provider,
        spec: &spec,
        machines: &machines,
        vrrp_password: b"s3cret-vrrp-password",
        interfaces: &none,
        interface: "host0",
        serving: &BTreeMap::new(),
        vip_prefix: 32,
        packages: &packages,
    };
    for bad in ["", "eth0; reboot", "a-very-long-interface", "-x"] {
        let e = render(&LbInput {
            interface: bad,
            ..input
        })
        .unwrap_err();
        assert!(e.0.contains("interface"), "{e}");
    }
    assert!(
        render(&LbInput {
            vip_prefix: 0,
            ..input
        })
        .is_err()
    );
    assert!(
        render(&LbInput {
            vip_prefix: 33,
            ..input
        })
        .is_err()
    );
    assert!(
        render(&LbInput {
            vrrp_password: b"x",
            ..input
        })
        .is_err()
    );
    let out = render(&LbInput {
        vip_prefix: 24,
        ..input
    })
    .unwrap();
    assert!(file(&out[&id("lb-1")], KEEPALIVED_CONF).contains("10.0.0.100/24 dev host0"));
}

#[test]
fn priorities_descend_and_stay_valid() {
    assert_eq!(
        (priority(0), priority(1), priority(253), priority(500)),
        (254, 253, 1, 1)
    );
}
