//! The files Orbiter owns in the Orb repository, all under `orbiter/`. Orbiter is their only
//! writer; each is rendered from typed data in a stable order, contains nothing that changes
//! while the world does not (no timestamps of loops), so an idle Orbiter commits nothing, and
//! carries `kind` and `version`, checked on read: a file of a newer version stops this Orbiter
//! with a clear error instead of being misread, and older versions are migrated in code.

use crate::machine::MachineKey;
use crate::ssh::HostKey;
use anyhow::{Result, anyhow, bail};
use orb_secrets::Envelope;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub const CURRENT: &str = "orbiter/current.yml";
pub const HOSTKEYS: &str = "orbiter/hostkeys.yml";
pub const SECRETS: &str = "orbiter/secrets.yml";
pub const ORBITER_HOST: &str = "orbiter/host.yml";

pub fn node_desired_path(k: &MachineKey) -> String {
    format!("orbiter/nodes/{k}/desired.yml")
}

pub fn node_current_path(k: &MachineKey) -> String {
    format!("orbiter/nodes/{k}/current.yml")
}

/// The machine a node file path is about (`orbiter/nodes/<key>/<file>`).
pub fn node_file_machine(path: &str, file: &str) -> Option<MachineKey> {
    let rest = path.strip_prefix("orbiter/nodes/")?;
    MachineKey::parse(rest.strip_suffix(&format!("/{file}"))?).ok()
}

/// A file kind Orbiter writes, with the versions it reads (the last is the one it writes).
pub trait Versioned {
    const KIND: &'static str;
    const VERSIONS: &'static [&'static str];
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

impl Versioned for HostKeys {
    const KIND: &'static str = "HostKeys";
    const VERSIONS: &'static [&'static str] = &["v1"];
}

/// Secrets Orbiter generated (maintenance keys, cluster certificates), sealed like every
/// other secret and addressed as `orbiter.<owner>.<name>` (internal) or `<cluster>.<name>`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct GeneratedSecrets {
    pub kind: String,
    pub version: String,
    #[serde(default)]
    pub secrets: BTreeMap<String, Envelope>,
}

impl Versioned for GeneratedSecrets {
    const KIND: &'static str = "OrbiterSecrets";
    const VERSIONS: &'static [&'static str] = &["v1"];
}

/// The machine the Orbiter runs on after a takeoff handed over to it (written by `orbctl
/// takeoff`): the one machine a rotated masterkey is staged on, since only it holds the orb
/// config. No file: the Orbiter runs where the person started it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct OrbiterHost {
    pub kind: String,
    pub version: String,
    pub machine: MachineKey,
}

impl Versioned for OrbiterHost {
    const KIND: &'static str = "OrbiterHost";
    const VERSIONS: &'static [&'static str] = &["v1"];
}

impl OrbiterHost {
    pub fn new(machine: MachineKey) -> Self {
        OrbiterHost {
            kind: Self::KIND.into(),
            version: current_version::<Self>(),
            machine,
        }
    }
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

impl Versioned for OrbCurrent {
    const KIND: &'static str = "OrbCurrent";
    const VERSIONS: &'static [&'static str] = &["v1"];
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
    /// Package updates its OS has pending (held packages not counted), as its agent last saw.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_updates: Option<u32>,
    /// Its OS says it needs a reboot (after an update).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub reboot_required: bool,
}

#[derive(Deserialize)]
struct Header {
    kind: Option<String>,
    version: Option<String>,
}

/// Which known version a file of `kind` is in. `Ok(None)`: it has neither kind nor version
/// (written before files carried them), for readers that migrate such files.
pub fn file_version(
    text: &str,
    file: &str,
    kind: &str,
    versions: &[&'static str],
) -> Result<Option<&'static str>> {
    let h: Header = parse_yaml(text, file)?;
    match (h.kind.as_deref(), h.version.as_deref()) {
        (None, None) => Ok(None),
        (Some(k), _) if k != kind => bail!("{file}: kind is `{k}`, expected `{kind}`"),
        (_, None) => bail!("{file}: no `version`"),
        (_, Some(v)) => versions.iter().find(|k| **k == v).map(|v| Some(*v)).ok_or_else(|| {
            anyhow!(
                "{file}: version `{v}` of {kind} is newer than this Orbiter reads ({}); hint: a newer Orbiter wrote it: upgrade orbctl, and do not let an older Orbiter run against this Orb",
                versions.join(", ")
            )
        }),
    }
}

/// Parses an Orbiter-owned file after checking its kind and version.
pub fn parse<T: Versioned + for<'de> Deserialize<'de>>(text: &str, file: &str) -> Result<T> {
    if file_version(text, file, T::KIND, T::VERSIONS)?.is_none() {
        bail!("{file}: no `kind: {}`", T::KIND);
    }
    parse_yaml(text, file)
}

/// Parses YAML, naming the file in errors.
pub fn parse_yaml<T: for<'de> Deserialize<'de>>(text: &str, file: &str) -> Result<T> {
    serde_saphyr::from_str(text).map_err(|e| {
        anyhow!(
            "{}",
            e.render_with_options(serde_saphyr::render_options! { source_name: Some(file) })
        )
    })
}

pub fn render<T: Serialize>(v: &T) -> String {
    serde_saphyr::to_string(v).expect("state files always serialize")
}

fn current_version<T: Versioned>() -> String {
    T::VERSIONS[T::VERSIONS.len() - 1].to_owned()
}

impl HostKeys {
    pub fn new() -> Self {
        HostKeys {
            kind: Self::KIND.into(),
            version: current_version::<Self>(),
            keys: BTreeMap::new(),
        }
    }
}

impl GeneratedSecrets {
    pub fn new() -> Self {
        GeneratedSecrets {
            kind: Self::KIND.into(),
            version: current_version::<Self>(),
            secrets: BTreeMap::new(),
        }
    }
}

impl OrbCurrent {
    pub fn new() -> Self {
        OrbCurrent {
            kind: Self::KIND.into(),
            version: current_version::<Self>(),
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_newer_version_stops_with_a_clear_error() {
        let text = render(&HostKeys::new());
        assert!(parse::<HostKeys>(&text, HOSTKEYS).is_ok());
        let newer = text.replace("version: v1", "version: v2");
        let e = parse::<HostKeys>(&newer, HOSTKEYS).unwrap_err().to_string();
        assert!(
            e.contains("version `v2` of HostKeys is newer") && e.contains("upgrade"),
            "{e}"
        );
        let other = text.replace("kind: HostKeys", "kind: OrbCurrent");
        let e = parse::<HostKeys>(&other, HOSTKEYS).unwrap_err().to_string();
        assert!(e.contains("expected `HostKeys`"), "{e}");
        let e = parse::<HostKeys>("keys: {}\n", HOSTKEYS)
            .unwrap_err()
            .to_string();
        assert!(e.contains("no `kind: HostKeys`"), "{e}");
    }

    #[test]
    fn node_file_paths() {
        let k = MachineKey::parse("lab.s1").unwrap();
        assert_eq!(
            node_file_machine(&node_desired_path(&k), "desired.yml"),
            Some(k.clone())
        );
        assert_eq!(
            node_file_machine(&node_current_path(&k), "desired.yml"),
            None
        );
    }
}
