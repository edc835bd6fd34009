//! The simulated world every scenario plans against: an Orb written as YAML, machines
//! observed by hand, and the replay of what the engine's steps change (`World::apply`).

#![allow(dead_code)]

use node_protocol::{NodeCurrent, NodeDesired};
use orb_model::registry::MachineFlag;
use orb_model::{Id, Orb};
use orbiter::clusters::ClusterNeeds;
use orbiter::machine::{MachineKey, MachineRef};
use orbiter::node_desired::{SoftwareSecrets, items_for, next_doc};
use orbiter::observe::sha256_hex;
use orbiter::observed::{AgentObserved, MachineObserved, Observed, ProviderObserved, Reach};
use orbiter::plan::{
    Action, AgentRelease, HostKeyConsent, Plan, PlanInput, Recorded, listed_machines, plan,
};
use orbiter::providers::Provider;
use orbiter::rollout::RolloutRecord;
use orbiter::ssh::HostKey;
use std::collections::BTreeMap;

pub const NOW: &str = "2026-11-26T00:00:00Z";
/// A new reboot request is for the second after `now`.
pub const REQUEST: &str = "2026-11-26T00:00:01Z";
/// A request Orbiter wrote before it was killed.
pub const EARLIER: &str = "2026-11-25T23:59:00Z";
pub const A2_WAITS: &str = "reboot of lab.a2: another machine of pool a reboots first";
pub const SUCCESSOR: &str = "replacement of loc.p-1: waiting until its successor is ready";
pub const OLD_BOOT: &str = "2026-11-20T08:00:00Z";
pub const HOST_KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl";

pub fn release() -> AgentRelease {
    AgentRelease {
        version: "0.1.0".into(),
        sha256: "ab".repeat(32),
    }
}

pub fn agent(version: &str, sha256: &str, active: bool) -> Option<AgentObserved> {
    let (version, sha256) = (version.into(), sha256.into());
    Some(AgentObserved {
        version,
        sha256,
        active,
    })
}

pub fn agent_ok() -> Option<AgentObserved> {
    agent("0.1.0", &release().sha256, true)
}

/// `spec:` lines of a provider: its pools, then flags like `rebootrequired: [a1]`.
pub fn provider(id: &str, kind: &str, pools: &str, flags: &[&str]) -> String {
    let mut y = format!("  {id}:\n    kind: {kind}\n    version: v1\n    spec:\n{pools}");
    for f in flags {
        y.push_str(&format!("      {f}\n"));
    }
    y
}

/// Static provider `lab`: pool `a` (a1, a2) and pool `b` (b1).
pub fn lab(flags: &[&str]) -> String {
    let pools = "      pools:
        a:
          - {id: a1, hostname: a1, ip: 10.0.0.1}
          - {id: a2, hostname: a2, ip: 10.0.0.2}
        b:
          - {id: b1, hostname: b1, ip: 10.0.1.1}
";
    provider("lab", "StaticProvider", pools, flags)
}

/// Local provider `loc`, group `g`, one pool `p` of `nodes` machines.
pub fn loc(nodes: u32, flags: &[&str]) -> String {
    let pools = format!("      group: g\n      pools:\n        p: {{nodes: {nodes}}}\n");
    provider("loc", "LocalProvider", &pools, flags)
}

/// An Orb of these providers, with a file for every machine of every pool they have.
pub fn orb(providers: &[String]) -> Orb {
    orb_items(providers, &[])
}

/// [`orb`] with more items for every machine (YAML flow mappings, e.g.
/// `file: {path: /etc/token, secret: token}`).
pub fn orb_items(providers: &[String], items: &[&str]) -> Orb {
    let mut y = String::from("kind: Orb\nversion: v1\nproviders:\n");
    let mut pools: Vec<&str> = Vec::new();
    for p in providers {
        y.push_str(p);
        pools.extend(if p.starts_with("  lab:") {
            &["lab.a", "lab.b"][..]
        } else {
            &["loc.p"]
        });
    }
    y.push_str(&format!(
        "software:\n  base:\n    kind: NodeSoftware\n    version: v1\n    spec:\n      pools: [{}]\n      items:\n        - file: {{path: /etc/motd, content: hello}}\n",
        pools.join(", ")
    ));
    for item in items {
        y.push_str(&format!("        - {item}\n"));
    }
    Orb::parse(&y, "orbiter.yml").unwrap_or_else(|e| panic!("test Orb is invalid: {e}\n{y}"))
}

pub fn key(s: &str) -> MachineKey {
    MachineKey::parse(s).unwrap()
}

pub fn local_ref(name: &str) -> MachineRef {
    let n: u8 = name.rsplit_once('-').unwrap().1.parse().unwrap();
    MachineRef {
        key: key(&format!("loc.{name}")),
        pool: Id::parse("p").unwrap(),
        hostname: name.to_owned(),
        ip: format!("10.1.0.{n}").parse().unwrap(),
        user: "orbiter".into(),
        known_key: Some(orbiter::machine::KnownKey::Vouched(HOST_KEY.into())),
    }
}

/// Records hold digests; any stable function serves in these tests.
pub fn digest(b: &[u8]) -> String {
    format!("sha256:{}", sha256_hex(b))
}

/// The digest observation reports of a machine's document.
pub fn on_machine(doc: &NodeDesired) -> Option<String> {
    Some(sha256_hex(doc.render_for_machine().as_bytes()))
}

pub fn current(generation: u64) -> NodeCurrent {
    let mut c = NodeCurrent::new("0.1.0");
    c.ready = true;
    c.generation = Some(generation);
    c.booted_at = Some(OLD_BOOT.to_owned());
    // Its last pass changed nothing: what it reports is what it saw after its changes.
    c.last_pass = Some(node_protocol::PassInfo {
        trigger: "drift".into(),
        generation: Some(generation),
        started_at: OLD_BOOT.to_owned(),
        duration_ms: 0,
        actions: vec![],
        errors: 0,
    });
    c
}

/// Everything the plan reads, plus the clock.
pub struct World {
    pub orb: Orb,
    pub recorded: Recorded,
    pub observed: Observed,
    pub now: String,
    pub secrets: SoftwareSecrets,
    /// First-contact host keys a person confirmed.
    pub consent: HostKeyConsent,
    /// The pools' rollout records as committed.
    pub rollouts: BTreeMap<String, RolloutRecord>,
    pub revision_secrets: BTreeMap<String, SoftwareSecrets>,
}

impl World {
    /// Every provider has its maintenance key; every listed (Static) machine and every
    /// Local machine named in `local` (`p-1` …) is converged.
    pub fn new(providers: &[String], local: &[&str]) -> World {
        let orb = orb(providers);
        let (recorded, observed) = (Recorded::default(), Observed::default());
        let mut w = World {
            orb,
            recorded,
            observed,
            now: NOW.to_owned(),
            secrets: SoftwareSecrets::new(),
            consent: HostKeyConsent::default(),
            rollouts: BTreeMap::new(),
            revision_secrets: BTreeMap::new(),
        };
        for (pid, node) in w.orb.providers.clone() {
            w.recorded.maintenance_keys.insert(pid.clone());
            w.observed
                .providers
                .insert(pid.clone(), ProviderObserved::default());
            if let orb_model::ProviderSpec::Static(spec) = &node.spec {
                for m in listed_machines(&pid, spec) {
                    w.add_converged(m);
                }
            }
        }
        for name in local {
            w.add_converged(local_ref(name));
        }
        // Converged under rollouts: every pool's record says its machines are done.
        w.rollouts = w.plan().rollouts;
        w
    }

    /// Rollouts that change every machine of a pool in one wave (for scenarios about
    /// something else).
    pub fn all_at_once(&mut self) {
        let d = &mut self.orb.rollout.defaults;
        d.canary = Some(orb_model::Located::new(1000));
        d.maxunavailable = Some(orb_model::Located::new("100%".into()));
    }

    /// The machine's document and its record for these items.
    pub fn docs(&self, m: &MachineRef, reboot_at: Option<&str>) -> (NodeDesired, NodeDesired) {
        let previous = self.recorded.node_desired.get(&m.key);
        let items = items_for(&self.orb, m, reboot_at, &self.secrets).unwrap();
        next_doc(previous, items, &digest)
    }

    pub fn add_converged(&mut self, m: MachineRef) {
        let (doc, record) = self.docs(&m, None);
        self.recorded
            .pinned
            .insert(m.key.clone(), HostKey(HOST_KEY.into()));
        let obs = MachineObserved {
            machine: m.clone(),
            reach: Reach::Maintenance,
            agent: agent_ok(),
            desired_sha256: on_machine(&doc),
            current: Some(current(doc.generation)),
        };
        self.recorded.node_desired.insert(m.key.clone(), record);
        let provider = self
            .observed
            .providers
            .entry(m.key.provider.clone())
            .or_default();
        provider.machines.push(obs);
    }

    pub fn m(&mut self, k: &str) -> &mut MachineObserved {
        let k = key(k);
        let p = self.observed.providers.get_mut(&k.provider).unwrap();
        let m = p.machines.iter_mut().find(|m| m.machine.key == k);
        m.unwrap_or_else(|| panic!("no machine {k}"))
    }

    pub fn booted_at(&mut self, k: &str, at: &str) {
        self.m(k).current.as_mut().unwrap().booted_at = Some(at.to_owned());
    }

    /// The state after Orbiter wrote a reboot request for `at` to `k` (recorded and on the
    /// machine, enforced by its agent) and was killed before the machine rebooted.
    pub fn reboot_written(&mut self, k: &str, at: &str) -> NodeDesired {
        let m = self.m(k).machine.clone();
        let (doc, record) = self.docs(&m, Some(at));
        self.write(&m.key, &doc, &record);
        doc
    }

    /// What WriteNodeDesired leaves behind: recorded, on the machine, enforced by its agent.
    pub fn write(&mut self, k: &MachineKey, doc: &NodeDesired, record: &NodeDesired) {
        self.recorded.node_desired.insert(k.clone(), record.clone());
        let m = self.m(&k.to_string());
        m.desired_sha256 = on_machine(doc);
        let c = m.current.get_or_insert_with(|| current(0));
        c.generation = Some(doc.generation);
        c.ready = true;
    }

    pub fn plan(&self) -> Plan {
        self.plan_with(&ClusterNeeds::default())
    }

    pub fn plan_with(&self, clusters: &ClusterNeeds) -> Plan {
        let (orb, recorded, observed) = (&self.orb, &self.recorded, &self.observed);
        let agent = &release();
        let providers: BTreeMap<Id, Box<dyn Provider>> = orb
            .providers
            .iter()
            .map(|(id, n)| (id.clone(), orbiter::providers::for_spec(id, &n.spec)))
            .collect();
        plan(&PlanInput {
            orb,
            providers: &providers,
            recorded,
            observed,
            agent,
            now: &self.now,
            clusters,
            secrets: &self.secrets,
            digest: &digest,
            host_keys: &self.consent,
            rollouts: &self.rollouts,
            revision_secrets: &self.revision_secrets,
            now_secs: node_protocol::timefmt::parse_rfc3339(&self.now).unwrap() as u64,
        })
    }

    /// Replays the first `limit` steps the way the engine applies them (steps on the Orb's
    /// records and providers first, in order; then the machines' steps), as if Orbiter died
    /// after them. Returns the steps applied.
    pub fn apply(&mut self, p: &Plan, limit: usize) -> Vec<Action> {
        let mut order: Vec<&Action> = p.steps.iter().map(|s| &s.action).collect();
        order.sort_by_key(|a| a.runs_on_machine());
        let done: Vec<Action> = order.into_iter().take(limit).cloned().collect();
        // The rollout records are committed with the state, after every step.
        if done.len() == p.steps.len() {
            self.rollouts = p.rollouts.clone();
        }
        for a in &done {
            match a {
                Action::WriteNodeDesired {
                    machine,
                    doc,
                    record,
                    ..
                } => self.write(machine, doc, record),
                Action::ClearReboot { machine } => self.clear(machine, MachineFlag::Reboot),
                Action::ClearReplacement { machine } => self.clear(machine, MachineFlag::Replace),
                Action::DestroyMachine { machine } => {
                    let p = self.observed.providers.get_mut(&machine.provider).unwrap();
                    p.machines.retain(|m| m.machine.key != *machine);
                    self.recorded.node_desired.remove(machine);
                    self.recorded.pinned.remove(machine);
                }
                Action::CreateMachine { machine, .. } => {
                    // A fresh machine: first contact, nothing installed.
                    let machine = local_ref(machine.as_str());
                    let p = self
                        .observed
                        .providers
                        .get_mut(&machine.key.provider)
                        .unwrap();
                    p.machines.push(MachineObserved {
                        machine,
                        reach: Reach::NotPinned(HostKey(HOST_KEY.into())),
                        agent: None,
                        desired_sha256: None,
                        current: None,
                    });
                }
                Action::PinHostKey { machine, key, .. } => {
                    self.recorded.pinned.insert(machine.clone(), key.clone());
                    self.m(&machine.to_string()).reach = Reach::Maintenance;
                }
                Action::InstallAgent { machine, .. } => {
                    self.m(&machine.to_string()).agent = agent_ok();
                }
                other => panic!("not replayed here: {other:?}"),
            }
        }
        done
    }

    pub fn clear(&mut self, k: &MachineKey, flag: MachineFlag) {
        let spec = &mut self.orb.providers.get_mut(&k.provider).unwrap().spec;
        spec.flags_mut(flag).retain(|id| id.value != k.machine);
    }
}

/// Steps in one line each: `write lab.a1 g2`, `destroy loc.p-1!` (`!` marks destructive).
pub fn brief(p: &Plan) -> Vec<String> {
    let line = |a: &Action| match a {
        Action::GenerateMaintenanceKey { provider } => format!("genkey {provider}"),
        Action::GenerateClusterSecrets { cluster, .. } => format!("gensecrets {cluster}"),
        Action::OfferPackages { provider, packages } => {
            format!("offer {provider} {}", packages.join(","))
        }
        Action::CreateMachine {
            provider, machine, ..
        } => format!("create {provider}.{machine}"),
        Action::PinHostKey { machine, .. } => format!("pin {machine}"),
        Action::InstallMaintenanceKey { machine } => format!("maintkey {machine}"),
        Action::InstallAgent { machine, .. } => format!("agent {machine}"),
        Action::WriteNodeDesired {
            machine,
            generation,
            ..
        } => {
            format!("write {machine} g{generation}")
        }
        Action::ClearReboot { machine } => format!("clear-reboot {machine}"),
        Action::ClearReplacement { machine } => format!("clear-replace {machine}"),
        Action::DestroyMachine { machine } => format!("destroy {machine}"),
        Action::ClusterStep {
            cluster, machine, ..
        } => format!("cluster {cluster} on {machine}"),
    };
    let mark = |d: bool| if d { "!" } else { "" };
    p.steps
        .iter()
        .map(|s| format!("{}{}", line(&s.action), mark(s.destructive)))
        .collect()
}

pub fn assert_reason(p: &Plan, step: &str, why: &str) {
    let i = brief(p).iter().position(|s| s == step);
    let i = i.unwrap_or_else(|| panic!("no step `{step}` in {:?}", brief(p)));
    assert_eq!(p.steps[i].reason, why, "reason of `{step}`");
}

pub fn written<'a>(p: &'a Plan, k: &str) -> &'a NodeDesired {
    let doc = p.steps.iter().find_map(|s| match &s.action {
        Action::WriteNodeDesired { machine, doc, .. } if *machine == key(k) => Some(doc),
        _ => None,
    });
    doc.unwrap_or_else(|| panic!("no write to {k} in {:?}", brief(p)))
}

/// Some waiting entry contains `needle`.
pub fn assert_waits(p: &Plan, needle: &str) {
    let found = p.waiting.iter().any(|w| w.contains(needle));
    assert!(found, "nothing waiting with {needle:?}: {:?}", p.waiting);
}

pub fn assert_steps(p: &Plan, expected: &[&str]) {
    assert_eq!(brief(p), expected, "waiting: {:?}", p.waiting);
}
