//! `NodeSoftware`: node-agent items (packages, files, units, sysctl, firewall …) for every
//! machine of some pools. It lets an Orb manage plain machines; cluster kinds produce the same
//! items for their own pools. A file's content can be one of the software's `secrets`, sealed
//! here like every secret (path `<software id>.<name>`), written to the machines over SSH and
//! never recorded in Git.

use crate::error::ModelError;
use crate::id::Id;
use crate::kinds::OrbView;
use crate::kinds::SoftwareModel;
use crate::kinds::refs::resolve_pool_ref;
use crate::located::Located;
use node_protocol::{FileSecret, Form, Item};
use orb_secrets::Envelope;
use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};
use std::collections::BTreeMap;

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields, from = "Raw")]
pub struct NodeSoftware {
    /// `<provider>.<pool>` references.
    pub pools: Vec<Located<String>>,
    /// node-agent items as in a NodeDesired file, e.g. `- package: {name: curl, version:
    /// 7.88.1-10}`; a file takes `secret: <name>` instead of `content`.
    pub items: Vec<Located<Item>>,
    /// Secrets by name; every name a file item uses has a slot (empty until
    /// `orbctl writesecret <software id>.<name>` sets it).
    #[serde(
        default,
        skip_serializing_if = "no_sealed",
        serialize_with = "sealed_only"
    )]
    pub secrets: BTreeMap<String, Option<Envelope>>,
}

/// What the file says, before the slots of referenced secrets are added.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    pools: Vec<Located<String>>,
    items: Vec<Located<Item>>,
    #[serde(default)]
    secrets: BTreeMap<String, Option<Envelope>>,
}

impl From<Raw> for NodeSoftware {
    fn from(r: Raw) -> Self {
        let mut s = NodeSoftware {
            pools: r.pools,
            items: r.items,
            secrets: r.secrets,
        };
        for name in s.secret_names() {
            s.secrets.entry(name).or_insert(None);
        }
        s
    }
}

fn no_sealed(m: &BTreeMap<String, Option<Envelope>>) -> bool {
    m.values().all(Option::is_none)
}

/// Empty slots are not written: they follow from the items.
fn sealed_only<S: Serializer>(
    m: &BTreeMap<String, Option<Envelope>>,
    s: S,
) -> Result<S::Ok, S::Error> {
    let mut out = s.serialize_map(None)?;
    for (k, v) in m {
        if let Some(env) = v {
            out.serialize_entry(k, env)?;
        }
    }
    out.end()
}

impl NodeSoftware {
    /// Names of the secrets its file items use, in item order.
    pub fn secret_names(&self) -> Vec<String> {
        self.items
            .iter()
            .filter_map(|i| match &i.value {
                Item::File(f) => match &f.secret {
                    Some(FileSecret::Name(n)) => Some(n.clone()),
                    _ => None,
                },
                _ => None,
            })
            .collect()
    }
}

impl SoftwareModel for NodeSoftware {
    fn pools(&self) -> &[Located<String>] {
        &self.pools
    }

    fn items(&self) -> &[Located<Item>] {
        &self.items
    }

    fn secrets_mut(&mut self) -> Vec<(String, &mut Option<Envelope>)> {
        self.secrets
            .iter_mut()
            .map(|(k, v)| (k.clone(), v))
            .collect()
    }

    fn validate(&self, orb: &dyn OrbView, id: &Id, file: &str) -> Result<(), ModelError> {
        let what = format!("software `{id}`");
        for r in &self.pools {
            resolve_pool_ref(orb, file, &what, r)?;
        }
        let mut ids = std::collections::BTreeSet::new();
        for item in &self.items {
            let fail = |msg: String| {
                let e = ModelError::new(file, item.pos, format!("{what}: {msg}"));
                if msg.contains("hint:") {
                    e
                } else {
                    e.with_hint("items are node-agent items, e.g. `- package: {name: curl, version: 7.88.1-10+deb12u5}`; a file takes `content` or `secret: <name>`")
                }
            };
            item.value
                .validate(Form::Spec)
                .map_err(|e| fail(format!("{}: {e}", item.value.id())))?;
            if !ids.insert(item.value.id()) {
                return Err(fail(format!("{} is declared twice", item.value.id())));
            }
        }
        let node_pos = orb.position(id);
        for name in self.secrets.keys() {
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            {
                return Err(ModelError::new(
                    file,
                    node_pos,
                    format!("{what}: secret name `{name}` may hold only a-z, 0-9 and `-`"),
                )
                .with_hint("secret paths are `<software id>.<name>`, so a name has no dots"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::Orb;
    use crate::registry::SoftwareSpec;

    const BASE: &str = "kind: Orb
version: v1
providers:
  lab:
    kind: StaticProvider
    version: v1
    spec:
      pools:
        workers:
          - {id: w-1, hostname: w-1, ip: 10.0.0.1}
software:
  base:
    kind: NodeSoftware
    version: v1
    spec:
      pools: [lab.workers]
      items:
        - package: {name: curl, version: 7.88.1-10}
";

    fn parse(extra: &str) -> Result<Orb, crate::ModelError> {
        Orb::parse(&format!("{BASE}{extra}"), "orbiter.yml")
    }

    #[test]
    fn a_file_may_name_a_secret_which_gets_a_slot() {
        let mut orb =
            parse("        - file: {path: /etc/app/token, secret: apitoken, mode: \"0600\"}\n")
                .unwrap();
        let paths: Vec<_> = orb
            .secret_paths()
            .into_iter()
            .filter(|(p, _)| p.starts_with("base."))
            .collect();
        assert_eq!(paths, vec![("base.apitoken".to_owned(), false)]);
        // An empty slot is not written back; the item keeps naming it.
        let yaml = orb.to_yaml();
        assert!(
            !yaml.contains("secrets:") && yaml.contains("secret: apitoken"),
            "{yaml}"
        );
        assert_eq!(Orb::parse(&yaml, "orbiter.yml").unwrap(), orb);
        let SoftwareSpec::Node(s) = &orb.software.values().next().unwrap().spec;
        assert_eq!(s.secret_names(), vec!["apitoken"]);
        assert!(orb.secret_mut("base.apitoken").is_ok());
    }

    #[test]
    fn bad_items_name_place_item_and_field() {
        for (extra, want) in [
            (
                "        - file: {path: /a, secret: {base64: eA==}}\n",
                "orbctl writesecret",
            ),
            (
                "        - file: {path: /a, content: x, secret: t}\n",
                "give one of them",
            ),
            (
                "        - file: {path: relative, content: x}\n",
                "absolute path",
            ),
            (
                "        - package: {name: curl, version: 1}\n",
                "declared twice",
            ),
        ] {
            let e = parse(extra).unwrap_err();
            assert_eq!(e.pos.unwrap().line, 19, "{extra}: {e}");
            assert!(
                e.message.contains(want) && e.message.contains("software `base`"),
                "{extra}: {e}"
            );
        }
        let e = parse("        - fiel: {path: /a}\n").unwrap_err();
        assert!(e.message.contains("unknown variant `fiel`"), "{e}");
        let e = parse("      secrets: {Bad.Name: null}\n").unwrap_err();
        assert!(e.message.contains("may hold only"), "{e}");
    }
}
