#!/bin/sh
# Benchmarks for orb-machines (needs root). Prints, one per line:
#   rootfs_build_s=   seconds to debootstrap + customise the base image (into a throwaway cache)
#   machine_boot_s=   median of 3: `orb-machines up --machines 1` until systemd is running and sshd answers
#   machine_rss_mib=  resident memory of one idle machine (all processes in its namespace)
set -eu
cd "$(dirname "$0")/.."
cargo build -q -p orb-machines
BIN=$PWD/target/debug/orb-machines
WORK=$(mktemp -d)
GROUP=bench-$$
cleanup() {
    "$BIN" down --name "$GROUP" >/dev/null 2>&1 || true
    rm -rf --one-file-system "$WORK"
}
trap cleanup EXIT INT TERM

now() { date +%s.%N; }
secs() { echo "$1 $2" | awk '{printf "%.1f", $2 - $1}'; }

# Build time is measured in a fresh cache so the shared one stays intact.
t0=$(now)
"$BIN" base-image --cache-dir "$WORK/cache" >/dev/null
echo "rootfs_build_s=$(secs "$t0" "$(now)")"
rm -rf --one-file-system "$WORK/cache"

# Boots use the shared cache (built here if missing, not timed).
"$BIN" base-image >/dev/null
ssh-keygen -q -t ed25519 -N '' -f "$WORK/key"
times=""
for i in 1 2 3; do
    t0=$(now)
    "$BIN" up --name "$GROUP" --machines 1 --pubkey "$WORK/key.pub" >/dev/null
    times="$times $(secs "$t0" "$(now)")"
    if [ "$i" -lt 3 ]; then "$BIN" down --name "$GROUP" >/dev/null; fi
done
echo "machine_boot_s=$(echo $times | tr ' ' '\n' | sort -n | sed -n 2p)"

# Let the machine settle, then add up VmRSS of every process in its PID namespace.
sleep 10
NSPAWN=""
for p in $(pgrep -f "groups/$GROUP/machines/m1/"); do
    if [ "$(cat /proc/"$p"/comm 2>/dev/null)" = systemd-nspawn ]; then NSPAWN=$p; fi
done
INIT=$(pgrep -P "$NSPAWN" | head -1)
PIDNS=$(readlink /proc/"$INIT"/ns/pid)
rss_kib=0
for d in /proc/[0-9]*; do
    if [ "$(readlink "$d"/ns/pid 2>/dev/null)" = "$PIDNS" ]; then
        kib=$(awk '/^VmRSS:/ {print $2}' "$d"/status 2>/dev/null || true)
        rss_kib=$((rss_kib + ${kib:-0}))
    fi
done
echo "machine_rss_mib=$(echo "$rss_kib" | awk '{printf "%.1f", $1 / 1024}')"
