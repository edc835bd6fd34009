//! What observation found: per provider the machines that exist, per machine whether and how it
//! answered, its agent and its node files. Plain data: produced by `observe`, read by `plan`.

use crate::machine::{MachineKey, MachineRef};
use crate::ssh::HostKey;
use node_protocol::NodeCurrent;
use orb_model::Id;
use std::collections::{BTreeMap, BTreeSet};

#[derive(Clone, Debug, Default)]
pub struct Observed {
    pub providers: BTreeMap<Id, ProviderObserved>,
}

#[derive(Clone, Debug, Default)]
pub struct ProviderObserved {
    pub machines: Vec<MachineObserved>,
    /// The provider itself could not be asked (e.g. the Local host is not usable).
    pub error: Option<String>,
    /// Packages the provider's own repository offers its machines (Local); `None` when the
    /// machines' apt sources decide.
    pub packages: Option<PackageCatalog>,
}

/// What a provider's package repository holds, read without changing it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PackageCatalog {
    /// Debian versions by package name.
    pub versions: BTreeMap<String, BTreeSet<String>>,
    /// Names this Orbiter offered already (all their versions the provider could find): asking
    /// again would change nothing, so the plan does not.
    pub asked: BTreeSet<String>,
}

impl PackageCatalog {
    pub fn has(&self, name: &str, version: &str) -> bool {
        self.versions.get(name).is_some_and(|v| v.contains(version))
    }
}

#[derive(Clone, Debug)]
pub struct MachineObserved {
    pub machine: MachineRef,
    pub reach: Reach,
    pub agent: Option<AgentObserved>,
    /// SHA-256 of the node-desired file on the machine (its content never travels back: it
    /// holds secrets).
    pub desired_sha256: Option<String>,
    /// The agent's node-current report, parsed.
    pub current: Option<NodeCurrent>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reach {
    /// Logged in with the maintenance key.
    Maintenance,
    /// Only the person's bootstrap key works: the maintenance key is not installed yet.
    Bootstrap,
    /// First contact: the key it offers is not pinned yet.
    NotPinned(HostKey),
    /// The machine offers another host key than the pinned one: nothing is done there.
    HostKeyChanged {
        expected: String,
        found: String,
        /// The key it offers now, when it could be scanned.
        offered: Option<HostKey>,
    },
    Unreachable(String),
    /// It answers, but no key Orbiter has logs in.
    AuthFailed(String),
}

impl Reach {
    pub fn logged_in(&self) -> bool {
        matches!(self, Reach::Maintenance | Reach::Bootstrap)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentObserved {
    /// `node-agent --version` minus the program name; empty when not installed.
    pub version: String,
    pub sha256: String,
    pub active: bool,
}

impl Observed {
    pub fn machine(&self, key: &MachineKey) -> Option<&MachineObserved> {
        self.providers
            .get(&key.provider)?
            .machines
            .iter()
            .find(|m| m.machine.key == *key)
    }

    pub fn machines(&self) -> impl Iterator<Item = &MachineObserved> {
        self.providers.values().flat_map(|p| p.machines.iter())
    }
}
