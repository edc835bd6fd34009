#!/usr/bin/env bash
# Propagation latency: a person's commit to the Orb repository → all 5 machines applied it →
# Orbiter committed their current state. 20 changes against an Orbiter daemon (release build,
# 1 s interval) over 5 Local machines; prints p50_ms=, p99_ms= (targets <= 5000 and <= 15000)
# and orbiter_rss_mib= (peak resident memory of the daemon during the run). Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "bench/propagation.sh needs root (it boots machines)" >&2; exit 1; }
CHANGES=${CHANGES:-20}
cargo build -q --release -p orbctl -p node-agent
orbctl="$PWD/target/release/orbctl"
name="prop$$"
work=$(mktemp -d /tmp/orb-propagation.XXXXXX)
export ORBCONFIG="$work/orb/config"
cleanup() {
  "$orbctl" teardown --yes >/dev/null 2>&1 || "$orbctl" local down --name "$name" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

git init -q --bare -b main "$work/orb.git"
"$orbctl" configure --repourl "file://$work/orb.git" >/dev/null
git clone -q "$work/orb.git" "$work/w"
orb_yml() {
  cat <<YAML
kind: Orb
version: v1
providers:
  local:
    kind: LocalProvider
    version: v1
    spec:
      group: $name
      pools:
        bench:
          nodes: 5
software:
  base:
    kind: NodeSoftware
    version: v1
    spec:
      pools: [local.bench]
      items:
        - file: {path: /etc/propagation, content: "change $1\n"}
YAML
}
commit() {
  git -C "$work/w" pull -q --rebase origin main 2>/dev/null || true
  orb_yml "$1" > "$work/w/orbiter.yml"
  git -C "$work/w" add orbiter.yml
  git -C "$work/w" -c user.name=Bench -c user.email=bench@example.test commit -q -m "change $1"
  git -C "$work/w" push -q origin HEAD:main
}
commit 0
"$orbctl" takeoff --interval 1 --listen "127.0.0.1:$((20000 + $$ % 20000))" >"$work/takeoff.log" 2>&1 \
  || { cat "$work/takeoff.log" >&2; exit 1; }
pid=$(cat "$work/orb/"orbiter-*.pid)

# All five machines report generation $1 in sync, as committed by Orbiter.
converged() {
  local cur
  cur=$(git --git-dir "$work/orb.git" show main:orbiter/current.yml 2>/dev/null) || return 1
  [ "$(grep -c "generation: $1\$" <<<"$cur")" = 5 ] && [ "$(grep -c 'state: ready' <<<"$cur")" = 5 ]
}
lat=()
peak=0
for i in $(seq 1 "$CHANGES"); do
  commit "$i"
  start=$(date +%s%N)
  until converged $((i + 1)); do
    sleep 0.02
    now=$(date +%s%N)
    if (( (now - start) / 1000000 > 120000 )); then
      echo "change $i did not propagate within 120 s" >&2; exit 1
    fi
  done
  lat+=($(( ($(date +%s%N) - start) / 1000000 )))
  rss=$(awk '/^VmHWM/ {print $2}' "/proc/$pid/status")
  (( rss > peak )) && peak=$rss
done
sorted=($(printf '%s\n' "${lat[@]}" | sort -n))
n=${#sorted[@]}
p50=${sorted[$(( (n * 50 + 99) / 100 - 1 ))]}
p99=${sorted[$(( (n * 99 + 99) / 100 - 1 ))]}
echo "changes=$n latencies_ms=${lat[*]}"
echo "p50_ms=$p50"
echo "p99_ms=$p99"
awk -v k="$peak" 'BEGIN { printf "orbiter_rss_mib=%.1f\n", k / 1024 }'
