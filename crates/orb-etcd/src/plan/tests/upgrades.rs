//! Rolling changes and etcd's version rules: upgrades follower first and leader last, one
//! member at a time; refused version steps; tuning rolls; a member stuck on its old version;
//! and the quorum/semver arithmetic itself.

use super::*;

#[test]
fn rolling_upgrade_followers_first_leader_last_one_at_a_time() {
    let mut s = bootstrapped(3, 3);
    let leader_name = s.record.leader.clone().unwrap();
    s.spec.version = "3.5.16".into();
    s.package = NEW.into();
    let mut order = Vec::new();
    for _ in 0..40 {
        let before = s.record.clone();
        let p = s.step();
        let changing: Vec<&MemberRecord> = p
            .record
            .members
            .iter()
            .filter(|m| {
                m.package == NEW
                    && s.machines
                        .iter()
                        .find(|x| x.name == m.name)
                        .unwrap()
                        .version
                        .as_deref()
                        != Some("3.5.16")
            })
            .collect();
        assert!(changing.len() <= 1, "two members changing at once");
        for m in &p.record.members {
            let was = before.member(&m.name).unwrap();
            if was.package != m.package {
                order.push(m.name.clone());
            }
        }
        if p.steps.is_empty() && p.record == before {
            break;
        }
    }
    assert_eq!(order.len(), 3, "{order:?}");
    assert_eq!(
        order.last().unwrap(),
        &leader_name,
        "leader last: {order:?}"
    );
    assert!(
        s.log
            .iter()
            .any(|(_, st)| matches!(st, EtcdStep::MoveLeader { via, .. } if via == &leader_name))
    );
    assert!(
        s.machines
            .iter()
            .all(|m| m.version.as_deref() == Some("3.5.16"))
    );
    assert!(
        s.record
            .members
            .iter()
            .all(|m| m.version.as_deref() == Some("3.5.16"))
    );
}

#[test]
fn skipping_a_minor_or_downgrading_is_refused_and_nothing_changes() {
    for (from_v, from_p, to_v, to_p, why) in [
        (
            "3.4.23",
            OLD,
            "3.6.0",
            "3.6.0-1",
            "skips a minor version; upgrade to 3.5.x first",
        ),
        (
            "3.5.16",
            NEW,
            "3.4.23",
            OLD,
            "downgrade across minor versions",
        ),
    ] {
        let mut s = Sim::new(3, 3);
        s.spec.version = from_v.into();
        s.package = from_p.into();
        s.converge(20);
        let items = s.m("lab.m1").items.clone();
        s.spec.version = to_v.into();
        s.package = to_p.into();
        let p = s.step();
        assert!(p.steps.is_empty());
        assert!(
            p.waiting
                .iter()
                .any(|w| w.contains(why) && w.contains("refused")),
            "{:?}",
            p.waiting
        );
        assert_eq!(p.items["lab.m1"], items);
    }
}

#[test]
fn a_refused_version_mid_upgrade_downgrades_nobody() {
    let mut s = bootstrapped(3, 3);
    s.spec.version = "3.5.16".into();
    s.package = NEW.into();
    // Roll until one member runs 3.5.
    while !s
        .machines
        .iter()
        .any(|m| m.version.as_deref() == Some("3.5.16"))
    {
        s.step();
    }
    s.spec.version = "3.6.1".into();
    s.package = "3.6.1-1".into();
    let packages: Vec<String> = s.record.members.iter().map(|m| m.package.clone()).collect();
    let p = s.step();
    assert!(
        p.waiting
            .iter()
            .any(|w| w.contains("version 3.6.1 refused")),
        "{:?}",
        p.waiting
    );
    let after: Vec<String> = p.record.members.iter().map(|m| m.package.clone()).collect();
    assert_eq!(after, packages);
}

#[test]
fn a_patch_downgrade_within_the_minor_is_allowed() {
    assert!(version_step("3.5.16", "3.5.9").is_ok());
    assert!(version_step("3.4.23", "3.5.0").is_ok());
    assert!(version_step("3.4.23", "4.0.0").is_err());
    assert!(version_step("x", "3.5.0").is_err());
}

#[test]
fn tuning_change_rolls_one_member_at_a_time() {
    let mut s = bootstrapped(3, 3);
    s.spec.tuning.heartbeatms.value = 50;
    s.spec.tuning.electiontimeoutms.value = 500;
    let mut rolled = 0;
    for _ in 0..20 {
        let before = s.record.clone();
        let p = s.step();
        let changed = p
            .record
            .members
            .iter()
            .filter(|m| before.member(&m.name).unwrap().tuning != m.tuning)
            .count();
        assert!(changed <= 1);
        rolled += changed;
        if p.steps.is_empty() && p.record == before {
            break;
        }
    }
    assert_eq!(rolled, 3);
    assert!(
        s.machines
            .iter()
            .all(|m| config_of(&m.items).unwrap().heartbeatms == Some(50))
    );
}

#[test]
fn quorum_and_semver() {
    assert_eq!([1, 2, 3, 4, 5].map(quorum), [1, 2, 2, 3, 3]);
    assert_eq!(semver("3.4.23-4+b4"), Some((3, 4, 23)));
    assert_eq!(semver("3.5"), None);
}

#[test]
fn a_member_stuck_on_the_old_version_stops_the_upgrade_with_an_error() {
    let mut s = bootstrapped(3, 3);
    let leader = s.record.leader.clone().unwrap();
    let first = ["lab.m1", "lab.m2", "lab.m3"]
        .into_iter()
        .find(|m| *m != leader)
        .unwrap();
    s.m(first).stuck = true;
    s.spec.version = "3.5.16".into();
    s.package = NEW.into();
    let p = s.step();
    assert_eq!(p.record.member(first).unwrap().package, NEW);
    let p = s.step();
    assert!(
        p.waiting
            .iter()
            .any(|w| w.contains(&format!("rolling change waits: {first} does not run {NEW}"))),
        "{:?}",
        p.waiting
    );
    assert!(
        p.record.last_error.is_none(),
        "not yet: within the grace period"
    );
    s.now += GRACE;
    let p = s.step();
    let e = p
        .record
        .last_error
        .clone()
        .expect("recorded after the grace period");
    assert_eq!(e.member.as_deref(), Some(first));
    // Stable: no new commit per loop, and nobody else is rolled.
    for _ in 0..3 {
        let p = s.step();
        assert_eq!(p.record.last_error, Some(e.clone()));
        assert_eq!(
            p.record.members.iter().filter(|m| m.package == NEW).count(),
            1
        );
    }
    // Fixed (the package installs): the rollout resumes and the error clears.
    s.m(first).stuck = false;
    s.m(first).running = false;
    s.settle();
    s.converge(40);
    assert!(s.record.last_error.is_none());
    assert!(
        s.machines
            .iter()
            .all(|m| m.version.as_deref() == Some("3.5.16"))
    );
}
