#!/usr/bin/env bash
# The demo: an Orb whose repository is a local bare Git repo, describing Debian machines that run
# on this host (systemd-nspawn, one network namespace each). It configures the Orb, commits its
# orbiter.yml like a person would, stores the machines' SSH key as an encrypted secret, reads it
# back and uses it to log in, and shows the repository's history. Needs root.
# KEEP=1 leaves the machines running (remove them with: orbctl local down --name demo).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build -q -p orbctl
orbctl="$PWD/target/debug/orbctl"
name=${DEMO_NAME:-demo}
work=$(mktemp -d /tmp/orb-demo.XXXXXX)
export ORBCONFIG="$work/orb/config"
cleanup() {
  if [ "${KEEP:-0}" != 1 ]; then
    "$orbctl" local down --name "$name" >/dev/null 2>&1 || true
    rm -rf "$work"
  else
    echo "kept: machines of group $name, work dir $work"
  fi
}
trap cleanup EXIT
step() { printf '\n== %s\n' "$*"; }

step "A bare Git repository is the Orb's only source of truth"
git init -q --bare -b main "$work/orb.git"
ssh-keygen -q -t ed25519 -N '' -C orb-demo-bootstrap -f "$work/bootstrap"

step "Two Debian machines on this host (orbctl local up)"
"$orbctl" local up --name "$name" --machines 2 --pubkey "$work/bootstrap.pub"
"$orbctl" local list --name "$name"

step "orbctl configure: generated masterkey, read/write check, keyring committed"
"$orbctl" configure --repourl "file://$work/orb.git"
ls -l "$ORBCONFIG"

step "A person commits orbiter.yml with plain git: a StaticProvider over those machines"
git clone -q "$work/orb.git" "$work/checkout"
{
  printf 'kind: Orb\nversion: v1\nproviders:\n  lab:\n    kind: StaticProvider\n    version: v1\n    spec:\n      pools:\n        machines:\n'
  "$orbctl" local list --name "$name" -o json | python3 -c '
import json, sys
for m in json.load(sys.stdin):
    print("          - id: %s\n            hostname: %s\n            ip: %s" % (m["name"], m["hostname"], m["ip"]))'
} > "$work/checkout/orbiter.yml"
git -C "$work/checkout" add orbiter.yml
git -C "$work/checkout" -c user.name=Demo -c user.email=demo@example.test commit -q -m "Describe the lab machines"
git -C "$work/checkout" push -q origin HEAD:main
"$orbctl" validate

step "The bootstrap key becomes an encrypted secret"
"$orbctl" writesecret lab.bootstrapkeyprivate --file "$work/bootstrap"
"$orbctl" writesecret lab.bootstrapkeypublic --file "$work/bootstrap.pub"
"$orbctl" secrets list
echo "--- how it looks in Git:"
"$orbctl" file print orbiter.yml | sed -n '/keys:/,$p' | head -8

step "Read it back (exact bytes) and use it to log in to every machine"
"$orbctl" readsecret lab.bootstrapkeyprivate > "$work/key-from-orb"
chmod 600 "$work/key-from-orb"
cmp "$work/bootstrap" "$work/key-from-orb" && echo "round trip: identical bytes"
for ip in $("$orbctl" local list --name "$name" -o json | python3 -c 'import json,sys; print(" ".join(m["ip"] for m in json.load(sys.stdin)))'); do
  ssh -i "$work/key-from-orb" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR \
    "orbiter@$ip" 'echo "$(hostname): $(sudo -n true && echo sudo ok), $(systemctl is-system-running)"'
done

step "A bad edit is refused with its place, and nothing is pushed"
"$orbctl" file patch orbiter.yml providers.lab.spec.pools.machines.0.ip --value 10.0.0.300 || true

step "The Orb repository's history"
git --git-dir "$work/orb.git" log --format='%h %an: %s' main
