//! `NodeSoftware`: node-agent items (packages, files, units, sysctl, firewall …) for every
//! machine of some pools. It lets an Orb manage plain machines; cluster kinds produce the same
//! items for their own pools.

use crate::located::Located;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct NodeSoftware {
    /// `<provider>.<pool>` references.
    pub pools: Vec<Located<String>>,
    /// node-agent items exactly as in a NodeDesired file, e.g. `- package: {name: curl, version: 7.88.1-10}`.
    /// Checked with node-agent's own parser when orbiter.yml is read.
    pub items: Vec<Located<serde_json::Value>>,
}
