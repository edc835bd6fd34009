//! `orbctl cluster restore-drill`: proves a backup restores, without touching the cluster.
//! `orbctl cluster rotate-certs`: asks for a certificate rotation (a time in the spec).

use crate::args::Global;
use crate::context::{Committer, Ctx, read_orb};
use anyhow::{Result, anyhow, bail};
use orb_model::registry::ClusterSpec;
use orb_model::{Id, Located, ORBITER_YML};
use orb_repo::FileChange;
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

/// Sets `clusters.<id>.spec.rotatecerts` to now: Orbiter rotates every CA and certificate of
/// the cluster once (a newer time than the one its record says it answered).
pub fn rotate_certs(g: &Global, cluster: &str) -> Result<()> {
    let id = Id::parse(cluster).map_err(|e| anyhow!("cluster `{cluster}`: {e}"))?;
    let mut ctx = Ctx::open(g)?;
    let now = node_protocol::timefmt::format_rfc3339(node_protocol::timefmt::now_secs());
    let msg = format!("Rotate the certificates of cluster {id}\n\nby orbctl cluster rotate-certs");
    let outcome = super::update(&mut ctx.repo, &msg, |snap| {
        let mut orb = read_orb(snap)?;
        request_rotation(&mut orb, &id, &now)?;
        let text = orb.to_yaml();
        orb_model::Orb::parse(&text, ORBITER_YML)?;
        Ok(vec![FileChange::write(ORBITER_YML, text)])
    })?;
    super::report(&outcome, ORBITER_YML);
    eprintln!(
        "cluster {id}: rotation requested at {now}; `orbctl plan` shows its progress (clients: read `{id}.ca` now, `{id}.clientcert`/`{id}.clientkey` again once every member trusts the new CA)"
    );
    Ok(())
}

/// Sets `rotatecerts` of cluster `id` to `now`.
fn request_rotation(orb: &mut orb_model::Orb, id: &Id, now: &str) -> Result<()> {
    let known: Vec<String> = orb.clusters.keys().map(|k| k.to_string()).collect();
    let Some(node) = orb.clusters.get_mut(id) else {
        bail!(
            "no cluster {id} in {ORBITER_YML}; known: {}",
            if known.is_empty() {
                "none".to_owned()
            } else {
                known.join(", ")
            }
        );
    };
    match &mut node.spec {
        ClusterSpec::Etcd(e) => e.rotatecerts = Some(Located::new(now.to_owned())),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORB: &str = "kind: Orb
version: v1
providers:
  lab:
    kind: StaticProvider
    version: v1
    spec:
      pools:
        etcd:
          - {id: e-1, hostname: e-1, ip: 10.0.0.1}
clusters:
  kv:
    kind: EtcdCluster
    version: v1
    spec: {provider: lab, pool: etcd, nodes: 1, version: 3.4.23}
";

    #[test]
    fn a_request_is_a_time_in_the_spec_and_a_later_one_replaces_it() {
        let mut orb = orb_model::Orb::parse(ORB, ORBITER_YML).unwrap();
        let kv = Id::parse("kv").unwrap();
        request_rotation(&mut orb, &kv, "2026-05-01T10:00:00Z").unwrap();
        let text = orb.to_yaml();
        assert!(
            text.contains("rotatecerts: \"2026-05-01T10:00:00Z\""),
            "{text}"
        );
        let mut back = orb_model::Orb::parse(&text, ORBITER_YML).unwrap();
        request_rotation(&mut back, &kv, "2026-06-01T00:00:00Z").unwrap();
        assert!(
            back.to_yaml()
                .contains("rotatecerts: \"2026-06-01T00:00:00Z\"")
        );
        let e = request_rotation(&mut back, &Id::parse("db").unwrap(), "x")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("no cluster db") && e.contains("known: kv"),
            "{e}"
        );
    }
}
