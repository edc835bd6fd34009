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
# It runs the load balancer end-to-end test (crates/orbctl/tests/lb_e2e.rs), which measures them.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh >&2
cargo build -q -p node-agent --bin node-agent
cargo test -q -p orbctl --test lb_e2e -- --nocapture 2>/dev/null \
    | grep -E '^(lb_up_s|vip_failover_ms|failed_requests_failover|backend_removed_ms|failed_requests_backend_down|transport_change_s|transport_change_failed_requests|whitelist_blocked)='
