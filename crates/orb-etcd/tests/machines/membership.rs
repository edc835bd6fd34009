//! Membership on real machines: three members bootstrapped with TLS, scaled out to five one
//! learner at a time, leadership moved and a leader's member removed and wiped.

use crate::helpers::{
    healthy_with, log, observe, put_key, run_step, run_step_settled, sh, sh_ok, wait_agent,
    wait_member, write_desired,
};
use crate::lab::{CLUSTER, Lab, OLD};
use orb_etcd::items::{InitialState, paths, removed_items};
use orb_etcd::steps::{EtcdStep, WipeCheck, parse_add_result};
use orb_machines::Machine;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Bootstraps `first` on 3.4.23 with TLS, checks what the members show, writes `before-scale`.
pub(crate) fn bootstrap(t0: Instant, ms: &[Machine], lab: &Lab, first: [usize; 3]) {
    for &i in &first {
        write_desired(
            &ms[i],
            lab.generation,
            lab.items(ms, i, OLD, &first, InitialState::New),
        );
    }
    for &i in &first {
        wait_agent(&ms[i], lab.generation, Duration::from_secs(120));
    }
    let v = wait_member(
        &ms[0],
        "3 healthy members",
        Duration::from_secs(60),
        healthy_with(3),
    );
    log(t0, "bootstrapped 3 members");
    assert_eq!(v.version.as_deref(), Some("3.4.23"));
    assert_eq!(v.package.as_deref(), Some(OLD));
    assert!(v.data_dir && v.running && v.leader.is_some() && v.raft_index.unwrap() > 0);
    assert_eq!(v.name.as_deref(), Some("e1"));
    let disk = v.config.clone().expect("config read back");
    assert_eq!(
        (disk.initial_state.as_str(), disk.package.as_str()),
        ("new", OLD)
    );
    assert_eq!(disk.initial_cluster.matches("https://").count(), 3);
    assert!(v.alarms.is_empty(), "{:?}", v.alarms);
    // The packaged instance never ran: no default data, only our listeners.
    for &i in &first {
        let out = sh_ok(
            &ms[i],
            "ls /var/lib/etcd; systemctl is-enabled etcd.service || true",
        );
        assert!(!out.contains("default"), "{out}");
        assert!(out.contains("masked"), "{out}");
        let ls = sh_ok(&ms[i], "stat -c '%a %U' /etc/orb-etcd/kv/pki/server.key");
        assert_eq!(ls.trim(), "600 etcd");
    }
    // Without the client certificate the member refuses clients.
    let (ok, out) = sh(
        &ms[0],
        "ETCDCTL_API=3 etcdctl --endpoints=https://127.0.0.1:2379 --cacert=/etc/orb-etcd/kv/pki/ca.crt --command-timeout=3s endpoint health",
    );
    assert!(!ok, "a client without certificate must be refused: {out}");
    put_key(&ms[0], "before-scale");
}

/// Adds e4 and e5 as learners and promotes them; returns the members (indices into `ms`).
pub(crate) fn scale_out(t0: Instant, ms: &[Machine], lab: &Lab, first: [usize; 3]) -> Vec<usize> {
    let mut members: Vec<usize> = first.to_vec();
    for new in [3usize, 4] {
        let peer = orb_etcd::items::peer_url(IpAddr::V4(ms[new].ip()));
        let step = EtcdStep::AddMember {
            cluster: CLUSTER.into(),
            via: ms[0].id().into(),
            name: ms[new].id().into(),
            peer_url: peer.clone(),
        };
        let out = run_step_settled(ms, &step);
        let id = parse_add_result(&out, &peer).unwrap();
        // Repeating the step (a crash before recording) adds nothing and finds the same id.
        let again = run_step(ms, &step);
        assert!(again.contains("@@already"), "{again}");
        assert_eq!(parse_add_result(&again, &peer).unwrap(), id);
        let v = observe(&ms[0]).0;
        let entry = v.members.unwrap().into_iter().find(|m| m.id == id).unwrap();
        assert!(!entry.started && entry.name.is_empty() && entry.learner);
        members.push(new);
        write_desired(
            &ms[new],
            lab.generation,
            lab.items(ms, new, OLD, &members, InitialState::Existing),
        );
        wait_agent(&ms[new], lab.generation, Duration::from_secs(120));
        // The learner started: what it reports about itself, then its promotion (etcd
        // refuses until it caught up; the planner retries the same way).
        let lv = wait_member(
            &ms[0],
            "the learner started",
            Duration::from_secs(60),
            |v| {
                v.members
                    .as_ref()
                    .is_some_and(|l| l.iter().any(|e| e.id == id && e.started && e.learner))
            },
        );
        assert!(lv.healthy, "voters stay healthy while a learner joins");
        let (own, raw) = observe(&ms[new]);
        eprintln!(
            "learner's own view: running={} healthy={} error={:?}",
            own.running, own.healthy, own.error
        );
        assert!(!own.healthy, "a learner is not counted healthy: {raw}");
        let promote = EtcdStep::PromoteMember {
            cluster: CLUSTER.into(),
            via: ms[0].id().into(),
            id,
            name: ms[new].id().into(),
        };
        let start = Instant::now();
        loop {
            let (ok, out) = sh(&ms[0], &promote.command());
            if ok {
                break;
            }
            assert!(
                out.contains("in sync") && start.elapsed() < Duration::from_secs(30),
                "promote failed: {out}"
            );
            std::thread::sleep(Duration::from_millis(500));
        }
        assert!(run_step(ms, &promote).contains("@@already a voter"));
        let v = wait_member(
            &ms[new],
            "the new member healthy",
            Duration::from_secs(60),
            healthy_with(members.len()),
        );
        assert_eq!(v.id, Some(id));
        log(t0, &format!("scaled out to {}", members.len()));
    }
    members
}

/// Moves leadership to e5 and away again, then removes e5 and wipes it, checked: a wipe
/// while e5 is a member, or one expecting another member's data, refuses; e5's peer
/// certificate is revoked in between (see `revocation`).
pub(crate) fn move_leader_and_remove(
    t0: Instant,
    ms: &[Machine],
    lab: &mut Lab,
    remaining: &[crate::revocation::Setup],
) {
    let v = observe(&ms[0]).0;
    let leader = v.leader.unwrap();
    let e5 = observe(&ms[4]).0.id.unwrap();
    let leader_machine = ms.iter().find(|m| observe(m).0.id == Some(leader)).unwrap();
    if leader != e5 {
        run_step(
            ms,
            &EtcdStep::MoveLeader {
                cluster: CLUSTER.into(),
                via: leader_machine.id().into(),
                to: e5,
                to_name: "e5".into(),
            },
        );
        wait_member(&ms[0], "e5 leads", Duration::from_secs(20), |v| {
            v.leader == Some(e5)
        });
    }
    // e5 leads; move leadership to e1 before removing e5.
    run_step(
        ms,
        &EtcdStep::MoveLeader {
            cluster: CLUSTER.into(),
            via: "e5".into(),
            to: v.id.unwrap(),
            to_name: "e1".into(),
        },
    );
    wait_member(&ms[0], "e1 leads", Duration::from_secs(20), |x| {
        x.leader == v.id
    });
    let cid = v.cluster_id.unwrap();
    let check = |member: u64| WipeCheck {
        cluster_id: cid,
        member_id: Some(member),
        endpoints: ms[..4]
            .iter()
            .map(|m| orb_etcd::items::client_url(IpAddr::V4(m.ip())))
            .collect(),
    };
    let wipe = |member: u64| EtcdStep::WipeMember {
        cluster: CLUSTER.into(),
        on: "e5".into(),
        check: Some(check(member)),
    };
    // A wipe while e5 is still a member: refused on e5 itself, nothing stopped.
    let (ok, out) = sh(&ms[4], &wipe(e5).command());
    assert!(
        !ok && out.contains("refusing to wipe") && out.contains("is listed as member"),
        "{out}"
    );
    let still = observe(&ms[4]).0;
    assert!(still.healthy && still.data_dir, "{still:?}");
    let remove = EtcdStep::RemoveMember {
        cluster: CLUSTER.into(),
        via: "e1".into(),
        id: e5,
        name: "e5".into(),
    };
    assert!(remove.destructive());
    run_step_settled(ms, &remove);
    assert!(run_step(ms, &remove).contains("@@already removed"));
    lab.generation += 1;
    write_desired(&ms[4], lab.generation, removed_items(CLUSTER));
    wait_agent(&ms[4], lab.generation, Duration::from_secs(60));
    // The data on e5 is e5's, as its WAL says (read while etcd is stopped).
    let v5 = observe(&ms[4]).0;
    assert_eq!(v5.data_ids, Some((e5, cid)), "{v5:?}");
    let (ok, out) = sh(&ms[4], &wipe(e5 ^ 0xff).command());
    assert!(
        !ok && out.contains("refusing to wipe") && out.contains("not of the removed member"),
        "{out}"
    );
    assert!(observe(&ms[4]).0.data_dir, "a refused wipe keeps the data");
    crate::revocation::removed_member_refused(t0, ms, lab, remaining);
    let out = run_step(ms, &wipe(e5));
    assert!(out.contains("@@wiped"), "{out}");
    let v5 = observe(&ms[4]).0;
    assert!(!v5.running && !v5.data_dir, "{v5:?}");
    assert_eq!(
        sh_ok(
            &ms[4],
            &format!("systemctl is-enabled {} || true", paths::unit(CLUSTER))
        )
        .trim(),
        "disabled"
    );
    wait_member(
        &ms[0],
        "4 healthy members",
        Duration::from_secs(30),
        healthy_with(4),
    );
    log(
        t0,
        "removed e5 (leadership moved away first); wipe refused while listed and for another member's data, then wiped",
    );
}
