//! The cluster's certificates: one CA per cluster (kept by Orbiter as a secret), and signed by
//! it a server and a peer certificate per member and client certificates. PEM strings only;
//! the caller encrypts them into the repository and hands them to node agents as files.
//!
//! The CA's subject is derived from the cluster id alone, so a CA read back from the repository
//! can issue more certificates (scale out) without parsing its own certificate.

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use time::{Duration, OffsetDateTime};

/// Years a CA is valid: rotation of the CA means a rolling restart of every member, rare by design.
const CA_YEARS: i64 = 10;
/// Years a member or client certificate is valid.
const LEAF_YEARS: i64 = 5;

/// PEM text of a private key. Debug never shows it; serde writes it as is, for the caller
/// that encrypts the bundle into the repository (and for nothing else).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SecretPem(String);

impl SecretPem {
    pub fn new(pem: String) -> Self {
        SecretPem(pem)
    }
    /// The PEM text, for encryption into the repository or a node-agent file item.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretPem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretPem(<redacted>)")
    }
}

/// A certificate and its private key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertPem {
    pub cert: String,
    pub key: SecretPem,
    /// RFC 3339; recorded so a rotation can be planned before it expires.
    pub not_after: String,
}

/// The cluster's CA.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ca {
    pub cluster: String,
    pub pem: CertPem,
}

/// What one member needs on disk besides the CA certificate.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberCerts {
    /// The address the certificates name; a member moved to another address needs new ones.
    pub ip: IpAddr,
    /// For clients (port 2379); also used by etcd as a client of itself (gRPC gateway).
    pub server: CertPem,
    /// For the other members (port 2380), in both directions.
    pub peer: CertPem,
}

#[derive(Debug)]
pub struct TlsError(String);

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for TlsError {}

fn err(what: &str) -> impl Fn(rcgen::Error) -> TlsError + '_ {
    move |e| TlsError(format!("{what}: {e}"))
}

fn ca_params(cluster: &str) -> CertificateParams {
    let mut p = CertificateParams::default();
    p.distinguished_name = rcgen::DistinguishedName::new();
    p.distinguished_name
        .push(DnType::CommonName, format!("orb-etcd {cluster} CA"));
    p.distinguished_name
        .push(DnType::OrganizationName, "Orbiter");
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    p
}

fn validity(p: &mut CertificateParams, years: i64) -> String {
    let now = OffsetDateTime::now_utc();
    // An hour back: a member whose clock is a little behind must accept a fresh certificate.
    p.not_before = now - Duration::hours(1);
    p.not_after = now + Duration::days(365 * years);
    p.not_after
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// A new CA for `cluster` (ECDSA P-256).
pub fn generate_ca(cluster: &str) -> Result<Ca, TlsError> {
    let key = KeyPair::generate().map_err(err("generate the CA key"))?;
    let mut p = ca_params(cluster);
    let not_after = validity(&mut p, CA_YEARS);
    let cert = p.self_signed(&key).map_err(err("sign the CA"))?;
    Ok(Ca {
        cluster: cluster.to_owned(),
        pem: CertPem {
            cert: cert.pem(),
            key: SecretPem(key.serialize_pem()),
            not_after,
        },
    })
}

fn leaf(
    ca: &Ca,
    cn: &str,
    sans: Vec<SanType>,
    ekus: Vec<ExtendedKeyUsagePurpose>,
) -> Result<CertPem, TlsError> {
    let ca_key = KeyPair::from_pem(ca.pem.key.expose()).map_err(err("read the CA key"))?;
    let issuer = Issuer::new(ca_params(&ca.cluster), ca_key);
    let key = KeyPair::generate().map_err(err("generate a key"))?;
    let mut p = CertificateParams::default();
    p.distinguished_name = rcgen::DistinguishedName::new();
    p.distinguished_name.push(DnType::CommonName, cn);
    p.subject_alt_names = sans;
    p.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    p.extended_key_usages = ekus;
    p.use_authority_key_identifier_extension = true;
    let not_after = validity(&mut p, LEAF_YEARS);
    let cert = p
        .signed_by(&key, &issuer)
        .map_err(err(&format!("sign the certificate of {cn}")))?;
    Ok(CertPem {
        cert: cert.pem(),
        key: SecretPem(key.serialize_pem()),
        not_after,
    })
}

fn member_sans(name: &str, ip: IpAddr) -> Result<Vec<SanType>, TlsError> {
    let dns = |s: &str| {
        s.to_owned()
            .try_into()
            .map(SanType::DnsName)
            .map_err(err("a DNS name"))
    };
    let mut sans = vec![
        SanType::IpAddress(ip),
        SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        dns("localhost")?,
    ];
    if name != "localhost" {
        sans.push(dns(name)?);
    }
    Ok(sans)
}

/// Server and peer certificates of member `name` at `ip`. SANs: the member's IP, 127.0.0.1,
/// `localhost` and its name, so clients on the machine and peers by address both verify.
pub fn member_certs(ca: &Ca, name: &str, ip: IpAddr) -> Result<MemberCerts, TlsError> {
    let both = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    Ok(MemberCerts {
        ip,
        server: leaf(ca, name, member_sans(name, ip)?, both.clone())?,
        peer: leaf(ca, name, member_sans(name, ip)?, both)?,
    })
}

/// A client certificate (for Orbiter's own etcdctl calls and for `orbctl readsecret`).
pub fn client_cert(ca: &Ca, user: &str) -> Result<CertPem, TlsError> {
    leaf(
        ca,
        user,
        Vec::new(),
        vec![ExtendedKeyUsagePurpose::ClientAuth],
    )
}

/// Everything secret a cluster has: the CA, Orbiter's client certificate and each member's
/// certificates by member name. Orbiter keeps it encrypted in the repository.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterSecrets {
    pub ca: Ca,
    pub client: CertPem,
    pub members: BTreeMap<String, MemberCerts>,
}

/// What [`ensure_secrets`] would generate for `members`, without generating it: `"CA"` when
/// there is none, then each member name lacking certificates for its address. Pure, so the
/// plan can show the step and leave the generation (randomness, the clock) to applying it.
pub fn lacking(have: Option<&ClusterSecrets>, members: &[(String, IpAddr)]) -> Vec<String> {
    let mut out = Vec::new();
    if have.is_none() {
        out.push("CA".to_owned());
    }
    for (name, ip) in members {
        if have.is_none_or(|s| s.members.get(name).is_none_or(|c| c.ip != *ip)) {
            out.push(name.clone());
        }
    }
    out
}

/// Completes `have` for `members` (`(name, ip)`): a CA and client certificate when there are
/// none, certificates for members without any or whose address changed. Returns whether
/// anything was generated (then the caller stores the result before using it).
pub fn ensure_secrets(
    cluster: &str,
    have: Option<ClusterSecrets>,
    members: &[(String, IpAddr)],
) -> Result<(ClusterSecrets, bool), TlsError> {
    let mut changed = false;
    let mut s = match have {
        Some(s) => s,
        None => {
            changed = true;
            let ca = generate_ca(cluster)?;
            let client = client_cert(&ca, "orbiter")?;
            ClusterSecrets {
                ca,
                client,
                members: BTreeMap::new(),
            }
        }
    };
    for (name, ip) in members {
        if s.members.get(name).is_none_or(|c| c.ip != *ip) {
            s.members
                .insert(name.clone(), member_certs(&s.ca, name, *ip)?);
            changed = true;
        }
    }
    Ok((s, changed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_keys() {
        let ca = generate_ca("kv").unwrap();
        let m = member_certs(&ca, "kv-1", "10.0.0.5".parse().unwrap()).unwrap();
        let c = client_cert(&ca, "orbiter").unwrap();
        for dbg in [format!("{ca:?}"), format!("{m:?}"), format!("{c:?}")] {
            assert!(!dbg.contains("PRIVATE KEY"), "{dbg}");
            assert!(dbg.contains("<redacted>"));
        }
        assert!(ca.pem.key.expose().contains("PRIVATE KEY"));
        assert!(ca.pem.cert.starts_with("-----BEGIN CERTIFICATE-----"));
    }

    #[test]
    fn every_certificate_has_its_own_key_and_an_expiry() {
        let ca = generate_ca("kv").unwrap();
        let m = member_certs(&ca, "kv-1", "10.0.0.5".parse().unwrap()).unwrap();
        let c = client_cert(&ca, "orbiter").unwrap();
        let keys = [&ca.pem.key, &m.server.key, &m.peer.key, &c.key];
        for (i, a) in keys.iter().enumerate() {
            for b in &keys[i + 1..] {
                assert_ne!(a, b);
            }
        }
        let year = OffsetDateTime::now_utc().year();
        assert!(ca.pem.not_after.starts_with(&(year + 10).to_string()));
        assert!(m.server.not_after.starts_with(&(year + 5).to_string()));
    }

    #[test]
    fn ensure_secrets_fills_gaps_only() {
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        assert_eq!(lacking(None, &[("a".into(), a)]), ["CA", "a"]);
        let (s, changed) = ensure_secrets("kv", None, &[("a".into(), a)]).unwrap();
        assert!(lacking(Some(&s), &[("a".into(), a)]).is_empty());
        assert_eq!(lacking(Some(&s), &[("a".into(), b)]), ["a"]);
        assert!(changed && s.members.len() == 1);
        let (s2, changed) = ensure_secrets("kv", Some(s.clone()), &[("a".into(), a)]).unwrap();
        assert!(!changed && s2 == s);
        let (s3, changed) = ensure_secrets("kv", Some(s.clone()), &[("a".into(), b)]).unwrap();
        assert!(changed && s3.members["a"].ip == b && s3.ca == s.ca);
    }

    #[test]
    fn secrets_round_trip_for_encrypted_storage() {
        let (s, _) =
            ensure_secrets("kv", None, &[("a".into(), "10.0.0.1".parse().unwrap())]).unwrap();
        let yaml = serde_saphyr::to_string(&s).unwrap();
        let back: ClusterSecrets = serde_saphyr::from_str(&yaml).unwrap();
        assert_eq!(back, s);
        assert!(client_cert(&back.ca, "x").is_ok());
    }

    #[test]
    fn a_ca_read_back_from_pem_still_issues() {
        let ca = generate_ca("kv").unwrap();
        let again = Ca {
            cluster: ca.cluster.clone(),
            pem: CertPem {
                cert: ca.pem.cert.clone(),
                key: SecretPem::new(ca.pem.key.expose().to_owned()),
                not_after: ca.pem.not_after.clone(),
            },
        };
        assert!(client_cert(&again, "x").is_ok());
        let broken = Ca {
            pem: CertPem {
                key: SecretPem::new("garbage".into()),
                ..again.pem
            },
            ..again
        };
        let e = client_cert(&broken, "x").unwrap_err().to_string();
        assert!(e.contains("read the CA key"), "{e}");
        assert!(!e.contains("garbage"), "{e}");
    }
}

/// The chain as an independent verifier sees it (openssl, when the host has it; the
/// real-machine test proves it with etcd itself).
#[cfg(test)]
mod openssl_check {
    use super::*;
    use std::process::Command;

    #[test]
    fn openssl_verifies_the_chain_and_purposes() {
        if Command::new("openssl").arg("version").output().is_err() {
            eprintln!("skipped: no openssl on this host");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let ca = generate_ca("kv").unwrap();
        let m = member_certs(&ca, "kv-1", "10.0.0.5".parse().unwrap()).unwrap();
        let c = client_cert(&ca, "orbiter").unwrap();
        let w = |n: &str, s: &str| {
            let p = dir.path().join(n);
            std::fs::write(&p, s).unwrap();
            p
        };
        let ca_p = w("ca.pem", &ca.pem.cert);
        for (cert, purpose) in [
            (&m.server.cert, "sslserver"),
            (&m.server.cert, "sslclient"),
            (&m.peer.cert, "sslserver"),
            (&m.peer.cert, "sslclient"),
            (&c.cert, "sslclient"),
        ] {
            let p = w("leaf.pem", cert);
            let out = Command::new("openssl")
                .args(["verify", "-purpose", purpose, "-CAfile"])
                .arg(&ca_p)
                .arg(&p)
                .output()
                .unwrap();
            assert!(out.status.success(), "{purpose}: {:?}", out);
        }
        let p = w("leaf.pem", &c.cert);
        let out = Command::new("openssl")
            .args(["verify", "-purpose", "sslserver", "-CAfile"])
            .arg(&ca_p)
            .arg(&p)
            .output()
            .unwrap();
        assert!(!out.status.success(), "a client cert must not serve");
        let p = w("leaf.pem", &m.server.cert);
        let text = Command::new("openssl")
            .args(["x509", "-noout", "-ext", "subjectAltName", "-in"])
            .arg(&p)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&text.stdout);
        for want in [
            "IP Address:10.0.0.5",
            "IP Address:127.0.0.1",
            "DNS:kv-1",
            "DNS:localhost",
        ] {
            assert!(text.contains(want), "{want} missing in {text}");
        }
    }
}
