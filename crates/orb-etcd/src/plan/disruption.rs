//! Consent to disrupt a member's machine (a reboot, a replacement): given only while every
//! member is healthy, and never to the leader — leadership moves to the most caught-up other
//! member first, and the leader consents in a later plan once it is a follower. After the
//! reboot the machine is a sick member; the rest of the Orb waits for it (it is not
//! healthy) before disrupting the next.

use super::ctx::{Ctx, Facts};
use crate::record::MemberState;
use crate::steps::EtcdStep;
use std::ops::ControlFlow;

/// Every machine Orbiter wants to disrupt that is a member is refused, with why; a later
/// phase ([`consent`]) lifts the refusal.
pub(super) fn refuse_all(cx: &mut Ctx<'_>) {
    for machine in cx.i.disrupting {
        let member = cx
            .out
            .record
            .members
            .iter()
            .any(|m| m.name == *machine && m.state != MemberState::Leaving);
        if member {
            cx.out.not_yet.insert(
                machine.clone(),
                "etcd is busy with another change or a member is not healthy".to_owned(),
            );
        }
    }
}

/// Every member healthy: a follower consents; the leader hands leadership over first (that
/// step ends the plan's decisions).
pub(super) fn consent(cx: &mut Ctx<'_>, f: &Facts<'_>) -> ControlFlow<()> {
    let mut moved = false;
    let pending: Vec<String> = cx.out.not_yet.keys().cloned().collect();
    for machine in pending {
        let Some(m) = cx
            .out
            .record
            .members
            .iter()
            .find(|m| m.name == machine)
            .cloned()
        else {
            continue;
        };
        if m.id.is_none() || m.id != f.leader {
            cx.out.not_yet.remove(&machine);
            continue;
        }
        let to = cx
            .out
            .record
            .members
            .iter()
            .filter(|x| x.name != m.name && x.state == MemberState::Member)
            .filter(|x| x.id.is_some_and(|id| f.healthy_ids.contains(&id)))
            .max_by_key(|x| cx.obs(&x.name).and_then(|v| v.raft_index).unwrap_or(0))
            .cloned();
        let why = match to {
            Some(to) if cx.out.steps.is_empty() => {
                cx.out.steps.push(EtcdStep::MoveLeader {
                    cluster: cx.i.cluster.to_owned(),
                    via: m.name.clone(),
                    to: to.id.expect("healthy members have ids"),
                    to_name: to.name.clone(),
                });
                moved = true;
                format!("leadership moves from {} to {} first", m.name, to.name)
            }
            Some(_) => "leadership moves away first, after the step planned now".to_owned(),
            None => "it leads, and no other healthy member can take over".to_owned(),
        };
        cx.wait(format!("disrupting {machine}: {why}"));
        cx.out.not_yet.insert(machine, why);
    }
    if moved {
        ControlFlow::Break(())
    } else {
        ControlFlow::Continue(())
    }
}
