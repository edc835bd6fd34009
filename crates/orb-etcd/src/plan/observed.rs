//! From observation to record, before any decision: matches the agreed member list (see
//! `agree`) with the record (ids, adoption of members a dead run added, removals done) and
//! copies the observed facts in.
//! Kept apart because every later phase decides from the record this produces.

use super::ctx::Ctx;
use crate::items::{InitialState, Tuning, initial_cluster, peer_url};
use crate::observe::{MemberEntry, MemberView, hex_id};
use crate::record::{MemberRecord, MemberState, RemovedRecord, RevokeRecord};
use std::net::IpAddr;

/// Matches the agreed member list with the record: ids, adoptions, removals done.
pub(super) fn reconcile_with_list(cx: &mut Ctx<'_>, view: &MemberView, list: &[MemberEntry]) {
    let i = cx.i;
    if cx.out.record.cluster_id.is_none() {
        cx.rec().cluster_id = view.cluster_id;
    }
    // In the pool's order, whatever order the answering member lists them in: adoption must
    // give the same record and configs from every member's answer.
    let at = |e: &MemberEntry| {
        i.candidates
            .iter()
            .position(|c| e.peer_urls.contains(&peer_url(c.ip)))
            .unwrap_or(usize::MAX)
    };
    let mut ordered: Vec<&MemberEntry> = list.iter().collect();
    ordered.sort_by_key(|e| (at(e), e.id));
    for e in ordered.iter().copied() {
        let known = cx
            .out
            .record
            .members
            .iter()
            .position(|m| Some(e.id) == m.id || e.peer_urls.contains(&peer_url(m.ip)));
        match known {
            Some(k) => cx.out.record.members[k].id = Some(e.id),
            None => {
                // Not recorded: added by a run that died before recording it, or the record is
                // new. Adopt it when its peer URL is a candidate's.
                let Some(c) = i
                    .candidates
                    .iter()
                    .find(|c| e.peer_urls.contains(&peer_url(c.ip)))
                else {
                    continue;
                };
                let disk = i.observed.get(&c.machine).and_then(|v| v.config.as_ref());
                let started: Vec<(&str, IpAddr)> = ordered
                    .iter()
                    .filter(|x| x.started || x.id == e.id)
                    .filter_map(|x| {
                        let ip = i
                            .candidates
                            .iter()
                            .find(|c| x.peer_urls.contains(&peer_url(c.ip)))?;
                        Some((ip.machine.as_str(), ip.ip))
                    })
                    .collect();
                let (ic, state, package) = match disk {
                    Some(d) if !d.initial_cluster.is_empty() => (
                        d.initial_cluster.clone(),
                        if d.initial_state == "new" {
                            InitialState::New
                        } else {
                            InitialState::Existing
                        },
                        if d.package.is_empty() {
                            i.package.to_owned()
                        } else {
                            d.package.clone()
                        },
                    ),
                    _ => (
                        initial_cluster(started),
                        InitialState::Existing,
                        i.observed
                            .get(&c.machine)
                            .and_then(|v| v.package.clone())
                            .unwrap_or_else(|| i.package.to_owned()),
                    ),
                };
                let tuning = disk
                    .and_then(|d| {
                        Some(Tuning {
                            heartbeatms: d.heartbeatms?,
                            electiontimeoutms: d.electiontimeoutms?,
                            quotabytes: d.quotabytes?,
                        })
                    })
                    .unwrap_or(cx.tuning);
                cx.out.record.removed.retain(|r| r.name != c.machine);
                cx.out.record.members.push(MemberRecord {
                    name: c.machine.clone(),
                    ip: c.ip,
                    id: Some(e.id),
                    state: if e.started {
                        MemberState::Member
                    } else {
                        MemberState::Joining
                    },
                    package,
                    tuning,
                    initial_cluster: ic,
                    initial_state: state,
                    version: None,
                    healthy: false,
                    raft_index: None,
                    db_size: None,
                    unhealthy_since: None,
                    changed_at: Some(i.now),
                });
                cx.wait(format!(
                    "adopted member {} ({}) found in the cluster but not in the record",
                    c.machine,
                    hex_id(e.id)
                ));
            }
        }
    }
    // Recorded members the list no longer has: removal done (or done by someone else).
    let mut gone = Vec::new();
    cx.out.record.members.retain(|m| {
        let listed = m.id.is_some_and(|id| list.iter().any(|e| e.id == id));
        let never_added = m.id.is_none();
        if listed || never_added {
            true
        } else {
            gone.push((m.name.clone(), m.id));
            false
        }
    });
    for (name, id) in gone {
        // Its peer certificates (both generations during a rotation) are revoked next.
        for serial in cx.i.secrets.peer_serials(&name) {
            if !cx.out.record.revoke.iter().any(|r| r.serial == serial) {
                cx.out.record.revoke.push(RevokeRecord {
                    name: name.clone(),
                    serial,
                });
            }
        }
        if !cx.out.record.removed.iter().any(|r| r.name == name) {
            cx.out.record.removed.push(RemovedRecord { name, id });
        }
    }
    // A joining member the list does not have yet (add pending), in a bootstrap that already
    // formed without it: it must be added like any other.
    for m in &mut cx.out.record.members {
        if m.id.is_none() && m.initial_state == InitialState::New {
            m.initial_state = InitialState::Existing;
        }
    }
}

/// Copies observed facts into the record.
pub(super) fn refresh_observed(cx: &mut Ctx<'_>, list: Option<(&MemberView, &[MemberEntry])>) {
    let i = cx.i;
    let before = cx.out.record.clone();
    let now = i.now;
    for m in &mut cx.out.record.members {
        let v = i.observed.get(&m.name);
        let reachable = i
            .candidates
            .iter()
            .any(|c| c.machine == m.name && c.reachable && !c.gone);
        let healthy = reachable && v.is_some_and(|v| v.healthy);
        m.healthy = healthy;
        if healthy {
            m.unhealthy_since = None;
            if let Some(v) = v {
                m.version = v.version.clone().or(m.version.take());
            }
        } else if m.unhealthy_since.is_none() {
            m.unhealthy_since = Some(now);
        }
    }
    if let Some((view, l)) = list {
        let leader = view.leader.and_then(|id| {
            cx.out
                .record
                .members
                .iter()
                .find(|m| m.id == Some(id))
                .map(|m| m.name.clone())
        });
        cx.rec().leader = leader;
        let mut endpoints: Vec<String> = l
            .iter()
            .filter(|e| e.started && !e.learner)
            .flat_map(|e| e.client_urls.clone())
            .collect();
        // In the record's order: the member list's own order varies with the answering member,
        // and a mere reordering must not count as a change (it would commit every loop).
        endpoints.sort();
        cx.rec().endpoints = endpoints;
        cx.rec().alarms = view.alarms.clone();
    }
    // Volatile numbers: only with another change, or when they moved a lot.
    let other_change = cx.out.record != before;
    for m in &mut cx.out.record.members {
        let Some(v) = i.observed.get(&m.name).filter(|v| v.healthy) else {
            continue;
        };
        let moved_db = match (m.db_size, v.db_size) {
            (Some(a), Some(b)) => a.abs_diff(b) >= (1 << 20).max(a / 10),
            (a, b) => a != b,
        };
        let moved_index = match (m.raft_index, v.raft_index) {
            (Some(a), Some(b)) => a.abs_diff(b) >= 100_000,
            (a, b) => a != b,
        };
        if other_change || moved_db || moved_index {
            m.db_size = v.db_size;
            m.raft_index = v.raft_index;
        }
    }
}
