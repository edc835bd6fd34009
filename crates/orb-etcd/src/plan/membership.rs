//! Membership changes on a confirmed cluster, one at a time: finish a joining member (add it
//! as a learner, promote it once started, or take it out again after the grace period), remove
//! a leaving member (leadership moved away first, never below quorum), remove unstarted
//! members that are not ours, and wipe former members' machines. Together because each of
//! them is a single add/promote/remove and they share the same quorum checks.

use super::ctx::{Ctx, Facts, checked_wipe};
use super::health::blocked_by_error;
use super::rules::quorum;
use crate::items::peer_url;
use crate::observe::{MemberEntry, hex_id};
use crate::record::{ErrorRecord, MemberRecord, MemberState};
use crate::steps::EtcdStep;
use std::ops::ControlFlow;

/// Former members: stop and wipe (only from an agreed list, checked: see
/// [`super::ctx::checked_wipe`]), then forget them and release the machine.
pub(super) fn wipe_removed(cx: &mut Ctx<'_>, list: Option<&[MemberEntry]>) {
    let removed = cx.out.record.removed.clone();
    for r in removed {
        let cand = cx.cand(&r.name);
        match cand {
            None => {
                cx.rec().removed.retain(|x| x.name != r.name);
                cx.out.releasable.insert(r.name.clone());
            }
            Some(c) if c.gone => {
                cx.rec().removed.retain(|x| x.name != r.name);
                cx.out.releasable.insert(r.name.clone());
            }
            Some(c) if !c.reachable => {
                cx.wait(format!(
                    "wipe of former member {} waits: the machine is unreachable",
                    r.name
                ));
            }
            Some(_) => {
                let v = cx.obs(&r.name);
                let clean = v.is_some_and(|v| !v.data_dir && v.unit != "active");
                if clean {
                    cx.rec().removed.retain(|x| x.name != r.name);
                    cx.out.releasable.insert(r.name.clone());
                    continue;
                }
                let Some(list) = list else {
                    cx.wait(format!(
                        "wipe of former member {} waits for a member list the members agree on",
                        r.name
                    ));
                    continue;
                };
                match checked_wipe(cx, &r.name, r.id, list) {
                    Ok(step) => cx.out.steps.push(step),
                    Err(why) => cx.wait(format!("former member {} is not wiped: {why}", r.name)),
                }
            }
        }
    }
}

/// Joining members: finish one before anything else.
pub(super) fn finish_joining(cx: &mut Ctx<'_>, f: &Facts<'_>) -> ControlFlow<()> {
    let i = cx.i;
    let cluster = i.cluster.to_owned();
    let (list, h, size, all_healthy) = (f.list, f.h, f.size, f.all_healthy);
    let pending: Vec<MemberRecord> = cx
        .out
        .record
        .members
        .iter()
        .filter(|m| m.state == MemberState::Joining)
        .cloned()
        .collect();
    for m in &pending {
        let entry = m.id.and_then(|id| list.iter().find(|e| e.id == id));
        match entry {
            None => {
                // Not added yet (or a previous add died before it ran).
                if let Some(w) = blocked_by_error(cx, &m.name) {
                    cx.wait(w);
                    return ControlFlow::Break(());
                }
                if !all_healthy {
                    cx.wait(format!(
                        "adding {} waits: {h} of {size} members healthy",
                        m.name
                    ));
                    return ControlFlow::Break(());
                }
                let Some(via) = f.via(cx, &m.name) else {
                    cx.wait(format!("adding {} waits: no healthy member to ask", m.name));
                    return ControlFlow::Break(());
                };
                cx.out.steps.push(EtcdStep::AddMember {
                    cluster,
                    via,
                    name: m.name.clone(),
                    peer_url: peer_url(m.ip),
                });
                return ControlFlow::Break(());
            }
            Some(e)
                if e.learner
                    && e.started
                    && cx.cand(&m.name).is_some_and(|c| c.reachable && !c.gone) =>
            {
                // Started and connected: make it a voter (etcd refuses until it caught up,
                // a refusal is retried). With it, the healthy voters are h + 1.
                if h + 1 < quorum(size + 1) {
                    cx.wait(format!(
                        "promoting {} waits: {h} of {size} voters healthy",
                        m.name
                    ));
                    return ControlFlow::Break(());
                }
                let Some(via) = f.via(cx, &m.name) else {
                    cx.wait(format!(
                        "promoting {} waits: no healthy member to ask",
                        m.name
                    ));
                    return ControlFlow::Break(());
                };
                cx.out.steps.push(EtcdStep::PromoteMember {
                    cluster,
                    via,
                    id: e.id,
                    name: m.name.clone(),
                });
                return ControlFlow::Break(());
            }
            Some(e) => {
                if cx.healthy(&m.name) && e.started && !e.learner {
                    if let Some(r) = cx.member_mut(&m.name) {
                        r.state = MemberState::Member;
                    }
                    if cx
                        .out
                        .record
                        .last_error
                        .as_ref()
                        .and_then(|e| e.member.as_deref())
                        == Some(m.name.as_str())
                    {
                        cx.rec().last_error = None;
                    }
                    continue;
                }
                let since = m.changed_at.unwrap_or(i.now);
                let gone = cx.cand(&m.name).is_none_or(|c| c.gone);
                if gone || i.now.saturating_sub(since) >= i.grace_secs {
                    // It never came up: take it out again (it holds a vote it cannot cast).
                    let reason = if gone {
                        "its machine is gone".to_owned()
                    } else {
                        format!(
                            "not healthy {}s after it was added: {}",
                            i.now.saturating_sub(since),
                            cx.obs(&m.name)
                                .and_then(|v| v.error.clone())
                                .unwrap_or_else(|| "not observed".into())
                        )
                    };
                    if !gone {
                        cx.rec().last_error = Some(ErrorRecord {
                            at: i.now,
                            member: Some(m.name.clone()),
                            step: format!("etcd {}: join of {}", i.cluster, m.name),
                            message: reason.clone(),
                        });
                    }
                    if let Some(r) = cx.member_mut(&m.name) {
                        r.state = MemberState::Leaving;
                    }
                    cx.wait(format!("removing {} again: {reason}", m.name));
                    // Falls through to the removal below in this same call.
                } else {
                    cx.wait(format!(
                        "waiting for {} to start and become healthy",
                        m.name
                    ));
                    return ControlFlow::Break(());
                }
            }
        }
    }
    ControlFlow::Continue(())
}

/// Leaving members: leadership away, then remove.
pub(super) fn remove_leaving(cx: &mut Ctx<'_>, f: &Facts<'_>) -> ControlFlow<()> {
    let cluster = cx.i.cluster.to_owned();
    let (list, h, size, leader, healthy_ids) = (f.list, f.h, f.size, f.leader, &f.healthy_ids);
    if let Some(m) = cx
        .out
        .record
        .members
        .iter()
        .find(|m| m.state == MemberState::Leaving)
        .cloned()
    {
        let Some(id) = m.id else {
            cx.rec().members.retain(|x| x.name != m.name);
            return ControlFlow::Break(());
        };
        let is_healthy = healthy_ids.contains(&id);
        let is_learner = list.iter().any(|e| e.id == id && e.learner);
        if Some(id) == leader {
            let to = cx
                .out
                .record
                .members
                .iter()
                .filter(|x| x.name != m.name && x.id.is_some_and(|i| healthy_ids.contains(&i)))
                .filter(|x| x.state == MemberState::Member)
                .max_by_key(|x| {
                    (
                        cx.obs(&x.name).and_then(|v| v.raft_index).unwrap_or(0),
                        usize::MAX - cx.pos(&x.name),
                    )
                })
                .cloned();
            match to {
                Some(to) => cx.out.steps.push(EtcdStep::MoveLeader {
                    cluster,
                    via: m.name.clone(),
                    to: to.id.expect("healthy members have ids"),
                    to_name: to.name.clone(),
                }),
                None => cx.wait(format!(
                    "removing leader {} waits: no healthy member to take over leadership",
                    m.name
                )),
            }
            return ControlFlow::Break(());
        }
        let after = if is_healthy { h - 1 } else { h };
        if !is_learner && after < quorum(size - 1) {
            cx.wait(format!(
                "removing {} waits: {h} of {size} members healthy, removing it would leave {after} healthy of {} (quorum {})",
                m.name,
                size - 1,
                quorum(size - 1)
            ));
            return ControlFlow::Break(());
        }
        let Some(via) = f.via(cx, &m.name) else {
            cx.wait(format!(
                "removing {} waits: no healthy member to ask",
                m.name
            ));
            return ControlFlow::Break(());
        };
        cx.out.steps.push(EtcdStep::RemoveMember {
            cluster,
            via,
            id,
            name: m.name.clone(),
        });
        return ControlFlow::Break(());
    }
    ControlFlow::Continue(())
}

/// Members in the list that are not ours.
pub(super) fn remove_foreign(cx: &mut Ctx<'_>, f: &Facts<'_>) -> ControlFlow<()> {
    let cluster = cx.i.cluster.to_owned();
    let (list, h, size) = (f.list, f.h, f.size);
    for e in list {
        let ours = cx.out.record.members.iter().any(|m| m.id == Some(e.id));
        if ours {
            continue;
        }
        if e.started {
            cx.wait(format!(
                "member {} ({}) is not managed by Orbiter (its peer URL is no machine of the pool); it is left alone",
                if e.name.is_empty() { "?" } else { &e.name },
                hex_id(e.id)
            ));
            continue;
        }
        // Added but never started, and no candidate of ours: it only costs a vote.
        if h >= quorum(size - 1)
            && let Some(via) = f.via(cx, "")
        {
            cx.out.steps.push(EtcdStep::RemoveMember {
                cluster,
                via,
                id: e.id,
                name: e.peer_urls.join(","),
            });
            return ControlFlow::Break(());
        }
    }
    ControlFlow::Continue(())
}
