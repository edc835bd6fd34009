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
//! each member runs), because every change restarts that member. The one file that changes
//! on every member at once is the peer CRL: etcd reads it on each incoming peer connection,
//! so it is no restart trigger.
//!
//! PKI on the machine (`/etc/orb-etcd/<cluster>/pki/`): `ca.crt` (the client CAs trusted,
//! one or two during a rotation), `peer-ca.crt` (the peer CAs trusted), `peer-crl.pem`,
//! `server.crt/key`, `peer.crt/key`, `client.crt/key` (Orbiter's, for the steps and the
//! observation) and `state` (the PKI generation label, see `tls::PkiStage`).

use crate::tls::{MemberPki, SecretPem};
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
    /// `ca.crt`, `peer-ca.crt`, `peer-crl.pem`, `server.crt`, `server.key`, `peer.crt`,
    /// `peer.key`, `client.crt`, `client.key`.
    pub fn pki_file(cluster: &str, file: &str) -> String {
        format!("/etc/orb-etcd/{cluster}/pki/{file}")
    }
    /// One line naming the PKI generation of the files beside it (`tls::PkiStage::label`):
    /// the observation compares it with what the planner rolled.
    pub fn pki_state(cluster: &str) -> String {
        format!("/etc/orb-etcd/{cluster}/pki/state")
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
    /// Trust, certificates and keys at the member's stage of the PKI.
    pub pki: &'a MemberPki<'a>,
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
\x20 trusted-ca-file: '{pca}'\n\
# etcd's config file has no key for the peer CRL; its TLS settings underneath take it.\n\
PeerTLSInfo:\n\
\x20 CRLFile: '{crl}'\n",
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
        pca = pki("peer-ca.crt"),
        crl = pki("peer-crl.pem"),
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

/// Items making the machine member `m` of cluster `id`, in the order the agent applies them.
pub fn member_items(id: &str, m: &MemberConfig<'_>) -> Vec<Item> {
    let pki = |f: &str| paths::pki_file(id, f);
    let p = m.pki;
    // Not the server certificate: etcd (3.2 and later) reads it again for every client
    // connection, so a new one (an endpoint VIP added to its names) needs no restart, and
    // a change that reaches every member at once restarts none of them.
    let restart_on: Vec<String> = [
        paths::config(id),
        pki("ca.crt"),
        pki("peer-ca.crt"),
        pki("peer.crt"),
        pki("peer.key"),
        paths::pki_state(id),
    ]
    .into();
    let plain = |path: String, content: &str| file(path, content, "0644", "root", "root");
    vec![
        // Before the package: the packaged instance must never start.
        file(paths::PACKAGED_UNIT.to_owned(), "", "0644", "root", "root"),
        Item::package("etcd-server", m.package_version),
        Item::package("etcd-client", m.package_version),
        dir("/etc/orb-etcd".to_owned(), "0755", "root"),
        dir(paths::dir(id), "0750", "etcd"),
        dir(paths::pki(id), "0750", "etcd"),
        plain(pki("ca.crt"), &p.client_trust),
        plain(pki("peer-ca.crt"), &p.peer_trust),
        // Before the config that names it: etcd refuses peers when the file is missing.
        plain(pki("peer-crl.pem"), p.peer_crl),
        plain(pki("server.crt"), &p.certs.server.cert),
        key_file(pki("server.key"), &p.certs.server.key, "etcd"),
        plain(pki("peer.crt"), &p.certs.peer.cert),
        key_file(pki("peer.key"), &p.certs.peer.key, "etcd"),
        plain(pki("client.crt"), &p.client.cert),
        key_file(pki("client.key"), &p.client.key, "root"),
        plain(paths::pki_state(id), &format!("{}\n", p.label)),
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
        reload_on: Vec::new(),
    })
}

/// Items for a machine that stopped being a member: the unit stays defined but stopped and
/// disabled. Data, config and keys are not items (the agent never deletes); the
/// [`crate::steps::EtcdStep::WipeMember`] step removes them once the member is out of the cluster.
pub fn removed_items(cluster: &str) -> Vec<Item> {
    vec![unit(cluster, false, Vec::new())]
}

#[cfg(test)]
mod tests;
