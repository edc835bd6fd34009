//! Members that do not behave: quorum lost, machines gone or unhealthy past the grace period
//! (replaced), no spare machine, failed adds and joins that never start (error recorded,
//! rollout stopped, resumed), and a leader Orbiter merely cannot reach.

use super::*;

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
        client_grace_secs: CLIENT_GRACE,
        disrupting: &Default::default(),
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
