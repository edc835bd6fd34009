//! The plan: a pure function of the desired state (orbiter.yml), what Orbiter recorded before
//! (its own repository files) and what it observed. It returns ordered steps, each with its
//! reason and whether it destroys something, plus what it waits for. `orbctl plan` prints it;
//! the engine applies it. No I/O here, so it is fast and testable with simulated providers.

use crate::clusters::ClusterNeeds;
use crate::machine::{MachineKey, MachineRef};
use crate::node_desired::{NodeDesiredDoc, items_for, next_doc};
use crate::observed::{Observed, Reach};
use crate::ssh::HostKey;
use orb_model::registry::MachineFlag;
use orb_model::{Id, Orb, ProviderSpec};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// What Orbiter recorded in its own files that the plan needs.
#[derive(Clone, Debug, Default)]
pub struct Recorded {
    pub pinned: BTreeMap<MachineKey, HostKey>,
    /// Providers whose maintenance key pair exists (generated or given).
    pub maintenance_keys: BTreeSet<Id>,
    /// The node-desired documents last written, by machine.
    pub node_desired: BTreeMap<MachineKey, NodeDesiredDoc>,
}

/// The agent binary this Orbiter installs.
#[derive(Clone, Debug)]
pub struct AgentRelease {
    pub version: String,
    pub sha256: String,
}

pub struct PlanInput<'a> {
    pub orb: &'a Orb,
    pub recorded: &'a Recorded,
    pub observed: &'a Observed,
    pub agent: &'a AgentRelease,
    /// RFC 3339, used for new reboot requests.
    pub now: &'a str,
    /// What the cluster kinds ask for this round.
    pub clusters: &'a ClusterNeeds,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum Action {
    GenerateMaintenanceKey {
        provider: Id,
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
        #[serde(skip)]
        doc: NodeDesiredDoc,
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
        copy: Option<crate::clusters::FileCopy>,
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
            Action::GenerateMaintenanceKey { .. } | Action::CreateMachine { .. } => None,
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

    pub fn summary(&self) -> String {
        match self {
            Action::GenerateMaintenanceKey { provider } => {
                format!("generate the maintenance key of {provider}")
            }
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
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    fn step(&mut self, action: Action, reason: impl Into<String>) {
        let destructive = matches!(action, Action::DestroyMachine { .. });
        self.steps.push(Step {
            action,
            reason: reason.into(),
            destructive,
        });
    }
}

/// Local machines are named `<pool>-<n>`; returns n.
pub fn local_index(pool: &Id, machine: &Id) -> Option<u32> {
    machine
        .as_str()
        .strip_prefix(pool.as_str())?
        .strip_prefix('-')?
        .parse()
        .ok()
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
    for (pid, node) in &orb.providers {
        let provider_obs = observed.providers.get(pid);
        if let Some(err) = provider_obs.and_then(|p| p.error.as_ref()) {
            plan.waiting.push(format!("provider {pid}: {err}"));
            continue;
        }
        if !recorded.maintenance_keys.contains(pid) {
            plan.step(
                Action::GenerateMaintenanceKey {
                    provider: pid.clone(),
                },
                "machines are maintained with a key of this Orb's own, not the person's",
            );
        }
        let machines: Vec<&crate::observed::MachineObserved> = provider_obs
            .map(|p| p.machines.iter().collect())
            .unwrap_or_default();
        let ids = |f| node.spec.flags(f).iter().map(|l| &l.value).collect();
        let (reboot, replace): (Vec<&Id>, Vec<&Id>) =
            (ids(MachineFlag::Reboot), ids(MachineFlag::Replace));
        let ready = |m: &crate::observed::MachineObserved| machine_ready(m, recorded);

        // Scaling (Local) and replacement.
        match &node.spec {
            ProviderSpec::Local(l) => {
                for (pool, p) in &l.pools {
                    let in_pool: Vec<_> = machines
                        .iter()
                        .filter(|m| m.machine.pool == *pool)
                        .collect();
                    let flagged: Vec<_> = in_pool
                        .iter()
                        .filter(|m| replace.contains(&&m.machine.key.machine))
                        .collect();
                    // Dead machines a cluster gave up on, and machines whose creation was cut
                    // short (never reached, so never pinned, and unreachable now): destroyed,
                    // and a new one surges.
                    let stillborn = |m: &crate::observed::MachineObserved| {
                        matches!(m.reach, Reach::Unreachable(_))
                            && !recorded.pinned.contains_key(&m.machine.key)
                    };
                    for m in in_pool
                        .iter()
                        .filter(|m| !replace.contains(&&m.machine.key.machine))
                    {
                        if stillborn(m) {
                            plan.step(
                                Action::DestroyMachine {
                                    machine: m.machine.key.clone(),
                                },
                                "its creation was cut short: never reached, unreachable now; it is created again",
                            );
                        } else if let Some(why) = clusters.heal.get(&m.machine.key) {
                            plan.step(
                                Action::DestroyMachine {
                                    machine: m.machine.key.clone(),
                                },
                                why.clone(),
                            );
                        }
                    }
                    let keep: Vec<_> = in_pool
                        .iter()
                        .filter(|m| {
                            !replace.contains(&&m.machine.key.machine)
                                && !clusters.heal.contains_key(&m.machine.key)
                                && !stillborn(m)
                        })
                        .collect();
                    let want = p.nodes.value as usize;
                    let mut used: BTreeSet<u32> = in_pool
                        .iter()
                        .filter_map(|m| local_index(pool, &m.machine.key.machine))
                        .collect();
                    if keep.len() < want {
                        for _ in keep.len()..want {
                            let n = (1..).find(|n| !used.contains(n)).expect("a free index");
                            used.insert(n);
                            let machine = Id::parse(&format!("{pool}-{n}"))
                                .expect("pool ids make valid machine ids");
                            let why = if flagged.is_empty() {
                                format!(
                                    "pool {pid}.{pool} wants {want} machines, has {}",
                                    keep.len()
                                )
                            } else {
                                format!(
                                    "surge: a replacement for {}",
                                    flagged
                                        .iter()
                                        .map(|m| m.machine.key.to_string())
                                        .collect::<Vec<_>>()
                                        .join(", ")
                                )
                            };
                            plan.step(
                                Action::CreateMachine {
                                    provider: pid.clone(),
                                    pool: pool.clone(),
                                    machine,
                                },
                                why,
                            );
                        }
                    }
                    if keep.len() > want {
                        let mut extra: Vec<_> = keep.iter().collect();
                        extra.sort_by_key(|m| {
                            std::cmp::Reverse(local_index(pool, &m.machine.key.machine))
                        });
                        for m in extra.into_iter().take(keep.len() - want) {
                            if let Some(why) = clusters.held.get(&m.machine.key) {
                                plan.waiting.push(format!(
                                    "scale-in of pool {pid}.{pool}: {} stays for now: {why}",
                                    m.machine.key
                                ));
                                continue;
                            }
                            plan.step(
                                Action::DestroyMachine {
                                    machine: m.machine.key.clone(),
                                },
                                format!(
                                    "pool {pid}.{pool} wants {want} machines, has {}",
                                    keep.len()
                                ),
                            );
                        }
                    }
                    for f in &flagged {
                        let replacements_ready =
                            keep.len() >= want && keep.iter().all(|m| ready(m));
                        if let Some(why) = clusters.held.get(&f.machine.key)
                            && replacements_ready
                        {
                            plan.waiting.push(format!(
                                "replacement of {}: its successor is ready; it stays for now: {why}",
                                f.machine.key
                            ));
                        } else if replacements_ready {
                            plan.step(
                                Action::DestroyMachine {
                                    machine: f.machine.key.clone(),
                                },
                                "replacement requested; its successor is ready",
                            );
                            plan.step(
                                Action::ClearReplacement {
                                    machine: f.machine.key.clone(),
                                },
                                "replacement done",
                            );
                        } else {
                            plan.waiting.push(format!(
                                "replacement of {}: waiting until its successor is ready",
                                f.machine.key
                            ));
                        }
                    }
                }
            }
            ProviderSpec::Static(_) => {
                for id in &replace {
                    plan.waiting.push(format!("replacement of {pid}.{id}: a Static provider cannot create machines; add a spare machine to the pool, then remove {id} from the pool list and from replacementrequired"));
                }
            }
        }
        // Flags naming machines that are gone are stale: clear them.
        let exists = |id: &Id| machines.iter().any(|m| m.machine.key.machine == *id);
        if let ProviderSpec::Local(_) = &node.spec {
            for id in replace.iter().filter(|id| !exists(id)) {
                plan.step(
                    Action::ClearReplacement {
                        machine: MachineKey::new(pid, id),
                    },
                    "the machine no longer exists",
                );
            }
        }
        for id in reboot.iter().filter(|id| !exists(id)) {
            plan.step(
                Action::ClearReboot {
                    machine: MachineKey::new(pid, id),
                },
                "the machine no longer exists",
            );
        }

        // One reboot at a time per pool: the first flagged machine of each pool.
        let mut rebooting_pools = BTreeSet::new();
        for m in &machines {
            let key = &m.machine.key;
            let doomed = plan
                .steps
                .iter()
                .any(|s| matches!(&s.action, Action::DestroyMachine { machine } if machine == key));
            // A machine on its way out gets nothing else: a pin or key installed after its
            // destruction would outlive it and block the next machine of that name.
            if doomed {
                continue;
            }
            match &m.reach {
                Reach::NotPinned(k) => {
                    plan.step(Action::PinHostKey { machine: key.clone(), fingerprint: k.fingerprint(), key: k.clone() }, "first contact: its host key is recorded in the repository and required from now on");
                    continue;
                }
                Reach::HostKeyChanged { expected, found } => {
                    plan.blocked.push((key.clone(), format!("host key changed: pinned {expected}, offered {found}; if the machine was reinstalled, remove its entry from orbiter/hostkeys.yml")));
                    continue;
                }
                Reach::Unreachable(e) | Reach::AuthFailed(e) => {
                    plan.blocked.push((key.clone(), e.clone()));
                    continue;
                }
                Reach::Bootstrap => {
                    plan.step(
                        Action::InstallMaintenanceKey {
                            machine: key.clone(),
                        },
                        "only the bootstrap key logs in",
                    );
                }
                Reach::Maintenance => {}
            }
            let agent_ok = m.agent.as_ref().is_some_and(|a| {
                a.version == input.agent.version && a.sha256 == input.agent.sha256 && a.active
            });
            if !agent_ok {
                let why = match &m.agent {
                    None => "no node-agent installed".to_owned(),
                    Some(a) if a.sha256 != input.agent.sha256 => format!(
                        "node-agent {} differs from {}",
                        if a.version.is_empty() {
                            "?"
                        } else {
                            &a.version
                        },
                        input.agent.version
                    ),
                    Some(_) => "node-agent is not running".to_owned(),
                };
                plan.step(
                    Action::InstallAgent {
                        machine: key.clone(),
                        version: input.agent.version.clone(),
                    },
                    why,
                );
            }
            let previous = recorded.node_desired.get(key);
            let mut reboot_at = previous
                .and_then(|d| d.reboot_requested_at())
                .map(str::to_owned);
            let flagged = reboot.contains(&&key.machine);
            if flagged {
                let mut requested_now = false;
                if reboot_at.is_none() {
                    let others: Vec<_> = machines
                        .iter()
                        .filter(|o| o.machine.pool == m.machine.pool && o.machine.key != *key)
                        .collect();
                    let busy = rebooting_pools.contains(&m.machine.pool)
                        || others.iter().any(|o| {
                            recorded
                                .node_desired
                                .get(&o.machine.key)
                                .and_then(|d| d.reboot_requested_at())
                                .is_some()
                        });
                    let down = others.iter().find(|o| !(o.reach.logged_in() && ready(o)));
                    if busy {
                        plan.waiting.push(format!(
                            "reboot of {key}: another machine of pool {} reboots first",
                            m.machine.pool
                        ));
                    } else if let Some(o) = down {
                        plan.waiting.push(format!(
                            "reboot of {key}: waits until {} of the same pool is ready again",
                            o.machine.key
                        ));
                    } else {
                        reboot_at = Some(reboot_request_time(input.now, m));
                        requested_now = true;
                    }
                }
                if let Some(at) = &reboot_at {
                    rebooting_pools.insert(m.machine.pool.clone());
                    if !requested_now && rebooted_since(m, at) {
                        plan.step(
                            Action::ClearReboot {
                                machine: key.clone(),
                            },
                            format!("rebooted after {at}"),
                        );
                        reboot_at = None;
                    } else {
                        plan.waiting.push(format!(
                            "reboot of {key} requested at {at}: waiting for it to come back"
                        ));
                    }
                }
            } else {
                reboot_at = None;
            }
            if let Some(why) = clusters.frozen.get(key) {
                plan.waiting
                    .push(format!("node-desired state of {key} kept as it is: {why}"));
                continue;
            }
            let mut items = items_for(orb, &m.machine, reboot_at.as_deref());
            items.extend(clusters.items.get(key).into_iter().flatten().cloned());
            let doc = next_doc(previous, items);
            let on_machine = m.desired_on_machine.as_deref();
            if previous != Some(&doc) || on_machine != Some(doc.render().as_str()) {
                let why = match (previous, on_machine) {
                    (Some(p), _) if p.items != doc.items => {
                        "orbiter.yml asks for other node software".to_owned()
                    }
                    (_, None) => "the machine has no node-desired state yet".to_owned(),
                    _ => "the machine's node-desired file differs from the recorded one".to_owned(),
                };
                plan.step(
                    Action::WriteNodeDesired {
                        machine: key.clone(),
                        generation: doc.generation,
                        doc,
                    },
                    why,
                );
            }
        }
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

/// Agent reports the recorded generation and every item in sync.
pub fn machine_ready(m: &crate::observed::MachineObserved, recorded: &Recorded) -> bool {
    let Some(doc) = recorded.node_desired.get(&m.machine.key) else {
        return false;
    };
    m.current
        .as_ref()
        .is_some_and(|c| c.ready && c.generation == Some(doc.generation))
}

/// One second after `now`: boot times have one-second resolution and the agent counts a boot
/// in the request's second as done, so a request for the current second could be taken as
/// fulfilled by a boot just before it. A request in the future makes the agent wait for it.
/// The machine's own boot time counts too: with its clock ahead of Orbiter's, a request for
/// Orbiter's "now" would look fulfilled on the machine already.
fn reboot_request_time(now: &str, m: &crate::observed::MachineObserved) -> String {
    use node_agent::timefmt::{format_rfc3339, parse_rfc3339};
    let booted = m
        .current
        .as_ref()
        .and_then(|c| c.booted_at.as_deref())
        .and_then(|b| parse_rfc3339(b).ok());
    match parse_rfc3339(now) {
        Ok(t) => format_rfc3339(t.max(booted.unwrap_or(t)) + 1),
        Err(_) => now.to_owned(),
    }
}

/// The agent's own rule: a boot at or after the request fulfils it.
fn rebooted_since(m: &crate::observed::MachineObserved, at: &str) -> bool {
    use node_agent::timefmt::parse_rfc3339;
    let booted = m
        .current
        .as_ref()
        .and_then(|c| c.booted_at.as_deref())
        .and_then(|b| parse_rfc3339(b).ok());
    matches!((booted, parse_rfc3339(at)), (Some(b), Ok(a)) if b >= a)
}

/// Machines a provider has according to orbiter.yml alone (Static lists them).
pub fn listed_machines(pid: &Id, spec: &ProviderSpec) -> Vec<MachineRef> {
    match spec {
        ProviderSpec::Static(s) => s
            .pools
            .iter()
            .flat_map(|(pool, ms)| {
                ms.iter().map(move |m| MachineRef {
                    key: MachineKey::new(pid, &m.id.value),
                    pool: pool.clone(),
                    hostname: m.hostname.to_string(),
                    ip: m.ip.value,
                    user: s.user.clone(),
                })
            })
            .collect(),
        ProviderSpec::Local(_) => Vec::new(),
    }
}
