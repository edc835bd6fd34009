//! The quorum-aware planner: a pure function of the spec, the pool's candidate machines, what
//! each machine's member reports and the record. It returns at most one membership change per
//! call, the items every candidate machine should have, what it waits for and why, the next
//! record, and the machines the provider may destroy.
//!
//! Invariants, whatever the input:
//! - no step leaves fewer healthy members than the quorum of the resulting member list;
//! - one membership change (add, remove) or one rolling restart at a time, and only when
//!   every member is healthy (removing a dead member needs the others healthy);
//! - a member's items change only when the planner rolls it (so config churn cannot restart
//!   several members at once); the peer CRL is the exception, and etcd reads it without a
//!   restart;
//! - nothing is decided from a member list that more than half of the recorded members did
//!   not report alike (same cluster id, same ids and peer URLs; `agree`), and a list naming
//!   another cluster than the recorded one is never accepted: one machine cannot get the
//!   others removed or wiped;
//! - data is wiped only on a machine whose member an agreed list no longer has, and only
//!   when the machine's WAL says the data is that member's and that cluster's; the wipe
//!   command checks both again on the machine and asks a majority of the members before it
//!   deletes (`steps::wipe`);
//! - at most one destructive step (member removal, wipe) per plan;
//! - certificates change one member at a time, and at every moment each member trusts the CA
//!   of every other member's certificates (`pki`: trust bundle first, old CA removed last);
//! - no randomness, no clock: new certificates and CAs are [`EtcdPlan::pki`] changes the
//!   engine makes in its generate step; `now` is an input.
//!
//! Restart safety: the record is the intent (engine contract: commit [`EtcdPlan::record`]
//! before or with applying the steps), and every step is idempotent; a member added by a run
//! that died before recording it is recognised by its peer URL and adopted, with the
//! configuration its machine has on disk.
//!
//! Layout: this file holds the inputs, the outputs and the entry point [`plan`], which runs the
//! phases in order: `agree` (the member list more than half agree on), `observed` (match it
//! with the record), `membership` (wipe former members), then `bootstrap` or `decide` (which
//! orders `membership`, `health`, `pki` (authentication), `scaling`, `rolling`, `pki`
//! (rotation) and `backup`), `pki` (revoke removed members' peer certificates), `health`
//! (settle the last error), the one-destructive-step cap and `node_items`. Shared state and
//! helpers are in `ctx`, etcd's quorum and version rules in `rules`.

mod agree;
mod backup;
mod bootstrap;
mod ctx;
mod decide;
mod disruption;
mod health;
mod membership;
mod node_items;
mod observed;
mod pki;
mod rolling;
mod rules;
mod scaling;

pub use backup::{SNAPSHOT_DIR, backup_due, snapshot_path};
pub use rules::{quorum, semver, version_step};

use crate::items::{InitialState, Tuning};
use crate::observe::MemberView;
use crate::record::{ClusterRecord, MemberState};
use crate::steps::EtcdStep;
use crate::tls::{ClusterSecrets, PkiChange};
use ctx::Ctx;
use node_protocol::Item;
use orb_model::kinds::etcd_cluster::EtcdCluster;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

/// A machine of the cluster's pool, in the pool's stable order (earlier = preferred member,
/// later = removed first).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    /// `provider.machine`; also the member's name.
    pub machine: String,
    pub ip: IpAddr,
    /// Its node agent enforces the last written desired state.
    pub ready: bool,
    pub reachable: bool,
    /// The provider says the machine no longer exists (destroyed, replaced).
    pub gone: bool,
}

pub struct PlanInput<'a> {
    pub cluster: &'a str,
    pub spec: &'a EtcdCluster,
    /// The Debian version of etcd-server/etcd-client for `spec.version` (e.g. `3.4.23-4+b4`),
    /// as the machines' apt sources offer it.
    pub package: &'a str,
    pub candidates: &'a [Candidate],
    /// By machine; a candidate without an entry was not observed (unreachable).
    pub observed: &'a BTreeMap<String, MemberView>,
    pub record: &'a ClusterRecord,
    pub secrets: &'a ClusterSecrets,
    /// Unix seconds.
    pub now: u64,
    /// A member unhealthy (or unreachable) this long is replaced; a joining or rolled member
    /// not healthy this long after its change stops the rollout with an error.
    pub grace_secs: u64,
    /// How long clients get during a certificate rotation to pick up the CA bundle before
    /// members serve new certificates, and again to switch to their new client certificates
    /// before the old CAs are dropped.
    pub client_grace_secs: u64,
    /// Machines Orbiter wants to reboot or replace next (see [`EtcdPlan::not_yet`]).
    pub disrupting: &'a BTreeSet<String>,
}

#[derive(Clone, Default, PartialEq)]
pub struct EtcdPlan {
    pub steps: Vec<EtcdStep>,
    pub waiting: Vec<String>,
    /// etcd items per candidate machine; an empty list = not a member. A machine missing from
    /// the map keeps what it has (its certificates are missing, see `waiting`).
    pub items: BTreeMap<String, Vec<Item>>,
    pub record: ClusterRecord,
    pub releasable: BTreeSet<String>,
    /// Changes of the certificate bundle the engine makes (and seals) in its `generate` step.
    pub pki: Vec<PkiChange>,
    /// Machines of `disrupting` that must not be disrupted yet, and why (absent: consent).
    pub not_yet: BTreeMap<String, String>,
}

/// Items carry private keys: Debug shows how many items each machine gets, not what they are.
impl std::fmt::Debug for EtcdPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let items: BTreeMap<&str, usize> = self
            .items
            .iter()
            .map(|(m, i)| (m.as_str(), i.len()))
            .collect();
        f.debug_struct("EtcdPlan")
            .field("steps", &self.steps)
            .field("waiting", &self.waiting)
            .field("items (count)", &items)
            .field("record", &self.record)
            .field("releasable", &self.releasable)
            .field("pki", &self.pki)
            .finish()
    }
}

pub fn plan(i: &PlanInput<'_>) -> EtcdPlan {
    let mut cx = Ctx {
        i,
        out: EtcdPlan {
            record: i.record.clone(),
            ..EtcdPlan::default()
        },
        tuning: Tuning::from(&i.spec.tuning),
    };
    let (list, silent) = match agree::agreed_list(i) {
        agree::Agreement::Agreed {
            view,
            list,
            dissent,
        } => {
            cx.out.waiting.extend(dissent);
            (Some((view, list)), false)
        }
        agree::Agreement::Silent { dissent } => {
            cx.out.waiting.extend(dissent);
            (None, true)
        }
        agree::Agreement::Disagree(why) => {
            cx.wait(why);
            (None, false)
        }
    };
    if let Some((v, l)) = list {
        observed::reconcile_with_list(&mut cx, v, l);
    }
    observed::refresh_observed(&mut cx, list);
    disruption::refuse_all(&mut cx);
    membership::wipe_removed(&mut cx, list.map(|(_, l)| l));
    match list {
        None if cx.out.record.members.is_empty() && silent => bootstrap::bootstrap(&mut cx),
        None if !silent => {}
        None => {
            let bootstrapping =
                cx.out.record.members.iter().all(|m| {
                    m.state == MemberState::Joining && m.initial_state == InitialState::New
                });
            if bootstrapping {
                cx.wait("bootstrapping: waiting for the members to start and elect a leader");
            } else {
                cx.wait("no healthy member answers: quorum lost or every member unreachable; nothing is changed until one does");
            }
            let alarms: BTreeSet<&String> =
                i.observed.values().flat_map(|v| v.alarms.iter()).collect();
            if !alarms.is_empty() {
                cx.wait(format!(
                    "alarms active: {}; etcd reports every member unhealthy until they are cleared (NOSPACE: compact, defragment, raise tuning.quotabytes, then `etcdctl alarm disarm`)",
                    alarms.into_iter().cloned().collect::<Vec<_>>().join(", ")
                ));
            }
        }
        Some((leader_view, l)) => decide::decide(&mut cx, leader_view, l),
    }
    pki::revoke_removed(&mut cx);
    health::settle_error(&mut cx);
    one_destructive_step(&mut cx);
    node_items::build_items(&mut cx);
    cx.out
}

/// At most one step that removes a member or data per plan: the first one planned; the
/// others wait for a later plan (which decides again from what it then observes).
fn one_destructive_step(cx: &mut Ctx<'_>) {
    let mut first: Option<String> = None;
    let mut waits = Vec::new();
    cx.out.steps.retain(|s| {
        if !s.destructive() {
            return true;
        }
        match &first {
            None => {
                first = Some(s.summary());
                true
            }
            Some(f) => {
                waits.push(format!(
                    "`{}` waits for a later plan: one destructive step at a time (`{f}` first)",
                    s.summary()
                ));
                false
            }
        }
    });
    cx.out.waiting.extend(waits);
}

#[cfg(test)]
mod tests;
