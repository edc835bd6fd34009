#!/usr/bin/env bash
# Fuzzes every parser of untrusted input (fuzz/fuzz_targets/*.rs: orbiter.yml, node-desired
# documents in their three forms, agent reports, etcd observation and step output, apt/dpkg and
# other command output node-agent reads, Orbiter's gather output and repository files, keyrings,
# envelopes, orb configs) with cargo-fuzz/libFuzzer, one target after the other.
#
# Prints one line per target:
#   fuzz_<target>_execs=<n> fuzz_<target>_panics=<0|1> fuzz_<target>_seconds=<s>
# and exits non-zero when a target crashed (panic, timeout, out of memory) or ran fewer
# executions than asked; the input that crashed is kept in fuzz/artifacts/<target>/.
#
# cargo-fuzz needs nightly flags: RUSTC_BOOTSTRAP=1 lets this stable toolchain take them (only
# for this build, in its own target directory). Every run starts from a temporary copy of the
# seeds in fuzz/corpus/<target>/, so what libFuzzer adds never reaches the repository.
#
# Environment: FUZZ_RUNS (default 1000000 executions per target), FUZZ_TARGETS (space
# separated, default all), FUZZ_SANITIZER (none|address, default none: the parsers are safe
# Rust and panics need no sanitizer; address halves the speed), FUZZ_TIMEOUT (seconds one input
# may take, default 30), CARGO_TARGET_DIR (default /work/target-fuzz).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
fuzz="$root/fuzz"
runs="${FUZZ_RUNS:-1000000}"
sanitizer="${FUZZ_SANITIZER:-none}"
timeout="${FUZZ_TIMEOUT:-30}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/work/target-fuzz}"
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz" >&2
    cargo install --locked cargo-fuzz >&2
fi

targets="${FUZZ_TARGETS:-$(cd "$fuzz/fuzz_targets" && ls -1 ./*.rs | sed 's|^\./||; s|\.rs$||' | sort | tr '\n' ' ')}"

echo "building fuzz targets (sanitizer: $sanitizer, target dir: $CARGO_TARGET_DIR)" >&2
(cd "$root" && cargo fuzz build --fuzz-dir "$fuzz" -s "$sanitizer" >&2)
triple="$(rustc -vV | sed -n 's/^host: //p')"
bin_dir="$CARGO_TARGET_DIR/$triple/release"

# The runs' corpora and temp files live in RAM when there is a tmpfs: libFuzzer writes every new
# input, and the orb_config target rewrites a file per execution.
base=/dev/shm
[ -d "$base" ] && [ -w "$base" ] || base="${TMPDIR:-/tmp}"
work="$(mktemp -d "$base/orb-fuzz.XXXXXX")"
trap 'rm -rf "$work"' EXIT

failed=0
total_start=$(date +%s.%N)
for t in $targets; do
    bin="$bin_dir/$t"
    if [ ! -x "$bin" ]; then
        echo "no fuzz target $t ($bin)" >&2
        failed=1
        continue
    fi
    corpus="$work/corpus/$t"
    mkdir -p "$corpus" "$work/tmp/$t" "$fuzz/artifacts/$t"
    if [ -d "$fuzz/corpus/$t" ]; then
        cp "$fuzz/corpus/$t"/seed-* "$corpus"/ 2>/dev/null || true
    fi
    log="$work/$t.log"
    echo "fuzzing $t: $runs executions" >&2
    start=$(date +%s.%N)
    rc=0
    TMPDIR="$work/tmp/$t" "$bin" "$corpus" \
        -runs="$runs" \
        -timeout="$timeout" \
        -rss_limit_mb=2048 \
        -print_final_stats=1 \
        -artifact_prefix="$fuzz/artifacts/$t/" \
        >"$log" 2>&1 || rc=$?
    end=$(date +%s.%N)
    seconds=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }')
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    if [ -z "$execs" ]; then
        # A crash ends the run before the final stats; the last status line has the count.
        execs=$(grep -oE '^#[0-9]+' "$log" | tail -1 | tr -d '#')
    fi
    execs="${execs:-0}"
    panics=0
    if [ "$rc" -ne 0 ] || grep -qE "^==[0-9]+== ERROR: libFuzzer|panicked at|deadly signal" "$log"; then
        panics=1
        failed=1
        echo "---- $t crashed (exit $rc); the end of its log:" >&2
        tail -n 40 "$log" >&2
        echo "---- input kept in $fuzz/artifacts/$t/" >&2
    elif [ "$execs" -lt "$runs" ]; then
        echo "$t ran only $execs of $runs executions" >&2
        failed=1
    fi
    echo "fuzz_${t}_execs=$execs fuzz_${t}_panics=$panics fuzz_${t}_seconds=$seconds"
done
total_end=$(date +%s.%N)
echo "fuzz_total_seconds=$(awk -v a="$total_start" -v b="$total_end" 'BEGIN { printf "%.1f", b - a }')"
# Empty artifact directories are noise; crashes stay.
find "$fuzz/artifacts" -mindepth 1 -type d -empty -delete 2>/dev/null || true
rmdir "$fuzz/artifacts" 2>/dev/null || true
exit "$failed"
