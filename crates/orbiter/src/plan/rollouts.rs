//! Which revision of its pool each machine's document carries this round: every pool's
//! rollout planned (see [`crate::rollout`]), pools in their `order`, a later pool starting only
//! when the earlier ones are done.

use super::{PlanInput, machine_ready};
use crate::machine::MachineKey;
use crate::node_desired::{SoftwareSecrets, next_doc};
use crate::observed::MachineObserved;
use crate::rollout::{
    KEPT, MachineStatus, PoolInput, Revision, RolloutRecord, items_for_revision, plan_pool,
    target_revision,
};
use node_protocol::timefmt::parse_rfc3339;
use std::collections::BTreeMap;

/// What the rollouts decided.
#[derive(Default)]
pub(super) struct Rollouts {
    /// What a machine's document is built from; an error says why it cannot be built now (a
    /// secret not set).
    pub by_machine: BTreeMap<MachineKey, Result<Assigned, String>>,
    /// The next record of every pool, by `provider.pool`.
    pub records: BTreeMap<String, RolloutRecord>,
    pub waiting: Vec<String>,
    /// Flags of people the plan acted on, by pool: cleared in orbiter.yml.
    pub consumed: Vec<(String, &'static str)>,
}

#[derive(Clone)]
pub(super) enum Assigned {
    /// Built from this revision of the pool.
    Revision {
        id: String,
        revision: Revision,
        /// The revision orbiter.yml asks for now (not one a machine was put back on).
        is_target: bool,
        secrets: SoftwareSecrets,
    },
    /// The recorded document stays as it is until the machine's wave.
    Kept,
}

pub(super) fn plan(input: &PlanInput<'_>) -> Rollouts {
    let mut out = Rollouts::default();
    // Pools with machines, in rollout order.
    let mut pools: BTreeMap<String, Vec<&MachineObserved>> = BTreeMap::new();
    for m in input.observed.machines() {
        if input.orb.providers.contains_key(&m.machine.key.provider) {
            pools.entry(pool_ref(m)).or_default().push(m);
        }
    }
    let mut ordered: Vec<(i32, String)> = pools
        .keys()
        .map(|p| (input.orb.rollout.effective(p).order, p.clone()))
        .collect();
    ordered.sort();
    let mut rolling_earlier: Option<(i32, String)> = None;
    for (order, pool_ref) in ordered {
        let machines = &pools[&pool_ref];
        let record = input.rollouts.get(&pool_ref);
        let settings = input.orb.rollout.effective(&pool_ref);
        let os = crate::rollout::os::request(
            &settings,
            &pool_ref,
            record.and_then(RolloutRecord::os_request),
            input.now_secs,
        );
        let target = target_revision(
            input.orb,
            &pool_ref,
            &input.agent.sha256,
            os,
            input.secrets,
            input.digest,
        );
        let (id, rev) = match target {
            Ok(t) => t,
            Err(why) => {
                for m in machines {
                    out.by_machine
                        .insert(m.machine.key.clone(), Err(why.clone()));
                }
                if let Some(r) = input.rollouts.get(&pool_ref) {
                    out.records.insert(pool_ref, r.clone());
                }
                continue;
            }
        };
        let id = recorded_id(input, record, &rev).unwrap_or(id);
        let statuses: Vec<MachineStatus> = machines
            .iter()
            .map(|m| status(input, m, record.is_none().then_some(&rev)))
            .collect();
        let flags = input.orb.rollout.pools.get(&pool_ref).map(|l| &l.value);
        let waits_for = rolling_earlier
            .as_ref()
            .filter(|(o, _)| *o < order)
            .map(|(_, p)| p.clone());
        let p = plan_pool(&PoolInput {
            pool_ref: &pool_ref,
            settings: &settings,
            target: &id,
            target_rev: &rev,
            record,
            machines: &statuses,
            now: input.now_secs,
            waits_for,
            paused: flags.is_some_and(|f| f.paused == Some(true)),
            undo: flags.and_then(|f| f.undo.as_deref()) == Some(id.as_str()),
            retry: flags.and_then(|f| f.retry.as_deref()) == Some(id.as_str()),
        });
        if p.rolling && rolling_earlier.is_none() {
            rolling_earlier = Some((order, pool_ref.clone()));
        }
        for (key, rid) in &p.assigned {
            let assigned = if rid == KEPT {
                Ok(Assigned::Kept)
            } else {
                match p.record.revisions.get(rid) {
                    Some(r) => Ok(Assigned::Revision {
                        id: rid.clone(),
                        revision: r.clone(),
                        is_target: *rid == id,
                        secrets: if *rid == id {
                            input.secrets.clone()
                        } else {
                            input.revision_secrets.get(rid).cloned().unwrap_or_default()
                        },
                    }),
                    None => Err(format!("revision {rid} is not recorded")),
                }
            };
            out.by_machine.insert(key.clone(), assigned);
        }
        out.waiting.extend(p.waiting);
        out.consumed
            .extend(p.consumed.iter().map(|f| (pool_ref.clone(), *f)));
        out.records.insert(pool_ref, p.record);
    }
    // Records of pools without machines this round stay as they are.
    for (pool, r) in input.rollouts {
        let provider = pool.split_once('.').map_or(pool.as_str(), |(p, _)| p);
        if !out.records.contains_key(pool)
            && input.orb.providers.keys().any(|id| id.as_str() == provider)
        {
            out.records.insert(pool.clone(), r.clone());
        }
    }
    out
}

/// The recorded target's id when it gives machines exactly what `rev` does: the same items,
/// agent and OS update request, and secrets of the same value. Revision ids hash keyed
/// digests, which a masterkey rotation changes; comparing the values themselves keeps a
/// rotation from starting a rollout that changes nothing.
fn recorded_id(
    input: &PlanInput<'_>,
    record: Option<&RolloutRecord>,
    rev: &Revision,
) -> Option<String> {
    let r = record?;
    let old = r.revisions.get(&r.revision)?;
    let same_shape = old.items == rev.items
        && old.agent == rev.agent
        && old.osupdates == rev.osupdates
        && old.secrets.keys().eq(rev.secrets.keys());
    if !same_shape {
        return None;
    }
    let opened = input.revision_secrets.get(&r.revision)?;
    let same_values =
        rev.secrets
            .keys()
            .all(|path| match (opened.get(path), input.secrets.get(path)) {
                (Some(Ok(a)), Some(Ok(b))) => a == b,
                _ => false,
            });
    same_values.then(|| r.revision.clone())
}

pub(super) fn pool_ref(m: &MachineObserved) -> String {
    format!("{}.{}", m.machine.key.provider, m.machine.pool)
}

/// A machine as the wave planner sees it. `first_sight`: the pool has no record yet, and this
/// is the revision its document is compared with.
fn status(
    input: &PlanInput<'_>,
    m: &MachineObserved,
    first_sight: Option<&Revision>,
) -> MachineStatus {
    let key = &m.machine.key;
    let recorded = input.recorded.node_desired.get(key);
    let objection = input.clusters.unhealthy.get(key);
    // Items are observed before a pass acts on them: only a pass that changed nothing shows
    // what the change did.
    let looked = m
        .current
        .as_ref()
        .and_then(|c| c.last_pass.as_ref())
        .is_some_and(|p| p.actions.is_empty());
    let healthy =
        m.reach.logged_in() && machine_ready(m, input.recorded) && looked && objection.is_none();
    let why = if healthy {
        None
    } else if !m.reach.logged_in() {
        Some("unreachable".to_owned())
    } else if let Some(o) = objection {
        Some(o.clone())
    } else if machine_ready(m, input.recorded) && !looked {
        Some("its agent changed something in its last pass and has not looked since".to_owned())
    } else {
        m.current.as_ref().map(|c| {
            let failing: Vec<String> = c
                .items
                .iter()
                .filter(|i| !i.in_sync)
                .take(3)
                .map(|i| {
                    let what = i.last_error.as_deref().unwrap_or(&i.observed);
                    format!("{}: {}", i.id, crate::text::remote_line(what, 300))
                })
                .collect();
            failing.join("; ")
        })
    };
    let matches_target = match (first_sight, recorded) {
        (Some(rev), Some(doc)) => {
            let agent_ok = m.agent.as_ref().is_some_and(|a| a.sha256 == rev.agent);
            agent_ok
                && items_for_revision(rev, &m.machine, None, input.secrets).is_ok_and(
                    |mut items| {
                        items.extend(input.clusters.items.get(key).into_iter().flatten().cloned());
                        next_doc(Some(doc), items, input.digest).1.generation == doc.generation
                    },
                )
        }
        _ => false,
    };
    let reported_at = m
        .current
        .as_ref()
        .and_then(|c| c.last_pass.as_ref())
        .and_then(|p| {
            let start = parse_rfc3339(&p.started_at).ok()?;
            Some(start.max(0) as u64 + p.duration_ms / 1000)
        });
    MachineStatus {
        key: key.clone(),
        fresh: recorded.is_none(),
        matches_target,
        generation: m.current.as_ref().and_then(|c| c.generation),
        agent: m.agent.as_ref().map(|a| a.sha256.clone()),
        healthy,
        why,
        reported_at,
    }
}
