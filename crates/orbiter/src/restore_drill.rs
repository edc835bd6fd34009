//! The restore drill: proves that the latest (or a chosen) etcd snapshot restores. The snapshot
//! is copied from the backup target to a member machine, checked against the SHA-256 recorded
//! when it was taken, restored into a scratch directory (`mktemp -d`, 0700, holding the
//! snapshot, its restored data and the logs: nothing at a predictable path) and served by a
//! temporary single-member etcd on 127.0.0.1 of that machine (ports apart from the member's),
//! which must become healthy and serve the snapshot's keys. The member itself and its data are never touched; the scratch
//! directory and the temporary etcd are removed whatever happens.

use crate::clusters::record_path;
use crate::engine::Engine;
use crate::machine::MachineKey;
use crate::observe::as_root;
use anyhow::{Context as _, Result, anyhow, bail};
use orb_etcd::record::ClusterRecord;
use orb_model::Id;

// TLS with the member's own certificates: a snapshot of a cluster with authentication
// enabled serves only authenticated clients, and the member's client certificate is
// Orbiter's (etcd user `orbiter`, role root). `P` is the member's PKI directory.
const CLIENT: &str = "https://127.0.0.1:23790";
const PEER: &str = "http://127.0.0.1:23800";

/// What the drill verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrillReport {
    pub snapshot: String,
    pub restored_on: MachineKey,
    pub sha256: String,
    /// The checksum matched the one recorded when the snapshot was taken (a snapshot chosen
    /// by path has none to match).
    pub sha256_recorded: bool,
    pub revision: u64,
    /// Keys in the snapshot (its own statistics).
    pub total_keys: u64,
    /// Keys the restored etcd served.
    pub keys_served: u64,
}

/// The drill on the member, as root. The snapshot arrives on stdin and goes into a fresh
/// directory `mktemp -d` makes (0700, unpredictable name), with the restored data and the logs:
/// nothing at a predictable path that someone on the machine could have prepared with a link.
fn script() -> String {
    format!(
        r#"set -eu
umask 077
d=$(mktemp -d /var/tmp/orb-drill.XXXXXXXXXX)
pid=
# Every command guarded: under `set -e` a failing one (wait returns the signal) would end the
# cleanup early with its status.
trap 'if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi; rm -rf "$d"' EXIT
snap="$d/snapshot.db"
cat > "$snap"
if command -v etcdutl >/dev/null 2>&1; then T=etcdutl; else T='env ETCDCTL_API=3 etcdctl'; fi
echo "@@sha $(sha256sum "$snap" | cut -d' ' -f1)"
echo "@@status $($T snapshot status "$snap" -w json)"
$T snapshot restore "$snap" --name drill --data-dir "$d/data" --initial-cluster drill={PEER} --initial-advertise-peer-urls {PEER} >"$d/restore.log" 2>&1 || {{ tail -5 "$d/restore.log" >&2; exit 1; }}
etcd --name drill --data-dir "$d/data" --listen-client-urls {CLIENT} --advertise-client-urls {CLIENT} --cert-file "$P/server.crt" --key-file "$P/server.key" --trusted-ca-file "$P/ca.crt" --client-cert-auth --listen-peer-urls {PEER} --initial-advertise-peer-urls {PEER} --initial-cluster drill={PEER} >"$d/etcd.log" 2>&1 &
pid=$!
E="env ETCDCTL_API=3 etcdctl --endpoints={CLIENT} --cacert=$P/ca.crt --cert=$P/client.crt --key=$P/client.key --dial-timeout=2s"
n=0
until $E endpoint health >/dev/null 2>&1; do
  n=$((n+1)); if [ $n -ge 60 ]; then tail -5 "$d/etcd.log" >&2; exit 1; fi; sleep 0.5
done
echo "@@served $($E get '' --prefix --keys-only | grep -c . || true)"
"#
    )
}

fn field(out: &str, tag: &str) -> Option<String> {
    out.lines()
        .find_map(|l| l.strip_prefix(tag)?.strip_prefix(' ').map(str::to_owned))
}

/// Runs the drill for `cluster` with the snapshot at `snapshot` (`machine:/path`, default the
/// last backup of the record) on `on` (default the first member in the record).
pub fn restore_drill(
    engine: &mut Engine,
    cluster: &Id,
    snapshot: Option<&str>,
    on: Option<&MachineKey>,
) -> Result<DrillReport> {
    let l = engine.load()?;
    let text = engine
        .repo
        .snapshot()
        .read(&record_path(cluster))?
        .ok_or_else(|| anyhow!("cluster {cluster} has no record yet (it was never reconciled)"))?;
    let record: ClusterRecord =
        crate::clusters::etcd::read_record(&String::from_utf8_lossy(&text), &record_path(cluster))?;
    let (location, expected_sha) = match snapshot {
        Some(s) => (s.to_owned(), None),
        None => {
            let b = record.last_backup.as_ref().ok_or_else(|| {
                anyhow!("cluster {cluster} has no backup yet\n  hint: set spec.backup in orbiter.yml; Orbiter takes the first one right away")
            })?;
            (b.location.clone(), Some(b.sha256.clone()))
        }
    };
    let (from, path) = location
        .split_once(':')
        .ok_or_else(|| anyhow!("snapshot `{location}` is not MACHINE:/PATH"))?;
    let from = MachineKey::parse(from).map_err(|e| anyhow!("snapshot `{location}`: {e}"))?;
    let on = match on {
        Some(m) => m.clone(),
        None => {
            let first =
                record.members.iter().find(|m| m.healthy).ok_or_else(|| {
                    anyhow!("cluster {cluster} has no healthy member to drill on")
                })?;
            MachineKey::parse(&first.name).map_err(|e| anyhow!(e))?
        }
    };
    let (t, pinned, login) = engine.login(&l, &from)?;
    let bytes = engine
        .ssh
        .read_file(&t, pinned, login, path)?
        .ok_or_else(|| anyhow!("{from}: {path} does not exist"))?;
    let (t, pinned, login) = engine.login(&l, &on)?;
    let out = engine.ssh.exec(
        &t,
        pinned,
        login,
        &as_root(
            &t.user,
            &format!(
                "P={}\n{}",
                crate::ssh::quote(&orb_etcd::items::paths::pki(cluster.as_str())),
                script()
            ),
        ),
        Some(&bytes),
    )?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.success() {
        bail!(
            "the restore drill failed on {on}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let sha256 = field(&stdout, "@@sha").context("the drill printed no checksum")?;
    let sha256_recorded = expected_sha.is_some();
    if let Some(want) = expected_sha
        && want != sha256
    {
        bail!(
            "snapshot {location} has SHA-256 {sha256}, but {want} was recorded when it was taken: it changed since"
        );
    }
    let status: serde_json::Value = serde_json::from_str(
        &field(&stdout, "@@status").context("the drill printed no snapshot status")?,
    )
    .context("snapshot status is not JSON")?;
    let num = |k: &str| {
        status
            .get(k)
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0)
    };
    let keys_served: u64 = field(&stdout, "@@served")
        .and_then(|s| s.trim().parse().ok())
        .context("the restored etcd did not list its keys")?;
    Ok(DrillReport {
        snapshot: location,
        restored_on: on,
        sha256,
        sha256_recorded,
        revision: num("revision"),
        total_keys: num("totalKey"),
        keys_served,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scratch_directory_is_private_and_unpredictable() {
        let s = script();
        assert!(s.contains("umask 077\nd=$(mktemp -d /var/tmp/orb-drill.XXXXXXXXXX)\n"));
        assert!(s.contains("cat > \"$snap\"") && !s.contains("orb-drill-"));
        let out = std::process::Command::new("sh")
            .args(["-n", "-c", &s])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
