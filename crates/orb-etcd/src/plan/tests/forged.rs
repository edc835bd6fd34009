//! One machine cannot get the others wiped: a member whose observation is forged (another
//! cluster id, a member list without the others) is outvoted or, alone, believed by nobody;
//! wipes need an agreed list and data that is the removed member's; at most one destructive
//! step per plan.

use super::*;

fn destructive(p: &EtcdPlan) -> Vec<String> {
    p.steps
        .iter()
        .filter(|s| s.destructive())
        .map(|s| s.summary())
        .collect()
}

fn has(p: &EtcdPlan, needle: &str) -> bool {
    p.waiting.iter().any(|w| w.contains(needle))
}

#[test]
fn a_member_that_reports_a_fake_member_list_gets_no_one_wiped() {
    let mut s = bootstrapped(3, 3);
    let ids: Vec<u64> = s.members.iter().map(|x| x.id).collect();
    // m2 and m3 cannot be reached by Orbiter; m1 claims to be healthy and alone.
    s.m("lab.m1").forge = Some(Forge::OnlySelf);
    s.m("lab.m2").reachable = false;
    s.m("lab.m3").reachable = false;
    for _ in 0..5 {
        s.now += GRACE;
        let p = s.step();
        assert!(destructive(&p).is_empty(), "{:?}", p.steps);
        assert!(
            has(
                &p,
                "member list not confirmed: lab.m1 reports [lab.m1]; no list is confirmed by more than half of the 3 recorded members (2 needed), so nothing is decided from them and no member is removed or wiped"
            ),
            "{:?}",
            p.waiting
        );
        assert_eq!(p.record.members.len(), 3, "{:?}", p.record);
        assert!(p.record.removed.is_empty());
    }
    // The others come back: their list is the majority's; the forger's is named and ignored.
    s.m("lab.m2").reachable = true;
    s.m("lab.m3").reachable = true;
    s.settle();
    for _ in 0..5 {
        s.now += GRACE;
        let p = s.step();
        assert!(destructive(&p).is_empty(), "{:?}", p.steps);
        assert!(
            has(
                &p,
                "lab.m1 reports [lab.m1], which is not the member list the majority agrees on; it is not trusted"
            ),
            "{:?}",
            p.waiting
        );
        assert!(p.record.removed.is_empty());
    }
    assert_eq!(s.members.iter().map(|x| x.id).collect::<Vec<_>>(), ids);
    assert!(s.machines.iter().all(|m| m.data), "nobody's data was wiped");
    assert!(!s.log.iter().any(|(_, st)| st.destructive()), "{:?}", s.log);
}

#[test]
fn a_member_reporting_another_cluster_id_is_never_believed() {
    let mut s = bootstrapped(3, 3);
    s.m("lab.m1").forge = Some(Forge::ClusterId(0xbad));
    s.m("lab.m2").reachable = false;
    s.m("lab.m3").reachable = false;
    s.now += 10 * GRACE;
    let p = s.step();
    assert!(p.steps.is_empty(), "{:?}", p.steps);
    assert!(
        has(
            &p,
            "lab.m1 reports cluster bad, not the recorded cluster c1: its member list is never accepted"
        ),
        "{:?}",
        p.waiting
    );
    assert!(has(&p, "no healthy member answers"), "{:?}", p.waiting);
    assert_eq!(p.record.members.len(), 3);
    // With the others reachable, the cluster goes on without the liar.
    s.m("lab.m2").reachable = true;
    s.m("lab.m3").reachable = true;
    s.settle();
    let p = s.step();
    assert!(destructive(&p).is_empty(), "{:?}", p.steps);
    assert!(has(&p, "never accepted"), "{:?}", p.waiting);
    assert_eq!(p.record.cluster_id, Some(0xc1));
}

#[test]
fn two_of_five_liars_change_nothing() {
    let mut s = bootstrapped(5, 5);
    s.m("lab.m4").forge = Some(Forge::OnlySelf);
    s.m("lab.m5").forge = Some(Forge::OnlySelf);
    s.spec.nodes.value = 3;
    // Three honest members still agree: the scale in they decide removes an honest member's
    // place (highest first: lab.m5), never on the liars' word.
    let p = s.step();
    assert!(has(&p, "lab.m4 reports [lab.m4]"), "{:?}", p.waiting);
    assert!(has(&p, "lab.m5 reports [lab.m5]"), "{:?}", p.waiting);
    // Three liars of five: no majority for anything.
    let mut s = bootstrapped(5, 5);
    for m in ["lab.m3", "lab.m4", "lab.m5"] {
        s.m(m).forge = Some(Forge::OnlySelf);
    }
    s.m("lab.m1").reachable = false;
    s.spec.nodes.value = 3;
    let p = s.step();
    assert!(p.steps.is_empty(), "{:?}", p.steps);
    assert!(has(&p, "member lists disagree: "), "{:?}", p.waiting);
}

#[test]
fn a_former_member_holding_someone_elses_data_is_not_wiped() {
    let mut s = bootstrapped(5, 5);
    s.spec.nodes.value = 3;
    // Run until lab.m5 is removed from the cluster but not yet wiped.
    let mut seen = false;
    for _ in 0..20 {
        let p = s.plan();
        if p.record.removed.iter().any(|r| r.name == "lab.m5") {
            seen = true;
            break;
        }
        s.step();
    }
    assert!(seen, "lab.m5 was removed");
    // Its machine now holds another member's data (reinstalled, restored, swapped disks).
    s.m("lab.m5").data_ids = Some((0x4242, 0xc1));
    let p = s.plan();
    assert!(
        !p.steps
            .iter()
            .any(|st| matches!(st, EtcdStep::WipeMember { on, .. } if on == "lab.m5")),
        "{:?}",
        p.steps
    );
    assert!(
        has(
            &p,
            "former member lab.m5 is not wiped: its data belongs to member 4242"
        ),
        "{:?}",
        p.waiting
    );
    assert!(!p.releasable.contains("lab.m5"));
    // Data of another cluster: left alone too.
    s.m("lab.m5").data_ids = Some((0x4242, 0x77));
    let p = s.plan();
    assert!(
        has(
            &p,
            "it holds data of cluster 77, not of the recorded cluster c1"
        ),
        "{:?}",
        p.waiting
    );
    // The step itself refuses a wrong member even if a plan asked for it.
    let removed_id = p.record.removed[0].id.expect("recorded with its id");
    s.m("lab.m5").data_ids = Some((0x4242, 0xc1));
    let e = s
        .run_step(&EtcdStep::WipeMember {
            cluster: "kv".into(),
            on: "lab.m5".into(),
            check: Some(crate::steps::WipeCheck {
                cluster_id: 0xc1,
                member_id: Some(removed_id),
                endpoints: vec!["https://10.0.0.1:2379".into()],
            }),
        })
        .unwrap_err();
    assert!(e.contains("refusing to wipe"), "{e}");
    assert!(s.m("lab.m5").data);
}

#[test]
fn at_most_one_destructive_step_per_plan() {
    let mut s = bootstrapped(5, 5);
    s.spec.nodes.value = 3;
    // Someone removed lab.m4 and lab.m5 by hand; both machines still hold their data.
    let gone: Vec<u64> = s
        .members
        .iter()
        .filter(|x| x.name == "lab.m4" || x.name == "lab.m5")
        .map(|x| x.id)
        .collect();
    s.members.retain(|x| !gone.contains(&x.id));
    if s.leader.is_some_and(|l| gone.contains(&l)) {
        s.leader = Some(s.members[0].id);
    }
    s.settle();
    let p = s.step();
    let wipes = destructive(&p);
    assert_eq!(wipes.len(), 1, "{:?}", p.steps);
    assert!(has(&p, "one destructive step at a time"), "{:?}", p.waiting);
    let p = s.step();
    assert_eq!(destructive(&p).len(), 1, "{:?}", p.steps);
    s.converge(10);
    assert!(!s.m("lab.m4").data && !s.m("lab.m5").data);
    assert!(s.record.removed.is_empty());
}

#[test]
fn a_lost_record_is_not_rebuilt_from_one_liar() {
    let mut s = bootstrapped(3, 3);
    s.record = ClusterRecord::default();
    s.m("lab.m1").forge = Some(Forge::OnlySelf);
    s.m("lab.m2").reachable = false;
    s.m("lab.m3").reachable = false;
    let p = s.step();
    assert!(destructive(&p).is_empty(), "{:?}", p.steps);
    // The others come back: healthy members of the recorded cluster get a vote of their own,
    // outvote the liar and are adopted; nobody's data is touched.
    s.m("lab.m2").reachable = true;
    s.m("lab.m3").reachable = true;
    s.settle();
    for _ in 0..10 {
        let p = s.step();
        assert!(destructive(&p).is_empty(), "{:?} {:?}", p.steps, p.waiting);
    }
    let mut names: Vec<&str> = s.record.members.iter().map(|m| m.name.as_str()).collect();
    names.sort();
    assert_eq!(names, ["lab.m1", "lab.m2", "lab.m3"], "{:?}", s.record);
    assert!(s.machines.iter().all(|m| m.data));
    assert_eq!(s.members.len(), 3);
}
