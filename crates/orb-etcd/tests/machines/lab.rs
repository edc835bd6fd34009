//! The lab: the cluster's name, the two etcd versions, the certificate bundle, each member's
//! place in a rotation and the current generation, and the node-agent items of one member
//! built from them.

use node_protocol::Item;
use orb_etcd::items::{InitialState, MemberConfig, Tuning, initial_cluster, member_items};
use orb_etcd::tls::{ClusterSecrets, PkiStage};
use orb_machines::Machine;
use std::collections::BTreeMap;
use std::net::IpAddr;

pub(crate) const OLD: &str = "3.4.23-4+b4";
pub(crate) const NEW: &str = "3.5.16-4";
pub(crate) const CLUSTER: &str = "kv";

/// What the scenario keeps between its phases.
pub(crate) struct Lab {
    pub(crate) secrets: ClusterSecrets,
    /// Members' stages during a rotation (absent: the current generation).
    pub(crate) stages: BTreeMap<usize, PkiStage>,
    pub(crate) generation: u64,
}

impl Lab {
    /// The bundle for every machine of `ms` (and the users of the access phase), as Orbiter
    /// issues it.
    pub(crate) fn new(ms: &[Machine]) -> Lab {
        let (secrets, _) =
            ClusterSecrets::ensure(CLUSTER, None, &Self::names(ms), &users(), &[]).unwrap();
        Lab {
            secrets,
            stages: BTreeMap::new(),
            generation: 1,
        }
    }

    pub(crate) fn names(ms: &[Machine]) -> Vec<(String, IpAddr)> {
        ms.iter()
            .map(|m| (m.id().to_owned(), IpAddr::V4(m.ip())))
            .collect()
    }

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
        let stage = self.stages.get(&i).copied().unwrap_or(PkiStage::Current);
        let pki = self
            .secrets
            .member_pki(ms[i].id(), stage)
            .unwrap_or_else(|| panic!("no certificates for {}", ms[i].id()));
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
            pki: &pki,
        };
        member_items(CLUSTER, &m)
    }
}

/// The users of the access phase.
pub(crate) fn users() -> Vec<String> {
    vec!["app".into()]
}
