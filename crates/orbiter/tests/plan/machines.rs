//! Machines a provider creates or destroys: scaling, surge replacement, healing, cluster holds.

use crate::world::*;
use node_protocol::Item;
use orb_model::Id;
use orbiter::clusters::{ClusterNeeds, KindStep};
use orbiter::observed::Reach;
use orbiter::ssh::HostKey;

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
            Reach::HostKeyChanged {
                expected,
                found,
                offered: None,
            },
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
