//! References from one subtree to another (`provider.pool`, `provider.machine`), resolved
//! through [`OrbView`] with errors that point at the reference and suggest a name.

use super::OrbView;
use crate::error::ModelError;
use crate::hint::did_you_mean;
use crate::id::Id;
use crate::located::Located;

/// Resolves `provider.pool`; returns the pool's size.
pub(crate) fn resolve_pool(
    orb: &dyn OrbView,
    file: &str,
    provider: &Located<Id>,
    pool: &Located<Id>,
) -> Result<usize, ModelError> {
    let Some(p) = orb.provider(&provider.value) else {
        let names: Vec<&str> = orb.provider_ids().into_iter().map(Id::as_str).collect();
        return Err(ModelError::new(
            file,
            provider.pos,
            format!("provider `{provider}` does not exist"),
        )
        .with_hint(did_you_mean(provider.value.as_str(), &names)));
    };
    let pools = p.pools();
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
    orb: &dyn OrbView,
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
    orb: &dyn OrbView,
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
    let Some(model) = Id::parse(provider).ok().and_then(|p| orb.provider(&p)) else {
        let names: Vec<&str> = orb.provider_ids().into_iter().map(Id::as_str).collect();
        return Err(ModelError::new(
            file,
            t.pos,
            format!("{what} names provider `{provider}`, which does not exist"),
        )
        .with_hint(did_you_mean(provider, &names)));
    };
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
