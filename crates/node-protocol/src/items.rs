//! The item kinds of a node-desired document. Serialized field order is declaration order and
//! defaults are left out, so a rendered document is stable and as short as a hand-written one.

use crate::secret::FileSecret;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// Text that may be sensitive (unit drop-ins, file contents): Debug shows only its size, so it
/// cannot leak through logs or error chains.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Content(pub String);

impl fmt::Debug for Content {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{} bytes>", self.0.len())
    }
}

impl From<&str> for Content {
    fn from(s: &str) -> Self {
        Content(s.to_owned())
    }
}

impl From<String> for Content {
    fn from(s: String) -> Self {
        Content(s)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum Item {
    Package(Package),
    Aptsource(Source),
    Dnfrepo(Source),
    File(File),
    Directory(Directory),
    Unit(Unit),
    Sysctl(Sysctl),
    Kernelmodule(KernelModule),
    Swap(Swap),
    Hostname(Hostname),
    Sshd(Sshd),
    Firewall(Firewall),
    Reboot(Reboot),
}

/// A package at an exact version (`3.4.23-4` for apt, `VERSION-RELEASE` for dnf), held by
/// default so distribution updates do not move it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Package {
    pub name: String,
    pub version: String,
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub held: bool,
}

/// An apt source (`/etc/apt/sources.list.d/<name>.list`, or `<name>` if it ends in `.list` /
/// `.sources`) or a dnf repository (`/etc/yum.repos.d/<name>.repo`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    pub name: String,
    pub content: Content,
}

/// A regular file with exactly one of `content` (text, recorded as is) or `secret` (bytes
/// that never reach the repository; see [`crate::secret`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct File {
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<Content>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<FileSecret>,
    #[serde(default = "mode_file", skip_serializing_if = "is_mode_file")]
    pub mode: String,
    #[serde(default = "root", skip_serializing_if = "is_root")]
    pub owner: String,
    #[serde(default = "root", skip_serializing_if = "is_root")]
    pub group: String,
    /// See [`Directory::allow_unsafe_parents`].
    #[serde(default, skip_serializing_if = "is_false")]
    pub allow_unsafe_parents: bool,
}

impl File {
    /// A plain text file, root-owned.
    pub fn text(path: impl Into<String>, content: impl Into<String>, mode: &str) -> File {
        File {
            path: path.into(),
            content: Some(Content(content.into())),
            secret: None,
            mode: mode.to_owned(),
            owner: root(),
            group: root(),
            allow_unsafe_parents: false,
        }
    }

    /// A file whose content is secret, root-owned.
    pub fn secret(path: impl Into<String>, secret: FileSecret, mode: &str) -> File {
        File {
            path: path.into(),
            content: None,
            secret: Some(secret),
            mode: mode.to_owned(),
            owner: root(),
            group: root(),
            allow_unsafe_parents: false,
        }
    }

    pub fn owned_by(mut self, owner: &str, group: &str) -> File {
        self.owner = owner.to_owned();
        self.group = group.to_owned();
        self
    }

    /// The bytes to write, when the document carries them (text, or a secret's value).
    pub fn bytes(&self) -> Option<&[u8]> {
        match (&self.content, &self.secret) {
            (Some(c), _) => Some(c.0.as_bytes()),
            (None, Some(FileSecret::Value(v))) => Some(v.expose()),
            _ => None,
        }
    }

    pub fn is_secret(&self) -> bool {
        self.secret.is_some()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Directory {
    pub path: String,
    #[serde(default = "mode_dir", skip_serializing_if = "is_mode_dir")]
    pub mode: String,
    #[serde(default = "root", skip_serializing_if = "is_root")]
    pub owner: String,
    #[serde(default = "root", skip_serializing_if = "is_root")]
    pub group: String,
    /// The agent never follows a link on a managed path, and by default it also refuses a
    /// path with a directory above the item that a non-root user owns, or that its group or
    /// others may write without the sticky bit: whoever controls that directory could swap
    /// a link or a FIFO in. `true` accepts such directories for this item (links stay
    /// refused), e.g. a file inside a service user's own directory. Default `false`.
    #[serde(default, skip_serializing_if = "is_false")]
    pub allow_unsafe_parents: bool,
}

impl Directory {
    pub fn new(path: impl Into<String>, mode: &str, owner: &str, group: &str) -> Directory {
        Directory {
            path: path.into(),
            mode: mode.to_owned(),
            owner: owner.to_owned(),
            group: group.to_owned(),
            allow_unsafe_parents: false,
        }
    }
}

/// A systemd unit. Without `content` the unit file is not managed (e.g. one shipped by a
/// package) but drop-ins, enablement and state are. `None` for `enabled`/`active` = leave as is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Unit {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<Content>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub dropins: BTreeMap<String, Content>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active: Option<bool>,
    /// Absolute paths; when the agent changes one of them, the unit is restarted (if running).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub restart_on: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sysctl {
    pub key: String,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KernelModule {
    pub name: String,
}

/// Only `enabled: false` is supported: turning swap on needs a device, which is not modelled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Swap {
    pub enabled: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hostname {
    pub name: String,
}

/// sshd settings written as one drop-in (`Key value` lines), validated with `sshd -t`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sshd {
    pub settings: BTreeMap<String, String>,
}

/// The agent's nftables table `inet node_agent`: incoming traffic is dropped unless it is
/// loopback, ICMP, part of an established connection, or allowed here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Firewall {
    #[serde(default)]
    pub allow: Vec<Rule>,
    /// The sshd port; validation refuses a ruleset that does not allow it, so a typo cannot
    /// cut Orbiter off the machine.
    #[serde(default = "ssh_port", skip_serializing_if = "is_ssh_port")]
    pub ssh_port: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub protocol: Protocol,
    /// Ports (`"443"`) or inclusive ranges (`"30000-32767"`).
    pub ports: Vec<String>,
    /// Source addresses or CIDR prefixes (IPv4 and IPv6); empty = from anywhere.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }
}

/// Reboot once if the machine booted before `requested_at` (RFC 3339).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reboot {
    pub requested_at: String,
}

impl Item {
    /// Stable identity in plans and the current state, e.g. `package:etcd-server`.
    pub fn id(&self) -> String {
        match self {
            Item::Package(p) => format!("package:{}", p.name),
            Item::Aptsource(s) => format!("aptsource:{}", s.name),
            Item::Dnfrepo(s) => format!("dnfrepo:{}", s.name),
            Item::File(f) => format!("file:{}", f.path),
            Item::Directory(d) => format!("directory:{}", d.path),
            Item::Unit(u) => format!("unit:{}", u.name),
            Item::Sysctl(s) => format!("sysctl:{}", s.key),
            Item::Kernelmodule(k) => format!("kernelmodule:{}", k.name),
            Item::Swap(_) => "swap".into(),
            Item::Hostname(_) => "hostname".into(),
            Item::Sshd(_) => "sshd".into(),
            Item::Firewall(_) => "firewall".into(),
            Item::Reboot(_) => "reboot".into(),
        }
    }

    pub fn package(name: &str, version: &str) -> Item {
        Item::Package(Package {
            name: name.to_owned(),
            version: version.to_owned(),
            held: true,
        })
    }
}

fn yes() -> bool {
    true
}
fn is_true(b: &bool) -> bool {
    *b
}
fn is_false(b: &bool) -> bool {
    !*b
}
pub(crate) fn root() -> String {
    "root".into()
}
fn is_root(s: &String) -> bool {
    s == "root"
}
fn mode_file() -> String {
    "0644".into()
}
fn is_mode_file(s: &String) -> bool {
    s == "0644"
}
fn mode_dir() -> String {
    "0755".into()
}
fn is_mode_dir(s: &String) -> bool {
    s == "0755"
}
fn ssh_port() -> u16 {
    22
}
fn is_ssh_port(p: &u16) -> bool {
    *p == 22
}
