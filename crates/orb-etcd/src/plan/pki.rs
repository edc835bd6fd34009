//! Access and certificates: authentication set up as soon as every member is healthy (and
//! again when the spec's users change); the peer certificates of members that left revoked;
//! certificate rotation rolled out one member at a time per phase.
//!
//! Rotation, as the record tracks it (`RotationRecord`): when one is due (`tls::rotation_due`:
//! `rotatecerts` newer than the last answered, a bundle from before the peer CA, a certificate
//! with less than a third of its life left) the plan asks for a new generation
//! ([`PkiChange::Rotate`], generated and sealed by the engine, never here). Then three phases,
//! each rolling every member once, followers first, leadership moved off a leader before it is
//! rolled, the next member only when the last one reports (observation `@@pki`) the new label
//! and a restart since:
//!
//! 1. `trust`: every member trusts the old and the new CAs. People and users read the bundle
//!    (`<cluster>.ca`) from the start of the rotation.
//! 2. `certs` (after the client grace period, so clients trust the new CA): every member serves
//!    and peers with certificates of the new CAs; people and users read new client
//!    certificates from now on ([`PkiChange::Publish`] makes the engine seal them).
//! 3. `drop` (after the client grace period again, so clients use their new certificates):
//!    every member trusts the new CAs only.
//!
//! Then the old generation is retired from the bundle ([`PkiChange::Retire`]) and the record
//! notes which request it answered. A member that does not come back with its new PKI within
//! the grace period stops the rotation with an error in the record.

use super::ctx::{Ctx, Facts, runs_its_pki};
use crate::record::{ErrorRecord, MemberRecord, RotationPhase, RotationRecord, UserGrant};
use crate::steps::EtcdStep;
use crate::tls::{PkiChange, PkiStage, rotation_due};
use node_protocol::timefmt::format_rfc3339;
use std::ops::ControlFlow;

/// The users the spec wants, by name.
pub(super) fn wanted_users(cx: &Ctx<'_>) -> Vec<UserGrant> {
    let mut v: Vec<UserGrant> =
        cx.i.spec
            .users
            .iter()
            .map(|u| UserGrant {
                name: u.name.value.clone(),
                prefix: u.prefix.value.clone(),
            })
            .collect();
    v.sort();
    v
}

/// Authentication by certificate: once, and again whenever the users change.
pub(super) fn setup_auth(cx: &mut Ctx<'_>, f: &Facts<'_>) -> ControlFlow<()> {
    let want = wanted_users(cx);
    if cx.out.record.auth.as_ref().is_some_and(|a| a.users == want) {
        return ControlFlow::Continue(());
    }
    let Some(via) = f.via(cx, "") else {
        cx.wait("authentication waits: no healthy member to ask");
        return ControlFlow::Break(());
    };
    let previous = cx.out.record.auth.clone().unwrap_or_default().users;
    cx.wait(format!(
        "authentication: {} users and roles (root, orbiter, person{})",
        if cx.out.record.auth.is_some() {
            "updating"
        } else {
            "enabling, with"
        },
        want.iter()
            .map(|u| format!(", {} on {}", u.name, u.prefix))
            .collect::<String>()
    ));
    cx.out.steps.push(EtcdStep::SetupAuth {
        cluster: cx.i.cluster.to_owned(),
        via,
        users: want,
        previous,
    });
    ControlFlow::Break(())
}

/// Members that left: their peer certificates are revoked (the CRL on every member refuses
/// them from the next connection on). Forgotten once the bundle's CRL lists them.
pub(super) fn revoke_removed(cx: &mut Ctx<'_>) {
    let s = cx.i.secrets;
    cx.rec().revoke.retain(|r| !s.revoked.contains(&r.serial));
    let pending = cx.out.record.revoke.clone();
    if pending.is_empty() {
        return;
    }
    let mut names: Vec<String> = pending.iter().map(|r| r.name.clone()).collect();
    names.dedup();
    cx.wait(format!(
        "revoking the peer certificates of {} (removed from the cluster)",
        names.join(", ")
    ));
    cx.out.pki.push(PkiChange::Revoke {
        names,
        serials: pending.into_iter().map(|r| r.serial).collect(),
    });
}

/// Rotation: start it when due, roll the current phase, advance, retire.
pub(super) fn rotate(cx: &mut Ctx<'_>, f: &Facts<'_>, members: &[MemberRecord]) -> ControlFlow<()> {
    let i = cx.i;
    let s = i.secrets;
    let request = i.spec.rotatecerts.as_ref().map(|r| r.value.as_str());
    match (cx.out.record.rotation.clone(), s.next.as_deref()) {
        (None, None) => {
            let Some(why) = rotation_due(s, i.now, request, cx.out.record.rotated_for.as_deref())
            else {
                return ControlFlow::Continue(());
            };
            cx.wait(format!(
                "certificate rotation: {}; the new CAs and certificates are generated first",
                why.reason
            ));
            cx.out.pki.push(PkiChange::Rotate { reason: why.reason });
            ControlFlow::Break(())
        }
        (None, Some(n)) => {
            let why = rotation_due(s, i.now, request, cx.out.record.rotated_for.as_deref());
            cx.rec().rotation = Some(RotationRecord {
                reason: why
                    .as_ref()
                    .map(|w| w.reason.clone())
                    .unwrap_or_else(|| format!("generation {} is in the bundle", n.generation)),
                generation: n.generation,
                phase: RotationPhase::Trust,
                since: i.now,
                done: Vec::new(),
                rolled_at: None,
                request: why.and_then(|w| w.request),
            });
            roll(cx, f, members)
        }
        (Some(r), None) if r.phase == RotationPhase::Done => {
            let rec = cx.rec();
            rec.rotated_for = r.request.or(rec.rotated_for.take());
            rec.rotation = None;
            ControlFlow::Continue(())
        }
        (Some(r), None) => {
            cx.rec().rotation = None;
            cx.wait(format!(
                "certificate rotation to generation {} was recorded, but the bundle has no new generation; it starts over",
                r.generation
            ));
            ControlFlow::Break(())
        }
        (Some(_), Some(_)) => roll(cx, f, members),
    }
}

fn phase_name(p: RotationPhase) -> &'static str {
    match p {
        RotationPhase::Trust => "1/3, trust the old and the new CAs",
        RotationPhase::Certs => "2/3, certificates of the new CAs",
        RotationPhase::Drop => "3/3, trust the new CAs only",
        RotationPhase::Done => "done",
    }
}

fn roll(cx: &mut Ctx<'_>, f: &Facts<'_>, members: &[MemberRecord]) -> ControlFlow<()> {
    let i = cx.i;
    let Some(r) = cx.out.record.rotation.clone() else {
        return ControlFlow::Continue(());
    };
    let g = r.generation;
    if r.phase == RotationPhase::Done {
        cx.wait(format!(
            "certificate rotation: every member runs generation {g}; the old CAs are retired from the bundle"
        ));
        cx.out.pki.push(PkiChange::Retire);
        return ControlFlow::Break(());
    }
    // Every member rolled in this phase runs what it got before the next one is touched.
    for m in members.iter().filter(|m| r.done.contains(&m.name)) {
        if runs_its_pki(cx, &m.name) {
            continue;
        }
        let want = i
            .secrets
            .member_pki(&m.name, PkiStage::of(Some(r.phase), true))
            .map(|p| p.label);
        let seen = cx.obs(&m.name).and_then(|v| v.pki.clone());
        let what = match &seen {
            Some(s) if s.fresh => format!("reports `{}`", s.label),
            Some(s) => format!("has `{}` on disk but has not restarted since", s.label),
            None => "reports no PKI label".to_owned(),
        };
        let msg = format!(
            "{} does not run its new certificates yet ({what}, wants `{}`)",
            m.name,
            want.as_deref().unwrap_or("?")
        );
        let late = r
            .rolled_at
            .is_some_and(|t| i.now.saturating_sub(t) >= i.grace_secs);
        let step = format!("etcd {}: certificate rotation of {}", i.cluster, m.name);
        if late
            && cx
                .out
                .record
                .last_error
                .as_ref()
                .is_none_or(|e| e.step != step || e.message != msg)
        {
            cx.rec().last_error = Some(ErrorRecord {
                at: i.now,
                member: Some(m.name.clone()),
                step,
                message: format!("{msg}; check its node agent's current state"),
            });
        }
        cx.wait(format!("certificate rotation waits: {msg}"));
        return ControlFlow::Break(());
    }
    let left: Vec<&MemberRecord> = members
        .iter()
        .filter(|m| !r.done.contains(&m.name))
        .collect();
    // Followers first, in the pool's order; the leader last.
    let next = left
        .iter()
        .min_by_key(|m| (m.id.is_some() && m.id == f.leader, cx.pos(&m.name)))
        .copied();
    if let Some(m) = next {
        if m.id.is_some() && m.id == f.leader && members.len() > 1 {
            let to = members
                .iter()
                .filter(|x| x.name != m.name && x.id.is_some_and(|id| f.healthy_ids.contains(&id)))
                .max_by_key(|x| cx.obs(&x.name).and_then(|v| v.raft_index).unwrap_or(0));
            if let Some(to) = to {
                cx.out.steps.push(EtcdStep::MoveLeader {
                    cluster: i.cluster.to_owned(),
                    via: m.name.clone(),
                    to: to.id.expect("healthy members have ids"),
                    to_name: to.name.clone(),
                });
                cx.wait(format!(
                    "certificate rotation: moving leadership away from {} before it is rolled",
                    m.name
                ));
                return ControlFlow::Break(());
            }
        }
        let now = i.now;
        if let Some(rot) = cx.rec().rotation.as_mut() {
            rot.done.push(m.name.clone());
            rot.rolled_at = Some(now);
        }
        cx.wait(format!(
            "certificate rotation to generation {g} (phase {}): {}{}",
            phase_name(r.phase),
            m.name,
            match left.len() - 1 {
                0 => String::new(),
                n => format!("; {n} more after it"),
            }
        ));
        return ControlFlow::Break(());
    }
    // Every member rolled: the next phase, once clients had their time.
    let ready_at = r.since + i.client_grace_secs;
    let id = i.cluster;
    let next_phase = match r.phase {
        RotationPhase::Trust => RotationPhase::Certs,
        RotationPhase::Certs => RotationPhase::Drop,
        _ => RotationPhase::Done,
    };
    if next_phase != RotationPhase::Done && i.now < ready_at {
        let why = if next_phase == RotationPhase::Certs {
            format!(
                "clients trust the new CA (`orbctl readsecret {id}.ca` has had both CAs since {})",
                format_rfc3339(r.since as i64)
            )
        } else {
            format!(
                "clients use their new certificates (`{id}.clientcert`, `{id}.users.<name>.cert`, new since {})",
                format_rfc3339(r.since as i64)
            )
        };
        cx.wait(format!(
            "certificate rotation to generation {g}: phase {} waits until {} so that {why}",
            phase_name(next_phase),
            format_rfc3339(ready_at as i64)
        ));
        return ControlFlow::Break(());
    }
    let now = i.now;
    if let Some(rot) = cx.rec().rotation.as_mut() {
        rot.phase = next_phase;
        rot.since = now;
        rot.done.clear();
        rot.rolled_at = None;
    }
    if next_phase == RotationPhase::Certs {
        // Every member trusts the new CAs: people's and users' new certificates work now.
        cx.out.pki.push(PkiChange::Publish);
    }
    if next_phase == RotationPhase::Done {
        cx.out.pki.push(PkiChange::Retire);
        cx.wait(format!(
            "certificate rotation: every member runs generation {g} only; the old CAs are retired from the bundle"
        ));
    } else {
        cx.wait(format!(
            "certificate rotation to generation {g}: phase {}",
            phase_name(next_phase)
        ));
    }
    ControlFlow::Break(())
}
