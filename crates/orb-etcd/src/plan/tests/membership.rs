//! Membership changes on a healthy cluster: scaling out through learners and in by highest
//! position, leadership moved before its member goes, quorum kept through even sizes, adoption
//! of a member a dead run added, and members that are not Orbiter's.

use super::*;

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
fn replacing_the_leaders_machine_moves_leadership_first() {
    let mut s = bootstrapped(4, 3);
    let m1 = s.members.iter().find(|x| x.name == "lab.m1").unwrap().id;
    s.leader = Some(m1);
    s.m("lab.m1").replacing = true;
    let p = s.step();
    assert!(p.steps.is_empty(), "{:?}", p.steps);
    let p = s.step();
    assert!(
        matches!(&p.steps[..], [EtcdStep::MoveLeader { via, .. }] if via == "lab.m1"),
        "{:?} {:?}",
        p.steps,
        p.waiting
    );
    s.converge(40);
    let names = s.started_members();
    assert!(
        !names.contains(&"lab.m1".to_owned()) && names.len() == 3,
        "{names:?}"
    );
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
