//! `LocalProvider`: Debian machines that Orbiter boots on the host it runs on (see the
//! orb-machines crate). Pools have a size, not a list, so scaling is real: this module plans
//! creating machines up to the size, destroying the newest above it, surging a successor for a
//! replaced machine and destroying the old one once its successor is ready; machines whose
//! creation was cut short and dead machines a cluster gave up on are replaced too.

use super::{MachinesInput, Provider};
use crate::action::{Action, Plan};
use crate::machine::{KnownKey, MachineKey, MachineRef, pool_index};
use crate::observed::{MachineObserved, PackageCatalog, Reach};
use crate::recorded::machine_ready;
use anyhow::{Context as _, Result};
use orb_machines::{Group, GroupSpec, Host, Suite};
use orb_model::Id;
use orb_model::kinds::local_provider::LocalProvider;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Mutex;

/// Machines of one orb-machines group; their ids are `<pool>-<n>`.
pub struct LocalMachines {
    id: Id,
    group: String,
    /// Pool sizes.
    pools: BTreeMap<Id, usize>,
    /// Package names offered by this process (see [`PackageCatalog::asked`]).
    offered: Mutex<BTreeSet<String>>,
}

impl LocalMachines {
    pub fn new(id: &Id, spec: &LocalProvider) -> Self {
        LocalMachines {
            id: id.clone(),
            group: spec.group.clone().unwrap_or_else(|| id.clone()).to_string(),
            pools: spec
                .pools
                .iter()
                .map(|(p, s)| (p.clone(), s.nodes.value as usize))
                .collect(),
            offered: Mutex::new(BTreeSet::new()),
        }
    }

    fn host() -> Result<Host> {
        Host::new().context("the Local provider boots machines on this host")
    }

    fn attach(&self, host: &Host) -> Result<Option<Group>> {
        if !host.group_names()?.iter().any(|g| g == &self.group) {
            return Ok(None);
        }
        Ok(Some(Group::attach(host, &self.group)?))
    }

    fn to_ref(
        &self,
        id: &str,
        hostname: &str,
        ip: IpAddr,
        host_key: Option<String>,
    ) -> Result<MachineRef> {
        let machine = Id::parse(id).map_err(anyhow::Error::msg)?;
        let pool = self
            .pools
            .keys()
            .find(|p| pool_index(p, &machine).is_some())
            .cloned()
            .or_else(|| id.rsplit_once('-').and_then(|(p, _)| Id::parse(p).ok()))
            .unwrap_or_else(|| machine.clone());
        Ok(MachineRef {
            key: MachineKey::new(&self.id, &machine),
            pool,
            hostname: hostname.to_owned(),
            ip,
            user: "orbiter".into(),
            known_key: host_key.map(KnownKey::Vouched),
        })
    }

    fn plan_pool(&self, input: &MachinesInput<'_>, pool: &Id, want: usize, plan: &mut Plan) {
        let pid = input.provider;
        let flagged_id = |m: &MachineObserved| input.replace.contains(&&m.machine.key.machine);
        let in_pool: Vec<&MachineObserved> = input
            .machines
            .iter()
            .copied()
            .filter(|m| m.machine.pool == *pool)
            .collect();
        let flagged: Vec<&MachineObserved> =
            in_pool.iter().copied().filter(|m| flagged_id(m)).collect();
        // Machines whose creation was cut short: never reached (so never pinned), unreachable now.
        let stillborn = |m: &MachineObserved| {
            matches!(m.reach, Reach::Unreachable(_))
                && !input.recorded.pinned.contains_key(&m.machine.key)
        };
        for m in in_pool.iter().filter(|m| !flagged_id(m)) {
            let key = &m.machine.key;
            if stillborn(m) {
                plan.step(
                    Action::DestroyMachine {
                        machine: key.clone(),
                    },
                    "its creation was cut short: never reached, unreachable now; it is created again",
                );
            } else if let Some(why) = input.heal.get(key) {
                plan.step(
                    Action::DestroyMachine {
                        machine: key.clone(),
                    },
                    why.clone(),
                );
            }
        }
        let keep: Vec<&MachineObserved> = in_pool
            .iter()
            .copied()
            .filter(|m| !flagged_id(m) && !input.heal.contains_key(&m.machine.key) && !stillborn(m))
            .collect();
        let mut used: BTreeSet<u32> = in_pool
            .iter()
            .filter_map(|m| pool_index(pool, &m.machine.key.machine))
            .collect();
        for _ in keep.len()..want {
            let n = (1..).find(|n| !used.contains(n)).expect("a free index");
            used.insert(n);
            let machine =
                Id::parse(&format!("{pool}-{n}")).expect("pool ids make valid machine ids");
            let why = if flagged.is_empty() {
                format!(
                    "pool {pid}.{pool} wants {want} machines, has {}",
                    keep.len()
                )
            } else {
                let names: Vec<String> =
                    flagged.iter().map(|m| m.machine.key.to_string()).collect();
                format!("surge: a replacement for {}", names.join(", "))
            };
            plan.step(
                Action::CreateMachine {
                    provider: pid.clone(),
                    pool: pool.clone(),
                    machine,
                },
                why,
            );
        }
        if keep.len() > want {
            let mut extra = keep.clone();
            extra.sort_by_key(|m| std::cmp::Reverse(pool_index(pool, &m.machine.key.machine)));
            for m in extra.into_iter().take(keep.len() - want) {
                if let Some(why) = input.held.get(&m.machine.key) {
                    plan.waiting.push(format!(
                        "scale-in of pool {pid}.{pool}: {} stays for now: {why}",
                        m.machine.key
                    ));
                    continue;
                }
                plan.step(
                    Action::DestroyMachine {
                        machine: m.machine.key.clone(),
                    },
                    format!(
                        "pool {pid}.{pool} wants {want} machines, has {}",
                        keep.len()
                    ),
                );
            }
        }
        let successors_ready =
            keep.len() >= want && keep.iter().all(|m| machine_ready(m, input.recorded));
        for f in &flagged {
            let key = &f.machine.key;
            if !successors_ready {
                plan.waiting.push(format!(
                    "replacement of {key}: waiting until its successor is ready"
                ));
            } else if let Some(why) = input.held.get(key) {
                plan.waiting.push(format!(
                    "replacement of {key}: its successor is ready; it stays for now: {why}"
                ));
            } else {
                plan.step(
                    Action::DestroyMachine {
                        machine: key.clone(),
                    },
                    "replacement requested; its successor is ready",
                );
                plan.step(
                    Action::ClearReplacement {
                        machine: key.clone(),
                    },
                    "replacement done",
                );
            }
        }
    }
}

impl Provider for LocalMachines {
    fn machines(&self) -> Result<Vec<MachineRef>> {
        let host = Self::host()?;
        let Some(group) = self.attach(&host)? else {
            return Ok(Vec::new());
        };
        group
            .machines()?
            .into_iter()
            .map(|m| {
                // Generated on this host when the machine was made: the machine cannot forge it.
                let key = group
                    .machine(&m.id)
                    .and_then(|h| h.host_public_key())
                    .ok()
                    .filter(|k| !k.is_empty());
                self.to_ref(&m.id, &m.hostname, IpAddr::V4(m.ip), key)
            })
            .collect()
    }

    fn packages(&self) -> Result<Option<PackageCatalog>> {
        let host = Self::host()?;
        let asked = self.offered.lock().expect("offered lock").clone();
        let versions = match self.attach(&host)? {
            Some(group) => group
                .package_index()?
                .into_iter()
                .map(|(name, vs)| (name, vs.into_iter().collect()))
                .collect(),
            None => BTreeMap::new(),
        };
        Ok(Some(PackageCatalog { versions, asked }))
    }

    fn plan_machines(&self, input: &MachinesInput<'_>) -> Plan {
        let mut plan = Plan::default();
        for (pool, want) in &self.pools {
            self.plan_pool(input, pool, *want, &mut plan);
        }
        plan
    }

    fn create(&self, _pool: &Id, machine: &Id, pubkey: &str) -> Result<MachineRef> {
        let host = Self::host()?;
        let group = match self.attach(&host)? {
            Some(g) => g,
            None => Group::up(
                &host,
                &GroupSpec {
                    name: self.group.clone(),
                    pubkey: pubkey.to_owned(),
                    // keepalived on a load balancing machine manages its VIPs itself, and a
                    // provider may get a load balancer after its machines exist. The capability
                    // is confined to the machine's own network namespace.
                    net_admin: true,
                },
            )?,
        };
        let m = group.create_machine(machine.as_str())?;
        let key = m.host_public_key().ok();
        self.to_ref(m.id(), m.hostname(), IpAddr::V4(m.ip()), key)
    }

    fn destroy(&self, key: &MachineKey) -> Result<()> {
        let host = Self::host()?;
        if let Some(group) = self.attach(&host)? {
            group.destroy_machine(key.machine.as_str())?;
        }
        Ok(())
    }

    fn offer_packages(&self, names: &[String]) -> Result<()> {
        let host = Self::host()?;
        let Some(group) = self.attach(&host)? else {
            return Ok(());
        };
        let new: Vec<&str> = names.iter().map(String::as_str).collect();
        group.add_packages(Suite::Bookworm, &new)?;
        // Newer versions (the upgrade path) come from the next release, pinned low so they are
        // installed only when asked for by version. Not every package of the next release
        // installs on this one (a newer libc, say); then only this release's versions are
        // offered, and asking for another version fails on the machine with apt's own message.
        let _ = group.add_packages(Suite::Trixie, &new);
        self.offered
            .lock()
            .expect("offered lock")
            .extend(names.iter().cloned());
        Ok(())
    }

    fn teardown(&self) -> Result<()> {
        let host = Self::host()?;
        if let Some(group) = self.attach(&host)? {
            group.down()?;
        }
        Ok(())
    }

    fn creates_machines(&self) -> bool {
        true
    }

    fn on_this_host(&self) -> bool {
        true
    }
}
