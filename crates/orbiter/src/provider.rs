//! Providers behind one small trait: which machines exist, and (where possible) creating and
//! destroying them. Static machines are listed in orbiter.yml; Local ones are booted on this host.

use crate::machine::{MachineKey, MachineRef};
use anyhow::{Context as _, Result, bail};
use orb_machines::{Group, GroupSpec, Host, Suite};
use orb_model::{Id, ProviderSpec};
use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::Mutex;

pub trait Provider: Send + Sync {
    /// The machines that exist now.
    fn machines(&self) -> Result<Vec<MachineRef>>;
    /// Creates a machine that admits `pubkey` for its SSH user.
    fn create(&self, pool: &Id, machine: &Id, pubkey: &str) -> Result<MachineRef>;
    fn destroy(&self, key: &MachineKey) -> Result<()>;
    /// Makes packages installable on this provider's machines (a Local provider's machines see
    /// only their group's apt repository). Names are Debian package names.
    fn offer_packages(&self, names: &[String]) -> Result<()>;
    /// Debian versions of `name` this provider's machines can install, when the provider
    /// knows (its own repository); `None`: ask the machines' apt.
    fn package_versions(&self, name: &str) -> Result<Option<Vec<String>>>;
    /// Removes everything the provider created (teardown).
    fn teardown(&self) -> Result<()>;
}

pub fn for_spec(id: &Id, spec: &ProviderSpec) -> Box<dyn Provider> {
    match spec {
        ProviderSpec::Static(_) => Box::new(StaticMachines {
            id: id.clone(),
            listed: crate::plan::listed_machines(id, spec),
        }),
        ProviderSpec::Local(l) => Box::new(LocalMachines {
            id: id.clone(),
            group: l.group.clone().unwrap_or_else(|| id.clone()).to_string(),
            pools: l.pools.keys().cloned().collect(),
            offered: Mutex::new(BTreeSet::new()),
        }),
    }
}

struct StaticMachines {
    id: Id,
    listed: Vec<MachineRef>,
}

impl Provider for StaticMachines {
    fn machines(&self) -> Result<Vec<MachineRef>> {
        Ok(self.listed.clone())
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
    fn package_versions(&self, _: &str) -> Result<Option<Vec<String>>> {
        Ok(None)
    }
    fn teardown(&self) -> Result<()> {
        Ok(())
    }
}

/// Machines of one orb-machines group; their ids are `<pool>-<n>`.
struct LocalMachines {
    id: Id,
    group: String,
    pools: BTreeSet<Id>,
    offered: Mutex<BTreeSet<String>>,
}

impl LocalMachines {
    fn host() -> Result<Host> {
        Host::new().context("the Local provider boots machines on this host")
    }

    fn attach(&self, host: &Host) -> Result<Option<Group>> {
        if !host.group_names()?.iter().any(|g| g == &self.group) {
            return Ok(None);
        }
        Ok(Some(Group::attach(host, &self.group)?))
    }

    fn to_ref(&self, id: &str, hostname: &str, ip: IpAddr) -> Result<MachineRef> {
        let machine = Id::parse(id).map_err(anyhow::Error::msg)?;
        let pool = self
            .pools
            .iter()
            .find(|p| crate::plan::local_index(p, &machine).is_some())
            .cloned()
            .or_else(|| id.rsplit_once('-').and_then(|(p, _)| Id::parse(p).ok()))
            .unwrap_or_else(|| machine.clone());
        Ok(MachineRef {
            key: MachineKey::new(&self.id, &machine),
            pool,
            hostname: hostname.to_owned(),
            ip,
            user: "orbiter".into(),
        })
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
            .map(|m| self.to_ref(&m.id, &m.hostname, IpAddr::V4(m.ip)))
            .collect()
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
                    net_admin: false,
                },
            )?,
        };
        let m = group.create_machine(machine.as_str())?;
        self.to_ref(m.id(), m.hostname(), IpAddr::V4(m.ip()))
    }

    fn destroy(&self, key: &MachineKey) -> Result<()> {
        let host = Self::host()?;
        if let Some(group) = self.attach(&host)? {
            group.destroy_machine(key.machine.as_str())?;
        }
        Ok(())
    }

    fn offer_packages(&self, names: &[String]) -> Result<()> {
        let mut offered = self.offered.lock().expect("offered lock");
        let new: Vec<&str> = names
            .iter()
            .filter(|n| !offered.contains(*n))
            .map(String::as_str)
            .collect();
        if new.is_empty() {
            return Ok(());
        }
        let host = Self::host()?;
        let Some(group) = self.attach(&host)? else {
            return Ok(());
        };
        group.add_packages(Suite::Bookworm, &new)?;
        // Newer versions (the upgrade path) come from the next release, pinned low so they are
        // installed only when asked for by version. Not every package of the next release
        // installs on this one (a newer libc, say); then only this release's versions are
        // offered, and asking for another version fails on the machine with apt's own message.
        let _ = group.add_packages(Suite::Trixie, &new);
        offered.extend(new.iter().map(|s| s.to_string()));
        Ok(())
    }

    fn package_versions(&self, name: &str) -> Result<Option<Vec<String>>> {
        self.offer_packages(&[name.to_owned()])?;
        let host = Self::host()?;
        Ok(match self.attach(&host)? {
            Some(group) => Some(group.package_versions(name)?),
            None => None,
        })
    }

    fn teardown(&self) -> Result<()> {
        let host = Self::host()?;
        if let Some(group) = self.attach(&host)? {
            group.down()?;
        }
        Ok(())
    }
}
