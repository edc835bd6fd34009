//! Certificate rotation under a writing client, by hand the way the planner orders it: a new
//! generation of both CAs and every certificate; phase 1 every member trusts old and new CAs,
//! phase 2 every member gets new certificates, phase 3 every member trusts the new CAs only;
//! one member at a time, followers first, leadership moved off a leader before it restarts,
//! each member back (its `pki/state` label, restarted since, healthy) before the next. The
//! load client picks up the bundle before phase 2 and its new certificate before phase 3, as
//! `<cluster>.ca` / `.clientcert` offer them. Afterwards the old certificates are refused.

use crate::helpers::{healthy_with, log, observe, run_step, sh, wait_member};
use crate::lab::{CLUSTER, Lab, users};
use crate::load_client;
use crate::probe::{etcdctl_as, peer_probe};
use crate::revocation::{Setup, rewrite};
use orb_etcd::record::RotationPhase;
use orb_etcd::steps::EtcdStep;
use orb_etcd::tls::PkiStage;
use orb_machines::Machine;
use std::time::{Duration, Instant};

/// Rolls member `k` of `members` to `stage`: leadership away first when it leads.
fn roll(ms: &[Machine], lab: &mut Lab, members: &[Setup], k: usize, stage: PkiStage) {
    let i = members[k].0;
    let (v, _) = observe(&ms[i]);
    if v.leader.is_some() && v.leader == v.id {
        let to = members.iter().find(|(j, ..)| *j != i).unwrap().0;
        let to_id = observe(&ms[to]).0.id.unwrap();
        run_step(
            ms,
            &EtcdStep::MoveLeader {
                cluster: CLUSTER.into(),
                via: ms[i].id().into(),
                to: to_id,
                to_name: ms[to].id().into(),
            },
        );
        wait_member(&ms[i], "leadership moved", Duration::from_secs(20), |x| {
            x.leader == Some(to_id)
        });
    }
    lab.stages.insert(i, stage);
    rewrite(ms, lab, &members[k..k + 1]);
    let want = lab.secrets.member_pki(ms[i].id(), stage).unwrap().label;
    let n = members.len();
    wait_member(
        &ms[i],
        &format!("{} on `{want}`", ms[i].id()),
        Duration::from_secs(90),
        |v| healthy_with(n)(v) && v.pki.as_ref().is_some_and(|p| p.fresh && p.label == want),
    );
}

/// Followers first, the leader last.
fn order(ms: &[Machine], members: &[Setup]) -> Vec<usize> {
    let leader = observe(&ms[members[0].0]).0.leader;
    let mut ks: Vec<usize> = (0..members.len()).collect();
    ks.sort_by_key(|&k| observe(&ms[members[k].0]).0.id == leader);
    ks
}

/// Returns the load client's time window of each phase.
pub(crate) fn rotate(
    t0: Instant,
    ms: &[Machine],
    lab: &mut Lab,
    ld: &Machine,
    members: &[Setup],
) -> Vec<(&'static str, u64, u64)> {
    let mut windows = Vec::new();
    let old = lab.secrets.clone();
    lab.secrets
        .start_rotation(CLUSTER, &Lab::names(ms), &users(), &[])
        .unwrap();
    let next = lab.secrets.next.as_deref().unwrap().clone();
    // Clients read the bundle at once (`<cluster>.ca`).
    let bundle = lab.secrets.published(Some(RotationPhase::Trust)).ca;
    load_client::set_pki(ld, lab, &bundle, &old.client);
    for (phase, stage, name) in [
        (
            RotationPhase::Trust,
            PkiStage::TrustBoth,
            "rotate_1_trust_both",
        ),
        (
            RotationPhase::Certs,
            PkiStage::NextCerts,
            "rotate_2_new_certs",
        ),
        (
            RotationPhase::Drop,
            PkiStage::NextOnly,
            "rotate_3_drop_old_ca",
        ),
    ] {
        let from = load_client::mark(ld);
        if phase == RotationPhase::Drop {
            // Every member serves new certificates and trusts both: clients switch.
            load_client::set_pki(ld, lab, &bundle, &next.client);
        }
        for k in order(ms, members) {
            let at = load_client::mark(ld);
            roll(ms, lab, members, k, stage);
            eprintln!(
                "  {} to {stage:?}: {at}..{} ms",
                ms[members[k].0].id(),
                load_client::mark(ld)
            );
        }
        windows.push((name, from, load_client::mark(ld)));
        log(
            t0,
            &format!("rotation: phase {phase:?} rolled on every member"),
        );
    }
    // Retired: the machines keep exactly what they have.
    let before: Vec<_> = members
        .iter()
        .map(|(i, v, ic, st)| lab.items(ms, *i, v, ic, *st))
        .collect();
    lab.secrets.retire();
    lab.stages.clear();
    let after: Vec<_> = members
        .iter()
        .map(|(i, v, ic, st)| lab.items(ms, *i, v, ic, *st))
        .collect();
    assert!(
        before == after,
        "retiring the old generation changes no member's items"
    );
    // The old generation is refused everywhere: Orbiter's old client certificate, an old
    // peer certificate.
    let e1 = &ms[members[0].0];
    let (ok, out) = etcdctl_as(e1, &bundle, &old.client, "get before-scale");
    assert!(!ok, "the old client certificate must be refused: {out}");
    let (ok, out) = etcdctl_as(
        e1,
        &next.ca.pem.cert,
        &next.client,
        "get before-scale --print-value-only",
    );
    assert!(
        ok && out.contains('v'),
        "the new client certificate works: {out}"
    );
    // curl trusts both peer CAs: a refusal is the member's, not curl's.
    let second = &ms[members[1].0];
    let both = format!(
        "{}{}",
        old.peer_issuer().pem.cert,
        next.peer_issuer().pem.cert
    );
    let (ok, out) = peer_probe(e1, second, &both, &old.members[e1.id()].peer);
    assert!(!ok, "the old peer certificate must be refused: {out}");
    let (ok, out) = peer_probe(e1, second, &both, &next.members[e1.id()].peer);
    assert!(ok, "the new peer certificate gets in: {out}");
    let (_, raw) = sh(e1, "head -n 1 /etc/orb-etcd/kv/pki/state");
    log(
        t0,
        &format!(
            "rotated to generation 2 ({}); old certificates refused",
            raw.trim()
        ),
    );
    windows
}
