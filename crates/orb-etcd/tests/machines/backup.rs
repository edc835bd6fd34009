//! Snapshots through a member with pruning, and the restore drill: the newest snapshot becomes
//! a fresh one-member cluster serving every acknowledged write.

use crate::helpers::{
    healthy_with, log, put, run_step, sh, sh_ok, wait_agent, wait_member, write_desired,
};
use crate::lab::{CLUSTER, Lab, OLD};
use orb_etcd::items::InitialState;
use orb_etcd::load::{self, LoadReport};
use orb_etcd::observe::MemberView;
use orb_etcd::steps::{EtcdStep, parse_restore_result, parse_snapshot_result};
use orb_machines::Machine;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Three snapshots through e1, pruned to the newest two.
pub(crate) fn snapshots(t0: Instant, ms: &[Machine]) {
    for n in 1..=3 {
        let snap = EtcdStep::Snapshot {
            cluster: CLUSTER.into(),
            via: "e1".into(),
            path: format!("/var/backups/orb-etcd/kv-2026010{n}T000000Z.db"),
        };
        let (size, sha) = parse_snapshot_result(&run_step(ms, &snap)).unwrap();
        assert!(size > 0 && sha.len() == 64);
    }
    let prune = EtcdStep::PruneSnapshots {
        cluster: CLUSTER.into(),
        on: "e1".into(),
        dir: "/var/backups/orb-etcd".into(),
        keep: 2,
    };
    let out = run_step(ms, &prune);
    assert!(out.contains("kv-20260101T000000Z.db"), "{out}");
    let left = sh_ok(&ms[0], "ls /var/backups/orb-etcd");
    assert_eq!(left.split_whitespace().count(), 2, "{left}");
    log(t0, "snapshots taken and pruned");
}

/// Restores the newest snapshot on e5 (wiped before); `all` and `log_text` are the load
/// client's, `v34` the old cluster as observed on e1.
pub(crate) fn restore_drill(
    t0: Instant,
    ms: &[Machine],
    lab: &mut Lab,
    all: &LoadReport,
    log_text: &str,
    v34: &MemberView,
) {
    let newest = "/var/backups/orb-etcd/kv-20260103T000000Z.db";
    let bytes = std::fs::read(format!("/proc/{}/root{newest}", ms[0].init_pid().unwrap())).unwrap();
    put(&ms[4], "/var/tmp/restore.db", &bytes);
    let e5_peer = orb_etcd::items::peer_url(IpAddr::V4(ms[4].ip()));
    let restore = EtcdStep::Restore {
        cluster: CLUSTER.into(),
        on: "e5".into(),
        snapshot: "/var/tmp/restore.db".into(),
        name: "e5".into(),
        peer_url: e5_peer,
    };
    let report = parse_restore_result(&run_step(ms, &restore)).unwrap();
    assert!(report.total_keys > all.acked, "{report:?}");
    let (ok, out) = sh(&ms[4], &restore.command());
    assert!(
        !ok && out.contains("already holds data"),
        "a second restore must refuse: {out}"
    );
    lab.generation += 1;
    write_desired(
        &ms[4],
        lab.generation,
        lab.items(ms, 4, OLD, &[4], InitialState::New),
    );
    wait_agent(&ms[4], lab.generation, Duration::from_secs(60));
    let v = wait_member(
        &ms[4],
        "the restored member healthy",
        Duration::from_secs(60),
        healthy_with(1),
    );
    assert_ne!(
        v.cluster_id, v34.cluster_id,
        "a restore makes a new cluster"
    );
    let e = orb_etcd::observe::etcdctl(CLUSTER);
    assert_eq!(
        sh_ok(
            &ms[4],
            &format!("{e} get before-upgrade --print-value-only")
        )
        .trim(),
        "v"
    );
    let restored_keys = sh_ok(&ms[4], &format!("{e} get --prefix --keys-only load/"));
    let lost = load::analyze(log_text, &restored_keys, "load", None);
    assert_eq!(
        lost.lost_acked_writes, 0,
        "acknowledged writes missing after restore: {lost:?}"
    );
    log(
        t0,
        &format!(
            "restore drill: revision {} with {} keys, every acknowledged write readable",
            report.revision, report.total_keys
        ),
    );
}
