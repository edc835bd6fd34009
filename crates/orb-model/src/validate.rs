//! Checks that span more than one subtree: one namespace of ids, and references from one
//! subtree to another (pools, machines). Each kind checks its own fields in its module
//! (`kinds/`); per-field checks (ids, addresses, unknown fields) happen while parsing.

use crate::error::ModelError;
use crate::hint::did_you_mean;
use crate::id::Id;
use crate::located::Located;
use crate::orb::Orb;

pub(crate) fn validate(orb: &Orb, file: &str) -> Result<(), ModelError> {
    for (id, pos) in orb
        .clusters
        .iter()
        .map(|(i, n)| (i, n.pos))
        .chain(orb.software.iter().map(|(i, n)| (i, n.pos)))
    {
        if orb.providers.contains_key(id)
            || (orb.clusters.contains_key(id) && orb.software.contains_key(id))
        {
            return Err(ModelError::new(file, pos, format!("id `{id}` is used twice (providers, clusters and software share one namespace)"))
                .with_hint("secret paths are `<provider, cluster or software id>.<field>`, so ids must be unique across all three"));
        }
    }
    for (id, node) in &orb.providers {
        node.spec.model().validate(orb, id, file)?;
    }
    for (id, node) in &orb.clusters {
        node.spec.model().validate(orb, id, file)?;
    }
    for (id, node) in &orb.software {
        node.spec.model().validate(orb, id, file)?;
    }
    Ok(())
}

/// Resolves `provider.pool`; returns the pool's size.
pub(crate) fn resolve_pool(
    orb: &Orb,
    file: &str,
    provider: &Located<Id>,
    pool: &Located<Id>,
) -> Result<usize, ModelError> {
    let Some(p) = orb.providers.get(&provider.value) else {
        let names: Vec<&str> = orb.providers.keys().map(Id::as_str).collect();
        return Err(ModelError::new(
            file,
            provider.pos,
            format!("provider `{provider}` does not exist"),
        )
        .with_hint(did_you_mean(provider.value.as_str(), &names)));
    };
    let pools = p.spec.model().pools();
    match pools.iter().find(|(id, _)| **id == pool.value) {
        Some((_, n)) => Ok(*n),
        None => {
            let names: Vec<&str> = pools.iter().map(|(id, _)| id.as_str()).collect();
            Err(ModelError::new(
                file,
                pool.pos,
                format!("provider `{provider}` has no pool `{pool}`"),
            )
            .with_hint(did_you_mean(pool.value.as_str(), &names)))
        }
    }
}

/// Resolves a `provider.pool` reference written as one string (NodeSoftware `pools`).
pub(crate) fn resolve_pool_ref(
    orb: &Orb,
    file: &str,
    what: &str,
    r: &Located<String>,
) -> Result<usize, ModelError> {
    let Some((provider, pool)) = r.value.split_once('.') else {
        return Err(ModelError::new(
            file,
            r.pos,
            format!("{what}: `{r}` is not a pool reference"),
        )
        .with_hint("write pools as `<provider>.<pool>`, e.g. lab.workers"));
    };
    let at = |s: &str| {
        Id::parse(s)
            .map(|value| Located { value, pos: r.pos })
            .map_err(|e| ModelError::new(file, r.pos, e))
    };
    resolve_pool(orb, file, &at(provider)?, &at(pool)?)
}

/// Checks a `provider.machine` reference: the provider exists and may have that machine.
pub(crate) fn check_machine_ref(
    orb: &Orb,
    file: &str,
    what: &str,
    t: &Located<String>,
) -> Result<(), ModelError> {
    let Some((provider, machine)) = t.value.split_once('.') else {
        return Err(ModelError::new(
            file,
            t.pos,
            format!("{what} `{t}` is not `provider.machine`"),
        )
        .with_hint("name a machine of the Orb, e.g. `lab.backup-1`"));
    };
    let Some(p) = Id::parse(provider).ok().and_then(|p| orb.providers.get(&p)) else {
        let names: Vec<&str> = orb.providers.keys().map(Id::as_str).collect();
        return Err(ModelError::new(
            file,
            t.pos,
            format!("{what} names provider `{provider}`, which does not exist"),
        )
        .with_hint(did_you_mean(provider, &names)));
    };
    let model = p.spec.model();
    if !model.may_have_machine(machine) {
        let names = model.example_machines();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        return Err(ModelError::new(
            file,
            t.pos,
            format!("{what}: provider `{provider}` has no machine `{machine}`"),
        )
        .with_hint(did_you_mean(machine, &names)));
    }
    Ok(())
}
