//! Scheduled snapshots: where they go, when one is due and which member takes it (a follower;
//! the leader has enough to do). Separate because the paths are public: Orbiter copies and
//! prunes snapshots in [`SNAPSHOT_DIR`] on the backup target.

use super::ctx::{Ctx, Facts};
use crate::record::{ClusterRecord, MemberRecord};
use crate::steps::EtcdStep;
use orb_model::kinds::etcd_cluster::EtcdCluster;

/// Directory of snapshots, on members (temporarily) and on the backup target.
pub const SNAPSHOT_DIR: &str = "/var/backups/orb-etcd";

/// `<dir>/<cluster>-<UTC time>.db`; names sort by time, which pruning relies on.
pub fn snapshot_path(cluster: &str, now: u64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(now as i64)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{SNAPSHOT_DIR}/{cluster}-{:04}{:02}{:02}T{:02}{:02}{:02}Z.db",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// A backup is configured and the last one is older than its interval (or there is none).
pub fn backup_due(spec: &EtcdCluster, record: &ClusterRecord, now: u64) -> bool {
    let Some(every) = spec.backup.as_ref().and_then(|b| b.every_secs()) else {
        return false;
    };
    record
        .last_backup
        .as_ref()
        .is_none_or(|b| now.saturating_sub(b.at) >= every)
}

/// A scheduled snapshot, from a follower (the leader has enough to do).
pub(super) fn snapshot_if_due(cx: &mut Ctx<'_>, f: &Facts<'_>, members: &[MemberRecord]) {
    let i = cx.i;
    let cluster = i.cluster.to_owned();
    let leader = f.leader;
    if backup_due(i.spec, &cx.out.record, i.now) {
        let from = members
            .iter()
            .filter(|m| m.id != leader)
            .min_by_key(|m| cx.pos(&m.name))
            .or(members.first());
        if let Some(m) = from {
            cx.out.steps.push(EtcdStep::Snapshot {
                cluster,
                via: m.name.clone(),
                path: snapshot_path(i.cluster, i.now),
            });
        }
    }
}
