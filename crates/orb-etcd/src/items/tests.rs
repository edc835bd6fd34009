//! Items of a member: valid node-agent items, keys as secrets, the config's TLS settings.

use super::*;
use crate::tls;

fn doc(items: &[Item]) -> String {
    node_protocol::NodeDesired::new(1, items.to_vec()).render_for_machine()
}

fn file_of<'a>(items: &'a [Item], path: &str) -> &'a File {
    items
        .iter()
        .find_map(|i| match i {
            Item::File(f) if f.path == path => Some(f),
            _ => None,
        })
        .unwrap()
}

fn sample() -> tls::ClusterSecrets {
    tls::ClusterSecrets::ensure(
        "kv",
        None,
        &[
            ("lab.w-1".into(), "10.0.0.1".parse().unwrap()),
            ("a".into(), "10.0.0.1".parse().unwrap()),
        ],
        &[],
        &[],
    )
    .unwrap()
    .0
}

#[test]
fn items_are_valid_node_agent_items() {
    let s = sample();
    let pki = s.member_pki("lab.w-1", tls::PkiStage::Current).unwrap();
    let ic = initial_cluster([
        ("lab.w-1", "10.0.0.1".parse().unwrap()),
        ("lab.w-2", "10.0.0.2".parse().unwrap()),
    ]);
    let m = MemberConfig {
        name: "lab.w-1",
        ip: "10.0.0.1".parse().unwrap(),
        package_version: "3.4.23-4+b4",
        tuning: Tuning {
            heartbeatms: 100,
            electiontimeoutms: 1000,
            quotabytes: 1 << 31,
        },
        initial_cluster: &ic,
        initial_state: InitialState::New,
        pki: &pki,
    };
    let items = member_items("kv", &m);
    node_protocol::parse_desired(&doc(&items), "desired.yml").unwrap();
    node_protocol::parse_desired(&doc(&removed_items("kv")), "desired.yml").unwrap();
    // Mask first, the package after it, the unit last.
    assert_eq!(
        file_of(&items, paths::PACKAGED_UNIT).bytes(),
        Some(&b""[..])
    );
    assert!(matches!(&items[0], Item::File(_)));
    assert!(matches!(&items[1], Item::Package(p) if p.version == "3.4.23-4+b4"));
    assert!(
        matches!(items.last().unwrap(), Item::Unit(u) if u.restart_on[0] == paths::config("kv"))
    );
    // Keys are secrets (never recorded in Git), 0600; certificates are plain text.
    for f in items.iter().filter_map(|i| match i {
        Item::File(f) => Some(f),
        _ => None,
    }) {
        assert_eq!(f.path.ends_with(".key"), f.is_secret(), "{}", f.path);
        if f.is_secret() {
            assert_eq!(f.mode, "0600", "{}", f.path);
            assert!(
                f.bytes()
                    .is_some_and(|b| b.starts_with(b"-----BEGIN PRIVATE KEY"))
            );
        }
    }
    let record = node_protocol::NodeDesired::new(1, items.clone())
        .redacted(&|_| "hmac-sha256:00".into())
        .render()
        .unwrap();
    assert!(!record.contains("PRIVATE KEY"), "{record}");
    let cfg = render_config("kv", &m);
    assert!(cfg.contains(
        "initial-cluster: 'lab.w-1=https://10.0.0.1:2380,lab.w-2=https://10.0.0.2:2380'"
    ));
    assert!(cfg.contains("initial-cluster-state: 'new'"));
    assert!(cfg.contains("listen-client-urls: 'https://10.0.0.1:2379,https://127.0.0.1:2379'"));
    assert!(cfg.contains("etcd-server 3.4.23-4+b4"));
    assert!(!cfg.contains("PRIVATE"));
    // Peers trust the peer CA only, and read the CRL (no restart when it changes).
    assert!(
        cfg.contains("  trusted-ca-file: '/etc/orb-etcd/kv/pki/peer-ca.crt'\n#"),
        "{cfg}"
    );
    assert!(
        cfg.ends_with("PeerTLSInfo:\n  CRLFile: '/etc/orb-etcd/kv/pki/peer-crl.pem'\n"),
        "{cfg}"
    );
    let Some(Item::Unit(u)) = items.last() else {
        panic!()
    };
    assert!(!u.restart_on.iter().any(|p| p.ends_with("peer-crl.pem")));
    assert!(u.restart_on.iter().any(|p| p.ends_with("peer-ca.crt")));
    let crl_at = items
        .iter()
        .position(|i| matches!(i, Item::File(f) if f.path.ends_with("peer-crl.pem")))
        .unwrap();
    let cfg_at = items
        .iter()
        .position(|i| matches!(i, Item::File(f) if f.path == paths::config("kv")))
        .unwrap();
    assert!(crl_at < cfg_at, "the CRL exists before the config names it");
    assert_eq!(
        file_of(&items, &paths::pki_state("kv")).bytes(),
        Some(&b"trust 1 certs 1\n"[..])
    );
}

#[test]
fn version_change_changes_the_config_and_nothing_else_does_by_accident() {
    let s = sample();
    let pki = s.member_pki("a", tls::PkiStage::Current).unwrap();
    let mk = |v| MemberConfig {
        name: "a",
        ip: "10.0.0.1".parse().unwrap(),
        package_version: v,
        tuning: Tuning {
            heartbeatms: 100,
            electiontimeoutms: 1000,
            quotabytes: 1,
        },
        initial_cluster: "a=https://10.0.0.1:2380",
        initial_state: InitialState::New,
        pki: &pki,
    };
    assert_eq!(
        render_config("kv", &mk("3.4.23-4+b4")),
        render_config("kv", &mk("3.4.23-4+b4"))
    );
    assert_ne!(
        render_config("kv", &mk("3.4.23-4+b4")),
        render_config("kv", &mk("3.5.16-4"))
    );
}

#[test]
fn ipv6_urls() {
    let ip: IpAddr = "fd00::1".parse().unwrap();
    assert_eq!(peer_url(ip), "https://[fd00::1]:2380");
}
