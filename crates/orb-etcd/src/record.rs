//! What Orbiter records about a cluster in `orbiter/clusters/<id>/current.yml`: the members it
//! manages and the configuration each runs (so a member is only restarted when the planner
//! decides), the membership change in progress, and the observed state people audit
//! (leader, versions, raft index, db size, alarms, endpoints, last backup, last error).
//!
//! Volatile numbers (raft index, db size) are refreshed only when something else changes or
//! they moved a lot, so a busy but stable cluster causes no commit per loop.

use crate::items::{InitialState, Tuning};
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// `kind` and `version` of a record file; records written before they carried them have
/// neither, and read the same.
pub const RECORD_KIND: &str = "EtcdClusterRecord";
/// v2 added the removed members' ids, the auth setup and the certificate rotation; a v1 file
/// reads as a v2 without them.
pub const RECORD_VERSIONS: &[&str] = &["v1", "v2"];

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ClusterRecord {
    /// [`RECORD_KIND`] (empty in memory until Orbiter writes the file).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub version: String,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "hex_opt")]
    pub cluster_id: Option<u64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<MemberRecord>,
    /// Machines whose member was removed from the cluster and whose data is not wiped yet.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub removed: Vec<RemovedRecord>,
    /// Member name of the leader.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader: Option<String>,
    /// Client URLs of the started voters (what clients should be given: a learner refuses
    /// client requests).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub endpoints: Vec<String>,
    /// Active alarms (`NOSPACE@<member id>`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alarms: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_backup: Option<BackupRecord>,
    /// A failed step or a member that did not come back: the rollout stops (only the member
    /// concerned is touched) until it is healthy again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<ErrorRecord>,
    /// The users and roles the last successful [`crate::steps::EtcdStep::SetupAuth`] left
    /// (authentication is enabled once this is set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<AuthRecord>,
    /// A certificate rotation in progress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation: Option<RotationRecord>,
    /// The `rotatecerts` request of the spec the last rotation was for (a newer one starts
    /// another).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotated_for: Option<String>,
    /// Peer certificates of members that left the cluster, to be revoked (and forgotten once
    /// the bundle's CRL lists them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub revoke: Vec<RevokeRecord>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RevokeRecord {
    /// The member it was issued to.
    pub name: String,
    /// Its serial number (hex).
    pub serial: String,
}

pub use crate::steps::auth::UserGrant;

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct AuthRecord {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub users: Vec<UserGrant>,
}

pub use crate::tls::RotationPhase;

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RotationRecord {
    /// Why (`orbctl cluster rotate-certs`, an expiry, an old bundle).
    pub reason: String,
    /// The generation rotated to.
    pub generation: u32,
    pub phase: RotationPhase,
    /// Unix seconds when the phase began (clients get the grace period from here).
    pub since: u64,
    /// Members rolled in this phase, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub done: Vec<String>,
    /// Unix seconds when the last member was rolled (a member not back with its new
    /// certificates within the grace period stops the rotation with an error).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rolled_at: Option<u64>,
    /// The `rotatecerts` request that started it, if one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum MemberState {
    /// Chosen to join (bootstrap or `member add`); not yet started and healthy.
    Joining,
    Member,
    /// To be removed (scale in, replacement); leadership moves away first.
    Leaving,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct MemberRecord {
    /// The etcd member name: the machine's `provider.machine`.
    pub name: String,
    pub ip: IpAddr,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "hex_opt")]
    pub id: Option<u64>,
    pub state: MemberState,
    /// Debian version of etcd-server/etcd-client this member's items install.
    pub package: String,
    pub tuning: Tuning,
    pub initial_cluster: String,
    pub initial_state: InitialState,
    // --- observed
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default)]
    pub healthy: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raft_index: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub db_size: Option<u64>,
    /// Unix seconds since the member was first seen unhealthy (or its machine unreachable);
    /// a member unhealthy for longer than the grace period is replaced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unhealthy_since: Option<u64>,
    /// Unix seconds since its configuration (package, tuning) last changed: the grace period
    /// of a rolling change starts here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changed_at: Option<u64>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RemovedRecord {
    pub name: String,
    /// Its member id when it left (the wipe checks the data on the machine is this member's);
    /// none in records written before v2.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "hex_opt")]
    pub id: Option<u64>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct BackupRecord {
    /// Unix seconds.
    pub at: u64,
    /// `provider.machine:/path`.
    pub location: String,
    pub size: u64,
    pub sha256: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ErrorRecord {
    /// Unix seconds.
    pub at: u64,
    /// The member the failure concerns; only it may be touched until it is healthy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member: Option<String>,
    /// What was being done (a step summary).
    pub step: String,
    pub message: String,
}

impl ClusterRecord {
    pub fn member(&self, name: &str) -> Option<&MemberRecord> {
        self.members.iter().find(|m| m.name == name)
    }

    /// Records the outcome of a step the engine ran: a failure stops the rollout (see
    /// [`ErrorRecord`]); `member add` success stores the new member's id.
    pub fn note_step(
        &mut self,
        step: &crate::steps::EtcdStep,
        result: Result<&str, &str>,
        now: u64,
    ) {
        use crate::steps::EtcdStep;
        let member = match step {
            EtcdStep::AddMember { name, .. }
            | EtcdStep::PromoteMember { name, .. }
            | EtcdStep::RemoveMember { name, .. }
            | EtcdStep::MoveLeader { to_name: name, .. } => Some(name.clone()),
            EtcdStep::WipeMember { on, .. } => Some(on.clone()),
            EtcdStep::SetupAuth { .. }
            | EtcdStep::Snapshot { .. }
            | EtcdStep::PruneSnapshots { .. }
            | EtcdStep::Restore { .. } => None,
        };
        match result {
            Ok(out) => {
                // The failed step itself worked now (or a cluster-wide one, e.g. the next
                // snapshot): the cause is gone. Other errors clear when their member is fine.
                if self.last_error.as_ref().is_some_and(|e| {
                    e.step == step.summary() || (e.member.is_none() && member.is_none())
                }) {
                    self.last_error = None;
                }
                if let EtcdStep::AddMember { name, peer_url, .. } = step
                    && let Ok(id) = crate::steps::parse_add_result(out, peer_url)
                    && let Some(m) = self.members.iter_mut().find(|m| &m.name == name)
                {
                    m.id = Some(id);
                }
                if let EtcdStep::SetupAuth { users, .. } = step {
                    self.auth = Some(AuthRecord {
                        users: users.clone(),
                    });
                }
                if let EtcdStep::Snapshot { via, path, .. } = step
                    && let Ok((size, sha256)) = crate::steps::parse_snapshot_result(out)
                {
                    self.last_backup = Some(BackupRecord {
                        at: now,
                        location: format!("{via}:{path}"),
                        size,
                        sha256,
                    });
                }
            }
            Err(message) => {
                let message: String = message.chars().take(500).collect();
                // The same failure again keeps its first time: no new commit per loop.
                let at = match &self.last_error {
                    Some(e) if e.step == step.summary() && e.message == message => e.at,
                    _ => now,
                };
                self.last_error = Some(ErrorRecord {
                    at,
                    member,
                    step: step.summary(),
                    message,
                });
            }
        }
    }
}

/// Member and cluster ids as etcdctl prints them (hex): readable, and safe in YAML tools that
/// read numbers as floats.
mod hex_opt {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<u64>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(id) => s.serialize_str(&format!("{id:x}")),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        let s: Option<String> = Option::deserialize(d)?;
        s.map(|s| {
            u64::from_str_radix(&s, 16)
                .map_err(|_| serde::de::Error::custom(format!("`{s}` is not a hex member id")))
        })
        .transpose()
    }
}
