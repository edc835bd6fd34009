#!/usr/bin/env bash
# Mission Control's server time over a real repository whose orbiter/current.yml records
# 10,000 machines (this host, loopback; debug build unless PROFILE=release):
#   first_view_10k_ms       first request after a commit: fetch, parse, render
#   overview_ms             the overview, warm (median of 21)
#   machines_page_10k_ms    page 50 of the machines list, warm (goal ≤ 300)
#   machines_search_10k_ms  a search over the 10,000, warm
set -euo pipefail
cd "$(dirname "$0")/.."
profile=()
[ "${PROFILE:-}" = release ] && profile=(--release)
cargo test -q "${profile[@]}" -p mission-control --test bench -- --ignored --nocapture 2>/dev/null \
    | grep -E '^[a-z_0-9]+_ms='
