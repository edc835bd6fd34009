//! What a member's machine holds during and outside a rotation, and when a rotation is due.
//!
//! A rotation rolls every member three times, one member at a time (the planner's
//! `rotation` phase): first it trusts the old and the new CAs (`trust`), then it serves and
//! peers with certificates of the new CAs (`certs`), then it trusts the new CAs only
//! (`drop`). At every moment each pair of members shares a trusted CA for the other's
//! certificate, so no peer or client connection fails. Each stage has a label the member's
//! items write to `pki/state`; the observation reads it back with whether etcd restarted
//! since, and the planner rolls the next member only then.

use super::{CA_YEARS, CertPem, ClusterSecrets, LEAF_YEARS, MemberCerts};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// The phases of a rotation; each rolls every member once, one at a time.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum RotationPhase {
    /// Every member trusts the old and the new CAs.
    Trust,
    /// Every member serves and peers with certificates of the new CAs.
    Certs,
    /// Every member trusts the new CAs only.
    Drop,
    /// All rolled; the old generation is retired from the bundle, then the record forgets it.
    Done,
}

/// Where one member is in a rotation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PkiStage {
    /// No rotation, or not rolled yet: the current generation only.
    Current,
    /// Trusts the current and the next CAs; certificates of the current generation.
    TrustBoth,
    /// Trusts both; certificates of the next generation.
    NextCerts,
    /// The next generation only.
    NextOnly,
}

impl PkiStage {
    /// The stage of a member in `phase` that was (`done`) or was not rolled in it yet.
    pub fn of(phase: Option<RotationPhase>, done: bool) -> PkiStage {
        use PkiStage::*;
        match (phase, done) {
            (None, _) => Current,
            (Some(RotationPhase::Trust), false) => Current,
            (Some(RotationPhase::Trust), true) | (Some(RotationPhase::Certs), false) => TrustBoth,
            (Some(RotationPhase::Certs), true) | (Some(RotationPhase::Drop), false) => NextCerts,
            (Some(RotationPhase::Drop), true) | (Some(RotationPhase::Done), _) => NextOnly,
        }
    }
}

/// The PKI files of one member's machine.
#[derive(Clone, Debug)]
pub struct MemberPki<'a> {
    /// `ca.crt`: the CAs the member trusts for clients, and etcdctl on the machine for servers.
    pub client_trust: String,
    /// `peer-ca.crt`: the CAs the member trusts for peers.
    pub peer_trust: String,
    /// `peer-crl.pem`.
    pub peer_crl: &'a str,
    /// Orbiter's client certificate on the machine (steps and observation use it).
    pub client: &'a CertPem,
    pub certs: &'a MemberCerts,
    /// `pki/state`: `trust <generations> certs <generation>`.
    pub label: String,
}

impl ClusterSecrets {
    /// Member `name`'s files at `stage`; None when it has no certificates there. A stage past
    /// the current generation falls back to it when there is no rotation (after `retire`,
    /// the current generation is the former next one, so nothing changes on the machine).
    pub fn member_pki(&self, name: &str, stage: PkiStage) -> Option<MemberPki<'_>> {
        let cur = self;
        let (trust, certs_of): (Vec<&ClusterSecrets>, &ClusterSecrets) = match (stage, &self.next) {
            (PkiStage::Current, _) | (_, None) => (vec![cur], cur),
            (PkiStage::TrustBoth, Some(n)) => (vec![cur, n], cur),
            (PkiStage::NextCerts, Some(n)) => (vec![cur, n], n),
            (PkiStage::NextOnly, Some(n)) => (vec![n], n),
        };
        let certs = certs_of.members.get(name)?;
        let gens: Vec<String> = trust.iter().map(|g| g.generation.to_string()).collect();
        Some(MemberPki {
            client_trust: trust.iter().map(|g| g.ca.pem.cert.as_str()).collect(),
            peer_trust: trust
                .iter()
                .map(|g| g.peer_issuer().pem.cert.as_str())
                .collect(),
            peer_crl: &certs_of.peer_crl,
            client: &certs_of.client,
            certs,
            label: format!("trust {} certs {}", gens.join("+"), certs_of.generation),
        })
    }
}

/// Why a rotation is due, and the request it answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RotationWhy {
    pub reason: String,
    /// The spec's `rotatecerts` it answers, if that is the reason.
    pub request: Option<String>,
}

fn parse(t: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(t, &Rfc3339).ok()
}

/// Whether the current generation must be rotated at `now` (Unix seconds): a `rotatecerts`
/// request newer than the one the last rotation answered, a bundle without a separate peer
/// CA, or a certificate with less than a third of its lifetime left.
pub fn rotation_due(
    s: &ClusterSecrets,
    now: u64,
    request: Option<&str>,
    rotated_for: Option<&str>,
) -> Option<RotationWhy> {
    if let Some(r) = request {
        let newer = match (parse(r), rotated_for.and_then(parse)) {
            (Some(want), Some(done)) => want > done,
            (Some(_), None) => true,
            (None, _) => false,
        };
        if newer {
            return Some(RotationWhy {
                reason: format!("requested (rotatecerts: {r})"),
                request: Some(r.to_owned()),
            });
        }
    }
    if s.peer_ca.is_none() {
        return Some(RotationWhy {
            reason: "the certificate bundle predates separate client and peer CAs".into(),
            request: None,
        });
    }
    let now = OffsetDateTime::from_unix_timestamp(now as i64).ok()?;
    let mut certs: Vec<(String, &CertPem, i64)> = vec![
        ("the client CA".into(), &s.ca.pem, CA_YEARS),
        ("the peer CA".into(), &s.peer_issuer().pem, CA_YEARS),
        ("Orbiter's client certificate".into(), &s.client, LEAF_YEARS),
    ];
    certs.extend(
        s.person
            .iter()
            .map(|c| ("the person's client certificate".into(), c, LEAF_YEARS)),
    );
    certs.extend(
        s.users
            .iter()
            .map(|(u, c)| (format!("the certificate of user {u}"), c, LEAF_YEARS)),
    );
    for (m, c) in &s.members {
        certs.push((
            format!("the server certificate of {m}"),
            &c.server,
            LEAF_YEARS,
        ));
        certs.push((format!("the peer certificate of {m}"), &c.peer, LEAF_YEARS));
    }
    certs
        .into_iter()
        .filter_map(|(what, c, years)| {
            let end = parse(&c.not_after)?;
            let start = parse(&c.not_before).unwrap_or(end - time::Duration::days(365 * years));
            let renew = end - (end - start) / 3;
            (now >= renew).then(|| (end, what, c.not_after.clone()))
        })
        .min()
        .map(|(_, what, at)| RotationWhy {
            reason: format!("{what} expires at {at} (less than a third of its lifetime left)"),
            request: None,
        })
}
