//! The shapes of every kind an `orbiter.yml` can contain, one module per kind, each with its
//! own checks. Which kinds and versions exist, and how old versions migrate, is decided in
//! [`crate::registry`] only; the rest of the crate reaches a kind through the small traits here.

pub mod etcd_cluster;
pub mod load_balancer;
pub mod local_provider;
pub mod node_software;
pub(crate) mod refs;
pub mod static_provider;

use crate::error::ModelError;
use crate::id::Id;
use crate::located::{Located, Pos};
use crate::node::Node;
use load_balancer::{DynamicLoadBalancer, TransportRef};
use orb_secrets::Envelope;
use std::net::{IpAddr, Ipv4Addr};

/// Which per-machine request list of a provider: reboot once, or replace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MachineFlag {
    Reboot,
    Replace,
}

/// What a kind's checks may see of the rest of the Orb (kinds know nothing of the file).
pub trait OrbView {
    fn provider(&self, id: &Id) -> Option<&dyn ProviderModel>;
    fn provider_ids(&self) -> Vec<&Id>;
    /// Where a subtree (provider, cluster or software) starts.
    fn position(&self, id: &Id) -> Option<Pos>;
    /// Every transport of every provider's load balancer, providers in id order.
    fn transports(&self) -> Vec<TransportRef<'_>>;
}

/// A provider kind as `orbiter.yml` describes it.
pub trait ProviderModel {
    /// Pool ids with their size when the kind fixes it (a list of machines or a count).
    fn pools(&self) -> Vec<(&Id, usize)>;
    /// Whether a machine of this name can belong to the provider (listed, or named like its
    /// machines are).
    fn may_have_machine(&self, machine: &str) -> bool;
    /// Machine names to suggest in hints.
    fn example_machines(&self) -> Vec<String>;
    /// The SSH user Orbiter logs in as on its machines (it needs passwordless sudo).
    fn ssh_user(&self) -> &str {
        "orbiter"
    }
    /// `rebootrequired` or `replacementrequired`: written by `orbctl node`, cleared by Orbiter.
    fn flags(&self, flag: MachineFlag) -> &[Located<Id>];
    fn flags_mut(&mut self, flag: MachineFlag) -> &mut Vec<Located<Id>>;
    /// Secret fields by name, in a stable order.
    fn secrets_mut(&mut self) -> Vec<(String, &mut Option<Envelope>)> {
        Vec::new()
    }
    /// Checks that span fields of this subtree (ids unique, flags naming machines).
    fn validate(&self, _orb: &dyn OrbView, _id: &Id, _file: &str) -> Result<(), ModelError> {
        Ok(())
    }
    /// The `loadbalancing` subtree beside `spec`, with the version it was read in.
    fn loadbalancing_node(&self) -> Option<&Node<DynamicLoadBalancer>> {
        None
    }
    /// Where the reader puts a `loadbalancing` subtree; `None` for a kind that has none.
    fn loadbalancing_mut(&mut self) -> Option<&mut Option<Node<DynamicLoadBalancer>>> {
        None
    }
    /// The load balancer of this provider's machines, if it has one.
    fn loadbalancing(&self) -> Option<&DynamicLoadBalancer> {
        self.loadbalancing_node().map(|n| &n.spec)
    }
    /// The IPv4 subnet (network, prefix) a pool's machines share, where the kind knows it
    /// from orbiter.yml; `None` leaves the VIP-in-subnet check to Orbiter at plan time.
    fn pool_subnet(&self, _pool: &Id) -> Option<(Ipv4Addr, u8)> {
        None
    }
    /// Addresses of the machines orbiter.yml lists (none for kinds that create machines).
    fn machine_addresses(&self) -> Vec<(&Id, IpAddr)> {
        Vec::new()
    }
}

/// A cluster kind as `orbiter.yml` describes it.
pub trait ClusterModel {
    /// The provider and pool its members run on.
    fn placement(&self) -> (&Located<Id>, &Located<Id>);
    fn secrets_mut(&mut self) -> Vec<(String, &mut Option<Envelope>)> {
        Vec::new()
    }
    fn validate(&self, orb: &dyn OrbView, id: &Id, file: &str) -> Result<(), ModelError>;
}

/// Software for the machines of some pools.
pub trait SoftwareModel {
    /// `<provider>.<pool>` references.
    fn pools(&self) -> &[Located<String>];
    /// Its node-agent items, secrets by name.
    fn items(&self) -> &[Located<node_protocol::Item>];
    fn secrets_mut(&mut self) -> Vec<(String, &mut Option<Envelope>)> {
        Vec::new()
    }
    fn validate(&self, orb: &dyn OrbView, id: &Id, file: &str) -> Result<(), ModelError>;
}
