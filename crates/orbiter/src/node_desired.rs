//! The node-desired file of each machine, derived from orbiter.yml: its host name, the items of
//! every NodeSoftware that names its pool, and a pending reboot request.

use crate::machine::MachineRef;
use orb_model::registry::SoftwareSpec;
use orb_model::{Id, Orb};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// The document written to `/etc/node-agent/desired.yml`, in node-agent's format.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct NodeDesiredDoc {
    pub kind: String,
    pub version: String,
    pub generation: u64,
    pub changesallowed: bool,
    pub items: Vec<Value>,
}

impl NodeDesiredDoc {
    pub fn render(&self) -> String {
        serde_saphyr::to_string(self).expect("node desired always serializes")
    }

    pub fn parse(text: &str) -> Option<NodeDesiredDoc> {
        serde_saphyr::from_str(text).ok()
    }

    /// The RFC 3339 time of a reboot item, if the document asks for one.
    pub fn reboot_requested_at(&self) -> Option<&str> {
        self.items
            .iter()
            .find_map(|i| i.get("reboot")?.get("requested_at")?.as_str())
    }
}

/// Items for `m`, in a stable order. `reboot_at`: keep or add a reboot request.
pub fn items_for(orb: &Orb, m: &MachineRef, reboot_at: Option<&str>) -> Vec<Value> {
    let mut items = vec![json!({"hostname": {"name": m.hostname}})];
    let pool_ref = format!("{}.{}", m.key.provider, m.pool);
    for node in orb.software.values() {
        match &node.spec {
            SoftwareSpec::Node(s) => {
                if s.pools.iter().any(|p| p.value == pool_ref) {
                    items.extend(s.items.iter().map(|i| i.value.clone()));
                }
            }
        }
    }
    if let Some(at) = reboot_at {
        items.push(json!({"reboot": {"requested_at": at}}));
    }
    items
}

/// The next document: the same generation when the items did not change, else one more.
pub fn next_doc(previous: Option<&NodeDesiredDoc>, items: Vec<Value>) -> NodeDesiredDoc {
    let generation = match previous {
        Some(p) if p.items == items => p.generation,
        Some(p) => p.generation + 1,
        None => 1,
    };
    NodeDesiredDoc {
        kind: "NodeDesired".into(),
        version: "v1".into(),
        generation,
        changesallowed: true,
        items,
    }
}

/// Pool ids of a provider that a NodeSoftware references (for `node list`).
pub fn software_for_pool(orb: &Orb, provider: &Id, pool: &Id) -> Vec<String> {
    let pool_ref = format!("{provider}.{pool}");
    orb.software
        .iter()
        .filter(|(_, n)| match &n.spec {
            SoftwareSpec::Node(s) => s.pools.iter().any(|p| p.value == pool_ref),
        })
        .map(|(id, _)| id.to_string())
        .collect()
}
