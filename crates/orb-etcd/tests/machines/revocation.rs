//! A removed member's certificate is refused by the cluster: its peer certificate is still
//! signed by the peer CA, so it gets in until the CRL naming it reaches the members; then
//! it is refused on the next connection, without any member restarting.

use crate::helpers::{log, wait_agent, write_desired};
use crate::lab::{CLUSTER, Lab, users};
use crate::probe::{curl, etcd_pid, peer_probe};
use orb_etcd::items::InitialState;
use orb_etcd::tls::ClusterSecrets;
use orb_machines::Machine;
use std::time::{Duration, Instant};

/// A member's configuration as the scenario wrote it: (machine, version, initial cluster,
/// initial state).
pub(crate) type Setup = (usize, &'static str, Vec<usize>, InitialState);

/// Rewrites the items of `members` (their PKI as `lab` has it now) and waits for the agents.
pub(crate) fn rewrite(ms: &[Machine], lab: &mut Lab, members: &[Setup]) {
    lab.generation += 1;
    for (i, version, ic, state) in members {
        write_desired(
            &ms[*i],
            lab.generation,
            lab.items(ms, *i, version, ic, *state),
        );
    }
    for (i, ..) in members {
        wait_agent(&ms[*i], lab.generation, Duration::from_secs(60));
    }
}

/// e5 was removed from the cluster (its etcd stopped, its data not wiped yet).
pub(crate) fn removed_member_refused(
    t0: Instant,
    ms: &[Machine],
    lab: &mut Lab,
    members: &[Setup],
) {
    curl(&ms[3]);
    curl(&ms[4]);
    let old = lab.secrets.clone();
    let peer_ca = old.peer_issuer().pem.cert.clone();
    let e5 = old.members["e5"].peer.clone();
    let (ok, out) = peer_probe(&ms[4], &ms[0], &peer_ca, &e5);
    assert!(
        ok,
        "before the CRL, e5's valid certificate still gets in: {out}"
    );
    let pids: Vec<String> = members.iter().map(|(i, ..)| etcd_pid(&ms[*i])).collect();
    // What Orbiter's generate step does: revoke, then issue e5 new certificates (it stays a
    // machine of the pool and may join again).
    let serials = lab.secrets.peer_serials("e5");
    assert!(lab.secrets.revoke(&serials).unwrap());
    let (s, _) = ClusterSecrets::ensure(
        CLUSTER,
        Some(lab.secrets.clone()),
        &Lab::names(ms),
        &users(),
        &[],
    )
    .unwrap();
    lab.secrets = s;
    rewrite(ms, lab, members);
    let after: Vec<String> = members.iter().map(|(i, ..)| etcd_pid(&ms[*i])).collect();
    assert_eq!(pids, after, "the CRL reached the members without a restart");
    let (ok, out) = peer_probe(&ms[4], &ms[0], &peer_ca, &e5);
    assert!(!ok, "e5's revoked certificate must be refused: {out}");
    let refused = out;
    let (ok, out) = peer_probe(&ms[3], &ms[0], &peer_ca, &lab.secrets.members["e4"].peer);
    assert!(ok, "a member's certificate still gets in: {out}");
    log(
        t0,
        &format!(
            "e5's peer certificate revoked: refused by e1 ({refused}); e4's accepted; no restart"
        ),
    );
}
