//! The firewall: one nftables table, `inet node_agent`, owned by the agent and replaced
//! atomically as a whole; nothing else of the host's ruleset is touched. Its input chain
//! drops what is not loopback, ICMP, an established connection, or explicitly allowed.
//!
//! Drift detection compares `nft list table` with the listing recorded right after the
//! agent loaded the table (nft normalises what it prints, so the agent's own rendering
//! cannot be compared directly).

use super::{Action, Op};
use crate::error::{Error, Result};
use crate::exec::Cmd;
use crate::fsutil;
use crate::host::Host;
use node_protocol::Firewall;
use node_protocol::net::{PortRange, SourceNet};
use std::fmt;
use std::net::IpAddr;

pub const TABLE: &str = "node_agent";
const APPLIED: &str = "firewall.applied";

/// Renders the table for `nft -f`.
pub fn render(fw: &Firewall) -> String {
    let mut r = String::new();
    r.push_str(&format!("table inet {TABLE} {{\n\tchain input {{\n"));
    r.push_str("\t\ttype filter hook input priority filter; policy drop;\n");
    r.push_str("\t\tiifname \"lo\" accept\n");
    r.push_str("\t\tct state established,related accept\n");
    r.push_str("\t\tct state invalid drop\n");
    // Protocol numbers (1 = ICMP, 58 = ICMPv6), not names: names need /etc/protocols,
    // which minimal systems lack.
    r.push_str("\t\tmeta l4proto { 1, 58 } accept\n");
    for rule in &fw.allow {
        if !rule.protocol.has_ports() {
            render_vrrp(&mut r, &rule.sources);
            continue;
        }
        let ports = merge_ports(
            rule.ports
                .iter()
                .filter_map(|p| PortRange::parse(p).ok())
                .collect(),
        );
        let ports = ports
            .iter()
            .map(|p| {
                if p.0 == p.1 {
                    p.0.to_string()
                } else {
                    format!("{}-{}", p.0, p.1)
                }
            })
            .collect::<Vec<_>>()
            .join(", ");
        let proto = rule.protocol.as_str();
        let sources: Vec<SourceNet> = rule
            .sources
            .iter()
            .filter_map(|s| SourceNet::parse(s).ok())
            .collect();
        if sources.is_empty() {
            r.push_str(&format!("\t\t{proto} dport {{ {ports} }} accept\n"));
            continue;
        }
        for (family, v4) in [("ip", true), ("ip6", false)] {
            let nets = minimal_nets(
                sources
                    .iter()
                    .filter(|s| s.is_v4() == v4)
                    .cloned()
                    .collect(),
            );
            if !nets.is_empty() {
                let nets = nets
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ");
                r.push_str(&format!(
                    "\t\t{family} saddr {{ {nets} }} {proto} dport {{ {ports} }} accept\n"
                ));
            }
        }
    }
    r.push_str("\t}\n}\n");
    r
}

/// VRRP by its protocol number (names need /etc/protocols), from the sources or anywhere.
fn render_vrrp(r: &mut String, sources: &[String]) {
    let sources: Vec<SourceNet> = sources
        .iter()
        .filter_map(|s| SourceNet::parse(s).ok())
        .collect();
    if sources.is_empty() {
        r.push_str("\t\tmeta l4proto 112 accept\n");
        return;
    }
    for (family, v4) in [("ip", true), ("ip6", false)] {
        let nets = minimal_nets(
            sources
                .iter()
                .filter(|s| s.is_v4() == v4)
                .cloned()
                .collect(),
        );
        if !nets.is_empty() {
            let nets = nets
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ");
            r.push_str(&format!(
                "\t\t{family} saddr {{ {nets} }} meta l4proto 112 accept\n"
            ));
        }
    }
}

/// Sorted, with overlapping and adjacent ranges merged (nft rejects overlapping set elements).
pub fn merge_ports(mut v: Vec<PortRange>) -> Vec<PortRange> {
    v.sort_by_key(|p| (p.0, p.1));
    let mut out: Vec<PortRange> = Vec::with_capacity(v.len());
    for p in v {
        match out.last_mut() {
            Some(last) if u32::from(p.0) <= u32::from(last.1) + 1 => last.1 = last.1.max(p.1),
            _ => out.push(p),
        }
    }
    out
}

fn net_bits(n: &SourceNet) -> (u128, u8) {
    match n.addr {
        IpAddr::V4(a) => (u128::from(u32::from(a)) << 96, n.prefix.unwrap_or(32)),
        IpAddr::V6(a) => (u128::from(a), n.prefix.unwrap_or(128)),
    }
}

fn mask(bits: u8) -> u128 {
    if bits == 0 {
        0
    } else {
        u128::MAX << (128 - u32::from(bits))
    }
}

/// Host bits cleared, duplicates and nets inside other nets removed, sorted.
pub fn minimal_nets(v: Vec<SourceNet>) -> Vec<SourceNet> {
    let mut norm: Vec<(u128, u8, SourceNet)> = v
        .into_iter()
        .map(|n| {
            let (addr, bits) = net_bits(&n);
            let net = addr & mask(bits);
            let max = if n.is_v4() { 32 } else { 128 };
            let shown = match n.addr {
                IpAddr::V4(_) => IpAddr::V4(std::net::Ipv4Addr::from((net >> 96) as u32)),
                IpAddr::V6(_) => IpAddr::V6(std::net::Ipv6Addr::from(net)),
            };
            let prefix = n.prefix.filter(|p| *p != max);
            (
                net,
                bits,
                SourceNet {
                    addr: shown,
                    prefix,
                },
            )
        })
        .collect();
    norm.sort_by_key(|(net, bits, _)| (*bits, *net));
    let mut kept: Vec<(u128, u8, SourceNet)> = Vec::new();
    for (net, bits, n) in norm {
        if !kept
            .iter()
            .any(|(kn, kb, _)| *kb <= bits && net & mask(*kb) == *kn)
        {
            kept.push((net, bits, n));
        }
    }
    kept.sort_by_key(|(net, bits, _)| (*net, *bits));
    kept.into_iter().map(|(_, _, n)| n).collect()
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    /// `nft list table inet node_agent`, `None` when the table does not exist.
    pub listing: Option<String>,
    /// What the agent recorded after its last load: hash of its rendering, and nft's listing.
    pub applied: Option<(String, String)>,
}

impl fmt::Display for Observed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.listing {
            None => write!(f, "no table inet {TABLE}"),
            Some(l) => {
                let rules = l
                    .lines()
                    .filter(|l| l.trim_end().ends_with("accept") || l.trim_end().ends_with("drop"))
                    .count();
                write!(f, "table inet {TABLE} with {rules} rules")
            }
        }
    }
}

fn nft_path(host: &Host) -> Option<&'static str> {
    ["/usr/sbin/nft", "/sbin/nft"]
        .into_iter()
        .find(|p| host.path(p).exists())
}

pub fn observe(host: &Host) -> Result<Observed> {
    let nft = nft_path(host).ok_or_else(|| {
        Error::new(
            "nft is not installed; hint: add a package item for nftables before the firewall item",
        )
    })?;
    let cmd = Cmd::new(nft).args(["list", "table", "inet", TABLE]);
    let out = host.run(&cmd)?;
    let listing = if out.success() {
        Some(out.stdout)
    } else if out.stderr.contains("No such file or directory") {
        None
    } else {
        let hint = if out.stderr.contains("Operation not permitted") {
            "; hint: the agent needs CAP_NET_ADMIN"
        } else {
            ""
        };
        return Err(Error::new(format!("{}{hint}", out.failure(&cmd))));
    };
    let applied = fsutil::read_text_opt(&host.state_path(APPLIED))?.and_then(|s| {
        s.split_once('\n')
            .map(|(h, l)| (h.to_string(), l.to_string()))
    });
    Ok(Observed { listing, applied })
}

/// Without a firewall item there is nothing to observe where nft is absent (or under --root),
/// nor where the agent never loaded its table: only the agent creates it, and a machine without
/// CAP_NET_ADMIN (a container) cannot even list tables.
pub fn observe_if_installed(host: &Host) -> Result<Observed> {
    let never_applied = !host.state_path(APPLIED).exists();
    if !host.is_real_root() || nft_path(host).is_none() || never_applied {
        return Ok(Observed {
            listing: None,
            applied: None,
        });
    }
    observe(host)
}

pub fn plan(want: Option<&Firewall>, o: &Observed) -> Vec<Action> {
    let Some(fw) = want else {
        return match o.listing {
            Some(_) => vec![Action::new(Op::NftDelete, "no firewall item")],
            None => vec![],
        };
    };
    let ruleset = render(fw);
    let hash = fsutil::sha256_hex(ruleset.as_bytes());
    let reason = match (&o.listing, &o.applied) {
        (None, _) => "table missing",
        (Some(_), None) => "table not loaded by this agent",
        (Some(_), Some((h, _))) if *h != hash => "rules differ from desired",
        (Some(l), Some((_, recorded))) if l != recorded => "table changed outside the agent",
        _ => return vec![],
    };
    vec![Action::new(Op::NftApply { ruleset }, reason)]
}

/// Replaces the table in one nft transaction (flush-and-load is atomic for the kernel).
pub fn apply(host: &Host, ruleset: &str) -> Result<()> {
    let nft =
        nft_path(host).ok_or_else(|| Error::new("nft is not installed; hint: install nftables"))?;
    let script = format!("table inet {TABLE}\ndelete table inet {TABLE}\n{ruleset}");
    host.run_ok(&Cmd::new(nft).args(["-f", "-"]).stdin(script))?;
    let listing = host
        .run_ok(&Cmd::new(nft).args(["list", "table", "inet", TABLE]))?
        .stdout;
    let record = format!("{}\n{listing}", fsutil::sha256_hex(ruleset.as_bytes()));
    fsutil::write_atomic(&host.state_path(APPLIED), record.as_bytes(), 0o600, None)
}

pub fn delete(host: &Host) -> Result<()> {
    let nft = nft_path(host).ok_or_else(|| Error::new("nft is not installed"))?;
    let cmd = Cmd::new(nft).args(["delete", "table", "inet", TABLE]);
    let out = host.run(&cmd)?;
    if !out.success() && !out.stderr.contains("No such file or directory") {
        return Err(out.failure(&cmd));
    }
    fsutil::remove_opt(&host.state_path(APPLIED)).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use node_protocol::{Protocol, Rule};

    fn fw() -> Firewall {
        Firewall {
            allow: vec![
                Rule {
                    protocol: Protocol::Tcp,
                    ports: vec!["22".into()],
                    sources: vec![],
                },
                Rule {
                    protocol: Protocol::Tcp,
                    ports: vec!["2380".into(), "2379".into(), "2379-2380".into()],
                    sources: vec!["10.0.0.7/24".into(), "10.0.0.9".into(), "fd00::/8".into()],
                },
                Rule {
                    protocol: Protocol::Udp,
                    ports: vec!["53".into(), "5000-5010".into(), "5011".into()],
                    sources: vec![],
                },
                Rule {
                    protocol: Protocol::Vrrp,
                    ports: vec![],
                    sources: vec!["10.0.0.12".into(), "10.0.0.11".into()],
                },
            ],
            ssh_port: 22,
        }
    }

    const RENDERED: &str = "table inet node_agent {
\tchain input {
\t\ttype filter hook input priority filter; policy drop;
\t\tiifname \"lo\" accept
\t\tct state established,related accept
\t\tct state invalid drop
\t\tmeta l4proto { 1, 58 } accept
\t\ttcp dport { 22 } accept
\t\tip saddr { 10.0.0.0/24 } tcp dport { 2379-2380 } accept
\t\tip6 saddr { fd00::/8 } tcp dport { 2379-2380 } accept
\t\tudp dport { 53, 5000-5011 } accept
\t\tip saddr { 10.0.0.11, 10.0.0.12 } meta l4proto 112 accept
\t}
}
";

    #[test]
    fn renders_a_merged_ruleset() {
        assert_eq!(render(&fw()), RENDERED);
    }

    #[test]
    fn nets_are_normalised() {
        let n = |s: &str| SourceNet::parse(s).unwrap();
        let out = minimal_nets(vec![
            n("10.1.2.3/16"),
            n("10.1.0.0/24"),
            n("192.0.2.1"),
            n("192.0.2.1/32"),
            n("0.0.0.0/0"),
        ]);
        assert_eq!(
            out.iter().map(ToString::to_string).collect::<Vec<_>>(),
            ["0.0.0.0/0"]
        );
        let out = minimal_nets(vec![n("10.1.2.3/16"), n("192.0.2.1/32"), n("192.0.2.1")]);
        assert_eq!(
            out.iter().map(ToString::to_string).collect::<Vec<_>>(),
            ["10.1.0.0/16", "192.0.2.1"]
        );
    }

    #[test]
    fn plan_detects_drift_by_recorded_listing() {
        let f = fw();
        let hash = fsutil::sha256_hex(render(&f).as_bytes());
        let synced = Observed {
            listing: Some("L".into()),
            applied: Some((hash.clone(), "L".into())),
        };
        assert!(plan(Some(&f), &synced).is_empty());
        let edited = Observed {
            listing: Some("L2".into()),
            ..synced.clone()
        };
        assert_eq!(
            plan(Some(&f), &edited)[0].reason,
            "table changed outside the agent"
        );
        let missing = Observed {
            listing: None,
            ..synced.clone()
        };
        assert_eq!(plan(Some(&f), &missing)[0].reason, "table missing");
        let other = Observed {
            applied: Some(("x".into(), "L".into())),
            ..synced.clone()
        };
        assert_eq!(
            plan(Some(&f), &other)[0].reason,
            "rules differ from desired"
        );
        assert_eq!(plan(None, &synced)[0].op, Op::NftDelete);
        assert!(plan(None, &missing).is_empty());
    }

    /// The rendering is checked by the real nft, inside a network namespace created for the
    /// test (so the host's ruleset is untouched). Needs root and nft.
    #[test]
    fn real_nft_accepts_the_rendering() {
        let has_nft = std::path::Path::new("/usr/sbin/nft").exists();
        // SAFETY: geteuid has no preconditions.
        if !has_nft || unsafe { libc::geteuid() } != 0 {
            eprintln!("SKIPPED real_nft_accepts_the_rendering: needs root and /usr/sbin/nft");
            return;
        }
        let script = format!(
            "table inet {TABLE}\ndelete table inet {TABLE}\n{}",
            render(&fw())
        );
        let out = crate::exec::run(
            &Cmd::new("unshare")
                .args([
                    "--net",
                    "--",
                    "sh",
                    "-c",
                    "nft -f - && nft list table inet node_agent",
                ])
                .stdin(script),
            &|| {},
        )
        .unwrap();
        assert!(out.success(), "nft rejected the ruleset: {}", out.stderr);
        assert!(
            out.stdout
                .contains("ip saddr 10.0.0.0/24 tcp dport 2379-2380 accept"),
            "{}",
            out.stdout
        );
        assert!(
            out.stdout.contains("meta l4proto vrrp accept"),
            "{}",
            out.stdout
        );
    }
}
