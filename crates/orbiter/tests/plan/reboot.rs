//! Reboots: one request per pool, a second after now, never judged in the plan that makes it.

use crate::world::*;
use node_protocol::timefmt::parse_rfc3339;
use orbiter::node_desired::next_doc;
use orbiter::observed::Reach;

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
fn a_reboot_waits_for_its_cluster_to_consent_and_for_sick_members() {
    let w = World::new(&[lab(&["rebootrequired: [a1]"])], &[]);
    let mut needs = orbiter::clusters::ClusterNeeds::default();
    needs.not_yet.insert(
        key("lab.a1"),
        "cluster kv: leadership moves from lab.a1 to lab.a2 first".into(),
    );
    let p = w.plan_with(&needs);
    assert_steps(&p, &[]);
    assert_waits(
        &p,
        "reboot of lab.a1: waits for its cluster: cluster kv: leadership moves from lab.a1",
    );
    // Consent, but the other member of the pool is not healthy in its cluster.
    let mut needs = orbiter::clusters::ClusterNeeds::default();
    needs.unhealthy.insert(
        key("lab.a2"),
        "cluster kv: etcd member lab.a2 is not healthy".into(),
    );
    let p = w.plan_with(&needs);
    assert_steps(&p, &[]);
    assert_waits(
        &p,
        "reboot of lab.a1: waits until lab.a2 of the same pool is ready again",
    );
    assert_steps(&w.plan(), &["write lab.a1 g2"]);
}

#[test]
fn the_os_asks_for_a_reboot_only_pools_that_reboot_for_it_do_and_only_in_their_window() {
    let mut w = World::new(&[lab(&[])], &[]);
    w.m("lab.b1").current.as_mut().unwrap().reboot_required = true;
    // No `os:` settings: Orbiter leaves it to a person.
    assert_steps(&w.plan(), &[]);
    let os = orb_model::rollout::OsUpdates {
        updates: "security".into(),
        every: "24h".into(),
        jitter: None,
        reboot: "when-required".into(),
    };
    w.orb.rollout.defaults.os = Some(orb_model::Located::new(os.clone()));
    // The first OS update request rolls out (everywhere at once here), then the OS asks.
    w.all_at_once();
    w.orb.rollout.defaults.settle = Some(orb_model::Located::new("0s".into()));
    w.m("lab.b1").current.as_mut().unwrap().reboot_required = false;
    let p = w.plan();
    assert_steps(
        &p,
        &["write lab.a1 g2", "write lab.a2 g2", "write lab.b1 g2"],
    );
    let doc = written(&p, "lab.b1");
    assert!(
        doc.items.iter().any(|i| i.id() == "osupdates"),
        "{:?}",
        doc.items
    );
    w.apply(&p, usize::MAX);
    let p = w.plan();
    w.apply(&p, usize::MAX);
    assert_eq!(
        p.rollouts["lab.b"].state,
        orbiter::rollout::RolloutState::Done,
        "{:?} {:?}",
        p.waiting,
        p.rollouts["lab.b"].machines
    );
    w.m("lab.b1").current.as_mut().unwrap().reboot_required = true;
    // NOW is 00:00 UTC: a window at night somewhere else is closed.
    w.orb.rollout.defaults.window = Some(orb_model::Located::new(orb_model::rollout::Window {
        days: vec![],
        from: "02:00".into(),
        to: "04:00".into(),
        timezone: "UTC".into(),
    }));
    let p = w.plan();
    assert_steps(&p, &[]);
    assert_waits(
        &p,
        "reboot of lab.b1 (its OS needs one): outside the maintenance window",
    );
    w.orb.rollout.defaults.window = None;
    let p = w.plan();
    assert_steps(&p, &["write lab.b1 g3"]);
    assert_eq!(written(&p, "lab.b1").reboot_requested_at(), Some(REQUEST));
    w.apply(&p, usize::MAX);
    // Booted since, and the OS is content: the request goes, nothing to clear in orbiter.yml.
    w.booted_at("lab.b1", "2026-11-26T00:00:05Z");
    w.m("lab.b1").current.as_mut().unwrap().reboot_required = false;
    assert_steps(&w.plan(), &["write lab.b1 g4"]);
    let never = orb_model::rollout::OsUpdates {
        reboot: "never".into(),
        ..os
    };
    w.orb.rollout.defaults.os = Some(orb_model::Located::new(never));
    w.m("lab.b1").current.as_mut().unwrap().reboot_required = true;
    assert_steps(&w.plan(), &["write lab.b1 g4"]);
}
