//! The lab: the cluster's name, the two etcd versions, the certificates and the current
//! generation, and the node-agent items of one member built from them.

use node_protocol::Item;
use orb_etcd::items::{
    ClusterView, InitialState, MemberConfig, Tuning, initial_cluster, member_items,
};
use orb_etcd::tls::{Ca, CertPem, MemberCerts};
use orb_machines::Machine;
use std::net::IpAddr;

pub(crate) const OLD: &str = "3.4.23-4+b4";
pub(crate) const NEW: &str = "3.5.16-4";
pub(crate) const CLUSTER: &str = "kv";

/// What the scenario keeps between its phases.
pub(crate) struct Lab {
    pub(crate) ca: Ca,
    pub(crate) client: CertPem,
    pub(crate) certs: Vec<MemberCerts>,
    pub(crate) generation: u64,
}

impl Lab {
    /// The items of member `i` on `version`, in a cluster of `members`.
    pub(crate) fn items(
        &self,
        ms: &[Machine],
        i: usize,
        version: &str,
        members: &[usize],
        state: InitialState,
    ) -> Vec<Item> {
        let ic = initial_cluster(
            members
                .iter()
                .map(|&j| (ms[j].id(), IpAddr::V4(ms[j].ip()))),
        );
        let view = ClusterView {
            id: CLUSTER,
            ca_cert: &self.ca.pem.cert,
            client: &self.client,
        };
        let m = MemberConfig {
            name: ms[i].id(),
            ip: IpAddr::V4(ms[i].ip()),
            package_version: version,
            tuning: Tuning {
                heartbeatms: 100,
                electiontimeoutms: 1000,
                quotabytes: 1 << 31,
            },
            initial_cluster: &ic,
            initial_state: state,
            certs: &self.certs[i],
        };
        member_items(&view, &m)
    }
}
