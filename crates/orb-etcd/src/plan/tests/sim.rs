//! The simulated pool: machines whose node agents apply the planned items at once, and an
//! etcd membership that follows the steps with etcd's rules. [`Sim::step`] is one Orbiter
//! loop iteration and asserts after it that quorum was not lost and at most one membership
//! change ran. Its own file because every scenario file drives it.

use super::*;

#[derive(Clone, Debug)]
pub(super) struct SimMachine {
    pub(super) name: String,
    pub(super) ip: IpAddr,
    pub(super) gone: bool,
    /// A person asked to replace it (`replacementrequired`): still running and reachable.
    pub(super) replacing: bool,
    pub(super) reachable: bool,
    /// Refuses to run etcd (a broken package, a full disk).
    pub(super) broken: bool,
    /// Its agent cannot install another package version: it keeps running the old one.
    pub(super) stuck: bool,
    pub(super) items: Vec<Item>,
    pub(super) running: bool,
    pub(super) data: bool,
    /// Member and cluster id in the data's WAL (set at the first start).
    pub(super) data_ids: Option<(u64, u64)>,
    pub(super) version: Option<String>,
    /// The PKI label etcd runs with (the `pki/state` of its items at its last start).
    pub(super) pki: Option<String>,
    /// Its agent cannot restart etcd: it keeps running with the PKI it has.
    pub(super) pki_frozen: bool,
    /// Its observation lies (a compromised or confused machine).
    pub(super) forge: Option<Forge>,
}

/// How a machine's observation lies. It always claims to be healthy.
#[derive(Clone, Debug)]
pub(super) enum Forge {
    /// Reports another cluster id.
    ClusterId(u64),
    /// Reports a member list with itself only.
    OnlySelf,
}

#[derive(Clone, Debug)]
pub(super) struct SimMember {
    pub(super) id: u64,
    pub(super) peer: String,
    pub(super) name: String,
    pub(super) started: bool,
    pub(super) learner: bool,
}

pub(super) struct Sim {
    pub(super) machines: Vec<SimMachine>,
    pub(super) members: Vec<SimMember>,
    pub(super) leader: Option<u64>,
    pub(super) next_id: u64,
    pub(super) record: ClusterRecord,
    pub(super) secrets: ClusterSecrets,
    pub(super) spec: EtcdCluster,
    pub(super) package: String,
    pub(super) now: u64,
    /// Every step applied, in order, with the plan's iteration.
    pub(super) log: Vec<(usize, EtcdStep)>,
    pub(super) iteration: usize,
    pub(super) fail_next_add: Option<String>,
    /// Every bundle change the engine made, in order.
    pub(super) generated: Vec<crate::tls::PkiChange>,
    /// Machines Orbiter wants to reboot.
    pub(super) disrupting: std::collections::BTreeSet<String>,
}

impl Sim {
    pub(super) fn new(n_machines: usize, nodes: u32) -> Sim {
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
                data_ids: None,
                version: None,
                pki: None,
                pki_frozen: false,
                forge: None,
                replacing: false,
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
            generated: Vec::new(),
            disrupting: Default::default(),
        }
    }

    pub(super) fn m(&mut self, name: &str) -> &mut SimMachine {
        self.machines.iter_mut().find(|m| m.name == name).unwrap()
    }

    pub(super) fn candidates(&self) -> Vec<Candidate> {
        self.machines
            .iter()
            .map(|m| Candidate {
                machine: m.name.clone(),
                ip: m.ip,
                ready: m.reachable && !m.gone,
                reachable: m.reachable && !m.gone,
                gone: m.gone || m.replacing,
            })
            .collect()
    }

    pub(super) fn member_of(&self, m: &SimMachine) -> Option<&SimMember> {
        self.members.iter().find(|x| x.peer == peer_url(m.ip))
    }

    pub(super) fn voters(&self) -> usize {
        self.members.iter().filter(|x| !x.learner).count()
    }

    pub(super) fn has_quorum(&self) -> bool {
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

    pub(super) fn observed(&self) -> BTreeMap<String, MemberView> {
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
            let mut view = MemberView {
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
                members: healthy.then(|| list.clone()),
                config: if m.data || m.running {
                    config_of(&m.items)
                } else {
                    None
                },
                error: (!healthy).then(|| "not healthy".into()),
                data_ids: m.data.then_some(m.data_ids).flatten(),
                pki: pki_of(&m.items).map(|label| crate::observe::PkiSeen {
                    fresh: m.running && m.pki.as_deref() == Some(label.as_str()),
                    label,
                }),
                ..MemberView::default()
            };
            if let Some(f) = &m.forge {
                let own = mem.map(|x| x.id).unwrap_or(0xbad);
                view.healthy = true;
                view.running = true;
                view.id = Some(own);
                view.leader = Some(own);
                view.cluster_id = Some(0xc1);
                view.error = None;
                let mut forged: Vec<MemberEntry> = list.clone();
                match f {
                    Forge::ClusterId(c) => view.cluster_id = Some(*c),
                    Forge::OnlySelf => forged.retain(|e| e.id == own),
                }
                view.members = Some(forged);
            }
            out.insert(m.name.clone(), view);
        }
        out
    }

    pub(super) fn plan(&self) -> EtcdPlan {
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
            client_grace_secs: CLIENT_GRACE,
            disrupting: &self.disrupting,
        })
    }

    pub(super) fn run_step(&mut self, s: &EtcdStep) -> Result<String, String> {
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
            EtcdStep::WipeMember { on, check, .. } => {
                let check = check.as_ref().expect("the planner checks every wipe");
                let ip = self.m(on).ip;
                assert!(
                    !self.members.iter().any(|x| x.peer == peer_url(ip)),
                    "wiping a listed member: {s:?}"
                );
                // What the command checks on the machine.
                let m = self.m(on).clone();
                if m.data {
                    let (mid, cid) = m.data_ids.expect("data has a WAL");
                    if cid != check.cluster_id {
                        return Err(format!(
                            "refusing to wipe: it holds data of cluster {cid:x}"
                        ));
                    }
                    if check.member_id.is_some_and(|want| want != mid) {
                        return Err(format!("refusing to wipe: it holds data of member {mid:x}"));
                    }
                    if self.members.iter().any(|x| x.id == mid) {
                        return Err(format!("refusing to wipe: still lists member {mid:x}"));
                    }
                }
                let m = self.m(on);
                m.data = false;
                m.data_ids = None;
                m.running = false;
                Ok("@@wiped".into())
            }
            EtcdStep::Snapshot { .. } => Ok(format!("@@snapshot 20480 {}", "ab".repeat(32))),
            _ => Ok(String::new()),
        }
    }

    /// Node agents apply their items; etcd starts, restarts, stops.
    pub(super) fn settle(&mut self) {
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
            let id = self
                .members
                .iter()
                .find(|x| x.peer == peer_url(self.machines[k].ip))
                .map(|x| x.id);
            let m = &mut self.machines[k];
            m.running = true;
            // A changed trust or certificate restarts etcd with it.
            if !m.pki_frozen || m.pki.is_none() {
                m.pki = pki_of(&m.items);
            }
            if !m.data {
                m.data_ids = id.map(|id| (id, 0xc1));
            }
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
    pub(super) fn step(&mut self) -> EtcdPlan {
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
        // The engine's `generate` step: bundle changes, then certificates for every machine.
        let all: Vec<(String, IpAddr)> = self
            .machines
            .iter()
            .map(|m| (m.name.clone(), m.ip))
            .collect();
        let users: Vec<String> = self
            .spec
            .users
            .iter()
            .map(|u| u.name.value.clone())
            .collect();
        let lacking = crate::tls::lacking(Some(&self.secrets), &all, &users, &[]);
        if !p.pki.is_empty() || !lacking.is_empty() {
            for c in &p.pki {
                self.secrets.apply("kv", c, &all, &users, &[]).unwrap();
            }
            self.secrets =
                ClusterSecrets::ensure("kv", Some(self.secrets.clone()), &all, &users, &[])
                    .unwrap()
                    .0;
            self.generated.extend(p.pki.iter().cloned());
        }
        for s in &p.steps {
            self.log.push((self.iteration, s.clone()));
            let r = self.run_step(s);
            self.record
                .note_step(s, r.as_deref().map_err(|e| e.as_str()), self.now);
        }
        // Orbiter writes a machine's document only when it reaches it.
        for (machine, items) in &p.items {
            let m = self.m(machine);
            if m.reachable && !m.gone {
                m.items = items.clone();
            }
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
    pub(super) fn converge(&mut self, max: usize) -> EtcdPlan {
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

    pub(super) fn started_members(&self) -> Vec<String> {
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
