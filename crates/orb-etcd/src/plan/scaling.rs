//! Scaling to `spec.nodes` on a healthy cluster: scale in removes the member of the highest
//! pool position (leadership moved away first), scale out adds the first usable candidate as
//! a learner (its machine wiped first when it holds old data). Together because both compare
//! the member count with the wanted one and never change quorum by more than one vote.

use super::ctx::{Ctx, Facts, checked_wipe, joining, usable};
use super::rules::quorum;
use crate::items::{InitialState, initial_cluster, peer_url};
use crate::record::{MemberRecord, MemberState};
use crate::steps::EtcdStep;
use std::net::IpAddr;
use std::ops::ControlFlow;

/// Scale in: highest position first.
pub(super) fn scale_in(
    cx: &mut Ctx<'_>,
    f: &Facts<'_>,
    members: &[MemberRecord],
    want: usize,
) -> ControlFlow<()> {
    let cluster = cx.i.cluster.to_owned();
    let (h, size, leader) = (f.h, f.size, f.leader);
    if members.len() > want {
        let m = members
            .iter()
            .max_by_key(|m| (cx.pos(&m.name) == usize::MAX, cx.pos(&m.name)))
            .expect("non-empty")
            .clone();
        if h - 1 < quorum(size - 1) {
            cx.wait(format!(
                "scale in of {} waits: removing it would leave {} healthy of {}",
                m.name,
                h - 1,
                size - 1
            ));
            return ControlFlow::Break(());
        }
        if let Some(r) = cx.member_mut(&m.name) {
            r.state = MemberState::Leaving;
        }
        cx.wait(format!(
            "scale in: {} members, {want} wanted; removing {}",
            members.len(),
            m.name
        ));
        if m.id == leader {
            let to = members
                .iter()
                .filter(|x| x.name != m.name)
                .max_by_key(|x| cx.obs(&x.name).and_then(|v| v.raft_index).unwrap_or(0))
                .expect("more than one member");
            cx.out.steps.push(EtcdStep::MoveLeader {
                cluster,
                via: m.name.clone(),
                to: to.id.expect("members have ids"),
                to_name: to.name.clone(),
            });
        } else if let (Some(id), Some(via)) = (m.id, f.via(cx, &m.name)) {
            cx.out.steps.push(EtcdStep::RemoveMember {
                cluster,
                via,
                id,
                name: m.name.clone(),
            });
        }
        return ControlFlow::Break(());
    }
    ControlFlow::Continue(())
}

/// Adds the first usable candidate that is no member, as a learner: no quorum change.
pub(super) fn scale_out(
    cx: &mut Ctx<'_>,
    members: &[MemberRecord],
    want: usize,
    target_package: &str,
    f: &Facts<'_>,
) {
    let i = cx.i;
    let cluster = i.cluster.to_owned();
    {
        // Candidates holding data a wipe may not touch are skipped (and stay held).
        let mut skipped = Vec::new();
        let mut next = None;
        for c in i.candidates.iter().filter(|c| {
            usable(c)
                && !cx.out.record.members.iter().any(|m| m.name == c.machine)
                && !cx.out.record.removed.iter().any(|m| m.name == c.machine)
                && !cx.out.record.revoke.iter().any(|r| r.name == c.machine)
        }) {
            if !cx.obs(&c.machine).is_some_and(|v| v.data_dir) {
                next = Some((c, None));
                break;
            }
            match checked_wipe(cx, &c.machine, None, f.list) {
                Ok(step) => {
                    next = Some((c, Some(step)));
                    break;
                }
                Err(why) => skipped.push(format!("{} is not used: {why}", c.machine)),
            }
        }
        for w in skipped {
            cx.wait(w);
        }
        let Some((c, wipe)) = next else {
            cx.wait(format!(
                "{} of {want} members: no ready machine in pool {}.{} to add; add one (Static provider) or wait for the provider",
                members.len(),
                i.spec.provider,
                i.spec.pool
            ));
            return;
        };
        if let Some(step) = wipe {
            cx.wait(format!(
                "{} holds data of an earlier member; wiping it before it joins",
                c.machine
            ));
            cx.out.steps.push(step);
            return;
        }
        let Some(via) = f.via(cx, &c.machine) else {
            return;
        };
        let mut peers: Vec<(&str, IpAddr)> =
            members.iter().map(|m| (m.name.as_str(), m.ip)).collect();
        peers.push((c.machine.as_str(), c.ip));
        let ic = initial_cluster(peers);
        let m = joining(
            c,
            target_package.to_owned(),
            cx.tuning,
            &ic,
            InitialState::Existing,
            i.now,
        );
        cx.rec().members.push(m);
        cx.out.steps.push(EtcdStep::AddMember {
            cluster,
            via,
            name: c.machine.clone(),
            peer_url: peer_url(c.ip),
        });
        cx.wait(format!(
            "scale out: {} of {want} members; adding {}",
            members.len(),
            c.machine
        ));
    }
}
