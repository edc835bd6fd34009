//! Host-side network plumbing with `ip`: bridges, named network namespaces, veth pairs.
//! Addresses inside a machine are set from the host because networkd inside lacks CAP_NET_ADMIN.

use crate::Error;
use crate::cmd::{cmd, run};
use crate::subnet::Net4;
use std::net::Ipv4Addr;
use std::path::Path;

pub(crate) fn link_exists(name: &str) -> bool {
    Path::new("/sys/class/net").join(name).exists()
}

pub(crate) fn netns_exists(name: &str) -> bool {
    Path::new("/run/netns").join(name).exists()
}

pub(crate) fn link_is_up(name: &str) -> bool {
    std::fs::read_to_string(Path::new("/sys/class/net").join(name).join("flags"))
        .ok()
        .and_then(|s| u32::from_str_radix(s.trim().trim_start_matches("0x"), 16).ok())
        .is_some_and(|f| f & libc::IFF_UP as u32 != 0)
}

pub(crate) fn create_bridge(name: &str, ip: Ipv4Addr, subnet: Net4) -> Result<(), Error> {
    if link_exists(name) {
        return Err(Error::LinkExists {
            name: name.to_string(),
            hint: "a group with a colliding hashed name or a leftover bridge; remove it with `ip link del` if unused",
        });
    }
    run(&mut cmd("ip", ["link", "add", name, "type", "bridge"]))?;
    run(&mut cmd(
        "ip",
        [
            "addr",
            "add",
            &format!("{ip}/{}", subnet.prefix),
            "dev",
            name,
        ],
    ))?;
    run(&mut cmd("ip", ["link", "set", name, "up"]))?;
    Ok(())
}

/// Deletes a link if present (deleting one end of a veth deletes both).
/// Deleting a namespace removes its veth pair asynchronously, so a link that vanishes while we
/// delete it is success.
pub(crate) fn delete_link(name: &str) -> Result<(), Error> {
    if link_exists(name)
        && let Err(e) = run(&mut cmd("ip", ["link", "del", name]))
        && link_exists(name)
    {
        return Err(e);
    }
    Ok(())
}

pub(crate) fn set_link(name: &str, up: bool) -> Result<(), Error> {
    run(&mut cmd(
        "ip",
        ["link", "set", name, if up { "up" } else { "down" }],
    ))?;
    Ok(())
}

/// Creates the namespace and a veth whose inner end is `eth0` inside it, plugged into `bridge`.
pub(crate) fn create_machine_link(netns: &str, veth: &str, bridge: &str) -> Result<(), Error> {
    for n in [veth] {
        if link_exists(n) {
            return Err(Error::LinkExists {
                name: n.to_string(),
                hint: "a leftover of an earlier machine; remove it with `ip link del`",
            });
        }
    }
    if netns_exists(netns) {
        return Err(Error::LinkExists {
            name: netns.to_string(),
            hint: "a leftover namespace; remove it with `ip netns del`",
        });
    }
    run(&mut cmd("ip", ["netns", "add", netns]))?;
    run(&mut cmd(
        "ip",
        [
            "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", netns,
        ],
    ))?;
    run(&mut cmd(
        "ip",
        ["link", "set", veth, "master", bridge, "up"],
    ))?;
    Ok(())
}

/// (Re)applies the machine's address and default route inside its namespace; idempotent.
pub(crate) fn configure_inside(
    netns: &str,
    ip: Ipv4Addr,
    subnet: Net4,
    gateway: Ipv4Addr,
) -> Result<(), Error> {
    run(&mut cmd("ip", ["-n", netns, "link", "set", "lo", "up"]))?;
    // A load balancer binds addresses it does not hold yet (its VIPs). nspawn keeps the
    // machine's /proc/sys read-only, so the per-namespace setting is made from here.
    run(&mut cmd(
        "ip",
        [
            "netns",
            "exec",
            netns,
            "sh",
            "-c",
            "echo 1 > /proc/sys/net/ipv4/ip_nonlocal_bind",
        ],
    ))?;
    run(&mut cmd(
        "ip",
        [
            "-n",
            netns,
            "addr",
            "replace",
            &format!("{ip}/{}", subnet.prefix),
            "dev",
            "eth0",
        ],
    ))?;
    run(&mut cmd("ip", ["-n", netns, "link", "set", "eth0", "up"]))?;
    run(&mut cmd(
        "ip",
        [
            "-n",
            netns,
            "route",
            "replace",
            "default",
            "via",
            &gateway.to_string(),
        ],
    ))?;
    Ok(())
}

pub(crate) fn delete_netns(name: &str) -> Result<(), Error> {
    if netns_exists(name) {
        run(&mut cmd("ip", ["netns", "del", name]))?;
    }
    Ok(())
}

/// Named namespaces whose name starts with `prefix` (for sweeping leftovers).
pub(crate) fn netns_with_prefix(prefix: &str) -> Vec<String> {
    let Ok(rd) = std::fs::read_dir("/run/netns") else {
        return Vec::new();
    };
    rd.filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with(prefix))
        .collect()
}
