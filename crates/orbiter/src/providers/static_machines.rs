//! `StaticProvider`: machines that already exist, listed in orbiter.yml and reached over SSH.
//! Orbiter never creates or destroys them; a replacement waits for the person.

use super::{MachinesInput, Provider};
use crate::action::Plan;
use crate::machine::{KnownKey, MachineKey, MachineRef};
use crate::observed::PackageCatalog;
use anyhow::{Result, bail};
use orb_model::Id;
use orb_model::kinds::static_provider::StaticProvider;

pub struct StaticMachines {
    id: Id,
    listed: Vec<MachineRef>,
}

impl StaticMachines {
    pub fn new(id: &Id, spec: &StaticProvider) -> Self {
        StaticMachines {
            id: id.clone(),
            listed: listed_machines(id, spec),
        }
    }
}

/// The machines of a Static provider, pool by pool in the listed order.
pub fn listed_machines(pid: &Id, s: &StaticProvider) -> Vec<MachineRef> {
    s.pools
        .iter()
        .flat_map(|(pool, ms)| {
            ms.iter().map(move |m| MachineRef {
                key: MachineKey::new(pid, &m.id.value),
                pool: pool.clone(),
                hostname: m.hostname.to_string(),
                ip: m.ip.value,
                user: s.user.value.clone(),
                known_key: m
                    .hostkey
                    .as_ref()
                    .map(|k| KnownKey::Declared(k.value.clone())),
            })
        })
        .collect()
}

impl Provider for StaticMachines {
    fn machines(&self) -> Result<Vec<MachineRef>> {
        Ok(self.listed.clone())
    }

    fn packages(&self) -> Result<Option<PackageCatalog>> {
        Ok(None)
    }

    fn plan_machines(&self, input: &MachinesInput<'_>) -> Plan {
        let mut plan = Plan::default();
        for id in input.replace {
            plan.waiting.push(format!("replacement of {}.{id}: a Static provider cannot create machines; add a spare machine to the pool, then remove {id} from the pool list and from replacementrequired", input.provider));
        }
        plan
    }

    fn create(&self, pool: &Id, _: &Id, _: &str) -> Result<MachineRef> {
        bail!(
            "provider {}: static machines are listed in orbiter.yml, not created; add one to pool {pool}",
            self.id
        )
    }

    fn destroy(&self, key: &MachineKey) -> Result<()> {
        bail!(
            "provider {}: static machines are not destroyed by Orbiter; remove {key} from its pool list",
            self.id
        )
    }

    fn offer_packages(&self, _: &[String]) -> Result<()> {
        Ok(())
    }

    fn teardown(&self) -> Result<()> {
        Ok(())
    }

    fn creates_machines(&self) -> bool {
        false
    }
}
