//! `DynamicLoadBalancer`: virtual IPs (VIPs) that keepalived moves between the machines of one
//! pool, and HAProxy on those machines forwarding each VIP's ports to the machines of backend
//! pools. It stands beside a provider's `spec`, as in orbos:
//!
//! ```yaml
//! loadbalancing:
//!   kind: DynamicLoadBalancer
//!   version: v2
//!   spec:
//!     lb:                       # the pool whose machines hold the VIPs
//!       - ip: 10.0.0.100
//!         transport:
//!           - {name: api, frontendport: 443, backendport: 8443, backendpools: [workers]}
//! ```
//!
//! orbos's spellings (`transport`, `frontendport`, …) are kept so imported files read the same.
//! orbos's v0 and v1 are read into their own structs and migrated in code (`old`); the checks
//! are in `validate`.

mod cidr;
mod old;
#[cfg(test)]
mod tests;
mod validate;

pub use cidr::Cidr;
pub use old::{DynamicLoadBalancerV0, DynamicLoadBalancerV1};
pub(crate) use validate::check_load_balancers;

use crate::id::Id;
use crate::located::Located;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::Ipv4Addr;

/// The current version (`v2`): the pool holding the VIPs → its VIPs.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(transparent)]
pub struct DynamicLoadBalancer {
    pub pools: BTreeMap<Located<Id>, Vec<Vip>>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Vip {
    /// Required: our providers do not allocate addresses (orbos's cloud providers did, which is
    /// why orbos let it be left out).
    pub ip: Located<Ipv4Addr>,
    /// orbos's singular name for the list.
    pub transport: Vec<Transport>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Transport {
    /// Unique in the Orb: a cluster names its client endpoint by it (`endpoint:`).
    pub name: Located<Id>,
    /// Where clients connect: `<ip>:<frontendport>`.
    #[serde(deserialize_with = "port::frontend")]
    pub frontendport: Located<u16>,
    /// Where the backend machines listen.
    #[serde(deserialize_with = "port::backend")]
    pub backendport: Located<u16>,
    /// Pools of the same provider whose machines get the connections.
    pub backendpools: Vec<Located<Id>>,
    /// Who may connect, besides the provider's own machines (always allowed, as in orbos);
    /// default everyone, `[]` = only the provider's machines.
    #[serde(
        default = "default_whitelist",
        skip_serializing_if = "is_default_whitelist",
        deserialize_with = "port::whitelist"
    )]
    pub whitelist: Vec<Located<Cidr>>,
    /// How HAProxy decides a backend is up; default a TCP connect.
    #[serde(default, skip_serializing_if = "HealthChecks::is_default")]
    pub healthchecks: HealthChecks,
    /// Send a PROXY protocol v2 header to the backends. Default false, unlike orbos (which
    /// served Kubernetes ingresses that expect it): a backend that does not expect the header
    /// (etcd, PostgreSQL, most TCP services) takes it for garbage and fails every connection,
    /// so only a backend that asks for it should get it.
    #[serde(default, skip_serializing_if = "is_false")]
    pub proxyprotocol: bool,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct HealthChecks {
    pub protocol: Located<CheckProtocol>,
    /// The request path of an http/https check, e.g. `/healthz`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<Located<String>>,
    /// The status a healthy http/https answer has; default 200.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<Located<u16>>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum CheckProtocol {
    /// The backend accepts a connection.
    Tcp,
    /// `GET <path>` answers `<code>`.
    Http,
    /// As http, over TLS without verifying the certificate (the check asks whether the
    /// service answers, not who it is).
    Https,
}

impl CheckProtocol {
    pub fn as_str(self) -> &'static str {
        match self {
            CheckProtocol::Tcp => "tcp",
            CheckProtocol::Http => "http",
            CheckProtocol::Https => "https",
        }
    }
}

impl Default for HealthChecks {
    fn default() -> Self {
        HealthChecks {
            protocol: Located::new(CheckProtocol::Tcp),
            path: None,
            code: None,
        }
    }
}

impl HealthChecks {
    pub fn is_default(&self) -> bool {
        *self == HealthChecks::default()
    }

    /// The expected status of an http/https check.
    pub fn code_or_default(&self) -> u16 {
        self.code.as_ref().map_or(200, |c| c.value)
    }
}

fn default_whitelist() -> Vec<Located<Cidr>> {
    vec![Located::new(Cidr::ANY)]
}

fn is_default_whitelist(w: &Vec<Located<Cidr>>) -> bool {
    *w == default_whitelist()
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl DynamicLoadBalancer {
    /// Every VIP with the pool holding it, pools in id order, VIPs in file order.
    pub fn vips(&self) -> impl Iterator<Item = (&Id, &Vip)> {
        self.pools
            .iter()
            .flat_map(|(pool, vips)| vips.iter().map(move |v| (&pool.value, v)))
    }

    /// The pools holding VIPs.
    pub fn vip_pools(&self) -> impl Iterator<Item = &Id> {
        self.pools.keys().map(|p| &p.value)
    }
}

impl Transport {
    /// Whether `pool` is one of its backend pools.
    pub fn sends_to(&self, pool: &Id) -> bool {
        self.backendpools.iter().any(|p| p.value == *pool)
    }
}

/// Ports and whitelists read with messages that name the field (serde's own says only
/// "invalid u16").
pub(crate) mod port {
    use crate::located::Located;
    use serde::Deserialize;
    use serde::de::{Deserializer, Error, Visitor};
    use std::fmt;

    struct Port(u16);

    struct PortVisitor;

    impl Visitor<'_> for PortVisitor {
        type Value = Port;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a port (1-65535)")
        }
        fn visit_u64<E: Error>(self, v: u64) -> Result<Port, E> {
            u16::try_from(v)
                .map(Port)
                .map_err(|_| E::custom(format!("`{v}` is not a port (1-65535)")))
        }
        fn visit_i64<E: Error>(self, v: i64) -> Result<Port, E> {
            u64::try_from(v)
                .map_err(|_| E::custom(format!("`{v}` is not a port (1-65535)")))
                .and_then(|v| self.visit_u64(v))
        }
    }

    impl<'de> Deserialize<'de> for Port {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Port, D::Error> {
            d.deserialize_u64(PortVisitor)
        }
    }

    fn read<'de, D: Deserializer<'de>>(field: &str, d: D) -> Result<Located<u16>, D::Error> {
        let p = Located::<Port>::deserialize(d)
            .map_err(|e| D::Error::custom(format!("{field}: {e}")))?;
        Ok(Located {
            value: p.value.0,
            pos: p.pos,
        })
    }

    pub fn frontend<'de, D: Deserializer<'de>>(d: D) -> Result<Located<u16>, D::Error> {
        read("frontendport", d)
    }

    pub fn backend<'de, D: Deserializer<'de>>(d: D) -> Result<Located<u16>, D::Error> {
        read("backendport", d)
    }

    pub fn whitelist<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Vec<Located<super::Cidr>>, D::Error> {
        Vec::deserialize(d).map_err(|e| D::Error::custom(format!("whitelist: {e}")))
    }
}

/// keepalived's `virtual_router_id` of a VIP: its last octet, as in orbos, so a person can
/// read it off the address. `None` for an address ending in `.0` (0 is no router id).
/// Validation refuses such a VIP, and two VIPs of one Orb with the same last octet, although
/// only VIPs sharing machines and an interface really clash: one rule for the whole Orb is
/// easier to reason about and survives moving a VIP to another pool.
pub fn virtual_router_id(ip: Ipv4Addr) -> Option<u8> {
    let last = ip.octets()[3];
    (last != 0).then_some(last)
}

/// A transport found by name in the Orb (see `Orb::transport`).
#[derive(Clone, Copy, Debug)]
pub struct TransportRef<'a> {
    pub provider: &'a Id,
    /// The pool holding its VIP.
    pub pool: &'a Id,
    pub ip: Ipv4Addr,
    pub transport: &'a Transport,
}
