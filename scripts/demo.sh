#!/usr/bin/env bash
# The demo: an Orb whose repository is a local bare Git repo and whose machines are Debian
# systems booted on this host by the Local provider. It configures the Orb, commits orbiter.yml
# like a person would, takes off (machines created, node agent installed, node software applied,
# the Orbiter daemon left running on this host), scales a pool by a commit, rolls a change out
# in waves with health gates, puts a VIP with keepalived and HAProxy in front of the pool and
# power-cuts the machine holding it, and tears down.
# Needs root. KEEP=1 leaves everything running (remove it with: orbctl teardown --yes).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build -q -p orbctl -p node-agent
orbctl="$PWD/target/debug/orbctl"
name=${DEMO_NAME:-demo}
work=$(mktemp -d /tmp/orb-demo.XXXXXX)
export ORBCONFIG="$work/orb/config"
cleanup() {
  if [ "${KEEP:-0}" != 1 ]; then
    "$orbctl" teardown --yes >/dev/null 2>&1 || "$orbctl" local down --name "$name" >/dev/null 2>&1 || true
    rm -rf "$work"
  else
    echo "kept: the Orb (ORBCONFIG=$ORBCONFIG), remove it with: orbctl teardown --yes"
  fi
}
trap cleanup EXIT
step() { printf '\n== %s\n' "$*"; }

step "A bare Git repository is the Orb's only source of truth"
git init -q --bare -b main "$work/orb.git"
"$orbctl" configure --repourl "file://$work/orb.git"

step "A person commits orbiter.yml: two Local machines with node software"
git clone -q "$work/orb.git" "$work/checkout"
cat > "$work/checkout/orbiter.yml" <<YAML
kind: Orb
version: v1
providers:
  local:
    kind: LocalProvider
    version: v1
    spec:
      group: $name
      pools:
        web:
          nodes: 2
software:
  base:
    kind: NodeSoftware
    version: v1
    spec:
      pools: [local.web]
      items:
        - package: {name: hello, version: 2.10-3}
        - file: {path: /etc/motd, content: "This machine is managed by Orbiter.\n"}
        - file: {path: /etc/demo-token, secret: token, mode: "0600"}
        - unit: {name: hello-loop.service, content: "[Unit]\nDescription=says hello\n[Service]\nExecStart=/bin/sh -c 'while true; do /usr/bin/hello; sleep 60; done'\n[Install]\nWantedBy=multi-user.target\n", enabled: true, active: true}
        - file:
            path: /usr/local/bin/whoami-http
            mode: "0755"
            content: |
              #!/usr/bin/perl
              use IO::Socket::INET;
              \$SIG{PIPE} = 'IGNORE';
              my \$name = \`hostname\`; chomp \$name;
              my \$s = IO::Socket::INET->new(LocalPort => 8080, Listen => 64, ReuseAddr => 1) or die "listen: \$!\n";
              while (my \$c = \$s->accept) { my \$r = <\$c>; print \$c "HTTP/1.0 200 OK\r\n\r\nhello from \$name\n"; close \$c; }
        - unit: {name: whoami-http.service, content: "[Unit]\nDescription=answers its hostname on port 8080\n[Service]\nExecStart=/usr/local/bin/whoami-http\n[Install]\nWantedBy=multi-user.target\n", enabled: true, active: true, restart_on: [/usr/local/bin/whoami-http]}
        - health: {name: whoami, http: "http://127.0.0.1:8080/", expect: 200, timeout: 2s}
YAML
git -C "$work/checkout" add orbiter.yml
git -C "$work/checkout" -c user.name=Demo -c user.email=demo@example.test commit -q -m "Two web machines"
git -C "$work/checkout" push -q origin HEAD:main
"$orbctl" validate

step "A secret for the machines: sealed in orbiter.yml, written to them over SSH, never to Git"
token="demo-token-$(date +%s%N)"
printf '%s\n' "$token" | "$orbctl" writesecret base.token --stdin
"$orbctl" secrets list

step "orbctl plan: what Orbiter would do"
"$orbctl" plan

step "orbctl takeoff: converge, then hand over to the Orbiter daemon on this host"
"$orbctl" takeoff --interval 2 --listen 127.0.0.1:9187

step "The machines, as Orbiter committed them"
"$orbctl" node list
"$orbctl" node exec local.web-1 -- 'cat /etc/motd; hello; systemctl is-active hello-loop.service'
"$orbctl" plan

step "Scale by a commit: nodes 2 -> 3 (the daemon does the rest)"
"$orbctl" file patch orbiter.yml providers.local.spec.pools.web.nodes --value 3
for _ in $(seq 1 120); do
  n=$("$orbctl" node list -o json | python3 -c 'import json,sys; print(sum(1 for m in json.load(sys.stdin).values() if m["state"] == "ready"))')
  [ "$n" = 3 ] && break
  sleep 2
done
"$orbctl" node list
python3 -c 'import urllib.request; print(urllib.request.urlopen("http://127.0.0.1:9187/metrics").read().decode())' | grep -E '^orbiter_(machines|commits)' || true

step "A change rolls out in waves: one canary, then one machine at a time, each healthy for 5 s"
git -C "$work/checkout" pull -q origin main
sed -i 's/This machine is managed by Orbiter./This machine is managed by Orbiter (rolled out in waves)./' "$work/checkout/orbiter.yml"
cat >> "$work/checkout/orbiter.yml" <<YAML
rollout:
  default:
    canary: 1
    maxunavailable: "1"
    settle: 5s
YAML
git -C "$work/checkout" -c user.name=Demo -c user.email=demo@example.test commit -q -am "A new motd, in waves"
git -C "$work/checkout" push -q origin HEAD:main
revision() { "$orbctl" rollout status local.web -o json 2>/dev/null | python3 -c 'import json,sys; r=json.load(sys.stdin)[0]; print(r["state"], r["revision"])' || echo "none none"; }
before=$(revision)
for _ in $(seq 1 120); do
  sleep 2
  st=$(revision)
  [ "${st%% *}" = done ] && [ "${st#* }" != "${before#* }" ] && break
done
"$orbctl" rollout status local.web
"$orbctl" node exec local.web-3 -- 'cat /etc/motd'

step "A load balancer by a commit: a VIP held by keepalived on two new machines, HAProxy in front of the web pool"
git -C "$work/checkout" pull -q origin main
web1=$("$orbctl" node list -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)["local.web-1"]["ip"])')
vip="${web1%.*}.200"
lb="    loadbalancing:
      kind: DynamicLoadBalancer
      version: v2
      spec:
        lb:
          - ip: $vip
            transport:
              - name: web
                frontendport: 80
                backendport: 8080
                backendpools: [web]
                healthchecks: {protocol: http, path: /, code: 200}
"
# Pool lb beside web, loadbalancing at the end of the provider (before the next top-level key).
awk -v lb="$lb" '
  /^providers:/ { inprov = 1; print; next }
  inprov && /^[^ #]/ { printf "%s", lb; inprov = 0 }
  { print }
  inprov && /^      pools:$/ { print "        lb:\n          nodes: 2" }
  END { if (inprov) printf "%s", lb }
' "$work/checkout/orbiter.yml" > "$work/orbiter.yml.new"
mv "$work/orbiter.yml.new" "$work/checkout/orbiter.yml"
"$orbctl" validate "$work/checkout/orbiter.yml"
git -C "$work/checkout" -c user.name=Demo -c user.email=demo@example.test commit -q -am "A VIP in front of the web pool"
git -C "$work/checkout" push -q origin HEAD:main
for _ in $(seq 1 150); do
  curl -s -m 1 "http://$vip/" >/dev/null 2>&1 && break
  sleep 2
done
for _ in 1 2 3; do curl -s -m 1 "http://$vip/"; done
holder_of_vip() { "$orbctl" lb status -o json 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["vips"][0].get("holder", ""))' 2>/dev/null || true; }
# Both machines configured (one at a time) and every machine ready, then a holder.
lb_done() {
  "$orbctl" lb status -o json 2>/dev/null | python3 -c 'import json,sys; r=json.load(sys.stdin)[0]; sys.exit(0 if len(r.get("configured", {})) == 2 and r["vips"][0].get("holder") else 1)' 2>/dev/null &&
    "$orbctl" node list -o json | python3 -c 'import json,sys; sys.exit(0 if all(m["state"] == "ready" for m in json.load(sys.stdin).values()) else 1)'
}
for _ in $(seq 1 90); do lb_done && break; sleep 2; done
sleep 3
"$orbctl" lb status
holder=$(holder_of_vip)
echo "power cut of $holder, the VIP's holder:"
"$orbctl" local power-cut --name "$name" "$holder"
start=$(date +%s%N)
until curl -s -m 1 "http://$vip/" >/dev/null 2>&1; do sleep 0.1; done
echo "the VIP answered again after $(( ($(date +%s%N) - start) / 1000000 )) ms: $(curl -s -m 1 "http://$vip/")"

step "The secret is on the machines (0600), and nowhere in the repository's history"
"$orbctl" node exec local.web-1 -- 'sudo stat -c "%a %U %n" /etc/demo-token; sudo cat /etc/demo-token'
if git --git-dir "$work/orb.git" log -p --all | grep -qF "$token"; then
  echo "the secret is in the repository's history" >&2
  exit 1
fi
echo "git log -p --all: no trace of the secret (the records hold a keyed digest)"

step "The Orb repository's history: every change is a commit"
git --git-dir "$work/orb.git" log -20 --format='%h %an: %s' main

step "Teardown"
"$orbctl" teardown --yes
