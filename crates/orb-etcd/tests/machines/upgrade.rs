//! A rolling upgrade of one member, 3.4.23 -> 3.5.16: its config names the version, it keeps
//! its identity and data, and the mixed cluster stays healthy.

use crate::helpers::{healthy_with, log, observe, sh_ok, wait_agent, wait_member, write_desired};
use crate::lab::{CLUSTER, Lab, NEW};
use orb_etcd::items::InitialState;
use orb_machines::Machine;
use std::time::{Duration, Instant};

/// Upgrades e2 (which keeps the initial cluster `first` it was bootstrapped with).
pub(crate) fn one_member(t0: Instant, ms: &[Machine], lab: &mut Lab, first: [usize; 3]) {
    let e2_before = observe(&ms[1]).0;
    // e2 keeps the initial cluster it was bootstrapped with: only the version changes.
    lab.generation += 1;
    write_desired(
        &ms[1],
        lab.generation,
        lab.items(ms, 1, NEW, &first, InitialState::New),
    );
    wait_agent(&ms[1], lab.generation, Duration::from_secs(180));
    let v = wait_member(
        &ms[1],
        "e2 on 3.5.16, healthy",
        Duration::from_secs(60),
        |v| v.version.as_deref() == Some("3.5.16") && healthy_with(4)(v),
    );
    assert_eq!(v.id, e2_before.id, "the member keeps its identity and data");
    assert_eq!(v.package.as_deref(), Some(NEW));
    assert_eq!(v.config.as_ref().map(|c| c.package.as_str()), Some(NEW));
    let out = sh_ok(
        &ms[1],
        &format!(
            "{} get before-upgrade --print-value-only",
            orb_etcd::observe::etcdctl(CLUSTER)
        ),
    );
    assert_eq!(out.trim(), "v");
    log(t0, "e2 upgraded to 3.5.16, mixed cluster healthy");
}
