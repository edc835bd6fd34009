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
    Health(Health),
    Osupdates(OsUpdates),
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
    /// Absolute paths; when the agent changes one of them (and none of `restart_on`), the unit
    /// is reloaded if running (`try-reload-or-restart`): HAProxy and keepalived take a new
    /// configuration without dropping connections or the VIPs they hold.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reload_on: Vec<String>,
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
    /// Ports (`"443"`) or inclusive ranges (`"30000-32767"`); required for tcp and udp, none
    /// for vrrp.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
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
    /// VRRP (IP protocol 112, no ports): keepalived's advertisements between the machines
    /// sharing a virtual IP. Dropping them makes every machine take the address.
    Vrrp,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Vrrp => "vrrp",
        }
    }

    /// Whether rules of this protocol name ports.
    pub fn has_ports(self) -> bool {
        self != Protocol::Vrrp
    }
}

/// Reboot once if the machine booted before `requested_at` (RFC 3339).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reboot {
    pub requested_at: String,
}

/// A health check the agent runs on every pass; it changes nothing on the machine. Exactly
/// one of `http` (a plain `http://host:port/path`, answered with status `expect`), `tcp`
/// (`host:port` accepts a connection) or `command` (`sh -c`, healthy on exit 0), each within
/// `timeout` (default 5s, at most 60s). The item is in sync while the check passes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Health {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// The HTTP status a healthy answer has (only with `http`; default 200).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect: Option<u16>,
    /// `500ms`, `5s`, `1m`; default 5s, at most 60s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
}

/// What a [`Health`] item checks, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HealthCheck<'a> {
    Http { url: HttpUrl, expect: u16 },
    Tcp(HostPort),
    Command(&'a str),
}

/// `host:port`; an IPv6 address in brackets (`[::1]:5432`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPort {
    /// Without brackets.
    pub host: String,
    pub port: u16,
}

/// A plain `http://host[:port][/path]` URL (no TLS, no user info, no fragment).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpUrl {
    pub host: HostPort,
    /// Starts with `/`; includes a query string if there is one.
    pub path: String,
}

pub const HEALTH_DEFAULT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
pub const HEALTH_MAX_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

impl Health {
    /// The check, parsed; errors name the field (see `validate`).
    pub fn check(&self) -> Result<HealthCheck<'_>, String> {
        match (&self.http, &self.tcp, &self.command) {
            (Some(u), None, None) => Ok(HealthCheck::Http {
                url: HttpUrl::parse(u).map_err(|e| format!("http: {e}"))?,
                expect: self.expect.unwrap_or(200),
            }),
            (None, Some(t), None) => HostPort::parse(t, None)
                .map(HealthCheck::Tcp)
                .map_err(|e| format!("tcp: {e}")),
            (None, None, Some(c)) => Ok(HealthCheck::Command(c)),
            (None, None, None) => Err("give one of `http`, `tcp` or `command`".into()),
            _ => Err("give only one of `http`, `tcp` and `command`".into()),
        }
    }

    /// The timeout, parsed (default [`HEALTH_DEFAULT_TIMEOUT`]).
    pub fn timeout(&self) -> Result<std::time::Duration, String> {
        match &self.timeout {
            None => Ok(HEALTH_DEFAULT_TIMEOUT),
            Some(t) => parse_timeout(t).map_err(|e| format!("timeout: {e}")),
        }
    }

    /// The timeout as people read it (`5s`).
    pub fn timeout_text(&self) -> String {
        self.timeout.clone().unwrap_or_else(|| "5s".into())
    }
}

/// `500ms`, `5s` or `1m`, more than zero and at most [`HEALTH_MAX_TIMEOUT`].
fn parse_timeout(s: &str) -> Result<std::time::Duration, String> {
    use std::time::Duration;
    let bad = || format!("`{s}` is not a duration; hint: e.g. 5s, 500ms or 1m");
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let n: u64 = s[..split].parse().map_err(|_| bad())?;
    let d = match &s[split..] {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.saturating_mul(60)),
        _ => return Err(bad()),
    };
    if d.is_zero() || d > HEALTH_MAX_TIMEOUT {
        return Err(format!("`{s}` must be more than zero and at most 60s"));
    }
    Ok(d)
}

impl HostPort {
    /// `host:port` (`default_port` when the port is left out, if there is one).
    pub fn parse(s: &str, default_port: Option<u16>) -> Result<HostPort, String> {
        let (host, port) = if let Some(rest) = s.strip_prefix('[') {
            let (h, after) = rest
                .split_once(']')
                .ok_or_else(|| format!("`{s}`: `[` without `]`"))?;
            if h.parse::<std::net::Ipv6Addr>().is_err() {
                return Err(format!("`{h}` is not an IPv6 address"));
            }
            match after {
                "" => (h, None),
                p => (
                    h,
                    Some(
                        p.strip_prefix(':')
                            .ok_or_else(|| format!("`{s}`: expected `:port` after `]`"))?,
                    ),
                ),
            }
        } else {
            match s.rsplit_once(':') {
                Some((h, _)) if h.contains(':') => {
                    return Err(format!(
                        "`{s}`: write an IPv6 address in brackets, e.g. [::1]:5432"
                    ));
                }
                Some((h, p)) => (h, Some(p)),
                None => (s, None),
            }
        };
        let host_ok = !host.is_empty()
            && host.len() <= 253
            && !host.starts_with(['-', '.'])
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || ".-:".contains(c));
        if !host_ok {
            return Err(format!("`{host}` is not a host name or IP address"));
        }
        let port = match (port, default_port) {
            (Some(p), _) => p
                .parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| format!("`{p}` is not a port (1-65535)"))?,
            (None, Some(d)) => d,
            (None, None) => return Err(format!("`{s}` has no port; hint: e.g. 127.0.0.1:5432")),
        };
        Ok(HostPort {
            host: host.to_owned(),
            port,
        })
    }
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl HttpUrl {
    pub fn parse(s: &str) -> Result<HttpUrl, String> {
        if s.get(..8)
            .is_some_and(|p| p.eq_ignore_ascii_case("https://"))
        {
            return Err(format!(
                "`{s}`: https is not supported (the agent speaks plain HTTP only); hint: use `command: curl -fsS --max-time 5 {s}`"
            ));
        }
        let rest = match s.get(..7) {
            Some(p) if p.eq_ignore_ascii_case("http://") => &s[7..],
            _ => {
                return Err(format!(
                    "`{s}` is not an http:// URL; hint: e.g. http://127.0.0.1:8080/healthz"
                ));
            }
        };
        if let Some(c) = s.chars().find(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!(
                "`{}` may not contain `{}`",
                s.escape_default(),
                c.escape_default()
            ));
        }
        if s.contains('#') {
            return Err(format!("`{s}`: a fragment (`#…`) is not sent; remove it"));
        }
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) if rest[i..].starts_with('/') => (&rest[..i], rest[i..].to_owned()),
            Some(i) => (&rest[..i], format!("/{}", &rest[i..])),
            None => (rest, "/".to_owned()),
        };
        if authority.contains('@') {
            return Err(format!(
                "`{s}`: user info (`user@`) is not supported; the document is recorded in Git"
            ));
        }
        Ok(HttpUrl {
            host: HostPort::parse(authority, Some(80))?,
            path,
        })
    }
}

/// Which packages an [`OsUpdates`] request upgrades.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UpdateSet {
    /// Only from sources whose suite ends in `-security` (apt), `--security` (dnf).
    Security,
    All,
}

impl UpdateSet {
    pub fn as_str(self) -> &'static str {
        match self {
            UpdateSet::Security => "security",
            UpdateSet::All => "all",
        }
    }
}

/// Upgrade the operating system's packages once per `requested_at` (RFC 3339); held
/// (pinned) packages are never touched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OsUpdates {
    pub updates: UpdateSet,
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
            Item::Health(h) => format!("health:{}", h.name),
            Item::Osupdates(_) => "osupdates".into(),
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
