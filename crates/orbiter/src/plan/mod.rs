//! The plan: a pure function of the desired state (orbiter.yml), what Orbiter recorded before
//! (its own repository files), what it observed, and what providers and cluster kinds plan for
//! their own machines. It returns ordered steps, each with its reason and whether it destroys
//! something, plus what it waits for. `orbctl plan` prints it; the engine applies it. No I/O
//! here (no clock, no randomness, no host): fast, and testable with simulated providers.

mod machine_steps;
mod reboots;
mod rollouts;

pub use crate::action::{Action, Plan, Step};
pub use crate::agent_binary::AgentRelease;
pub use crate::providers::listed_machines;
pub use crate::recorded::{Recorded, machine_ready};
pub use reboots::wanted_reboots;

use crate::clusters::ClusterNeeds;
use crate::machine::MachineKey;
use crate::node_desired::{Digest, SoftwareSecrets};
use crate::observed::{MachineObserved, Observed};
use crate::providers::{MachinesInput, Provider};
use node_protocol::Item;
use orb_model::registry::MachineFlag;
use orb_model::{Id, Orb};
use std::collections::{BTreeMap, BTreeSet};

/// New host keys a person confirmed: all of them (`--accept-new-hostkeys`), or these
/// (machine, fingerprint) pairs. Everything else met for the first time waits.
#[derive(Clone, Debug, Default)]
pub struct HostKeyConsent {
    pub accept_all: bool,
    pub accepted: BTreeSet<(MachineKey, String)>,
}

impl HostKeyConsent {
    pub fn accepts(&self, machine: &MachineKey, fingerprint: &str) -> bool {
        self.accept_all
            || self
                .accepted
                .contains(&(machine.clone(), fingerprint.to_owned()))
    }
}

pub struct PlanInput<'a> {
    pub orb: &'a Orb,
    /// The provider of every `orbiter.yml` provider, built from its subtree.
    pub providers: &'a BTreeMap<Id, Box<dyn Provider>>,
    pub recorded: &'a Recorded,
    pub observed: &'a Observed,
    pub agent: &'a AgentRelease,
    /// RFC 3339, used for new reboot requests.
    pub now: &'a str,
    /// What the cluster kinds ask for this round.
    pub clusters: &'a ClusterNeeds,
    /// NodeSoftware secrets, opened.
    pub secrets: &'a SoftwareSecrets,
    /// The keyed digest records hold instead of secret values.
    pub digest: &'a Digest,
    /// First-contact host keys a person confirmed.
    pub host_keys: &'a HostKeyConsent,
    /// The rollout records of the pools, by `provider.pool`.
    pub rollouts: &'a BTreeMap<String, crate::rollout::RolloutRecord>,
    /// The secrets of recorded revisions, opened, by revision id.
    pub revision_secrets: &'a BTreeMap<String, SoftwareSecrets>,
    /// Unix seconds (`now` as a number).
    pub now_secs: u64,
}

pub fn plan(input: &PlanInput<'_>) -> Plan {
    let mut plan = Plan::default();
    let PlanInput {
        orb,
        recorded,
        observed,
        clusters,
        ..
    } = input;
    let rollouts = rollouts::plan(input);
    plan.waiting.extend(rollouts.waiting.iter().cloned());
    plan.rollouts = rollouts.records.clone();
    plan.rollout_flags = rollouts.consumed.clone();
    for (cluster, what) in &clusters.generate {
        plan.step(
            Action::GenerateClusterSecrets {
                cluster: cluster.clone(),
                what: what.clone(),
            },
            format!("cluster {cluster} needs them before any machine uses them"),
        );
    }
    for (pid, node) in &orb.providers {
        let provider_obs = observed.providers.get(pid);
        if let Some(err) = provider_obs.and_then(|p| p.error.as_ref()) {
            plan.waiting.push(format!("provider {pid}: {err}"));
            continue;
        }
        let Some(provider) = input.providers.get(pid) else {
            plan.waiting
                .push(format!("provider {pid}: not built from orbiter.yml"));
            continue;
        };
        if !recorded.maintenance_keys.contains(pid) {
            // Machines Orbiter pinned or wrote to trust the old key: a new one would lock it
            // out, so a missing key (orbiter/secrets.yml deleted or rolled back) is an error.
            let managed = recorded
                .pinned
                .keys()
                .chain(recorded.node_desired.keys())
                .filter(|k| k.provider == *pid)
                .count();
            if managed > 0 {
                plan.waiting.push(format!(
                    "provider {pid}: its maintenance key is missing from orbiter/secrets.yml although Orbiter manages {managed} of its machines; restore the file from the repository's history (a new key would lock Orbiter out); nothing is done on them meanwhile"
                ));
                continue;
            }
            plan.step(
                Action::GenerateMaintenanceKey {
                    provider: pid.clone(),
                },
                "machines are maintained with a key of this Orb's own, not the person's",
            );
        }
        let machines: Vec<&MachineObserved> = provider_obs
            .map(|p| p.machines.iter().collect())
            .unwrap_or_default();
        let ids = |f| node.spec.flags(f).iter().map(|l| &l.value).collect();
        let (reboot, replace): (Vec<&Id>, Vec<&Id>) =
            (ids(MachineFlag::Reboot), ids(MachineFlag::Replace));

        // The provider's own machines: scaling, replacement, healing.
        let own = provider.plan_machines(&MachinesInput {
            provider: pid,
            machines: &machines,
            recorded,
            replace: &replace,
            held: &clusters.held,
            heal: &clusters.heal,
        });
        plan.steps.extend(own.steps);
        plan.waiting.extend(own.waiting);

        // Flags naming machines that are gone are stale: clear them.
        let exists = |id: &Id| machines.iter().any(|m| m.machine.key.machine == *id);
        for id in replace.iter().filter(|id| !exists(id)) {
            plan.step(
                Action::ClearReplacement {
                    machine: MachineKey::new(pid, id),
                },
                "the machine no longer exists",
            );
        }
        for id in reboot.iter().filter(|id| !exists(id)) {
            plan.step(
                Action::ClearReboot {
                    machine: MachineKey::new(pid, id),
                },
                "the machine no longer exists",
            );
        }

        let before = plan.steps.len();
        machine_steps::plan_machines(input, &machines, &reboot, &rollouts, &mut plan);
        offer_packages(
            pid,
            provider_obs,
            &mut plan,
            before,
            clusters,
            &rollouts.records,
        );
    }
    for (cluster, (index, s)) in
        clusters
            .steps
            .iter()
            .scan(BTreeMap::<&Id, usize>::new(), |n, (c, s)| {
                let i = n.entry(c).or_default();
                *i += 1;
                Some((c, (*i - 1, s)))
            })
    {
        plan.steps.push(Step {
            action: Action::ClusterStep {
                cluster: cluster.clone(),
                machine: s.machine.clone(),
                index,
                summary: s.summary.clone(),
                command: s.command.clone(),
                copy: s.copy.clone(),
            },
            reason: s.reason.clone(),
            destructive: s.destructive,
        });
    }
    plan.waiting.extend(clusters.waiting.iter().cloned());
    // Machines that exist while their provider is gone from orbiter.yml are left alone: removing
    // a provider must not destroy machines as a side effect of an edit. Say so.
    for (pid, p) in &observed.providers {
        if !orb.providers.contains_key(pid) && !p.machines.is_empty() {
            plan.waiting.push(format!("provider {pid} is not in orbiter.yml any more; its {} machines are left as they are (teardown removes them)", p.machines.len()));
        }
    }
    plan
}

/// A provider with a repository of its own offers the packages the documents written from
/// step `from` on, its pools' rollout targets and its clusters need and it lacks, before they
/// are written: a wave that has not reached a machine yet must not find a package missing.
fn offer_packages(
    pid: &Id,
    observed: Option<&crate::observed::ProviderObserved>,
    plan: &mut Plan,
    from: usize,
    clusters: &ClusterNeeds,
    rollouts: &BTreeMap<String, crate::rollout::RolloutRecord>,
) {
    let Some(catalog) = observed.and_then(|p| p.packages.as_ref()) else {
        return;
    };
    let mut names: BTreeSet<String> = clusters.offer.get(pid).cloned().unwrap_or_default();
    let written = plan.steps[from..].iter().flat_map(|s| match &s.action {
        Action::WriteNodeDesired { doc, .. } => doc.items.iter().collect::<Vec<_>>(),
        _ => Vec::new(),
    });
    let prefix = format!("{pid}.");
    let targets = rollouts
        .iter()
        .filter(|(pool, _)| pool.starts_with(&prefix))
        .filter_map(|(_, r)| r.revisions.get(&r.revision))
        .flat_map(|rev| rev.items.iter().map(|i| &i.item));
    for item in written.chain(targets) {
        if let Item::Package(p) = item
            && !catalog.has(&p.name, &p.version)
        {
            names.insert(p.name.clone());
        }
    }
    names.retain(|n| !catalog.asked.contains(n));
    if names.is_empty() {
        return;
    }
    let packages: Vec<String> = names.into_iter().collect();
    let step = crate::action::Step {
        reason: format!(
            "the machines of {pid} install packages only from its repository, which lacks {}",
            packages.join(", ")
        ),
        action: Action::OfferPackages {
            provider: pid.clone(),
            packages,
        },
        destructive: false,
    };
    plan.steps.insert(from, step);
}
