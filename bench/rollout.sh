#!/usr/bin/env bash
# Rollout figures on real machines (root; the Local provider's systemd-nspawn machines):
#   rollout_5_machines_s            a good change over 5 machines in waves of 1, settle 5 s:
#                                   commit → rollout done
#   stop_after_bad_canary_s         commit of a change whose service cannot start → rollout
#                                   stopped, reason committed, canary answering on the old version
#   machines_touched_by_bad_change  machines whose node-desired record ever carried the bad
#                                   change (must be 1: the canary)
# It runs the rollout end-to-end test (crates/orbctl/tests/rollout_e2e.rs), which measures them.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh >&2
cargo build -q -p node-agent --bin node-agent
cargo test -q -p orbctl --test rollout_e2e -- --nocapture 2>/dev/null \
    | grep -E '^(rollout_5_machines_s|stop_after_bad_canary_s|machines_touched_by_bad_change)='
