//! Consent to reboot a member's machine: never while a member is sick, and the leader hands
//! leadership over first.

use super::sim::Sim;

use crate::steps::EtcdStep;

#[test]
fn a_follower_may_go_the_leader_hands_over_first_and_nobody_while_one_is_sick() {
    let mut s = super::bootstrapped(3, 3);
    let leader_name = |s: &Sim| {
        let id = s.leader.unwrap();
        s.members.iter().find(|m| m.id == id).unwrap().name.clone()
    };
    let leader = leader_name(&s);
    let follower = s
        .machines
        .iter()
        .map(|m| m.name.clone())
        .find(|n| *n != leader)
        .unwrap();

    s.disrupting.insert(follower.clone());
    let p = s.plan();
    assert!(p.not_yet.is_empty(), "a follower consents: {:?}", p.not_yet);
    assert!(p.steps.is_empty(), "{:?}", p.steps);

    // The leader: leadership moves to another member first; it consents once it follows.
    s.disrupting = [leader.clone()].into();
    let p = s.step();
    assert!(
        p.steps.iter().any(
            |st| matches!(st, EtcdStep::MoveLeader { via, to_name, .. } if *via == leader && *to_name != leader)
        ),
        "{:?}",
        p.steps
    );
    assert!(
        p.not_yet[&leader].contains("leadership moves from"),
        "{:?}",
        p.not_yet
    );
    assert_ne!(leader_name(&s), leader, "the step moved leadership");
    let p = s.plan();
    assert!(p.not_yet.is_empty(), "{:?}", p.not_yet);

    // A sick member: nobody may go.
    s.m(&follower).broken = true;
    s.settle();
    s.disrupting = s.machines.iter().map(|m| m.name.clone()).collect();
    let p = s.plan();
    assert_eq!(p.not_yet.len(), 3, "{:?}", p.not_yet);
}
