//! The cluster's certificates, with least privilege: two CAs per generation, kept by Orbiter
//! as a secret.
//!
//! - The **client CA** signs every member's server certificate (port 2379) and the client
//!   certificates, one per user, CN = the etcd user name: `orbiter` (Orbiter's own, role
//!   `root`), `person` (what `orbctl readsecret <cluster>.clientcert` gives people) and one
//!   per `users:` entry of the spec. etcd authenticates a client by its CN and grants what the
//!   user's role allows (see `steps::auth`).
//! - The **peer CA** signs the members' peer certificates (port 2380) and nothing else; peers
//!   trust only it, so no client certificate is accepted between members.
//! - A **peer CRL** (signed by the peer CA) lists the peer certificates of removed members:
//!   etcd reads the file on every incoming peer connection, so a removed member's certificate
//!   is refused as soon as the file is on the members, without a restart.
//!
//! A rotation (`bundle`) makes a new generation of both CAs and every certificate and rolls it
//! out with trust bundles (old + new CAs) so that nobody loses a connection.
//!
//! PEM strings only; the caller encrypts them into the repository and hands them to node
//! agents as files. A CA's subject (its CN) is stored with it, so a CA read back from the
//! repository issues more certificates (scale out) without parsing its own certificate.

mod bundle;
mod pki;

pub use bundle::{ClusterSecrets, PkiChange, Published, lacking};
pub use pki::{MemberPki, PkiStage, RotationPhase, RotationWhy, rotation_due};

use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose,
    RevokedCertParams, SanType, SerialNumber,
};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use time::{Duration, OffsetDateTime};

/// Years a CA is valid.
pub const CA_YEARS: i64 = 10;
/// Years a member or client certificate is valid.
pub const LEAF_YEARS: i64 = 5;

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
    /// RFC 3339; a rotation is due before it (see [`rotation_due`]).
    pub not_after: String,
    /// RFC 3339; absent in bundles written before it was recorded (then the lifetime is
    /// taken from [`CA_YEARS`] / [`LEAF_YEARS`]).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub not_before: String,
}

/// A CA.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ca {
    pub cluster: String,
    pub pem: CertPem,
    /// Its CN; absent in bundles written before CAs had generations (`orb-etcd <cluster> CA`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl Ca {
    fn cn(&self) -> String {
        self.name
            .clone()
            .unwrap_or_else(|| format!("orb-etcd {} CA", self.cluster))
    }
}

/// What one member needs on disk besides the trusted CAs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberCerts {
    /// The address the certificates name; a member moved to another address needs new ones.
    pub ip: IpAddr,
    /// Further addresses its server certificate names: the cluster's client endpoint (a VIP
    /// of the Orb's load balancer), so a client verifies whichever member the VIP leads to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub endpoint: Vec<IpAddr>,
    /// For clients (port 2379), from the client CA; also used by etcd as a client of itself
    /// (gRPC gateway).
    pub server: CertPem,
    /// For the other members (port 2380), in both directions, from the peer CA.
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

fn ca_params(cn: &str) -> CertificateParams {
    let mut p = CertificateParams::default();
    p.distinguished_name = rcgen::DistinguishedName::new();
    p.distinguished_name.push(DnType::CommonName, cn);
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

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

fn validity(p: &mut CertificateParams, years: i64) -> (String, String) {
    let now = OffsetDateTime::now_utc();
    // An hour back: a member whose clock is a little behind must accept a fresh certificate.
    p.not_before = now - Duration::hours(1);
    p.not_after = now + Duration::days(365 * years);
    (rfc3339(p.not_before), rfc3339(p.not_after))
}

/// A new CA named `cn` for `cluster` (ECDSA P-256).
pub fn generate_ca(cluster: &str, cn: &str) -> Result<Ca, TlsError> {
    let key = KeyPair::generate().map_err(err("generate the CA key"))?;
    let mut p = ca_params(cn);
    let (not_before, not_after) = validity(&mut p, CA_YEARS);
    let cert = p.self_signed(&key).map_err(err("sign the CA"))?;
    Ok(Ca {
        cluster: cluster.to_owned(),
        pem: CertPem {
            cert: cert.pem(),
            key: SecretPem(key.serialize_pem()),
            not_after,
            not_before,
        },
        name: Some(cn.to_owned()),
    })
}

fn issuer(ca: &Ca) -> Result<Issuer<'static, KeyPair>, TlsError> {
    let ca_key = KeyPair::from_pem(ca.pem.key.expose()).map_err(err("read the CA key"))?;
    Ok(Issuer::new(ca_params(&ca.cn()), ca_key))
}

fn leaf(
    ca: &Ca,
    cn: &str,
    sans: Vec<SanType>,
    ekus: Vec<ExtendedKeyUsagePurpose>,
) -> Result<CertPem, TlsError> {
    let issuer = issuer(ca)?;
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
    let (not_before, not_after) = validity(&mut p, LEAF_YEARS);
    let cert = p
        .signed_by(&key, &issuer)
        .map_err(err(&format!("sign the certificate of {cn}")))?;
    Ok(CertPem {
        cert: cert.pem(),
        key: SecretPem(key.serialize_pem()),
        not_after,
        not_before,
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

/// Server (from `client_ca`) and peer (from `peer_ca`) certificates of member `name` at `ip`.
/// SANs: the member's IP, 127.0.0.1, `localhost` and its name, so clients on the machine and
/// peers by address both verify (etcd checks a peer's certificate against its address).
/// The server certificate also names the `endpoint` addresses (see [`MemberCerts::endpoint`]).
pub fn member_certs(
    client_ca: &Ca,
    peer_ca: &Ca,
    name: &str,
    ip: IpAddr,
    endpoint: &[IpAddr],
) -> Result<MemberCerts, TlsError> {
    Ok(MemberCerts {
        ip,
        endpoint: endpoint.to_vec(),
        server: server_cert(client_ca, name, ip, endpoint)?,
        peer: leaf(peer_ca, name, member_sans(name, ip)?, BOTH.to_vec())?,
    })
}

/// Server and client use: etcd is a client of itself (gRPC gateway) and of its peers.
const BOTH: [ExtendedKeyUsagePurpose; 2] = [
    ExtendedKeyUsagePurpose::ServerAuth,
    ExtendedKeyUsagePurpose::ClientAuth,
];

/// The server certificate of member `name` alone: a new endpoint changes only this one, so
/// the member keeps its peer certificate (and needs no restart).
pub fn server_cert(
    client_ca: &Ca,
    name: &str,
    ip: IpAddr,
    endpoint: &[IpAddr],
) -> Result<CertPem, TlsError> {
    let mut sans = member_sans(name, ip)?;
    sans.extend(endpoint.iter().map(|a| SanType::IpAddress(*a)));
    leaf(client_ca, name, sans, BOTH.to_vec())
}

/// A client certificate for etcd user `user` (its CN).
pub fn client_cert(ca: &Ca, user: &str) -> Result<CertPem, TlsError> {
    leaf(
        ca,
        user,
        Vec::new(),
        vec![ExtendedKeyUsagePurpose::ClientAuth],
    )
}

/// The serial number of a PEM certificate (big-endian magnitude, no leading zeros), read from
/// its DER: `Certificate ::= SEQUENCE { tbs SEQUENCE { [0] version, serialNumber INTEGER …`.
pub fn serial_of(pem: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    let b64: String = pem
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN CERTIFICATE"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .ok()?;
    // (tag, content start, content length) of the TLV at `at`.
    let tlv = |at: usize| -> Option<(u8, usize, usize)> {
        let tag = *der.get(at)?;
        let first = *der.get(at + 1)? as usize;
        if first < 0x80 {
            return Some((tag, at + 2, first));
        }
        let n = first & 0x7f;
        let mut len = 0usize;
        for k in 0..n {
            len = (len << 8) | *der.get(at + 2 + k)? as usize;
        }
        Some((tag, at + 2 + n, len))
    };
    let (t, cert, _) = tlv(0)?;
    let (t2, tbs, _) = tlv(cert)?;
    if t != 0x30 || t2 != 0x30 {
        return None;
    }
    let mut at = tbs;
    let (tag, start, len) = tlv(at)?;
    if tag == 0xa0 {
        at = start + len;
    }
    let (tag, start, len) = tlv(at)?;
    if tag != 0x02 {
        return None;
    }
    let bytes = der.get(start..start + len)?;
    let first = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    Some(bytes[first..].to_vec())
}

/// Lower-case hex of a serial.
pub fn serial_hex(serial: &[u8]) -> String {
    serial.iter().map(|b| format!("{b:02x}")).collect()
}

/// A CRL signed by `ca` revoking `serials` (hex, as [`serial_hex`] writes them). etcd checks
/// only the serials of a peer's certificates against it.
pub fn crl(ca: &Ca, serials: &[String], number: u64) -> Result<String, TlsError> {
    let issuer = issuer(ca)?;
    let now = OffsetDateTime::now_utc();
    let revoked_certs = serials
        .iter()
        .filter_map(|h| {
            let bytes: Option<Vec<u8>> = (0..h.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(h.get(i..i + 2)?, 16).ok())
                .collect();
            Some(RevokedCertParams {
                serial_number: SerialNumber::from_slice(&bytes?),
                revocation_time: now - Duration::hours(1),
                reason_code: None,
                invalidity_date: None,
            })
        })
        .collect();
    let p = CertificateRevocationListParams {
        this_update: now - Duration::hours(1),
        next_update: now + Duration::days(365 * CA_YEARS),
        crl_number: SerialNumber::from(number.max(1)),
        issuing_distribution_point: None,
        revoked_certs,
        key_identifier_method: KeyIdMethod::Sha256,
    };
    p.signed_by(&issuer)
        .and_then(|c| c.pem())
        .map_err(err("sign the peer CRL"))
}

#[cfg(test)]
mod tests;
