//! A pool's revision: the software items orbiter.yml gives its machines (in their orbiter.yml
//! form, secrets by name), the sealed secrets they name, the agent build and an OS update
//! request — frozen, with an id that changes exactly when what a machine would get changes.

use crate::machine::MachineRef;
use crate::node_desired::{Digest, SoftwareSecrets, resolve};
use node_protocol::{FileSecret, Hostname, Item, OsUpdates, Reboot};
use orb_model::{Id, Orb};
use orb_secrets::Envelope;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Revision {
    pub items: Vec<RevisionItem>,
    /// The sealed secrets the items name, by path (`<software>.<name>`), as orbiter.yml held
    /// them: a machine can go back to this revision after the secret changed there.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub secrets: BTreeMap<String, Envelope>,
    /// SHA-256 of the agent binary.
    pub agent: String,
    /// The pool's OS update request (see [`crate::rollout::os`]), the same for every machine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub osupdates: Option<OsUpdates>,
}

/// An item and the software it came from (its secret names are that software's).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RevisionItem {
    pub software: Id,
    pub item: Item,
}

/// The revision orbiter.yml asks for on `provider.pool` (with the pool's OS update request,
/// if any) and its id. An error when a secret it names is not set or cannot be opened (the
/// pool's machines keep what they have).
pub fn target_revision(
    orb: &Orb,
    pool_ref: &str,
    agent: &str,
    osupdates: Option<OsUpdates>,
    secrets: &SoftwareSecrets,
    digest: &Digest,
) -> Result<(String, Revision), String> {
    let mut rev = Revision {
        items: Vec::new(),
        secrets: BTreeMap::new(),
        agent: agent.to_owned(),
        osupdates,
    };
    let mut named = BTreeMap::new();
    for (sid, node) in &orb.software {
        let s = node.spec.model();
        if !s.pools().iter().any(|p| p.value == pool_ref) {
            continue;
        }
        for item in s.items() {
            if let Item::File(f) = &item.value
                && let Some(FileSecret::Name(name)) = &f.secret
            {
                let path = format!("{sid}.{name}");
                let value = match secrets.get(&path) {
                    Some(Ok(v)) => v,
                    Some(Err(e)) => return Err(format!("secret {path} cannot be opened: {e}")),
                    None => {
                        return Err(format!(
                            "secret {path} is not set; hint: orbctl writesecret {path} --file FILE"
                        ));
                    }
                };
                named.insert(path.clone(), digest(value.expose()));
                if let Some(env) = sealed(orb, sid, name) {
                    rev.secrets.insert(path, env);
                }
            }
            rev.items.push(RevisionItem {
                software: sid.clone(),
                item: item.value.clone(),
            });
        }
    }
    let id = rev.id_with(&named);
    Ok((id, rev))
}

/// The envelope of `software.name` in orbiter.yml.
fn sealed(orb: &Orb, software: &Id, name: &str) -> Option<Envelope> {
    let mut copy = orb.clone();
    let node = copy.software.get_mut(software)?;
    node.spec
        .model_mut()
        .secrets_mut()
        .into_iter()
        .find(|(n, _)| n == name)
        .and_then(|(_, slot)| slot.clone())
}

impl Revision {
    /// A short id over what a machine would get: the items, the secrets' (keyed) digests by
    /// path, the agent and the OS update request. Sealed envelopes do not count (their nonces
    /// differ for the same value).
    fn id_with(&self, secret_digests: &BTreeMap<String, String>) -> String {
        use sha2::Digest as _;
        let mut h = sha2::Sha256::new();
        let items: Vec<&RevisionItem> = self.items.iter().collect();
        h.update(
            serde_saphyr::to_string(&items)
                .unwrap_or_default()
                .as_bytes(),
        );
        for (path, d) in secret_digests {
            h.update(format!("\nsecret {path} {d}").as_bytes());
        }
        h.update(format!("\nagent {}", self.agent).as_bytes());
        if let Some(o) = &self.osupdates {
            h.update(format!("\nosupdates {} {}", o.updates.as_str(), o.requested_at).as_bytes());
        }
        h.finalize()[..6]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

/// Items for `m` from a pool revision (see [`crate::rollout`]): its host name, the revision's
/// items with their secrets resolved from `secrets` (the revision's own, opened), a reboot
/// request. The same order as [`crate::node_desired::items_for`] gives for the revision orbiter.yml asks for now.
pub fn items_for_revision(
    rev: &Revision,
    m: &MachineRef,
    reboot_at: Option<&str>,
    secrets: &SoftwareSecrets,
) -> Result<Vec<Item>, String> {
    let mut items = vec![Item::Hostname(Hostname {
        name: m.hostname.clone(),
    })];
    for r in &rev.items {
        items.push(resolve(&r.software, &r.item, secrets)?);
    }
    if let Some(o) = &rev.osupdates {
        items.push(Item::Osupdates(o.clone()));
    }
    if let Some(at) = reboot_at {
        items.push(Item::Reboot(Reboot {
            requested_at: at.to_owned(),
        }));
    }
    Ok(items)
}
