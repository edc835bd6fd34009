//! Checks that span more than one field: references between subtrees, uniqueness, counts.
//! Per-field checks (ids, addresses, unknown fields) happen while parsing.

use crate::error::ModelError;
use crate::hint::did_you_mean;
use crate::id::Id;
use crate::kinds::etcd_cluster::EtcdCluster;
use crate::located::Located;
use crate::orb::Orb;
use crate::registry::{ClusterSpec, ProviderSpec};
use std::collections::BTreeMap;

pub(crate) fn validate(orb: &Orb, file: &str) -> Result<(), ModelError> {
    for (id, node) in &orb.clusters {
        if orb.providers.contains_key(id) {
            return Err(ModelError::new(file, node.pos, format!("cluster `{id}` has the id of a provider"))
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
            }
        }
    }
    for (id, node) in &orb.clusters {
        match &node.spec {
            ClusterSpec::Etcd(e) => check_etcd(orb, id, e, file)?,
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
    match &p.spec {
        ProviderSpec::Static(s) => match s.pools.get(&pool.value) {
            Some(m) => Ok(Some(m.len())),
            None => {
                let names: Vec<&str> = s.pools.keys().map(Id::as_str).collect();
                Err(ModelError::new(
                    file,
                    pool.pos,
                    format!("provider `{provider}` has no pool `{pool}`"),
                )
                .with_hint(did_you_mean(pool.value.as_str(), &names)))
            }
        },
    }
}
