//! The node-desired document of each machine, derived from orbiter.yml: its host name, the
//! items of every NodeSoftware that names its pool (secrets resolved to their values), and a
//! pending reboot request. Two forms leave here: the machine's (secret values, written over
//! SSH only) and the record (secret digests, committed).

use crate::machine::MachineRef;
use node_protocol::{FileSecret, Hostname, Item, NodeDesired, Reboot, SecretBytes};
use orb_model::{Id, Orb};
use std::collections::BTreeMap;

/// The keyed digest a record holds instead of a secret value.
pub type Digest = dyn Fn(&[u8]) -> String + Sync;

/// NodeSoftware secrets opened with the Orb's key, by path (`<software>.<name>`); an error
/// where one could not be opened.
pub type SoftwareSecrets = BTreeMap<String, Result<SecretBytes, String>>;

/// Items for `m`, in a stable order. `reboot_at`: keep or add a reboot request. An error says
/// why the machine's document cannot be built now (a secret is not set or cannot be opened).
pub fn items_for(
    orb: &Orb,
    m: &MachineRef,
    reboot_at: Option<&str>,
    secrets: &SoftwareSecrets,
) -> Result<Vec<Item>, String> {
    let mut items = vec![Item::Hostname(Hostname {
        name: m.hostname.clone(),
    })];
    let pool_ref = format!("{}.{}", m.key.provider, m.pool);
    for (sid, node) in &orb.software {
        let s = node.spec.model();
        if !s.pools().iter().any(|p| p.value == pool_ref) {
            continue;
        }
        for item in s.items() {
            items.push(resolve(sid, &item.value, secrets)?);
        }
    }
    if let Some(at) = reboot_at {
        items.push(Item::Reboot(Reboot {
            requested_at: at.to_owned(),
        }));
    }
    Ok(items)
}

/// A software item with its secret name replaced by the value.
pub(crate) fn resolve(
    software: &Id,
    item: &Item,
    secrets: &SoftwareSecrets,
) -> Result<Item, String> {
    let Item::File(f) = item else {
        return Ok(item.clone());
    };
    let Some(FileSecret::Name(name)) = &f.secret else {
        return Ok(item.clone());
    };
    let path = format!("{software}.{name}");
    match secrets.get(&path) {
        Some(Ok(value)) => {
            let mut f = f.clone();
            f.secret = Some(FileSecret::Value(value.clone()));
            Ok(Item::File(f))
        }
        Some(Err(e)) => Err(format!("secret {path} cannot be opened: {e}")),
        None => Err(format!(
            "secret {path} is not set; hint: orbctl writesecret {path} --file FILE"
        )),
    }
}

/// The next document for `items` (machine form) and its record: the same generation when the
/// record's items did not change, else one more.
pub fn next_doc(
    previous: Option<&NodeDesired>,
    items: Vec<Item>,
    digest: &Digest,
) -> (NodeDesired, NodeDesired) {
    let mut doc = NodeDesired::new(0, items);
    let mut record = doc.redacted(digest);
    let generation = match previous {
        Some(p) if same_items(&p.items, &record.items, digest) => p.generation,
        Some(p) => p.generation + 1,
        None => 1,
    };
    doc.generation = generation;
    record.generation = generation;
    (doc, record)
}

/// Equal, where a file recorded with its content (before secrets were kept out of Git) equals
/// the same file recorded as the digest of that content: re-recording it is no change.
fn same_items(previous: &[Item], next: &[Item], digest: &Digest) -> bool {
    previous.len() == next.len()
        && previous.iter().zip(next).all(|(p, n)| match (p, n) {
            (Item::File(old), Item::File(new)) => {
                old == new
                    || match (&old.content, &new.secret) {
                        (Some(text), Some(FileSecret::Digest(d))) if old.secret.is_none() => {
                            *d == digest(text.0.as_bytes()) && {
                                let mut was = old.clone();
                                was.content = None;
                                was.secret = new.secret.clone();
                                was == *new
                            }
                        }
                        _ => false,
                    }
            }
            _ => p == n,
        })
}

/// NodeSoftware ids that reference a pool of a provider (for `node list`).
pub fn software_for_pool(orb: &Orb, provider: &Id, pool: &Id) -> Vec<String> {
    let pool_ref = format!("{provider}.{pool}");
    orb.software
        .iter()
        .filter(|(_, n)| n.spec.model().pools().iter().any(|p| p.value == pool_ref))
        .map(|(id, _)| id.to_string())
        .collect()
}
