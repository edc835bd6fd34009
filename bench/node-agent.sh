#!/usr/bin/env bash
# node-agent benchmark. Prints, one per line:
#   rss_idle_kib=     VmRSS of the idle agent after its first pass
#   rss_apply_kib=    VmHWM (peak RSS) after 20 applies
#   cpu_idle_percent= CPU used while idle over 60 s (one drift pass included, interval 60 s)
#   apply_latency_ms= median of 20: desired file renamed into place -> current state written
# Targets: <= 8192 KiB idle, <= 20480 KiB applying, <= 0.1 % idle CPU, <= 1000 ms.
#
# Modes (MODE=auto|machine|host, default auto; the mode used is printed on stderr):
#  machine: as root with systemd-nspawn, the release agent is installed by its install script
#           on a real orb-machines Debian machine with a realistic desired state (held package,
#           its config and unit, 20 files, a unit, sysctl, host name, sshd, firewall); one file
#           changes per apply; CPU counts the agent and the commands it ran (utime+stime+
#           cutime+cstime).
#  host:    the release agent on this host against a temporary root (--root) with a files-only
#           desired state (1 directory + 50 files of 1 KiB); CPU is the agent process's.
# Needs bash, awk, coreutils (+ root and the orb-machines tools for machine mode).
set -euo pipefail
cd "$(dirname "$0")/.."
IDLE_SECONDS=${IDLE_SECONDS:-60}
export IDLE_SECONDS
MODE=${MODE:-auto}
METRICS='^(rss_idle_kib|rss_apply_kib|cpu_idle_percent|apply_latency_ms)='

if [ "$MODE" != host ] && [ "$(id -u)" = 0 ] && command -v systemd-nspawn >/dev/null 2>&1; then
  log=$(mktemp /tmp/node-agent-bench-machine.XXXXXX)
  if out=$(cargo test --release -q -p node-agent --test bench_machine -- --ignored --nocapture 2>"$log"); then
    echo "mode=machine" >&2
    grep -E "$METRICS" <<<"$out"
    rm -f "$log"
    exit 0
  fi
  if [ "$MODE" = machine ]; then echo "machine benchmark failed, see $log" >&2; exit 1; fi
  echo "machine benchmark failed (see $log); measuring in host mode instead" >&2
fi
echo "mode=host (temporary root, files only)" >&2
cargo build --release -q -p node-agent
BIN=$PWD/target/release/node-agent

T=$(mktemp -d /tmp/node-agent-bench.XXXXXX)
PID=""
cleanup() {
  if [ -n "$PID" ]; then kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; fi
  rm -rf "$T"
}
trap cleanup EXIT

mkdir -p "$T/root/etc" "$T/desired" "$T/state"
printf 'root:x:0:0::/root:/bin/sh\n' > "$T/root/etc/passwd"
printf 'root:x:0:\n' > "$T/root/etc/group"
FILLER=$(head -c 1024 /dev/zero | tr '\0' 'x')

write_desired() { # generation, content of the changing file
  local gen=$1 changing=$2 i f="$T/desired/.desired.yml.new"
  {
    printf 'kind: NodeDesired\nversion: v1\ngeneration: %s\nchangesallowed: true\nitems:\n' "$gen"
    printf '  - directory: {path: /srv/bench}\n'
    printf '  - file: {path: /srv/bench/changing.conf, content: "%s"}\n' "$changing"
    for i in $(seq 1 49); do
      printf '  - file: {path: /srv/bench/f%02d.conf, content: "%s", mode: "0640"}\n' "$i" "$FILLER"
    done
  } > "$f"
  mv -f "$f" "$T/desired/desired.yml"
}

wait_generation() { # generation; polls the current state
  local gen=$1 n=0
  until grep -q "^generation: $gen\$" "$T/state/current.yml" 2>/dev/null; do
    n=$((n + 1))
    if [ $n -gt 20000 ]; then echo "timeout waiting for generation $gen" >&2; exit 1; fi
    sleep 0.001
  done
}

now_ns() { date +%s%N; }
status_kib() { awk -v k="$1:" '$1 == k { print $2 }' "/proc/$PID/status"; }
cpu_ticks() { awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$PID/stat"; }

write_desired 1 "start"
"$BIN" run --root "$T/root" --desired "$T/desired/desired.yml" --current "$T/state/current.yml" \
  --drift-interval 60s 2>"$T/agent.log" &
PID=$!
wait_generation 1
sleep 2
echo "rss_idle_kib=$(status_kib VmRSS)"

HZ=$(getconf CLK_TCK)
t0=$(cpu_ticks)
sleep "$IDLE_SECONDS"
t1=$(cpu_ticks)
awk -v d=$((t1 - t0)) -v hz="$HZ" -v s="$IDLE_SECONDS" 'BEGIN { printf "cpu_idle_percent=%.3f\n", d / hz / s * 100 }'

LAT=()
for i in $(seq 2 21); do
  start=$(now_ns)
  write_desired "$i" "change $i"
  wait_generation "$i"
  end=$(now_ns)
  LAT+=($(( (end - start) / 1000000 )))
  sleep 0.05
done
echo "rss_apply_kib=$(status_kib VmHWM)"
printf '%s\n' "${LAT[@]}" | sort -n | awk '{ a[NR] = $1 } END { m = (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2; print "apply_latency_ms=" m }'
grep -q 'changing.conf' "$T/state/current.yml" || { echo "current state lacks the items" >&2; exit 1; }
