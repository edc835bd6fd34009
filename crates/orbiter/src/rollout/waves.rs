//! The pure wave planner of one pool: from the pool's record, what its machines report and the
//! clock, which revision each machine's document carries this round, and the next record.

use super::{KEPT, MachineRollout, Phase, Revision, RolloutRecord, RolloutState};
use crate::machine::MachineKey;
use orb_model::rollout::Effective;
use std::collections::BTreeMap;

/// One machine of the pool as the plan sees it.
#[derive(Clone, Debug)]
pub struct MachineStatus {
    pub key: MachineKey,
    /// Orbiter never wrote it a document: nothing runs there that a change could break.
    pub fresh: bool,
    /// Its recorded document is what the target revision gives (asked on first sight only).
    pub matches_target: bool,
    /// The document generation its agent enforces.
    pub generation: Option<u64>,
    /// SHA-256 of the agent that runs there.
    pub agent: Option<String>,
    /// Every item in sync (health checks included), and its cluster kind has no objection.
    pub healthy: bool,
    /// Why it is not healthy, for the record.
    pub why: Option<String>,
    /// Unix seconds: when its agent last reported (the end of its last pass).
    pub reported_at: Option<u64>,
}

pub struct PoolInput<'a> {
    pub pool_ref: &'a str,
    pub settings: &'a Effective,
    pub target: &'a str,
    pub target_rev: &'a Revision,
    pub record: Option<&'a RolloutRecord>,
    /// In the pool's order: the canary is the first that needs the change.
    pub machines: &'a [MachineStatus],
    /// Unix seconds.
    pub now: u64,
    /// A pool earlier in the order still rolls: this one does not start new waves.
    pub waits_for: Option<String>,
    /// A person paused it (orbiter.yml).
    pub paused: bool,
    /// A person asked to undo the rollout to this revision.
    pub undo: bool,
    /// A person asked to continue a stopped rollout to this revision.
    pub retry: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub struct PoolPlan {
    /// The revision each machine's document carries this round ([`KEPT`]: as recorded).
    pub assigned: BTreeMap<MachineKey, String>,
    pub record: RolloutRecord,
    pub waiting: Vec<String>,
    /// Still rolling: later pools wait.
    pub rolling: bool,
    /// The person's flags this round acted on (`undo`, `retry`): Orbiter clears them.
    pub consumed: Vec<&'static str>,
}

pub fn plan_pool(i: &PoolInput<'_>) -> PoolPlan {
    let s = i.settings;
    let mut rec = match i.record {
        Some(r) if r.revision == i.target => r.clone(),
        // A new revision: a new rollout (machines keep what they run).
        Some(r) => RolloutRecord {
            machines: r.machines.clone(),
            revisions: r.revisions.clone(),
            ..RolloutRecord::new(i.target.to_owned(), i.now)
        },
        None => RolloutRecord::new(i.target.to_owned(), i.now),
    };
    rec.revisions
        .insert(i.target.to_owned(), i.target_rev.clone());
    let tag = format!("rollout of {} to revision {}", i.pool_ref, i.target);
    let mut waiting = Vec::new();
    let mut consumed = Vec::new();

    enroll(&mut rec, i);
    judge(&mut rec, i, s);

    if i.retry && rec.state == RolloutState::Stopped {
        consumed.push("retry");
        rec.state = RolloutState::Rolling;
        rec.reason = None;
        for m in rec.machines.values_mut() {
            match m.phase {
                // On the revision before: changed again in a wave.
                Phase::RolledBack => m.phase = Phase::Done,
                Phase::Failed if m.revision == rec.revision => {
                    m.phase = Phase::Changing;
                    m.changed_at = i.now;
                    m.applied_at = None;
                    m.reason = None;
                }
                _ => {}
            }
        }
    }
    if i.undo && rec.state != RolloutState::Stopped {
        consumed.push("undo");
        stop(
            &mut rec,
            "undone by a person (orbctl rollout undo)",
            true,
            i.now,
        );
    }
    if rec.state == RolloutState::Stopped {
        waiting.push(format!(
            "{tag} stopped: {}; a new commit starts a new rollout, `orbctl rollout resume {}` continues this one",
            rec.reason.as_deref().unwrap_or("?"),
            i.pool_ref
        ));
    } else if i.paused {
        rec.state = RolloutState::Paused;
        waiting.push(format!(
            "{tag} paused by a person (orbctl rollout resume {})",
            i.pool_ref
        ));
    } else {
        if rec.state == RolloutState::Paused {
            rec.state = RolloutState::Rolling;
        }
        advance(&mut rec, i, s, &tag, &mut waiting);
    }

    // A machine that joined on the pool's revision is proven by its first healthy report;
    // until then the pool is not settled (a takeoff waits for it).
    let unproven: Vec<String> = rec
        .machines
        .iter()
        .filter(|(_, m)| m.phase == Phase::Done && m.healthy.is_none() && m.revision != KEPT)
        .map(|(k, _)| k.to_string())
        .collect();
    if !unproven.is_empty() {
        waiting.push(format!(
            "{tag}: waiting for the first healthy report of {}",
            unproven.join(", ")
        ));
    }
    let rolling = matches!(rec.state, RolloutState::Rolling | RolloutState::Paused);
    // Revisions no machine runs or may go back to are dropped.
    let keep: Vec<&String> = rec
        .machines
        .values()
        .flat_map(|m| [Some(&m.revision), m.healthy.as_ref(), m.before.as_ref()])
        .flatten()
        .chain([&rec.revision])
        .collect();
    let keep: Vec<String> = keep.into_iter().cloned().collect();
    rec.revisions.retain(|id, _| keep.contains(id));
    PoolPlan {
        assigned: rec
            .machines
            .iter()
            .map(|(k, m)| (k.clone(), m.revision.clone()))
            .collect(),
        record: rec,
        waiting,
        rolling,
        consumed,
    }
}

/// Machines new to the record. A machine Orbiter never wrote to gets the target at once (or,
/// while the rollout is stopped, the revision the others went back to). On first sight (an
/// Orbiter before rollouts wrote the documents) a machine whose document already is the
/// target is done; any other keeps its document until its wave. Machines gone leave.
fn enroll(rec: &mut RolloutRecord, i: &PoolInput<'_>) {
    let first_sight = i.record.is_none();
    let stable = stable_revision(rec);
    for m in i.machines {
        if rec.machines.contains_key(&m.key) {
            continue;
        }
        let entry = if m.fresh {
            let revision = match (&rec.state, &stable) {
                (RolloutState::Stopped, Some(s)) => s.clone(),
                _ => rec.revision.clone(),
            };
            MachineRollout {
                phase: Phase::Done,
                ..MachineRollout::changing(revision, None, i.now)
            }
        } else if first_sight && m.matches_target {
            MachineRollout {
                healthy: Some(rec.revision.clone()),
                phase: Phase::Done,
                ..MachineRollout::changing(rec.revision.clone(), None, i.now)
            }
        } else {
            MachineRollout {
                phase: Phase::Done,
                ..MachineRollout::changing(KEPT.to_owned(), None, i.now)
            }
        };
        rec.machines.insert(m.key.clone(), entry);
    }
    rec.machines
        .retain(|k, _| i.machines.iter().any(|m| m.key == *k));
}

/// The revision most machines were healthy on before this rollout.
fn stable_revision(rec: &RolloutRecord) -> Option<String> {
    let mut count: BTreeMap<&String, usize> = BTreeMap::new();
    for m in rec.machines.values() {
        if let Some(h) = m.before.as_ref().or(m.healthy.as_ref())
            && *h != rec.revision
        {
            *count.entry(h).or_default() += 1;
        }
    }
    count
        .into_iter()
        .max_by_key(|(_, n)| *n)
        .map(|(r, _)| r.clone())
}

impl MachineRollout {
    fn changing(revision: String, before: Option<String>, now: u64) -> MachineRollout {
        MachineRollout {
            revision,
            generation: None,
            healthy: None,
            before,
            phase: Phase::Changing,
            changed_at: now,
            applied_at: None,
            reason: None,
        }
    }
}

/// Machines changing: applied? healthy for the settle window? failed? A failure on the
/// rollout's target stops it.
fn judge(rec: &mut RolloutRecord, i: &PoolInput<'_>, s: &Effective) {
    let mut failures = Vec::new();
    for m in i.machines {
        let Some(e) = rec.machines.get_mut(&m.key) else {
            continue;
        };
        // A machine that joined on the pool's revision is proven once it is healthy.
        if e.phase == Phase::Done && e.healthy.is_none() && m.healthy && e.revision != KEPT {
            e.healthy = Some(e.revision.clone());
        }
        if e.phase != Phase::Changing {
            continue;
        }
        let agent = rec.revisions.get(&e.revision).map(|r| r.agent.as_str());
        let applied = e.generation.is_some()
            && m.generation == e.generation
            && (agent.is_none() || m.agent.as_deref() == agent);
        if applied && e.applied_at.is_none() {
            e.applied_at = Some(i.now);
        }
        let failed = match e.applied_at {
            Some(at) => {
                let settled = i.now >= at + s.settle_secs;
                // Unhealthy counts only in a report made after the settle window: a slow
                // starter that turns green within it passes.
                let reported_after = m.reported_at.is_some_and(|r| r >= at + s.settle_secs);
                if settled && m.healthy {
                    e.phase = Phase::Done;
                    e.healthy = Some(e.revision.clone());
                    e.reason = None;
                    None
                } else if settled && reported_after {
                    let why = m.why.clone().unwrap_or_else(|| "not healthy".into());
                    Some(format!(
                        "not healthy {} s after the change: {why}",
                        s.settle_secs
                    ))
                } else if i.now >= e.changed_at + s.deadline_secs {
                    Some(format!(
                        "no healthy report within the {} s deadline",
                        s.deadline_secs
                    ))
                } else {
                    None
                }
            }
            None if i.now >= e.changed_at + s.deadline_secs => Some(format!(
                "its agent did not apply the change within {} s",
                s.deadline_secs
            )),
            None => None,
        };
        if let Some(why) = failed {
            e.reason = Some(why);
            e.phase = Phase::Failed;
            if e.revision == rec.revision {
                failures.push(m.key.clone());
            }
        }
    }
    if let Some(first) = failures.first() {
        let why = rec.machines[first].reason.clone().unwrap_or_default();
        stop(rec, &format!("{first} failed: {why}"), false, i.now);
    }
}

/// Stops the rollout. Every machine on its revision that was not proven healthy on it (all of
/// them, when undone) goes back to the revision that was healthy on it before; one with
/// nothing to go back to stays, failed.
fn stop(rec: &mut RolloutRecord, reason: &str, all: bool, now: u64) {
    rec.state = RolloutState::Stopped;
    rec.reason = Some(reason.to_owned());
    let target = rec.revision.clone();
    for m in rec.machines.values_mut() {
        let unproven = matches!(m.phase, Phase::Failed | Phase::Changing);
        if m.revision != target || !(unproven || all) {
            continue;
        }
        match m.before.clone() {
            Some(back) if back != target => {
                m.revision = back;
                m.generation = None;
                m.phase = Phase::RolledBack;
                m.changed_at = now;
                m.applied_at = None;
            }
            _ if unproven => {
                m.phase = Phase::Failed;
                m.reason
                    .get_or_insert_with(|| "no earlier healthy revision to go back to".into());
            }
            _ => {}
        }
    }
}

/// Starts the next wave when the last one is done, or finishes the rollout.
fn advance(
    rec: &mut RolloutRecord,
    i: &PoolInput<'_>,
    s: &Effective,
    tag: &str,
    waiting: &mut Vec<String>,
) {
    let target = rec.revision.clone();
    let in_flight: Vec<String> = rec
        .machines
        .iter()
        .filter(|(_, m)| m.revision == target && m.phase == Phase::Changing)
        .map(|(k, _)| k.to_string())
        .collect();
    let pending: Vec<&MachineKey> = i
        .machines
        .iter()
        .map(|m| &m.key)
        .filter(|k| rec.machines.get(*k).is_some_and(|e| e.revision != target))
        .collect();
    if !in_flight.is_empty() {
        waiting.push(format!(
            "{tag}: wave {} settling on {} (done when healthy {} s after the change)",
            rec.waves_done,
            in_flight.join(", "),
            s.settle_secs
        ));
        return;
    }
    if rec.waves_done > 0 && rec.wave_done_at.is_none() {
        rec.wave_done_at = Some(i.now);
    }
    if pending.is_empty() {
        rec.state = RolloutState::Done;
        return;
    }
    let hold = |why: String| format!("{tag}: {} machines wait: {why}", pending.len());
    if s.updates_disabled {
        waiting.push(hold(
            "updates are disabled for the pool (updatesdisabled)".into(),
        ));
        return;
    }
    if let Some(pool) = &i.waits_for {
        waiting.push(hold(format!("pool {pool} rolls first (order)")));
        return;
    }
    if let Some(done) = rec.wave_done_at
        && i.now < done + s.pause_secs
    {
        waiting.push(hold(format!(
            "pause of {} s before wave {}",
            s.pause_secs,
            rec.waves_done + 1
        )));
        return;
    }
    // A new OS update request is disruptive (upgrades, then reboots): inside the window only.
    let new_os_request = i.target_rev.osupdates.is_some()
        && pending.iter().any(|k| {
            let runs = rec
                .machines
                .get(*k)
                .and_then(|e| rec.revisions.get(&e.revision));
            runs.and_then(|r| r.osupdates.as_ref()) != i.target_rev.osupdates.as_ref()
        });
    if new_os_request
        && let Some(w) = &s.window
        && !w.contains(i.now as i64)
    {
        waiting.push(hold(format!(
            "OS updates are disruptive: outside the maintenance window ({} to {} {})",
            w.from, w.to, w.timezone
        )));
        return;
    }
    // Machines already down count against maxunavailable.
    let down = i.machines.iter().filter(|m| !m.healthy).count();
    let budget = s.maxunavailable.of(i.machines.len()).saturating_sub(down);
    let size = if rec.waves_done == 0 {
        (s.canary.max(1) as usize).min(budget)
    } else {
        budget
    };
    if size == 0 {
        waiting.push(hold(format!(
            "{down} machines of the pool are not healthy (maxunavailable)"
        )));
        return;
    }
    let wave: Vec<MachineKey> = pending.into_iter().take(size).cloned().collect();
    for k in &wave {
        let e = rec
            .machines
            .get_mut(k)
            .expect("pending machines are recorded");
        *e = MachineRollout {
            healthy: e.healthy.clone(),
            ..MachineRollout::changing(target.clone(), e.healthy.clone(), i.now)
        };
    }
    rec.waves_done += 1;
    rec.wave_done_at = None;
    let names: Vec<String> = wave.iter().map(|k| k.to_string()).collect();
    waiting.push(format!(
        "{tag}: wave {} ({}) changes {}",
        rec.waves_done,
        if rec.waves_done == 1 {
            "canary"
        } else {
            "wave"
        },
        names.join(", ")
    ));
}
