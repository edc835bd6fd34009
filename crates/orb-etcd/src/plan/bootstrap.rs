//! The first membership of a cluster without a record: adopt what a dead run already wrote
//! on the machines, refuse machines holding unrecorded data, else pick the first ready
//! candidates. Separate because it is the only phase that runs without a confirmed member list.

use super::Candidate;
use super::ctx::{Ctx, joining, usable};
use crate::items::{InitialState, initial_cluster};

pub(super) fn bootstrap(cx: &mut Ctx<'_>) {
    let i = cx.i;
    let want = i.spec.nodes.value as usize;
    // Configs a previous run wrote (record lost before it was committed): adopt them as they
    // are, so the machines are not restarted with a different initial cluster.
    let on_disk: Vec<(&Candidate, &crate::observe::OnDisk)> = i
        .candidates
        .iter()
        .filter_map(|c| Some((c, i.observed.get(&c.machine)?.config.as_ref()?)))
        .filter(|(_, d)| d.initial_state == "new")
        .collect();
    if let Some((_, first)) = on_disk.first() {
        let ic = first.initial_cluster.clone();
        let names: Vec<&str> = ic
            .split(',')
            .filter_map(|p| p.split_once('=').map(|x| x.0))
            .collect();
        let all_known = names.iter().all(|n| cx.cand(n).is_some());
        if all_known && on_disk.iter().all(|(_, d)| d.initial_cluster == ic) {
            for n in names {
                let c = cx.cand(n).expect("checked");
                let disk = cx.obs(n).and_then(|v| v.config.as_ref());
                let package = disk
                    .map(|d| d.package.clone())
                    .filter(|p| !p.is_empty())
                    .unwrap_or_else(|| i.package.to_owned());
                cx.out.record.members.push(joining(
                    c,
                    package,
                    cx.tuning,
                    &ic,
                    InitialState::New,
                    i.now,
                ));
            }
            cx.wait("bootstrapping (resumed from the configs on the machines)");
            return;
        }
    }
    let stale: Vec<&str> = i
        .candidates
        .iter()
        .filter(|c| i.observed.get(&c.machine).is_some_and(|v| v.data_dir))
        .map(|c| c.machine.as_str())
        .collect();
    if !stale.is_empty() {
        cx.wait(format!(
            "bootstrap refused: {} already {} data of cluster {} in {} but there is no record of it; restore the record or wipe the data by hand",
            stale.join(", "),
            if stale.len() == 1 { "holds" } else { "hold" },
            i.cluster,
            crate::items::paths::data(i.cluster)
        ));
        return;
    }
    let ready: Vec<&Candidate> = i
        .candidates
        .iter()
        .filter(|c| usable(c))
        .take(want)
        .collect();
    if ready.len() < want {
        cx.wait(format!(
            "bootstrap waits: {} of {want} machines ready",
            ready.len()
        ));
        return;
    }
    let ic = initial_cluster(ready.iter().map(|c| (c.machine.as_str(), c.ip)));
    for c in ready {
        cx.out.record.members.push(joining(
            c,
            i.package.to_owned(),
            cx.tuning,
            &ic,
            InitialState::New,
            i.now,
        ));
    }
    cx.wait(format!("bootstrapping {want} members"));
}
