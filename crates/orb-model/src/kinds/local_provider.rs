//! `LocalProvider`: Debian machines that Orbiter itself boots on the host it runs on
//! (systemd-nspawn, see the orb-machines crate). Pools have a size, not a list: scaling is real.

use crate::id::Id;
use crate::kinds::MachineFlag;
use crate::kinds::ProviderModel;
use crate::kinds::load_balancer::DynamicLoadBalancer;
use crate::located::Located;
use crate::node::Node;
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
    /// VIPs and their ports; read and written beside `spec` by `orb.rs`. The machines' subnet
    /// is the group's bridge, known only on the host, so Orbiter checks the VIPs against it.
    #[serde(skip)]
    pub loadbalancing: Option<Node<DynamicLoadBalancer>>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct LocalPool {
    pub nodes: Located<u32>,
}

impl ProviderModel for LocalProvider {
    fn pools(&self) -> Vec<(&Id, usize)> {
        self.pools
            .iter()
            .map(|(id, p)| (id, p.nodes.value as usize))
            .collect()
    }

    /// Local machines are named `<pool>-<n>`; n can exceed the pool's size after a
    /// replacement, so only the pool part is checked.
    fn may_have_machine(&self, machine: &str) -> bool {
        machine.rsplit_once('-').is_some_and(|(pool, n)| {
            n.parse::<u32>().is_ok_and(|n| n > 0)
                && Id::parse(pool).is_ok_and(|p| self.pools.contains_key(&p))
        })
    }

    fn example_machines(&self) -> Vec<String> {
        self.pools.keys().map(|p| format!("{p}-1")).collect()
    }

    fn loadbalancing_node(&self) -> Option<&Node<DynamicLoadBalancer>> {
        self.loadbalancing.as_ref()
    }

    fn loadbalancing_mut(&mut self) -> Option<&mut Option<Node<DynamicLoadBalancer>>> {
        Some(&mut self.loadbalancing)
    }

    fn flags(&self, flag: MachineFlag) -> &[Located<Id>] {
        match flag {
            MachineFlag::Reboot => &self.rebootrequired,
            MachineFlag::Replace => &self.replacementrequired,
        }
    }

    fn flags_mut(&mut self, flag: MachineFlag) -> &mut Vec<Located<Id>> {
        match flag {
            MachineFlag::Reboot => &mut self.rebootrequired,
            MachineFlag::Replace => &mut self.replacementrequired,
        }
    }
}
