//! Providers: where machines come from. Each kind is a module behind the small [`Provider`]
//! trait, built from its `orbiter.yml` subtree by [`for_spec`] (the registry: the only place
//! that knows every kind). A provider observes which machines exist, plans its own machines
//! (scaling, replacement) as a pure function, and carries out creating and destroying them.

mod local_machines;
mod static_machines;

pub use static_machines::listed_machines;

use crate::action::Plan;
use crate::machine::{MachineKey, MachineRef};
use crate::observed::{MachineObserved, PackageCatalog};
use crate::recorded::Recorded;
use anyhow::Result;
use orb_model::{Id, ProviderSpec};
use std::collections::BTreeMap;

/// What a provider's plan sees of the world.
pub struct MachinesInput<'a> {
    pub provider: &'a Id,
    /// Its machines that exist, as observed.
    pub machines: &'a [&'a MachineObserved],
    pub recorded: &'a Recorded,
    /// Machines a person asked to replace.
    pub replace: &'a [&'a Id],
    /// Machines a cluster still needs (not destroyed), and why.
    pub held: &'a BTreeMap<MachineKey, String>,
    /// Dead machines a cluster gave up on (replaced where the provider can), and why.
    pub heal: &'a BTreeMap<MachineKey, String>,
}

pub trait Provider: Send + Sync {
    /// The machines that exist now.
    fn machines(&self) -> Result<Vec<MachineRef>>;
    /// Packages its own repository offers its machines, read without changing anything;
    /// `None` when the machines' apt sources decide.
    fn packages(&self) -> Result<Option<PackageCatalog>>;
    /// Its own steps (create, destroy, replace) and waits: a pure function of the input.
    fn plan_machines(&self, input: &MachinesInput<'_>) -> Plan;
    /// Creates a machine that admits `pubkey` for its SSH user.
    fn create(&self, pool: &Id, machine: &Id, pubkey: &str) -> Result<MachineRef>;
    fn destroy(&self, key: &MachineKey) -> Result<()>;
    /// Makes packages installable on its machines (Debian package names).
    fn offer_packages(&self, names: &[String]) -> Result<()>;
    /// Removes everything the provider created (teardown).
    fn teardown(&self) -> Result<()>;
    /// Orbiter creates and destroys its machines. Machines it does not create outlive the
    /// Orb: teardown gives them back to the person's key, and the Orbiter may live on them.
    fn creates_machines(&self) -> bool;
    /// Its machines run on this very host, so the Orbiter that manages them does too.
    fn on_this_host(&self) -> bool {
        false
    }
}

/// The registry of provider kinds.
pub fn for_spec(id: &Id, spec: &ProviderSpec) -> Box<dyn Provider> {
    match spec {
        ProviderSpec::Static(s) => Box::new(static_machines::StaticMachines::new(id, s)),
        ProviderSpec::Local(l) => Box::new(local_machines::LocalMachines::new(id, l)),
    }
}
