//! The one place that knows every kind: its name, its versions, which version is current, how
//! older versions migrate and where its secrets are. Adding a kind or a version touches this
//! file and the kind's own module, nothing else.

use crate::kinds::etcd_cluster::EtcdCluster;
use crate::kinds::load_balancer::{
    DynamicLoadBalancer, DynamicLoadBalancerV0, DynamicLoadBalancerV1,
};
use crate::kinds::local_provider::LocalProvider;
use crate::kinds::node_software::NodeSoftware;
use crate::kinds::static_provider::{StaticProvider, StaticProviderV0};
use crate::kinds::{ClusterModel, ProviderModel, SoftwareModel};
use crate::node::Node;
use serde::de::{Deserialize, Deserializer, Error as _};
use serde::{Serialize, Serializer};

/// The places a kind can stand in `orbiter.yml`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Category {
    Provider,
    Cluster,
    Software,
    /// Beside a provider's `spec` (as in orbos): the load balancer of its machines.
    LoadBalancer,
}

impl Category {
    pub fn key(self) -> &'static str {
        match self {
            Category::Provider => "providers",
            Category::Cluster => "clusters",
            Category::Software => "software",
            Category::LoadBalancer => "loadbalancing",
        }
    }
}

/// Name and versions of a kind; the last version is the current one.
pub struct KindInfo {
    pub name: &'static str,
    pub category: Category,
    pub versions: &'static [&'static str],
}

impl KindInfo {
    pub fn current(&self) -> &'static str {
        self.versions[self.versions.len() - 1]
    }
}

pub const KINDS: &[KindInfo] = &[
    KindInfo {
        name: "StaticProvider",
        category: Category::Provider,
        versions: &["v0", "v1"],
    },
    KindInfo {
        name: "LocalProvider",
        category: Category::Provider,
        versions: &["v1"],
    },
    KindInfo {
        name: "NodeSoftware",
        category: Category::Software,
        versions: &["v1"],
    },
    KindInfo {
        name: "EtcdCluster",
        category: Category::Cluster,
        versions: &["v1"],
    },
    KindInfo {
        name: "DynamicLoadBalancer",
        category: Category::LoadBalancer,
        // orbos's numbering, so an imported subtree keeps its version and migrates here.
        versions: &["v0", "v1", "v2"],
    },
];

pub fn kind(category: Category, name: &str) -> Option<&'static KindInfo> {
    KINDS
        .iter()
        .find(|k| k.category == category && k.name == name)
}

pub fn kind_names(category: Category) -> Vec<&'static str> {
    KINDS
        .iter()
        .filter(|k| k.category == category)
        .map(|k| k.name)
        .collect()
}

/// A provider subtree in its current version. An Orb holds a handful of these, so the size
/// difference between variants costs nothing worth an indirection.
#[derive(Clone, Debug, PartialEq, Eq)]
#[allow(clippy::large_enum_variant)]
pub enum ProviderSpec {
    Static(StaticProvider),
    Local(LocalProvider),
}

/// Node software in its current version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SoftwareSpec {
    Node(NodeSoftware),
}

/// A cluster subtree in its current version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClusterSpec {
    Etcd(EtcdCluster),
}

/// Reads `spec` of a node whose kind and version were checked against [`KINDS`]. Returns the
/// spec in its current version and whether a migration was needed.
/// Implemented by the spec enum of each [`Category`], so the reader in `orb.rs` is generic.
pub(crate) trait ReadSpec: Sized {
    const CATEGORY: Category;
    fn read<'de, D: Deserializer<'de>>(
        kind: &str,
        version: &str,
        d: D,
    ) -> Result<(Self, bool), D::Error>;
    fn kind(&self) -> &'static str;
    fn serialize_spec<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error>;
    /// The `loadbalancing` subtree standing beside `spec`, if any.
    fn loadbalancing(&self) -> Option<&Node<DynamicLoadBalancer>> {
        None
    }
    /// Takes the `loadbalancing` subtree read beside `spec`; an error for kinds without one.
    fn set_loadbalancing(&mut self, _lb: Node<DynamicLoadBalancer>) -> Result<(), String> {
        Err(format!(
            "`loadbalancing` stands only beside the spec of a provider, not in `{}`",
            Self::CATEGORY.key()
        ))
    }
}

impl ReadSpec for ProviderSpec {
    const CATEGORY: Category = Category::Provider;
    fn read<'de, D: Deserializer<'de>>(
        kind: &str,
        version: &str,
        d: D,
    ) -> Result<(Self, bool), D::Error> {
        deserialize_provider(kind, version, d)
    }
    fn kind(&self) -> &'static str {
        ProviderSpec::kind(self)
    }
    fn serialize_spec<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        ProviderSpec::serialize_spec(self, s)
    }
    fn loadbalancing(&self) -> Option<&Node<DynamicLoadBalancer>> {
        self.model().loadbalancing_node()
    }
    fn set_loadbalancing(&mut self, lb: Node<DynamicLoadBalancer>) -> Result<(), String> {
        let kind = ProviderSpec::kind(self);
        let slot = self
            .model_mut()
            .loadbalancing_mut()
            .ok_or_else(|| format!("{kind} has no load balancing"))?;
        *slot = Some(lb);
        Ok(())
    }
}

impl ReadSpec for DynamicLoadBalancer {
    const CATEGORY: Category = Category::LoadBalancer;
    fn read<'de, D: Deserializer<'de>>(
        kind: &str,
        version: &str,
        d: D,
    ) -> Result<(Self, bool), D::Error> {
        match (kind, version) {
            ("DynamicLoadBalancer", "v2") => Ok((DynamicLoadBalancer::deserialize(d)?, false)),
            ("DynamicLoadBalancer", "v1") => Ok((
                DynamicLoadBalancerV1::deserialize(d)?
                    .migrate()
                    .map_err(D::Error::custom)?,
                true,
            )),
            ("DynamicLoadBalancer", "v0") => Ok((
                DynamicLoadBalancerV0::deserialize(d)?
                    .migrate()
                    .map_err(D::Error::custom)?,
                true,
            )),
            _ => Err(D::Error::custom(format!("no reader for {kind} {version}"))),
        }
    }
    fn kind(&self) -> &'static str {
        "DynamicLoadBalancer"
    }
    fn serialize_spec<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.serialize(s)
    }
}

impl ReadSpec for ClusterSpec {
    const CATEGORY: Category = Category::Cluster;
    fn read<'de, D: Deserializer<'de>>(
        kind: &str,
        version: &str,
        d: D,
    ) -> Result<(Self, bool), D::Error> {
        deserialize_cluster(kind, version, d)
    }
    fn kind(&self) -> &'static str {
        ClusterSpec::kind(self)
    }
    fn serialize_spec<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        ClusterSpec::serialize_spec(self, s)
    }
}

fn deserialize_provider<'de, D: Deserializer<'de>>(
    kind: &str,
    version: &str,
    d: D,
) -> Result<(ProviderSpec, bool), D::Error> {
    match (kind, version) {
        ("StaticProvider", "v1") => {
            Ok((ProviderSpec::Static(StaticProvider::deserialize(d)?), false))
        }
        ("LocalProvider", "v1") => Ok((ProviderSpec::Local(LocalProvider::deserialize(d)?), false)),
        ("StaticProvider", "v0") => {
            let old = StaticProviderV0::deserialize(d)?;
            Ok((
                ProviderSpec::Static(old.migrate().map_err(D::Error::custom)?),
                true,
            ))
        }
        _ => Err(D::Error::custom(format!("no reader for {kind} {version}"))),
    }
}

fn deserialize_cluster<'de, D: Deserializer<'de>>(
    kind: &str,
    version: &str,
    d: D,
) -> Result<(ClusterSpec, bool), D::Error> {
    match (kind, version) {
        ("EtcdCluster", "v1") => Ok((ClusterSpec::Etcd(EtcdCluster::deserialize(d)?), false)),
        _ => Err(D::Error::custom(format!("no reader for {kind} {version}"))),
    }
}

pub use crate::kinds::MachineFlag;

impl ProviderSpec {
    /// The kind behind its small trait: everything generic goes through here.
    pub fn model(&self) -> &dyn ProviderModel {
        match self {
            ProviderSpec::Static(s) => s,
            ProviderSpec::Local(s) => s,
        }
    }

    pub fn model_mut(&mut self) -> &mut dyn ProviderModel {
        match self {
            ProviderSpec::Static(s) => s,
            ProviderSpec::Local(s) => s,
        }
    }

    /// The machines a person flagged for a reboot or a replacement.
    pub fn flags(&self, flag: MachineFlag) -> &[crate::Located<crate::Id>] {
        self.model().flags(flag)
    }

    pub fn flags_mut(&mut self, flag: MachineFlag) -> &mut Vec<crate::Located<crate::Id>> {
        self.model_mut().flags_mut(flag)
    }

    pub fn kind(&self) -> &'static str {
        match self {
            ProviderSpec::Static(_) => "StaticProvider",
            ProviderSpec::Local(_) => "LocalProvider",
        }
    }

    pub(crate) fn serialize_spec<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            ProviderSpec::Static(spec) => spec.serialize(s),
            ProviderSpec::Local(spec) => spec.serialize(s),
        }
    }
}

impl ClusterSpec {
    pub fn model(&self) -> &dyn ClusterModel {
        match self {
            ClusterSpec::Etcd(e) => e,
        }
    }

    pub fn model_mut(&mut self) -> &mut dyn ClusterModel {
        match self {
            ClusterSpec::Etcd(e) => e,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            ClusterSpec::Etcd(_) => "EtcdCluster",
        }
    }

    pub(crate) fn serialize_spec<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            ClusterSpec::Etcd(spec) => spec.serialize(s),
        }
    }
}

impl SoftwareSpec {
    pub fn model(&self) -> &dyn SoftwareModel {
        match self {
            SoftwareSpec::Node(s) => s,
        }
    }

    pub fn model_mut(&mut self) -> &mut dyn SoftwareModel {
        match self {
            SoftwareSpec::Node(s) => s,
        }
    }
}

impl ReadSpec for SoftwareSpec {
    const CATEGORY: Category = Category::Software;
    fn read<'de, D: Deserializer<'de>>(
        kind: &str,
        version: &str,
        d: D,
    ) -> Result<(Self, bool), D::Error> {
        match (kind, version) {
            ("NodeSoftware", "v1") => {
                Ok((SoftwareSpec::Node(NodeSoftware::deserialize(d)?), false))
            }
            _ => Err(D::Error::custom(format!("no reader for {kind} {version}"))),
        }
    }
    fn kind(&self) -> &'static str {
        match self {
            SoftwareSpec::Node(_) => "NodeSoftware",
        }
    }
    fn serialize_spec<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            SoftwareSpec::Node(spec) => spec.serialize(s),
        }
    }
}
