//! The node-agent items of every load balancing machine and the firewall rules of every machine
//! a load balancer touches, for one provider.
//!
//! Firewall rules are returned apart from the items because a machine has one firewall item
//! and it is an allow-list (everything else is dropped): adding one only for the load balancer
//! would close every other port of the machine. Orbiter adds the rules to the machine's
//! firewall item where it has one ([`add_firewall_rules`]); a machine without one accepts
//! everything, and only HAProxy's own `tcp-request connection reject` enforces the whitelist.

mod haproxy;
mod keepalived;
#[cfg(test)]
pub(crate) mod tests;

pub use haproxy::{BACKEND_PREFIX, FRONTEND_PREFIX, haproxy_cfg};
pub use keepalived::{keepalived_conf, priority, ready_script};

use crate::input::{LbError, LbInput, check_interface};
use node_protocol::{
    Directory, File, FileSecret, Health, Item, Package, Protocol, Rule, SecretBytes, Sysctl, Unit,
};
use orb_model::Id;
use orb_model::kinds::load_balancer::{Cidr, Transport, virtual_router_id};
use std::collections::BTreeMap;

pub const HAPROXY_CFG: &str = "/etc/haproxy/haproxy.cfg";
pub const KEEPALIVED_CONF: &str = "/etc/keepalived/keepalived.conf";
pub const SCRIPT_DIR: &str = "/usr/local/lib/orbiter";
pub const READY_SCRIPT: &str = "/usr/local/lib/orbiter/lb-ready";
/// HAProxy's `/ready` on loopback: keepalived's tracking and the health item.
pub const READY_PORT: u16 = 29999;
/// HAProxy's statistics on loopback (`/stats;csv`), read by the observation.
pub const STATS_PORT: u16 = 29998;
/// The health item that gates a rollout of a load balancing machine.
pub const HEALTH_PROXY: &str = "lb-proxy";
pub const HEALTH_VRRP: &str = "lb-vrrp";

/// What one machine gets from the provider's load balancer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MachineLb {
    /// Items of a load balancing machine (empty for a backend machine).
    pub items: Vec<Item>,
    /// Rules for the machine's firewall item, where it has one.
    pub firewall: Vec<Rule>,
}

/// Every machine concerned, by id: the machines of VIP pools get items and rules (frontend
/// ports from the whitelist, VRRP from their peers), the machines of backend pools rules (the
/// backend port from the load balancing machines). The same input gives the same bytes,
/// whatever the order of the machines.
pub fn render(input: &LbInput) -> Result<BTreeMap<Id, MachineLb>, LbError> {
    check_interface(input.interface)?;
    for name in input.interfaces.values() {
        check_interface(name)?;
    }
    if !(1..=32).contains(&input.vip_prefix) {
        return Err(LbError(format!(
            "VIP prefix /{} is not 1-32",
            input.vip_prefix
        )));
    }
    let pass = auth_pass(input.vrrp_password)?;
    for (_, vip) in input.spec.vips() {
        if virtual_router_id(vip.ip.value).is_none() {
            return Err(LbError(format!(
                "VIP {} has no VRRP router id (it ends in .0)",
                vip.ip
            )));
        }
    }
    let mut out: BTreeMap<Id, MachineLb> = BTreeMap::new();
    for (pool, vips) in &input.spec.pools {
        let machines = input.pool(&pool.value);
        let cfg = haproxy_cfg(input, &pool.value, vips);
        for (index, me) in machines.iter().enumerate() {
            let conf = keepalived_conf(input, vips, &machines, index, &pass);
            let entry = out.entry(me.id.clone()).or_default();
            entry.items = lb_items(input, &cfg, conf);
            let transports = vips.iter().flat_map(|v| &v.transport);
            entry.firewall.extend(transports.map(|t| Rule {
                protocol: Protocol::Tcp,
                ports: vec![t.frontendport.value.to_string()],
                sources: rule_sources(&sources(input, t)),
            }));
            let peers: Vec<String> = machines
                .iter()
                .filter(|m| m.id != me.id)
                .map(|m| m.ip.to_string())
                .collect();
            if !peers.is_empty() {
                entry.firewall.push(Rule {
                    protocol: Protocol::Vrrp,
                    ports: Vec::new(),
                    sources: peers,
                });
            }
        }
        let lbs: Vec<String> = machines.iter().map(|m| m.ip.to_string()).collect();
        if lbs.is_empty() {
            continue;
        }
        for t in vips.iter().flat_map(|v| &v.transport) {
            for backend in t.backendpools.iter().flat_map(|p| input.pool(&p.value)) {
                out.entry(backend.id.clone())
                    .or_default()
                    .firewall
                    .push(Rule {
                        protocol: Protocol::Tcp,
                        ports: vec![t.backendport.value.to_string()],
                        sources: lbs.clone(),
                    });
            }
        }
    }
    for m in out.values_mut() {
        m.firewall.sort_by_key(rule_key);
        m.firewall.dedup();
    }
    Ok(out)
}

fn lb_items(input: &LbInput, haproxy: &str, keepalived: String) -> Vec<Item> {
    let unit = |name: &str, config: &str| {
        Item::Unit(Unit {
            name: name.to_owned(),
            content: None,
            dropins: BTreeMap::new(),
            enabled: Some(true),
            active: Some(true),
            // A reload keeps HAProxy's listeners and keepalived's VRRP state: a transport
            // change drops no connection and moves no VIP.
            restart_on: Vec::new(),
            reload_on: vec![config.to_owned()],
        })
    };
    vec![
        Item::Package(Package {
            name: "keepalived".into(),
            version: input.packages.keepalived.clone(),
            held: true,
        }),
        Item::Package(Package {
            name: "haproxy".into(),
            version: input.packages.haproxy.clone(),
            held: true,
        }),
        // HAProxy binds every VIP of the pool, also those another machine holds right now.
        Item::Sysctl(Sysctl {
            key: "net.ipv4.ip_nonlocal_bind".into(),
            value: "1".into(),
        }),
        // keepalived's script security refuses a script under a directory others may write.
        Item::Directory(Directory::new(SCRIPT_DIR, "0755", "root", "root")),
        Item::File(File::text(READY_SCRIPT, ready_script(), "0755")),
        Item::File(File::text(HAPROXY_CFG, haproxy, "0644")),
        // Secret: it holds the VRRP password.
        Item::File(File::secret(
            KEEPALIVED_CONF,
            FileSecret::Value(SecretBytes::new(keepalived.into_bytes())),
            "0600",
        )),
        unit("haproxy.service", HAPROXY_CFG),
        unit("keepalived.service", KEEPALIVED_CONF),
        Item::Health(Health {
            name: HEALTH_PROXY.into(),
            http: Some(format!("http://127.0.0.1:{READY_PORT}/ready")),
            tcp: None,
            command: None,
            expect: None,
            timeout: Some("2s".into()),
        }),
        Item::Health(Health {
            name: HEALTH_VRRP.into(),
            http: None,
            tcp: None,
            command: Some("systemctl is-active --quiet keepalived.service".into()),
            expect: None,
            timeout: Some("2s".into()),
        }),
    ]
}

/// Who may connect to a transport: its whitelist and every machine of the provider (as in
/// orbos: the Orb's own machines reach its VIPs whatever the whitelist says), host bits
/// cleared, without prefixes inside others, sorted; `[0.0.0.0/0]` for everyone.
pub fn sources(input: &LbInput, t: &Transport) -> Vec<Cidr> {
    let mut all: Vec<Cidr> = t.whitelist.iter().map(|c| c.value.network()).collect();
    all.extend(input.all_machines().iter().map(|m| Cidr::host(m.ip)));
    all.sort_by_key(|c| (c.prefix, c.addr));
    let mut kept: Vec<Cidr> = Vec::new();
    for c in all {
        if !kept.iter().any(|k| k.covers(c)) {
            kept.push(c);
        }
    }
    kept.sort_by_key(|c| (c.addr, c.prefix));
    kept
}

/// Firewall sources: none (= anywhere) for everyone, bare addresses for hosts.
fn rule_sources(cidrs: &[Cidr]) -> Vec<String> {
    if cidrs == [Cidr::ANY] {
        return Vec::new();
    }
    cidrs.iter().map(|c| cidr_text(*c)).collect()
}

/// A prefix as config files show it: a host as its bare address.
fn cidr_text(c: Cidr) -> String {
    if c.prefix == 32 {
        c.addr.to_string()
    } else {
        c.to_string()
    }
}

fn rule_key(r: &Rule) -> (&'static str, Vec<String>, Vec<String>) {
    (r.protocol.as_str(), r.ports.clone(), r.sources.clone())
}

/// Adds `rules` to the firewall item of `items`, those it lacks, in order. `false` when the
/// machine has no firewall item: it then accepts everything and stays so (see the module).
pub fn add_firewall_rules(items: &mut [Item], rules: &[Rule]) -> bool {
    let Some(fw) = items.iter_mut().find_map(|i| match i {
        Item::Firewall(f) => Some(f),
        _ => None,
    }) else {
        return false;
    };
    for r in rules {
        if !fw.allow.contains(r) {
            fw.allow.push(r.clone());
        }
    }
    true
}

/// keepalived's `auth_pass`: VRRP's PASS carries at most 8 characters, so the first 8 of the
/// password's printable form, which is the password itself when it is one plain word, else its
/// bytes in hex. Weak by design of VRRP (see `keepalived`), refused when shorter than 8.
pub fn auth_pass(password: &[u8]) -> Result<String, LbError> {
    let plain = password
        .iter()
        .all(|b| b.is_ascii_graphic() && !b"\"'\\#{}".contains(b));
    let text: String = if plain {
        password.iter().map(|b| char::from(*b)).collect()
    } else {
        password.iter().map(|b| format!("{b:02x}")).collect()
    };
    if text.len() < 8 {
        return Err(LbError(
            "the VRRP password is too short: at least 8 printable characters or 4 bytes".into(),
        ));
    }
    Ok(text[..8].to_owned())
}
