//! Reading, migrating and checking `loadbalancing`; every error names its line and field.

use super::*;
use crate::kinds::ProviderModel;
use crate::registry::ProviderSpec;
use crate::{ModelError, Orb};

const EXAMPLE: &str = "kind: Orb
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
          - {id: w-3, hostname: w-3, ip: 10.0.0.23}
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
                healthchecks: {protocol: https, path: /healthz, code: 200}
                proxyprotocol: true
              - name: kv
                frontendport: 2379
                backendport: 2379
                backendpools: [workers]
clusters:
  etcd:
    kind: EtcdCluster
    version: v1
    spec:
      provider: lab
      pool: workers
      nodes: 3
      version: 3.5.16
      endpoint: kv
";

/// A second VIP in pool `lb`, inserted before `clusters:`.
fn with_vip(vip: &str) -> String {
    EXAMPLE.replace("\nclusters:", &format!("\n{vip}clusters:"))
}

fn parse(text: &str) -> Result<Orb, ModelError> {
    Orb::parse(text, "orbiter.yml")
}

/// The line where `needle` (which may span lines) starts.
fn line_of(text: &str, needle: &str) -> u64 {
    let at = text
        .find(needle)
        .unwrap_or_else(|| panic!("`{needle}` not in\n{text}"));
    text[..at].matches('\n').count() as u64 + 1
}

/// `text` is refused with `message` in the error, at the line containing `at`, with a hint.
fn refused(text: &str, message: &str, at: &str) -> ModelError {
    let e = parse(text).expect_err(message);
    assert!(e.message.contains(message), "want `{message}`, got: {e}");
    let pos = e.pos.unwrap_or_else(|| panic!("no position: {e}"));
    assert_eq!(pos.line, line_of(text, at), "{e}");
    assert!(
        e.to_string()
            .starts_with(&format!("orbiter.yml:{}:", pos.line))
    );
    assert!(e.hint.is_some(), "no hint: {e}");
    e
}

fn lb_of(orb: &Orb) -> &DynamicLoadBalancer {
    orb.providers["lab"].spec.model().loadbalancing().unwrap()
}

#[test]
fn the_example_reads_and_round_trips() {
    let orb = parse(EXAMPLE).unwrap();
    assert!(!orb.needs_migration());
    let lb = lb_of(&orb);
    let (pool, vip) = lb.vips().next().unwrap();
    assert_eq!(
        (pool.as_str(), vip.ip.value),
        ("lb", Ipv4Addr::new(10, 0, 0, 100))
    );
    let web = &vip.transport[0];
    assert_eq!(web.healthchecks.protocol.value, CheckProtocol::Https);
    assert!(web.proxyprotocol);
    let kv = &vip.transport[1];
    assert_eq!(kv.whitelist, default_whitelist());
    assert!(kv.healthchecks.is_default() && !kv.proxyprotocol);
    let text = orb.to_yaml();
    assert!(
        text.contains("    loadbalancing:\n      kind: DynamicLoadBalancer\n      version: v2\n"),
        "{text}"
    );
    assert!(
        !text.contains("proxyprotocol: false") && !text.contains("0.0.0.0/0"),
        "{text}"
    );
    let again = parse(&text).unwrap();
    assert_eq!(again, orb);
    assert_eq!(again.to_yaml(), text);
}

#[test]
fn finds_a_transport_by_name() {
    let orb = parse(EXAMPLE).unwrap();
    let t = orb.transport("kv").unwrap();
    assert_eq!((t.provider.as_str(), t.pool.as_str()), ("lab", "lb"));
    assert_eq!(t.ip, Ipv4Addr::new(10, 0, 0, 100));
    assert_eq!(t.transport.frontendport.value, 2379);
    assert!(orb.transport("nope").is_none());
}

#[test]
fn router_ids_are_last_octets() {
    assert_eq!(virtual_router_id(Ipv4Addr::new(10, 0, 0, 100)), Some(100));
    assert_eq!(virtual_router_id(Ipv4Addr::new(10, 0, 1, 255)), Some(255));
    assert_eq!(virtual_router_id(Ipv4Addr::new(10, 0, 1, 0)), None);
}

#[test]
fn static_pool_subnets_are_the_shared_slash_24() {
    let orb = parse(EXAMPLE).unwrap();
    let ProviderSpec::Static(s) = &orb.providers["lab"].spec else {
        panic!()
    };
    let lb = Id::parse("lb").unwrap();
    assert_eq!(s.pool_subnet(&lb), Some((Ipv4Addr::new(10, 0, 0, 0), 24)));
    let mut spread = s.clone();
    spread.pools.get_mut(&lb).unwrap()[1].ip.value = "10.0.1.12".parse().unwrap();
    assert_eq!(spread.pool_subnet(&lb), None);
    spread.pools.get_mut(&lb).unwrap()[1].ip.value = "fd00::12".parse().unwrap();
    assert_eq!(spread.pool_subnet(&lb), None);
    assert_eq!(s.pool_subnet(&Id::parse("nope").unwrap()), None);
}

#[test]
fn a_local_provider_has_load_balancing_too() {
    let text = EXAMPLE.replace(
        "\nclusters:",
        "
  local:
    kind: LocalProvider
    version: v1
    spec:
      pools: {front: {nodes: 2}, apps: {nodes: 2}}
    loadbalancing:
      kind: DynamicLoadBalancer
      version: v2
      spec:
        front:
          - ip: 172.16.9.7
            transport: [{name: app, frontendport: 80, backendport: 8080, backendpools: [apps], whitelist: []}]
clusters:",
    );
    let orb = parse(&text).unwrap();
    let lb = orb.providers["local"].spec.model().loadbalancing().unwrap();
    assert!(
        lb.vips().next().unwrap().1.transport[0]
            .whitelist
            .is_empty()
    );
    let again = parse(&orb.to_yaml()).unwrap();
    assert_eq!(again, orb);
    let clash = text.replace("172.16.9.7", "172.16.9.100");
    refused(&clash, "both would get VRRP router id 100", "172.16.9.100");
}

#[test]
fn errors_name_line_field_and_fix() {
    let vip2 = |ip: &str, t: &str| {
        with_vip(&format!(
            "          - ip: {ip}\n            transport: [{t}]\n"
        ))
    };
    let other = "{name: other, frontendport: 80, backendport: 8080, backendpools: [workers]}";
    let cases: Vec<(String, &str, &str)> = vec![
        (
            EXAMPLE.replace(
                "        lb:\n          - ip",
                "        lbb:\n          - ip",
            ),
            "VIP pool `lbb` is not a pool",
            "lbb:",
        ),
        (
            EXAMPLE.replacen("backendpools: [workers]", "backendpools: [wrkers]", 1),
            "backend pool `wrkers`",
            "[wrkers]",
        ),
        (
            EXAMPLE.replacen(
                "backendpools: [workers]",
                "backendpools: [workers, workers]",
                1,
            ),
            "listed twice",
            "[workers, workers]",
        ),
        (
            EXAMPLE.replacen("backendpools: [workers]", "backendpools: []", 1),
            "has no backendpools",
            "name: web",
        ),
        (
            EXAMPLE.replace(
                "      spec:\n        lb:",
                "      spec:\n        workers: []\n        lb:",
            ),
            "pool `workers` has no VIP",
            "workers: []",
        ),
        (
            EXAMPLE.replace("ip: 10.0.0.100", "ip: 10.0.0.21"),
            "is the address of machine `lab.w-1`",
            "- ip: 10.0.0.21",
        ),
        (
            EXAMPLE.replace("ip: 10.0.0.100", "ip: 10.0.1.100"),
            "not a host address of pool `lb`'s subnet 10.0.0.0/24",
            "10.0.1.100",
        ),
        (
            EXAMPLE.replace("ip: 10.0.0.100", "ip: 10.0.0.255"),
            "not a host address",
            "10.0.0.255",
        ),
        (
            EXAMPLE.replace("ip: 10.0.0.100", "ip: 10.0.0.0"),
            "ends in .0",
            "ip: 10.0.0.0",
        ),
        (
            vip2("10.0.0.100", other),
            "VIP 10.0.0.100 is listed twice",
            "- ip: 10.0.0.100\n            transport: [{name: other",
        ),
        (
            vip2(
                "10.0.0.101",
                "{name: web, frontendport: 80, backendport: 8080, backendpools: [workers]}",
            ),
            "transport `web` is defined twice",
            "transport: [{name: web",
        ),
        (
            vip2("10.0.0.101", ""),
            "has no transport",
            "- ip: 10.0.0.101",
        ),
        (
            EXAMPLE.replace("frontendport: 2379", "frontendport: 443"),
            "both use frontendport 443",
            "frontendport: 443\n                backendport: 2379",
        ),
        (
            EXAMPLE.replace("backendport: 8443", "backendport: 0"),
            "backendport is 0",
            "backendport: 0",
        ),
        (
            EXAMPLE.replace("frontendport: 443", "frontendport: 22"),
            "frontendport is 22",
            "frontendport: 22",
        ),
        (
            EXAMPLE.replace(
                "backendpools: [workers]\nclusters",
                "backendpools: [workers, lb]\nclusters",
            ),
            "frontendport 2379 is a backend port on pool `lb`",
            "frontendport: 2379",
        ),
        (
            EXAMPLE.replace("10.0.0.0/8]", "10.1.0.0/8]"),
            "whitelist entry 10.1.0.0/8 has host bits set",
            "10.1.0.0/8",
        ),
        (
            EXAMPLE.replace(
                "{protocol: https, path: /healthz, code: 200}",
                "{protocol: https, code: 200}",
            ),
            "healthchecks.path",
            "protocol: https",
        ),
        (
            EXAMPLE.replace("path: /healthz", "path: healthz"),
            "healthchecks.path",
            "path: healthz",
        ),
        (
            EXAMPLE.replace("path: /healthz", "path: '/a#b'"),
            "healthchecks.path",
            "/a#b",
        ),
        (
            EXAMPLE.replace("code: 200", "code: 99"),
            "healthchecks.code 99",
            "code: 99",
        ),
        (
            EXAMPLE.replace(
                "{protocol: https, path: /healthz, code: 200}",
                "{protocol: tcp, path: /x}",
            ),
            "a tcp check has no path or code",
            "protocol: tcp",
        ),
    ];
    for (text, message, at) in cases {
        let e = refused(&text, message, at);
        assert!(
            e.message.starts_with("provider `lab`: loadbalancing: "),
            "{e}"
        );
    }
    let e = refused(
        &EXAMPLE.replace("ip: 10.0.0.100", "ip: 10.0.1.100"),
        "subnet",
        "10.0.1.100",
    );
    assert!(e.hint.unwrap().contains("10.0.0.0/24"));
    let e = refused(
        &EXAMPLE.replace("10.0.0.0/8]", "10.1.0.0/8]"),
        "host bits",
        "10.1.0.0/8",
    );
    assert!(
        e.hint.unwrap().contains("10.0.0.0/8"),
        "the hint shows the network form"
    );
    let e = refused(
        &EXAMPLE.replace(
            "        lb:\n          - ip",
            "        lbb:\n          - ip",
        ),
        "lbb",
        "lbb:",
    );
    assert_eq!(e.hint.as_deref(), Some("did you mean `lb`?"));
}

#[test]
fn parser_errors_point_at_the_field() {
    for (text, message, at) in [
        (
            EXAMPLE.replace("10.0.0.0/8]", "10.0.0.0/33]"),
            "whitelist: `10.0.0.0/33` is not an IPv4 CIDR prefix",
            "10.0.0.0/33",
        ),
        (
            EXAMPLE.replace("frontendport: 443", "frontendport: 70000"),
            "frontendport: `70000` is not a port",
            "70000",
        ),
        (
            EXAMPLE.replace("protocol: https", "protocol: htps"),
            "unknown variant `htps`",
            "htps",
        ),
        (
            EXAMPLE.replace("frontendport: 2379", "frontedport: 2379"),
            "unknown field `frontedport`",
            "frontedport",
        ),
        (
            EXAMPLE.replace("name: kv", "name: Kv"),
            "id `Kv`",
            "name: Kv",
        ),
        (
            EXAMPLE.replace(
                "DynamicLoadBalancer\n      version: v2",
                "DynamicLoadBalancer\n      version: v3",
            ),
            "has no version `v3`",
            "version: v3",
        ),
        (
            EXAMPLE.replace("kind: DynamicLoadBalancer", "kind: DynamicLoadBalancr"),
            "unknown kind `DynamicLoadBalancr`",
            "DynamicLoadBalancr",
        ),
    ] {
        let e = parse(&text).expect_err(message);
        assert!(e.message.contains(message), "want `{message}`, got: {e}");
        assert_eq!(e.pos.map(|p| p.line), Some(line_of(&text, at)), "{e}");
    }
    let e = parse(&EXAMPLE.replace("protocol: https", "protocol: htps")).unwrap_err();
    assert_eq!(e.hint.as_deref(), Some("did you mean `https`?"));
}

#[test]
fn loadbalancing_stands_beside_the_spec_of_a_provider_only() {
    let text = EXAMPLE.replace(
        "    spec:\n      pools:",
        "    spec:\n      loadbalancing: {}\n      pools:",
    );
    let e = parse(&text).unwrap_err();
    assert!(e.hint.as_ref().unwrap().contains("beside `spec`"), "{e}");
    let text = EXAMPLE.replace(
        "      endpoint: kv\n",
        "    loadbalancing: {kind: DynamicLoadBalancer, version: v2, spec: {}}\n",
    );
    let e = refused(
        &text,
        "`loadbalancing` belongs to a provider",
        "    loadbalancing: {kind",
    );
    assert!(e.message.contains("clusters.etcd"), "{e}");
}

const V1: &str = "kind: Orb
version: v1
providers:
  kvm:
    kind: StaticProvider
    version: v0
    spec:
      remoteuser: orbiter
      pools:
        masters:
          - {id: first, hostname: master01, ip: 192.168.122.61}
          - {id: second, hostname: master02, ip: 192.168.122.62}
    loadbalancing:
      kind: DynamicLoadBalancer
      version: v1
      spec:
        masters:
          - ip: 192.168.122.10
            transport:
              - name: kubeapi
                sourceport: 6443
                whitelist: [0.0.0.0/0]
                destinations:
                  - {pool: masters, port: 6666, healthchecks: {protocol: https, path: /healthz, code: 200}}
";

#[test]
fn v1_migrates_to_v2() {
    let orb = parse(V1).unwrap();
    assert!(orb.needs_migration());
    let node = orb.providers["kvm"]
        .spec
        .model()
        .loadbalancing_node()
        .unwrap();
    assert_eq!(node.migrated_from.as_deref(), Some("v1"));
    let t = &node.spec.vips().next().unwrap().1.transport[0];
    assert_eq!((t.frontendport.value, t.backendport.value), (6443, 6666));
    assert_eq!(t.backendpools[0].value.as_str(), "masters");
    assert_eq!(t.healthchecks.path.as_ref().unwrap().value, "/healthz");
    assert!(!t.proxyprotocol);
    let text = orb.to_yaml();
    assert!(
        text.contains("version: v2") && text.contains("frontendport: 6443"),
        "{text}"
    );
    assert!(
        !text.contains("sourceport") && !text.contains("destinations"),
        "{text}"
    );
    let again = parse(&text).unwrap();
    assert!(!again.needs_migration());
    assert_eq!(again, orb);
}

#[test]
fn v0_migrates_with_the_vip_whitelist() {
    let text = V1
        .replace("version: v1\n      spec", "version: v0\n      spec")
        .replace(
            "          - ip: 192.168.122.10\n",
            "          - ip: 192.168.122.10\n            whitelist: [10.0.0.0/8]\n",
        )
        .replace("                whitelist: [0.0.0.0/0]\n", "")
        .replace(
            "{protocol: https, path: /healthz, code: 200}",
            "{protocol: '', path: '', code: 0}",
        );
    let orb = parse(&text).unwrap();
    let node = orb.providers["kvm"]
        .spec
        .model()
        .loadbalancing_node()
        .unwrap();
    assert_eq!(node.migrated_from.as_deref(), Some("v0"));
    let t = &node.spec.vips().next().unwrap().1.transport[0];
    assert_eq!(t.whitelist[0].value.to_string(), "10.0.0.0/8");
    assert!(
        t.healthchecks.is_default(),
        "Go's zero values mean no check: tcp"
    );
    assert_eq!(parse(&orb.to_yaml()).unwrap(), orb);
}

#[test]
fn migrations_refuse_what_v2_cannot_say() {
    let two_ports = V1.replace(
        "                  - {pool: masters, port: 6666",
        "                  - {pool: masters, port: 6667}\n                  - {pool: masters, port: 6666",
    );
    let e = parse(&two_ports).unwrap_err();
    assert!(e.message.contains("one backendport per transport"), "{e}");
    assert!(e.pos.is_some());
    let no_dest = V1.replace("                destinations:\n                  - {pool: masters, port: 6666, healthchecks: {protocol: https, path: /healthz, code: 200}}\n", "");
    assert!(
        parse(&no_dest)
            .unwrap_err()
            .message
            .contains("no destinations")
    );
    let in_v1 = V1.replace(
        "          - ip: 192.168.122.10\n",
        "          - ip: 192.168.122.10\n            whitelist: []\n",
    );
    assert!(
        parse(&in_v1)
            .unwrap_err()
            .message
            .contains("unknown field `whitelist`")
    );
}

#[test]
fn an_empty_loadbalancing_says_what_it_needs() {
    let text = EXAMPLE.replace(
        "    loadbalancing:\n      kind: DynamicLoadBalancer",
        "    loadbalancing:\n    x-kind: DynamicLoadBalancer",
    );
    assert!(parse(&text).is_err());
    let cut = EXAMPLE.find("    loadbalancing:").unwrap();
    let end = EXAMPLE.find("clusters:").unwrap();
    let text = format!(
        "{}    loadbalancing: null\n{}",
        &EXAMPLE[..cut],
        &EXAMPLE[end..]
    )
    .replace("      endpoint: kv\n", "");
    let e = parse(&text).unwrap_err();
    assert!(e.message.contains("needs kind, version and spec"), "{e}");
}
