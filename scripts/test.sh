#!/usr/bin/env bash
# The whole test suite: system packages, then every crate's tests. Root is needed for the tests
# that boot machines (orb-machines, node-agent, orbctl's Orbiter end-to-end test); they fail,
# not skip, without it.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# Orbiter installs this binary on machines; the end-to-end tests find it next to orbctl.
cargo build -q -p node-agent --bin node-agent
cargo test --workspace --no-fail-fast -- --test-threads="${ORB_TEST_THREADS:-2}"
