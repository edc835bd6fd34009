//! Reboots: at most one machine per pool at a time, only while the others are up and the
//! machine's cluster kind consents; requested by a person (`rebootrequired`) or by the OS
//! (after updates, when the pool's `os.reboot` is `when-required`, inside its window).

use super::rollouts::pool_ref;
use super::{PlanInput, machine_ready};
use crate::action::{Action, Plan};
use crate::machine::MachineKey;
use crate::observed::{MachineObserved, Observed};
use node_protocol::timefmt::{format_rfc3339, parse_rfc3339};
use orb_model::registry::MachineFlag;
use orb_model::{Id, Orb};
use std::collections::BTreeSet;

/// Machines Orbiter wants to reboot: flagged in orbiter.yml, or their OS says it needs one
/// and their pool reboots for that.
pub fn wanted_reboots(orb: &Orb, observed: &Observed) -> BTreeSet<MachineKey> {
    let mut out = BTreeSet::new();
    for (pid, node) in &orb.providers {
        for id in node.spec.flags(MachineFlag::Reboot) {
            out.insert(MachineKey::new(pid, &id.value));
        }
    }
    for m in observed.machines() {
        if os_wants_reboot(orb, m) {
            out.insert(m.machine.key.clone());
        }
    }
    out
}

/// The machine's OS says it needs a reboot, and its pool's `os.reboot` is `when-required`.
fn os_wants_reboot(orb: &Orb, m: &MachineObserved) -> bool {
    m.current.as_ref().is_some_and(|c| c.reboot_required)
        && orb
            .rollout
            .effective(&pool_ref(m))
            .os
            .is_some_and(|o| o.reboot == "when-required")
}

/// The reboot request the machine's document carries: kept while it is pending, made when the
/// machine is flagged (or its OS needs one and the pool's `os.reboot` allows it) and its pool
/// and cluster allow it (one at a time, none while another is down, the cluster kind
/// consenting; an OS reboot only inside the maintenance window), cleared once the machine
/// booted after it.
pub(super) fn request(
    input: &PlanInput<'_>,
    m: &MachineObserved,
    machines: &[&MachineObserved],
    reboot: &[&Id],
    rebooting_pools: &mut BTreeSet<Id>,
    plan: &mut Plan,
) -> Option<String> {
    let recorded = input.recorded;
    let key = &m.machine.key;
    let mut reboot_at = recorded
        .node_desired
        .get(key)
        .and_then(|d| d.reboot_requested_at())
        .map(str::to_owned);
    let flagged = reboot.contains(&&key.machine);
    if !flagged && !os_wants_reboot(input.orb, m) {
        return None;
    }
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
        let down = others.iter().find(|o| {
            !(o.reach.logged_in() && machine_ready(o, recorded))
                || input.clusters.unhealthy.contains_key(&o.machine.key)
        });
        let window = input
            .orb
            .rollout
            .effective(&pool_ref(m))
            .window
            .filter(|w| !flagged && !w.contains(input.now_secs as i64));
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
        } else if let Some(why) = input.clusters.not_yet.get(key) {
            plan.waiting
                .push(format!("reboot of {key}: waits for its cluster: {why}"));
        } else if let Some(w) = window {
            plan.waiting.push(format!(
                "reboot of {key} (its OS needs one): outside the maintenance window ({} to {} {})",
                w.from, w.to, w.timezone
            ));
        } else {
            reboot_at = Some(reboot_request_time(input.now, m));
            requested_now = true;
        }
    }
    if let Some(at) = &reboot_at {
        rebooting_pools.insert(m.machine.pool.clone());
        if !requested_now && rebooted_since(m, at) {
            if flagged {
                plan.step(
                    Action::ClearReboot {
                        machine: key.clone(),
                    },
                    format!("rebooted after {at}"),
                );
            }
            return None;
        }
        plan.waiting.push(format!(
            "reboot of {key} requested at {at}: waiting for it to come back"
        ));
    }
    reboot_at
}

/// One second after `now`: boot times have one-second resolution and the agent counts a boot
/// in the request's second as done, so a request for the current second could be taken as
/// fulfilled by a boot just before it. A request in the future makes the agent wait for it.
/// The machine's own boot time counts too: with its clock ahead of Orbiter's, a request for
/// Orbiter's "now" would look fulfilled on the machine already.
fn reboot_request_time(now: &str, m: &MachineObserved) -> String {
    let booted = booted_at(m);
    match parse_rfc3339(now) {
        Ok(t) => format_rfc3339(t.max(booted.unwrap_or(t)) + 1),
        Err(_) => now.to_owned(),
    }
}

fn booted_at(m: &MachineObserved) -> Option<i64> {
    m.current
        .as_ref()
        .and_then(|c| c.booted_at.as_deref())
        .and_then(|b| parse_rfc3339(b).ok())
}

/// The agent's own rule: a boot at or after the request fulfils it.
fn rebooted_since(m: &MachineObserved, at: &str) -> bool {
    matches!((booted_at(m), parse_rfc3339(at)), (Some(b), Ok(a)) if b >= a)
}
