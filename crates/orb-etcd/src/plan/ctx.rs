//! The planner's working state and the small helpers several phases share: the context
//! ([`Ctx`]: input, plan so far, desired tuning), what a confirmed member list says about
//! votes and health ([`Facts`]), the member a step goes through ([`Facts::via`]) and a new
//! joining member's record. The phases share these through this one module instead of
//! importing each other (the one exception: `membership` asks `health` whether an error
//! blocks a change).

use super::{Candidate, EtcdPlan, PlanInput};
use crate::items::{InitialState, Tuning};
use crate::observe::{MemberEntry, MemberView, hex_id};
use crate::record::{ClusterRecord, MemberRecord, MemberState};
use crate::steps::{EtcdStep, WipeCheck};
use std::collections::BTreeSet;

pub(super) struct Ctx<'a> {
    pub(super) i: &'a PlanInput<'a>,
    pub(super) out: EtcdPlan,
    pub(super) tuning: Tuning,
}

impl<'a> Ctx<'a> {
    pub(super) fn cand(&self, machine: &str) -> Option<&'a Candidate> {
        self.i.candidates.iter().find(|c| c.machine == machine)
    }
    pub(super) fn pos(&self, machine: &str) -> usize {
        self.i
            .candidates
            .iter()
            .position(|c| c.machine == machine)
            .unwrap_or(usize::MAX)
    }
    pub(super) fn obs(&self, machine: &str) -> Option<&'a MemberView> {
        self.i.observed.get(machine)
    }
    pub(super) fn healthy(&self, machine: &str) -> bool {
        self.cand(machine).is_some_and(|c| c.reachable && !c.gone)
            && self.obs(machine).is_some_and(|v| v.healthy)
    }
    pub(super) fn wait(&mut self, s: impl Into<String>) {
        self.out.waiting.push(s.into());
    }
    pub(super) fn rec(&mut self) -> &mut ClusterRecord {
        &mut self.out.record
    }
    pub(super) fn member_mut(&mut self, name: &str) -> Option<&mut MemberRecord> {
        self.out.record.members.iter_mut().find(|m| m.name == name)
    }
}

/// Votes and health of a cluster whose member list a healthy member confirmed, as one
/// decision sees them.
pub(super) struct Facts<'l> {
    /// The confirmed member list (voters and learners).
    pub(super) list: &'l [MemberEntry],
    /// How many voters the list has; quorum is counted among them.
    pub(super) size: usize,
    /// Our members that are healthy voters.
    pub(super) healthy_ids: BTreeSet<u64>,
    /// `healthy_ids.len()`.
    pub(super) h: usize,
    /// Every voter is healthy and started.
    pub(super) all_healthy: bool,
    pub(super) leader: Option<u64>,
}

impl<'l> Facts<'l> {
    pub(super) fn new(cx: &Ctx<'_>, view: &MemberView, list: &'l [MemberEntry]) -> Facts<'l> {
        // Quorum is counted among voters; a learner (a member being added) has no vote.
        let voters: Vec<&MemberEntry> = list.iter().filter(|e| !e.learner).collect();
        let size = voters.len();
        let healthy_ids: BTreeSet<u64> = cx
            .out
            .record
            .members
            .iter()
            .filter(|m| cx.healthy(&m.name))
            .filter_map(|m| m.id)
            .filter(|id| voters.iter().any(|e| e.id == *id))
            .collect();
        let h = healthy_ids.len();
        let all_healthy = h == size && voters.iter().all(|e| e.started);
        Facts {
            list,
            size,
            healthy_ids,
            h,
            all_healthy,
            leader: view.leader,
        }
    }

    /// The machine a step goes through: the leader's when it is one of ours, else any healthy
    /// member's; never `exclude`.
    pub(super) fn via(&self, cx: &Ctx<'_>, exclude: &str) -> Option<String> {
        let (leader, healthy) = (self.leader, &self.healthy_ids);
        let ms = &cx.out.record.members;
        ms.iter()
            .find(|m| m.id.is_some() && m.id == leader && m.name != exclude && cx.healthy(&m.name))
            .or_else(|| {
                ms.iter()
                    .find(|m| m.id.is_some_and(|id| healthy.contains(&id)) && m.name != exclude)
            })
            .map(|m| m.name.clone())
    }
}

/// A recorded member's name, or its hex id when it is not ours.
pub(super) fn name_of(cx: &Ctx<'_>, id: u64) -> String {
    cx.out
        .record
        .members
        .iter()
        .find(|m| m.id == Some(id))
        .map(|m| m.name.clone())
        .unwrap_or_else(|| hex_id(id))
}

/// A checked wipe of `machine`, or why it must not be wiped: the data on it (as its WAL says)
/// must be of the recorded cluster and of `member` when that is known, and the agreed `list`
/// must not have that member. The step checks the same again on the machine, and asks a
/// majority of the list's voters, before it deletes anything.
pub(super) fn checked_wipe(
    cx: &Ctx<'_>,
    machine: &str,
    member: Option<u64>,
    list: &[MemberEntry],
) -> Result<EtcdStep, String> {
    let Some(cid) = cx.out.record.cluster_id else {
        return Err("the record has no cluster id yet".into());
    };
    let mut member_id = member;
    if let Some(v) = cx.obs(machine).filter(|v| v.data_dir) {
        let Some((mid, dcid)) = v.data_ids else {
            return Err(format!(
                "whose data it holds cannot be read ({}); wipe it by hand if it is not needed",
                v.data_ids_error.as_deref().unwrap_or("not observed")
            ));
        };
        if dcid != cid {
            return Err(format!(
                "it holds data of cluster {}, not of the recorded cluster {}; it is left alone (wipe it by hand or take the machine out of the pool)",
                hex_id(dcid),
                hex_id(cid)
            ));
        }
        if let Some(m) = member
            && m != mid
        {
            return Err(format!(
                "its data belongs to member {}, not to the removed member {}; it is left alone",
                hex_id(mid),
                hex_id(m)
            ));
        }
        if list.iter().any(|e| e.id == mid) {
            return Err(format!(
                "the agreed member list still has member {} whose data it holds",
                hex_id(mid)
            ));
        }
        member_id = Some(mid);
    }
    let endpoints: Vec<String> = list
        .iter()
        .filter(|e| e.started && !e.learner)
        .filter_map(|e| e.client_urls.first().cloned())
        .collect();
    if endpoints.is_empty() {
        return Err("no started member to confirm with".into());
    }
    Ok(EtcdStep::WipeMember {
        cluster: cx.i.cluster.to_owned(),
        on: machine.to_owned(),
        check: Some(WipeCheck {
            cluster_id: cid,
            member_id,
            endpoints,
        }),
    })
}

/// Whether `name` runs the PKI its items give it (`@@pki`: the expected label, and etcd
/// restarted since); true outside a rotation and for members not rolled in its phase.
pub(super) fn runs_its_pki(cx: &Ctx<'_>, name: &str) -> bool {
    let Some(r) = &cx.out.record.rotation else {
        return true;
    };
    if !r.done.iter().any(|d| d == name) || cx.i.secrets.next.is_none() {
        return true;
    }
    let want =
        cx.i.secrets
            .member_pki(name, crate::tls::PkiStage::of(Some(r.phase), true))
            .map(|p| p.label);
    cx.obs(name)
        .and_then(|v| v.pki.as_ref())
        .is_some_and(|s| s.fresh && Some(&s.label) == want.as_ref())
}

/// Ready, reachable and not gone: a machine a new member may be placed on.
pub(super) fn usable(c: &Candidate) -> bool {
    c.ready && c.reachable && !c.gone
}

/// The record of a member about to join (bootstrap or add).
pub(super) fn joining(
    c: &Candidate,
    package: String,
    tuning: Tuning,
    ic: &str,
    state: InitialState,
    now: u64,
) -> MemberRecord {
    MemberRecord {
        name: c.machine.clone(),
        ip: c.ip,
        id: None,
        state: MemberState::Joining,
        package,
        tuning,
        initial_cluster: ic.to_owned(),
        initial_state: state,
        version: None,
        healthy: false,
        raft_index: None,
        db_size: None,
        unhealthy_since: None,
        changed_at: Some(now),
    }
}
