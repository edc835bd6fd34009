//! The files Orbiter owns in the Orb repository, all under `orbiter/`. Orbiter is their only
//! writer; each is rendered from typed data in a stable order and contains nothing that changes
//! while the world does not (no timestamps of loops), so an idle Orbiter commits nothing.

use crate::machine::MachineKey;
use crate::ssh::HostKey;
use orb_secrets::Envelope;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub const CURRENT: &str = "orbiter/current.yml";
pub const HOSTKEYS: &str = "orbiter/hostkeys.yml";
pub const SECRETS: &str = "orbiter/secrets.yml";

pub fn node_desired_path(k: &MachineKey) -> String {
    format!("orbiter/nodes/{k}/desired.yml")
}

pub fn node_current_path(k: &MachineKey) -> String {
    format!("orbiter/nodes/{k}/current.yml")
}

/// SSH host keys pinned on first contact. A machine whose key changes is refused until a person
/// removes its entry (after reinstalling it, say).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct HostKeys {
    pub kind: String,
    pub version: String,
    #[serde(default)]
    pub keys: BTreeMap<MachineKey, HostKey>,
}

/// Secrets Orbiter generated (maintenance keys), sealed like every other secret and addressed as
/// `orbiter.<provider>.<name>`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct GeneratedSecrets {
    pub kind: String,
    pub version: String,
    #[serde(default)]
    pub secrets: BTreeMap<String, Envelope>,
}

/// What Orbiter observed, as committed in `orbiter/current.yml`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct OrbCurrent {
    pub kind: String,
    pub version: String,
    /// Why the newest orbiter.yml is not in force; the last valid one is used meanwhile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desired_error: Option<String>,
    /// Set by teardown.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub destroyed: bool,
    #[serde(default)]
    pub machines: BTreeMap<MachineKey, MachineCurrent>,
    /// Steps the plan is waiting for, with their reasons.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub waiting: Vec<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct MachineCurrent {
    pub pool: String,
    pub ip: String,
    /// ready, converging, unreachable, refused (host key), failed.
    pub state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Parses an Orbiter-owned YAML file, naming it in errors.
pub fn parse<T: for<'de> Deserialize<'de>>(text: &str, file: &str) -> anyhow::Result<T> {
    serde_saphyr::from_str(text).map_err(|e| {
        anyhow::anyhow!(
            "{}",
            e.render_with_options(serde_saphyr::render_options! { source_name: Some(file) })
        )
    })
}

pub fn render<T: Serialize>(v: &T) -> String {
    serde_saphyr::to_string(v).expect("state files always serialize")
}

impl HostKeys {
    pub fn new() -> Self {
        HostKeys {
            kind: "HostKeys".into(),
            version: "v1".into(),
            keys: BTreeMap::new(),
        }
    }
}

impl GeneratedSecrets {
    pub fn new() -> Self {
        GeneratedSecrets {
            kind: "OrbiterSecrets".into(),
            version: "v1".into(),
            secrets: BTreeMap::new(),
        }
    }
}

impl OrbCurrent {
    pub fn new() -> Self {
        OrbCurrent {
            kind: "OrbCurrent".into(),
            version: "v1".into(),
            ..Default::default()
        }
    }
}
