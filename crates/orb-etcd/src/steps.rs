//! Steps the planner asks for that node-agent items cannot express: membership changes,
//! leadership transfer, wiping a former member, snapshots. Each is a POSIX sh command run as
//! root over SSH on one machine, with etcdctl against that machine's local member and the
//! client certificate there. Every command is safe to repeat after a crash: it first checks
//! whether its effect is already there.

use crate::items::paths;
use crate::observe::{etcdctl, hex_id};
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
    /// member (the planner emits it only after the member list no longer has it).
    WipeMember { cluster: String, on: String },
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
}

/// Single quotes for sh.
pub fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

impl EtcdStep {
    /// The machine (`provider.machine`) the command runs on.
    pub fn machine(&self) -> &str {
        match self {
            EtcdStep::AddMember { via, .. }
            | EtcdStep::PromoteMember { via, .. }
            | EtcdStep::RemoveMember { via, .. }
            | EtcdStep::MoveLeader { via, .. }
            | EtcdStep::Snapshot { via, .. } => via,
            EtcdStep::WipeMember { on, .. } | EtcdStep::PruneSnapshots { on, .. } => on,
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
            EtcdStep::WipeMember { cluster, on } => {
                format!("etcd {cluster}: stop and wipe the former member on {on}")
            }
            EtcdStep::Snapshot { cluster, via, path } => {
                format!("etcd {cluster}: snapshot on {via} to {path}")
            }
            EtcdStep::PruneSnapshots {
                cluster,
                on,
                dir,
                keep,
            } => format!("etcd {cluster}: keep the newest {keep} snapshots in {on}:{dir}"),
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
            EtcdStep::WipeMember { cluster, .. } => {
                let unit = paths::unit(cluster);
                format!(
                    "set -u\nsystemctl disable --now {unit} 2>/dev/null || true\n\
if systemctl is-active --quiet {unit}; then echo '{unit} is still running; not wiping' >&2; exit 1; fi\n\
rm -rf {data} {dir}\necho '@@wiped'\n",
                    data = quote(&paths::data(cluster)),
                    dir = quote(&paths::dir(cluster)),
                )
            }
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
        }
    }
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
