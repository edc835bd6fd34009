//! What the caller hands in: one provider's spec, its machines, the VRRP secret, the machines'
//! interfaces and the package versions. Orbiter resolves all of these; nothing here looks anything up.

use orb_model::Id;
use orb_model::kinds::load_balancer::DynamicLoadBalancer;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::Ipv4Addr;

/// A machine of the provider.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct LbMachine {
    pub id: Id,
    pub ip: Ipv4Addr,
}

/// Exact Debian versions, e.g. `1:2.2.8-1+b1` and `2.8.16-0+deb13u1`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Packages {
    pub keepalived: String,
    pub haproxy: String,
}

/// Everything [`crate::render`] needs for one provider.
#[derive(Clone, Copy, Debug)]
pub struct LbInput<'a> {
    pub provider: &'a Id,
    pub spec: &'a DynamicLoadBalancer,
    /// The provider's machines by pool, in any order (rendering sorts them by id).
    pub machines: &'a BTreeMap<Id, Vec<LbMachine>>,
    /// The VRRP password Orbiter generated; see [`crate::auth_pass`].
    pub vrrp_password: &'a [u8],
    /// Where the VIPs live on each machine: the interface carrying its own address, as its
    /// observation showed ([`crate::LbMachineObservation::interface_of`]).
    pub interfaces: &'a BTreeMap<Id, String>,
    /// Where they live on a machine not observed yet (`eth0`).
    pub interface: &'a str,
    /// Per transport that is a cluster's endpoint, the only machines of its backend pools it
    /// may send to now (the cluster's serving members); other transports send to every one.
    pub serving: &'a BTreeMap<String, BTreeSet<Id>>,
    /// The VIPs' prefix length on that interface; 32 adds no route and is always safe.
    pub vip_prefix: u8,
    pub packages: &'a Packages,
}

impl LbInput<'_> {
    /// A pool's machines sorted by id (the order that decides VRRP priorities).
    pub fn pool(&self, pool: &Id) -> Vec<&LbMachine> {
        let mut v: Vec<&LbMachine> = self.machines.get(pool).into_iter().flatten().collect();
        v.sort();
        v.dedup_by(|a, b| a.id == b.id);
        v
    }

    /// The VIP interface of machine `id`.
    pub fn interface_of(&self, id: &Id) -> &str {
        self.interfaces
            .get(id)
            .map_or(self.interface, String::as_str)
    }

    /// Every machine of the provider, sorted by id.
    pub fn all_machines(&self) -> Vec<&LbMachine> {
        let mut v: Vec<&LbMachine> = self.machines.values().flatten().collect();
        v.sort();
        v.dedup_by(|a, b| a.id == b.id);
        v
    }
}

/// Input that cannot be rendered: it would break the configuration files or the shell.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LbError(pub String);

impl fmt::Display for LbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for LbError {}

/// A Linux interface name (at most 15 characters): it goes into keepalived.conf and a shell
/// command unquoted, so only letters, digits, `.`, `_` and `-`.
pub(crate) fn check_interface(name: &str) -> Result<(), LbError> {
    let ok = !name.is_empty()
        && name.len() <= 15
        && !name.starts_with(['-', '.'])
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(LbError(format!(
            "`{}` is not an interface name (letters, digits, `.`, `_`, `-`, at most 15)",
            name.escape_debug()
        )))
    }
}
