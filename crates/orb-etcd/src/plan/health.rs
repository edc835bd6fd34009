//! Health, grace periods and errors: replace a member dead past the grace period (only with
//! the others healthy), hold every further change until all members are healthy, stop a
//! rollout behind a recorded error and clear the error once its cause is fixed. Together
//! because they are the planner's answers to members that do not behave.

use super::ctx::{Ctx, Facts, name_of, runs_its_pki};
use super::rules::{quorum, semver};
use crate::record::MemberState;
use crate::steps::EtcdStep;
use std::ops::ControlFlow;

/// Why a change for `member` must not start: the last error is another member's.
pub(super) fn blocked_by_error(cx: &Ctx<'_>, member: &str) -> Option<String> {
    let e = cx.out.record.last_error.as_ref()?;
    (e.member.as_deref() != Some(member)).then(|| {
        format!(
            "rollout stopped: `{}` failed: {}; it resumes when {} is healthy",
            e.step,
            e.message,
            e.member.as_deref().unwrap_or("the cluster")
        )
    })
}

/// Replace a dead member: machine gone, or unhealthy for the grace period.
pub(super) fn replace_dead(cx: &mut Ctx<'_>, f: &Facts<'_>) -> ControlFlow<()> {
    let i = cx.i;
    let cluster = i.cluster.to_owned();
    let (h, size, leader) = (f.h, f.size, f.leader);
    let dead = cx
        .out
        .record
        .members
        .iter()
        // A leader is healthy by definition here, except on a machine to be replaced: it
        // still leads and leaves like any other (leadership moves first, `remove_leaving`).
        .filter(|m| {
            m.state == MemberState::Member
                && (m.id != leader || cx.cand(&m.name).is_some_and(|c| c.gone && c.reachable))
        })
        .filter(|m| {
            let gone = cx.cand(&m.name).is_none_or(|c| c.gone);
            let long = m
                .unhealthy_since
                .is_some_and(|t| i.now.saturating_sub(t) >= i.grace_secs);
            gone || (!m.healthy && long)
        })
        .min_by_key(|m| m.unhealthy_since.unwrap_or(0))
        .cloned();
    if let Some(d) = dead {
        let others_ok = h >= quorum(size) && h >= quorum(size - 1);
        if !others_ok {
            cx.wait(format!(
                "replacing {} waits: only {h} of {size} members healthy",
                d.name
            ));
            return ControlFlow::Break(());
        }
        if let Some(r) = cx.member_mut(&d.name) {
            r.state = MemberState::Leaving;
        }
        cx.wait(format!(
            "replacing {}: {}",
            d.name,
            if cx.cand(&d.name).is_none_or(|c| c.gone) {
                "its machine is gone".to_owned()
            } else {
                format!(
                    "unhealthy since {}s",
                    i.now.saturating_sub(d.unhealthy_since.unwrap_or(i.now))
                )
            }
        ));
        // Remove it now, unless it leads: then leadership moves first.
        if let (Some(id), Some(via)) = (d.id, f.via(cx, &d.name))
            && Some(id) != leader
        {
            cx.out.steps.push(EtcdStep::RemoveMember {
                cluster,
                via,
                id,
                name: d.name.clone(),
            });
        }
        return ControlFlow::Break(());
    }
    ControlFlow::Continue(())
}

/// Nothing else changes until every member is healthy.
pub(super) fn wait_all_healthy(cx: &mut Ctx<'_>, f: &Facts<'_>) -> ControlFlow<()> {
    let (list, healthy_ids, h, size, all_healthy) =
        (f.list, &f.healthy_ids, f.h, f.size, f.all_healthy);
    if !all_healthy {
        let sick: Vec<String> = list
            .iter()
            .filter(|e| !healthy_ids.contains(&e.id))
            .map(|e| name_of(cx, e.id))
            .collect();
        cx.wait(format!(
            "waiting for all members to be healthy ({h} of {size}; not healthy: {})",
            sick.join(", ")
        ));
        return ControlFlow::Break(());
    }
    ControlFlow::Continue(())
}

/// Clears the error when its member is a healthy member running what it should (the cause
/// is fixed) and nothing is pending.
pub(super) fn settle_error(cx: &mut Ctx<'_>) {
    let Some(e) = cx.out.record.last_error.clone() else {
        return;
    };
    if let Some(name) = &e.member {
        let pki_ok = runs_its_pki(cx, name);
        let fixed = pki_ok
            && cx
                .out
                .record
                .members
                .iter()
                .find(|m| &m.name == name)
                .is_none_or(|m| {
                    m.state == MemberState::Member
                        && m.healthy
                        && m.version.as_deref().and_then(semver) == semver(&m.package)
                })
            && !cx.out.record.removed.iter().any(|r| &r.name == name);
        if fixed && cx.out.steps.is_empty() {
            cx.rec().last_error = None;
            return;
        }
    }
    cx.out
        .waiting
        .insert(0, format!("last error: {} failed: {}", e.step, e.message));
}
