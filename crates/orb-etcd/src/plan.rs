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
//!   several members at once);
//! - data is wiped only on a machine whose member the cluster no longer lists;
//! - nothing is decided from a member list that no healthy member confirmed.
//!
//! Restart safety: the record is the intent (engine contract: commit [`EtcdPlan::record`]
//! before or with applying the steps), and every step is idempotent; a member added by a run
//! that died before recording it is recognised by its peer URL and adopted, with the
//! configuration its machine has on disk.

use crate::items::{
    ClusterView, InitialState, MemberConfig, Tuning, client_url, initial_cluster, member_items,
    peer_url, removed_items,
};
use crate::observe::{MemberEntry, MemberView, hex_id};
use crate::record::{ClusterRecord, ErrorRecord, MemberRecord, MemberState, RemovedRecord};
use crate::steps::EtcdStep;
use crate::tls::ClusterSecrets;
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
            .finish()
    }
}

/// Votes needed among `n` members.
pub fn quorum(n: usize) -> usize {
    n / 2 + 1
}

/// `major.minor.patch` of an etcd version (`3.4.23`, also `3.4.23-4+b4`).
pub fn semver(v: &str) -> Option<(u32, u32, u32)> {
    let core = v.split(['-', '+', '~']).next()?;
    let mut it = core.split('.');
    let t = (
        it.next()?.parse().ok()?,
        it.next()?.parse().ok()?,
        it.next()?.parse().ok()?,
    );
    it.next().is_none().then_some(t)
}

/// Whether members running `from` may move to `to`: same minor (any patch), or the next minor.
pub fn version_step(from: &str, to: &str) -> Result<(), String> {
    let (Some(f), Some(t)) = (semver(from), semver(to)) else {
        return Err(format!(
            "cannot compare versions `{from}` and `{to}` (expected major.minor.patch)"
        ));
    };
    if f.0 != t.0 {
        return Err(format!(
            "{from} → {to} changes the major version; etcd supports one minor at a time"
        ));
    }
    if t.1 < f.1 {
        return Err(format!(
            "{from} → {to} is a downgrade across minor versions, which etcd does not support; set version back to {}.{}.x",
            f.0, f.1
        ));
    }
    if t.1 > f.1 + 1 {
        return Err(format!(
            "{from} → {to} skips a minor version; upgrade to {}.{}.x first",
            f.0,
            f.1 + 1
        ));
    }
    Ok(())
}

struct Ctx<'a> {
    i: &'a PlanInput<'a>,
    out: EtcdPlan,
    tuning: Tuning,
}

impl<'a> Ctx<'a> {
    fn cand(&self, machine: &str) -> Option<&'a Candidate> {
        self.i.candidates.iter().find(|c| c.machine == machine)
    }
    fn pos(&self, machine: &str) -> usize {
        self.i
            .candidates
            .iter()
            .position(|c| c.machine == machine)
            .unwrap_or(usize::MAX)
    }
    fn obs(&self, machine: &str) -> Option<&'a MemberView> {
        self.i.observed.get(machine)
    }
    fn healthy(&self, machine: &str) -> bool {
        self.cand(machine).is_some_and(|c| c.reachable && !c.gone)
            && self.obs(machine).is_some_and(|v| v.healthy)
    }
    fn wait(&mut self, s: impl Into<String>) {
        self.out.waiting.push(s.into());
    }
    fn rec(&mut self) -> &mut ClusterRecord {
        &mut self.out.record
    }
    fn member_mut(&mut self, name: &str) -> Option<&mut MemberRecord> {
        self.out.record.members.iter_mut().find(|m| m.name == name)
    }
}

/// The member list confirmed by the most up-to-date healthy member of the record's cluster.
fn confirmed_list<'a>(i: &'a PlanInput<'a>) -> Option<(&'a MemberView, &'a Vec<MemberEntry>)> {
    i.candidates
        .iter()
        .filter(|c| c.reachable && !c.gone)
        .filter_map(|c| i.observed.get(&c.machine))
        .filter(|v| v.healthy && v.members.is_some())
        .filter(|v| i.record.cluster_id.is_none() || v.cluster_id == i.record.cluster_id)
        .max_by_key(|v| v.raft_index.unwrap_or(0))
        .and_then(|v| Some((v, v.members.as_ref()?)))
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
    let list = confirmed_list(i);
    if let Some((v, l)) = list {
        reconcile_with_list(&mut cx, v, l);
    }
    refresh_observed(&mut cx, list.map(|(v, l)| (v, l.as_slice())));
    wipe_removed(&mut cx);
    match list {
        None if cx.out.record.members.is_empty() => bootstrap(&mut cx),
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
        Some((leader_view, l)) => decide(&mut cx, leader_view, l),
    }
    settle_error(&mut cx);
    build_items(&mut cx);
    cx.out
}

/// Matches the confirmed member list with the record: ids, adoptions, removals done.
fn reconcile_with_list(cx: &mut Ctx<'_>, view: &MemberView, list: &[MemberEntry]) {
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
            gone.push(m.name.clone());
            false
        }
    });
    for name in gone {
        if !cx.out.record.removed.iter().any(|r| r.name == name) {
            cx.out.record.removed.push(RemovedRecord { name });
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
fn refresh_observed(cx: &mut Ctx<'_>, list: Option<(&MemberView, &[MemberEntry])>) {
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

/// Former members: stop and wipe, then forget them and release the machine.
fn wipe_removed(cx: &mut Ctx<'_>) {
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
                } else {
                    cx.out.steps.push(EtcdStep::WipeMember {
                        cluster: cx.i.cluster.to_owned(),
                        on: r.name.clone(),
                    });
                }
            }
        }
    }
}

fn usable(c: &Candidate) -> bool {
    c.ready && c.reachable && !c.gone
}

fn bootstrap(cx: &mut Ctx<'_>) {
    let i = cx.i;
    let want = i.spec.nodes.value as usize;
    // Configs a previous run wrote (record lost before it was committed): adopt them as they
    // are, so the machines are not restarted with a different initial cluster.
    let on_disk: Vec<(&Candidate, &crate::observe::OnDisk)> = i
        .candidates
        .iter()
        .filter_map(|c| Some((c, i.observed.get(&c.machine)?.config.as_ref()?)))
        .filter(|(_, d)| d.initial_state == "new")
        .collect();
    if let Some((_, first)) = on_disk.first() {
        let ic = first.initial_cluster.clone();
        let names: Vec<&str> = ic
            .split(',')
            .filter_map(|p| p.split_once('=').map(|x| x.0))
            .collect();
        let all_known = names.iter().all(|n| cx.cand(n).is_some());
        if all_known && on_disk.iter().all(|(_, d)| d.initial_cluster == ic) {
            for n in names {
                let c = cx.cand(n).expect("checked");
                let disk = cx.obs(n).and_then(|v| v.config.as_ref());
                let package = disk
                    .map(|d| d.package.clone())
                    .filter(|p| !p.is_empty())
                    .unwrap_or_else(|| i.package.to_owned());
                cx.out.record.members.push(joining(
                    c,
                    package,
                    cx.tuning,
                    &ic,
                    InitialState::New,
                    i.now,
                ));
            }
            cx.wait("bootstrapping (resumed from the configs on the machines)");
            return;
        }
    }
    let stale: Vec<&str> = i
        .candidates
        .iter()
        .filter(|c| i.observed.get(&c.machine).is_some_and(|v| v.data_dir))
        .map(|c| c.machine.as_str())
        .collect();
    if !stale.is_empty() {
        cx.wait(format!(
            "bootstrap refused: {} already {} data of cluster {} in {} but there is no record of it; restore the record or wipe the data by hand",
            stale.join(", "),
            if stale.len() == 1 { "holds" } else { "hold" },
            i.cluster,
            crate::items::paths::data(i.cluster)
        ));
        return;
    }
    let ready: Vec<&Candidate> = i
        .candidates
        .iter()
        .filter(|c| usable(c))
        .take(want)
        .collect();
    if ready.len() < want {
        cx.wait(format!(
            "bootstrap waits: {} of {want} machines ready",
            ready.len()
        ));
        return;
    }
    let ic = initial_cluster(ready.iter().map(|c| (c.machine.as_str(), c.ip)));
    for c in ready {
        cx.out.record.members.push(joining(
            c,
            i.package.to_owned(),
            cx.tuning,
            &ic,
            InitialState::New,
            i.now,
        ));
    }
    cx.wait(format!("bootstrapping {want} members"));
}

fn joining(
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

/// One decision on a cluster that a healthy member confirmed.
fn decide(cx: &mut Ctx<'_>, view: &MemberView, list: &[MemberEntry]) {
    let i = cx.i;
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
    let leader = view.leader;
    let via_for = |cx: &Ctx<'_>, exclude: &str| via(cx, leader, &healthy_ids, exclude);
    let cluster = i.cluster.to_owned();
    let blocked_by_error = |cx: &Ctx<'_>, member: &str| -> Option<String> {
        let e = cx.out.record.last_error.as_ref()?;
        (e.member.as_deref() != Some(member)).then(|| {
            format!(
                "rollout stopped: `{}` failed: {}; it resumes when {} is healthy",
                e.step,
                e.message,
                e.member.as_deref().unwrap_or("the cluster")
            )
        })
    };

    // 1. Joining members: finish one before anything else.
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
                    return;
                }
                if !all_healthy {
                    cx.wait(format!(
                        "adding {} waits: {h} of {size} members healthy",
                        m.name
                    ));
                    return;
                }
                let Some(via) = via_for(cx, &m.name) else {
                    cx.wait(format!("adding {} waits: no healthy member to ask", m.name));
                    return;
                };
                cx.out.steps.push(EtcdStep::AddMember {
                    cluster,
                    via,
                    name: m.name.clone(),
                    peer_url: peer_url(m.ip),
                });
                return;
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
                    return;
                }
                let Some(via) = via_for(cx, &m.name) else {
                    cx.wait(format!(
                        "promoting {} waits: no healthy member to ask",
                        m.name
                    ));
                    return;
                };
                cx.out.steps.push(EtcdStep::PromoteMember {
                    cluster,
                    via,
                    id: e.id,
                    name: m.name.clone(),
                });
                return;
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
                    return;
                }
            }
        }
    }

    // 2. Leaving members: leadership away, then remove.
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
            return;
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
            return;
        }
        let after = if is_healthy { h - 1 } else { h };
        if !is_learner && after < quorum(size - 1) {
            cx.wait(format!(
                "removing {} waits: {h} of {size} members healthy, removing it would leave {after} healthy of {} (quorum {})",
                m.name,
                size - 1,
                quorum(size - 1)
            ));
            return;
        }
        let Some(via) = via_for(cx, &m.name) else {
            cx.wait(format!(
                "removing {} waits: no healthy member to ask",
                m.name
            ));
            return;
        };
        cx.out.steps.push(EtcdStep::RemoveMember {
            cluster,
            via,
            id,
            name: m.name.clone(),
        });
        return;
    }

    // 3. Members in the list that are not ours.
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
            && let Some(via) = via_for(cx, "")
        {
            cx.out.steps.push(EtcdStep::RemoveMember {
                cluster,
                via,
                id: e.id,
                name: e.peer_urls.join(","),
            });
            return;
        }
    }

    // 4. Replace a dead member: machine gone, or unhealthy for the grace period.
    let dead = cx
        .out
        .record
        .members
        .iter()
        .filter(|m| m.state == MemberState::Member && m.id != leader)
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
            return;
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
        // Remove it now (it is not the leader: a leader is healthy by definition here).
        if let (Some(id), Some(via)) = (d.id, via_for(cx, &d.name))
            && Some(id) != leader
        {
            cx.out.steps.push(EtcdStep::RemoveMember {
                cluster,
                via,
                id,
                name: d.name.clone(),
            });
        }
        return;
    }

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
        return;
    }

    let members: Vec<MemberRecord> = cx
        .out
        .record
        .members
        .iter()
        .filter(|m| m.state == MemberState::Member)
        .cloned()
        .collect();
    let want = i.spec.nodes.value as usize;

    // 5. Scale in: highest position first.
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
            return;
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
        } else if let (Some(id), Some(via)) = (m.id, via_for(cx, &m.name)) {
            cx.out.steps.push(EtcdStep::RemoveMember {
                cluster,
                via,
                id,
                name: m.name.clone(),
            });
        }
        return;
    }

    // 6. Rolling change: version and tuning, one member at a time, leader last.
    let running_min = members
        .iter()
        .filter_map(|m| m.version.as_deref().or(Some(m.package.as_str())))
        .filter_map(|v| semver(v).map(|s| (s, v.to_owned())))
        .min()
        .map(|(_, v)| v);
    let running_max = members
        .iter()
        .filter_map(|m| m.version.as_deref().or(Some(m.package.as_str())))
        .filter_map(|v| semver(v).map(|s| (s, v.to_owned())))
        .max()
        .map(|(_, v)| v);
    let desired_v = i.spec.version.as_str();
    let version_ok = match (&running_min, &running_max) {
        (Some(lo), Some(hi)) => version_step(lo, desired_v).and(version_step(hi, desired_v)),
        _ => Ok(()),
    };
    // The package each member should run: the desired one, or (refused) the one it has.
    let version_refused = version_ok.is_err();
    if let Err(e) = &version_ok {
        cx.wait(format!(
            "version {desired_v} refused: {e}; the members keep their version"
        ));
    }
    let wanted = |m: &MemberRecord| -> String {
        if version_refused {
            m.package.clone()
        } else {
            i.package.to_owned()
        }
    };
    // New members get the desired package, or (refused) the oldest the cluster runs.
    let target_package = if version_refused {
        members
            .iter()
            .map(|m| m.package.clone())
            .min_by_key(|p| semver(p))
            .unwrap_or_else(|| i.package.to_owned())
    } else {
        i.package.to_owned()
    };
    let behind: Vec<&MemberRecord> = members
        .iter()
        .filter(|m| m.package != wanted(m) || m.tuning != cx.tuning)
        .collect();
    // A member just rolled must run its new version before the next one is touched.
    let unsettled = members.iter().find(|m| {
        semver(&m.package).is_some() && m.version.as_deref().and_then(semver) != semver(&m.package)
    });
    if let Some(u) = unsettled {
        let msg = format!(
            "{} does not run {} (it reports {})",
            u.name,
            u.package,
            u.version.as_deref().unwrap_or("nothing")
        );
        // Healthy on the old binary past the grace period: its agent could not apply the
        // change (package missing, install failed). Say so in the record; nothing else moves.
        let late = u
            .changed_at
            .is_some_and(|t| i.now.saturating_sub(t) >= i.grace_secs);
        let step = format!("etcd {}: rolling change of {}", i.cluster, u.name);
        let message = format!("{msg}; check its node agent's current state");
        if late
            && cx
                .out
                .record
                .last_error
                .as_ref()
                .is_none_or(|e| e.step != step || e.message != message)
        {
            cx.rec().last_error = Some(ErrorRecord {
                at: i.now,
                member: Some(u.name.clone()),
                step,
                message,
            });
        }
        cx.wait(format!("rolling change waits: {msg}"));
        return;
    }
    if !behind.is_empty() {
        let followers: Vec<&&MemberRecord> = behind.iter().filter(|m| m.id != leader).collect();
        let next = followers
            .iter()
            .min_by_key(|m| cx.pos(&m.name))
            .map(|m| (**m).clone());
        let m = match next {
            Some(m) => m,
            None => {
                // Only the leader is left: hand leadership to an updated member first.
                let l = behind[0].clone();
                let to = members
                    .iter()
                    .filter(|x| x.name != l.name)
                    .max_by_key(|x| cx.obs(&x.name).and_then(|v| v.raft_index).unwrap_or(0));
                if let Some(to) = to {
                    cx.out.steps.push(EtcdStep::MoveLeader {
                        cluster,
                        via: l.name.clone(),
                        to: to.id.expect("members have ids"),
                        to_name: to.name.clone(),
                    });
                    cx.wait(format!(
                        "rolling change: moving leadership away from {} before it is changed",
                        l.name
                    ));
                    return;
                }
                l
            }
        };
        let tuning = cx.tuning;
        let now = i.now;
        let package = wanted(&m);
        if let Some(r) = cx.member_mut(&m.name) {
            r.package = package.clone();
            r.tuning = tuning;
            r.changed_at = Some(now);
        }
        cx.wait(format!(
            "rolling change: {} → etcd {package}{}; {} more after it",
            m.name,
            if m.tuning != tuning {
                ", new tuning"
            } else {
                ""
            },
            behind.len() - 1
        ));
        return;
    }

    // 7. Scale out (and replacements): the first usable candidate that is not a member.
    if members.len() < want {
        scale_out(cx, &members, want, &target_package, leader, &healthy_ids);
        return;
    }

    // 8. A scheduled snapshot, from a follower (the leader has enough to do).
    if backup_due(i.spec, &cx.out.record, i.now) {
        let from = members
            .iter()
            .filter(|m| m.id != leader)
            .min_by_key(|m| cx.pos(&m.name))
            .or(members.first());
        if let Some(m) = from {
            cx.out.steps.push(EtcdStep::Snapshot {
                cluster,
                via: m.name.clone(),
                path: snapshot_path(i.cluster, i.now),
            });
        }
    }
}

/// Directory of snapshots, on members (temporarily) and on the backup target.
pub const SNAPSHOT_DIR: &str = "/var/backups/orb-etcd";

/// `<dir>/<cluster>-<UTC time>.db`; names sort by time, which pruning relies on.
pub fn snapshot_path(cluster: &str, now: u64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(now as i64)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{SNAPSHOT_DIR}/{cluster}-{:04}{:02}{:02}T{:02}{:02}{:02}Z.db",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// A backup is configured and the last one is older than its interval (or there is none).
pub fn backup_due(spec: &EtcdCluster, record: &ClusterRecord, now: u64) -> bool {
    let Some(every) = spec.backup.as_ref().and_then(|b| b.every_secs()) else {
        return false;
    };
    record
        .last_backup
        .as_ref()
        .is_none_or(|b| now.saturating_sub(b.at) >= every)
}

/// Adds the first usable candidate that is no member, as a learner: no quorum change.
fn scale_out(
    cx: &mut Ctx<'_>,
    members: &[MemberRecord],
    want: usize,
    target_package: &str,
    leader: Option<u64>,
    healthy_ids: &BTreeSet<u64>,
) {
    let i = cx.i;
    let cluster = i.cluster.to_owned();
    {
        let next = i.candidates.iter().find(|c| {
            usable(c)
                && !cx.out.record.members.iter().any(|m| m.name == c.machine)
                && !cx.out.record.removed.iter().any(|m| m.name == c.machine)
        });
        let Some(c) = next else {
            cx.wait(format!(
                "{} of {want} members: no ready machine in pool {}.{} to add; add one (Static provider) or wait for the provider",
                members.len(),
                i.spec.provider,
                i.spec.pool
            ));
            return;
        };
        if cx.obs(&c.machine).is_some_and(|v| v.data_dir) {
            cx.wait(format!(
                "{} holds data of an earlier member; wiping it before it joins",
                c.machine
            ));
            cx.out.steps.push(EtcdStep::WipeMember {
                cluster,
                on: c.machine.clone(),
            });
            return;
        }
        let Some(via) = via(cx, leader, healthy_ids, &c.machine) else {
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

fn name_of(cx: &Ctx<'_>, id: u64) -> String {
    cx.out
        .record
        .members
        .iter()
        .find(|m| m.id == Some(id))
        .map(|m| m.name.clone())
        .unwrap_or_else(|| hex_id(id))
}

/// The machine a step goes through: the leader's when it is one of ours, else any healthy
/// member's; never `exclude`.
fn via(
    cx: &Ctx<'_>,
    leader: Option<u64>,
    healthy: &BTreeSet<u64>,
    exclude: &str,
) -> Option<String> {
    let ms = &cx.out.record.members;
    ms.iter()
        .find(|m| m.id.is_some() && m.id == leader && m.name != exclude && cx.healthy(&m.name))
        .or_else(|| {
            ms.iter()
                .find(|m| m.id.is_some_and(|id| healthy.contains(&id)) && m.name != exclude)
        })
        .map(|m| m.name.clone())
}

/// Clears the error when its member is a healthy member running what it should (the cause
/// is fixed) and nothing is pending.
fn settle_error(cx: &mut Ctx<'_>) {
    let Some(e) = cx.out.record.last_error.clone() else {
        return;
    };
    if let Some(name) = &e.member {
        let fixed = cx
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

fn build_items(cx: &mut Ctx<'_>) {
    let i = cx.i;
    let s = i.secrets;
    let view = ClusterView {
        id: i.cluster,
        ca_cert: &s.ca.pem.cert,
        client: &s.client,
    };
    let mut items = BTreeMap::new();
    let mut waits = Vec::new();
    for c in i.candidates {
        if c.gone {
            continue;
        }
        if let Some(m) = cx.out.record.member(&c.machine) {
            // An `existing` member gets its items once the cluster lists it.
            if m.initial_state == InitialState::Existing && m.id.is_none() {
                items.insert(c.machine.clone(), Vec::new());
                continue;
            }
            let Some(certs) = s.members.get(&m.name).filter(|x| x.ip == m.ip) else {
                waits.push(format!(
                    "certificates of member {} are missing; Orbiter issues them first (tls::ensure_secrets)",
                    m.name
                ));
                continue;
            };
            let cfg = MemberConfig {
                name: &m.name,
                ip: m.ip,
                package_version: &m.package,
                tuning: m.tuning,
                initial_cluster: &m.initial_cluster,
                initial_state: m.initial_state,
                certs,
            };
            items.insert(c.machine.clone(), member_items(&view, &cfg));
        } else if cx.out.record.removed.iter().any(|r| r.name == c.machine) {
            items.insert(c.machine.clone(), removed_items(i.cluster));
        } else {
            items.insert(c.machine.clone(), Vec::new());
        }
    }
    cx.out.items = items;
    // Candidates that are no member (nor chosen to become one) and hold no data can go.
    for c in i.candidates {
        let involved = cx.out.record.members.iter().any(|m| m.name == c.machine)
            || cx.out.record.removed.iter().any(|m| m.name == c.machine);
        if !involved && i.observed.get(&c.machine).is_none_or(|v| !v.data_dir) {
            cx.out.releasable.insert(c.machine.clone());
        }
    }
    cx.out.waiting.extend(waits);
    cx.out.record.endpoints.sort();
    if cx.out.record.endpoints.is_empty() {
        // Before the first observation: the members' advertised URLs.
        cx.out.record.endpoints = cx
            .out
            .record
            .members
            .iter()
            .filter(|m| m.state == MemberState::Member)
            .map(|m| client_url(m.ip))
            .collect();
    }
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
