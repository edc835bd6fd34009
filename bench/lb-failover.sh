#!/usr/bin/env bash
# Load balancer figures on real machines (root; the Local provider's systemd-nspawn machines):
# 2 load balancing machines (keepalived + HAProxy), 3 backends running a small HTTP service,
# this host as the client sending one request after another through the VIP all the time.
#   lb_up_s                           commit of the loadbalancing → first answer through the VIP
#   vip_failover_ms                   VIP holder power-cut → first successful request through
#                                     the other machine (goal ≤ 3000)
#   failed_requests_failover          requests that failed meanwhile (300 ms connect deadline,
#                                     50 ms between requests)
#   backend_removed_ms                a backend's service stopped → HAProxy has it DOWN (no
#                                     request is sent to it any more)
#   failed_requests_backend_down      requests that failed meanwhile (HAProxy retries a refused
#                                     connection on another backend)
#   transport_change_s                commit of a backend port change → both machines on it
#   transport_change_failed_requests  requests that failed meanwhile (goal 0)
#   whitelist_blocked                 a source outside the whitelist got no connection
# and for an etcd cluster whose client endpoint is a VIP (3 members, a client writing through
# the VIP while the VIP holder is power-cut and a member's machine replaced):
#   etcd_vip_acked_writes, etcd_vip_failed_writes, etcd_vip_lost_acked_writes (goal 0),
#   etcd_vip_longest_gap_ms           the longest time between two acknowledged writes
# It runs the end-to-end tests crates/orbctl/tests/lb_e2e.rs and etcd_vip_e2e.rs, which
# measure them.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh >&2
cargo build -q -p node-agent --bin node-agent
cargo test -q -p orbctl --test lb_e2e -- --nocapture 2>/dev/null \
    | grep -E '^(lb_up_s|vip_failover_ms|failed_requests_failover|backend_removed_ms|failed_requests_backend_down|transport_change_s|transport_change_failed_requests|whitelist_blocked)='
cargo test -q -p orbctl --test etcd_vip_e2e -- --nocapture 2>/dev/null \
    | grep -E '^etcd_vip_'
