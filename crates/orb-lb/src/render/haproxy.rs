//! `/etc/haproxy/haproxy.cfg` of a load balancing machine: a TCP frontend per transport of its
//! pool's VIPs, a backend per transport with every machine of its backend pools, and two
//! listeners on loopback: `/ready` for keepalived and the health item, the statistics (CSV)
//! for observation.

use super::{READY_PORT, STATS_PORT, cidr_text, sources};
use crate::input::LbInput;
use orb_model::Id;
use orb_model::kinds::load_balancer::{CheckProtocol, Cidr, Transport, Vip};
use std::fmt::Write as _;

/// Prefix of a transport's frontend and backend names, so no transport name clashes with the
/// loopback listeners (`orb-ready`, `orb-stats`); the observation parser strips it.
pub const FRONTEND_PREFIX: &str = "fe-";
pub const BACKEND_PREFIX: &str = "be-";

/// The whole file for a machine of `pool` (the same on every machine of the pool).
pub fn haproxy_cfg(input: &LbInput, pool: &Id, vips: &[Vip]) -> String {
    let mut c = String::new();
    let _ = writeln!(
        c,
        "# Written by Orbiter from the loadbalancing of provider `{}`, pool `{pool}`; local changes are overwritten.",
        input.provider
    );
    // Logs go to the journal through stdout; `notice` keeps state changes, not connections.
    c.push_str(
        "global
    log stdout format short daemon notice
    stats socket /run/haproxy/admin.sock mode 600 level admin
    user haproxy
    group haproxy

# Long client and server timeouts: TCP clients such as etcd watches idle for minutes.
defaults
    mode tcp
    log global
    option dontlognull
    timeout connect 5s
    timeout client 30m
    timeout server 30m
    timeout check 2s
    # A connection a backend refuses (it died before its checks noticed) is tried again on
    # another backend: a client sees no error while a backend goes down.
    retries 3
    option redispatch 1

",
    );
    let _ = write!(
        c,
        "frontend orb-ready
    mode http
    bind 127.0.0.1:{READY_PORT}
    monitor-uri /ready

listen orb-stats
    mode http
    bind 127.0.0.1:{STATS_PORT}
    stats enable
    stats uri /stats
"
    );
    for vip in vips {
        for t in &vip.transport {
            transport(&mut c, input, vip, t);
        }
    }
    c
}

fn transport(c: &mut String, input: &LbInput, vip: &Vip, t: &Transport) {
    let name = &t.name;
    let _ = write!(
        c,
        "\nfrontend {FRONTEND_PREFIX}{name}\n    bind {}:{}\n",
        vip.ip, t.frontendport
    );
    let allowed = sources(input, t);
    if allowed != [Cidr::ANY] {
        let list: Vec<String> = allowed.iter().map(|c| cidr_text(*c)).collect();
        // Defence in depth: the firewall drops these too, where the machine has one.
        let _ = writeln!(
            c,
            "    tcp-request connection reject unless {{ src {} }}",
            list.join(" ")
        );
    }
    let _ = writeln!(c, "    default_backend {BACKEND_PREFIX}{name}");
    let _ = writeln!(c, "\nbackend {BACKEND_PREFIX}{name}");
    let h = &t.healthchecks;
    let mut check = "check inter 1s fall 2 rise 2".to_owned();
    match h.protocol.value {
        CheckProtocol::Tcp => {}
        CheckProtocol::Http | CheckProtocol::Https => {
            let path = h.path.as_ref().map_or("/", |p| p.value.as_str());
            let _ = writeln!(c, "    option httpchk GET {path}");
            let _ = writeln!(c, "    http-check expect status {}", h.code_or_default());
            if h.protocol.value == CheckProtocol::Https {
                check.push_str(" check-ssl verify none");
            }
        }
    }
    if t.proxyprotocol {
        check.push_str(" send-proxy-v2");
    }
    let mut servers: Vec<_> = t
        .backendpools
        .iter()
        .flat_map(|p| input.pool(&p.value))
        .collect();
    if let Some(only) = input.serving.get(t.name.value.as_str()) {
        servers.retain(|m| only.contains(&m.id));
    }
    servers.sort();
    servers.dedup();
    for m in servers {
        let _ = writeln!(c, "    server {} {}:{} {check}", m.id, m.ip, t.backendport);
    }
}
