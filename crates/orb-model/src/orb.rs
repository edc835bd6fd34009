//! The root of `orbiter.yml`: kind `Orb`, with maps of providers and clusters. Reading happens in
//! two passes over the same text: the first reads only every subtree's `kind` and `version`, the
//! second reads each `spec` with the reader the registry names for that kind and version, so every
//! error, however deep, keeps its line and column.

use crate::error::ModelError;
use crate::hint::did_you_mean;
use crate::id::Id;
use crate::kinds::load_balancer::DynamicLoadBalancer;
use crate::located::{Located, Pos};
pub use crate::node::Node;
use crate::registry::{self, Category, ClusterSpec, ProviderSpec, SoftwareSpec};
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

pub const ORB_KIND: &str = "Orb";
pub const ORB_VERSION: &str = "v1";
/// The desired-state file at the root of every Orb repository.
pub const ORBITER_YML: &str = "orbiter.yml";

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Orb {
    pub providers: BTreeMap<Id, Node<ProviderSpec>>,
    pub clusters: BTreeMap<Id, Node<ClusterSpec>>,
    pub software: BTreeMap<Id, Node<SoftwareSpec>>,
    /// How changes reach machines (waves, health gates, windows); see [`crate::rollout`].
    pub rollout: crate::rollout::Rollout,
}

impl Orb {
    /// Reads `text` (kinds and versions checked, old versions migrated, fields typed) without
    /// the checks that span subtrees; [`Orb::parse`] adds those.
    pub(crate) fn read(text: &str, file: &str) -> Result<Orb, ModelError> {
        let header: Header =
            serde_saphyr::from_str(text).map_err(|e| ModelError::from_yaml(file, &e))?;
        let kinds = check_header(&header, file)?;
        let seed = OrbSeed { kinds: &kinds };
        serde_saphyr::with_deserializer_from_str(text, |d| seed.deserialize(d))
            .map_err(|e| ModelError::from_yaml(file, &e))
    }

    /// Renders the file in current versions, with a stable field order.
    pub fn to_yaml(&self) -> String {
        serde_saphyr::to_string(self).expect("an Orb always serializes")
    }

    /// Whether any subtree was read in an older version and the file should be rewritten.
    pub fn needs_migration(&self) -> bool {
        let lb_migrated = |n: &Node<ProviderSpec>| {
            n.spec
                .model()
                .loadbalancing_node()
                .is_some_and(|l| l.migrated_from.is_some())
        };
        self.providers
            .values()
            .any(|n| n.migrated_from.is_some() || lb_migrated(n))
            || self.clusters.values().any(|n| n.migrated_from.is_some())
            || self.software.values().any(|n| n.migrated_from.is_some())
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    kind: Located<String>,
    version: Located<String>,
    #[serde(default)]
    providers: BTreeMap<Id, Located<NodeHeader>>,
    #[serde(default)]
    clusters: BTreeMap<Id, Located<NodeHeader>>,
    #[serde(default)]
    software: BTreeMap<Id, Located<NodeHeader>>,
    #[serde(default)]
    #[allow(dead_code)]
    rollout: Option<IgnoredAny>,
}

/// Only `kind` and `version` (and those of a provider's `loadbalancing`); everything else is
/// read in the second pass.
#[derive(Deserialize)]
struct NodeHeader {
    kind: Option<Located<String>>,
    version: Option<Located<String>>,
    loadbalancing: Option<Located<LbHeader>>,
}

#[derive(Deserialize)]
struct LbHeader {
    kind: Option<Located<String>>,
    version: Option<Located<String>>,
}

type Kinds = BTreeMap<(&'static str, String), (&'static str, &'static str)>;

/// Checks the root and every subtree's kind and version; returns (category, id) → (kind, version).
/// A provider's `loadbalancing` is keyed (`loadbalancing`, provider id).
fn check_header(h: &Header, file: &str) -> Result<Kinds, ModelError> {
    if h.kind.value != ORB_KIND {
        return Err(ModelError::new(
            file,
            h.kind.pos,
            format!("unknown root kind `{}`", h.kind.value),
        )
        .with_hint(if h.kind.value.starts_with("orbiter.caos.ch/") {
            "this is an orbos file: convert it with `orbctl import-orbos`".to_owned()
        } else {
            format!("the root of {ORBITER_YML} is `kind: {ORB_KIND}`")
        }));
    }
    if h.version.value != ORB_VERSION {
        return Err(ModelError::new(
            file,
            h.version.pos,
            format!("unknown Orb version `{}`", h.version.value),
        )
        .with_hint(format!(
            "this orbctl reads Orb {ORB_VERSION}; a newer orbctl may know this version"
        )));
    }
    let mut kinds = Kinds::new();
    for (category, nodes) in [
        (Category::Provider, &h.providers),
        (Category::Cluster, &h.clusters),
        (Category::Software, &h.software),
    ] {
        for (id, node) in nodes {
            let place = format!("{}.{id}", category.key());
            let n = &node.value;
            let found = check_kind(category, &place, node.pos, &n.kind, &n.version, file)?;
            kinds.insert((category.key(), id.as_str().to_owned()), found);
            let Some(lb) = &n.loadbalancing else {
                continue;
            };
            if category != Category::Provider {
                return Err(ModelError::new(
                    file,
                    lb.pos,
                    format!("{place}: `loadbalancing` belongs to a provider"),
                )
                .with_hint(
                    "put it beside the `spec` of the provider whose machines hold the VIPs",
                ));
            }
            let lb_place = format!("{place}.loadbalancing");
            let category = Category::LoadBalancer;
            let v = &lb.value;
            let found = check_kind(category, &lb_place, lb.pos, &v.kind, &v.version, file)?;
            kinds.insert((category.key(), id.as_str().to_owned()), found);
        }
    }
    Ok(kinds)
}

/// A subtree's kind is registered in its category and its version is known.
fn check_kind(
    category: Category,
    place: &str,
    pos: Option<Pos>,
    kind: &Option<Located<String>>,
    version: &Option<Located<String>>,
    file: &str,
) -> Result<(&'static str, &'static str), ModelError> {
    let kind = kind.as_ref().ok_or_else(|| {
        ModelError::new(file, pos, format!("{place} has no `kind`")).with_hint(format!(
            "one of: {}",
            registry::kind_names(category).join(", ")
        ))
    })?;
    let info = registry::kind(category, &kind.value).ok_or_else(|| {
        let what = match registry::KINDS.iter().find(|k| k.name == kind.value) {
            Some(k) => format!(
                "`{}` belongs under `{}`, not `{}`",
                kind.value,
                k.category.key(),
                category.key()
            ),
            None => format!("unknown kind `{}` in {place}", kind.value),
        };
        ModelError::new(file, kind.pos, what)
            .with_hint(did_you_mean(&kind.value, &registry::kind_names(category)))
    })?;
    let version = version.as_ref().ok_or_else(|| {
        ModelError::new(file, pos, format!("{place} has no `version`")).with_hint(format!(
            "the current version of {} is {}",
            info.name,
            info.current()
        ))
    })?;
    let v = info
        .versions
        .iter()
        .find(|v| **v == version.value)
        .ok_or_else(|| {
            ModelError::new(
                file,
                version.pos,
                format!("{} has no version `{}`", info.name, version.value),
            )
            .with_hint(format!("known versions: {}", info.versions.join(", ")))
        })?;
    Ok((info.name, *v))
}

struct OrbSeed<'a> {
    kinds: &'a Kinds,
}

impl<'de> DeserializeSeed<'de> for OrbSeed<'_> {
    type Value = Orb;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Orb, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for OrbSeed<'_> {
    type Value = Orb;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an Orb")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Orb, A::Error> {
        let mut orb = Orb::default();
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "kind" | "version" => {
                    map.next_value::<IgnoredAny>()?;
                }
                "providers" => {
                    orb.providers =
                        map.next_value_seed(NodesSeed::<ProviderSpec>::new(self.kinds))?
                }
                "clusters" => {
                    orb.clusters = map.next_value_seed(NodesSeed::<ClusterSpec>::new(self.kinds))?
                }
                "software" => {
                    orb.software =
                        map.next_value_seed(NodesSeed::<SoftwareSpec>::new(self.kinds))?
                }
                "rollout" => orb.rollout = map.next_value()?,
                other => {
                    return Err(de::Error::unknown_field(
                        other,
                        &[
                            "kind",
                            "version",
                            "providers",
                            "clusters",
                            "software",
                            "rollout",
                        ],
                    ));
                }
            }
        }
        Ok(orb)
    }
}

/// The map of subtrees of one category; each value is read by a [`NodeSeed`].
struct NodesSeed<'a, S> {
    kinds: &'a Kinds,
    spec: std::marker::PhantomData<S>,
}

impl<'a, S> NodesSeed<'a, S> {
    fn new(kinds: &'a Kinds) -> Self {
        NodesSeed {
            kinds,
            spec: std::marker::PhantomData,
        }
    }
}

impl<'de, S: registry::ReadSpec> DeserializeSeed<'de> for NodesSeed<'_, S> {
    type Value = BTreeMap<Id, Node<S>>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de, S: registry::ReadSpec> Visitor<'de> for NodesSeed<'_, S> {
    type Value = BTreeMap<Id, Node<S>>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a map of ids to subtrees")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out = BTreeMap::new();
        while let Some(id) = map.next_key::<Located<Id>>()? {
            let (kind, version) = *self
                .kinds
                .get(&(S::CATEGORY.key(), id.value.as_str().to_owned()))
                .ok_or_else(|| de::Error::custom(format!("`{id}` is defined twice")))?;
            let (spec, migrated) = map.next_value_seed(NodeSeed::<S> {
                kind,
                version,
                lb: self
                    .kinds
                    .get(&(Category::LoadBalancer.key(), id.value.as_str().to_owned()))
                    .copied(),
                spec: std::marker::PhantomData,
            })?;
            let migrated_from = migrated.then(|| version.to_owned());
            out.insert(
                id.value,
                Node {
                    spec,
                    migrated_from,
                    pos: id.pos,
                },
            );
        }
        Ok(out)
    }
}

/// One subtree: `kind` and `version` (already checked), `spec` read by the registry, and for a
/// provider the `loadbalancing` subtree beside it (its kind and version in `lb`).
struct NodeSeed<S> {
    kind: &'static str,
    version: &'static str,
    lb: Option<(&'static str, &'static str)>,
    spec: std::marker::PhantomData<S>,
}

impl<'de, S: registry::ReadSpec> DeserializeSeed<'de> for NodeSeed<S> {
    type Value = (S, bool);
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de, S: registry::ReadSpec> Visitor<'de> for NodeSeed<S> {
    type Value = (S, bool);
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "a {} with kind, version and spec", self.kind)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut spec = None;
        let mut lb = None;
        while let Some(key) = map.next_key::<Located<String>>()? {
            match key.value.as_str() {
                "kind" | "version" => {
                    map.next_value::<IgnoredAny>()?;
                }
                "spec" => {
                    spec = Some(map.next_value_seed(SpecSeed::<S> {
                        kind: self.kind,
                        version: self.version,
                        spec: std::marker::PhantomData,
                    })?)
                }
                "loadbalancing" if S::CATEGORY == Category::Provider => {
                    let (kind, version) = self.lb.ok_or_else(|| {
                        de::Error::custom("`loadbalancing` needs kind, version and spec")
                    })?;
                    let (value, migrated) =
                        map.next_value_seed(NodeSeed::<DynamicLoadBalancer> {
                            kind,
                            version,
                            lb: None,
                            spec: std::marker::PhantomData,
                        })?;
                    lb = Some(Node {
                        spec: value,
                        migrated_from: migrated.then(|| version.to_owned()),
                        pos: key.pos,
                    });
                }
                other => {
                    let fields: &[&str] = if S::CATEGORY == Category::Provider {
                        &["kind", "version", "spec", "loadbalancing"]
                    } else {
                        &["kind", "version", "spec"]
                    };
                    return Err(de::Error::unknown_field(other, fields));
                }
            }
        }
        let (mut spec, migrated) = spec.ok_or_else(|| de::Error::missing_field("spec"))?;
        if let Some(lb) = lb {
            spec.set_loadbalancing(lb).map_err(de::Error::custom)?;
        }
        Ok((spec, migrated))
    }
}

struct SpecSeed<S> {
    kind: &'static str,
    version: &'static str,
    spec: std::marker::PhantomData<S>,
}

impl<'de, S: registry::ReadSpec> DeserializeSeed<'de> for SpecSeed<S> {
    type Value = (S, bool);
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        S::read(self.kind, self.version, d)
    }
}

impl Serialize for Orb {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("kind", ORB_KIND)?;
        m.serialize_entry("version", ORB_VERSION)?;
        if !self.providers.is_empty() {
            m.serialize_entry("providers", &NodesOut(&self.providers))?;
        }
        if !self.clusters.is_empty() {
            m.serialize_entry("clusters", &NodesOut(&self.clusters))?;
        }
        if !self.software.is_empty() {
            m.serialize_entry("software", &NodesOut(&self.software))?;
        }
        if !self.rollout.is_empty() {
            m.serialize_entry("rollout", &self.rollout)?;
        }
        m.end()
    }
}

struct NodesOut<'a, S>(&'a BTreeMap<Id, Node<S>>);

impl<S: registry::ReadSpec> Serialize for NodesOut<'_, S> {
    fn serialize<Z: Serializer>(&self, s: Z) -> Result<Z::Ok, Z::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (id, node) in self.0 {
            m.serialize_entry(id, &NodeOut(&node.spec))?;
        }
        m.end()
    }
}

struct NodeOut<'a, S>(&'a S);

impl<S: registry::ReadSpec> Serialize for NodeOut<'_, S> {
    fn serialize<Z: Serializer>(&self, s: Z) -> Result<Z::Ok, Z::Error> {
        let kind = self.0.kind();
        let info = registry::kind(S::CATEGORY, kind).expect("every spec variant is registered");
        let lb = self.0.loadbalancing();
        let mut m = s.serialize_map(Some(3 + usize::from(lb.is_some())))?;
        m.serialize_entry("kind", kind)?;
        m.serialize_entry("version", info.current())?;
        m.serialize_entry("spec", &SpecOut(self.0))?;
        if let Some(lb) = lb {
            m.serialize_entry("loadbalancing", &NodeOut(&lb.spec))?;
        }
        m.end()
    }
}

struct SpecOut<'a, S>(&'a S);

impl<S: registry::ReadSpec> Serialize for SpecOut<'_, S> {
    fn serialize<Z: Serializer>(&self, s: Z) -> Result<Z::Ok, Z::Error> {
        self.0.serialize_spec(s)
    }
}
