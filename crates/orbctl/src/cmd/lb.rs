//! `orbctl lb status`: the load balancers as Orbiter last recorded them in
//! `orbiter/loadbalancers/` (who holds each VIP, split brain, each backend as HAProxy sees it).
//! It reads Git only: what it shows is as fresh as Orbiter's last observation.

use crate::args::{Global, Output};
use crate::context::{Ctx, read_text};
use anyhow::{Context as _, Result, bail};
use orb_lb::LoadBalancerRecord;
use orb_repo::Snapshot;
use orbiter::clusters::load_balancer::record_pool;
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Serialize)]
struct PoolStatus<'a> {
    pool: &'a str,
    #[serde(flatten)]
    record: &'a LoadBalancerRecord,
}

fn records(snap: &Snapshot<'_>) -> Result<BTreeMap<String, LoadBalancerRecord>> {
    let mut out = BTreeMap::new();
    for path in snap.list()? {
        if let Some(pool) = record_pool(&path)
            && let Some(text) = read_text(snap, &path)?
        {
            let r: LoadBalancerRecord = orbiter::state::parse_yaml(&text, &path)?;
            r.check_version()
                .map_err(anyhow::Error::msg)
                .with_context(|| path.clone())?;
            out.insert(pool, r);
        }
    }
    Ok(out)
}

pub fn status(g: &Global, pool: Option<&str>, output: Output) -> Result<()> {
    let ctx = Ctx::open(g)?;
    let mut all = records(&ctx.repo.snapshot())?;
    if let Some(p) = pool {
        all.retain(|k, _| k == p);
        if all.is_empty() {
            bail!(
                "no load balancer recorded for pool {p}; VIP pools are named <provider>.<pool> (see `loadbalancing` in orbiter.yml)"
            );
        }
    }
    if output == Output::Json {
        let list: Vec<PoolStatus> = all
            .iter()
            .map(|(pool, record)| PoolStatus { pool, record })
            .collect();
        println!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(());
    }
    if all.is_empty() {
        println!(
            "no load balancers recorded yet (Orbiter records one per VIP pool once its machines exist)"
        );
        return Ok(());
    }
    for (pool, r) in &all {
        print!("{}", text(pool, r));
    }
    Ok(())
}

/// The text form of one pool's record.
fn text(pool: &str, r: &LoadBalancerRecord) -> String {
    use std::fmt::Write as _;
    let mut s = format!("{pool}:\n");
    if !r.unobserved.is_empty() {
        let _ = writeln!(s, "  not observed: {}", r.unobserved.join(", "));
    }
    for v in &r.vips {
        let holder = match (&v.holder, v.splitbrain.is_empty()) {
            (_, false) => format!("SPLIT BRAIN: held by {}", v.splitbrain.join(", ")),
            (Some(h), true) => format!("held by {h}"),
            (None, true) => "held by no machine".to_owned(),
        };
        let _ = writeln!(s, "  VIP {}: {holder}", v.ip);
        for t in &v.transports {
            let seen = t.seenby.as_deref().unwrap_or("no machine answered");
            let _ = writeln!(
                s,
                "    {} (port {}), as {seen} sees it:",
                t.name, t.frontendport
            );
            for b in &t.backends {
                let _ = writeln!(s, "      {:<24} {:<10} {}", b.machine, b.status, b.check);
            }
        }
    }
    s
}
