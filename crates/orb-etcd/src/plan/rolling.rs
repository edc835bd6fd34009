//! Rolling changes of version and tuning: one member at a time, followers first, leadership
//! moved off the leader before it is changed, the next member only once the last one runs
//! what it should; version steps etcd does not support (skipped minor, minor downgrade) are
//! refused. Its own module because it is the longest decision and the only one about versions.

use super::ctx::{Ctx, Facts};
use super::rules::{semver, version_step};
use crate::record::{ErrorRecord, MemberRecord};
use crate::steps::EtcdStep;
use std::ops::ControlFlow;

/// Rolling change: version and tuning, one member at a time, leader last. Continues (nothing
/// to roll) with the package new members get.
pub(super) fn roll(
    cx: &mut Ctx<'_>,
    f: &Facts<'_>,
    members: &[MemberRecord],
) -> ControlFlow<(), String> {
    let i = cx.i;
    let cluster = i.cluster.to_owned();
    let leader = f.leader;
    let running_min = members
        .iter()
        .filter_map(|m| m.version.as_deref().or(Some(m.package.as_str())))
        .filter_map(|v| semver(v).map(|s| (s, v.to_owned())))
        .min()
        .map(|(_, v)| v);
    let running_max = members
        .iter()
        .filter_map(|m| m.version.as_deref().or(Some(m.package.as_str())))
        .filter_map(|v| semver(v).map(|s| (s, v.to_owned())))
        .max()
        .map(|(_, v)| v);
    let desired_v = i.spec.version.as_str();
    let version_ok = match (&running_min, &running_max) {
        (Some(lo), Some(hi)) => version_step(lo, desired_v).and(version_step(hi, desired_v)),
        _ => Ok(()),
    };
    // The package each member should run: the desired one, or (refused) the one it has.
    let version_refused = version_ok.is_err();
    if let Err(e) = &version_ok {
        cx.wait(format!(
            "version {desired_v} refused: {e}; the members keep their version"
        ));
    }
    let wanted = |m: &MemberRecord| -> String {
        if version_refused {
            m.package.clone()
        } else {
            i.package.to_owned()
        }
    };
    // New members get the desired package, or (refused) the oldest the cluster runs.
    let target_package = if version_refused {
        members
            .iter()
            .map(|m| m.package.clone())
            .min_by_key(|p| semver(p))
            .unwrap_or_else(|| i.package.to_owned())
    } else {
        i.package.to_owned()
    };
    let behind: Vec<&MemberRecord> = members
        .iter()
        .filter(|m| m.package != wanted(m) || m.tuning != cx.tuning)
        .collect();
    // A member just rolled must run its new version before the next one is touched.
    let unsettled = members.iter().find(|m| {
        semver(&m.package).is_some() && m.version.as_deref().and_then(semver) != semver(&m.package)
    });
    if let Some(u) = unsettled {
        let msg = format!(
            "{} does not run {} (it reports {})",
            u.name,
            u.package,
            u.version.as_deref().unwrap_or("nothing")
        );
        // Healthy on the old binary past the grace period: its agent could not apply the
        // change (package missing, install failed). Say so in the record; nothing else moves.
        let late = u
            .changed_at
            .is_some_and(|t| i.now.saturating_sub(t) >= i.grace_secs);
        let step = format!("etcd {}: rolling change of {}", i.cluster, u.name);
        let message = format!("{msg}; check its node agent's current state");
        if late
            && cx
                .out
                .record
                .last_error
                .as_ref()
                .is_none_or(|e| e.step != step || e.message != message)
        {
            cx.rec().last_error = Some(ErrorRecord {
                at: i.now,
                member: Some(u.name.clone()),
                step,
                message,
            });
        }
        cx.wait(format!("rolling change waits: {msg}"));
        return ControlFlow::Break(());
    }
    if !behind.is_empty() {
        let followers: Vec<&&MemberRecord> = behind.iter().filter(|m| m.id != leader).collect();
        let next = followers
            .iter()
            .min_by_key(|m| cx.pos(&m.name))
            .map(|m| (**m).clone());
        let m = match next {
            Some(m) => m,
            None => {
                // Only the leader is left: hand leadership to an updated member first.
                let l = behind[0].clone();
                let to = members
                    .iter()
                    .filter(|x| x.name != l.name)
                    .max_by_key(|x| cx.obs(&x.name).and_then(|v| v.raft_index).unwrap_or(0));
                if let Some(to) = to {
                    cx.out.steps.push(EtcdStep::MoveLeader {
                        cluster,
                        via: l.name.clone(),
                        to: to.id.expect("members have ids"),
                        to_name: to.name.clone(),
                    });
                    cx.wait(format!(
                        "rolling change: moving leadership away from {} before it is changed",
                        l.name
                    ));
                    return ControlFlow::Break(());
                }
                l
            }
        };
        let tuning = cx.tuning;
        let now = i.now;
        let package = wanted(&m);
        if let Some(r) = cx.member_mut(&m.name) {
            r.package = package.clone();
            r.tuning = tuning;
            r.changed_at = Some(now);
        }
        cx.wait(format!(
            "rolling change: {} → etcd {package}{}; {} more after it",
            m.name,
            if m.tuning != tuning {
                ", new tuning"
            } else {
                ""
            },
            behind.len() - 1
        ));
        return ControlFlow::Break(());
    }
    ControlFlow::Continue(target_package)
}
