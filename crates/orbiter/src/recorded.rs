//! What Orbiter recorded in its own repository files that planning needs, and the one
//! judgement made from it everywhere: whether a machine is ready.

use crate::machine::MachineKey;
use crate::observed::MachineObserved;
use crate::ssh::HostKey;
use node_protocol::NodeDesired;
use orb_model::Id;
use std::collections::{BTreeMap, BTreeSet};

#[derive(Clone, Debug, Default)]
pub struct Recorded {
    pub pinned: BTreeMap<MachineKey, HostKey>,
    /// Providers whose maintenance key pair exists (generated or given).
    pub maintenance_keys: BTreeSet<Id>,
    /// The node-desired documents last written, by machine, in their record form (secrets
    /// as digests).
    pub node_desired: BTreeMap<MachineKey, NodeDesired>,
}

/// The agent reports the recorded generation and every item in sync.
pub fn machine_ready(m: &MachineObserved, recorded: &Recorded) -> bool {
    let Some(doc) = recorded.node_desired.get(&m.machine.key) else {
        return false;
    };
    m.current
        .as_ref()
        .is_some_and(|c| c.ready && c.generation == Some(doc.generation))
}
