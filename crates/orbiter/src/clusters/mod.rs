//! Cluster kinds: software spanning the machines of one pool with a membership of its own
//! (etcd now, Kubernetes later). A kind observes its members with one SSH command per machine,
//! plans with its own rules (quorum) as a pure function, contributes node-agent items to its
//! machines, asks for the secrets it needs and the packages its provider must offer, runs the
//! steps items cannot express, decides which of its machines a provider may destroy, and
//! records its state in `orbiter/clusters/<id>/current.yml`. The engine does the I/O.
//! [`for_spec`] is the registry: the only place that knows every kind.

pub mod etcd;
pub mod load_balancer;

pub use crate::action::FileCopy;

use crate::machine::{MachineKey, pool_index};
use crate::observed::Observed;
use crate::recorded::Recorded;
use anyhow::Result;
use node_protocol::Item;
use orb_model::Id;
use orb_model::registry::ClusterSpec;
use std::collections::{BTreeMap, BTreeSet};
use zeroize::Zeroizing;

/// One step a kind wants run, as root over SSH on `machine`.
#[derive(Clone, Debug, PartialEq)]
pub struct KindStep {
    pub machine: MachineKey,
    pub summary: String,
    pub reason: String,
    pub destructive: bool,
    pub command: String,
    /// After the command: copy the file it produced to another machine (backups).
    pub copy: Option<FileCopy>,
}

/// What the kinds ask of the rest of the Orb this round (merged over all clusters).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ClusterNeeds {
    /// Steps by cluster, each cluster's in order (the first failure stops that cluster's).
    pub steps: Vec<(Id, KindStep)>,
    pub waiting: Vec<String>,
    /// Items appended to a machine's node-desired items.
    pub items: BTreeMap<MachineKey, Vec<Item>>,
    /// Machines whose node-desired state must not change this round (and why).
    pub frozen: BTreeMap<MachineKey, String>,
    /// Machines a kind still needs: not destroyed by scale-in or replacement (and why).
    pub held: BTreeMap<MachineKey, String>,
    /// Dead machines a kind gave up on: a provider that creates machines replaces them.
    pub heal: BTreeMap<MachineKey, String>,
    /// Secrets to generate first, by cluster (what, for the plan's summary).
    pub generate: Vec<(Id, String)>,
    /// Packages a provider must offer in its own repository first, by provider.
    pub offer: BTreeMap<Id, BTreeSet<String>>,
    /// Machines whose part of the cluster is not healthy now (a rollout waits for them).
    pub unhealthy: BTreeMap<MachineKey, String>,
    /// Machines of [`KindInput::disrupting`] the kind is not ready to lose yet (leadership
    /// still moves away, a member is not healthy), and why. Absent: it consents.
    pub not_yet: BTreeMap<MachineKey, String>,
    /// Rules a kind needs in a machine's firewall item (the load balancer's ports and VRRP);
    /// a machine without a firewall item accepts everything and gets none.
    pub firewall: BTreeMap<MachineKey, Vec<node_protocol::Rule>>,
}

impl ClusterNeeds {
    /// Adds one cluster's needs; its waiting lines get the cluster's name.
    pub fn merge(&mut self, id: &Id, other: ClusterNeeds) {
        self.steps
            .extend(other.steps.into_iter().map(|(_, s)| (id.clone(), s)));
        self.waiting.extend(
            other
                .waiting
                .into_iter()
                .map(|w| format!("cluster {id}: {w}")),
        );
        for (m, items) in other.items {
            self.items.entry(m).or_default().extend(items);
        }
        self.frozen.extend(other.frozen);
        self.held.extend(other.held);
        self.heal.extend(other.heal);
        self.generate.extend(
            other
                .generate
                .into_iter()
                .map(|(_, what)| (id.clone(), what)),
        );
        for (p, names) in other.offer {
            self.offer.entry(p).or_default().extend(names);
        }
        for (m, why) in other.unhealthy {
            self.unhealthy.insert(m, format!("cluster {id}: {why}"));
        }
        for (m, why) in other.not_yet {
            self.not_yet.insert(m, format!("cluster {id}: {why}"));
        }
        for (m, rules) in other.firewall {
            let mine = self.firewall.entry(m).or_default();
            for r in rules {
                if !mine.contains(&r) {
                    mine.push(r);
                }
            }
        }
    }
}

/// What a kind sees when it plans.
pub struct KindInput<'a> {
    pub observed: &'a Observed,
    pub recorded: &'a Recorded,
    /// Output of [`ClusterKind::observe_command`] per machine that answered.
    pub outputs: &'a BTreeMap<MachineKey, String>,
    /// Machines a person asked to replace (`replacementrequired`): their roles move elsewhere.
    pub replacing: &'a std::collections::BTreeSet<MachineKey>,
    /// Machines Orbiter wants to reboot or replace: before it does, the kind prepares each
    /// (moves what must not go down with it, e.g. etcd's leadership) and consents by leaving
    /// it out of [`ClusterNeeds::not_yet`].
    pub disrupting: &'a std::collections::BTreeSet<MachineKey>,
    /// Unix seconds.
    pub now: u64,
    /// Per transport that is a cluster's endpoint, the machines that may get its traffic now
    /// ([`ClusterKind::serving`] of the kinds planned before; load balancers come last).
    pub serving: &'a BTreeMap<String, std::collections::BTreeSet<Id>>,
}

pub trait ClusterKind: Send + Sync {
    /// The provider and pool it runs on.
    fn pool(&self) -> (&Id, &Id);
    /// POSIX sh run as root on every reachable machine of the pool; always exits 0.
    fn observe_command(&self) -> String;
    /// Plans one round, without effects; the kind keeps its next record in memory.
    fn plan(&mut self, input: &KindInput<'_>) -> Result<ClusterNeeds>;
    /// Generates the secrets its last plan asked for (`ClusterNeeds::generate`): randomness
    /// and the clock belong to applying, not planning. [`ClusterKind::secrets`] returns them.
    fn generate_secrets(&mut self) -> Result<()>;
    /// The outcome of step `index` of the last plan (stdout, or the error).
    fn note_step(&mut self, index: usize, result: Result<&str, &str>, now: u64);
    /// POSIX sh run as root on each machine of the pool at teardown: removes what the kind
    /// put there (services, data, keys); safe on machines it never touched.
    fn teardown_command(&self) -> String;
    /// Files it owns in the repository, rendered.
    fn files(&self) -> BTreeMap<String, String>;
    /// Secrets to keep sealed in `orbiter/secrets.yml`, by path (the engine seals and commits
    /// those that differ from what is sealed there, before anything uses them).
    fn secrets(&self) -> BTreeMap<String, Zeroizing<Vec<u8>>>;
    /// The transport it is reached through (its `endpoint`) and the machines that may get
    /// that traffic after its last plan: the load balancer sends only to those (an etcd
    /// learner or a leaving member refuses requests its TCP port would still accept).
    fn serving(&self) -> Option<(String, std::collections::BTreeSet<Id>)> {
        None
    }
    /// Gauges for `/metrics` from its last plan (what its record says, as numbers).
    fn gauges(&self) -> Vec<crate::metrics::Gauge> {
        Vec::new()
    }
}

/// Opens a secret of `orbiter/secrets.yml` by path (`None`: not stored yet).
pub type SecretReader<'a> = &'a dyn Fn(&str) -> Result<Option<Zeroizing<Vec<u8>>>>;

/// Where a kind keeps its record.
pub fn record_path(id: &Id) -> String {
    format!("orbiter/clusters/{id}/current.yml")
}

/// Builds the kind of each cluster from orbiter.yml, its record and its sealed secrets.
/// `secret(path)` opens a secret of `orbiter/secrets.yml`.
/// `orb` resolves what a cluster names elsewhere in it (its endpoint transport's VIP).
pub fn for_spec(
    id: &Id,
    orb: &orb_model::Orb,
    spec: &ClusterSpec,
    record: Option<&str>,
    secret: SecretReader<'_>,
) -> Result<Box<dyn ClusterKind>> {
    match spec {
        ClusterSpec::Etcd(e) => {
            let endpoint = e
                .endpoint
                .iter()
                .filter_map(|t| orb.transport(t.value.as_str()))
                .map(|t| std::net::IpAddr::V4(t.ip))
                .collect();
            Ok(Box::new(etcd::Etcd::load(id, e, endpoint, record, secret)?))
        }
    }
}

/// Plans one cluster. A kind that cannot plan changes nothing of its machines.
pub fn plan_one(id: &Id, kind: &mut dyn ClusterKind, input: &KindInput<'_>) -> ClusterNeeds {
    match kind.plan(input) {
        Ok(n) => n,
        Err(e) => {
            let mut needs = ClusterNeeds::default();
            let (provider, pool) = kind.pool();
            for m in pool_machines(input.observed, provider, pool) {
                let key = m.machine.key.clone();
                needs
                    .frozen
                    .insert(key.clone(), format!("cluster {id} cannot plan"));
                needs
                    .held
                    .insert(key, format!("cluster {id} cannot plan: {e:#}"));
            }
            needs.waiting.push(format!("{e:#}"));
            needs
        }
    }
}

/// Machines of `provider.pool` that exist, in the pool's order.
pub fn pool_machines<'a>(
    observed: &'a Observed,
    provider: &Id,
    pool: &Id,
) -> Vec<&'a crate::observed::MachineObserved> {
    let mut ms: Vec<_> = observed
        .providers
        .get(provider)
        .map(|p| {
            p.machines
                .iter()
                .filter(|m| m.machine.pool == *pool)
                .collect()
        })
        .unwrap_or_default();
    // Machines named `<pool>-<n>` in numeric order (`-10` after `-9`); listed ones keep theirs.
    ms.sort_by_key(|m| pool_index(pool, &m.machine.key.machine).unwrap_or(u32::MAX));
    ms
}
