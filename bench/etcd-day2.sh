#!/usr/bin/env bash
# etcd day-two operations on real machines, with a client writing throughout: an Orb with a
# Local provider (pool `etcd` for the members, pool `client` for the load machine) and an
# EtcdCluster driven only by commits to orbiter.yml. Per operation prints
#   op=<name> duration_s=… failed_writes=… max_unavailable_ms=… lost_acked_writes=…
# (the writer's figures of the operation's window; bootstrap has no cluster to write to yet,
# its writer figures read n/a). Needs root. PROFILE=debug uses the debug build.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "bench/etcd-day2.sh needs root (it boots machines)" >&2; exit 1; }
profile=${PROFILE:-release}
flag=$([ "$profile" = release ] && echo --release || true)
cargo build -q $flag -p orbctl -p node-agent -p orb-etcd --bin orbctl --bin node-agent --bin etcd-load
name="day2$$"
work=$(mktemp -d /tmp/orb-etcd-day2.XXXXXX)
# A copy: a rebuild during the run must not pull the binaries from under the daemon.
bin="$work/bin"
mkdir "$bin"
cp "target/$profile/orbctl" "target/$profile/node-agent" "target/$profile/etcd-load" "$bin/"
orbctl="$bin/orbctl"
export ORBCONFIG="$work/orb/config"
cleanup() {
  if [ "${KEEP:-0}" = 1 ]; then echo "kept: ORBCONFIG=$ORBCONFIG" >&2; return; fi
  "$orbctl" teardown --yes >/dev/null 2>&1 || "$orbctl" local down --name "$name" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
log() { printf '%s %s\n' "$(date +%T)" "$*" >&2; }
since() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }

git init -q --bare -b main "$work/orb.git"
"$orbctl" configure --repourl "file://$work/orb.git" >/dev/null
git clone -q "$work/orb.git" "$work/w"
cat > "$work/w/orbiter.yml" <<YAML
kind: Orb
version: v1
providers:
  loc:
    kind: LocalProvider
    version: v1
    spec:
      group: $name
      pools:
        etcd:
          nodes: 3
        client:
          nodes: 1
clusters:
  kv:
    kind: EtcdCluster
    version: v1
    spec:
      provider: loc
      pool: etcd
      nodes: 3
      version: 3.4.23
      backup:
        every: 1h
        keep: 3
        target: loc.client-1
software:
  load:
    kind: NodeSoftware
    version: v1
    spec:
      pools: [loc.client]
      items:
        - package: {name: etcd-client, version: 3.4.23-4+b4}
YAML
git -C "$work/w" add orbiter.yml
git -C "$work/w" -c user.name=Bench -c user.email=bench@example.test commit -q -m "etcd cluster kv"
git -C "$work/w" push -q origin HEAD:main

record() { "$orbctl" file print orbiter/clusters/kv/current.yml 2>/dev/null || true; }
# n voting members, all healthy, all on version $2 (if given), and Orbiter waits for nothing.
settled() {
  local r plan
  r=$(record)
  [ "$(grep -c '^  state: member$' <<<"$r")" = "$1" ] || return 1
  [ "$(grep -c '^  healthy: true$' <<<"$r")" = "$1" ] || return 1
  [ -z "${2:-}" ] || [ "$(grep -cE "^  version: \"?$2\"?\$" <<<"$r")" = "$1" ] || return 1
  plan=$("$orbctl" plan -o json 2>/dev/null) || return 1
  python3 -c 'import json,sys; p=json.load(sys.stdin); sys.exit(0 if not p["steps"] and not p["waiting"] else 1)' <<<"$plan"
}
wait_settled() {
  local start=$SECONDS
  until settled "$@"; do
    if (( SECONDS - start > ${TIMEOUT:-900} )); then
      log "not settled after ${TIMEOUT:-900}s:"; record >&2; "$orbctl" plan >&2 || true; exit 1
    fi
    sleep 2
  done
}
patch() { "$orbctl" file patch orbiter.yml "$1" --value "$2" >/dev/null; }
on_client() { printf '%s\n' "$1" | "$orbctl" node exec loc.client-1 -- sudo sh -s; }
endpoints() { record | sed -n 's/^- \(https:.*\)$/\1/p' | paste -sd, -; }

# Bootstrap through takeoff; the Orbiter daemon keeps running on this host afterwards.
t0=$(date +%s.%N)
"$orbctl" takeoff --interval 1 --listen "127.0.0.1:$((20000 + $$ % 20000))" >"$work/takeoff.log" 2>&1 \
  || { cat "$work/takeoff.log" >&2; exit 1; }
wait_settled 3
echo "op=bootstrap duration_s=$(since "$t0") failed_writes=n/a max_unavailable_ms=n/a lost_acked_writes=n/a"

# The load machine gets the client certificate the way a person would: orbctl readsecret.
ca=$("$orbctl" readsecret kv.ca); crt=$("$orbctl" readsecret kv.clientcert); key=$("$orbctl" readsecret kv.clientkey)
on_client "mkdir -p -m 0700 /etc/orb-etcd-load && cd /etc/orb-etcd-load && printf '%s\n' '$ca' > ca.crt && printf '%s\n' '$crt' > client.crt && (umask 077; printf '%s\n' '$key' > client.key)"

# Runs "$@" (the operation) with the writer on, then prints the operation's line.
op() {
  local opname=$1; shift
  local prefix="day2/$opname"
  on_client "$("$bin/etcd-load" start --endpoints "$(endpoints)" --prefix "$prefix")"
  sleep 2
  local t0; t0=$(date +%s.%N)
  log "op $opname"
  "$@"
  local dur; dur=$(since "$t0")
  sleep 2
  on_client "$("$bin/etcd-load" stop)" > "$work/$opname.log"
  on_client "$("$bin/etcd-load" read-back --endpoints "$(endpoints)" --prefix "$prefix")" > "$work/$opname.keys"
  echo "op=$opname duration_s=$dur $("$bin/etcd-load" check --log "$work/$opname.log" --keys "$work/$opname.keys" --prefix "$prefix")"
}

scale_out() { patch providers.loc.spec.pools.etcd.nodes 5; patch clusters.kv.spec.nodes 5; wait_settled 5; }
scale_in() { patch clusters.kv.spec.nodes 3; patch providers.loc.spec.pools.etcd.nodes 3; wait_settled 3
  until [ "$("$orbctl" local list --name "$name" -o json | grep -c '"name": "etcd-')" = 3 ]; do sleep 1; done; }
upgrade() { patch clusters.kv.spec.version 3.5.16; wait_settled 3 3.5.16; }
power_cut() {
  local victim
  victim=$(record | sed -n 's/^- name: loc\.\(etcd-[0-9]*\)$/\1/p' | sed -n 2p)
  log "power cut: $victim"
  "$orbctl" local power-cut --name "$name" "$victim"
  sleep 5
  wait_settled 3 3.5.16
  ! record | grep -q "name: loc.$victim\$" || { log "$victim is still a member"; exit 1; }
}

backup_drill() {
  local before after
  before=$(record | sed -n 's/^  at: //p')
  patch clusters.kv.spec.backup.every 20s
  until after=$(record | sed -n 's/^  at: //p'); [ -n "$after" ] && [ "$after" != "$before" ]; do sleep 2; done
  patch clusters.kv.spec.backup.every 1h
  "$orbctl" cluster restore-drill kv | tee "$work/drill.txt" >&2
  grep -q '^result: *restorable' "$work/drill.txt"
  [ "$(sed -n 's/^keys served: *//p' "$work/drill.txt")" -gt 0 ]
}

op scale-out-3-5 scale_out
op scale-in-5-3 scale_in
op upgrade-3.4-3.5 upgrade
op power-cut-replace power_cut
op backup-restore-drill backup_drill

t0=$(date +%s.%N)
"$orbctl" teardown --yes >/dev/null 2>&1
echo "op=teardown duration_s=$(since "$t0") failed_writes=n/a max_unavailable_ms=n/a lost_acked_writes=n/a"
