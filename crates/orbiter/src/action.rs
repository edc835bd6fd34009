//! What a plan is made of: steps (an action, its reason, whether it destroys something), what
//! it waits for and which machines are blocked. Providers, cluster kinds and the generic plan
//! all speak these; the engine applies them.

use crate::machine::MachineKey;
use crate::ssh::HostKey;
use node_protocol::NodeDesired;
use orb_model::Id;
use serde::Serialize;

/// A file moved from one machine to another over SSH, then `after` run on the destination
/// (retention) and the source copy removed (a cluster's backups).
#[derive(Clone, Debug, PartialEq)]
pub struct FileCopy {
    pub path: String,
    pub to: MachineKey,
    pub after: String,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum Action {
    GenerateMaintenanceKey {
        provider: Id,
    },
    /// A cluster kind's secrets (a CA, member certificates): generated, sealed and committed
    /// before anything uses them.
    GenerateClusterSecrets {
        cluster: Id,
        what: String,
    },
    /// Make packages installable from the provider's own repository (Local).
    OfferPackages {
        provider: Id,
        packages: Vec<String>,
    },
    CreateMachine {
        provider: Id,
        pool: Id,
        machine: Id,
    },
    PinHostKey {
        machine: MachineKey,
        fingerprint: String,
        #[serde(skip)]
        key: HostKey,
    },
    InstallMaintenanceKey {
        machine: MachineKey,
    },
    InstallAgent {
        machine: MachineKey,
        version: String,
    },
    WriteNodeDesired {
        machine: MachineKey,
        generation: u64,
        /// The machine's form (secret values included): written to it over SSH only.
        #[serde(skip)]
        doc: NodeDesired,
        /// The record form (secrets as digests): what the repository gets.
        #[serde(skip)]
        record: NodeDesired,
    },
    ClearReboot {
        machine: MachineKey,
    },
    ClearReplacement {
        machine: MachineKey,
    },
    DestroyMachine {
        machine: MachineKey,
    },
    /// A step of a cluster kind (membership, leadership, wipe, snapshot), as root on `machine`.
    ClusterStep {
        cluster: Id,
        machine: MachineKey,
        /// Position in the kind's own plan, for reporting its outcome back.
        index: usize,
        summary: String,
        #[serde(skip)]
        command: String,
        #[serde(skip)]
        copy: Option<FileCopy>,
    },
}

impl Action {
    pub fn machine(&self) -> Option<&MachineKey> {
        match self {
            Action::PinHostKey { machine, .. }
            | Action::InstallMaintenanceKey { machine }
            | Action::InstallAgent { machine, .. }
            | Action::WriteNodeDesired { machine, .. }
            | Action::ClearReboot { machine }
            | Action::ClearReplacement { machine }
            | Action::DestroyMachine { machine }
            | Action::ClusterStep { machine, .. } => Some(machine),
            Action::GenerateMaintenanceKey { .. }
            | Action::GenerateClusterSecrets { .. }
            | Action::OfferPackages { .. }
            | Action::CreateMachine { .. } => None,
        }
    }

    /// Steps that run over SSH on their machine (concurrently with other machines' steps);
    /// every other step changes the Orb's records or a provider and runs first, in order.
    pub fn runs_on_machine(&self) -> bool {
        matches!(
            self,
            Action::InstallMaintenanceKey { .. }
                | Action::InstallAgent { .. }
                | Action::WriteNodeDesired { .. }
        )
    }

    /// Steps whose outcome must be in Git before the next round builds on it.
    pub fn commits_at_once(&self) -> bool {
        matches!(
            self,
            Action::GenerateMaintenanceKey { .. }
                | Action::GenerateClusterSecrets { .. }
                | Action::DestroyMachine { .. }
                | Action::WriteNodeDesired { .. }
                | Action::ClusterStep { .. }
        )
    }

    pub fn summary(&self) -> String {
        match self {
            Action::GenerateMaintenanceKey { provider } => {
                format!("generate the maintenance key of {provider}")
            }
            Action::GenerateClusterSecrets { cluster, what } => {
                format!("cluster {cluster}: generate {what}")
            }
            Action::OfferPackages { provider, packages } => format!(
                "offer {} in the package repository of provider {provider}",
                packages.join(", ")
            ),
            Action::CreateMachine {
                provider,
                pool,
                machine,
            } => format!("create machine {provider}.{machine} in pool {pool}"),
            Action::PinHostKey {
                machine,
                fingerprint,
                ..
            } => format!("pin host key of {machine} ({fingerprint})"),
            Action::InstallMaintenanceKey { machine } => {
                format!("replace the bootstrap key of {machine} by the maintenance key")
            }
            Action::InstallAgent { machine, version } => {
                format!("install node-agent {version} on {machine}")
            }
            Action::WriteNodeDesired {
                machine,
                generation,
                ..
            } => format!("write node-desired generation {generation} to {machine}"),
            Action::ClearReboot { machine } => format!("clear the reboot flag of {machine}"),
            Action::ClearReplacement { machine } => {
                format!("clear the replacement flag of {machine}")
            }
            Action::DestroyMachine { machine } => format!("destroy machine {machine}"),
            Action::ClusterStep {
                cluster,
                machine,
                summary,
                ..
            } => format!("cluster {cluster}: {summary} (on {machine})"),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Step {
    #[serde(flatten)]
    pub action: Action,
    pub reason: String,
    pub destructive: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Plan {
    pub steps: Vec<Step>,
    /// What the plan deliberately does not do yet, and why.
    pub waiting: Vec<String>,
    /// Machines nothing can be done on, and why.
    pub blocked: Vec<(MachineKey, String)>,
    /// The next rollout record of every pool (`provider.pool`), committed with the state.
    #[serde(skip)]
    pub rollouts: std::collections::BTreeMap<String, crate::rollout::RolloutRecord>,
    /// People's rollout flags (`undo`, `retry`) by pool that this plan acted on: cleared in
    /// orbiter.yml.
    #[serde(skip)]
    pub rollout_flags: Vec<(String, &'static str)>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// Adds a step; destroying a machine is destructive.
    pub fn step(&mut self, action: Action, reason: impl Into<String>) {
        let destructive = matches!(action, Action::DestroyMachine { .. });
        self.steps.push(Step {
            action,
            reason: reason.into(),
            destructive,
        });
    }

    /// Whether the plan destroys `machine`.
    pub fn destroys(&self, machine: &MachineKey) -> bool {
        self.steps
            .iter()
            .any(|s| matches!(&s.action, Action::DestroyMachine { machine: m } if m == machine))
    }
}
