//! Everything secret a cluster has, as one bundle Orbiter keeps sealed in the repository: the
//! current generation (client CA, peer CA, the users' client certificates, each member's
//! certificates, the peer CRL) and, during a rotation, the next one. Only the functions here
//! change it, and only when the engine applies a `generate` step (they use randomness and
//! the clock): fill gaps, start a rotation, retire the old generation, revoke removed members.

use super::RotationPhase;
use super::{
    Ca, CertPem, MemberCerts, TlsError, client_cert, crl, generate_ca, member_certs, serial_hex,
    serial_of, server_cert,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::IpAddr;

/// One generation (the top level is the current one; `next` the one a rotation rolls out).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterSecrets {
    /// 1 for the first; a rotation makes `generation + 1`. Bundles written before
    /// generations read as 1.
    #[serde(default = "one")]
    pub generation: u32,
    /// The client CA: server certificates and client certificates.
    pub ca: Ca,
    /// The peer CA: peer certificates only. None in a bundle written before the CAs were
    /// separate (peers then trust `ca`); such a bundle is rotated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_ca: Option<Ca>,
    /// Orbiter's own client certificate (CN `orbiter`, etcd role root).
    pub client: CertPem,
    /// The people's client certificate (CN `person`), readable as `<cluster>.clientcert`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub person: Option<CertPem>,
    /// One client certificate per `users:` entry of the spec (CN = its name).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub users: BTreeMap<String, CertPem>,
    pub members: BTreeMap<String, MemberCerts>,
    /// Serials (hex) of revoked peer certificates, of any generation.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub revoked: Vec<String>,
    /// PEM of the CRL listing `revoked`, signed by the peer CA.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub peer_crl: String,
    /// A rotation in progress: the generation it rolls out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<Box<ClusterSecrets>>,
}

fn one() -> u32 {
    1
}

/// A change of the bundle the planner asks for; the engine applies it in its `generate` step
/// (with [`ClusterSecrets::apply`]) and seals the result before anything uses it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PkiChange {
    /// A new generation of both CAs and every certificate.
    Rotate { reason: String },
    /// Every member trusts the new CAs: people and users get their new client certificates
    /// (the bundle itself does not change; the engine seals what [`ClusterSecrets::published`]
    /// gives for the new phase).
    Publish,
    /// The rotation is rolled out: the new generation becomes the current one.
    Retire,
    /// Revoke the peer certificates (`serials`, hex) of removed members (`names`).
    Revoke {
        names: Vec<String>,
        serials: Vec<String>,
    },
}

impl PkiChange {
    pub fn describe(&self) -> String {
        match self {
            PkiChange::Rotate { reason } => {
                format!("a new generation of CAs and certificates ({reason})")
            }
            PkiChange::Publish => "new client certificates for people and users".into(),
            PkiChange::Retire => "the old CAs retired after the rotation".into(),
            PkiChange::Revoke { names, .. } => format!(
                "the peer certificates of removed member{} {} revoked",
                if names.len() == 1 { "" } else { "s" },
                names.join(", ")
            ),
        }
    }
}

/// What people and users read (`orbctl readsecret`), for a rotation phase.
pub struct Published<'a> {
    /// The CAs a client must trust (PEM, one or two certificates).
    pub ca: String,
    pub person: Option<&'a CertPem>,
    pub users: &'a BTreeMap<String, CertPem>,
}

/// What [`ClusterSecrets::ensure`] would generate, without generating it: `"CA"` when there
/// is none, each member name lacking certificates for its address, `"person"`, `"user <n>"`,
/// and the same with `"next: "` for the generation a rotation rolls out. Pure, so the plan
/// can show the step and leave the generation (randomness, the clock) to applying it.
pub fn lacking(
    have: Option<&ClusterSecrets>,
    members: &[(String, IpAddr)],
    users: &[String],
    endpoint: &[IpAddr],
) -> Vec<String> {
    let Some(s) = have else {
        let mut out = vec!["CA".to_owned()];
        out.extend(members.iter().map(|(n, _)| n.clone()));
        return out;
    };
    let mut out = s.lacking_here(members, users, endpoint);
    if let Some(n) = &s.next {
        out.extend(
            n.lacking_here(members, users, endpoint)
                .into_iter()
                .map(|x| format!("next: {x}")),
        );
    }
    out
}

impl ClusterSecrets {
    fn lacking_here(
        &self,
        members: &[(String, IpAddr)],
        users: &[String],
        endpoint: &[IpAddr],
    ) -> Vec<String> {
        let mut out = Vec::new();
        for (name, ip) in members {
            if self
                .members
                .get(name)
                .is_none_or(|c| c.ip != *ip || c.endpoint != endpoint)
            {
                out.push(name.clone());
            }
        }
        if self.person.is_none() {
            out.push("person".to_owned());
        }
        for u in users {
            if !self.users.contains_key(u) {
                out.push(format!("user {u}"));
            }
        }
        out
    }

    /// The CA that signs peer certificates (the client CA in a bundle from before the split).
    pub fn peer_issuer(&self) -> &Ca {
        self.peer_ca.as_ref().unwrap_or(&self.ca)
    }

    /// A first generation: both CAs, Orbiter's and the person's certificates, an empty CRL.
    pub fn new(cluster: &str, generation: u32) -> Result<ClusterSecrets, TlsError> {
        let g = if generation <= 1 {
            String::new()
        } else {
            format!(" g{generation}")
        };
        let ca = generate_ca(cluster, &format!("orb-etcd {cluster} CA{g}"))?;
        let peer_ca = generate_ca(cluster, &format!("orb-etcd {cluster} peer CA{g}"))?;
        let client = client_cert(&ca, "orbiter")?;
        let person = client_cert(&ca, "person")?;
        let peer_crl = crl(&peer_ca, &[], 1)?;
        Ok(ClusterSecrets {
            generation,
            ca,
            peer_ca: Some(peer_ca),
            client,
            person: Some(person),
            users: BTreeMap::new(),
            members: BTreeMap::new(),
            revoked: Vec::new(),
            peer_crl,
            next: None,
        })
    }

    fn fill(
        &mut self,
        members: &[(String, IpAddr)],
        users: &[String],
        endpoint: &[IpAddr],
    ) -> Result<bool, TlsError> {
        let mut changed = false;
        for (name, ip) in members {
            if let Some(c) = self.members.get(name)
                && c.ip == *ip
                && c.endpoint != endpoint
            {
                let server = server_cert(&self.ca, name, *ip, endpoint)?;
                let c = self.members.get_mut(name).expect("checked above");
                c.server = server;
                c.endpoint = endpoint.to_vec();
                changed = true;
            } else if self.members.get(name).is_none_or(|c| c.ip != *ip) {
                let certs = member_certs(&self.ca, self.peer_issuer(), name, *ip, endpoint)?;
                self.members.insert(name.clone(), certs);
                changed = true;
            }
        }
        if self.person.is_none() {
            self.person = Some(client_cert(&self.ca, "person")?);
            changed = true;
        }
        for u in users {
            if !self.users.contains_key(u) {
                self.users.insert(u.clone(), client_cert(&self.ca, u)?);
                changed = true;
            }
        }
        let before = self.users.len();
        self.users.retain(|u, _| users.contains(u));
        changed |= self.users.len() != before;
        if self.peer_crl.is_empty() {
            self.peer_crl = crl(self.peer_issuer(), &self.revoked, 1)?;
            changed = true;
        }
        Ok(changed)
    }

    /// Completes `have` for `members` (`(name, ip)`) and `users`, in the current generation
    /// and the next: a bundle when there is none, certificates for members without any or
    /// whose address changed, for users without one (dropped for users no longer wanted).
    /// Returns whether anything changed (then the caller stores the result before using it).
    pub fn ensure(
        cluster: &str,
        have: Option<ClusterSecrets>,
        members: &[(String, IpAddr)],
        users: &[String],
        endpoint: &[IpAddr],
    ) -> Result<(ClusterSecrets, bool), TlsError> {
        let (mut s, mut changed) = match have {
            Some(s) => (s, false),
            None => (ClusterSecrets::new(cluster, 1)?, true),
        };
        changed |= s.fill(members, users, endpoint)?;
        if let Some(n) = s.next.as_mut() {
            changed |= n.fill(members, users, endpoint)?;
        }
        Ok((s, changed))
    }

    /// Starts a rotation: a new generation of everything (a no-op when one is under way).
    pub fn start_rotation(
        &mut self,
        cluster: &str,
        members: &[(String, IpAddr)],
        users: &[String],
        endpoint: &[IpAddr],
    ) -> Result<(), TlsError> {
        if self.next.is_some() {
            return Ok(());
        }
        let mut n = ClusterSecrets::new(cluster, self.generation + 1)?;
        n.fill(members, users, endpoint)?;
        n.revoked = self.revoked.clone();
        n.peer_crl = crl(n.peer_issuer(), &n.revoked, 1)?;
        self.next = Some(Box::new(n));
        Ok(())
    }

    /// Ends a rotation: the next generation becomes the current one (the old CAs are gone
    /// from the bundle, and from every member's trust since the `drop` phase).
    pub fn retire(&mut self) {
        if let Some(n) = self.next.take() {
            *self = *n;
        }
    }

    /// The serials (hex) of `name`'s peer certificates, in both generations.
    pub fn peer_serials(&self, name: &str) -> Vec<String> {
        std::iter::once(self)
            .chain(self.next.as_deref())
            .filter_map(|g| g.members.get(name))
            .filter_map(|c| serial_of(&c.peer.cert))
            .map(|s| serial_hex(&s))
            .collect()
    }

    /// Revokes the peer certificates with `serials` (hex) in both generations: the CRL lists
    /// them, and the members holding them lose their certificates (a machine that joins again
    /// gets new ones). Returns whether anything changed.
    pub fn revoke(&mut self, serials: &[String]) -> Result<bool, TlsError> {
        fn apply(g: &mut ClusterSecrets, serials: &[String]) -> Result<bool, TlsError> {
            let before = g.revoked.len();
            for s in serials {
                if !g.revoked.contains(s) {
                    g.revoked.push(s.clone());
                }
            }
            let held = |c: &MemberCerts| {
                serial_of(&c.peer.cert).is_some_and(|s| serials.contains(&serial_hex(&s)))
            };
            let dropped = g.members.len();
            g.members.retain(|_, c| !held(c));
            let changed = g.revoked.len() != before || g.members.len() != dropped;
            if changed {
                g.peer_crl = crl(g.peer_issuer(), &g.revoked, g.revoked.len() as u64 + 1)?;
            }
            Ok(changed)
        }
        let mut changed = apply(self, serials)?;
        if let Some(n) = self.next.as_deref_mut() {
            changed |= apply(n, serials)?;
        }
        Ok(changed)
    }

    /// Applies a change the plan asked for; `members` and `users` are what a new generation
    /// issues certificates for.
    pub fn apply(
        &mut self,
        cluster: &str,
        change: &PkiChange,
        members: &[(String, IpAddr)],
        users: &[String],
        endpoint: &[IpAddr],
    ) -> Result<(), TlsError> {
        match change {
            PkiChange::Rotate { .. } => self.start_rotation(cluster, members, users, endpoint),
            PkiChange::Publish => Ok(()),
            PkiChange::Retire => {
                self.retire();
                Ok(())
            }
            PkiChange::Revoke { serials, .. } => self.revoke(serials).map(|_| ()),
        }
    }

    /// Whether `name` holds certificates in either generation.
    pub fn certified(&self, name: &str) -> bool {
        self.members.contains_key(name)
            || self
                .next
                .as_ref()
                .is_some_and(|n| n.members.contains_key(name))
    }

    /// What clients read during `phase`: the trust bundle has the new CA from the start of a
    /// rotation (a new generation without a recorded phase counts as its start), the client
    /// certificates are the new ones once every member trusts the new CA (`certs` phase on).
    pub fn published(&self, phase: Option<RotationPhase>) -> Published<'_> {
        match (&self.next, phase.unwrap_or(RotationPhase::Trust)) {
            (Some(n), p) => {
                let new_certs = p >= RotationPhase::Certs;
                let ca = if p >= RotationPhase::Done {
                    n.ca.pem.cert.clone()
                } else {
                    format!("{}{}", self.ca.pem.cert, n.ca.pem.cert)
                };
                let g: &ClusterSecrets = if new_certs { n } else { self };
                Published {
                    ca,
                    person: g.person.as_ref(),
                    users: &g.users,
                }
            }
            (None, _) => Published {
                ca: self.ca.pem.cert.clone(),
                person: self.person.as_ref(),
                users: &self.users,
            },
        }
    }
}
