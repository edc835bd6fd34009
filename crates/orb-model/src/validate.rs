//! Checks that span more than one subtree: one namespace of ids, and each kind's own checks
//! (`kinds/`), which see the rest of the Orb through [`OrbView`]. Per-field checks (ids,
//! addresses, unknown fields) happen while reading (`orb.rs`); [`Orb::parse`] is both.

use crate::error::ModelError;
use crate::id::Id;
use crate::kinds::load_balancer::{TransportRef, check_load_balancers};
use crate::kinds::{OrbView, ProviderModel};
use crate::located::Pos;
use crate::orb::Orb;

impl Orb {
    /// Parses and validates `text`; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<Orb, ModelError> {
        let orb = Orb::read(text, file)?;
        validate(&orb, file)?;
        Ok(orb)
    }

    /// The transport named `name` (unique in a valid Orb) with the provider, pool and VIP that
    /// carry it: how a cluster finds its endpoint.
    pub fn transport(&self, name: &str) -> Option<TransportRef<'_>> {
        self.transports()
            .into_iter()
            .find(|t| t.transport.name.value.as_str() == name)
    }
}

fn validate(orb: &Orb, file: &str) -> Result<(), ModelError> {
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
    check_load_balancers(orb, file)?;
    for (id, node) in &orb.clusters {
        node.spec.model().validate(orb, id, file)?;
    }
    for (id, node) in &orb.software {
        node.spec.model().validate(orb, id, file)?;
    }
    orb.rollout.validate(orb, file)?;
    Ok(())
}

impl OrbView for Orb {
    fn provider(&self, id: &Id) -> Option<&dyn ProviderModel> {
        self.providers.get(id).map(|n| n.spec.model())
    }

    fn provider_ids(&self) -> Vec<&Id> {
        self.providers.keys().collect()
    }

    fn position(&self, id: &Id) -> Option<Pos> {
        self.providers
            .get(id)
            .map(|n| n.pos)
            .or_else(|| self.clusters.get(id).map(|n| n.pos))
            .or_else(|| self.software.get(id).map(|n| n.pos))
            .flatten()
    }

    fn transports(&self) -> Vec<TransportRef<'_>> {
        let mut out = Vec::new();
        for (provider, node) in &self.providers {
            let Some(lb) = node.spec.model().loadbalancing() else {
                continue;
            };
            for (pool, vip) in lb.vips() {
                out.extend(vip.transport.iter().map(|transport| TransportRef {
                    provider,
                    pool,
                    ip: vip.ip.value,
                    transport,
                }));
            }
        }
        out
    }
}
