//! Least privilege on real members: peers take only peer certificates; authentication by
//! certificate CN with roles (Orbiter root, `person` everything but administration, `app` its
//! prefix only), set up by the step twice (idempotent), a prefix moved and a user dropped.

use crate::helpers::{log, run_step};
use crate::lab::{CLUSTER, Lab};
use crate::probe::{curl, etcdctl_as, peer_probe};
use orb_etcd::record::UserGrant;
use orb_etcd::steps::EtcdStep;
use orb_machines::Machine;
use std::time::Instant;

/// Peer port: a member's own peer certificate is let in, Orbiter's client certificate is not.
pub(crate) fn peers_take_only_peer_certificates(t0: Instant, ms: &[Machine], lab: &Lab) {
    curl(&ms[0]);
    let s = &lab.secrets;
    let peer_ca = &s.peer_issuer().pem.cert;
    let own = &s.members["e1"].peer;
    let (ok, out) = peer_probe(&ms[0], &ms[1], peer_ca, own);
    assert!(ok, "a member's peer certificate must be let in: {out}");
    let (ok, out) = peer_probe(&ms[0], &ms[1], peer_ca, &s.client);
    assert!(!ok, "a client certificate must not be a peer: {out}");
    let (ok, out) = peer_probe(&ms[0], &ms[1], peer_ca, &s.members["e1"].server);
    assert!(
        !ok,
        "a server certificate (client CA) must not be a peer: {out}"
    );
    log(t0, &format!("peers refuse client certificates ({out})"));
}

fn grant(name: &str, prefix: &str) -> UserGrant {
    UserGrant {
        name: name.into(),
        prefix: prefix.into(),
    }
}

fn setup(users: &[UserGrant], previous: &[UserGrant]) -> EtcdStep {
    EtcdStep::SetupAuth {
        cluster: CLUSTER.into(),
        via: "e1".into(),
        users: users.to_vec(),
        previous: previous.to_vec(),
    }
}

/// Authentication enabled through e1, and what each user may do.
pub(crate) fn authentication(t0: Instant, ms: &[Machine], lab: &Lab) {
    let app = [grant("app", "/app/")];
    let step = setup(&app, &[]);
    let out = run_step(ms, &step);
    assert!(out.contains("@@auth enabled"), "{out}");
    // Rerun after a crash: nothing is created twice, nothing fails.
    let out = run_step(ms, &step);
    assert!(out.contains("@@auth enabled"), "{out}");
    let s = &lab.secrets;
    let ca = &s.ca.pem.cert;
    let (e1, person, appc) = (&ms[0], s.person.as_ref().unwrap(), &s.users["app"]);
    let ok = |c, a: &str| {
        let (ok, out) = etcdctl_as(e1, ca, c, a);
        assert!(ok, "`{a}` must work: {out}");
        out
    };
    let denied = |c, a: &str| {
        let (ok, out) = etcdctl_as(e1, ca, c, a);
        assert!(
            !ok && out.contains("permission denied"),
            "`{a}` must be denied: {out}"
        );
    };
    // Orbiter: root.
    ok(&s.client, "user list");
    // A person: every key, no administration.
    ok(person, "put person-was-here v");
    assert!(ok(person, "get before-scale --print-value-only").contains('v'));
    denied(person, "auth disable");
    denied(person, "user add mallory --no-password");
    denied(person, "member remove 1234");
    // An application: its prefix only.
    ok(appc, "put /app/x 1");
    assert!(ok(appc, "get /app/x --print-value-only").contains('1'));
    denied(appc, "put /other 1");
    denied(appc, "get before-scale");
    denied(appc, "get --prefix load/");
    // A moved prefix: granted first, the old one revoked.
    run_step(ms, &setup(&[grant("app", "/app2/")], &app));
    ok(appc, "put /app2/x 1");
    denied(appc, "put /app/y 1");
    // A dropped user: its certificate names nobody any more.
    run_step(ms, &setup(&[], &[grant("app", "/app2/")]));
    let (ok_, out) = etcdctl_as(e1, ca, appc, "put /app2/x 2");
    assert!(!ok_, "a dropped user must be refused: {out}");
    log(
        t0,
        "authentication by certificate: root, person, app each as granted",
    );
}
