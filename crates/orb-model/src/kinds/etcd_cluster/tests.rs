//! Reading and checking `EtcdCluster`: defaults, tuning, backups, users, the endpoint.

use super::*;
use crate::Orb;
use crate::registry::ClusterSpec;

const BASE: &str = "kind: Orb
version: v1
providers:
  lab:
    kind: StaticProvider
    version: v1
    spec:
      pools:
        workers:
          - {id: w-1, hostname: w-1, ip: 10.0.0.1}
          - {id: w-2, hostname: w-2, ip: 10.0.0.2}
          - {id: w-3, hostname: w-3, ip: 10.0.0.3}
        spare:
          - {id: s-1, hostname: s-1, ip: 10.0.0.9}
clusters:
  kv:
    kind: EtcdCluster
    version: v1
    spec:
      provider: lab
      pool: workers
      nodes: 3
      version: 3.4.23
";

fn parse(extra: &str) -> Result<EtcdCluster, crate::ModelError> {
    let orb = Orb::parse(&format!("{BASE}{extra}"), "orbiter.yml")?;
    let ClusterSpec::Etcd(e) = &orb.clusters.values().next().unwrap().spec;
    Ok(e.clone())
}

fn line_of(extra: &str, needle: &str) -> u64 {
    format!("{BASE}{extra}")
        .lines()
        .position(|l| l.contains(needle))
        .unwrap() as u64
        + 1
}

#[test]
fn defaults_when_absent_and_not_written_back() {
    let e = parse("").unwrap();
    assert_eq!(e.tuning, EtcdTuning::default());
    assert_eq!(e.tuning.quotabytes.value, 2_147_483_648);
    assert!(e.backup.is_none());
    let orb = Orb::parse(BASE, "orbiter.yml").unwrap();
    let yaml = orb.to_yaml();
    assert!(!yaml.contains("tuning"), "{yaml}");
    assert_eq!(Orb::parse(&yaml, "orbiter.yml").unwrap(), orb);
}

#[test]
fn tuning_and_backup_parse_and_round_trip() {
    let extra = "      tuning: {heartbeatms: 50, electiontimeoutms: 500}
      backup: {every: 6h, keep: 3, target: lab.s-1}
";
    let e = parse(extra).unwrap();
    assert_eq!(e.tuning.heartbeatms.value, 50);
    assert_eq!(e.tuning.electiontimeoutms.value, 500);
    assert_eq!(e.tuning.quotabytes.value, DEFAULT_QUOTA_BYTES);
    let b = e.backup.unwrap();
    assert_eq!(b.every_secs(), Some(6 * 3600));
    assert_eq!(b.keep.value, 3);
    assert_eq!(b.target_parts(), Some(("lab", "s-1")));
    let orb = Orb::parse(&format!("{BASE}{extra}"), "orbiter.yml").unwrap();
    assert_eq!(Orb::parse(&orb.to_yaml(), "orbiter.yml").unwrap(), orb);
}

#[test]
fn election_timeout_must_be_five_heartbeats() {
    let extra = "      tuning: {heartbeatms: 300, electiontimeoutms: 1000}\n";
    let e = parse(extra).unwrap_err();
    assert_eq!(e.pos.unwrap().line, line_of(extra, "electiontimeoutms"));
    assert!(e.message.contains("electiontimeoutms"), "{e}");
    assert!(e.hint.unwrap().contains("1500"), "hint names the minimum");
}

#[test]
fn bad_tuning_values_name_the_field() {
    for (extra, field) in [
        ("      tuning: {heartbeatms: 0}\n", "heartbeatms"),
        (
            "      tuning: {electiontimeoutms: 60000}\n",
            "electiontimeoutms",
        ),
        ("      tuning: {quotabytes: 0}\n", "quotabytes"),
        ("      tuning: {quotabytes: 9999999999999}\n", "quotabytes"),
    ] {
        let e = parse(extra).unwrap_err();
        assert!(e.message.contains(field), "{extra}: {e}");
        assert_eq!(e.pos.unwrap().line, line_of(extra, "tuning"), "{extra}");
        assert!(e.hint.is_some(), "{extra}");
    }
}

#[test]
fn unknown_tuning_field_is_refused() {
    let e = parse("      tuning: {heartbeat: 10}\n").unwrap_err();
    assert!(e.message.contains("unknown field `heartbeat`"), "{e}");
}

#[test]
fn bad_backup_values() {
    for (extra, needle) in [
        ("      backup: {every: 6, target: lab.s-1}\n", "no unit"),
        (
            "      backup: {every: xh, target: lab.s-1}\n",
            "whole number",
        ),
        ("      backup: {every: 0m, target: lab.s-1}\n", "zero"),
        (
            "      backup: {every: 1h, keep: 0, target: lab.s-1}\n",
            "keep",
        ),
        (
            "      backup: {every: 1h, target: s-1}\n",
            "provider.machine",
        ),
        (
            "      backup: {every: 1h, target: lbb.s-1}\n",
            "provider `lbb`",
        ),
        (
            "      backup: {every: 1h, target: lab.s-2}\n",
            "no machine `s-2`",
        ),
    ] {
        let e = parse(extra).unwrap_err();
        assert!(e.message.contains(needle), "{extra}: {e}");
        assert!(e.pos.is_some(), "{extra}");
    }
}

#[test]
fn users_and_rotation_request_parse_and_round_trip() {
    let extra = "      users:\n        - {name: app, prefix: /app/}\n        - {name: billing-2, prefix: /billing/v2/}\n      rotatecerts: 2026-05-01T10:00:00Z\n";
    let e = parse(extra).unwrap();
    assert_eq!(e.users.len(), 2);
    assert_eq!(e.users[1].prefix.value, "/billing/v2/");
    assert_eq!(e.rotatecerts.unwrap().value, "2026-05-01T10:00:00Z");
    let orb = Orb::parse(&format!("{BASE}{extra}"), "orbiter.yml").unwrap();
    assert_eq!(Orb::parse(&orb.to_yaml(), "orbiter.yml").unwrap(), orb);
    assert!(
        !Orb::parse(BASE, "orbiter.yml")
            .unwrap()
            .to_yaml()
            .contains("users")
    );
}

#[test]
fn bad_users_and_rotation_requests_point_at_the_field() {
    for (extra, needle, at) in [
        (
            "      users:\n        - {name: App, prefix: /app/}\n",
            "not a valid etcd user name",
            "App",
        ),
        (
            "      users:\n        - {name: orbiter, prefix: /app/}\n",
            "managed by Orbiter itself",
            "orbiter",
        ),
        (
            "      users:\n        - {name: app, prefix: /a/}\n        - {name: app, prefix: /b/}\n",
            "listed twice",
            "/b/",
        ),
        (
            "      users:\n        - {name: app, prefix: /app}\n",
            "must start and end with `/`",
            "/app}",
        ),
        (
            "      users:\n        - {name: app, prefix: app/}\n",
            "must start and end with `/`",
            "app/}",
        ),
        (
            "      users:\n        - {name: app, prefix: '/a b/'}\n",
            "must start and end with `/`",
            "a b",
        ),
        ("      rotatecerts: yesterday\n", "rotatecerts", "yesterday"),
    ] {
        let e = parse(extra).unwrap_err();
        assert!(e.message.contains(needle), "{extra}: {e}");
        assert_eq!(e.pos.unwrap().line, line_of(extra, at), "{extra}: {e}");
        assert!(e.hint.is_some(), "{extra}");
    }
    let e = parse("      users:\n        - {name: app}\n").unwrap_err();
    assert!(e.message.contains("prefix"), "{e}");
}

#[test]
fn durations() {
    assert_eq!(parse_duration("30s"), Ok(30));
    assert_eq!(parse_duration("15m"), Ok(900));
    assert_eq!(parse_duration("1d"), Ok(86_400));
    assert!(parse_duration("").is_err());
    assert!(parse_duration("h").is_err());
    assert!(parse_duration("-1h").is_err());
    assert!(parse_duration("99999999999999999d").is_err());
}

const LB: &str = "    loadbalancing:
      kind: DynamicLoadBalancer
      version: v2
      spec:
        spare:
          - ip: 10.0.0.50
            transport:
              - {name: kv, frontendport: 2379, backendport: 2379, backendpools: [workers]}
              - {name: web, frontendport: 80, backendport: 8080, backendpools: [spare]}
";

fn with_endpoint(lb: &str, endpoint: &str) -> String {
    BASE.replace("clusters:\n", &format!("{lb}clusters:\n"))
        + &format!("      endpoint: {endpoint}\n")
}

#[test]
fn endpoint_names_a_transport_to_the_members() {
    let orb = Orb::parse(&with_endpoint(LB, "kv"), "orbiter.yml").unwrap();
    let ClusterSpec::Etcd(e) = &orb.clusters["kv"].spec;
    let t = orb
        .transport(e.endpoint.as_ref().unwrap().value.as_str())
        .unwrap();
    assert_eq!(
        (t.ip.to_string(), t.transport.frontendport.value),
        ("10.0.0.50".into(), 2379)
    );
    assert_eq!(Orb::parse(&orb.to_yaml(), "orbiter.yml").unwrap(), orb);
    for (lb, endpoint, needle, hint) in [
        (
            LB.to_owned(),
            "kw",
            "not a transport of the Orb",
            "did you mean `kv`?",
        ),
        (
            LB.to_owned(),
            "web",
            "sends to lab.spare, not to the cluster's pool `lab.workers`",
            "backendpools",
        ),
        (
            LB.replace("backendport: 2379", "backendport: 2380"),
            "kv",
            "sends to port 2380",
            "backendport: 2379",
        ),
        (
            LB.replace(
                "backendpools: [workers]}",
                "backendpools: [workers], proxyprotocol: true}",
            ),
            "kv",
            "PROXY protocol",
            "proxyprotocol",
        ),
    ] {
        let text = with_endpoint(&lb, endpoint);
        let e = Orb::parse(&text, "orbiter.yml").unwrap_err();
        assert!(e.message.contains(needle), "{e}");
        assert!(e.message.contains("endpoint"), "{e}");
        assert_eq!(e.pos.unwrap().line as usize, text.lines().count(), "{e}");
        assert!(e.hint.as_deref().unwrap().contains(hint), "{e}");
    }
}
