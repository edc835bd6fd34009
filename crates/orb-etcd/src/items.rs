//! The node-agent items that make a machine an etcd member, and the ones left when it stops
//! being one.
//!
//! Found on real machines (Debian bookworm 3.4.23, trixie 3.5.16): installing etcd-server
//! enables and starts the packaged `etcd.service` at once, a single-member cluster on
//! 127.0.0.1:2379/2380 with data in /var/lib/etcd/default. An empty unit file at
//! /etc/systemd/system/etcd.service masks it *before* the package arrives, so that instance
//! never starts (deb-systemd-invoke refuses a masked unit, the install still succeeds). The
//! member runs as our own unit with our own config and data directory; `Conflicts=` stops a
//! packaged instance that was started before Orbiter took the machine over.
//!
//! A member's config only changes when the planner decides it should (the record keeps what
//! each member runs), because every change restarts that member.

use crate::tls::{CertPem, MemberCerts, SecretPem};
use node_protocol::{Directory, File, FileSecret, Item, SecretBytes, Unit};
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

pub const CLIENT_PORT: u16 = 2379;
pub const PEER_PORT: u16 = 2380;

/// Where a cluster's files live on a machine. One cluster per machine: the ports are fixed.
pub mod paths {
    pub fn dir(cluster: &str) -> String {
        format!("/etc/orb-etcd/{cluster}")
    }
    pub fn pki(cluster: &str) -> String {
        format!("/etc/orb-etcd/{cluster}/pki")
    }
    pub fn config(cluster: &str) -> String {
        format!("/etc/orb-etcd/{cluster}/etcd.yml")
    }
    pub fn data(cluster: &str) -> String {
        format!("/var/lib/etcd/orb-{cluster}")
    }
    pub fn unit(cluster: &str) -> String {
        format!("orb-etcd-{cluster}.service")
    }
    /// `ca.crt`, `server.crt`, `server.key`, `peer.crt`, `peer.key`, `client.crt`, `client.key`.
    pub fn pki_file(cluster: &str, file: &str) -> String {
        format!("/etc/orb-etcd/{cluster}/pki/{file}")
    }
    /// The packaged unit, masked by an empty file.
    pub const PACKAGED_UNIT: &str = "/etc/systemd/system/etcd.service";
}

/// Raft timing and quota a member runs with.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tuning {
    pub heartbeatms: u32,
    pub electiontimeoutms: u32,
    pub quotabytes: u64,
}

impl From<&orb_model::kinds::etcd_cluster::EtcdTuning> for Tuning {
    fn from(t: &orb_model::kinds::etcd_cluster::EtcdTuning) -> Self {
        Tuning {
            heartbeatms: t.heartbeatms.value,
            electiontimeoutms: t.electiontimeoutms.value,
            quotabytes: t.quotabytes.value,
        }
    }
}

/// What all members of a cluster share.
#[derive(Clone, Debug)]
pub struct ClusterView<'a> {
    pub id: &'a str,
    pub ca_cert: &'a str,
    /// The client certificate etcdctl uses on every member machine (Orbiter's steps run there).
    pub client: &'a CertPem,
}

/// `new` for the members that bootstrap a cluster, `existing` for one added to it later.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum InitialState {
    New,
    Existing,
}

/// One member's configuration.
#[derive(Clone, Debug)]
pub struct MemberConfig<'a> {
    pub name: &'a str,
    pub ip: IpAddr,
    /// The full Debian version of etcd-server and etcd-client, e.g. `3.4.23-4+b4`.
    pub package_version: &'a str,
    pub tuning: Tuning,
    /// `name=peer-url` pairs as etcd's `initial-cluster` wants them (read only at first start).
    pub initial_cluster: &'a str,
    pub initial_state: InitialState,
    pub certs: &'a MemberCerts,
}

pub fn peer_url(ip: IpAddr) -> String {
    url(ip, PEER_PORT)
}

pub fn client_url(ip: IpAddr) -> String {
    url(ip, CLIENT_PORT)
}

fn url(ip: IpAddr, port: u16) -> String {
    match ip {
        IpAddr::V4(a) => format!("https://{a}:{port}"),
        IpAddr::V6(a) => format!("https://[{a}]:{port}"),
    }
}

/// `initial-cluster` for these members, in the given order.
pub fn initial_cluster<'a>(members: impl IntoIterator<Item = (&'a str, IpAddr)>) -> String {
    members
        .into_iter()
        .map(|(n, ip)| format!("{n}={}", peer_url(ip)))
        .collect::<Vec<_>>()
        .join(",")
}

/// etcd's YAML config file. Holds no secret (keys are separate files). The first line names the
/// package version, so an upgrade changes the file and the agent restarts the member on the new
/// binary (the packaged unit that would otherwise be restarted by dpkg is masked).
pub fn render_config(cluster: &str, m: &MemberConfig<'_>) -> String {
    let pki = |f: &str| paths::pki_file(cluster, f);
    let loopback = match m.ip {
        IpAddr::V4(_) => "https://127.0.0.1",
        IpAddr::V6(_) => "https://[::1]",
    };
    format!(
        "# Managed by Orbiter (cluster {cluster}); etcd-server {version}. Edits are overwritten.\n\
name: '{name}'\n\
data-dir: '{data}'\n\
listen-peer-urls: '{peer}'\n\
listen-client-urls: '{client},{loopback}:{cport}'\n\
advertise-client-urls: '{client}'\n\
initial-advertise-peer-urls: '{peer}'\n\
initial-cluster: '{ic}'\n\
initial-cluster-state: '{state}'\n\
initial-cluster-token: 'orb-{cluster}'\n\
heartbeat-interval: {hb}\n\
election-timeout: {el}\n\
quota-backend-bytes: {quota}\n\
auto-compaction-mode: 'periodic'\n\
auto-compaction-retention: '1h'\n\
logger: 'zap'\n\
log-outputs: ['stderr']\n\
client-transport-security:\n\
\x20 cert-file: '{scrt}'\n\
\x20 key-file: '{skey}'\n\
\x20 client-cert-auth: true\n\
\x20 trusted-ca-file: '{ca}'\n\
peer-transport-security:\n\
\x20 cert-file: '{pcrt}'\n\
\x20 key-file: '{pkey}'\n\
\x20 client-cert-auth: true\n\
\x20 trusted-ca-file: '{ca}'\n",
        version = m.package_version,
        name = m.name,
        data = paths::data(cluster),
        peer = peer_url(m.ip),
        client = client_url(m.ip),
        cport = CLIENT_PORT,
        ic = m.initial_cluster,
        state = match m.initial_state {
            InitialState::New => "new",
            InitialState::Existing => "existing",
        },
        hb = m.tuning.heartbeatms,
        el = m.tuning.electiontimeoutms,
        quota = m.tuning.quotabytes,
        scrt = pki("server.crt"),
        skey = pki("server.key"),
        pcrt = pki("peer.crt"),
        pkey = pki("peer.key"),
        ca = pki("ca.crt"),
    )
}

/// The member's systemd unit. `Type=notify`: etcd reports ready once it serves, so "active"
/// means joined. `Conflicts=etcd.service` stops a packaged instance holding the ports.
pub fn render_unit(cluster: &str) -> String {
    format!(
        "[Unit]\n\
Description=etcd member of Orbiter cluster {cluster}\n\
Documentation=man:etcd\n\
After=network-online.target\n\
Wants=network-online.target\n\
Conflicts=etcd.service\n\
\n\
[Service]\n\
Type=notify\n\
User=etcd\n\
ExecStart=/usr/bin/etcd --config-file {config}\n\
Restart=on-failure\n\
RestartSec=2s\n\
TimeoutStartSec=180\n\
LimitNOFILE=65536\n\
\n\
[Install]\n\
WantedBy=multi-user.target\n",
        config = paths::config(cluster),
    )
}

fn file(path: String, content: &str, mode: &str, owner: &str, group: &str) -> Item {
    Item::File(File::text(path, content, mode).owned_by(owner, group))
}

/// A private key: written to the machine, recorded in the repository only as a digest.
fn key_file(path: String, pem: &SecretPem, owner: &str) -> Item {
    let value = FileSecret::Value(SecretBytes::new(pem.expose().as_bytes().to_vec()));
    Item::File(File::secret(path, value, "0600").owned_by(owner, owner))
}

fn dir(path: String, mode: &str, group: &str) -> Item {
    Item::Directory(Directory::new(path, mode, "root", group))
}

/// Items making the machine member `m` of cluster `c`, in the order the agent applies them.
pub fn member_items(c: &ClusterView<'_>, m: &MemberConfig<'_>) -> Vec<Item> {
    let id = c.id;
    let pki = |f: &str| paths::pki_file(id, f);
    let restart_on: Vec<String> = [
        paths::config(id),
        pki("ca.crt"),
        pki("server.crt"),
        pki("server.key"),
        pki("peer.crt"),
        pki("peer.key"),
    ]
    .into();
    vec![
        // Before the package: the packaged instance must never start.
        file(paths::PACKAGED_UNIT.to_owned(), "", "0644", "root", "root"),
        Item::package("etcd-server", m.package_version),
        Item::package("etcd-client", m.package_version),
        dir("/etc/orb-etcd".to_owned(), "0755", "root"),
        dir(paths::dir(id), "0750", "etcd"),
        dir(paths::pki(id), "0750", "etcd"),
        file(pki("ca.crt"), c.ca_cert, "0644", "root", "root"),
        file(
            pki("server.crt"),
            &m.certs.server.cert,
            "0644",
            "root",
            "root",
        ),
        key_file(pki("server.key"), &m.certs.server.key, "etcd"),
        file(pki("peer.crt"), &m.certs.peer.cert, "0644", "root", "root"),
        key_file(pki("peer.key"), &m.certs.peer.key, "etcd"),
        file(pki("client.crt"), &c.client.cert, "0644", "root", "root"),
        key_file(pki("client.key"), &c.client.key, "root"),
        file(
            paths::config(id),
            &render_config(id, m),
            "0640",
            "root",
            "etcd",
        ),
        unit(id, true, restart_on),
    ]
}

fn unit(cluster: &str, on: bool, restart_on: Vec<String>) -> Item {
    Item::Unit(Unit {
        name: paths::unit(cluster),
        content: Some(render_unit(cluster).into()),
        dropins: Default::default(),
        enabled: Some(on),
        active: Some(on),
        restart_on,
    })
}

/// Items for a machine that stopped being a member: the unit stays defined but stopped and
/// disabled. Data, config and keys are not items (the agent never deletes); the
/// [`crate::steps::EtcdStep::WipeMember`] step removes them once the member is out of the cluster.
pub fn removed_items(cluster: &str) -> Vec<Item> {
    vec![unit(cluster, false, Vec::new())]
}

#[cfg(test)]
mod tests {
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

    fn sample() -> (tls::Ca, tls::CertPem, MemberCerts) {
        let ca = tls::generate_ca("kv").unwrap();
        let client = tls::client_cert(&ca, "orbiter").unwrap();
        let m = tls::member_certs(&ca, "lab.w-1", "10.0.0.1".parse().unwrap()).unwrap();
        (ca, client, m)
    }

    #[test]
    fn items_are_valid_node_agent_items() {
        let (ca, client, certs) = sample();
        let c = ClusterView {
            id: "kv",
            ca_cert: &ca.pem.cert,
            client: &client,
        };
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
            certs: &certs,
        };
        let items = member_items(&c, &m);
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
    }

    #[test]
    fn version_change_changes_the_config_and_nothing_else_does_by_accident() {
        let (_, _, certs) = sample();
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
            certs: &certs,
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
}
