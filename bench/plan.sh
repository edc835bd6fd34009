#!/usr/bin/env bash
# Plan latency with simulated providers (1k and 10k machines), median of 5, release build.
# Prints plan_1k_ms= and plan_10k_ms= (targets: <= 100 and <= 1000).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo bench -q -p orbiter --bench plan 2>/dev/null | grep -E '^plan_'
