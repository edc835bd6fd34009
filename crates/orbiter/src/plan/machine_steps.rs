//! The steps every machine gets whatever its provider: first contact (pin its host key),
//! the maintenance key, the agent, at most one reboot per pool, and its node-desired document.

use super::PlanInput;
use super::reboots;
use super::rollouts::{Assigned, Rollouts, pool_ref};
use crate::action::{Action, Plan};
use crate::machine::KnownKey;
use crate::node_desired::next_doc;
use crate::observe::sha256_hex;
use crate::observed::{MachineObserved, Reach};
use crate::rollout::items_for_revision;
use crate::ssh::HostKey;
use orb_model::Id;
use std::collections::BTreeSet;

pub(super) fn plan_machines(
    input: &PlanInput<'_>,
    machines: &[&MachineObserved],
    reboot: &[&Id],
    rollouts: &Rollouts,
    plan: &mut Plan,
) {
    let recorded = input.recorded;
    let mut rebooting_pools = BTreeSet::new();
    for m in machines {
        let key = &m.machine.key;
        // A machine on its way out gets nothing else: a pin or key installed after its
        // destruction would outlive it and block the next machine of that name.
        if plan.destroys(key) {
            continue;
        }
        match &m.reach {
            Reach::NotPinned(k) => {
                first_contact(input, m, k, plan);
                continue;
            }
            Reach::HostKeyChanged {
                expected,
                found,
                offered,
            } => {
                // A person declared the machine's new key in orbiter.yml (after a reinstall).
                let declared = matches!(&m.machine.known_key, Some(KnownKey::Declared(_)));
                match offered {
                    Some(k)
                        if declared
                            && m.machine
                                .known_key
                                .as_ref()
                                .is_some_and(|d| d.matches(&k.0, &k.fingerprint())) =>
                    {
                        plan.step(
                            Action::PinHostKey {
                                machine: key.clone(),
                                fingerprint: k.fingerprint(),
                                key: k.clone(),
                            },
                            format!("orbiter.yml declares its new host key (pinned was {expected})"),
                        );
                    }
                    _ => plan.blocked.push((key.clone(), format!("host key changed: pinned {expected}, offered {found}; if the machine was reinstalled, declare its new key in orbiter.yml (`hostkey: {found}`) or remove its entry from orbiter/hostkeys.yml and confirm it again"))),
                }
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
        let assigned = rollouts.by_machine.get(key);
        agent_step(input, m, assigned, plan);
        let previous = recorded.node_desired.get(key);
        let reboot_at = reboots::request(input, m, machines, reboot, &mut rebooting_pools, plan);
        if let Some(why) = input.clusters.frozen.get(key) {
            plan.waiting
                .push(format!("node-desired state of {key} kept as it is: {why}"));
            continue;
        }
        let built = match assigned {
            Some(Ok(Assigned::Revision {
                revision, secrets, ..
            })) => items_for_revision(revision, &m.machine, reboot_at.as_deref(), secrets),
            Some(Ok(Assigned::Kept)) => {
                plan.waiting.push(format!(
                    "node-desired state of {key} kept as recorded until its rollout wave"
                ));
                continue;
            }
            Some(Err(why)) => Err(why.clone()),
            None => Err("its pool has no rollout".to_owned()),
        };
        let mut items = match built {
            Ok(items) => items,
            Err(why) => {
                plan.waiting
                    .push(format!("node-desired state of {key} kept as it is: {why}"));
                continue;
            }
        };
        items.extend(input.clusters.items.get(key).into_iter().flatten().cloned());
        add_firewall_rules(&mut items, input.clusters.firewall.get(key));
        let (doc, record) = next_doc(previous, items, input.digest);
        note_generation(plan, m, assigned, record.generation);
        let rendered = doc.render_for_machine();
        let on_machine = m.desired_sha256.as_deref();
        let same_on_machine = on_machine == Some(sha256_hex(rendered.as_bytes()).as_str());
        if previous != Some(&record) || !same_on_machine {
            let why = match (previous, on_machine) {
                (Some(p), _) if p.generation != record.generation => {
                    "orbiter.yml asks for other node software".to_owned()
                }
                (_, None) => "the machine has no node-desired state yet".to_owned(),
                (None, _) => "Orbiter has no record of its node-desired state".to_owned(),
                _ if !same_on_machine => {
                    "the machine's node-desired file differs from the recorded one".to_owned()
                }
                _ => "its record is re-written (secrets are recorded as digests)".to_owned(),
            };
            plan.step(
                Action::WriteNodeDesired {
                    machine: key.clone(),
                    generation: doc.generation,
                    doc,
                    record,
                },
                why,
            );
        }
    }
}

/// Adds the rules kinds need to the machine's firewall item, those it lacks; a machine without
/// one accepts everything and stays so (a firewall item is an allow-list: adding one would
/// close every other port).
fn add_firewall_rules(items: &mut [node_protocol::Item], rules: Option<&Vec<node_protocol::Rule>>) {
    let Some(rules) = rules else { return };
    if let Some(fw) = items.iter_mut().find_map(|i| match i {
        node_protocol::Item::Firewall(f) => Some(f),
        _ => None,
    }) {
        for r in rules {
            if !fw.allow.contains(r) {
                fw.allow.push(r.clone());
            }
        }
    }
}

/// The document generation that carries a machine's revision, kept in its pool's record (its
/// agent enforcing that generation is the change applied).
fn note_generation(
    plan: &mut Plan,
    m: &MachineObserved,
    assigned: Option<&Result<Assigned, String>>,
    generation: u64,
) {
    let Some(Ok(Assigned::Revision { id, .. })) = assigned else {
        return;
    };
    if let Some(e) = plan
        .rollouts
        .get_mut(&pool_ref(m))
        .and_then(|r| r.machines.get_mut(&m.machine.key))
        && e.revision == *id
    {
        e.generation = Some(generation);
    }
}

/// First contact: the key the machine offers is pinned only if somebody who can know vouches
/// for it — its provider (it made the machine), orbiter.yml (a person declared it), or a person
/// confirming it now. A machine offering another key than the one known is refused.
fn first_contact(input: &PlanInput<'_>, m: &MachineObserved, k: &HostKey, plan: &mut Plan) {
    let key = &m.machine.key;
    let fp = k.fingerprint();
    let why = match &m.machine.known_key {
        Some(known) if known.matches(&k.0, &fp) => match known {
            KnownKey::Vouched(_) => "first contact: its provider created it with this host key",
            KnownKey::Declared(_) => "first contact: the host key orbiter.yml declares",
        },
        Some(known) => {
            plan.blocked.push((
                key.clone(),
                format!(
                    "first contact: it offers host key {fp}, but {}; refused (if it was reinstalled, declare its new key in orbiter.yml)",
                    known.describe()
                ),
            ));
            return;
        }
        None if input.host_keys.accepts(key, &fp) => {
            "first contact: a person confirmed its host key"
        }
        None => {
            plan.blocked.push((
                key.clone(),
                format!(
                    "first contact: it offers host key {fp}, which nobody confirmed; run `orbctl takeoff` on a terminal (it asks), pass --accept-new-hostkeys, or declare `hostkey: {fp}` for it in orbiter.yml"
                ),
            ));
            return;
        }
    };
    plan.step(
        Action::PinHostKey {
            machine: key.clone(),
            fingerprint: fp,
            key: k.clone(),
        },
        format!("{why}; it is recorded in the repository and required from now on"),
    );
}

/// The agent runs, in this Orbiter's version and build. An upgrade of a running agent is part
/// of the pool's revision, so it waits for the machine's wave.
fn agent_step(
    input: &PlanInput<'_>,
    m: &MachineObserved,
    assigned: Option<&Result<Assigned, String>>,
    plan: &mut Plan,
) {
    let agent_ok = m.agent.as_ref().is_some_and(|a| {
        a.version == input.agent.version && a.sha256 == input.agent.sha256 && a.active
    });
    if agent_ok {
        return;
    }
    let upgrade = m
        .agent
        .as_ref()
        .is_some_and(|a| a.active && a.sha256 != input.agent.sha256);
    let in_wave = matches!(
        assigned,
        Some(Ok(Assigned::Revision {
            is_target: true,
            ..
        }))
    );
    if upgrade && !in_wave {
        plan.waiting.push(format!(
            "node-agent upgrade of {} waits for its wave",
            m.machine.key
        ));
        return;
    }
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
            machine: m.machine.key.clone(),
            version: input.agent.version.clone(),
        },
        why,
    );
}
