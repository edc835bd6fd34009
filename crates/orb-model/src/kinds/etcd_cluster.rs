//! `EtcdCluster`: a static etcd cluster on the machines of one provider pool.

use crate::id::Id;
use crate::located::Located;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct EtcdCluster {
    pub provider: Located<Id>,
    pub pool: Located<Id>,
    /// Members; odd, because an even count adds a machine without adding failure tolerance.
    pub nodes: Located<u32>,
    /// etcd-server package version, e.g. `3.4.23`.
    pub version: String,
}
