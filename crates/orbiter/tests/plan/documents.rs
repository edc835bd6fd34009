//! What every machine gets: pins, keys, the agent, its node-desired document; providers that fail or go.

use crate::world::*;
use orb_model::Id;
use orbiter::observed::Reach;
use orbiter::plan::{Action, Plan};
use orbiter::ssh::HostKey;

#[test]
fn first_contact_pins_and_bootstrap_installs_the_maintenance_key() {
    let mut w = World::new(&[lab(&[])], &[]);
    let hk = HostKey(HOST_KEY.into());
    w.m("lab.a1").reach = Reach::NotPinned(hk.clone());
    w.m("lab.a1").agent = None;
    w.m("lab.a2").reach = Reach::Bootstrap;
    // A person confirmed the key (takeoff asked, or --accept-new-hostkeys).
    w.consent.accepted.insert((key("lab.a1"), hk.fingerprint()));
    let p = w.plan();
    assert_steps(&p, &["pin lab.a1", "maintkey lab.a2"]);
    let Action::PinHostKey {
        fingerprint, key, ..
    } = &p.steps[0].action
    else {
        unreachable!()
    };
    assert_eq!((key, fingerprint), (&hk, &hk.fingerprint()));
    assert!(fingerprint.starts_with("SHA256:"), "{fingerprint}");
    assert_reason(&p, "maintkey lab.a2", "only the bootstrap key logs in");
}

#[test]
fn agent_is_installed_when_missing_other_or_inactive() {
    let sha = release().sha256;
    for (observed, why) in [
        (None, "no node-agent installed"),
        (
            agent("0.0.9", "cd", true),
            "node-agent 0.0.9 differs from 0.1.0",
        ),
        (agent("", "", false), "node-agent ? differs from 0.1.0"),
        (agent("0.1.0", &sha, false), "node-agent is not running"),
    ] {
        let mut w = World::new(&[lab(&[])], &[]);
        w.m("lab.b1").agent = observed.clone();
        let p = w.plan();
        assert_steps(&p, &["agent lab.b1"]);
        assert_reason(&p, "agent lab.b1", why);
        let Action::InstallAgent { version, .. } = &p.steps[0].action else {
            unreachable!()
        };
        assert_eq!(version, "0.1.0");
    }
}

#[test]
fn other_node_software_reaches_a_canary_of_every_pool_first() {
    let mut w = World::new(&[lab(&[])], &[]);
    w.orb.software.clear();
    let p = w.plan();
    assert_steps(&p, &["write lab.a1 g2", "write lab.b1 g2"]);
    assert_waits(&p, "wave 1 (canary) changes lab.a1");
    assert_reason(
        &p,
        "write lab.b1 g2",
        "orbiter.yml asks for other node software",
    );
    assert_eq!(
        written(&p, "lab.b1").items.len(),
        1,
        "only the host name is left"
    );
}

#[test]
fn provider_error_waits_and_plans_nothing_for_it() {
    let flags = ["rebootrequired: [p-9]", "replacementrequired: [p-1]"];
    let mut w = World::new(&[lab(&[]), loc(3, &flags)], &["p-1"]);
    w.m("lab.b1").desired_sha256 = None;
    let loc = w
        .observed
        .providers
        .get_mut(&Id::parse("loc").unwrap())
        .unwrap();
    loc.error = Some("this host cannot run machines: systemd-nspawn not found".into());
    let p = w.plan();
    assert_steps(&p, &["write lab.b1 g1"]);
    assert_waits(&p, "provider loc: this host cannot run machines");
}

#[test]
fn provider_removed_from_orbiter_yml_leaves_its_machines_alone() {
    let mut w = World::new(&[lab(&[]), loc(2, &[])], &["p-1", "p-2"]);
    w.orb = orb(&[lab(&[])]);
    let p = w.plan();
    assert_steps(&p, &[]);
    let why = "provider loc is not in orbiter.yml any more; its 2 machines are left as they are";
    assert_waits(&p, why);
}

#[test]
fn plan_is_deterministic() {
    let flags = ["rebootrequired: [p-2]", "replacementrequired: [p-1]"];
    let providers = [lab(&["rebootrequired: [a1, a2]"]), loc(3, &flags)];
    let mut w = World::new(&providers, &["p-1", "p-2"]);
    w.m("lab.b1").reach = Reach::Unreachable("timed out".into());
    w.m("lab.a2").agent = None;
    let first = w.plan();
    assert!(!first.steps.is_empty() && !first.waiting.is_empty() && !first.blocked.is_empty());
    for _ in 0..3 {
        assert_eq!(w.plan(), first);
    }
    let json = |p: &Plan| serde_json::to_string(p).unwrap();
    assert_eq!(json(&w.plan()), json(&first));
}

#[test]
fn a_host_key_nobody_vouches_for_is_not_trusted_without_a_person() {
    let mut w = World::new(&[lab(&[])], &[]);
    let hk = HostKey(HOST_KEY.into());
    w.m("lab.a1").reach = Reach::NotPinned(hk.clone());
    let p = w.plan();
    assert_steps(&p, &[]);
    let (_, why) = p.blocked.iter().find(|(k, _)| *k == key("lab.a1")).unwrap();
    assert!(
        why.contains("nobody confirmed")
            && why.contains(&hk.fingerprint())
            && why.contains("hostkey:"),
        "{why}"
    );
    // Confirmed for another key (a machine in the middle answered): still not trusted.
    w.consent
        .accepted
        .insert((key("lab.a1"), "SHA256:someotherkey".into()));
    assert_steps(&w.plan(), &[]);
    w.consent.accept_all = true;
    assert_steps(&w.plan(), &["pin lab.a1"]);
}

#[test]
fn a_declared_or_vouched_key_is_pinned_and_another_one_refused() {
    use orbiter::machine::KnownKey;
    let hk = HostKey(HOST_KEY.into());
    let other = HostKey(
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBq2aXcmDaPWQvP7M+UeyaGp5kvwWaKEd5Tc4Nc9Mo1U".into(),
    );
    for known in [
        KnownKey::Declared(hk.fingerprint()),
        KnownKey::Declared(format!("{} comment", hk.0)),
        KnownKey::Vouched(hk.0.clone()),
    ] {
        let mut w = World::new(&[lab(&[])], &[]);
        w.m("lab.a1").machine.known_key = Some(known.clone());
        w.m("lab.a1").reach = Reach::NotPinned(hk.clone());
        assert_steps(&w.plan(), &["pin lab.a1"]);
        // A machine that answers with another key than the known one: refused, even if a
        // person accepts every new key.
        w.m("lab.a1").reach = Reach::NotPinned(other.clone());
        w.consent.accept_all = true;
        let p = w.plan();
        assert_steps(&p, &[]);
        let (_, why) = p.blocked.iter().find(|(k, _)| *k == key("lab.a1")).unwrap();
        assert!(
            why.contains("refused") && why.contains(&other.fingerprint()),
            "{known:?}: {why}"
        );
    }
}

#[test]
fn a_changed_host_key_is_refused_until_orbiter_yml_declares_the_new_one() {
    use orbiter::machine::KnownKey;
    let mut w = World::new(&[lab(&[])], &[]);
    let new = HostKey(
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBq2aXcmDaPWQvP7M+UeyaGp5kvwWaKEd5Tc4Nc9Mo1U".into(),
    );
    w.m("lab.a1").reach = Reach::HostKeyChanged {
        expected: HostKey(HOST_KEY.into()).fingerprint(),
        found: new.fingerprint(),
        offered: Some(new.clone()),
    };
    w.consent.accept_all = true;
    let p = w.plan();
    assert_steps(&p, &[]);
    assert!(
        p.blocked[0].1.contains("host key changed"),
        "{:?}",
        p.blocked
    );
    w.m("lab.a1").machine.known_key = Some(KnownKey::Declared(new.fingerprint()));
    let p = w.plan();
    assert_steps(&p, &["pin lab.a1"]);
    assert!(
        p.steps[0].reason.contains("declares its new host key"),
        "{}",
        p.steps[0].reason
    );
}

#[test]
fn a_lost_maintenance_key_is_an_error_never_a_new_key() {
    let mut w = World::new(&[lab(&[])], &[]);
    // orbiter/secrets.yml deleted (or rolled back) while its machines are managed.
    w.recorded.maintenance_keys.clear();
    let p = w.plan();
    assert_steps(&p, &[]);
    assert_waits(
        &p,
        "provider lab: its maintenance key is missing from orbiter/secrets.yml although Orbiter manages",
    );
    // A provider with nothing managed yet gets a key of its own.
    let mut fresh = World::new(&[lab(&[])], &[]);
    fresh.recorded = Default::default();
    assert_eq!(brief(&fresh.plan())[0], "genkey lab");
}
