//! Scenario tests for the pure plan: Orbs written as YAML, machines observed by hand, and the
//! steps, waits and blocks the plan returns. Restart safety is tested by replaying what the
//! engine's steps change (`World::apply`), also when Orbiter dies after any single step.

use node_protocol::timefmt::{format_rfc3339, parse_rfc3339};
use node_protocol::{Item, NodeCurrent, NodeDesired};
use orb_model::registry::MachineFlag;
use orb_model::{Id, Orb};
use orbiter::clusters::{ClusterNeeds, KindStep};
use orbiter::machine::{MachineKey, MachineRef};
use orbiter::node_desired::{SoftwareSecrets, items_for, next_doc};
use orbiter::observe::sha256_hex;
use orbiter::observed::{AgentObserved, MachineObserved, Observed, ProviderObserved, Reach};
use orbiter::plan::{Action, AgentRelease, Plan, PlanInput, Recorded, listed_machines, plan};
use orbiter::providers::Provider;
use orbiter::ssh::HostKey;
use std::collections::BTreeMap;

const NOW: &str = "2026-11-26T00:00:00Z";
/// A new reboot request is for the second after `now`.
const REQUEST: &str = "2026-11-26T00:00:01Z";
/// A request Orbiter wrote before it was killed.
const EARLIER: &str = "2026-11-25T23:59:00Z";
const A2_WAITS: &str = "reboot of lab.a2: another machine of pool a reboots first";
const SUCCESSOR: &str = "replacement of loc.p-1: waiting until its successor is ready";
const OLD_BOOT: &str = "2026-11-20T08:00:00Z";
const HOST_KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl";

fn release() -> AgentRelease {
    AgentRelease {
        version: "0.1.0".into(),
        sha256: "ab".repeat(32),
    }
}

fn agent(version: &str, sha256: &str, active: bool) -> Option<AgentObserved> {
    let (version, sha256) = (version.into(), sha256.into());
    Some(AgentObserved {
        version,
        sha256,
        active,
    })
}

fn agent_ok() -> Option<AgentObserved> {
    agent("0.1.0", &release().sha256, true)
}

/// `spec:` lines of a provider: its pools, then flags like `rebootrequired: [a1]`.
fn provider(id: &str, kind: &str, pools: &str, flags: &[&str]) -> String {
    let mut y = format!("  {id}:\n    kind: {kind}\n    version: v1\n    spec:\n{pools}");
    for f in flags {
        y.push_str(&format!("      {f}\n"));
    }
    y
}

/// Static provider `lab`: pool `a` (a1, a2) and pool `b` (b1).
fn lab(flags: &[&str]) -> String {
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
fn loc(nodes: u32, flags: &[&str]) -> String {
    let pools = format!("      group: g\n      pools:\n        p: {{nodes: {nodes}}}\n");
    provider("loc", "LocalProvider", &pools, flags)
}

/// An Orb of these providers, with a file for every machine of every pool they have.
fn orb(providers: &[String]) -> Orb {
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
    Orb::parse(&y, "orbiter.yml").unwrap_or_else(|e| panic!("test Orb is invalid: {e}\n{y}"))
}

fn key(s: &str) -> MachineKey {
    MachineKey::parse(s).unwrap()
}

fn local_ref(name: &str) -> MachineRef {
    let n: u8 = name.rsplit_once('-').unwrap().1.parse().unwrap();
    MachineRef {
        key: key(&format!("loc.{name}")),
        pool: Id::parse("p").unwrap(),
        hostname: name.to_owned(),
        ip: format!("10.1.0.{n}").parse().unwrap(),
        user: "orbiter".into(),
    }
}

/// Records hold digests; any stable function serves in these tests.
fn digest(b: &[u8]) -> String {
    format!("sha256:{}", sha256_hex(b))
}

/// The digest observation reports of a machine's document.
fn on_machine(doc: &NodeDesired) -> Option<String> {
    Some(sha256_hex(doc.render_for_machine().as_bytes()))
}

fn current(generation: u64) -> NodeCurrent {
    let mut c = NodeCurrent::new("0.1.0");
    c.ready = true;
    c.generation = Some(generation);
    c.booted_at = Some(OLD_BOOT.to_owned());
    c
}

/// Everything the plan reads, plus the clock.
struct World {
    orb: Orb,
    recorded: Recorded,
    observed: Observed,
    now: String,
    secrets: SoftwareSecrets,
}

impl World {
    /// Every provider has its maintenance key; every listed (Static) machine and every
    /// Local machine named in `local` (`p-1` …) is converged.
    fn new(providers: &[String], local: &[&str]) -> World {
        let orb = orb(providers);
        let (recorded, observed) = (Recorded::default(), Observed::default());
        let mut w = World {
            orb,
            recorded,
            observed,
            now: NOW.to_owned(),
            secrets: SoftwareSecrets::new(),
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
        w
    }

    /// The machine's document and its record for these items.
    fn docs(&self, m: &MachineRef, reboot_at: Option<&str>) -> (NodeDesired, NodeDesired) {
        let previous = self.recorded.node_desired.get(&m.key);
        let items = items_for(&self.orb, m, reboot_at, &self.secrets).unwrap();
        next_doc(previous, items, &digest)
    }

    fn add_converged(&mut self, m: MachineRef) {
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

    fn m(&mut self, k: &str) -> &mut MachineObserved {
        let k = key(k);
        let p = self.observed.providers.get_mut(&k.provider).unwrap();
        let m = p.machines.iter_mut().find(|m| m.machine.key == k);
        m.unwrap_or_else(|| panic!("no machine {k}"))
    }

    fn booted_at(&mut self, k: &str, at: &str) {
        self.m(k).current.as_mut().unwrap().booted_at = Some(at.to_owned());
    }

    /// The state after Orbiter wrote a reboot request for `at` to `k` (recorded and on the
    /// machine, enforced by its agent) and was killed before the machine rebooted.
    fn reboot_written(&mut self, k: &str, at: &str) -> NodeDesired {
        let m = self.m(k).machine.clone();
        let (doc, record) = self.docs(&m, Some(at));
        self.write(&m.key, &doc, &record);
        doc
    }

    /// What WriteNodeDesired leaves behind: recorded, on the machine, enforced by its agent.
    fn write(&mut self, k: &MachineKey, doc: &NodeDesired, record: &NodeDesired) {
        self.recorded.node_desired.insert(k.clone(), record.clone());
        let m = self.m(&k.to_string());
        m.desired_sha256 = on_machine(doc);
        let c = m.current.get_or_insert_with(|| current(0));
        c.generation = Some(doc.generation);
        c.ready = true;
    }

    fn plan(&self) -> Plan {
        self.plan_with(&ClusterNeeds::default())
    }

    fn plan_with(&self, clusters: &ClusterNeeds) -> Plan {
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
        })
    }

    /// Replays the first `limit` steps the way the engine applies them (steps on the Orb's
    /// records and providers first, in order; then the machines' steps), as if Orbiter died
    /// after them. Returns the steps applied.
    fn apply(&mut self, p: &Plan, limit: usize) -> Vec<Action> {
        let mut order: Vec<&Action> = p.steps.iter().map(|s| &s.action).collect();
        order.sort_by_key(|a| a.runs_on_machine());
        let done: Vec<Action> = order.into_iter().take(limit).cloned().collect();
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

    fn clear(&mut self, k: &MachineKey, flag: MachineFlag) {
        let spec = &mut self.orb.providers.get_mut(&k.provider).unwrap().spec;
        spec.flags_mut(flag).retain(|id| id.value != k.machine);
    }
}

/// Steps in one line each: `write lab.a1 g2`, `destroy loc.p-1!` (`!` marks destructive).
fn brief(p: &Plan) -> Vec<String> {
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

fn assert_reason(p: &Plan, step: &str, why: &str) {
    let i = brief(p).iter().position(|s| s == step);
    let i = i.unwrap_or_else(|| panic!("no step `{step}` in {:?}", brief(p)));
    assert_eq!(p.steps[i].reason, why, "reason of `{step}`");
}

fn written<'a>(p: &'a Plan, k: &str) -> &'a NodeDesired {
    let doc = p.steps.iter().find_map(|s| match &s.action {
        Action::WriteNodeDesired { machine, doc, .. } if *machine == key(k) => Some(doc),
        _ => None,
    });
    doc.unwrap_or_else(|| panic!("no write to {k} in {:?}", brief(p)))
}

/// Some waiting entry contains `needle`.
fn assert_waits(p: &Plan, needle: &str) {
    let found = p.waiting.iter().any(|w| w.contains(needle));
    assert!(found, "nothing waiting with {needle:?}: {:?}", p.waiting);
}

fn assert_steps(p: &Plan, expected: &[&str]) {
    assert_eq!(brief(p), expected, "waiting: {:?}", p.waiting);
}

#[test]
fn converged_orb_has_nothing_to_do() {
    let p = World::new(&[lab(&[]), loc(2, &[])], &["p-1", "p-2"]).plan();
    assert_steps(&p, &[]);
    assert!(p.waiting.is_empty(), "{:?}", p.waiting);
    assert!(p.blocked.is_empty(), "{:?}", p.blocked);
}

#[test]
fn reboot_request_is_one_second_after_now_one_machine_per_pool() {
    let p = World::new(&[lab(&["rebootrequired: [a1, a2, b1]"])], &[]).plan();
    assert_steps(&p, &["write lab.a1 g2", "write lab.b1 g2"]);
    for m in ["lab.a1", "lab.b1"] {
        assert_eq!(written(&p, m).reboot_requested_at(), Some(REQUEST), "{m}");
        let waits = format!("reboot of {m} requested at {REQUEST}: waiting for it to come back");
        assert_waits(&p, &waits);
    }
    assert_waits(&p, A2_WAITS);
}

#[test]
fn reboot_time_comes_from_now_not_the_clock() {
    let mut w = World::new(&[lab(&["rebootrequired: [b1]"])], &[]);
    w.now = "2001-02-03T04:05:59Z".into();
    w.booted_at("lab.b1", "2001-01-01T00:00:00Z");
    let p = w.plan();
    assert_steps(&p, &["write lab.b1 g2"]);
    let at = written(&p, "lab.b1").reboot_requested_at();
    assert_eq!(at, Some("2001-02-03T04:06:00Z"));
}

#[test]
fn new_reboot_request_is_never_fulfilled_in_the_same_plan() {
    // The machine's clock runs 30 s ahead of Orbiter's; it booted 20 s ago by its own clock.
    let mut w = World::new(&[lab(&["rebootrequired: [b1]"])], &[]);
    let booted = "2026-11-26T00:00:10Z";
    w.booted_at("lab.b1", booted);
    let p = w.plan();
    assert_steps(&p, &["write lab.b1 g2"]);
    let at = parse_rfc3339(written(&p, "lab.b1").reboot_requested_at().unwrap());
    let why = "the agent would take its current boot for the reboot";
    assert!(at.unwrap() > parse_rfc3339(booted).unwrap(), "{why}");
}

#[test]
fn no_reboot_while_another_machine_of_the_pool_is_down() {
    for down in [
        Reach::Unreachable("connect: no route to host".into()),
        Reach::Maintenance,
    ] {
        let mut w = World::new(&[lab(&["rebootrequired: [a2]"])], &[]);
        // Either unreachable (its last report said ready) or reachable and not ready.
        w.m("lab.a1").current.as_mut().unwrap().ready = !down.logged_in();
        w.m("lab.a1").reach = down.clone();
        let p = w.plan();
        assert_steps(&p, &[]);
        assert_waits(&p, "reboot of lab.a2");
    }
}

#[test]
fn reboot_already_requested_is_not_requested_again() {
    // Orbiter wrote the request, then was killed; the machine has not rebooted yet.
    let mut w = World::new(&[lab(&["rebootrequired: [a1, a2]"])], &[]);
    let doc = w.reboot_written("lab.a1", EARLIER);
    let p = w.plan();
    assert_steps(&p, &[]);
    assert_waits(
        &p,
        &format!("lab.a1 requested at {EARLIER}: waiting for it"),
    );
    assert_waits(&p, A2_WAITS);

    // Killed after recording the doc but before the machine had it: the same doc again.
    w.m("lab.a1").desired_sha256 = on_machine(&next_doc(None, vec![], &digest).0);
    let p = w.plan();
    assert_steps(&p, &["write lab.a1 g2"]);
    assert_eq!(written(&p, "lab.a1"), &doc);
    let why = "the machine's node-desired file differs from the recorded one";
    assert_reason(&p, "write lab.a1 g2", why);
}

#[test]
fn reboot_done_when_booted_at_or_after_the_request() {
    for (booted, done) in [
        ("2026-11-25T23:58:59Z", false),
        (EARLIER, true),
        ("2026-11-25T23:59:00.900Z", true),
        ("2026-11-26T00:00:30Z", true),
    ] {
        let mut w = World::new(&[lab(&["rebootrequired: [a1]"])], &[]);
        let requested = w.reboot_written("lab.a1", EARLIER);
        w.booted_at("lab.a1", booted);
        let p = w.plan();
        if !done {
            assert_steps(&p, &[]);
            assert_waits(&p, "lab.a1 requested at");
            continue;
        }
        assert_steps(&p, &["clear-reboot lab.a1", "write lab.a1 g3"]);
        let why = format!("rebooted after {EARLIER}");
        assert_reason(&p, "clear-reboot lab.a1", &why);
        let next = written(&p, "lab.a1");
        assert_eq!(next.reboot_requested_at(), None);
        assert_eq!(next.items[..], requested.items[..requested.items.len() - 1]);
        assert!(p.waiting.is_empty(), "{:?}", p.waiting);
    }
}

#[test]
fn cancelled_reboot_is_taken_back() {
    let mut w = World::new(&[lab(&[])], &[]);
    w.reboot_written("lab.a1", EARLIER);
    let p = w.plan();
    assert_steps(&p, &["write lab.a1 g3"]);
    assert_eq!(written(&p, "lab.a1").reboot_requested_at(), None);
}

#[test]
fn stale_flags_of_machines_that_do_not_exist_are_cleared() {
    let flags = ["rebootrequired: [p-9]", "replacementrequired: [p-8]"];
    let p = World::new(&[loc(2, &flags)], &["p-1", "p-2"]).plan();
    assert_steps(&p, &["clear-replace loc.p-8", "clear-reboot loc.p-9"]);
    assert_reason(&p, "clear-reboot loc.p-9", "the machine no longer exists");
    assert!(p.waiting.is_empty() && p.blocked.is_empty());
}

#[test]
fn local_replace_surges_then_destroys_only_when_the_successor_is_ready() {
    let mut w = World::new(&[loc(2, &["replacementrequired: [p-1]"])], &["p-1", "p-2"]);
    let p = w.plan();
    assert_steps(&p, &["create loc.p-3"]);
    assert_reason(&p, "create loc.p-3", "surge: a replacement for loc.p-1");
    assert_waits(&p, SUCCESSOR);
    w.apply(&p, usize::MAX);

    // p-3 exists, not ready: first contact, then agent and node-desired state.
    for expected in [&["pin loc.p-3"][..], &["agent loc.p-3", "write loc.p-3 g1"]] {
        let p = w.plan();
        assert_steps(&p, expected);
        assert_waits(&p, SUCCESSOR);
        w.apply(&p, usize::MAX);
    }
    let p = w.plan();
    assert_steps(&p, &["destroy loc.p-1!", "clear-replace loc.p-1"]);
    let why = "replacement requested; its successor is ready";
    assert_reason(&p, "destroy loc.p-1!", why);
    assert!(p.waiting.is_empty(), "{:?}", p.waiting);
    w.apply(&p, usize::MAX);
    assert_steps(&w.plan(), &[]);
}

#[test]
fn cluster_members_are_not_scaled_away_until_their_cluster_lets_them_go() {
    let w = World::new(&[loc(2, &[])], &["p-1", "p-2", "p-3"]);
    let mut needs = ClusterNeeds::default();
    needs
        .held
        .insert(key("loc.p-3"), "member of etcd cluster kv".into());
    let p = w.plan_with(&needs);
    assert_steps(&p, &[]);
    assert_waits(&p, "loc.p-3 stays for now: member of etcd cluster kv");
    needs.held.clear();
    assert_steps(&w.plan_with(&needs), &["destroy loc.p-3!"]);
}

#[test]
fn a_dead_machine_a_cluster_gave_up_on_is_destroyed_and_a_successor_surges() {
    let mut w = World::new(&[loc(2, &[])], &["p-1", "p-2"]);
    w.m("loc.p-2").reach = Reach::Unreachable("connect: timed out".into());
    let mut needs = ClusterNeeds::default();
    needs
        .heal
        .insert(key("loc.p-2"), "dead member removed".into());
    let p = w.plan_with(&needs);
    assert_steps(&p, &["destroy loc.p-2!", "create loc.p-3"]);
    assert_reason(&p, "destroy loc.p-2!", "dead member removed");
}

#[test]
fn a_local_machine_never_reached_and_unreachable_now_is_created_again() {
    // Orbiter was killed while creating p-2: it exists but never booted, so it was never pinned.
    let mut w = World::new(&[loc(2, &[])], &["p-1", "p-2"]);
    w.recorded.pinned.remove(&key("loc.p-2"));
    w.m("loc.p-2").reach = Reach::Unreachable("connect: no route to host".into());
    let p = w.plan();
    assert_steps(&p, &["destroy loc.p-2!", "create loc.p-3"]);
    // Pinned once (it ran): unreachable is a fault to report, not a reason to destroy.
    let mut w = World::new(&[loc(2, &[])], &["p-1", "p-2"]);
    w.m("loc.p-2").reach = Reach::Unreachable("connect: no route to host".into());
    assert_steps(&w.plan(), &[]);
}

#[test]
fn cluster_items_steps_and_frozen_machines() {
    let w = World::new(&[loc(2, &[])], &["p-1", "p-2"]);
    let mut needs = ClusterNeeds::default();
    let item = Item::File(node_protocol::File::text("/etc/kv", "x", "0644"));
    needs.items.insert(key("loc.p-1"), vec![item.clone()]);
    needs.items.insert(key("loc.p-2"), vec![item.clone()]);
    needs
        .frozen
        .insert(key("loc.p-2"), "its certificates are missing".into());
    needs.steps.push((
        Id::parse("kv").unwrap(),
        KindStep {
            machine: key("loc.p-1"),
            summary: "member add".into(),
            reason: "etcd cluster kv".into(),
            destructive: false,
            command: "true".into(),
            copy: None,
        },
    ));
    let p = w.plan_with(&needs);
    assert_steps(&p, &["write loc.p-1 g2", "cluster kv on loc.p-1"]);
    assert_eq!(written(&p, "loc.p-1").items.last(), Some(&item));
    assert_waits(&p, "node-desired state of loc.p-2 kept as it is");
}

#[test]
fn local_scaling_creates_the_lowest_free_index_and_destroys_the_highest() {
    for (nodes, have, expected) in [
        (3, &["p-1", "p-2"][..], &["create loc.p-3"][..]),
        (3, &["p-1", "p-3"], &["create loc.p-2"]),
        (2, &[], &["create loc.p-1", "create loc.p-2"]),
        (2, &["p-1", "p-2", "p-3"], &["destroy loc.p-3!"]),
        (
            1,
            &["p-1", "p-2", "p-3"],
            &["destroy loc.p-3!", "destroy loc.p-2!"],
        ),
        (0, &["p-1"], &["destroy loc.p-1!"]),
    ] {
        let p = World::new(&[loc(nodes, &[])], have).plan();
        assert_eq!(brief(&p), expected, "nodes {nodes}, have {have:?}");
        let why = format!("pool loc.p wants {nodes} machines, has {}", have.len());
        assert!(p.steps.iter().all(|s| s.reason == why), "{:?}", p.steps);
    }
}

#[test]
fn machine_being_destroyed_gets_no_other_step() {
    for reach in [Reach::NotPinned(HostKey(HOST_KEY.into())), Reach::Bootstrap] {
        let mut w = World::new(&[loc(2, &[])], &["p-1", "p-2", "p-3"]);
        w.m("loc.p-3").reach = reach.clone();
        assert_steps(&w.plan(), &["destroy loc.p-3!"]);
    }
}

#[test]
fn static_replace_waits_with_a_hint_and_destroys_nothing() {
    let p = World::new(&[lab(&["replacementrequired: [a2]"])], &[]).plan();
    assert_steps(&p, &[]);
    let hint = "replacement of lab.a2: a Static provider cannot create machines; add a spare";
    assert_waits(&p, hint);
}

#[test]
fn unreachable_machines_are_blocked_and_the_others_proceed() {
    let (expected, found) = ("SHA256:old".into(), "SHA256:new".into());
    for (reach, needle) in [
        (
            Reach::Unreachable("connect 10.0.0.1:22: timed out".into()),
            "timed out",
        ),
        (
            Reach::AuthFailed("no key of this Orb logs in".into()),
            "no key",
        ),
        (
            Reach::HostKeyChanged { expected, found },
            "pinned SHA256:old, offered SHA256:new",
        ),
    ] {
        let mut w = World::new(&[lab(&["rebootrequired: [a1]"])], &[]);
        for k in ["lab.a1", "lab.a2"] {
            w.m(k).desired_sha256 = None;
        }
        w.m("lab.a1").reach = reach.clone();
        let p = w.plan();
        assert_steps(&p, &["write lab.a2 g1"]);
        assert_eq!(p.blocked.len(), 1, "{reach:?}");
        assert_eq!(p.blocked[0].0, key("lab.a1"));
        assert!(p.blocked[0].1.contains(needle), "{:?}", p.blocked);
    }
}

#[test]
fn first_contact_pins_and_bootstrap_installs_the_maintenance_key() {
    let mut w = World::new(&[lab(&[])], &[]);
    let hk = HostKey(HOST_KEY.into());
    w.m("lab.a1").reach = Reach::NotPinned(hk.clone());
    w.m("lab.a1").agent = None;
    w.m("lab.a2").reach = Reach::Bootstrap;
    let p = w.plan();
    assert_steps(&p, &["pin lab.a1", "maintkey lab.a2"]);
    let Action::PinHostKey {
        fingerprint, key, ..
    } = &p.steps[0].action
    else {
        unreachable!()
    };
    assert_eq!((key, fingerprint), (&hk, &hk.fingerprint()));
    assert!(fingerprint.starts_with("SHA256:"), "{fingerprint}");
    assert_reason(&p, "maintkey lab.a2", "only the bootstrap key logs in");
}

#[test]
fn agent_is_installed_when_missing_other_or_inactive() {
    let sha = release().sha256;
    for (observed, why) in [
        (None, "no node-agent installed"),
        (
            agent("0.0.9", "cd", true),
            "node-agent 0.0.9 differs from 0.1.0",
        ),
        (agent("", "", false), "node-agent ? differs from 0.1.0"),
        (agent("0.1.0", &sha, false), "node-agent is not running"),
    ] {
        let mut w = World::new(&[lab(&[])], &[]);
        w.m("lab.b1").agent = observed.clone();
        let p = w.plan();
        assert_steps(&p, &["agent lab.b1"]);
        assert_reason(&p, "agent lab.b1", why);
        let Action::InstallAgent { version, .. } = &p.steps[0].action else {
            unreachable!()
        };
        assert_eq!(version, "0.1.0");
    }
}

#[test]
fn other_node_software_means_a_new_generation_everywhere() {
    let mut w = World::new(&[lab(&[])], &[]);
    w.orb.software.clear();
    let p = w.plan();
    assert_steps(
        &p,
        &["write lab.a1 g2", "write lab.a2 g2", "write lab.b1 g2"],
    );
    assert_reason(
        &p,
        "write lab.b1 g2",
        "orbiter.yml asks for other node software",
    );
    assert_eq!(
        written(&p, "lab.b1").items.len(),
        1,
        "only the host name is left"
    );
}

#[test]
fn provider_error_waits_and_plans_nothing_for_it() {
    let flags = ["rebootrequired: [p-9]", "replacementrequired: [p-1]"];
    let mut w = World::new(&[lab(&[]), loc(3, &flags)], &["p-1"]);
    w.recorded.maintenance_keys.clear();
    w.m("lab.b1").desired_sha256 = None;
    let loc = w
        .observed
        .providers
        .get_mut(&Id::parse("loc").unwrap())
        .unwrap();
    loc.error = Some("this host cannot run machines: systemd-nspawn not found".into());
    let p = w.plan();
    assert_steps(&p, &["genkey lab", "write lab.b1 g1"]);
    assert_waits(&p, "provider loc: this host cannot run machines");
}

#[test]
fn provider_removed_from_orbiter_yml_leaves_its_machines_alone() {
    let mut w = World::new(&[lab(&[]), loc(2, &[])], &["p-1", "p-2"]);
    w.orb = orb(&[lab(&[])]);
    let p = w.plan();
    assert_steps(&p, &[]);
    let why = "provider loc is not in orbiter.yml any more; its 2 machines are left as they are";
    assert_waits(&p, why);
}

#[test]
fn plan_is_deterministic() {
    let flags = ["rebootrequired: [p-2]", "replacementrequired: [p-1]"];
    let providers = [lab(&["rebootrequired: [a1, a2]"]), loc(3, &flags)];
    let mut w = World::new(&providers, &["p-1", "p-2"]);
    w.m("lab.b1").reach = Reach::Unreachable("timed out".into());
    w.m("lab.a2").agent = None;
    let first = w.plan();
    assert!(!first.steps.is_empty() && !first.waiting.is_empty() && !first.blocked.is_empty());
    for _ in 0..3 {
        assert_eq!(w.plan(), first);
    }
    let json = |p: &Plan| serde_json::to_string(p).unwrap();
    assert_eq!(json(&w.plan()), json(&first));
}

/// Plans and replays until converged, `limit` steps per round (1 = Orbiter dies after every
/// step); the clock ticks a second per round and a machine asked to reboot does so in the
/// second it was asked for. Returns the steps applied and, per round, the number of machines
/// of each pool with a reboot request recorded.
fn roll_out(w: &mut World, limit: usize) -> (Vec<Action>, Vec<BTreeMap<String, usize>>) {
    let (mut applied, mut pending) = (Vec::new(), Vec::new());
    let mut t = parse_rfc3339(NOW).unwrap();
    for _ in 0..40 {
        w.now = format_rfc3339(t);
        let p = w.plan();
        assert!(p.blocked.is_empty(), "{:?}", p.blocked);
        if p.steps.is_empty() && p.waiting.is_empty() {
            return (applied, pending);
        }
        applied.extend(w.apply(&p, limit));
        t += 1;
        let mut per_pool = BTreeMap::new();
        let keys: Vec<String> = w
            .observed
            .machines()
            .map(|m| m.machine.key.to_string())
            .collect();
        for k in keys {
            let doc = w.recorded.node_desired.get(&key(&k));
            let Some(at) = doc.and_then(|d| d.reboot_requested_at()) else {
                continue;
            };
            let at = parse_rfc3339(at).unwrap();
            *per_pool
                .entry(w.m(&k).machine.pool.to_string())
                .or_insert(0) += 1;
            let c = w.m(&k).current.as_mut().unwrap();
            if parse_rfc3339(c.booted_at.as_deref().unwrap()).unwrap() < at && t >= at {
                c.booted_at = Some(format_rfc3339(t));
            }
        }
        pending.push(per_pool);
    }
    panic!("no convergence in 40 rounds; applied {applied:?}");
}

#[test]
fn reboot_rollout_converges_one_per_pool_even_when_killed_after_every_step() {
    for limit in [usize::MAX, 1] {
        let mut w = World::new(&[lab(&["rebootrequired: [a1, a2, b1]"])], &[]);
        let (applied, pending) = roll_out(&mut w, limit);
        let pool_a = |p: &BTreeMap<String, usize>| p.get("a").copied().unwrap_or(0);
        assert!(
            pending.iter().all(|p| pool_a(p) <= 1),
            "limit {limit}: {pending:?}"
        );
        let clears = applied
            .iter()
            .filter(|a| matches!(a, Action::ClearReboot { .. }));
        assert_eq!(clears.count(), 3, "each flag cleared once (limit {limit})");
        for k in ["lab.a1", "lab.a2", "lab.b1"] {
            let booted = w.m(k).current.as_ref().unwrap().booted_at.clone().unwrap();
            assert!(booted.as_str() > NOW, "{k} rebooted (limit {limit})");
            assert_eq!(w.recorded.node_desired[&key(k)].reboot_requested_at(), None);
        }
        let flags = w
            .orb
            .providers
            .values_mut()
            .map(|p| p.spec.flags_mut(MachineFlag::Reboot));
        assert!(flags.into_iter().all(|f| f.is_empty()), "flags cleared");
        if limit == usize::MAX {
            let both = pending[0].get("a") == Some(&1) && pending[0].get("b") == Some(&1);
            assert!(both, "pools a and b reboot in parallel: {pending:?}");
        }
    }
}

#[test]
fn replace_rollout_surges_once_and_destroys_once_even_when_killed_after_every_step() {
    for limit in [usize::MAX, 1] {
        let mut w = World::new(&[loc(2, &["replacementrequired: [p-1]"])], &["p-1", "p-2"]);
        let (applied, _) = roll_out(&mut w, limit);
        let lifecycle: Vec<String> = applied
            .iter()
            .filter(|a| !a.runs_on_machine() && !matches!(a, Action::PinHostKey { .. }))
            .map(Action::summary)
            .collect();
        let expected = [
            "create machine loc.p-3 in pool p",
            "destroy machine loc.p-1",
            "clear the replacement flag of loc.p-1",
        ];
        assert_eq!(lifecycle, expected, "limit {limit}");
        let left: Vec<String> = w
            .observed
            .machines()
            .map(|m| m.machine.key.to_string())
            .collect();
        assert_eq!(left, ["loc.p-2", "loc.p-3"]);
    }
}
