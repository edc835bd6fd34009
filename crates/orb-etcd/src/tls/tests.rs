//! Certificates and the bundle: keys never in Debug, separate CAs, serials and the CRL, the
//! stages of a rotation, when one is due; and the chain as an independent verifier (openssl)
//! sees it.

use super::*;
use crate::record::RotationPhase;
use std::collections::BTreeSet;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn bundle(members: &[&str]) -> ClusterSecrets {
    let ms: Vec<(String, IpAddr)> = members
        .iter()
        .enumerate()
        .map(|(k, m)| (m.to_string(), ip(&format!("10.0.0.{}", k + 1))))
        .collect();
    ClusterSecrets::ensure("kv", None, &ms, &["app".into()], &[])
        .unwrap()
        .0
}

#[test]
fn debug_never_shows_keys() {
    let s = bundle(&["kv-1"]);
    for dbg in [
        format!("{s:?}"),
        format!("{:?}", s.ca),
        format!("{:?}", s.client),
    ] {
        assert!(!dbg.contains("PRIVATE KEY"), "{dbg}");
        assert!(dbg.contains("<redacted>"));
    }
    assert!(s.ca.pem.key.expose().contains("PRIVATE KEY"));
    assert!(s.ca.pem.cert.starts_with("-----BEGIN CERTIFICATE-----"));
}

#[test]
fn every_certificate_has_its_own_key_serial_and_an_expiry() {
    let s = bundle(&["kv-1", "kv-2"]);
    let m = &s.members["kv-1"];
    let peer_ca = s.peer_ca.as_ref().unwrap();
    let all = [
        &s.ca.pem,
        &peer_ca.pem,
        &m.server,
        &m.peer,
        &s.client,
        s.person.as_ref().unwrap(),
        &s.users["app"],
        &s.members["kv-2"].peer,
    ];
    let keys: BTreeSet<&str> = all.iter().map(|c| c.key.expose()).collect();
    assert_eq!(keys.len(), all.len());
    let serials: BTreeSet<Vec<u8>> = all.iter().map(|c| serial_of(&c.cert).unwrap()).collect();
    assert_eq!(serials.len(), all.len());
    let year = OffsetDateTime::now_utc().year();
    assert!(s.ca.pem.not_after.starts_with(&(year + 10).to_string()));
    assert!(m.server.not_after.starts_with(&(year + 5).to_string()));
    assert!(!m.server.not_before.is_empty());
    assert_ne!(s.ca.pem.cert, peer_ca.pem.cert);
}

#[test]
fn ensure_fills_gaps_only_and_drops_unwanted_users() {
    let a = ip("10.0.0.1");
    let b = ip("10.0.0.2");
    assert_eq!(lacking(None, &[("a".into(), a)], &[], &[]), ["CA", "a"]);
    let (s, changed) = ClusterSecrets::ensure("kv", None, &[("a".into(), a)], &[], &[]).unwrap();
    assert!(changed && s.members.len() == 1 && s.person.is_some());
    assert!(lacking(Some(&s), &[("a".into(), a)], &[], &[]).is_empty());
    assert_eq!(
        lacking(Some(&s), &[("a".into(), b)], &["app".into()], &[]),
        ["a", "user app"]
    );
    let (s2, changed) =
        ClusterSecrets::ensure("kv", Some(s.clone()), &[("a".into(), a)], &[], &[]).unwrap();
    assert!(!changed && s2 == s);
    let (s3, changed) = ClusterSecrets::ensure(
        "kv",
        Some(s.clone()),
        &[("a".into(), b)],
        &["app".into()],
        &[],
    )
    .unwrap();
    assert!(changed && s3.members["a"].ip == b && s3.ca == s.ca && s3.users.contains_key("app"));
    let (s4, changed) =
        ClusterSecrets::ensure("kv", Some(s3), &[("a".into(), b)], &[], &[]).unwrap();
    assert!(changed && s4.users.is_empty());
}

#[test]
fn secrets_round_trip_and_old_bundles_still_read() {
    let s = bundle(&["a"]);
    let json = serde_json::to_string(&s).unwrap();
    let back: ClusterSecrets = serde_json::from_str(&json).unwrap();
    assert_eq!(back, s);
    // A bundle written before generations, the peer CA, users and the CRL: one CA for all.
    let legacy = serde_json::json!({
        "ca": {"cluster": "kv", "pem": {"cert": s.ca.pem.cert, "key": s.ca.pem.key.expose(), "not_after": s.ca.pem.not_after}},
        "client": {"cert": s.client.cert, "key": s.client.key.expose(), "not_after": s.client.not_after},
        "members": {},
    });
    let old: ClusterSecrets = serde_json::from_value(legacy).unwrap();
    assert_eq!(old.generation, 1);
    assert!(old.peer_ca.is_none() && old.person.is_none());
    assert_eq!(old.peer_issuer(), &old.ca);
    let (filled, changed) = ClusterSecrets::ensure(
        "kv",
        Some(old.clone()),
        &[("a".into(), ip("10.0.0.1"))],
        &[],
        &[],
    )
    .unwrap();
    assert!(changed && filled.person.is_some() && !filled.peer_crl.is_empty());
    let why = rotation_due(&filled, 0, None, None).unwrap();
    assert!(
        why.reason.contains("predates separate client and peer CAs"),
        "{why:?}"
    );
}

#[test]
fn a_ca_read_back_still_issues_and_a_broken_key_says_so_without_showing_it() {
    let s = bundle(&[]);
    let again = Ca {
        cluster: s.ca.cluster.clone(),
        pem: s.ca.pem.clone(),
        name: s.ca.name.clone(),
    };
    assert!(client_cert(&again, "x").is_ok());
    let broken = Ca {
        pem: CertPem {
            key: SecretPem::new("garbage".into()),
            ..again.pem.clone()
        },
        ..again
    };
    let e = client_cert(&broken, "x").unwrap_err().to_string();
    assert!(e.contains("read the CA key"), "{e}");
    assert!(!e.contains("garbage"), "{e}");
}

#[test]
fn revoking_a_member_lists_its_peer_serial_in_both_generations() {
    let ms = [
        ("a".to_string(), ip("10.0.0.1")),
        ("b".to_string(), ip("10.0.0.2")),
    ];
    let mut s = ClusterSecrets::ensure("kv", None, &ms, &[], &[]).unwrap().0;
    s.start_rotation("kv", &ms, &[], &[]).unwrap();
    let old = serial_hex(&serial_of(&s.members["b"].peer.cert).unwrap());
    let new = serial_hex(&serial_of(&s.next.as_ref().unwrap().members["b"].peer.cert).unwrap());
    let crl_before = s.peer_crl.clone();
    assert_eq!(s.peer_serials("b"), [old.clone(), new.clone()]);
    assert!(s.revoke(&s.peer_serials("b")).unwrap());
    assert!(!s.certified("b") && s.certified("a"));
    for g in [&s, s.next.as_deref().unwrap()] {
        assert!(
            g.revoked.contains(&old) && g.revoked.contains(&new),
            "{:?}",
            g.revoked
        );
    }
    assert_ne!(s.peer_crl, crl_before);
    assert!(s.peer_crl.starts_with("-----BEGIN X509 CRL-----"));
    assert!(!s.revoke(&[old, new]).unwrap(), "nothing left to revoke");
}

#[test]
fn stages_of_a_rotation_always_share_a_ca() {
    let ms = [("a".to_string(), ip("10.0.0.1"))];
    let mut s = ClusterSecrets::ensure("kv", None, &ms, &["app".into()], &[])
        .unwrap()
        .0;
    let cur = s.member_pki("a", PkiStage::NextOnly).unwrap();
    assert_eq!(cur.label, "trust 1 certs 1", "no rotation: current only");
    s.start_rotation("kv", &ms, &["app".into()], &[]).unwrap();
    let n = s.next.as_deref().unwrap().clone();
    let label = |st| s.member_pki("a", st).unwrap().label;
    assert_eq!(label(PkiStage::Current), "trust 1 certs 1");
    assert_eq!(label(PkiStage::TrustBoth), "trust 1+2 certs 1");
    assert_eq!(label(PkiStage::NextCerts), "trust 1+2 certs 2");
    assert_eq!(label(PkiStage::NextOnly), "trust 2 certs 2");
    let both = s.member_pki("a", PkiStage::TrustBoth).unwrap();
    assert!(
        both.client_trust.contains(&s.ca.pem.cert) && both.client_trust.contains(&n.ca.pem.cert)
    );
    assert!(
        !both.peer_trust.contains(&s.ca.pem.cert),
        "peers never trust the client CA"
    );
    let last = s.member_pki("a", PkiStage::NextOnly).unwrap();
    assert_eq!(last.client_trust, n.ca.pem.cert);
    assert_eq!(last.certs, &n.members["a"]);
    // What clients read: the bundle at once, new certificates once members trust them.
    assert!(
        s.published(Some(RotationPhase::Trust))
            .ca
            .contains(&n.ca.pem.cert)
    );
    assert!(
        s.published(None).ca.contains(&n.ca.pem.cert),
        "from the generation on"
    );
    assert_eq!(
        s.published(Some(RotationPhase::Trust)).person,
        s.person.as_ref()
    );
    assert_eq!(
        s.published(Some(RotationPhase::Certs)).person,
        n.person.as_ref()
    );
    assert_eq!(s.published(Some(RotationPhase::Done)).ca, n.ca.pem.cert);
    // Retiring changes nothing a member at the last stage has.
    let before = s.member_pki("a", PkiStage::NextOnly).unwrap().label;
    let files = (
        last.client_trust.clone(),
        last.peer_trust.clone(),
        last.peer_crl.to_owned(),
    );
    s.retire();
    let after = s.member_pki("a", PkiStage::NextOnly).unwrap();
    assert_eq!(after.label, before);
    assert_eq!(
        (
            after.client_trust,
            after.peer_trust,
            after.peer_crl.to_owned()
        ),
        files
    );
    assert_eq!(s.generation, 2);
    for (phase, done, want) in [
        (None, false, PkiStage::Current),
        (Some(RotationPhase::Trust), true, PkiStage::TrustBoth),
        (Some(RotationPhase::Certs), false, PkiStage::TrustBoth),
        (Some(RotationPhase::Drop), false, PkiStage::NextCerts),
        (Some(RotationPhase::Done), false, PkiStage::NextOnly),
    ] {
        assert_eq!(PkiStage::of(phase, done), want);
    }
}

#[test]
fn rotation_is_due_on_request_and_before_expiry() {
    let s = bundle(&["a"]);
    let now = OffsetDateTime::now_utc().unix_timestamp() as u64;
    assert_eq!(rotation_due(&s, now, None, None), None);
    let r = rotation_due(&s, now, Some("2026-05-01T10:00:00Z"), None).unwrap();
    assert_eq!(r.request.as_deref(), Some("2026-05-01T10:00:00Z"));
    assert_eq!(
        rotation_due(
            &s,
            now,
            Some("2026-05-01T10:00:00Z"),
            Some("2026-05-01T10:00:00Z")
        ),
        None,
        "answered once"
    );
    assert!(
        rotation_due(
            &s,
            now,
            Some("2026-06-01T00:00:00Z"),
            Some("2026-05-01T10:00:00Z")
        )
        .is_some()
    );
    // Leaves live 5 years: due after 3 years and 4 months.
    let in_3y = now + 3 * 365 * 86_400;
    assert_eq!(rotation_due(&s, in_3y, None, None), None);
    let r = rotation_due(&s, now + (3 * 365 + 150) * 86_400, None, None).unwrap();
    assert!(
        r.reason.contains("less than a third of its lifetime left"),
        "{r:?}"
    );
}

/// The chain as an independent verifier sees it (openssl, when the host has it; the
/// real-machine test proves it with etcd itself).
#[test]
fn openssl_verifies_chains_purposes_and_the_crl() {
    use std::process::Command;
    if Command::new("openssl").arg("version").output().is_err() {
        eprintln!("skipped: no openssl on this host");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut s = bundle(&["kv-1", "kv-2"]);
    let w = |n: &str, t: &str| {
        let p = dir.path().join(n);
        std::fs::write(&p, t).unwrap();
        p
    };
    let client_ca = w("ca.pem", &s.ca.pem.cert);
    let peer_ca = w("peer-ca.pem", &s.peer_ca.as_ref().unwrap().pem.cert);
    let verify = |ca: &std::path::Path, cert: &str, purpose: &str, extra: &[&str]| {
        let p = w("leaf.pem", cert);
        Command::new("openssl")
            .args(["verify", "-purpose", purpose])
            .args(extra)
            .arg("-CAfile")
            .arg(ca)
            .arg(&p)
            .output()
            .unwrap()
            .status
            .success()
    };
    let m = s.members["kv-1"].clone();
    assert!(verify(&client_ca, &m.server.cert, "sslserver", &[]));
    assert!(verify(&client_ca, &s.client.cert, "sslclient", &[]));
    assert!(verify(&client_ca, &s.users["app"].cert, "sslclient", &[]));
    assert!(verify(&peer_ca, &m.peer.cert, "sslserver", &[]));
    assert!(verify(&peer_ca, &m.peer.cert, "sslclient", &[]));
    assert!(
        !verify(&peer_ca, &s.client.cert, "sslclient", &[]),
        "peers refuse client certs"
    );
    assert!(
        !verify(&client_ca, &m.peer.cert, "sslclient", &[]),
        "a peer cert is no client cert"
    );
    assert!(
        !verify(&client_ca, &s.client.cert, "sslserver", &[]),
        "a client cert must not serve"
    );
    // The CRL: kv-2's peer certificate revoked, kv-1's not.
    let revoked = s.members["kv-2"].peer.cert.clone();
    s.revoke(&s.peer_serials("kv-2")).unwrap();
    let crl = w("crl.pem", &s.peer_crl);
    let crl_args = ["-crl_check", "-CRLfile", crl.to_str().unwrap()];
    assert!(verify(&peer_ca, &m.peer.cert, "sslclient", &crl_args));
    assert!(!verify(&peer_ca, &revoked, "sslclient", &crl_args));
    let text = Command::new("openssl")
        .args(["x509", "-noout", "-ext", "subjectAltName", "-in"])
        .arg(w("leaf.pem", &m.server.cert))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    for want in [
        "IP Address:10.0.0.1",
        "IP Address:127.0.0.1",
        "DNS:kv-1",
        "DNS:localhost",
    ] {
        assert!(text.contains(want), "{want} missing in {text}");
    }
}

/// An endpoint VIP: named by every member's server certificate (reissued when it changes),
/// never by a peer certificate (peers meet by their own addresses).
#[test]
fn an_endpoint_vip_is_named_by_server_certificates_only() {
    use std::process::Command;
    let (a, vip) = (ip("10.0.0.1"), ip("10.0.0.100"));
    let members = [("a".to_owned(), a)];
    let (s, _) = ClusterSecrets::ensure("kv", None, &members, &[], &[]).unwrap();
    assert_eq!(lacking(Some(&s), &members, &[], &[vip]), ["a"]);
    let (s2, changed) =
        ClusterSecrets::ensure("kv", Some(s.clone()), &members, &[], &[vip]).unwrap();
    assert!(changed && s2.members["a"].endpoint == [vip] && s2.ca == s.ca);
    assert_ne!(s2.members["a"].server.cert, s.members["a"].server.cert);
    assert_eq!(
        s2.members["a"].peer, s.members["a"].peer,
        "the peer certificate stays: no restart"
    );
    assert!(lacking(Some(&s2), &members, &[], &[vip]).is_empty());
    if Command::new("openssl").arg("version").output().is_err() {
        eprintln!("skipped the SAN check: no openssl on this host");
        return;
    }
    let sans = |cert: &str| {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("leaf.pem");
        std::fs::write(&p, cert).unwrap();
        let out = Command::new("openssl")
            .args(["x509", "-noout", "-ext", "subjectAltName", "-in"])
            .arg(&p)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(sans(&s2.members["a"].server.cert).contains("IP Address:10.0.0.100"));
    assert!(!sans(&s2.members["a"].peer.cert).contains("10.0.0.100"));
}
