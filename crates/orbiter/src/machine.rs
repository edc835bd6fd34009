//! Machines as Orbiter sees them, whatever the provider.

use orb_model::Id;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::IpAddr;

/// `<provider>.<machine>`: unique within an Orb, used in repository paths and commands.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct MachineKey {
    pub provider: Id,
    pub machine: Id,
}

impl MachineKey {
    pub fn new(provider: &Id, machine: &Id) -> Self {
        MachineKey {
            provider: provider.clone(),
            machine: machine.clone(),
        }
    }

    pub fn parse(s: &str) -> Result<MachineKey, String> {
        let (p, m) = s
            .split_once('.')
            .ok_or_else(|| format!("`{s}` is not a machine id; write `<provider>.<machine>` as `orbctl node list` shows"))?;
        Ok(MachineKey {
            provider: Id::parse(p)?,
            machine: Id::parse(m)?,
        })
    }
}

impl fmt::Display for MachineKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.provider, self.machine)
    }
}

impl From<MachineKey> for String {
    fn from(k: MachineKey) -> String {
        k.to_string()
    }
}

impl TryFrom<String> for MachineKey {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        MachineKey::parse(&s)
    }
}

/// A machine that exists (listed by a Static provider, or running under a Local one).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MachineRef {
    pub key: MachineKey,
    pub pool: Id,
    pub hostname: String,
    pub ip: IpAddr,
    pub user: String,
    /// What its SSH host key must be before first contact, and who says so; `None`: nobody,
    /// so a person confirms the key it offers.
    pub known_key: Option<KnownKey>,
}

/// A host key known before first contact.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KnownKey {
    /// The provider created the machine and read its key where the machine cannot forge it
    /// (Local: on the host; clouds: the API): a public key line `alg base64`.
    Vouched(String),
    /// orbiter.yml declares it: a public key line or a `SHA256:` fingerprint.
    Declared(String),
}

impl KnownKey {
    /// Whether the key `line` (`alg base64`) with `fingerprint` (`SHA256:…`) is this one.
    pub fn matches(&self, line: &str, fingerprint: &str) -> bool {
        let (KnownKey::Vouched(k) | KnownKey::Declared(k)) = self;
        let k = k.trim();
        if k.starts_with("SHA256:") {
            return k == fingerprint;
        }
        let first_two = |s: &str| s.split_whitespace().take(2).collect::<Vec<_>>().join(" ");
        first_two(k) == first_two(line)
    }

    pub fn describe(&self) -> &'static str {
        match self {
            KnownKey::Vouched(_) => "its provider created it with another host key",
            KnownKey::Declared(_) => "orbiter.yml declares another host key",
        }
    }
}

/// Machines a provider names `<pool>-<n>` (Local, clouds): returns n, so pools sort
/// numerically (`-10` after `-9`) and new machines take the lowest free number.
pub fn pool_index(pool: &Id, machine: &Id) -> Option<u32> {
    machine
        .as_str()
        .strip_prefix(pool.as_str())?
        .strip_prefix('-')?
        .parse()
        .ok()
}
