//! Property tests of `Orb::parse` beyond `roundtrip.rs`: a document with every kind, edited at
//! random (insertions, deletions, duplicated, dropped and swapped lines), and YAML-like noise
//! never make it panic, and whatever it accepts renders into a file that reads back the same.
//! `fuzz/` (bench/fuzz.sh) runs the same property for millions of inputs.

use orb_model::Orb;
use proptest::prelude::*;

/// Every kind, every optional field, and a subtree in an old version.
const FULL: &str = r#"kind: Orb
version: v1
providers:
  lab:
    kind: StaticProvider
    version: v1
    spec:
      user: admin
      pools:
        masters:
          - {id: master-1, hostname: master-1.lab.example, ip: 10.17.0.11}
        workers:
          - {id: worker-1, hostname: worker-1, ip: 10.17.0.21}
          - {id: worker-2, hostname: worker-2, ip: 10.17.0.22}
          - {id: worker-3, hostname: worker-3, ip: "fd00::23"}
      keys:
        bootstrapkeyprivate: {encrypted: v1, path: lab.bootstrapkeyprivate, value: AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA}
      rebootrequired: [worker-1]
      replacementrequired: [worker-2]
    loadbalancing:
      kind: DynamicLoadBalancer
      version: v2
      spec:
        masters:
          - ip: 10.17.0.100
            transport:
              - {name: kvapi, frontendport: 12379, backendport: 2379, backendpools: [workers], whitelist: [10.0.0.0/8]}
              - name: web
                frontendport: 443
                backendport: 8443
                backendpools: [workers, masters]
                whitelist: []
                healthchecks: {protocol: https, path: /healthz, code: 204}
                proxyprotocol: true
  local:
    kind: LocalProvider
    version: v1
    spec:
      group: orbtest
      pools:
        extra: {nodes: 2}
  kvm:
    kind: StaticProvider
    version: v0
    spec:
      remoteuser: admin
      pools:
        masters:
          - {id: first, hostname: master01, ip: 192.168.122.61}
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
                destinations: [{pool: masters, port: 6666, healthchecks: {protocol: https, path: /healthz, code: 200}}]
clusters:
  kv:
    kind: EtcdCluster
    version: v1
    spec:
      provider: lab
      pool: workers
      nodes: 3
      version: 3.5.16
      tuning: {heartbeatms: 50, electiontimeoutms: 500, quotabytes: 4294967296}
      backup: {every: 6h, keep: 3, target: lab.master-1}
      endpoint: kvapi
software:
  base:
    kind: NodeSoftware
    version: v1
    spec:
      pools: [local.extra, lab.masters]
      items:
        - package: {name: jq, version: 1.6-2.1, held: false}
        - file: {path: /etc/motd, content: "managed by Orbiter\n"}
        - file: {path: /etc/app/token, secret: apitoken, mode: "0600"}
        - unit: {name: app.service, content: "[Service]\nExecStart=/bin/true\n", restart_on: [/etc/app/token]}
        - sysctl: {key: net.ipv4.ip_forward, value: "1"}
        - firewall: {allow: [{protocol: tcp, ports: ["22", "2379-2380"], sources: [10.0.0.0/8]}]}
      secrets:
        apitoken: {encrypted: v1, path: base.apitoken, value: AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA}
"#;

/// One edit at a relative position (per mille of the length) of the text.
#[derive(Clone, Debug)]
enum Edit {
    Insert(u16, String),
    Delete(u16, u8),
    DuplicateLine(u16),
    DropLine(u16),
    SwapWithNextLine(u16),
}

fn edit() -> impl Strategy<Value = Edit> {
    let at = 0u16..1000;
    prop_oneof![
        (at.clone(), "[ :,'\"\\-\\[\\]{}|>&*!#%@a-z0-9./\\n\\t]{1,8}")
            .prop_map(|(a, s)| Edit::Insert(a, s)),
        (at.clone(), any::<String>()).prop_map(|(a, s)| Edit::Insert(a, s)),
        (at.clone(), 1u8..40).prop_map(|(a, n)| Edit::Delete(a, n)),
        at.clone().prop_map(Edit::DuplicateLine),
        at.clone().prop_map(Edit::DropLine),
        at.prop_map(Edit::SwapWithNextLine),
    ]
}

fn boundary(s: &str, per_mille: u16) -> usize {
    let i = s.len() * usize::from(per_mille) / 1000;
    (0..=i).rev().find(|i| s.is_char_boundary(*i)).unwrap_or(0)
}

fn apply(text: &str, edits: &[Edit]) -> String {
    let mut s = text.to_owned();
    for e in edits {
        match e {
            Edit::Insert(at, ins) => s.insert_str(boundary(&s, *at), ins),
            Edit::Delete(at, n) => {
                let from = boundary(&s, *at);
                let to = (from + usize::from(*n)).min(s.len());
                let to = (to..=s.len()).find(|i| s.is_char_boundary(*i)).unwrap();
                s.replace_range(from..to, "");
            }
            Edit::DuplicateLine(at) | Edit::DropLine(at) | Edit::SwapWithNextLine(at) => {
                let mut lines: Vec<String> = s.lines().map(str::to_owned).collect();
                if lines.is_empty() {
                    continue;
                }
                let i = (lines.len() - 1) * usize::from(*at) / 1000;
                match e {
                    Edit::DuplicateLine(_) => lines.insert(i, lines[i].clone()),
                    Edit::DropLine(_) => drop(lines.remove(i)),
                    _ if i + 1 < lines.len() => lines.swap(i, i + 1),
                    _ => {}
                }
                s = lines.join("\n");
                s.push('\n');
            }
        }
    }
    s
}

/// No panic, and what is accepted renders into a file that reads back as the same Orb.
fn check(text: &str) -> Result<(), TestCaseError> {
    let Ok(orb) = Orb::parse(text, "orbiter.yml") else {
        return Ok(());
    };
    let rendered = orb.to_yaml();
    let back = Orb::parse(&rendered, "orbiter.yml").map_err(|e| {
        TestCaseError::fail(format!("renders into a refused file: {e}\n{rendered}"))
    })?;
    prop_assert_eq!(back, orb);
    Ok(())
}

#[test]
fn the_full_example_is_valid() {
    let orb = Orb::parse(FULL, "orbiter.yml").unwrap();
    assert!(orb.needs_migration());
    assert_eq!(
        (orb.providers.len(), orb.clusters.len(), orb.software.len()),
        (3, 1, 1)
    );
    check(FULL).unwrap();
}

proptest! {
    #[test]
    fn edited_documents_never_panic_and_what_is_accepted_round_trips(
        full in any::<bool>(),
        edits in proptest::collection::vec(edit(), 1..6),
    ) {
        let good = if full { FULL } else { include_str!("../../../examples/static-lab/orbiter.yml") };
        check(&apply(good, &edits))?;
    }

    #[test]
    fn yaml_like_text_never_panics(
        text in "(kind: Orb\nversion: v1\n)?[ :,'\"\\-\\[\\]{}|>&*!#a-z0-9./\\n]{0,300}",
    ) {
        check(&text)?;
    }
}
