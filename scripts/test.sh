#!/usr/bin/env bash
# The whole test suite: system packages, then every crate's tests. Root is needed for the tests
# that boot machines (orb-machines, node-agent); they fail, not skip, without it.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo test --workspace --no-fail-fast -- --test-threads="${ORB_TEST_THREADS:-2}"
