//! `/etc/keepalived/keepalived.conf` of a load balancing machine, and the script keepalived
//! tracks its proxy with.
//!
//! Every machine starts as `BACKUP` with `nopreempt` and a priority by its place in the pool
//! (first highest), unlike orbos's MASTER/BACKUP: the first machine wins the first election,
//! but a machine that comes back does not take its VIPs back from the one that covered for it,
//! so a recovery costs no second interruption (and a flapping machine cannot make the VIP flap).
//!
//! Advertisements are unicast to the pool's other machines, so no multicast is needed and
//! VIPs of other pools never hear each other. They carry VRRP's `PASS` authentication, at most
//! 8 characters in clear text on the wire: it keeps a misconfigured neighbour from joining by
//! accident, not an attacker on the network from taking a VIP. The file is a secret anyway.

use super::{READY_PORT, READY_SCRIPT};
use crate::input::{LbInput, LbMachine};
use orb_model::kinds::load_balancer::{Vip, virtual_router_id};
use std::fmt::Write as _;

/// Healthy when HAProxy answers `/ready` on loopback. bash's `/dev/tcp` because the machines
/// have neither curl nor socat; keepalived's `timeout` bounds it, `read -t` too.
pub fn ready_script() -> String {
    format!(
        "#!/bin/bash
# Written by Orbiter: keepalived's check of the local HAProxy (exit 0 = ready).
exec 3<>/dev/tcp/127.0.0.1/{READY_PORT} || exit 1
printf 'GET /ready HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n' >&3
IFS= read -r -t 2 status <&3 || exit 1
case \"$status\" in
\"HTTP/1.\"?\" 200\"*) exit 0 ;;
esac
exit 1
"
    )
}

/// The VRRP priority of the machine at `index` (0 = first): distinct, so the first election
/// is decided, and below 255 (reserved for an address's owner). High, because a backup waits
/// `3 × advert_int + (256 − priority) / 256 s` for a silent master: at 253 the skew is 12 ms,
/// so the VIP moves 2–3 s after its holder dies.
pub fn priority(index: usize) -> u8 {
    u8::try_from(254usize.saturating_sub(index)).map_or(1, |p| p.max(1))
}

/// The file for `me`, the machine at `index` of its pool `machines` (sorted).
pub fn keepalived_conf(
    input: &LbInput,
    vips: &[Vip],
    machines: &[&LbMachine],
    index: usize,
    auth_pass: &str,
) -> String {
    let me = machines[index];
    let mut c = format!(
        "# Written by Orbiter from the loadbalancing of provider `{}`; local changes are overwritten.
global_defs {{
    enable_script_security
    script_user root
}}

vrrp_script chk_proxy {{
    script \"{READY_SCRIPT}\"
    interval 1
    timeout 2
    fall 2
    rise 2
}}
",
        input.provider
    );
    let mut peers: Vec<String> = machines
        .iter()
        .filter(|m| m.id != me.id)
        .map(|m| m.ip.to_string())
        .collect();
    if peers.is_empty() {
        // keepalived falls back to multicast on an empty list (a pool of one machine);
        // loopback keeps it unicast, and nothing leaves the machine.
        peers.push("127.0.0.1".to_owned());
    }
    let iface = input.interface_of(&me.id);
    for vip in vips {
        let ip = vip.ip.value;
        let Some(vrid) = virtual_router_id(ip) else {
            continue;
        };
        let _ = write!(
            c,
            "
vrrp_instance vip_{name} {{
    state BACKUP
    nopreempt
    interface {iface}
    virtual_router_id {vrid}
    priority {prio}
    advert_int 1
    unicast_src_ip {src}
    unicast_peer {{
{peers}    }}
    authentication {{
        auth_type PASS
        auth_pass {auth_pass}
    }}
    track_script {{
        chk_proxy
    }}
    virtual_ipaddress {{
        {ip}/{prefix} dev {iface}
    }}
}}
",
            name = ip.to_string().replace('.', "_"),
            prio = priority(index),
            src = me.ip,
            peers = peers
                .iter()
                .map(|p| format!("        {p}\n"))
                .collect::<String>(),
            prefix = input.vip_prefix,
        );
    }
    c
}
