//! Checks that span more than one field: references between subtrees, uniqueness, counts.
//! Per-field checks (ids, addresses, unknown fields) happen while parsing.

use crate::error::ModelError;
use crate::hint::did_you_mean;
use crate::id::Id;
use crate::kinds::etcd_cluster::{
    EtcdBackup, EtcdCluster, EtcdTuning, MAX_ELECTION_TIMEOUT_MS, MAX_QUOTA_BYTES, parse_duration,
};
use crate::kinds::node_software::NodeSoftware;
use crate::located::Located;
use crate::orb::{Node, Orb};
use crate::registry::{ClusterSpec, ProviderSpec, SoftwareSpec};
use std::collections::BTreeMap;

pub(crate) fn validate(orb: &Orb, file: &str) -> Result<(), ModelError> {
    for (id, node) in orb
        .clusters
        .iter()
        .map(|(i, n)| (i, n.pos))
        .chain(orb.software.iter().map(|(i, n)| (i, n.pos)))
    {
        let node = Node {
            spec: (),
            migrated_from: None,
            pos: node,
        };
        if orb.providers.contains_key(id)
            || (orb.clusters.contains_key(id) && orb.software.contains_key(id))
        {
            return Err(ModelError::new(file, node.pos, format!("id `{id}` is used twice (providers, clusters and software share one namespace)"))
                .with_hint("secret paths are `<provider or cluster id>.<field>`, so ids must be unique across providers and clusters"));
        }
    }
    for (id, node) in &orb.providers {
        match &node.spec {
            ProviderSpec::Static(s) => {
                let mut ids = BTreeMap::new();
                let mut ips = BTreeMap::new();
                for (pool, machines) in &s.pools {
                    for m in machines {
                        if let Some(first) = ids.insert(m.id.value.clone(), pool) {
                            return Err(ModelError::new(file, m.id.pos, format!("machine id `{}` appears twice in provider `{id}` (pools `{first}` and `{pool}`)", m.id))
                                .with_hint("machine ids are unique within a provider"));
                        }
                        if ips.insert(m.ip.value, &m.id.value).is_some() {
                            return Err(ModelError::new(
                                file,
                                m.ip.pos,
                                format!("ip {} is used by two machines of provider `{id}`", m.ip),
                            )
                            .with_hint("every machine needs its own address"));
                        }
                    }
                }
                for flagged in s.rebootrequired.iter().chain(&s.replacementrequired) {
                    if !ids.contains_key(&flagged.value) {
                        let names: Vec<&str> = ids.keys().map(Id::as_str).collect();
                        return Err(ModelError::new(
                            file,
                            flagged.pos,
                            format!("provider `{id}` has no machine `{flagged}`"),
                        )
                        .with_hint(did_you_mean(flagged.value.as_str(), &names)));
                    }
                }
            }
            ProviderSpec::Local(_) => {}
        }
    }
    for (id, node) in &orb.clusters {
        match &node.spec {
            ClusterSpec::Etcd(e) => check_etcd(orb, id, e, file)?,
        }
    }
    for (id, node) in &orb.software {
        match &node.spec {
            SoftwareSpec::Node(s) => check_software(orb, id, s, file)?,
        }
    }
    Ok(())
}

fn check_software(orb: &Orb, id: &Id, s: &NodeSoftware, file: &str) -> Result<(), ModelError> {
    for r in &s.pools {
        let Some((provider, pool)) = r.value.split_once('.') else {
            return Err(ModelError::new(
                file,
                r.pos,
                format!("software `{id}`: `{r}` is not a pool reference"),
            )
            .with_hint("write pools as `<provider>.<pool>`, e.g. lab.workers"));
        };
        let as_id = |s: &str| Id::parse(s).map_err(|e| ModelError::new(file, r.pos, e));
        let provider = Located {
            value: as_id(provider)?,
            pos: r.pos,
        };
        let pool = Located {
            value: as_id(pool)?,
            pos: r.pos,
        };
        pool_size(orb, file, &provider, &pool)?;
    }
    for item in &s.items {
        let doc = serde_json::json!({
            "kind": "NodeDesired", "version": "v1", "generation": 1, "changesallowed": true,
            "items": [item.value],
        });
        let text = serde_saphyr::to_string(&doc)
            .map_err(|e| ModelError::new(file, item.pos, e.to_string()))?;
        if let Err(e) = node_agent::model::parse_desired(&text, "item") {
            let msg = e.to_string();
            let msg = msg
                .split_once(": ")
                .map(|(_, m)| m)
                .unwrap_or(&msg)
                .to_owned();
            return Err(ModelError::new(file, item.pos, format!("software `{id}`: {msg}"))
                .with_hint("items are node-agent items, e.g. `- package: {name: curl, version: 7.88.1-10+deb12u5}`"));
        }
    }
    Ok(())
}

fn check_etcd(orb: &Orb, id: &Id, e: &EtcdCluster, file: &str) -> Result<(), ModelError> {
    let pool_size = pool_size(orb, file, &e.provider, &e.pool)?;
    let n = e.nodes.value;
    if n == 0 || n.is_multiple_of(2) {
        return Err(ModelError::new(file, e.nodes.pos, format!("cluster `{id}`: nodes is {n}; an etcd cluster needs an odd number of members"))
            .with_hint(format!("an even count tolerates no more failures than {} members and adds a machine that can break quorum; use {}", n.saturating_sub(1).max(1), n + 1)));
    }
    if let Some(size) = pool_size
        && (n as usize) > size
    {
        return Err(ModelError::new(
            file,
            e.nodes.pos,
            format!(
                "cluster `{id}` wants {n} members but pool `{}.{}` has {size} machines",
                e.provider, e.pool
            ),
        )
        .with_hint("add machines to the pool or lower nodes"));
    }
    check_etcd_tuning(id, &e.tuning, file)?;
    if let Some(b) = &e.backup {
        check_etcd_backup(orb, id, b, file)?;
    }
    Ok(())
}

fn check_etcd_tuning(id: &Id, t: &EtcdTuning, file: &str) -> Result<(), ModelError> {
    let (hb, el, quota) = (&t.heartbeatms, &t.electiontimeoutms, &t.quotabytes);
    if hb.value == 0 {
        return Err(ModelError::new(
            file,
            hb.pos,
            format!("cluster `{id}`: tuning.heartbeatms is 0"),
        )
        .with_hint("etcd's default is 100; use about the round-trip time between members"));
    }
    if el.value > MAX_ELECTION_TIMEOUT_MS {
        return Err(ModelError::new(
            file,
            el.pos,
            format!(
                "cluster `{id}`: tuning.electiontimeoutms is {}; etcd refuses more than {MAX_ELECTION_TIMEOUT_MS}",
                el.value
            ),
        )
        .with_hint("etcd's default is 1000"));
    }
    let min = u64::from(hb.value) * 5;
    if u64::from(el.value) < min {
        return Err(ModelError::new(
            file,
            el.pos.or(hb.pos),
            format!(
                "cluster `{id}`: tuning.electiontimeoutms ({}) is less than 5 heartbeats (tuning.heartbeatms is {})",
                el.value, hb.value
            ),
        )
        .with_hint(format!(
            "set tuning.electiontimeoutms to at least {min} (etcd recommends 10 heartbeats), or lower tuning.heartbeatms"
        )));
    }
    if quota.value == 0 || quota.value > MAX_QUOTA_BYTES {
        return Err(ModelError::new(
            file,
            quota.pos,
            format!(
                "cluster `{id}`: tuning.quotabytes is {}; it must be between 1 and {MAX_QUOTA_BYTES} (8 GiB)",
                quota.value
            ),
        )
        .with_hint("etcd's default is 2147483648 (2 GiB); above 8 GiB etcd is not supported"));
    }
    Ok(())
}

fn check_etcd_backup(orb: &Orb, id: &Id, b: &EtcdBackup, file: &str) -> Result<(), ModelError> {
    if let Err(msg) = parse_duration(&b.every.value) {
        return Err(ModelError::new(
            file,
            b.every.pos,
            format!("cluster `{id}`: backup.every: {msg}"),
        )
        .with_hint("write a duration like `30m`, `6h` or `1d`"));
    }
    if b.keep.value == 0 {
        return Err(ModelError::new(
            file,
            b.keep.pos,
            format!("cluster `{id}`: backup.keep is 0, which would delete every snapshot"),
        )
        .with_hint("keep at least 1 snapshot; the default is 7"));
    }
    let t = &b.target;
    let Some((provider, machine)) = t.value.split_once('.') else {
        return Err(ModelError::new(
            file,
            t.pos,
            format!("cluster `{id}`: backup.target `{t}` is not `provider.machine`"),
        )
        .with_hint("name a machine of the Orb, e.g. `lab.backup-1`"));
    };
    let Some(p) = Id::parse(provider).ok().and_then(|p| orb.providers.get(&p)) else {
        let names: Vec<&str> = orb.providers.keys().map(Id::as_str).collect();
        return Err(ModelError::new(
            file,
            t.pos,
            format!(
                "cluster `{id}`: backup.target names provider `{provider}`, which does not exist"
            ),
        )
        .with_hint(did_you_mean(provider, &names)));
    };
    let (exists, names): (bool, Vec<String>) = match &p.spec {
        ProviderSpec::Static(s) => {
            let names: Vec<String> = s
                .pools
                .values()
                .flatten()
                .map(|m| m.id.value.to_string())
                .collect();
            (names.iter().any(|n| n == machine), names)
        }
        // Local machines are named `<pool>-<n>`; n can exceed the pool's size after a
        // replacement, so only the pool part is checked.
        ProviderSpec::Local(l) => {
            let exists = machine.rsplit_once('-').is_some_and(|(pool, n)| {
                n.parse::<u32>().is_ok_and(|n| n > 0)
                    && Id::parse(pool).is_ok_and(|p| l.pools.contains_key(&p))
            });
            let names = l.pools.keys().map(|p| format!("{p}-1")).collect();
            (exists, names)
        }
    };
    if !exists {
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        return Err(ModelError::new(
            file,
            t.pos,
            format!(
                "cluster `{id}`: backup.target: provider `{provider}` has no machine `{machine}`"
            ),
        )
        .with_hint(did_you_mean(machine, &names)));
    }
    Ok(())
}

/// Resolves `provider.pool`; returns the pool's size when the provider has a fixed list of machines.
fn pool_size(
    orb: &Orb,
    file: &str,
    provider: &Located<Id>,
    pool: &Located<Id>,
) -> Result<Option<usize>, ModelError> {
    let Some(p) = orb.providers.get(&provider.value) else {
        let names: Vec<&str> = orb.providers.keys().map(Id::as_str).collect();
        return Err(ModelError::new(
            file,
            provider.pos,
            format!("provider `{provider}` does not exist"),
        )
        .with_hint(did_you_mean(provider.value.as_str(), &names)));
    };
    let (names, size): (Vec<&str>, Option<usize>) = match &p.spec {
        ProviderSpec::Static(s) => (
            s.pools.keys().map(Id::as_str).collect(),
            s.pools.get(&pool.value).map(Vec::len),
        ),
        ProviderSpec::Local(l) => (
            l.pools.keys().map(Id::as_str).collect(),
            l.pools.get(&pool.value).map(|p| p.nodes.value as usize),
        ),
    };
    match size {
        Some(n) => Ok(Some(n)),
        None => Err(ModelError::new(
            file,
            pool.pos,
            format!("provider `{provider}` has no pool `{pool}`"),
        )
        .with_hint(did_you_mean(pool.value.as_str(), &names))),
    }
}
