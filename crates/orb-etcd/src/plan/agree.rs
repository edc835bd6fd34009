//! Which member list the planner may decide from. One machine's answer is never enough: a
//! member that lies (or is confused: restored from a snapshot, another cluster's data) could
//! otherwise get every other member removed and wiped. A list is *agreed* when more than half
//! of the electorate report the same cluster id and the same member set (ids and peer URLs;
//! names, client URLs and learner flags change while members start and are left out), and at
//! least one of them is healthy. The electorate is the record's voting members (members, and
//! bootstrap members not yet started); a cluster without a record (lost, or never written)
//! counts every candidate that reports a cluster or that any report lists.
//!
//! A report counts only if it comes from a reachable machine of the electorate, names the
//! recorded cluster id (when there is one: a report for another cluster is never accepted),
//! lists the reporting member itself, and (for a recorded member) with the recorded id.
//! Everything that does not agree is said in `waiting`.

use super::PlanInput;
use crate::items::{InitialState, peer_url};
use crate::observe::{MemberEntry, MemberView, hex_id};
use crate::record::MemberState;
use std::collections::{BTreeMap, BTreeSet};

/// The outcome of comparing the members' reports.
pub(super) enum Agreement<'a> {
    /// The list to decide from, with the most up-to-date healthy member's view of it.
    Agreed {
        view: &'a MemberView,
        list: &'a [MemberEntry],
        /// Reports that differ, one sentence each (nothing is decided from them).
        dissent: Vec<String>,
    },
    /// No reachable member reports a list (none healthy, none reachable).
    Silent { dissent: Vec<String> },
    /// Reports exist but no list has a majority: why.
    Disagree(String),
}

/// What a member list is compared by.
type ListKey = (u64, BTreeSet<(u64, Vec<String>)>);

/// One counted report: the machine, its view, its list.
type Report<'a> = (&'a str, &'a MemberView, &'a Vec<MemberEntry>);

fn key_of(cluster: u64, list: &[MemberEntry]) -> ListKey {
    let set = list
        .iter()
        .map(|e| {
            let mut urls = e.peer_urls.clone();
            urls.sort();
            (e.id, urls)
        })
        .collect();
    (cluster, set)
}

fn describe(list: &[MemberEntry], i: &PlanInput<'_>) -> String {
    let mut names: Vec<String> = list
        .iter()
        .map(|e| {
            i.candidates
                .iter()
                .find(|c| e.peer_urls.contains(&peer_url(c.ip)))
                .map(|c| c.machine.clone())
                .unwrap_or_else(|| hex_id(e.id))
        })
        .collect();
    names.sort();
    format!("[{}]", names.join(", "))
}

/// The machines whose reports count, by name.
fn electorate(i: &PlanInput<'_>) -> BTreeSet<String> {
    let r = i.record;
    let mut voters: BTreeSet<String> = r
        .members
        .iter()
        .filter(|m| {
            m.state == MemberState::Member
                || (m.state == MemberState::Joining && m.initial_state == InitialState::New)
        })
        .map(|m| m.name.clone())
        .collect();
    if voters.is_empty() {
        voters = r.members.iter().map(|m| m.name.clone()).collect();
    }
    for c in i.candidates.iter().filter(|c| c.reachable && !c.gone) {
        let Some(v) = i.observed.get(&c.machine) else {
            continue;
        };
        let member = v.healthy
            && v.id.is_some_and(|id| {
                v.members
                    .as_ref()
                    .is_some_and(|l| l.iter().any(|e| e.id == id))
            });
        match r.cluster_id {
            // A healthy member of the recorded cluster the record does not know (promoted,
            // added by a run that died, or left out of a record adopted from one machine):
            // its word counts, so it cannot be outvoted by a single machine.
            Some(cid) if member && v.cluster_id == Some(cid) => {
                voters.insert(c.machine.clone());
            }
            Some(_) => {}
            // No record: every candidate that takes part in a cluster by its own or
            // another's report.
            None => {
                let listed = i.observed.values().any(|o| {
                    o.members
                        .as_ref()
                        .is_some_and(|l| l.iter().any(|e| e.peer_urls.contains(&peer_url(c.ip))))
                });
                if v.cluster_id.is_some() || listed {
                    voters.insert(c.machine.clone());
                }
            }
        }
    }
    voters
}

pub(super) fn agreed_list<'a>(i: &'a PlanInput<'a>) -> Agreement<'a> {
    let voters = electorate(i);
    let recorded_cluster = i.record.cluster_id;
    let mut dissent = Vec::new();
    // Valid reports by list.
    let mut groups: BTreeMap<ListKey, Vec<Report<'a>>> = BTreeMap::new();
    for c in i.candidates.iter().filter(|c| c.reachable && !c.gone) {
        let Some(v) = i.observed.get(&c.machine) else {
            continue;
        };
        let (Some(list), Some(cid)) = (v.members.as_ref(), v.cluster_id) else {
            continue;
        };
        if let Some(want) = recorded_cluster
            && cid != want
        {
            dissent.push(format!(
                "{} reports cluster {}, not the recorded cluster {}: its member list is never accepted",
                c.machine,
                hex_id(cid),
                hex_id(want)
            ));
            continue;
        }
        if !voters.contains(&c.machine) {
            continue;
        }
        let own = v.id.filter(|id| list.iter().any(|e| e.id == *id));
        let recorded = i.record.member(&c.machine).and_then(|m| m.id);
        if own.is_none() || (recorded.is_some() && own != recorded) {
            dissent.push(format!(
                "{} reports a member list without itself as member {}: it is not counted",
                c.machine,
                recorded.or(v.id).map(hex_id).unwrap_or_else(|| "?".into())
            ));
            continue;
        }
        groups
            .entry(key_of(cid, list))
            .or_default()
            .push((c.machine.as_str(), v, list));
    }
    // A list no healthy member reports is no cluster's answer (quorum lost, or nobody
    // reachable answers): nothing to agree on.
    if !groups.values().flatten().any(|(_, v, _)| v.healthy) {
        return Agreement::Silent { dissent };
    }
    let n = voters.len();
    let need = n / 2 + 1;
    let best = groups
        .iter()
        .filter(|(_, g)| g.iter().any(|(_, v, _)| v.healthy))
        .max_by_key(|(_, g)| g.len());
    let describe_all = |skip: Option<&ListKey>| -> Vec<String> {
        groups
            .iter()
            .filter(|(k, _)| Some(*k) != skip)
            .map(|(_, g)| {
                let who: Vec<&str> = g.iter().map(|(m, _, _)| *m).collect();
                format!(
                    "{} {} {}",
                    who.join(", "),
                    if who.len() == 1 { "reports" } else { "report" },
                    describe(g[0].2, i)
                )
            })
            .collect()
    };
    match best {
        Some((k, g)) if g.len() >= need => {
            for d in describe_all(Some(k)) {
                dissent.push(format!(
                    "{d}, which is not the member list the majority agrees on; it is not trusted"
                ));
            }
            let (_, view, list) = g
                .iter()
                .filter(|(_, v, _)| v.healthy)
                .max_by_key(|(_, v, _)| v.raft_index.unwrap_or(0))
                .copied()
                .expect("a healthy report");
            Agreement::Agreed {
                view,
                list: list.as_slice(),
                dissent,
            }
        }
        _ => {
            let head = if groups.len() == 1 {
                "member list not confirmed"
            } else {
                "member lists disagree"
            };
            let mut why = format!(
                "{head}: {}; no list is confirmed by more than half of the {n} {} ({need} needed), so nothing is decided from them and no member is removed or wiped",
                describe_all(None).join("; "),
                if i.record.members.is_empty() {
                    "machines that take part"
                } else {
                    "recorded members"
                }
            );
            for d in dissent {
                why.push_str("; ");
                why.push_str(&d);
            }
            Agreement::Disagree(why)
        }
    }
}
