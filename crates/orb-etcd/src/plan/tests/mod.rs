//! Planner scenarios against a simulated pool: machines whose node agents apply the planned
//! items at once, and an etcd membership that follows the steps with etcd's rules (an added
//! member counts toward quorum before it starts; health needs a quorum of started members).
//! After every applied plan the simulator checks that quorum was never lost.
//!
//! This file holds the shared fixtures (spec, config and package readers, a bootstrapped
//! simulator); `sim` is the simulator; the other modules are the scenarios, by topic.

use super::*;
use crate::items::paths;
use crate::items::peer_url;
use crate::observe::MemberEntry;
use crate::observe::OnDisk;
use crate::record::MemberRecord;
use crate::tls::ClusterSecrets;
use node_protocol::Item;
use orb_model::Id;
use orb_model::kinds::etcd_cluster::EtcdTuning;
use orb_model::located::Located;

const OLD: &str = "3.4.23-4+b4";
const NEW: &str = "3.5.16-4";
const GRACE: u64 = 300;
const CLIENT_GRACE: u64 = 60;

mod bootstrap;
mod disruption;
mod failures;
mod forged;
mod membership;
mod outputs;
mod pki;
mod sim;
mod upgrades;

use sim::{Forge, Sim, SimMachine, SimMember};

fn spec(nodes: u32, version: &str) -> EtcdCluster {
    EtcdCluster {
        provider: Located::new(Id::parse("lab").unwrap()),
        pool: Located::new(Id::parse("etcd").unwrap()),
        nodes: Located::new(nodes),
        version: version.into(),
        tuning: EtcdTuning::default(),
        backup: None,
        users: Vec::new(),
        rotatecerts: None,
        endpoint: None,
    }
}

/// What the engine's `generate` step does: [`ClusterSecrets::ensure`] for these machines.
fn ensure_secrets(
    cluster: &str,
    have: Option<ClusterSecrets>,
    members: &[(String, IpAddr)],
) -> Result<(ClusterSecrets, bool), crate::tls::TlsError> {
    ClusterSecrets::ensure(cluster, have, members, &[], &[])
}

fn config_of(items: &[Item]) -> Option<OnDisk> {
    let content = items.iter().find_map(|i| match i {
        Item::File(f) if f.path == paths::config("kv") => f.content.as_ref().map(|c| c.0.as_str()),
        _ => None,
    })?;
    let mut d = OnDisk::default();
    for l in content.lines() {
        let Some((k, v)) = l.split_once(": ") else {
            if let Some(rest) = l.split("etcd-server ").nth(1) {
                d.package = rest.split(". Edits").next().unwrap_or("").to_owned();
            }
            continue;
        };
        let v = v.trim_matches('\'').to_owned();
        match k {
            "initial-cluster" => d.initial_cluster = v,
            "initial-cluster-state" => d.initial_state = v,
            "heartbeat-interval" => d.heartbeatms = v.parse().ok(),
            "election-timeout" => d.electiontimeoutms = v.parse().ok(),
            "quota-backend-bytes" => d.quotabytes = v.parse().ok(),
            _ => {}
        }
    }
    Some(d)
}

fn pki_of(items: &[Item]) -> Option<String> {
    items.iter().find_map(|i| match i {
        Item::File(f) if f.path == paths::pki_state("kv") => {
            f.content.as_ref().map(|c| c.0.trim().to_owned())
        }
        _ => None,
    })
}

fn package_of(items: &[Item]) -> Option<String> {
    items.iter().find_map(|i| match i {
        Item::Package(p) if p.name == "etcd-server" => Some(p.version.clone()),
        _ => None,
    })
}

fn bootstrapped(machines: usize, nodes: u32) -> Sim {
    let mut s = Sim::new(machines, nodes);
    s.converge(20);
    s
}
