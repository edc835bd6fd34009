//! Planner scenarios against a simulated pool: machines whose node agents apply the planned
//! items at once, and an etcd membership that follows the steps with etcd's rules (an added
//! member counts toward quorum before it starts; health needs a quorum of started members).
//! After every applied plan the simulator checks that quorum was never lost.

use super::*;
use crate::items::paths;
use crate::observe::OnDisk;
use crate::tls::{ClusterSecrets, ensure_secrets};
use node_protocol::Item;
use orb_model::Id;
use orb_model::kinds::etcd_cluster::EtcdTuning;
use orb_model::located::Located;

const OLD: &str = "3.4.23-4+b4";
const NEW: &str = "3.5.16-4";
const GRACE: u64 = 300;

#[derive(Clone, Debug)]
struct SimMachine {
    name: String,
    ip: IpAddr,
    gone: bool,
    reachable: bool,
    /// Refuses to run etcd (a broken package, a full disk).
    broken: bool,
    /// Its agent cannot install another package version: it keeps running the old one.
    stuck: bool,
    items: Vec<Item>,
    running: bool,
    data: bool,
    version: Option<String>,
}

#[derive(Clone, Debug)]
struct SimMember {
    id: u64,
    peer: String,
    name: String,
    started: bool,
    learner: bool,
}

struct Sim {
    machines: Vec<SimMachine>,
    members: Vec<SimMember>,
    leader: Option<u64>,
    next_id: u64,
    record: ClusterRecord,
    secrets: ClusterSecrets,
    spec: EtcdCluster,
    package: String,
    now: u64,
    /// Every step applied, in order, with the plan's iteration.
    log: Vec<(usize, EtcdStep)>,
    iteration: usize,
    fail_next_add: Option<String>,
}

fn spec(nodes: u32, version: &str) -> EtcdCluster {
    EtcdCluster {
        provider: Located::new(Id::parse("lab").unwrap()),
        pool: Located::new(Id::parse("etcd").unwrap()),
        nodes: Located::new(nodes),
        version: version.into(),
        tuning: EtcdTuning::default(),
        backup: None,
    }
}

fn config_of(items: &[Item]) -> Option<OnDisk> {
    let content = items.iter().find_map(|i| match i {
        Item::File(f) if f.path == paths::config("kv") => f.content.as_ref().map(|c| c.0.as_str()),
        _ => None,
    })?;
    let mut d = OnDisk::default();
    for l in content.lines() {
        let Some((k, v)) = l.split_once(": ") else {
            if let Some(rest) = l.split("etcd-server ").nth(1) {
                d.package = rest.split(". Edits").next().unwrap_or("").to_owned();
            }
            continue;
        };
        let v = v.trim_matches('\'').to_owned();
        match k {
            "initial-cluster" => d.initial_cluster = v,
            "initial-cluster-state" => d.initial_state = v,
            "heartbeat-interval" => d.heartbeatms = v.parse().ok(),
            "election-timeout" => d.electiontimeoutms = v.parse().ok(),
            "quota-backend-bytes" => d.quotabytes = v.parse().ok(),
            _ => {}
        }
    }
    Some(d)
}

fn package_of(items: &[Item]) -> Option<String> {
    items.iter().find_map(|i| match i {
        Item::Package(p) if p.name == "etcd-server" => Some(p.version.clone()),
        _ => None,
    })
}

impl Sim {
    fn new(n_machines: usize, nodes: u32) -> Sim {
        let machines: Vec<SimMachine> = (1..=n_machines)
            .map(|k| SimMachine {
                name: format!("lab.m{k}"),
                ip: format!("10.0.0.{k}").parse().unwrap(),
                gone: false,
                reachable: true,
                broken: false,
                stuck: false,
                items: Vec::new(),
                running: false,
                data: false,
                version: None,
            })
            .collect();
        let all: Vec<(String, IpAddr)> = machines.iter().map(|m| (m.name.clone(), m.ip)).collect();
        let (secrets, _) = ensure_secrets("kv", None, &all).unwrap();
        Sim {
            machines,
            members: Vec::new(),
            leader: None,
            next_id: 0x1000_0000_0000_0001,
            record: ClusterRecord::default(),
            secrets,
            spec: spec(nodes, "3.4.23"),
            package: OLD.into(),
            now: 1_000_000,
            log: Vec::new(),
            iteration: 0,
            fail_next_add: None,
        }
    }

    fn m(&mut self, name: &str) -> &mut SimMachine {
        self.machines.iter_mut().find(|m| m.name == name).unwrap()
    }

    fn candidates(&self) -> Vec<Candidate> {
        self.machines
            .iter()
            .map(|m| Candidate {
                machine: m.name.clone(),
                ip: m.ip,
                ready: m.reachable && !m.gone,
                reachable: m.reachable && !m.gone,
                gone: m.gone,
            })
            .collect()
    }

    fn member_of(&self, m: &SimMachine) -> Option<&SimMember> {
        self.members.iter().find(|x| x.peer == peer_url(m.ip))
    }

    fn voters(&self) -> usize {
        self.members.iter().filter(|x| !x.learner).count()
    }

    fn has_quorum(&self) -> bool {
        let started_running = self
            .members
            .iter()
            .filter(|x| x.started && !x.learner)
            .filter(|x| {
                self.machines
                    .iter()
                    .any(|m| peer_url(m.ip) == x.peer && m.running && !m.gone && m.reachable)
            })
            .count();
        self.voters() > 0 && started_running >= quorum(self.voters())
    }

    fn observed(&self) -> BTreeMap<String, MemberView> {
        let q = self.has_quorum();
        let mut out = BTreeMap::new();
        for m in &self.machines {
            if m.gone || !m.reachable {
                continue;
            }
            let mem = self.member_of(m);
            let serving = m.running && mem.is_some_and(|x| x.started);
            // A learner fails etcd's health check (no linearizable reads).
            let healthy = serving && q && mem.is_some_and(|x| !x.learner);
            let mut list: Vec<MemberEntry> = self
                .members
                .iter()
                .map(|x| MemberEntry {
                    id: x.id,
                    name: if x.started {
                        x.name.clone()
                    } else {
                        String::new()
                    },
                    peer_urls: vec![x.peer.clone()],
                    client_urls: if x.started {
                        vec![x.peer.replace("2380", "2379")]
                    } else {
                        vec![]
                    },
                    started: x.started,
                    learner: x.learner,
                })
                .collect();
            // etcd lists members in an order of its own, different per answering member.
            let n = list.len().max(1);
            list.rotate_left(self.iteration % n);
            out.insert(
                m.name.clone(),
                MemberView {
                    running: serving,
                    unit: if m.running { "active" } else { "inactive" }.into(),
                    package: package_of(&m.items),
                    data_dir: m.data,
                    healthy,
                    id: mem.filter(|_| serving).map(|x| x.id),
                    name: None,
                    cluster_id: serving.then_some(0xc1),
                    leader: if healthy { self.leader } else { None },
                    raft_index: serving.then_some(100 + self.iteration as u64),
                    raft_term: serving.then_some(2),
                    db_size: serving.then_some(20480),
                    version: if serving { m.version.clone() } else { None },
                    alarms: vec![],
                    members: healthy.then_some(list),
                    config: if m.data || m.running {
                        config_of(&m.items)
                    } else {
                        None
                    },
                    error: (!healthy).then(|| "not healthy".into()),
                },
            );
        }
        out
    }

    fn plan(&self) -> EtcdPlan {
        let obs = self.observed();
        let cands = self.candidates();
        plan(&PlanInput {
            cluster: "kv",
            spec: &self.spec,
            package: &self.package,
            candidates: &cands,
            observed: &obs,
            record: &self.record,
            secrets: &self.secrets,
            now: self.now,
            grace_secs: GRACE,
        })
    }

    fn run_step(&mut self, s: &EtcdStep) -> Result<String, String> {
        match s {
            EtcdStep::AddMember { name, peer_url, .. } => {
                if self.fail_next_add.as_deref() == Some(name) {
                    self.fail_next_add = None;
                    return Err("etcdserver: unhealthy cluster".into());
                }
                assert!(self.has_quorum(), "add without quorum: {s:?}");
                if let Some(x) = self.members.iter().find(|x| &x.peer == peer_url) {
                    return Ok(format!(
                        "@@already\n{{\"members\":[{{\"ID\":{},\"peerURLs\":[\"{peer_url}\"]}}]}}",
                        x.id
                    ));
                }
                let id = self.next_id;
                self.next_id += 0x1111;
                self.members.push(SimMember {
                    id,
                    peer: peer_url.clone(),
                    name: name.clone(),
                    started: false,
                    learner: true,
                });
                Ok(format!("{{\"member\":{{\"ID\":{id},\"isLearner\":true}}}}"))
            }
            EtcdStep::PromoteMember { id, .. } => {
                assert!(self.has_quorum(), "promote without quorum: {s:?}");
                let x = self
                    .members
                    .iter_mut()
                    .find(|x| x.id == *id)
                    .ok_or("member not found")?;
                assert!(x.started, "promoting a learner that never started");
                x.learner = false;
                Ok(String::new())
            }
            EtcdStep::RemoveMember { id, .. } => {
                assert!(self.has_quorum(), "remove without quorum: {s:?}");
                assert_ne!(Some(*id), self.leader, "removing the leader: {s:?}");
                self.members.retain(|x| x.id != *id);
                Ok(String::new())
            }
            EtcdStep::MoveLeader { via, to, .. } => {
                let via_id = self
                    .member_of(
                        &self
                            .machines
                            .iter()
                            .find(|m| &m.name == via)
                            .unwrap()
                            .clone(),
                    )
                    .map(|x| x.id);
                assert_eq!(via_id, self.leader, "move-leader must run on the leader");
                self.leader = Some(*to);
                Ok(String::new())
            }
            EtcdStep::WipeMember { on, .. } => {
                let ip = self.m(on).ip;
                assert!(
                    !self.members.iter().any(|x| x.peer == peer_url(ip)),
                    "wiping a listed member: {s:?}"
                );
                let m = self.m(on);
                m.data = false;
                m.running = false;
                Ok("@@wiped".into())
            }
            EtcdStep::Snapshot { .. } => Ok(format!("@@snapshot 20480 {}", "ab".repeat(32))),
            _ => Ok(String::new()),
        }
    }

    /// Node agents apply their items; etcd starts, restarts, stops.
    fn settle(&mut self) {
        for k in 0..self.machines.len() {
            let m = self.machines[k].clone();
            if m.gone || !m.reachable {
                continue;
            }
            let active = m
                .items
                .iter()
                .any(|i| matches!(i, Item::Unit(u) if u.active == Some(true)));
            if !active || m.broken {
                self.machines[k].running = false;
                continue;
            }
            let cfg = config_of(&m.items).unwrap();
            let listed = self.members.iter().any(|x| x.peer == peer_url(m.ip));
            // A member starting with `existing` that the cluster does not list fails.
            let bootstrapping = cfg.initial_state == "new" && !m.data;
            if !listed && !bootstrapping {
                self.machines[k].running = false;
                continue;
            }
            if cfg.initial_state == "new" && !m.data && self.members.is_empty() {
                // First start of a bootstrap: the initial cluster becomes the member list.
                for p in cfg.initial_cluster.split(',') {
                    let (name, url) = p.split_once('=').unwrap();
                    let id = self.next_id;
                    self.next_id += 0x1111;
                    self.members.push(SimMember {
                        id,
                        peer: url.into(),
                        name: name.into(),
                        started: false,
                        learner: false,
                    });
                }
            }
            let m = &mut self.machines[k];
            m.running = true;
            m.data = true;
            if !(m.stuck && m.version.is_some()) {
                m.version = Some(cfg.package.split('-').next().unwrap().to_owned());
            }
            let peer = peer_url(m.ip);
            if let Some(x) = self.members.iter_mut().find(|x| x.peer == peer) {
                x.started = true;
            }
        }
        // A leader is elected among serving members when there is quorum.
        let serving: Vec<u64> = self
            .members
            .iter()
            .filter(|x| x.started)
            .filter(|x| {
                self.machines
                    .iter()
                    .any(|m| peer_url(m.ip) == x.peer && m.running && !m.gone && m.reachable)
            })
            .map(|x| x.id)
            .collect();
        if self.has_quorum() {
            if !self.leader.is_some_and(|l| serving.contains(&l)) {
                self.leader = serving.first().copied();
            }
        } else {
            self.leader = None;
        }
    }

    /// One loop iteration: plan, commit the record, run steps, write items, let time pass.
    fn step(&mut self) -> EtcdPlan {
        self.iteration += 1;
        let had_quorum = self.has_quorum();
        let p = self.plan();
        assert!(
            p.steps
                .iter()
                .filter(|s| matches!(
                    s,
                    EtcdStep::AddMember { .. }
                        | EtcdStep::RemoveMember { .. }
                        | EtcdStep::PromoteMember { .. }
                ))
                .count()
                <= 1,
            "more than one membership change: {:?}",
            p.steps
        );
        self.record = p.record.clone();
        for s in &p.steps {
            self.log.push((self.iteration, s.clone()));
            let r = self.run_step(s);
            self.record
                .note_step(s, r.as_deref().map_err(|e| e.as_str()), self.now);
        }
        for (machine, items) in &p.items {
            self.m(machine).items = items.clone();
        }
        self.settle();
        if had_quorum {
            assert!(
                self.has_quorum(),
                "quorum lost after {:?} / waiting {:?}",
                p.steps,
                p.waiting
            );
        }
        self.now += 10;
        p
    }

    /// Iterates until a plan has no step and changes nothing, or panics after `max`.
    fn converge(&mut self, max: usize) -> EtcdPlan {
        for _ in 0..max {
            let before = self.record.clone();
            let items_before: BTreeMap<String, Vec<Item>> = self
                .machines
                .iter()
                .map(|m| (m.name.clone(), m.items.clone()))
                .collect();
            let p = self.step();
            let same_items = p.items.iter().all(|(m, i)| items_before.get(m) == Some(i));
            if p.steps.is_empty() && p.record == before && same_items {
                return p;
            }
        }
        panic!(
            "no convergence after {max} iterations; record {:#?}",
            self.record
        );
    }

    fn started_members(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .members
            .iter()
            .filter(|x| x.started)
            .map(|x| x.name.clone())
            .collect();
        v.sort();
        v
    }
}

fn bootstrapped(machines: usize, nodes: u32) -> Sim {
    let mut s = Sim::new(machines, nodes);
    s.converge(20);
    s
}

#[test]
fn bootstrap_three_of_five_candidates() {
    let mut s = Sim::new(5, 3);
    let p = s.step();
    assert!(
        p.steps.is_empty(),
        "bootstrap needs no etcd step: {:?}",
        p.steps
    );
    assert!(
        p.waiting.iter().any(|w| w.contains("bootstrapping 3")),
        "{:?}",
        p.waiting
    );
    assert_eq!(p.items["lab.m4"], Vec::<Item>::new());
    let p = s.converge(20);
    assert_eq!(s.started_members(), ["lab.m1", "lab.m2", "lab.m3"]);
    assert!(
        s.record
            .members
            .iter()
            .all(|m| m.state == MemberState::Member && m.healthy && m.id.is_some())
    );
    assert_eq!(s.record.endpoints.len(), 3);
    assert!(s.record.leader.is_some());
    assert!(p.releasable.contains("lab.m4") && !p.releasable.contains("lab.m1"));
    assert!(p.waiting.is_empty(), "{:?}", p.waiting);
    let cfg = config_of(&p.items["lab.m2"]).unwrap();
    assert_eq!(cfg.initial_state, "new");
    assert_eq!(
        cfg.initial_cluster,
        "lab.m1=https://10.0.0.1:2380,lab.m2=https://10.0.0.2:2380,lab.m3=https://10.0.0.3:2380"
    );
}

#[test]
fn bootstrap_waits_for_enough_ready_machines() {
    let mut s = Sim::new(3, 3);
    s.m("lab.m2").reachable = false;
    let p = s.step();
    assert!(p.record.members.is_empty());
    assert!(
        p.waiting
            .iter()
            .any(|w| w == "bootstrap waits: 2 of 3 machines ready"),
        "{:?}",
        p.waiting
    );
}

#[test]
fn bootstrap_refuses_machines_with_unrecorded_data() {
    let mut s = Sim::new(3, 3);
    s.m("lab.m3").data = true;
    let p = s.step();
    assert!(p.record.members.is_empty() && p.steps.is_empty());
    assert!(
        p.waiting[0].contains("bootstrap refused: lab.m3 already holds data"),
        "{:?}",
        p.waiting
    );
    assert!(
        !p.releasable.contains("lab.m3"),
        "a machine with data is not released"
    );
}

#[test]
fn converged_cluster_plans_nothing_and_does_not_churn() {
    let mut s = bootstrapped(3, 3);
    let rec = s.record.clone();
    for _ in 0..5 {
        let p = s.step();
        assert!(
            p.steps.is_empty() && p.waiting.is_empty(),
            "{:?} {:?}",
            p.steps,
            p.waiting
        );
        assert_eq!(p.record, rec, "raft index ticks must not change the record");
    }
}

#[test]
fn scale_out_one_member_at_a_time_then_in_highest_first() {
    let mut s = bootstrapped(5, 3);
    s.spec.nodes.value = 5;
    s.converge(30);
    assert_eq!(s.started_members().len(), 5);
    let adds: Vec<usize> = s
        .log
        .iter()
        .filter(|(_, st)| matches!(st, EtcdStep::AddMember { .. }))
        .map(|(i, _)| *i)
        .collect();
    assert_eq!(adds.len(), 2);
    let promotes = s
        .log
        .iter()
        .filter(|(_, st)| matches!(st, EtcdStep::PromoteMember { .. }))
        .count();
    assert_eq!(promotes, 2, "every learner is promoted once");
    assert!(
        adds[1] > adds[0] + 1,
        "the second add waits for the first member to be healthy"
    );
    let m4 = s.record.member("lab.m4").unwrap();
    assert_eq!(m4.initial_state, InitialState::Existing);
    assert_eq!(m4.initial_cluster.matches("https://").count(), 4);
    // Existing members' configs were not touched by the scale out.
    assert_eq!(
        s.record
            .member("lab.m1")
            .unwrap()
            .initial_cluster
            .matches("https://")
            .count(),
        3
    );

    s.log.clear();
    s.spec.nodes.value = 3;
    let p = s.converge(40);
    assert_eq!(s.started_members(), ["lab.m1", "lab.m2", "lab.m3"]);
    let removed: Vec<String> = s
        .log
        .iter()
        .filter_map(|(_, st)| match st {
            EtcdStep::RemoveMember { name, .. } => Some(name.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(removed, ["lab.m5", "lab.m4"], "highest position first");
    let wiped: Vec<&str> = s
        .log
        .iter()
        .filter_map(|(_, st)| match st {
            EtcdStep::WipeMember { on, .. } => Some(on.as_str()),
            _ => None,
        })
        .collect();
    assert!(wiped.contains(&"lab.m5") && wiped.contains(&"lab.m4"));
    assert!(p.releasable.contains("lab.m4") && p.releasable.contains("lab.m5"));
    assert!(s.record.removed.is_empty());
    assert!(!s.m("lab.m5").data);
}

#[test]
fn removing_the_leader_moves_leadership_first() {
    let mut s = bootstrapped(3, 3);
    s.spec.nodes.value = 1;
    // Make the member to go (highest position) the leader.
    let m3 = s.members.iter().find(|x| x.name == "lab.m3").unwrap().id;
    s.leader = Some(m3);
    let p = s.step();
    assert!(
        matches!(&p.steps[..], [EtcdStep::MoveLeader { via, .. }] if via == "lab.m3"),
        "{:?}",
        p.steps
    );
    let p = s.step();
    assert!(
        matches!(&p.steps[..], [EtcdStep::RemoveMember { name, .. }] if name == "lab.m3"),
        "{:?}",
        p.steps
    );
    s.converge(30);
    assert_eq!(s.started_members(), ["lab.m1"]);
}

#[test]
fn no_scale_in_while_a_member_is_unhealthy() {
    let mut s = bootstrapped(5, 5);
    s.spec.nodes.value = 3;
    s.m("lab.m2").reachable = false;
    let p = s.step();
    assert!(p.steps.is_empty(), "{:?}", p.steps);
    assert!(
        p.waiting
            .iter()
            .any(|w| w
                .contains("waiting for all members to be healthy (4 of 5; not healthy: lab.m2)")),
        "{:?}",
        p.waiting
    );
}

#[test]
fn quorum_lost_means_hands_off() {
    let mut s = bootstrapped(3, 3);
    s.m("lab.m2").reachable = false;
    s.m("lab.m3").reachable = false;
    s.now += 10 * GRACE;
    let p = s.step();
    assert!(p.steps.is_empty());
    assert!(
        p.waiting
            .iter()
            .any(|w| w.contains("no healthy member answers")),
        "{:?}",
        p.waiting
    );
    // Items stay: nothing is rewritten while the cluster cannot be asked.
    assert_eq!(p.items["lab.m1"], s.m("lab.m1").items);
}

#[test]
fn gone_machine_is_replaced_by_a_spare_quorum_kept() {
    let mut s = bootstrapped(4, 3);
    s.m("lab.m2").gone = true;
    s.settle();
    let p = s.step();
    assert!(
        matches!(&p.steps[..], [EtcdStep::RemoveMember { name, .. }] if name == "lab.m2"),
        "{:?} {:?}",
        p.steps,
        p.waiting
    );
    assert!(
        p.waiting
            .iter()
            .any(|w| w.contains("replacing lab.m2: its machine is gone"))
    );
    let p = s.converge(30);
    assert_eq!(s.started_members(), ["lab.m1", "lab.m3", "lab.m4"]);
    assert!(p.releasable.contains("lab.m2"));
}

#[test]
fn unhealthy_member_is_replaced_only_after_the_grace_period() {
    let mut s = bootstrapped(4, 3);
    s.m("lab.m3").broken = true;
    s.settle();
    let p = s.step();
    assert!(p.steps.is_empty(), "{:?}", p.steps);
    assert!(
        p.waiting.iter().any(|w| w.contains("not healthy: lab.m3")),
        "{:?}",
        p.waiting
    );
    s.now += GRACE;
    let p = s.step();
    assert!(
        matches!(&p.steps[..], [EtcdStep::RemoveMember { name, .. }] if name == "lab.m3"),
        "{:?}",
        p.steps
    );
    s.converge(30);
    assert_eq!(s.started_members(), ["lab.m1", "lab.m2", "lab.m4"]);
    assert!(!s.m("lab.m3").data, "the replaced member's data is wiped");
}

#[test]
fn no_spare_machine_says_so() {
    let mut s = bootstrapped(3, 3);
    s.m("lab.m3").gone = true;
    s.settle();
    s.step();
    let p = s.converge(10);
    assert!(
        p.waiting
            .iter()
            .any(|w| w.contains("2 of 3 members: no ready machine in pool lab.etcd")),
        "{:?}",
        p.waiting
    );
}

#[test]
fn kill_after_member_add_before_record_adopts_instead_of_adding_twice() {
    let mut s = bootstrapped(4, 3);
    s.spec.nodes.value = 5;
    s.machines.push(SimMachine {
        name: "lab.m5".into(),
        ip: "10.0.0.5".parse().unwrap(),
        ..s.machines[0].clone()
    });
    s.m("lab.m5").items.clear();
    s.m("lab.m5").running = false;
    s.m("lab.m5").data = false;
    let (sec, _) = ensure_secrets(
        "kv",
        Some(s.secrets.clone()),
        &[("lab.m5".into(), "10.0.0.5".parse().unwrap())],
    )
    .unwrap();
    s.secrets = sec;
    let old_record = s.record.clone();
    let p = s.plan();
    let [EtcdStep::AddMember { name, .. }] = &p.steps[..] else {
        panic!("{:?}", p.steps)
    };
    assert_eq!(name, "lab.m4");
    // The add runs, then Orbiter dies: neither the record nor the items are written.
    s.run_step(&p.steps[0]).unwrap();
    s.record = old_record;
    let p = s.step();
    assert!(p.steps.is_empty(), "no second add: {:?}", p.steps);
    assert!(
        p.waiting
            .iter()
            .any(|w| w.contains("adopted member lab.m4")),
        "{:?}",
        p.waiting
    );
    let m4 = p.record.member("lab.m4").unwrap();
    assert_eq!(m4.state, MemberState::Joining);
    assert_eq!(m4.initial_state, InitialState::Existing);
    assert!(
        !p.items["lab.m4"].is_empty(),
        "the adopted member gets its items"
    );
    s.converge(30);
    assert_eq!(s.started_members().len(), 5);
    assert_eq!(
        s.log
            .iter()
            .filter(|(_, st)| matches!(st, EtcdStep::AddMember { name, .. } if name == "lab.m4"))
            .count(),
        0
    );
}

#[test]
fn kill_after_bootstrap_items_before_record_resumes_from_disk() {
    let mut s = Sim::new(4, 3);
    let p = s.plan();
    for (m, items) in &p.items {
        s.m(m).items = items.clone();
    }
    s.settle();
    // The record was never committed; machine 1 is briefly unreachable so a fresh bootstrap
    // choice would differ.
    s.m("lab.m1").reachable = false;
    let p = s.step();
    assert!(
        p.record
            .members
            .iter()
            .map(|m| m.name.as_str())
            .eq(["lab.m1", "lab.m2", "lab.m3"]),
        "{:?}",
        p.record.members
    );
    assert_eq!(p.items["lab.m4"], Vec::<Item>::new());
    s.m("lab.m1").reachable = true;
    s.converge(20);
    assert_eq!(s.started_members(), ["lab.m1", "lab.m2", "lab.m3"]);
}

#[test]
fn rolling_upgrade_followers_first_leader_last_one_at_a_time() {
    let mut s = bootstrapped(3, 3);
    let leader_name = s.record.leader.clone().unwrap();
    s.spec.version = "3.5.16".into();
    s.package = NEW.into();
    let mut order = Vec::new();
    for _ in 0..40 {
        let before = s.record.clone();
        let p = s.step();
        let changing: Vec<&MemberRecord> = p
            .record
            .members
            .iter()
            .filter(|m| {
                m.package == NEW
                    && s.machines
                        .iter()
                        .find(|x| x.name == m.name)
                        .unwrap()
                        .version
                        .as_deref()
                        != Some("3.5.16")
            })
            .collect();
        assert!(changing.len() <= 1, "two members changing at once");
        for m in &p.record.members {
            let was = before.member(&m.name).unwrap();
            if was.package != m.package {
                order.push(m.name.clone());
            }
        }
        if p.steps.is_empty() && p.record == before {
            break;
        }
    }
    assert_eq!(order.len(), 3, "{order:?}");
    assert_eq!(
        order.last().unwrap(),
        &leader_name,
        "leader last: {order:?}"
    );
    assert!(
        s.log
            .iter()
            .any(|(_, st)| matches!(st, EtcdStep::MoveLeader { via, .. } if via == &leader_name))
    );
    assert!(
        s.machines
            .iter()
            .all(|m| m.version.as_deref() == Some("3.5.16"))
    );
    assert!(
        s.record
            .members
            .iter()
            .all(|m| m.version.as_deref() == Some("3.5.16"))
    );
}

#[test]
fn skipping_a_minor_or_downgrading_is_refused_and_nothing_changes() {
    for (from_v, from_p, to_v, to_p, why) in [
        (
            "3.4.23",
            OLD,
            "3.6.0",
            "3.6.0-1",
            "skips a minor version; upgrade to 3.5.x first",
        ),
        (
            "3.5.16",
            NEW,
            "3.4.23",
            OLD,
            "downgrade across minor versions",
        ),
    ] {
        let mut s = Sim::new(3, 3);
        s.spec.version = from_v.into();
        s.package = from_p.into();
        s.converge(20);
        let items = s.m("lab.m1").items.clone();
        s.spec.version = to_v.into();
        s.package = to_p.into();
        let p = s.step();
        assert!(p.steps.is_empty());
        assert!(
            p.waiting
                .iter()
                .any(|w| w.contains(why) && w.contains("refused")),
            "{:?}",
            p.waiting
        );
        assert_eq!(p.items["lab.m1"], items);
    }
}

#[test]
fn a_refused_version_mid_upgrade_downgrades_nobody() {
    let mut s = bootstrapped(3, 3);
    s.spec.version = "3.5.16".into();
    s.package = NEW.into();
    // Roll until one member runs 3.5.
    while !s
        .machines
        .iter()
        .any(|m| m.version.as_deref() == Some("3.5.16"))
    {
        s.step();
    }
    s.spec.version = "3.6.1".into();
    s.package = "3.6.1-1".into();
    let packages: Vec<String> = s.record.members.iter().map(|m| m.package.clone()).collect();
    let p = s.step();
    assert!(
        p.waiting
            .iter()
            .any(|w| w.contains("version 3.6.1 refused")),
        "{:?}",
        p.waiting
    );
    let after: Vec<String> = p.record.members.iter().map(|m| m.package.clone()).collect();
    assert_eq!(after, packages);
}

#[test]
fn the_machine_chosen_to_join_is_not_releasable() {
    let mut s = bootstrapped(4, 3);
    s.spec.nodes.value = 5;
    s.machines.push(SimMachine {
        name: "lab.m5".into(),
        ip: "10.0.0.5".parse().unwrap(),
        ..s.machines[3].clone()
    });
    let (sec, _) = ensure_secrets(
        "kv",
        Some(s.secrets.clone()),
        &[("lab.m5".into(), "10.0.0.5".parse().unwrap())],
    )
    .unwrap();
    s.secrets = sec;
    let p = s.step();
    assert!(matches!(&p.steps[..], [EtcdStep::AddMember { name, .. }] if name == "lab.m4"));
    assert!(!p.releasable.contains("lab.m4"));
    assert!(p.releasable.contains("lab.m5"));
}

#[test]
fn a_patch_downgrade_within_the_minor_is_allowed() {
    assert!(version_step("3.5.16", "3.5.9").is_ok());
    assert!(version_step("3.4.23", "3.5.0").is_ok());
    assert!(version_step("3.4.23", "4.0.0").is_err());
    assert!(version_step("x", "3.5.0").is_err());
}

#[test]
fn tuning_change_rolls_one_member_at_a_time() {
    let mut s = bootstrapped(3, 3);
    s.spec.tuning.heartbeatms.value = 50;
    s.spec.tuning.electiontimeoutms.value = 500;
    let mut rolled = 0;
    for _ in 0..20 {
        let before = s.record.clone();
        let p = s.step();
        let changed = p
            .record
            .members
            .iter()
            .filter(|m| before.member(&m.name).unwrap().tuning != m.tuning)
            .count();
        assert!(changed <= 1);
        rolled += changed;
        if p.steps.is_empty() && p.record == before {
            break;
        }
    }
    assert_eq!(rolled, 3);
    assert!(
        s.machines
            .iter()
            .all(|m| config_of(&m.items).unwrap().heartbeatms == Some(50))
    );
}

#[test]
fn failed_add_stops_the_rollout_then_resumes() {
    let mut s = bootstrapped(5, 3);
    s.spec.nodes.value = 5;
    s.fail_next_add = Some("lab.m4".into());
    let p = s.step();
    assert!(matches!(&p.steps[..], [EtcdStep::AddMember { .. }]));
    let e = s.record.last_error.clone().expect("recorded");
    assert_eq!(e.member.as_deref(), Some("lab.m4"));
    assert!(e.message.contains("unhealthy cluster"));
    // Next: the same member is retried; nobody else is touched.
    let p = s.step();
    assert!(
        matches!(&p.steps[..], [EtcdStep::AddMember { name, .. }] if name == "lab.m4"),
        "{:?}",
        p.steps
    );
    assert!(
        p.waiting.iter().any(|w| w.starts_with("last error:")),
        "{:?}",
        p.waiting
    );
    s.converge(30);
    assert!(
        s.record.last_error.is_none(),
        "cleared once the member is healthy: {:?}",
        s.record.last_error
    );
    assert_eq!(s.started_members().len(), 5);
}

#[test]
fn a_joined_member_that_never_starts_is_removed_again_with_an_error() {
    let mut s = bootstrapped(4, 3);
    s.spec.nodes.value = 5;
    s.machines.truncate(4);
    s.m("lab.m4").broken = true;
    let p = s.step();
    assert!(matches!(&p.steps[..], [EtcdStep::AddMember { name, .. }] if name == "lab.m4"));
    let p = s.step();
    assert!(
        p.waiting
            .iter()
            .any(|w| w.contains("waiting for lab.m4 to start")),
        "{:?}",
        p.waiting
    );
    s.now += GRACE;
    let p = s.step();
    assert!(
        matches!(&p.steps[..], [EtcdStep::RemoveMember { name, .. }] if name == "lab.m4"),
        "{:?} {:?}",
        p.steps,
        p.waiting
    );
    assert!(
        p.record
            .last_error
            .as_ref()
            .unwrap()
            .message
            .contains("not healthy")
    );
    assert!(
        s.record.last_error.is_some(),
        "the removal that follows does not erase why"
    );
    assert_eq!(s.members.len(), 3);
}

#[test]
fn even_transient_sizes_keep_quorum() {
    // 3 → 5 → 3 passes through 4 both ways; every step is checked by the simulator.
    let mut s = bootstrapped(5, 3);
    s.spec.nodes.value = 5;
    s.converge(30);
    s.spec.nodes.value = 3;
    s.converge(40);
    // With one of 4 members down, a scale in waits rather than dropping to 2 healthy of 3.
    let mut s = bootstrapped(5, 5);
    s.spec.nodes.value = 3;
    s.step();
    assert_eq!(s.members.len(), 4);
    s.m("lab.m1").reachable = false;
    let p = s.step();
    assert!(
        !p.steps
            .iter()
            .any(|st| matches!(st, EtcdStep::RemoveMember { name, .. } if name != "lab.m1")),
        "{:?}",
        p.steps
    );
}

#[test]
fn unknown_unstarted_member_is_removed_started_one_left_alone() {
    let mut s = bootstrapped(3, 3);
    s.members.push(SimMember {
        id: 77,
        peer: "https://10.9.9.9:2380".into(),
        name: String::new(),
        started: false,
        learner: false,
    });
    // 4 listed, 3 healthy: quorum of 4 is 3, still healthy.
    let p = s.step();
    assert!(
        matches!(&p.steps[..], [EtcdStep::RemoveMember { id: 77, .. }]),
        "{:?} {:?}",
        p.steps,
        p.waiting
    );
    s.members.push(SimMember {
        id: 78,
        peer: "https://10.9.9.8:2380".into(),
        name: "theirs".into(),
        started: true,
        learner: false,
    });
    let p = s.plan();
    assert!(p.steps.is_empty());
    assert!(
        p.waiting
            .iter()
            .any(|w| w.contains("member theirs") && w.contains("left alone")),
        "{:?}",
        p.waiting
    );
}

#[test]
fn missing_certificates_leave_the_machine_untouched() {
    let mut s = Sim::new(3, 3);
    s.secrets.members.remove("lab.m2");
    let p = s.step();
    assert!(!p.items.contains_key("lab.m2"));
    assert!(
        p.waiting
            .iter()
            .any(|w| w.contains("certificates of member lab.m2 are missing"))
    );
}

#[test]
fn record_round_trips_through_yaml() {
    let s = bootstrapped(3, 3);
    let yaml = serde_saphyr::to_string(&s.record).unwrap();
    assert!(yaml.contains("state: member"), "{yaml}");
    let back: ClusterRecord = serde_saphyr::from_str(&yaml).unwrap();
    assert_eq!(back, s.record);
    // Ids are hex strings, never floats.
    let id = s.record.members[0].id.unwrap();
    assert!(yaml.contains(&format!("{id:x}")), "{yaml}");
}

#[test]
fn quorum_and_semver() {
    assert_eq!([1, 2, 3, 4, 5].map(quorum), [1, 2, 2, 3, 3]);
    assert_eq!(semver("3.4.23-4+b4"), Some((3, 4, 23)));
    assert_eq!(semver("3.5"), None);
}

#[test]
fn scheduled_snapshot_from_a_follower_recorded_then_not_due() {
    let mut s = bootstrapped(3, 3);
    s.spec.backup = Some(orb_model::kinds::etcd_cluster::EtcdBackup {
        every: Located::new("1h".into()),
        keep: Located::new(3),
        target: Located::new("lab.m3".into()),
    });
    let p = s.step();
    let [EtcdStep::Snapshot { via, path, .. }] = &p.steps[..] else {
        panic!("{:?}", p.steps)
    };
    assert_ne!(Some(via), s.record.leader.as_ref(), "not from the leader");
    assert!(
        path.starts_with("/var/backups/orb-etcd/kv-19700112T"),
        "{path}"
    );
    let b = s.record.last_backup.clone().expect("recorded");
    assert_eq!((b.size, b.at), (20480, s.now - 10));
    assert_eq!(b.location, format!("{via}:{path}"));
    let p = s.step();
    assert!(p.steps.is_empty(), "not due again: {:?}", p.steps);
    s.now += 3600;
    assert!(matches!(&s.step().steps[..], [EtcdStep::Snapshot { .. }]));
}

#[test]
fn a_leader_orbiter_cannot_reach_is_not_replaced() {
    let mut s = bootstrapped(4, 3);
    let leader = s.record.leader.clone().unwrap();
    // Orbiter loses SSH to the leader's machine; etcd itself is fine.
    let obs_before = s.observed();
    s.m(&leader).reachable = false;
    s.now += 2 * GRACE;
    let cands = s.candidates();
    let mut obs = obs_before.clone();
    obs.remove(&leader);
    let mut rec = s.record.clone();
    for m in &mut rec.members {
        if m.name == leader {
            m.unhealthy_since = Some(s.now - 2 * GRACE);
        }
    }
    let p = plan(&PlanInput {
        cluster: "kv",
        spec: &s.spec,
        package: &s.package,
        candidates: &cands,
        observed: &obs,
        record: &rec,
        secrets: &s.secrets,
        now: s.now,
        grace_secs: GRACE,
    });
    assert!(
        !p.steps
            .iter()
            .any(|st| matches!(st, EtcdStep::RemoveMember { name, .. } if name == &leader)),
        "{:?}",
        p.steps
    );
    assert!(
        p.waiting
            .iter()
            .any(|w| w.contains("waiting for all members to be healthy")),
        "{:?}",
        p.waiting
    );
}

#[test]
fn one_member_grows_to_three_through_learners() {
    // A voter added to a single member would need both to vote before it ever started; as a
    // learner it has no vote until it is promoted, running.
    let mut s = bootstrapped(3, 1);
    assert_eq!(s.started_members(), ["lab.m1"]);
    s.spec.nodes.value = 3;
    s.converge(30);
    assert_eq!(s.started_members(), ["lab.m1", "lab.m2", "lab.m3"]);
    assert!(s.members.iter().all(|x| !x.learner));
}

#[test]
fn a_learner_that_never_starts_is_removed_without_touching_quorum() {
    let mut s = bootstrapped(4, 3);
    s.spec.nodes.value = 5;
    s.machines.truncate(4);
    s.m("lab.m4").broken = true;
    s.step();
    assert!(s.members.iter().any(|x| x.learner));
    s.now += GRACE;
    // Even with a voter down, the learner can go: it has no vote.
    s.m("lab.m2").reachable = false;
    let p = s.step();
    assert!(
        matches!(&p.steps[..], [EtcdStep::RemoveMember { name, .. }] if name == "lab.m4"),
        "{:?} {:?}",
        p.steps,
        p.waiting
    );
}

#[test]
fn plan_debug_never_shows_private_keys() {
    let mut s = Sim::new(3, 3);
    let p = s.step();
    assert!(p.items["lab.m1"].iter().any(|i| matches!(i,
        Item::File(f) if f.bytes().is_some_and(|b| String::from_utf8_lossy(b).contains("PRIVATE KEY")))));
    let dbg = format!("{p:?}");
    assert!(!dbg.contains("PRIVATE KEY"), "{dbg}");
    assert!(dbg.contains("\"lab.m1\": 15"), "{dbg}");
}

#[test]
fn a_member_stuck_on_the_old_version_stops_the_upgrade_with_an_error() {
    let mut s = bootstrapped(3, 3);
    let leader = s.record.leader.clone().unwrap();
    let first = ["lab.m1", "lab.m2", "lab.m3"]
        .into_iter()
        .find(|m| *m != leader)
        .unwrap();
    s.m(first).stuck = true;
    s.spec.version = "3.5.16".into();
    s.package = NEW.into();
    let p = s.step();
    assert_eq!(p.record.member(first).unwrap().package, NEW);
    let p = s.step();
    assert!(
        p.waiting
            .iter()
            .any(|w| w.contains(&format!("rolling change waits: {first} does not run {NEW}"))),
        "{:?}",
        p.waiting
    );
    assert!(
        p.record.last_error.is_none(),
        "not yet: within the grace period"
    );
    s.now += GRACE;
    let p = s.step();
    let e = p
        .record
        .last_error
        .clone()
        .expect("recorded after the grace period");
    assert_eq!(e.member.as_deref(), Some(first));
    // Stable: no new commit per loop, and nobody else is rolled.
    for _ in 0..3 {
        let p = s.step();
        assert_eq!(p.record.last_error, Some(e.clone()));
        assert_eq!(
            p.record.members.iter().filter(|m| m.package == NEW).count(),
            1
        );
    }
    // Fixed (the package installs): the rollout resumes and the error clears.
    s.m(first).stuck = false;
    s.m(first).running = false;
    s.settle();
    s.converge(40);
    assert!(s.record.last_error.is_none());
    assert!(
        s.machines
            .iter()
            .all(|m| m.version.as_deref() == Some("3.5.16"))
    );
}
