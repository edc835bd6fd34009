//! The order of the decisions on a cluster a healthy member confirmed: the first phase that
//! has something to do (a step or a reason to wait) ends the call, so at most one membership
//! change or rolling restart is planned at a time. Only the order lives here; each phase is
//! in its module.

use super::ctx::{Ctx, Facts};
use super::{backup, disruption, health, membership, pki, rolling, scaling};
use crate::observe::{MemberEntry, MemberView};
use crate::record::{MemberRecord, MemberState};
use std::ops::ControlFlow;

/// One decision on a cluster that a healthy member confirmed.
pub(super) fn decide(cx: &mut Ctx<'_>, view: &MemberView, list: &[MemberEntry]) {
    let f = Facts::new(cx, view, list);
    let _ = in_order(cx, &f);
}

fn in_order(cx: &mut Ctx<'_>, f: &Facts<'_>) -> ControlFlow<()> {
    let i = cx.i;
    // 1. Joining members: finish one before anything else.
    membership::finish_joining(cx, f)?;
    // 2. Leaving members: leadership away, then remove.
    membership::remove_leaving(cx, f)?;
    // 3. Members in the list that are not ours.
    membership::remove_foreign(cx, f)?;
    // 4. Replace a dead member: machine gone, or unhealthy for the grace period.
    health::replace_dead(cx, f)?;
    health::wait_all_healthy(cx, f)?;
    // Every member healthy: a machine Orbiter wants to reboot may go (the leader hands over).
    disruption::consent(cx, f)?;
    // 5. Authentication (users, roles, `auth enable`) once, and when the users change.
    pki::setup_auth(cx, f)?;

    let members: Vec<MemberRecord> = cx
        .out
        .record
        .members
        .iter()
        .filter(|m| m.state == MemberState::Member)
        .cloned()
        .collect();
    let want = i.spec.nodes.value as usize;

    // 6. Scale in: highest position first.
    scaling::scale_in(cx, f, &members, want)?;
    // 7. Rolling change: version and tuning, one member at a time, leader last.
    let target_package = rolling::roll(cx, f, &members)?;
    // 8. Scale out (and replacements): the first usable candidate that is not a member.
    if members.len() < want {
        scaling::scale_out(cx, &members, want, &target_package, f);
        return ControlFlow::Break(());
    }
    // 9. Certificate rotation: one member at a time, phase by phase.
    pki::rotate(cx, f, &members)?;
    // 10. A scheduled snapshot, from a follower (the leader has enough to do).
    backup::snapshot_if_due(cx, f, &members);
    ControlFlow::Continue(())
}
