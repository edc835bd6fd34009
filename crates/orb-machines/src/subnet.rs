//! Choosing a private /24 per group that collides with nothing the host already routes or
//! addresses and with no other group.

use crate::Error;
use crate::cmd;
use serde::{Deserialize, Serialize};
use std::net::Ipv4Addr;

/// An IPv4 network (address and prefix length).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Net4 {
    pub addr: Ipv4Addr,
    pub prefix: u8,
}

impl Net4 {
    fn mask(prefix: u8) -> u32 {
        if prefix == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(prefix.min(32)))
        }
    }
    fn first(&self) -> u32 {
        u32::from(self.addr) & Self::mask(self.prefix)
    }
    fn last(&self) -> u32 {
        self.first() | !Self::mask(self.prefix)
    }
    pub fn overlaps(&self, other: &Net4) -> bool {
        self.first() <= other.last() && other.first() <= self.last()
    }
    /// Host number `n` inside the network (e.g. 1 → x.y.z.1).
    pub fn host(&self, n: u8) -> Ipv4Addr {
        Ipv4Addr::from(self.first() | u32::from(n))
    }
    fn parse(s: &str) -> Option<Net4> {
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, p.parse().ok()?),
            None => (s, 32),
        };
        Some(Net4 {
            addr: a.parse().ok()?,
            prefix: p,
        })
    }
}

impl std::fmt::Display for Net4 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", Ipv4Addr::from(self.first()), self.prefix)
    }
}

/// Candidates run from 10.213.0.0/24 upward through 10.254.255.0/24.
pub(crate) const RANGE: &str = "10.213.0.0-10.254.255.0/24";

/// The first candidate /24 overlapping none of `used`. Default routes (/0) are not collisions.
pub(crate) fn pick(used: &[Net4]) -> Result<Net4, Error> {
    let used: Vec<&Net4> = used.iter().filter(|n| n.prefix > 0).collect();
    for second in 213u8..=254 {
        for third in 0u8..=255 {
            let cand = Net4 {
                addr: Ipv4Addr::new(10, second, third, 0),
                prefix: 24,
            };
            if !used.iter().any(|u| u.overlaps(&cand)) {
                return Ok(cand);
            }
        }
    }
    Err(Error::NoFreeSubnet {
        range: RANGE.to_string(),
    })
}

/// Every IPv4 network the host has an address in or a route to (all routing tables).
pub(crate) fn host_networks() -> Result<Vec<Net4>, Error> {
    let mut nets = Vec::new();
    let addrs = cmd::run(&mut cmd::cmd("ip", ["-j", "-4", "addr", "show"]))?;
    let v: serde_json::Value = serde_json::from_slice(&addrs.stdout).unwrap_or_default();
    for link in v.as_array().into_iter().flatten() {
        for a in link["addr_info"].as_array().into_iter().flatten() {
            if let (Some(local), Some(p)) = (a["local"].as_str(), a["prefixlen"].as_u64())
                && let Some(n) = Net4::parse(&format!("{local}/{p}"))
            {
                nets.push(n);
            }
        }
    }
    let routes = cmd::run(&mut cmd::cmd(
        "ip",
        ["-j", "-4", "route", "show", "table", "all"],
    ))?;
    let v: serde_json::Value = serde_json::from_slice(&routes.stdout).unwrap_or_default();
    for r in v.as_array().into_iter().flatten() {
        if let Some(n) = r["dst"].as_str().and_then(Net4::parse) {
            nets.push(n);
        }
    }
    Ok(nets)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> Net4 {
        Net4::parse(s).unwrap()
    }

    #[test]
    fn picks_first_free_and_skips_collisions() {
        assert_eq!(pick(&[]).unwrap(), n("10.213.0.0/24"));
        assert_eq!(
            pick(&[n("0.0.0.0/0"), n("10.213.0.0/24")]).unwrap(),
            n("10.213.1.0/24")
        );
        // A host address inside a candidate makes it taken, as does a wider route.
        assert_eq!(
            pick(&[n("10.213.0.7/32"), n("10.213.1.0/23")]).unwrap(),
            n("10.213.2.0/24")
        );
        assert_eq!(pick(&[n("10.213.0.0/16")]).unwrap(), n("10.214.0.0/24"));
    }

    #[test]
    fn no_free_subnet_is_a_clear_error() {
        let e = pick(&[n("10.0.0.0/8")]).unwrap_err().to_string();
        assert!(
            e.contains("no free /24 subnet") && e.contains("local down"),
            "{e}"
        );
    }

    #[test]
    fn host_numbers() {
        assert_eq!(n("10.213.4.0/24").host(1), Ipv4Addr::new(10, 213, 4, 1));
        assert_eq!(n("10.213.4.0/24").to_string(), "10.213.4.0/24");
        assert!(!n("10.213.4.0/24").overlaps(&n("10.213.5.0/24")));
    }
}
