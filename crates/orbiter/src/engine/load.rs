//! Reading everything a plan needs from one snapshot of the repository: the desired state
//! (the last valid one while the newest is invalid), Orbiter's own files (version-checked),
//! the secrets opened with the Orb's key, and the providers and cluster kinds built from
//! their subtrees.

use super::{Engine, read};
use crate::clusters::{ClusterKind, record_path};
use crate::credentials::{Credentials, maintenance_private_path, maintenance_public_path};
use crate::machine::MachineKey;
use crate::metrics::Metrics;
use crate::node_desired::SoftwareSecrets;
use crate::providers::{Provider, for_spec};
use crate::recorded::Recorded;
use crate::rollout::{self, RolloutRecord};
use crate::ssh::HostKey;
use crate::state::{self, GeneratedSecrets, HostKeys, OrbCurrent};
use anyhow::{Context as _, Result, anyhow};
use node_protocol::{Form, NodeDesired, SecretBytes};
use orb_model::{Id, ORBITER_YML, Orb};
use orb_secrets::{Keyring, SecretKey};
use std::collections::BTreeMap;

/// Desired and recorded state as read from one snapshot, plus what apply changed in memory.
pub struct Loaded {
    pub orb: Orb,
    pub desired_error: Option<String>,
    pub recorded: Recorded,
    pub hostkeys: HostKeys,
    /// Pins this iteration added (`Some`) or dropped (`None`): applied to the newest head's
    /// file when committing, so a person's concurrent unpin is not overwritten.
    pub pin_changes: BTreeMap<MachineKey, Option<HostKey>>,
    pub secrets: GeneratedSecrets,
    /// The keyring `key` opened (secrets are sealed into a head only if it has the same).
    pub keyring: Keyring,
    pub key: SecretKey,
    pub software_secrets: SoftwareSecrets,
    pub creds: BTreeMap<Id, Credentials>,
    pub providers: BTreeMap<Id, Box<dyn Provider>>,
    /// Errors of applied steps by machine, reported in current.yml.
    pub errors: BTreeMap<MachineKey, String>,
    pub destroyed: bool,
    /// The cluster kinds of orbiter.yml with their records and secrets.
    pub clusters: Vec<(Id, Box<dyn ClusterKind>)>,
    /// The pools' rollout records, by `provider.pool`; after each round, the plan's.
    pub rollouts: BTreeMap<String, RolloutRecord>,
    /// The secrets of recorded revisions, opened, by revision id.
    pub revision_secrets: BTreeMap<String, SoftwareSecrets>,
}

impl Engine {
    /// Fetches and reads everything a plan needs. An invalid orbiter.yml keeps the last valid
    /// one this process read in force; a process that never saw a valid one does nothing.
    pub fn load(&mut self) -> Result<Loaded> {
        self.repo.fetch()?;
        let snap = self.repo.snapshot();
        let text = read(&snap, ORBITER_YML)?
            .ok_or_else(|| anyhow!("the repository has no {ORBITER_YML}"))?;
        let (orb, desired_error) = self.desired.accept(&text, &self.metrics)?;
        let key = self.keys.key_for(&snap)?;
        let keyring = self
            .keys
            .keyring()
            .cloned()
            .expect("a key comes with its keyring");
        let hostkeys_text = read(&snap, state::HOSTKEYS)?;
        let hostkeys: HostKeys = match &hostkeys_text {
            Some(t) => state::parse(t, state::HOSTKEYS)?,
            None => HostKeys::new(),
        };
        let secrets: GeneratedSecrets = match read(&snap, state::SECRETS)? {
            Some(t) => state::parse(&t, state::SECRETS)?,
            None => GeneratedSecrets::new(),
        };
        let destroyed = match read(&snap, state::CURRENT)? {
            Some(t) => state::parse::<OrbCurrent>(&t, state::CURRENT)?.destroyed,
            None => false,
        };
        let mut recorded = Recorded {
            pinned: hostkeys.keys.clone(),
            ..Default::default()
        };
        let paths = snap.list()?;
        let managed = paths
            .iter()
            .filter(|p| state::node_file_machine(p, "desired.yml").is_some())
            .count();
        if hostkeys_text.is_none() && managed > 0 {
            return Err(anyhow!(
                "{} is missing although Orbiter manages {managed} machines (their records are in orbiter/nodes/); nothing is done until it is restored from the repository's history (e.g. `git checkout <commit> -- {}`): machines are never pinned again on their own",
                state::HOSTKEYS,
                state::HOSTKEYS
            ));
        }
        let mut rollouts = BTreeMap::new();
        for path in &paths {
            if let Some(pool) = rollout::record_pool(path)
                && let Some(t) = read(&snap, path)?
            {
                rollouts.insert(pool, state::parse::<RolloutRecord>(&t, path)?);
            }
        }
        let revision_secrets = open_revision_secrets(&rollouts, &key);
        for path in paths {
            if let Some(k) = state::node_file_machine(&path, "desired.yml")
                && let Some(t) = read(&snap, &path)?
            {
                let doc = NodeDesired::parse(&t, &path, Form::Record)?;
                recorded.node_desired.insert(k, doc);
            }
        }
        let open = |path: &str| -> Result<Option<zeroize::Zeroizing<Vec<u8>>>> {
            secrets
                .secrets
                .get(path)
                .map(|env| Ok(zeroize::Zeroizing::new(key.open(path, env)?.to_vec())))
                .transpose()
        };
        let text_of = |path: &str, bytes: Option<zeroize::Zeroizing<Vec<u8>>>| {
            bytes
                .map(|b| {
                    String::from_utf8(b.to_vec())
                        .with_context(|| format!("secret {path} is not text"))
                })
                .transpose()
        };
        let mut creds = BTreeMap::new();
        let mut providers = BTreeMap::new();
        let mut orb_secrets = orb.clone();
        let opened = open_orb_secrets(&mut orb_secrets, &key);
        for (pid, node) in &orb.providers {
            let (pp, pb) = (maintenance_private_path(pid), maintenance_public_path(pid));
            let person = |name: &str| -> Result<Option<String>> {
                let path = format!("{pid}.{name}");
                match opened.get(&path) {
                    Some(Ok(b)) => {
                        text_of(&path, Some(zeroize::Zeroizing::new(b.expose().to_vec())))
                    }
                    Some(Err(e)) => Err(anyhow!("secret {path}: {e}")),
                    None => Ok(None),
                }
            };
            let c = Credentials {
                maintenance_private: text_of(&pp, open(&pp)?)?.map(zeroize::Zeroizing::new),
                maintenance_public: text_of(&pb, open(&pb)?)?,
                bootstrap_private: person("bootstrapkeyprivate")?.map(zeroize::Zeroizing::new),
                bootstrap_public: person("bootstrapkeypublic")?,
            };
            if c.maintenance_private.is_some() && c.maintenance_public.is_some() {
                recorded.maintenance_keys.insert(pid.clone());
            }
            creds.insert(pid.clone(), c);
            providers.insert(pid.clone(), for_spec(pid, &node.spec));
        }
        let mut clusters = Vec::new();
        for (id, node) in &orb.clusters {
            let record = read(&snap, &record_path(id))?;
            clusters.push((
                id.clone(),
                crate::clusters::for_spec(id, &orb, &node.spec, record.as_deref(), &open)?,
            ));
        }
        // A provider's load balancer: one kind per pool holding VIPs.
        for (pid, node) in &orb.providers {
            let Some(lb) = node.spec.model().loadbalancing() else {
                continue;
            };
            // Local machines' veth ends are named eth0 (orb-machines); so are most clouds'.
            let interface = "eth0";
            for pool in lb.vip_pools() {
                let record = read(
                    &snap,
                    &crate::clusters::load_balancer::record_path(pid, pool),
                )?;
                let kind = crate::clusters::load_balancer::LoadBalancer::load(
                    pid,
                    pool,
                    lb,
                    interface,
                    record.as_deref(),
                    &open,
                )?;
                clusters.push((pid.clone(), Box::new(kind) as Box<dyn ClusterKind>));
            }
        }
        let software_secrets = opened
            .into_iter()
            .filter(|(path, _)| {
                path.split_once('.')
                    .and_then(|(owner, _)| Id::parse(owner).ok())
                    .is_some_and(|owner| orb.software.contains_key(&owner))
            })
            .collect();
        Ok(Loaded {
            orb,
            desired_error,
            recorded,
            hostkeys,
            pin_changes: BTreeMap::new(),
            secrets,
            keyring,
            key,
            software_secrets,
            creds,
            providers,
            errors: BTreeMap::new(),
            destroyed,
            clusters,
            rollouts,
            revision_secrets,
        })
    }
}

/// The desired state in force across iterations: a process keeps the last valid orbiter.yml
/// it read, and says once when the newest becomes invalid or valid again.
#[derive(Default)]
pub struct DesiredState {
    last_valid: Option<Orb>,
    last_error: Option<String>,
}

impl DesiredState {
    /// The desired state in force: the newest valid orbiter.yml, else the last valid one.
    fn accept(&mut self, text: &str, metrics: &Metrics) -> Result<(Orb, Option<String>)> {
        let (orb, desired_error) = match Orb::parse(text, ORBITER_YML) {
            Ok(o) => (o, None),
            Err(e) => {
                let msg = e.to_string();
                match &self.last_valid {
                    Some(o) => (o.clone(), Some(msg)),
                    None => {
                        return Err(anyhow!(
                            "{msg}\n  (no earlier valid {ORBITER_YML} is known to this Orbiter, so nothing is done)"
                        ));
                    }
                }
            }
        };
        metrics.set_desired_valid(desired_error.is_none());
        if desired_error != self.last_error {
            match &desired_error {
                Some(e) => tracing::error!(
                    "{ORBITER_YML} is invalid; the last valid desired state stays in force:\n{e}"
                ),
                None if self.last_error.is_some() => {
                    tracing::info!("{ORBITER_YML} is valid again")
                }
                None => {}
            }
            self.last_error = desired_error.clone();
        }
        if desired_error.is_none() {
            self.last_valid = Some(orb.clone());
        }
        Ok((orb, desired_error))
    }
}

/// Every secret set in orbiter.yml, opened (an error where one does not open: tampered,
/// or sealed for another field).
fn open_orb_secrets(orb: &mut Orb, key: &SecretKey) -> SoftwareSecrets {
    orb.secrets_mut()
        .into_iter()
        .filter_map(|(path, slot)| {
            let env = slot.as_ref()?;
            let opened = key
                .open(&path, env)
                .map(|b| SecretBytes::new(b.to_vec()))
                .map_err(|e| e.to_string());
            Some((path, opened))
        })
        .collect()
}

/// The secrets every recorded revision names, opened (an error per secret that does not).
fn open_revision_secrets(
    rollouts: &BTreeMap<String, RolloutRecord>,
    key: &SecretKey,
) -> BTreeMap<String, SoftwareSecrets> {
    let mut out = BTreeMap::new();
    for r in rollouts.values() {
        for (id, rev) in &r.revisions {
            let opened: SoftwareSecrets = rev
                .secrets
                .iter()
                .map(|(path, env)| {
                    let v = key
                        .open(path, env)
                        .map(|b| SecretBytes::new(b.to_vec()))
                        .map_err(|e| e.to_string());
                    (path.clone(), v)
                })
                .collect();
            out.insert(id.clone(), opened);
        }
    }
    out
}
