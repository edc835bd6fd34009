//! The checks of every provider's `loadbalancing`: first each on its own (pools, ports, health
//! checks, whitelists), then across the Orb (VIP addresses, router ids, transport names), because
//! VIPs of different providers may share a network and transport names are what clusters use.

use super::{CheckProtocol, DynamicLoadBalancer, Transport, Vip, virtual_router_id};
use crate::error::ModelError;
use crate::hint::did_you_mean;
use crate::id::Id;
use crate::kinds::{OrbView, ProviderModel};
use crate::located::{Located, Pos};
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};

/// sshd listens on every address of a machine, so HAProxy could not bind a VIP's port 22.
const SSH_PORT: u16 = 22;

pub(crate) fn check_load_balancers(orb: &dyn OrbView, file: &str) -> Result<(), ModelError> {
    let mut machines: BTreeMap<IpAddr, String> = BTreeMap::new();
    for pid in orb.provider_ids() {
        if let Some(p) = orb.provider(pid) {
            for (m, ip) in p.machine_addresses() {
                machines.insert(ip, format!("{pid}.{m}"));
            }
        }
    }
    let mut vips: BTreeMap<Ipv4Addr, String> = BTreeMap::new();
    let mut vrids: BTreeMap<u8, Ipv4Addr> = BTreeMap::new();
    let mut names: BTreeMap<Id, String> = BTreeMap::new();
    for pid in orb.provider_ids() {
        let Some(model) = orb.provider(pid) else {
            continue;
        };
        let Some(lb) = model.loadbalancing() else {
            continue;
        };
        check_provider(model, pid, lb, file)?;
        for (pool, vip) in lb.vips() {
            let ip = &vip.ip;
            let here = format!("{pid}.{pool}");
            if let Some(first) = vips.insert(ip.value, here.clone()) {
                return Err(err(file, ip.pos, pid, format!("VIP {ip} is listed twice (pools `{first}` and `{here}`)"))
                    .with_hint("every VIP of the Orb needs its own address; give one VIP several transports instead"));
            }
            if let Some(m) = machines.get(&IpAddr::V4(ip.value)) {
                return Err(err(file, ip.pos, pid, format!("VIP {ip} is the address of machine `{m}`"))
                    .with_hint("a VIP must be a free address that only keepalived assigns; choose an unused address in the pool's subnet"));
            }
            if let Some(id) = virtual_router_id(ip.value)
                && let Some(other) = vrids.insert(id, ip.value)
            {
                return Err(err(file, ip.pos, pid, format!("VIPs {other} and {ip} both end in .{id}, so both would get VRRP router id {id}"))
                    .with_hint("the virtual_router_id of a VIP is its last octet and must be unique in the Orb; choose an address with another last octet"));
            }
            for t in &vip.transport {
                let name = &t.name;
                if let Some(first) = names.insert(name.value.clone(), here.clone()) {
                    return Err(err(file, name.pos, pid, format!("transport `{name}` is defined twice (also at pool `{first}`)"))
                        .with_hint("transport names are unique in the Orb: clusters name their endpoint by them"));
                }
            }
        }
    }
    Ok(())
}

fn err(file: &str, pos: Option<Pos>, pid: &Id, msg: String) -> ModelError {
    ModelError::new(file, pos, format!("provider `{pid}`: loadbalancing: {msg}"))
}

fn pool_names(model: &dyn ProviderModel) -> Vec<String> {
    model.pools().iter().map(|(p, _)| p.to_string()).collect()
}

fn check_pool_exists(
    model: &dyn ProviderModel,
    pid: &Id,
    pool: &Located<Id>,
    what: &str,
    file: &str,
) -> Result<(), ModelError> {
    if model.pools().iter().any(|(p, _)| **p == pool.value) {
        return Ok(());
    }
    let names = pool_names(model);
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    Err(err(
        file,
        pool.pos,
        pid,
        format!("{what} `{pool}` is not a pool of this provider"),
    )
    .with_hint(did_you_mean(pool.value.as_str(), &names)))
}

fn check_provider(
    model: &dyn ProviderModel,
    pid: &Id,
    lb: &DynamicLoadBalancer,
    file: &str,
) -> Result<(), ModelError> {
    for (pool, vips) in &lb.pools {
        check_pool_exists(model, pid, pool, "VIP pool", file)?;
        if vips.is_empty() {
            return Err(
                err(file, pool.pos, pid, format!("pool `{pool}` has no VIP")).with_hint(
                    "list at least one `- ip: …` with its transport, or remove the pool",
                ),
            );
        }
        for vip in vips {
            check_vip(model, pid, &pool.value, vip, file)?;
            for t in &vip.transport {
                check_transport(model, pid, &vip.ip, t, file)?;
            }
        }
    }
    check_port_clashes(pid, lb, file)
}

fn check_vip(
    model: &dyn ProviderModel,
    pid: &Id,
    pool: &Id,
    vip: &Vip,
    file: &str,
) -> Result<(), ModelError> {
    let ip = &vip.ip;
    if virtual_router_id(ip.value).is_none() {
        return Err(err(file, ip.pos, pid, format!("VIP {ip} ends in .0"))
            .with_hint("the VRRP router id is the VIP's last octet and 0 is none; choose an address that does not end in .0"));
    }
    if vip.transport.is_empty() {
        return Err(err(file, ip.pos, pid, format!("VIP {ip} has no transport"))
            .with_hint("add `transport: [{name: …, frontendport: …, backendport: …, backendpools: [...]}]`"));
    }
    if let Some((net, prefix)) = model.pool_subnet(pool) {
        let subnet = super::Cidr { addr: net, prefix };
        let broadcast = Ipv4Addr::from(u32::from(net) | !subnet.mask());
        if !subnet.contains(ip.value) || ip.value == broadcast || ip.value == net {
            return Err(err(
                file,
                ip.pos,
                pid,
                format!("VIP {ip} is not a host address of pool `{pool}`'s subnet {subnet}"),
            )
            .with_hint(format!("keepalived adds the VIP to the interface the machines of `{pool}` share; choose a free address in {subnet}")));
        }
    }
    let mut ports = BTreeMap::new();
    for t in &vip.transport {
        if let Some(other) = ports.insert(t.frontendport.value, &t.name) {
            return Err(err(
                file,
                t.frontendport.pos,
                pid,
                format!(
                    "VIP {ip}: transports `{other}` and `{}` both use frontendport {}",
                    t.name, t.frontendport
                ),
            )
            .with_hint(
                "each port of a VIP forwards to one place; use another frontendport or another VIP",
            ));
        }
    }
    Ok(())
}

fn check_transport(
    model: &dyn ProviderModel,
    pid: &Id,
    vip: &Located<Ipv4Addr>,
    t: &Transport,
    file: &str,
) -> Result<(), ModelError> {
    let at = format!("VIP {vip}: transport `{}`", t.name);
    for (field, port) in [
        ("frontendport", &t.frontendport),
        ("backendport", &t.backendport),
    ] {
        if port.value == 0 {
            return Err(err(file, port.pos, pid, format!("{at}: {field} is 0"))
                .with_hint("a port is 1-65535"));
        }
    }
    if t.frontendport.value == SSH_PORT {
        return Err(err(file, t.frontendport.pos, pid, format!("{at}: frontendport is {SSH_PORT}"))
            .with_hint("sshd listens on every address of the load balancing machines, so HAProxy cannot bind port 22 of the VIP; use another port"));
    }
    if t.backendpools.is_empty() {
        return Err(
            err(file, t.name.pos, pid, format!("{at} has no backendpools")).with_hint(format!(
                "name the pools that get the connections, e.g. backendpools: [{}]",
                pool_names(model).join(", ")
            )),
        );
    }
    for (k, pool) in t.backendpools.iter().enumerate() {
        check_pool_exists(model, pid, pool, &format!("{at}: backend pool"), file)?;
        if t.backendpools[..k].contains(pool) {
            return Err(err(
                file,
                pool.pos,
                pid,
                format!("{at}: backend pool `{pool}` is listed twice"),
            )
            .with_hint("list each pool once"));
        }
    }
    for c in &t.whitelist {
        if c.value.has_host_bits() {
            return Err(err(
                file,
                c.pos,
                pid,
                format!("{at}: whitelist entry {c} has host bits set"),
            )
            .with_hint(format!("write the network: {}", c.value.network())));
        }
    }
    let h = &t.healthchecks;
    match h.protocol.value {
        CheckProtocol::Tcp => {
            if let Some(p) = h
                .path
                .as_ref()
                .map(|p| p.pos)
                .or(h.code.as_ref().map(|c| c.pos))
            {
                return Err(err(file, p, pid, format!("{at}: healthchecks: a tcp check has no path or code"))
                    .with_hint("a tcp check only connects; use protocol: http or https to check a path, or remove path and code"));
            }
        }
        CheckProtocol::Http | CheckProtocol::Https => {
            let path_ok = h.path.as_ref().is_some_and(|p| check_path(&p.value));
            if !path_ok {
                let pos = h.path.as_ref().map_or(h.protocol.pos, |p| p.pos);
                return Err(err(file, pos, pid, format!("{at}: healthchecks.path must be a path starting with `/`"))
                    .with_hint("e.g. path: /healthz (printable characters, no spaces, quotes, backslashes or `#`)"));
            }
            if let Some(c) = &h.code
                && !(100..=599).contains(&c.value)
            {
                return Err(err(
                    file,
                    c.pos,
                    pid,
                    format!("{at}: healthchecks.code {c} is not an HTTP status"),
                )
                .with_hint("an HTTP status is 100-599, e.g. 200"));
            }
        }
    }
    Ok(())
}

/// What goes into HAProxy's configuration unquoted: one word of printable ASCII.
fn check_path(p: &str) -> bool {
    p.starts_with('/')
        && p.len() <= 256
        && p.chars()
            .all(|c| c.is_ascii_graphic() && !"\"'\\#".contains(c))
}

/// HAProxy on a machine of a VIP pool binds `VIP:frontendport`; a service on the same machine
/// listening on all addresses at that port (the backend port of a transport sending to that
/// pool) would clash with it. So a frontend port of a pool's VIPs is never a backend port of a
/// transport that sends to that pool.
fn check_port_clashes(pid: &Id, lb: &DynamicLoadBalancer, file: &str) -> Result<(), ModelError> {
    let transports: Vec<&Transport> = lb.vips().flat_map(|(_, v)| &v.transport).collect();
    for (pool, vip) in lb.vips() {
        let served: BTreeSet<u16> = transports
            .iter()
            .filter(|t| t.sends_to(pool))
            .map(|t| t.backendport.value)
            .collect();
        for t in &vip.transport {
            if served.contains(&t.frontendport.value) {
                return Err(err(file, t.frontendport.pos, pid, format!(
                    "VIP {}: transport `{}`: frontendport {} is a backend port on pool `{pool}`, which holds the VIP",
                    vip.ip, t.name, t.frontendport
                ))
                .with_hint(format!("HAProxy on the machines of `{pool}` binds {}:{} while the service there listens on port {}; use another frontendport, or hold the VIP on a pool that is not a backend", vip.ip, t.frontendport, t.frontendport)));
            }
        }
    }
    Ok(())
}
