//! `LocalProvider`: Debian machines that Orbiter itself boots on the host it runs on
//! (systemd-nspawn, see the orb-machines crate). Pools have a size, not a list: scaling is real.

use crate::id::Id;
use crate::located::Located;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct LocalProvider {
    /// Name of the machine group on the host; defaults to the provider id. Two Orbs on one
    /// host need different groups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<Id>,
    pub pools: BTreeMap<Id, LocalPool>,
    /// Machines (ids as in `orbctl node list`) to reboot once; Orbiter clears an entry when done.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rebootrequired: Vec<Located<Id>>,
    /// Machines to replace by a fresh one; Orbiter clears an entry when done.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replacementrequired: Vec<Located<Id>>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct LocalPool {
    pub nodes: Located<u32>,
}
