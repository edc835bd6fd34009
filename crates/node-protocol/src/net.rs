//! Ports and source networks of firewall rules, parsed and normalised.

use crate::error::{ProtocolError as Error, Result};
use std::fmt;
use std::net::IpAddr;

/// A parsed port or inclusive port range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRange(pub u16, pub u16);

impl PortRange {
    pub fn parse(s: &str) -> Result<PortRange> {
        let bad = || {
            Error::new(format!(
                "ports: `{s}` is not a port (1-65535) or a range like \"30000-32767\""
            ))
        };
        let num = |t: &str| {
            t.trim()
                .parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(bad)
        };
        match s.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (num(a)?, num(b)?);
                if a > b {
                    Err(bad())
                } else {
                    Ok(PortRange(a, b))
                }
            }
            None => num(s).map(|p| PortRange(p, p)),
        }
    }

    pub fn contains(self, p: u16) -> bool {
        self.0 <= p && p <= self.1
    }
}

/// A source address or prefix, normalised (`10.0.0.0/8`, `fd00::/8`, `192.0.2.7`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceNet {
    pub addr: IpAddr,
    pub prefix: Option<u8>,
}

impl SourceNet {
    pub fn parse(s: &str) -> Result<SourceNet> {
        let bad = || {
            Error::new(format!(
                "sources: `{s}` is not an IP address or CIDR prefix (e.g. 10.0.0.0/8, fd00::/8)"
            ))
        };
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p.parse::<u8>().map_err(|_| bad())?)),
            None => (s, None),
        };
        let addr: IpAddr = a.trim().parse().map_err(|_| bad())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        if p.is_some_and(|p| p > max) {
            return Err(bad());
        }
        Ok(SourceNet { addr, prefix: p })
    }

    pub fn is_v4(&self) -> bool {
        self.addr.is_ipv4()
    }
}

impl fmt::Display for SourceNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.prefix {
            Some(p) => write!(f, "{}/{p}", self.addr),
            None => write!(f, "{}", self.addr),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_and_sources() {
        assert_eq!(
            PortRange::parse("30000-32767").unwrap(),
            PortRange(30000, 32767)
        );
        assert!(PortRange::parse("0").is_err() && PortRange::parse("5-4").is_err());
        assert_eq!(
            SourceNet::parse("fd00::/8").unwrap().to_string(),
            "fd00::/8"
        );
        assert!(SourceNet::parse("10.0.0.1").unwrap().is_v4());
        assert!(SourceNet::parse("10.0.0.0/33").is_err());
    }
}
