//! `orbctl cluster restore-drill`: proves a backup restores, without touching the cluster.

use crate::args::Global;
use crate::context::{Committer, Ctx};
use anyhow::{Result, anyhow};
use orb_model::Id;
use orbiter::machine::MachineKey;
use orbiter::restore_drill;

pub fn restore_drill(
    g: &Global,
    cluster: &str,
    snapshot: Option<&str>,
    on: Option<&str>,
) -> Result<()> {
    let cluster = Id::parse(cluster).map_err(|e| anyhow!("cluster `{cluster}`: {e}"))?;
    let on = on
        .map(MachineKey::parse)
        .transpose()
        .map_err(|e| anyhow!("--on: {e}"))?;
    let mut engine = Ctx::open_as(g, Committer::Orbiter)?.engine()?;
    eprintln!("restore drill of cluster {cluster}: restoring into a temporary etcd");
    let r = restore_drill::restore_drill(&mut engine, &cluster, snapshot, on.as_ref())?;
    println!("snapshot:      {}", r.snapshot);
    println!(
        "restored on:   {} (temporary etcd on 127.0.0.1:23790, removed again)",
        r.restored_on
    );
    let checked = if r.sha256_recorded {
        "matches the record"
    } else {
        "chosen by --snapshot, no recorded checksum"
    };
    println!("sha256:        {} ({checked})", r.sha256);
    println!("revision:      {}", r.revision);
    println!("keys in file:  {}", r.total_keys);
    println!("keys served:   {}", r.keys_served);
    println!("result:        restorable");
    Ok(())
}
