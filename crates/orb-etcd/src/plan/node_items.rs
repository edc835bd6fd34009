//! What every candidate machine's node agent gets: a member's items from its record (never
//! from the spec directly, so config churn cannot restart several members), the removal
//! items of a former member, nothing for the others; plus which machines may be released and
//! the client endpoints. Last phase: it only reads the decided record.

use super::ctx::Ctx;
use crate::items::{InitialState, MemberConfig, client_url, member_items, removed_items};
use crate::record::MemberState;
use crate::tls::PkiStage;
use std::collections::BTreeMap;

pub(super) fn build_items(cx: &mut Ctx<'_>) {
    let i = cx.i;
    let s = i.secrets;
    let rotation = cx.out.record.rotation.as_ref();
    let mut items = BTreeMap::new();
    let mut waits = Vec::new();
    for c in i.candidates {
        if c.gone {
            continue;
        }
        if let Some(m) = cx.out.record.member(&c.machine) {
            // An `existing` member gets its items once the cluster lists it.
            if m.initial_state == InitialState::Existing && m.id.is_none() {
                items.insert(c.machine.clone(), Vec::new());
                continue;
            }
            // Its place in a rotation (the current generation outside of one).
            let stage = match (rotation, &s.next) {
                (Some(r), Some(_)) => PkiStage::of(Some(r.phase), r.done.contains(&m.name)),
                _ => PkiStage::Current,
            };
            let Some(pki) = s.member_pki(&m.name, stage).filter(|p| p.certs.ip == m.ip) else {
                waits.push(format!(
                    "certificates of member {} are missing; Orbiter issues them first (tls::ensure_secrets)",
                    m.name
                ));
                continue;
            };
            let cfg = MemberConfig {
                name: &m.name,
                ip: m.ip,
                package_version: &m.package,
                tuning: m.tuning,
                initial_cluster: &m.initial_cluster,
                initial_state: m.initial_state,
                pki: &pki,
            };
            items.insert(c.machine.clone(), member_items(i.cluster, &cfg));
        } else if cx.out.record.removed.iter().any(|r| r.name == c.machine) {
            items.insert(c.machine.clone(), removed_items(i.cluster));
        } else {
            items.insert(c.machine.clone(), Vec::new());
        }
    }
    cx.out.items = items;
    // Candidates that are no member (nor chosen to become one) and hold no data can go.
    for c in i.candidates {
        let involved = cx.out.record.members.iter().any(|m| m.name == c.machine)
            || cx.out.record.removed.iter().any(|m| m.name == c.machine);
        if !involved && i.observed.get(&c.machine).is_none_or(|v| !v.data_dir) {
            cx.out.releasable.insert(c.machine.clone());
        }
    }
    cx.out.waiting.extend(waits);
    cx.out.record.endpoints.sort();
    if cx.out.record.endpoints.is_empty() {
        // Before the first observation: the members' advertised URLs.
        cx.out.record.endpoints = cx
            .out
            .record
            .members
            .iter()
            .filter(|m| m.state == MemberState::Member)
            .map(|m| client_url(m.ip))
            .collect();
    }
}
