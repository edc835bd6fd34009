//! Steps the planner asks for that node-agent items cannot express: membership changes,
//! leadership transfer, wiping a former member, snapshots. Each is a POSIX sh command run as
//! root over SSH on one machine, with etcdctl against that machine's local member and the
//! client certificate there. Every command is safe to repeat after a crash: it first checks
//! whether its effect is already there. The wipe (`wipe`) and the authentication setup
//! (`auth`) are long enough for modules of their own.

pub mod auth;
pub mod wipe;

pub use wipe::WipeCheck;

use crate::items::paths;
use crate::observe::{etcdctl, hex_id};
pub use auth::UserGrant;
use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(tag = "step", rename_all = "kebab-case")]
pub enum EtcdStep {
    /// `member add --learner` through the member on `via`; the new member is then started
    /// with `initial-cluster-state: existing`. A learner has no vote, so adding it never
    /// changes the quorum; [`EtcdStep::PromoteMember`] makes it a voter once it caught up.
    AddMember {
        cluster: String,
        via: String,
        name: String,
        peer_url: String,
    },
    /// `member promote`: the learner becomes a voter (etcd refuses until it is in sync).
    PromoteMember {
        cluster: String,
        via: String,
        id: u64,
        name: String,
    },
    RemoveMember {
        cluster: String,
        via: String,
        id: u64,
        name: String,
    },
    /// Runs on the current leader (`via`): etcd accepts the transfer only there.
    MoveLeader {
        cluster: String,
        via: String,
        to: u64,
        to_name: String,
    },
    /// Stops the unit and deletes data, config and keys of a machine that is no longer a
    /// member (the planner emits it only after an agreed member list no longer has it). With
    /// a check, the command first proves on the machine that the data is the expected
    /// member's and that the cluster no longer lists it, and refuses otherwise (see `wipe`).
    WipeMember {
        cluster: String,
        on: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        check: Option<WipeCheck>,
    },
    /// Users, roles and `auth enable` (see `auth`); `previous` is what the record says the
    /// last run set up.
    SetupAuth {
        cluster: String,
        via: String,
        users: Vec<UserGrant>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        previous: Vec<UserGrant>,
    },
    /// `snapshot save` on `via` into `path` (on that machine); prints size and SHA-256.
    Snapshot {
        cluster: String,
        via: String,
        path: String,
    },
    /// Deletes all but the newest `keep` snapshots `<dir>/<cluster>-*.db` on `on`.
    PruneSnapshots {
        cluster: String,
        on: String,
        dir: String,
        keep: u32,
    },
    /// Restores `snapshot` (a file on `on`) into the member data directory of `on`, as the
    /// first member `name` of a new cluster (`initial_cluster` = `name=<its peer URL>`); the
    /// member's items then start it. Refuses a data directory that holds data. Prints the
    /// snapshot's revision, key count and hash (`@@restored …`) for the drill's report.
    Restore {
        cluster: String,
        on: String,
        snapshot: String,
        name: String,
        peer_url: String,
    },
}

pub use crate::sh::quote;

impl EtcdStep {
    /// The machine (`provider.machine`) the command runs on.
    pub fn machine(&self) -> &str {
        match self {
            EtcdStep::AddMember { via, .. }
            | EtcdStep::PromoteMember { via, .. }
            | EtcdStep::RemoveMember { via, .. }
            | EtcdStep::MoveLeader { via, .. }
            | EtcdStep::SetupAuth { via, .. }
            | EtcdStep::Snapshot { via, .. } => via,
            EtcdStep::WipeMember { on, .. }
            | EtcdStep::PruneSnapshots { on, .. }
            | EtcdStep::Restore { on, .. } => on,
        }
    }

    /// Removing a member or its data cannot be undone.
    pub fn destructive(&self) -> bool {
        matches!(
            self,
            EtcdStep::RemoveMember { .. }
                | EtcdStep::WipeMember { .. }
                | EtcdStep::PruneSnapshots { .. }
        )
    }

    pub fn summary(&self) -> String {
        match self {
            EtcdStep::AddMember {
                cluster,
                via,
                name,
                peer_url,
            } => format!("etcd {cluster}: add member {name} ({peer_url}) as a learner via {via}"),
            EtcdStep::PromoteMember {
                cluster,
                via,
                id,
                name,
            } => format!(
                "etcd {cluster}: promote learner {name} ({}) to voter via {via}",
                hex_id(*id)
            ),
            EtcdStep::RemoveMember {
                cluster,
                via,
                id,
                name,
            } => format!(
                "etcd {cluster}: remove member {name} ({}) via {via}",
                hex_id(*id)
            ),
            EtcdStep::MoveLeader {
                cluster,
                via,
                to,
                to_name,
            } => format!(
                "etcd {cluster}: move leadership from {via} to {to_name} ({})",
                hex_id(*to)
            ),
            EtcdStep::WipeMember { cluster, on, check } => match check {
                Some(WipeCheck {
                    member_id: Some(id),
                    ..
                }) => format!(
                    "etcd {cluster}: stop and wipe the former member {} on {on} (checked there first)",
                    hex_id(*id)
                ),
                Some(_) => format!(
                    "etcd {cluster}: stop and wipe data of an earlier member on {on} (checked there first)"
                ),
                None => format!("etcd {cluster}: stop and wipe the former member on {on}"),
            },
            EtcdStep::SetupAuth {
                cluster,
                via,
                users,
                ..
            } => format!(
                "etcd {cluster}: users root, orbiter, person{}{} and authentication by certificate via {via}",
                if users.is_empty() { "" } else { ", " },
                users
                    .iter()
                    .map(|u| format!("{} ({})", u.name, u.prefix))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            EtcdStep::Snapshot { cluster, via, path } => {
                format!("etcd {cluster}: snapshot on {via} to {path}")
            }
            EtcdStep::PruneSnapshots {
                cluster,
                on,
                dir,
                keep,
            } => format!("etcd {cluster}: keep the newest {keep} snapshots in {on}:{dir}"),
            EtcdStep::Restore {
                cluster,
                on,
                snapshot,
                name,
                ..
            } => format!("etcd {cluster}: restore {snapshot} on {on} as new member {name}"),
        }
    }

    /// The shell command (run as root on [`Self::machine`]).
    pub fn command(&self) -> String {
        match self {
            EtcdStep::AddMember {
                cluster,
                name,
                peer_url,
                ..
            } => {
                let e = etcdctl(cluster);
                // The peer URL already listed means a previous run added it: report, don't add.
                format!(
                    "set -u\nlist=$({e} -w json member list) || {{ echo \"member list failed: $list\" >&2; exit 1; }}\n\
case \"$list\" in *'\"{peer_url}\"'*) echo '@@already'; printf '%s\\n' \"$list\"; exit 0;; esac\n\
{e} -w json member add {name} --peer-urls={peer} --learner\n",
                    name = quote(name),
                    peer = quote(peer_url),
                )
            }
            EtcdStep::PromoteMember { cluster, id, .. } => {
                // A voter already (a previous run promoted it): etcd says it is no learner.
                format!(
                    "out=$({e} member promote {hex} 2>&1) && {{ printf '%s\\n' \"$out\"; exit 0; }}\n\
case \"$out\" in *'can only promote a learner member which is in sync'*) ;; *'can only promote a learner member'*|*'is not a learner'*) echo '@@already a voter'; exit 0;; esac\n\
printf '%s\\n' \"$out\" >&2; exit 1\n",
                    e = etcdctl(cluster),
                    hex = hex_id(*id),
                )
            }
            EtcdStep::RemoveMember { cluster, id, .. } => {
                let e = etcdctl(cluster);
                format!(
                    "set -u\nlist=$({e} -w json member list) || {{ echo \"member list failed: $list\" >&2; exit 1; }}\n\
case \"$list\" in *'\"ID\":{id},'*|*'\"ID\":{id}}}'*) ;; *) echo '@@already removed'; exit 0;; esac\n\
{e} member remove {hex}\n",
                    hex = hex_id(*id),
                )
            }
            EtcdStep::MoveLeader { cluster, to, .. } => {
                format!("{} move-leader {}\n", etcdctl(cluster), hex_id(*to))
            }
            EtcdStep::WipeMember { cluster, check, .. } => wipe::command(cluster, check.as_ref()),
            EtcdStep::SetupAuth {
                cluster,
                users,
                previous,
                ..
            } => auth::command(cluster, users, previous),
            EtcdStep::Snapshot { cluster, path, .. } => {
                let p = quote(path);
                let tmp = quote(&format!("{path}.part"));
                format!(
                    "set -eu\numask 077\nmkdir -p \"$(dirname {p})\"\n\
{e} snapshot save {tmp} >/dev/null\nmv {tmp} {p}\n\
echo \"@@snapshot $(stat -c %s {p}) $(sha256sum {p} | cut -d' ' -f1)\"\n",
                    e = etcdctl(cluster),
                )
            }
            EtcdStep::PruneSnapshots {
                cluster, dir, keep, ..
            } => format!(
                "set -eu\ncd {d} 2>/dev/null || exit 0\n\
ls -1 {c}-*.db 2>/dev/null | sort -r | tail -n +{n} | while read -r f; do rm -f -- \"$f\"; echo \"@@pruned $f\"; done\n",
                d = quote(dir),
                c = quote(cluster),
                n = *keep as u64 + 1,
            ),
            EtcdStep::Restore {
                cluster,
                snapshot,
                name,
                peer_url,
                ..
            } => {
                let data = paths::data(cluster);
                let snap = quote(snapshot);
                // 3.5 moved offline snapshot work to etcdutl; Debian's 3.4 only has etcdctl.
                format!(
                    "set -eu\n[ -r {snap} ] || {{ echo 'snapshot {snapshot} is missing' >&2; exit 1; }}\n\
if [ -e {d}/member ]; then echo '{data} already holds data; wipe it first' >&2; exit 1; fi\n\
if command -v etcdutl >/dev/null 2>&1; then T=etcdutl; else T='env ETCDCTL_API=3 etcdctl'; fi\n\
st=$($T snapshot status {snap} -w json)\n\
rm -rf {d}\n\
if ! out=$($T snapshot restore {snap} --name {n} --data-dir {d} --initial-cluster {ic} --initial-advertise-peer-urls {p} --initial-cluster-token {tok} 2>&1); then rm -rf {d}; printf '%s\\n' \"$out\" >&2; exit 1; fi\n\
chown -R etcd:etcd {d}\nchmod 700 {d}\necho \"@@restored $st\"\n",
                    d = quote(&data),
                    n = quote(name),
                    ic = quote(&format!("{name}={peer_url}")),
                    p = quote(peer_url),
                    tok = quote(&format!("orb-{cluster}")),
                )
            }
        }
    }
}

/// What a restore verified: the snapshot's revision, key count and hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RestoreReport {
    pub revision: u64,
    pub total_keys: u64,
    pub hash: u64,
}

/// Parses [`EtcdStep::Restore`]'s `@@restored {snapshot status json}` line.
pub fn parse_restore_result(out: &str) -> Result<RestoreReport, String> {
    out.lines()
        .find_map(|l| {
            let j: Value = serde_json::from_str(l.strip_prefix("@@restored ")?).ok()?;
            Some(RestoreReport {
                revision: j.get("revision")?.as_u64()?,
                total_keys: j.get("totalKey")?.as_u64()?,
                hash: j.get("hash")?.as_u64()?,
            })
        })
        .ok_or_else(|| {
            format!(
                "restore printed no snapshot status: {}",
                out.trim().chars().take(300).collect::<String>()
            )
        })
}

/// What `member add` reported: the new member's id (also when a previous run added it).
pub fn parse_add_result(out: &str, peer_url: &str) -> Result<u64, String> {
    for line in out.lines() {
        let Ok(j) = serde_json::from_str::<Value>(line.trim()) else {
            continue;
        };
        if let Some(id) = j
            .get("member")
            .and_then(|m| m.get("ID"))
            .and_then(Value::as_u64)
        {
            return Ok(id);
        }
        if let Some(ms) = j.get("members").and_then(Value::as_array)
            && let Some(id) = ms
                .iter()
                .find(|m| {
                    m.get("peerURLs")
                        .and_then(Value::as_array)
                        .is_some_and(|u| u.iter().any(|u| u.as_str() == Some(peer_url)))
                })
                .and_then(|m| m.get("ID")?.as_u64())
        {
            return Ok(id);
        }
    }
    Err(format!(
        "member add printed no member id for {peer_url}: {}",
        out.trim().chars().take(300).collect::<String>()
    ))
}

/// Size and SHA-256 from a [`EtcdStep::Snapshot`] run.
pub fn parse_snapshot_result(out: &str) -> Result<(u64, String), String> {
    out.lines()
        .find_map(|l| {
            let mut it = l.strip_prefix("@@snapshot ")?.split_whitespace();
            let size = it.next()?.parse().ok()?;
            let sha = it.next()?;
            (sha.len() == 64).then(|| (size, sha.to_owned()))
        })
        .ok_or_else(|| {
            format!(
                "snapshot printed no size and checksum: {}",
                out.trim().chars().take(300).collect::<String>()
            )
        })
}
