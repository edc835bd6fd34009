//! Scenario tests for the pure plan: Orbs written as YAML, machines observed by hand, and the
//! steps, waits and blocks the plan returns. Restart safety is tested by replaying what the
//! engine's steps change (`World::apply`), also when Orbiter dies after any single step.

use node_agent::current::Current;
use node_agent::timefmt::{format_rfc3339, parse_rfc3339};
use orb_model::registry::MachineFlag;
use orb_model::{Id, Orb};
use orbiter::machine::{MachineKey, MachineRef};
use orbiter::node_desired::{NodeDesiredDoc, items_for, next_doc};
use orbiter::observed::{AgentObserved, MachineObserved, Observed, ProviderObserved, Reach};
use orbiter::plan::{Action, AgentRelease, Plan, PlanInput, Recorded, listed_machines, plan};
use orbiter::ssh::HostKey;
use std::collections::BTreeMap;

const NOW: &str = "2026-11-26T00:00:00Z";
/// A new reboot request is for the second after `now`.
const REQUEST: &str = "2026-11-26T00:00:01Z";
const OLD_BOOT: &str = "2026-11-20T08:00:00Z";
const HOST_KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl";

fn release() -> AgentRelease {
    AgentRelease {
        version: "0.1.0".into(),
        sha256: "ab".repeat(32),
    }
}

fn agent_ok() -> AgentObserved {
    let r = release();
    AgentObserved {
        version: r.version,
        sha256: r.sha256,
        active: true,
    }
}

/// Static provider `lab`: pool `a` (a1, a2) and pool `b` (b1). `flags`: lines under `spec`.
fn lab(flags: &str) -> String {
    format!(
        "  lab:
    kind: StaticProvider
    version: v1
    spec:
      pools:
        a:
          - {{id: a1, hostname: a1, ip: 10.0.0.1}}
          - {{id: a2, hostname: a2, ip: 10.0.0.2}}
        b:
          - {{id: b1, hostname: b1, ip: 10.0.1.1}}
{flags}"
    )
}

/// Local provider `loc`, group `g`, one pool `p` of `nodes` machines.
fn loc(nodes: u32, flags: &str) -> String {
    format!(
        "  loc:
    kind: LocalProvider
    version: v1
    spec:
      group: g
      pools:
        p: {{nodes: {nodes}}}
{flags}"
    )
}

/// An Orb of these providers, with node software on every pool they have.
fn orb(providers: &[String]) -> Orb {
    let mut pools = Vec::new();
    let mut y = String::from("kind: Orb\nversion: v1\nproviders:\n");
    for p in providers {
        y.push_str(p);
        if p.starts_with("  lab:") {
            pools.extend(["lab.a", "lab.b"]);
        } else {
            pools.push("loc.p");
        }
    }
    y.push_str(&format!(
        "software:\n  base:\n    kind: NodeSoftware\n    version: v1\n    spec:\n      pools: [{}]\n      items:\n        - file: {{path: /etc/motd, content: hello}}\n",
        pools.join(", ")
    ));
    Orb::parse(&y, "orbiter.yml").unwrap_or_else(|e| panic!("test Orb is invalid: {e}\n{y}"))
}

fn id(s: &str) -> Id {
    Id::parse(s).unwrap()
}

fn key(s: &str) -> MachineKey {
    MachineKey::parse(s).unwrap()
}

fn local_ref(name: &str) -> MachineRef {
    let n: u8 = name.rsplit_once('-').unwrap().1.parse().unwrap();
    let k = key(&format!("loc.{name}"));
    MachineRef {
        pool: id("p"),
        hostname: name.to_owned(),
        ip: format!("10.1.0.{n}").parse().unwrap(),
        user: "orbiter".into(),
        key: k,
    }
}

fn current(generation: u64, booted_at: &str) -> Current {
    let mut c = Current::new();
    c.ready = true;
    c.generation = Some(generation);
    c.booted_at = Some(booted_at.to_owned());
    c
}

/// Everything the plan reads, plus the clock.
struct World {
    orb: Orb,
    recorded: Recorded,
    observed: Observed,
    now: String,
}

impl World {
    /// Every provider has its maintenance key; every listed (Static) machine is converged.
    fn new(orb: Orb) -> World {
        let mut w = World {
            orb,
            recorded: Recorded::default(),
            observed: Observed::default(),
            now: NOW.to_owned(),
        };
        for (pid, node) in w.orb.providers.clone() {
            w.recorded.maintenance_keys.insert(pid.clone());
            w.observed
                .providers
                .insert(pid.clone(), ProviderObserved::default());
            for m in listed_machines(&pid, &node.spec) {
                w.add_converged(m);
            }
        }
        w
    }

    /// Adds converged Local machines (`p-1` …).
    fn with_local(mut self, ids: &[&str]) -> World {
        for id in ids {
            self.add_converged(local_ref(id));
        }
        self
    }

    fn add_converged(&mut self, m: MachineRef) {
        let doc = next_doc(None, items_for(&self.orb, &m, None));
        self.recorded
            .pinned
            .insert(m.key.clone(), HostKey(HOST_KEY.into()));
        let obs = MachineObserved {
            machine: m.clone(),
            reach: Reach::Maintenance,
            agent: Some(agent_ok()),
            desired_on_machine: Some(doc.render()),
            current: Some(current(doc.generation, OLD_BOOT)),
        };
        self.recorded.node_desired.insert(m.key.clone(), doc);
        self.observed
            .providers
            .entry(m.key.provider.clone())
            .or_default()
            .machines
            .push(obs);
    }

    fn m(&mut self, k: &str) -> &mut MachineObserved {
        let k = key(k);
        self.observed
            .providers
            .get_mut(&k.provider)
            .unwrap()
            .machines
            .iter_mut()
            .find(|m| m.machine.key == k)
            .unwrap_or_else(|| panic!("no machine {k}"))
    }

    fn booted_at(&mut self, k: &str, at: &str) {
        self.m(k).current.as_mut().unwrap().booted_at = Some(at.to_owned());
    }

    /// The state after Orbiter wrote a reboot request for `at` to `k` (recorded and on the
    /// machine, enforced by its agent) and was killed before the machine rebooted.
    fn reboot_written(&mut self, k: &str, at: &str) -> NodeDesiredDoc {
        let m = self.m(k).machine.clone();
        let doc = next_doc(
            self.recorded.node_desired.get(&m.key),
            items_for(&self.orb, &m, Some(at)),
        );
        self.write(&m.key, &doc);
        doc
    }

    /// What WriteNodeDesired leaves behind: recorded, on the machine, enforced by its agent.
    fn write(&mut self, k: &MachineKey, doc: &NodeDesiredDoc) {
        self.recorded.node_desired.insert(k.clone(), doc.clone());
        let m = self.m(&k.to_string());
        m.desired_on_machine = Some(doc.render());
        let c = m.current.get_or_insert_with(|| current(0, OLD_BOOT));
        c.generation = Some(doc.generation);
        c.ready = true;
    }

    fn plan(&self) -> Plan {
        plan(&PlanInput {
            orb: &self.orb,
            recorded: &self.recorded,
            observed: &self.observed,
            agent: &release(),
            now: &self.now,
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
                Action::WriteNodeDesired { machine, doc, .. } => self.write(machine, doc),
                Action::ClearReboot { machine } => self.clear(machine, MachineFlag::Reboot),
                Action::ClearReplacement { machine } => self.clear(machine, MachineFlag::Replace),
                Action::DestroyMachine { machine } => {
                    let ms = self.observed.providers.get_mut(&machine.provider).unwrap();
                    ms.machines.retain(|m| m.machine.key != *machine);
                    self.recorded.node_desired.remove(machine);
                    self.recorded.pinned.remove(machine);
                }
                Action::CreateMachine { machine, .. } => {
                    let m = local_ref(machine.as_str());
                    // A fresh machine: first contact, nothing installed.
                    self.observed
                        .providers
                        .get_mut(&m.key.provider)
                        .unwrap()
                        .machines
                        .push(MachineObserved {
                            machine: m,
                            reach: Reach::NotPinned(HostKey(HOST_KEY.into())),
                            agent: None,
                            desired_on_machine: None,
                            current: None,
                        });
                }
                Action::PinHostKey { machine, key, .. } => {
                    self.recorded.pinned.insert(machine.clone(), key.clone());
                    self.m(&machine.to_string()).reach = Reach::Maintenance;
                }
                Action::InstallAgent { machine, .. } => {
                    self.m(&machine.to_string()).agent = Some(agent_ok());
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
    p.steps
        .iter()
        .map(|s| {
            let mut t = match &s.action {
                Action::GenerateMaintenanceKey { provider } => format!("genkey {provider}"),
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
                } => format!("write {machine} g{generation}"),
                Action::ClearReboot { machine } => format!("clear-reboot {machine}"),
                Action::ClearReplacement { machine } => format!("clear-replace {machine}"),
                Action::DestroyMachine { machine } => format!("destroy {machine}"),
            };
            if s.destructive {
                t.push('!');
            }
            t
        })
        .collect()
}

fn reason<'a>(p: &'a Plan, step: &str) -> &'a str {
    let i = brief(p).iter().position(|s| s == step);
    &p.steps[i.unwrap_or_else(|| panic!("no step `{step}` in {:?}", brief(p)))].reason
}

fn written<'a>(p: &'a Plan, k: &str) -> &'a NodeDesiredDoc {
    p.steps
        .iter()
        .find_map(|s| match &s.action {
            Action::WriteNodeDesired { machine, doc, .. } if *machine == key(k) => Some(doc),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no write to {k} in {:?}", brief(p)))
}

/// Some waiting entry contains every needle.
fn assert_waits(p: &Plan, needles: &[&str]) {
    assert!(
        p.waiting
            .iter()
            .any(|w| needles.iter().all(|n| w.contains(n))),
        "nothing waiting with {needles:?}: {:?}",
        p.waiting
    );
}

fn assert_converged(p: &Plan) {
    assert!(p.steps.is_empty(), "steps: {:?}", brief(p));
    assert!(p.waiting.is_empty(), "waiting: {:?}", p.waiting);
    assert!(p.blocked.is_empty(), "blocked: {:?}", p.blocked);
}

#[test]
fn converged_orb_has_nothing_to_do() {
    let w = World::new(orb(&[lab(""), loc(2, "")])).with_local(&["p-1", "p-2"]);
    assert_converged(&w.plan());
}

#[test]
fn new_provider_gets_its_maintenance_key_first() {
    let mut w = World::new(orb(&[lab("")]));
    w.recorded.maintenance_keys.clear();
    assert_eq!(brief(&w.plan()), ["genkey lab"]);
}

#[test]
fn reboot_request_is_one_second_after_now_one_machine_per_pool() {
    let w = World::new(orb(&[lab("      rebootrequired: [a1, a2, b1]\n")]));
    let p = w.plan();
    assert_eq!(brief(&p), ["write lab.a1 g2", "write lab.b1 g2"]);
    for m in ["lab.a1", "lab.b1"] {
        assert_eq!(written(&p, m).reboot_requested_at(), Some(REQUEST), "{m}");
        assert_waits(
            &p,
            &[
                &format!("reboot of {m} requested at {REQUEST}"),
                "come back",
            ],
        );
    }
    assert_waits(
        &p,
        &[
            "reboot of lab.a2",
            "another machine of pool a reboots first",
        ],
    );
}

#[test]
fn reboot_time_comes_from_now_not_the_clock() {
    let mut w = World::new(orb(&[lab("      rebootrequired: [b1]\n")]));
    w.now = "2001-02-03T04:05:59Z".into();
    w.booted_at("lab.b1", "2001-01-01T00:00:00Z");
    let p = w.plan();
    assert_eq!(brief(&p), ["write lab.b1 g2"]);
    let at = written(&p, "lab.b1").reboot_requested_at();
    assert_eq!(at, Some("2001-02-03T04:06:00Z"));
}

#[test]
#[ignore = "bug: a request made in this plan is judged fulfilled by a boot time after `now` (machine clock ahead)"]
fn new_reboot_request_is_never_fulfilled_in_the_same_plan() {
    // The machine's clock runs 30 s ahead of Orbiter's; it booted 20 s ago by its own clock.
    let mut w = World::new(orb(&[lab("      rebootrequired: [b1]\n")]));
    let booted = "2026-11-26T00:00:10Z";
    w.booted_at("lab.b1", booted);
    let p = w.plan();
    assert_eq!(brief(&p), ["write lab.b1 g2"], "asked to reboot, flag kept");
    let at = written(&p, "lab.b1").reboot_requested_at().unwrap();
    let (at, booted) = (parse_rfc3339(at).unwrap(), parse_rfc3339(booted).unwrap());
    assert!(
        at > booted,
        "the agent would take its current boot as the reboot"
    );
}

#[test]
fn reboot_already_requested_is_not_requested_again() {
    // Orbiter wrote the request, then was killed; the machine has not rebooted yet.
    let mut w = World::new(orb(&[lab("      rebootrequired: [a1, a2]\n")]));
    let at = "2026-11-25T23:59:00Z";
    w.reboot_written("lab.a1", at);
    let p = w.plan();
    assert!(
        p.steps.is_empty() && p.blocked.is_empty(),
        "{:?}",
        brief(&p)
    );
    assert_waits(
        &p,
        &[&format!(
            "reboot of lab.a1 requested at {at}: waiting for it to come back"
        )],
    );
    assert_waits(&p, &["reboot of lab.a2", "another machine of pool a"]);
}

#[test]
fn reboot_recorded_but_not_on_the_machine_is_rewritten_with_the_same_time() {
    let mut w = World::new(orb(&[lab("      rebootrequired: [a1]\n")]));
    let at = "2026-11-25T23:59:00Z";
    let doc = w.reboot_written("lab.a1", at);
    let before = w.recorded.node_desired[&key("lab.a1")].clone();
    let m = w.m("lab.a1");
    m.desired_on_machine = Some(next_doc(None, vec![]).render());
    let p = w.plan();
    assert_eq!(brief(&p), [format!("write lab.a1 g{}", doc.generation)]);
    assert_eq!(written(&p, "lab.a1"), &before);
    assert_eq!(
        reason(&p, "write lab.a1 g2"),
        "the machine's node-desired file differs from the recorded one"
    );
}

#[test]
fn reboot_done_when_booted_at_or_after_the_request() {
    let at = "2026-11-25T23:59:00Z";
    for (booted, done) in [
        ("2026-11-25T23:58:59Z", false),
        (at, true),
        ("2026-11-25T23:59:00.900Z", true),
        ("2026-11-26T00:00:30Z", true),
    ] {
        let mut w = World::new(orb(&[lab("      rebootrequired: [a1]\n")]));
        let doc = w.reboot_written("lab.a1", at);
        w.booted_at("lab.a1", booted);
        let p = w.plan();
        if done {
            assert_eq!(
                brief(&p),
                ["clear-reboot lab.a1", "write lab.a1 g3"],
                "booted {booted}"
            );
            assert_eq!(
                reason(&p, "clear-reboot lab.a1"),
                format!("rebooted after {at}")
            );
            let next = written(&p, "lab.a1");
            assert_eq!(next.reboot_requested_at(), None);
            assert_eq!(
                next.items.len(),
                doc.items.len() - 1,
                "only the reboot item is dropped"
            );
            assert!(p.waiting.is_empty(), "{:?}", p.waiting);
        } else {
            assert!(p.steps.is_empty(), "booted {booted}: {:?}", brief(&p));
            assert_waits(&p, &["reboot of lab.a1", "waiting for it to come back"]);
        }
    }
}

#[test]
fn stale_flags_of_machines_that_do_not_exist_are_cleared() {
    let flags = "      rebootrequired: [p-9]\n      replacementrequired: [p-8]\n";
    let w = World::new(orb(&[loc(2, flags)])).with_local(&["p-1", "p-2"]);
    let p = w.plan();
    assert_eq!(brief(&p), ["clear-replace loc.p-8", "clear-reboot loc.p-9"]);
    assert_eq!(
        reason(&p, "clear-reboot loc.p-9"),
        "the machine no longer exists"
    );
    assert!(p.waiting.is_empty() && p.blocked.is_empty());
}

#[test]
fn local_replace_surges_then_destroys_only_when_the_successor_is_ready() {
    let mut w = World::new(orb(&[loc(2, "      replacementrequired: [p-1]\n")]))
        .with_local(&["p-1", "p-2"]);
    let p = w.plan();
    assert_eq!(brief(&p), ["create loc.p-3"]);
    assert_eq!(
        reason(&p, "create loc.p-3"),
        "surge: a replacement for loc.p-1"
    );
    assert_waits(&p, &["replacement of loc.p-1", "successor is ready"]);

    // Created, not ready yet (Orbiter may have been killed and restarted meanwhile).
    w.apply(&p, usize::MAX);
    for _ in 0..2 {
        let p = w.plan();
        assert!(
            !brief(&p)
                .iter()
                .any(|s| s.starts_with("create") || s.starts_with("destroy")),
            "{:?}",
            brief(&p)
        );
        assert_waits(&p, &["replacement of loc.p-1", "successor is ready"]);
        w.apply(&p, usize::MAX);
    }
    // p-3 pinned, agent installed and its doc enforced: now p-1 goes.
    let p = w.plan();
    assert_eq!(brief(&p), ["destroy loc.p-1!", "clear-replace loc.p-1"]);
    assert!(p.waiting.is_empty(), "{:?}", p.waiting);
    w.apply(&p, usize::MAX);
    assert_converged(&w.plan());
}

#[test]
fn local_replace_never_surges_twice_when_the_new_machine_is_not_ready() {
    let mut w = World::new(orb(&[loc(2, "      replacementrequired: [p-1]\n")]))
        .with_local(&["p-1", "p-2", "p-3"]);
    w.m("loc.p-3").current.as_mut().unwrap().ready = false;
    let p = w.plan();
    assert!(p.steps.is_empty(), "{:?}", brief(&p));
    assert_waits(
        &p,
        &["replacement of loc.p-1: waiting until its successor is ready"],
    );
}

#[test]
fn local_scaling_creates_the_lowest_free_index_and_destroys_the_highest() {
    for (nodes, have, expect) in [
        (3, &["p-1", "p-2"][..], &["create loc.p-3"][..]),
        (3, &["p-1", "p-3"], &["create loc.p-2"]),
        (
            3,
            &[],
            &["create loc.p-1", "create loc.p-2", "create loc.p-3"],
        ),
        (2, &["p-1", "p-2", "p-3"], &["destroy loc.p-3!"]),
        (
            1,
            &["p-1", "p-2", "p-3"],
            &["destroy loc.p-3!", "destroy loc.p-2!"],
        ),
        (0, &["p-1"], &["destroy loc.p-1!"]),
    ] {
        let w = World::new(orb(&[loc(nodes, "")])).with_local(have);
        let p = w.plan();
        assert_eq!(brief(&p), expect, "nodes {nodes}, have {have:?}");
        let first = &p.steps[0].reason;
        assert!(
            first.contains(&format!(
                "pool loc.p wants {nodes} machines, has {}",
                have.len()
            )),
            "{first}"
        );
    }
}

#[test]
fn static_replace_waits_with_a_hint_and_destroys_nothing() {
    let w = World::new(orb(&[lab("      replacementrequired: [a2]\n")]));
    let p = w.plan();
    assert!(p.steps.is_empty(), "{:?}", brief(&p));
    assert_waits(
        &p,
        &[
            "replacement of lab.a2",
            "cannot create machines",
            "add a spare machine",
        ],
    );
}

#[test]
fn unreachable_machines_are_blocked_and_the_others_proceed() {
    let changed = Reach::HostKeyChanged {
        expected: "SHA256:old".into(),
        found: "SHA256:new".into(),
    };
    for (reach, needle) in [
        (
            Reach::Unreachable("connect 10.0.0.1:22: timed out".into()),
            "timed out",
        ),
        (
            Reach::AuthFailed("no key of this Orb logs in as orbiter".into()),
            "no key",
        ),
        (
            changed,
            "host key changed: pinned SHA256:old, offered SHA256:new",
        ),
    ] {
        let mut w = World::new(orb(&[lab("      rebootrequired: [a1]\n")]));
        for k in ["lab.a1", "lab.a2"] {
            w.m(k).desired_on_machine = None;
        }
        w.m("lab.a1").reach = reach.clone();
        let p = w.plan();
        assert_eq!(brief(&p), ["write lab.a2 g1"], "{reach:?}");
        assert_eq!(p.blocked.len(), 1, "{reach:?}");
        assert_eq!(p.blocked[0].0, key("lab.a1"));
        assert!(p.blocked[0].1.contains(needle), "{:?}", p.blocked);
    }
}

#[test]
fn first_contact_pins_and_bootstrap_installs_the_maintenance_key() {
    let mut w = World::new(orb(&[lab("")]));
    let hk = HostKey(HOST_KEY.into());
    w.m("lab.a1").reach = Reach::NotPinned(hk.clone());
    w.m("lab.a1").agent = None;
    w.m("lab.a2").reach = Reach::Bootstrap;
    let p = w.plan();
    assert_eq!(brief(&p), ["pin lab.a1", "maintkey lab.a2"]);
    match &p.steps[0].action {
        Action::PinHostKey {
            fingerprint, key, ..
        } => {
            assert_eq!(key, &hk);
            assert_eq!(fingerprint, &hk.fingerprint());
            assert!(fingerprint.starts_with("SHA256:"), "{fingerprint}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        reason(&p, "maintkey lab.a2"),
        "only the bootstrap key logs in"
    );
}

#[test]
fn agent_is_installed_when_missing_other_or_inactive() {
    let other = |version: &str, sha: &str, active| AgentObserved {
        version: version.into(),
        sha256: sha.into(),
        active,
    };
    let sha = release().sha256;
    for (agent, why) in [
        (None, "no node-agent installed".to_owned()),
        (
            Some(other("0.0.9", "cd", true)),
            "node-agent 0.0.9 differs from 0.1.0".to_owned(),
        ),
        (
            Some(other("", "", false)),
            "node-agent ? differs from 0.1.0".to_owned(),
        ),
        (
            Some(other("0.1.0", &sha, false)),
            "node-agent is not running".to_owned(),
        ),
    ] {
        let mut w = World::new(orb(&[lab("")]));
        w.m("lab.b1").agent = agent.clone();
        let p = w.plan();
        assert_eq!(brief(&p), ["agent lab.b1"], "{agent:?}");
        assert_eq!(reason(&p, "agent lab.b1"), why);
        assert!(
            matches!(&p.steps[0].action, Action::InstallAgent { version, .. } if version == "0.1.0")
        );
    }
}

#[test]
fn other_node_software_means_a_new_generation_everywhere() {
    let mut w = World::new(orb(&[lab("")]));
    w.orb.software.clear();
    let p = w.plan();
    assert_eq!(
        brief(&p),
        ["write lab.a1 g2", "write lab.a2 g2", "write lab.b1 g2"]
    );
    assert_eq!(
        reason(&p, "write lab.b1 g2"),
        "orbiter.yml asks for other node software"
    );
    assert_eq!(
        written(&p, "lab.b1").items.len(),
        1,
        "only the host name is left"
    );
}

#[test]
fn provider_error_waits_and_plans_nothing_for_it() {
    let flags = "      rebootrequired: [p-9]\n      replacementrequired: [p-1]\n";
    let mut w = World::new(orb(&[lab(""), loc(3, flags)])).with_local(&["p-1"]);
    w.recorded.maintenance_keys.remove(&id("loc"));
    w.m("lab.b1").desired_on_machine = None;
    w.observed.providers.get_mut(&id("loc")).unwrap().error =
        Some("this host cannot run machines: systemd-nspawn not found".into());
    let p = w.plan();
    assert_eq!(brief(&p), ["write lab.b1 g1"]);
    assert_waits(&p, &["provider loc: this host cannot run machines"]);
}

#[test]
fn provider_removed_from_orbiter_yml_leaves_its_machines_alone() {
    let mut w = World::new(orb(&[lab(""), loc(2, "")])).with_local(&["p-1", "p-2"]);
    w.orb = orb(&[lab("")]);
    let p = w.plan();
    assert!(p.steps.is_empty(), "{:?}", brief(&p));
    assert_waits(
        &p,
        &[
            "provider loc is not in orbiter.yml any more",
            "2 machines",
            "teardown",
        ],
    );
}

#[test]
fn plan_is_deterministic() {
    let flags = "      rebootrequired: [p-2]\n      replacementrequired: [p-1]\n";
    let mut w = World::new(orb(&[
        lab("      rebootrequired: [a1, a2]\n"),
        loc(3, flags),
    ]))
    .with_local(&["p-1", "p-2"]);
    w.m("lab.b1").reach = Reach::Unreachable("timed out".into());
    w.m("lab.a2").agent = None;
    let first = w.plan();
    assert!(!first.steps.is_empty() && !first.waiting.is_empty() && !first.blocked.is_empty());
    for _ in 0..3 {
        assert_eq!(w.plan(), first);
    }
    assert_eq!(
        serde_json::to_string(&w.plan()).unwrap(),
        serde_json::to_string(&first).unwrap()
    );
}

/// Plans and replays until converged, `limit` steps per round (1 = Orbiter dies after every
/// step). Machines whose enforced doc asks for a reboot reboot one second later.
/// Returns every applied step and, per round, how many machines of each pool had a pending request.
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
        let keys: Vec<MachineKey> = w
            .observed
            .machines()
            .map(|m| m.machine.key.clone())
            .collect();
        for k in keys {
            let Some(at) = w
                .recorded
                .node_desired
                .get(&k)
                .and_then(|d| d.reboot_requested_at())
            else {
                continue;
            };
            let at = parse_rfc3339(at).unwrap();
            let pool = w.m(&k.to_string()).machine.pool.to_string();
            *per_pool.entry(pool).or_insert(0) += 1;
            let c = w.m(&k.to_string()).current.as_mut().unwrap();
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
        let mut w = World::new(orb(&[lab("      rebootrequired: [a1, a2, b1]\n")]));
        let (applied, pending) = roll_out(&mut w, limit);
        assert!(
            pending
                .iter()
                .all(|p| p.get("a").copied().unwrap_or(0) <= 1),
            "limit {limit}: {pending:?}"
        );
        let cleared: Vec<_> = applied
            .iter()
            .filter_map(|a| match a {
                Action::ClearReboot { machine } => Some(machine.to_string()),
                _ => None,
            })
            .collect();
        assert_eq!(
            cleared.len(),
            3,
            "each flag cleared once (limit {limit}): {cleared:?}"
        );
        for k in ["lab.a1", "lab.a2", "lab.b1"] {
            let booted = w.m(k).current.as_ref().unwrap().booted_at.clone().unwrap();
            assert!(booted.as_str() > NOW, "{k} rebooted (limit {limit})");
            assert_eq!(w.recorded.node_desired[&key(k)].reboot_requested_at(), None);
        }
        if limit == usize::MAX {
            assert!(
                pending[0].get("a") == Some(&1) && pending[0].get("b") == Some(&1),
                "pools in parallel: {pending:?}"
            );
        }
    }
}

#[test]
fn replace_rollout_surges_once_and_destroys_once_even_when_killed_after_every_step() {
    for limit in [usize::MAX, 1] {
        let mut w = World::new(orb(&[loc(2, "      replacementrequired: [p-1]\n")]))
            .with_local(&["p-1", "p-2"]);
        let (applied, _) = roll_out(&mut w, limit);
        let brief: Vec<String> = applied
            .iter()
            .filter(|a| {
                matches!(
                    a,
                    Action::CreateMachine { .. }
                        | Action::DestroyMachine { .. }
                        | Action::ClearReplacement { .. }
                )
            })
            .map(Action::summary)
            .collect();
        assert_eq!(
            brief,
            [
                "create machine loc.p-3 in pool p",
                "destroy machine loc.p-1",
                "clear the replacement flag of loc.p-1"
            ],
            "limit {limit}"
        );
        let left: Vec<String> = w
            .observed
            .machines()
            .map(|m| m.machine.key.to_string())
            .collect();
        assert_eq!(left, ["loc.p-2", "loc.p-3"]);
    }
}
