//! The node-desired state: versioned YAML (`kind: NodeDesired`, `version: v1`) parsed with
//! line:column errors, then validated so that a bad file is rejected as a whole (and the last
//! valid one stays in force) instead of half-applied.

use crate::error::{Error, Result};
use crate::timefmt;
use serde::Deserialize;
use serde_saphyr::Spanned;
use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::net::IpAddr;

pub const DESIRED_KIND: &str = "NodeDesired";
pub const DESIRED_VERSION: &str = "v1";

/// Paths the agent writes as a whole from several items; a `file` item may not claim them.
pub const SYSCTL_CONF: &str = "/etc/sysctl.d/90-node-agent.conf";
pub const MODULES_CONF: &str = "/etc/modules-load.d/node-agent.conf";
pub const SSHD_DROPIN: &str = "/etc/ssh/sshd_config.d/00-node-agent.conf";

/// Text that may be secret (file contents, unit drop-ins with credentials): Debug shows only
/// its size, so it cannot leak through logs or error chains.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Content(pub String);

impl fmt::Debug for Content {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{} bytes>", self.0.len())
    }
}

/// A validated desired state.
#[derive(Debug, Clone)]
pub struct Desired {
    pub generation: u64,
    pub changes_allowed: bool,
    pub items: Vec<Item>,
}

#[derive(Debug, Clone, Deserialize)]
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
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Package {
    pub name: String,
    pub version: String,
    #[serde(default = "yes")]
    pub held: bool,
}

/// An apt source (`/etc/apt/sources.list.d/<name>.list`, or `<name>` if it ends in `.list` /
/// `.sources`) or a dnf repository (`/etc/yum.repos.d/<name>.repo`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    pub name: String,
    pub content: Content,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct File {
    pub path: String,
    pub content: Content,
    #[serde(default = "mode_file")]
    pub mode: String,
    #[serde(default = "root")]
    pub owner: String,
    #[serde(default = "root")]
    pub group: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Directory {
    pub path: String,
    #[serde(default = "mode_dir")]
    pub mode: String,
    #[serde(default = "root")]
    pub owner: String,
    #[serde(default = "root")]
    pub group: String,
}

/// A systemd unit. Without `content` the unit file is not managed (e.g. one shipped by a
/// package) but drop-ins, enablement and state are. `None` for `enabled`/`active` = leave as is.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Unit {
    pub name: String,
    #[serde(default)]
    pub content: Option<Content>,
    #[serde(default)]
    pub dropins: BTreeMap<String, Content>,
    #[serde(default)]
    pub enabled: Option<bool>,
    #[serde(default)]
    pub active: Option<bool>,
    /// Absolute paths; when the agent changes one of them, the unit is restarted (if running).
    #[serde(default)]
    pub restart_on: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sysctl {
    pub key: String,
    pub value: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KernelModule {
    pub name: String,
}

/// Only `enabled: false` is supported: turning swap on needs a device, which is not modelled.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Swap {
    pub enabled: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hostname {
    pub name: String,
}

/// sshd settings written as one drop-in (`Key value` lines), validated with `sshd -t`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sshd {
    pub settings: BTreeMap<String, String>,
}

/// The agent's nftables table `inet node_agent`: incoming traffic is dropped unless it is
/// loopback, ICMP, part of an established connection, or allowed here.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Firewall {
    #[serde(default)]
    pub allow: Vec<Rule>,
    /// The sshd port; validation refuses a ruleset that does not allow it, so a typo cannot
    /// cut Orbiter off the machine.
    #[serde(default = "ssh_port")]
    pub ssh_port: u16,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub protocol: Protocol,
    /// Ports (`"443"`) or inclusive ranges (`"30000-32767"`).
    pub ports: Vec<String>,
    /// Source addresses or CIDR prefixes (IPv4 and IPv6); empty = from anywhere.
    #[serde(default)]
    pub sources: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
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
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reboot {
    pub requested_at: String,
}

fn yes() -> bool {
    true
}
fn root() -> String {
    "root".into()
}
fn mode_file() -> String {
    "0644".into()
}
fn mode_dir() -> String {
    "0755".into()
}
fn ssh_port() -> u16 {
    22
}

#[derive(Deserialize)]
struct Header {
    kind: Option<String>,
    version: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DocV1 {
    #[allow(dead_code)]
    kind: String,
    #[allow(dead_code)]
    version: String,
    generation: u64,
    changesallowed: bool,
    #[serde(default)]
    items: Vec<Spanned<Item>>,
}

fn yaml_options() -> serde_saphyr::Options {
    let mut o = serde_saphyr::Options::default();
    // Snippets would quote the file, and file contents may be secrets.
    o.with_snippet = false;
    o
}

/// `origin:line:col: message` from a YAML error (first line only: no quoted input).
pub fn yaml_error(origin: &str, e: &serde_saphyr::Error) -> Error {
    let msg = e.to_string();
    let first = msg
        .lines()
        .next()
        .unwrap_or_default()
        .trim_start_matches("error: ");
    match e.location() {
        Some(loc) => {
            let suffix = format!(" at line {}, column {}", loc.line(), loc.column());
            let text = first.strip_suffix(&suffix).unwrap_or(first);
            Error::new(format!("{origin}:{}:{}: {text}", loc.line(), loc.column()))
        }
        None => Error::new(format!("{origin}: {first}")),
    }
}

/// Parses and validates a desired state; `origin` (the file name) prefixes every error.
pub fn parse_desired(text: &str, origin: &str) -> Result<Desired> {
    let yaml_err = |e: serde_saphyr::Error| yaml_error(origin, &e);
    let header: Header =
        serde_saphyr::from_str_with_options(text, yaml_options()).map_err(yaml_err)?;
    match header.kind.as_deref() {
        Some(DESIRED_KIND) => {}
        Some(k) => {
            return Err(Error::new(format!(
                "{origin}: kind is `{k}`, expected `{DESIRED_KIND}`; hint: is this the node-desired file?"
            )));
        }
        None => {
            return Err(Error::new(format!(
                "{origin}: missing `kind: {DESIRED_KIND}`"
            )));
        }
    }
    match header.version.as_deref() {
        Some(DESIRED_VERSION) => {}
        Some(v) => {
            return Err(Error::new(format!(
                "{origin}: version `{v}` of {DESIRED_KIND} is not known to node-agent {}; supported: {DESIRED_VERSION}; hint: upgrade the agent",
                crate::VERSION
            )));
        }
        None => {
            return Err(Error::new(format!(
                "{origin}: missing `version: {DESIRED_VERSION}`"
            )));
        }
    }
    let doc: DocV1 = serde_saphyr::from_str_with_options(text, yaml_options()).map_err(yaml_err)?;
    let mut ids = HashSet::new();
    let mut items = Vec::with_capacity(doc.items.len());
    for (i, spanned) in doc.items.into_iter().enumerate() {
        let loc = spanned.referenced;
        let item = spanned.value;
        let place = format!(
            "{origin}:{}:{}: items[{i}] ({})",
            loc.line(),
            loc.column(),
            item.id()
        );
        item.validate().map_err(|e| e.context(&place))?;
        if !ids.insert(item.id()) {
            return Err(Error::new(format!(
                "{place}: declared twice; hint: each item may appear once"
            )));
        }
        items.push(item);
    }
    let desired = Desired {
        generation: doc.generation,
        changes_allowed: doc.changesallowed,
        items,
    };
    desired.validate_references(origin)?;
    Ok(desired)
}

impl Desired {
    /// Cross-item checks: owned paths, unit files written twice.
    fn validate_references(&self, origin: &str) -> Result<()> {
        let mut unit_paths = HashSet::new();
        for item in &self.items {
            if let Item::Unit(u) = item {
                if u.content.is_some() {
                    unit_paths.insert(format!("/etc/systemd/system/{}", u.name));
                }
                for d in u.dropins.keys() {
                    unit_paths.insert(format!("/etc/systemd/system/{}.d/{d}", u.name));
                }
            }
        }
        for item in &self.items {
            let path = match item {
                Item::File(f) => &f.path,
                _ => continue,
            };
            for (owned, by) in [
                (SYSCTL_CONF, "sysctl"),
                (MODULES_CONF, "kernelmodule"),
                (SSHD_DROPIN, "sshd"),
            ] {
                if path == owned {
                    return Err(Error::new(format!(
                        "{origin}: {}: {path} is written by the agent from the `{by}` items; hint: use `{by}` items instead",
                        item.id()
                    )));
                }
            }
            if unit_paths.contains(path.as_str()) {
                return Err(Error::new(format!(
                    "{origin}: {}: {path} is also written by a `unit` item; hint: keep one of them",
                    item.id()
                )));
            }
        }
        Ok(())
    }
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

    fn validate(&self) -> Result<()> {
        match self {
            Item::Package(p) => {
                check_name("name", &p.name, |c| {
                    c.is_ascii_alphanumeric() || "+._-".contains(c)
                })?;
                check_name("version", &p.version, |c| {
                    c.is_ascii_alphanumeric() || ".+~:_-".contains(c)
                })
            }
            Item::Aptsource(s) | Item::Dnfrepo(s) => {
                check_name("name", &s.name, |c| {
                    c.is_ascii_alphanumeric() || "._-".contains(c)
                })?;
                if s.name.starts_with('.') {
                    return Err(Error::new("name: must not start with `.`"));
                }
                if s.content.0.trim().is_empty() {
                    return Err(Error::new("content: is empty"));
                }
                Ok(())
            }
            Item::File(f) => {
                check_abs_path("path", &f.path)?;
                parse_mode(&f.mode).map_err(|e| e.context("mode"))?;
                check_name("owner", &f.owner, id_char)?;
                check_name("group", &f.group, id_char)
            }
            Item::Directory(d) => {
                check_abs_path("path", &d.path)?;
                parse_mode(&d.mode).map_err(|e| e.context("mode"))?;
                check_name("owner", &d.owner, id_char)?;
                check_name("group", &d.group, id_char)
            }
            Item::Unit(u) => validate_unit(u),
            Item::Sysctl(s) => {
                check_name("key", &s.key, |c| {
                    c.is_ascii_alphanumeric() || "._-/:".contains(c)
                })?;
                if s.key.contains("..") || s.key.starts_with(['.', '/']) {
                    return Err(Error::new(format!(
                        "key: `{}` is not a sysctl key; hint: e.g. net.ipv4.ip_forward",
                        s.key
                    )));
                }
                if s.value.contains(['\n', '\r']) || s.value.trim().is_empty() {
                    return Err(Error::new("value: must be one non-empty line"));
                }
                Ok(())
            }
            Item::Kernelmodule(k) => check_name("name", &k.name, |c| {
                c.is_ascii_alphanumeric() || "_-".contains(c)
            }),
            Item::Swap(s) => {
                if s.enabled {
                    Err(Error::new(
                        "enabled: only `false` is supported (the agent turns swap off; hint: remove the item to leave swap alone)",
                    ))
                } else {
                    Ok(())
                }
            }
            Item::Hostname(h) => validate_hostname(&h.name),
            Item::Sshd(s) => {
                if s.settings.is_empty() {
                    return Err(Error::new(
                        "settings: is empty; hint: remove the item to drop the agent's sshd drop-in",
                    ));
                }
                for (k, v) in &s.settings {
                    check_name("settings key", k, |c| c.is_ascii_alphanumeric())?;
                    if matches!(k.to_ascii_lowercase().as_str(), "match" | "include") {
                        return Err(Error::new(format!(
                            "settings: `{k}` cannot be set from a flat drop-in"
                        )));
                    }
                    if v.trim().is_empty() || v.contains(['\n', '\r']) {
                        return Err(Error::new(format!(
                            "settings.{k}: must be one non-empty line"
                        )));
                    }
                }
                Ok(())
            }
            Item::Firewall(f) => validate_firewall(f),
            Item::Reboot(r) => timefmt::parse_rfc3339(&r.requested_at)
                .map(|_| ())
                .map_err(|e| Error::new(format!("requested_at: {e}"))),
        }
    }
}

fn id_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "._-".contains(c)
}

fn check_name(field: &str, v: &str, ok: impl Fn(char) -> bool) -> Result<()> {
    if v.is_empty() {
        return Err(Error::new(format!("{field}: is empty")));
    }
    if let Some(c) = v.chars().find(|c| !ok(*c)) {
        return Err(Error::new(format!(
            "{field}: `{v}` contains `{}`, which is not allowed here",
            c.escape_default()
        )));
    }
    Ok(())
}

fn check_abs_path(field: &str, p: &str) -> Result<()> {
    if !p.starts_with('/') || p == "/" || p.ends_with('/') {
        return Err(Error::new(format!(
            "{field}: `{p}` must be an absolute path to a file or directory below /"
        )));
    }
    if p.split('/').any(|c| c == ".." || c == ".")
        || p.contains("//")
        || p.contains('\0')
        || p.contains('\n')
    {
        return Err(Error::new(format!(
            "{field}: `{p}` must be a normalised path (no `.`, `..`, `//`)"
        )));
    }
    Ok(())
}

/// Octal permission bits from text such as `0644`, `644` or `0o644`.
pub fn parse_mode(s: &str) -> Result<u32> {
    let digits = s.trim().trim_start_matches("0o");
    match u32::from_str_radix(digits, 8) {
        Ok(m) if m <= 0o7777 && !digits.is_empty() => Ok(m),
        _ => Err(Error::new(format!(
            "`{s}` is not an octal mode; hint: write it quoted, e.g. \"0644\""
        ))),
    }
}

fn validate_unit(u: &Unit) -> Result<()> {
    check_name("name", &u.name, |c| {
        c.is_ascii_alphanumeric() || ":_.\\@-".contains(c)
    })?;
    const SUFFIXES: [&str; 9] = [
        ".service",
        ".socket",
        ".timer",
        ".mount",
        ".automount",
        ".path",
        ".target",
        ".slice",
        ".swap",
    ];
    if !SUFFIXES
        .iter()
        .any(|s| u.name.ends_with(s) && u.name.len() > s.len())
    {
        return Err(Error::new(format!(
            "name: `{}` needs a unit type suffix such as .service or .timer",
            u.name
        )));
    }
    for name in u.dropins.keys() {
        check_name("dropins key", name, |c| {
            c.is_ascii_alphanumeric() || "._-".contains(c)
        })?;
        if !name.ends_with(".conf") || name.starts_with('.') {
            return Err(Error::new(format!(
                "dropins: `{name}` must be a file name ending in .conf"
            )));
        }
    }
    for p in &u.restart_on {
        check_abs_path("restart_on", p)?;
    }
    if u.restart_on.iter().any(|_| u.active == Some(false)) {
        return Err(Error::new(
            "restart_on: a unit with `active: false` is never restarted; remove one of them",
        ));
    }
    Ok(())
}

fn validate_hostname(name: &str) -> Result<()> {
    let bad = |why: &str| {
        Err(Error::new(format!(
            "name: `{name}` is not a valid host name ({why}); hint: lower-case letters, digits, `-` and `.`, at most 64 characters"
        )))
    };
    if name.is_empty() || name.len() > 64 {
        return bad("length");
    }
    for label in name.split('.') {
        if label.is_empty() || label.len() > 63 || label.starts_with('-') || label.ends_with('-') {
            return bad("label");
        }
        if !label
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        {
            return bad("characters");
        }
    }
    Ok(())
}

/// A parsed port or inclusive port range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRange(pub u16, pub u16);

impl PortRange {
    pub fn parse(s: &str) -> Result<PortRange> {
        let bad = || {
            Error::new(format!(
                "ports: `{s}` is not a port (1-65535) or a range like \"30000-32767\""
            ))
        };
        let num = |t: &str| {
            t.trim()
                .parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(bad)
        };
        match s.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (num(a)?, num(b)?);
                if a > b {
                    Err(bad())
                } else {
                    Ok(PortRange(a, b))
                }
            }
            None => num(s).map(|p| PortRange(p, p)),
        }
    }

    pub fn contains(self, p: u16) -> bool {
        self.0 <= p && p <= self.1
    }
}

/// A source address or prefix, normalised (`10.0.0.0/8`, `fd00::/8`, `192.0.2.7`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceNet {
    pub addr: IpAddr,
    pub prefix: Option<u8>,
}

impl SourceNet {
    pub fn parse(s: &str) -> Result<SourceNet> {
        let bad = || {
            Error::new(format!(
                "sources: `{s}` is not an IP address or CIDR prefix (e.g. 10.0.0.0/8, fd00::/8)"
            ))
        };
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p.parse::<u8>().map_err(|_| bad())?)),
            None => (s, None),
        };
        let addr: IpAddr = a.trim().parse().map_err(|_| bad())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        if p.is_some_and(|p| p > max) {
            return Err(bad());
        }
        Ok(SourceNet { addr, prefix: p })
    }

    pub fn is_v4(&self) -> bool {
        self.addr.is_ipv4()
    }
}

impl fmt::Display for SourceNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.prefix {
            Some(p) => write!(f, "{}/{p}", self.addr),
            None => write!(f, "{}", self.addr),
        }
    }
}

fn validate_firewall(f: &Firewall) -> Result<()> {
    for (i, r) in f.allow.iter().enumerate() {
        if r.ports.is_empty() {
            return Err(Error::new(format!("allow[{i}].ports: is empty")));
        }
        for p in &r.ports {
            PortRange::parse(p).map_err(|e| e.context(format!("allow[{i}]")))?;
        }
        for s in &r.sources {
            SourceNet::parse(s).map_err(|e| e.context(format!("allow[{i}]")))?;
        }
    }
    let ssh_open = f.allow.iter().any(|r| {
        r.protocol == Protocol::Tcp
            && r.ports
                .iter()
                .filter_map(|p| PortRange::parse(p).ok())
                .any(|p| p.contains(f.ssh_port))
    });
    if !ssh_open {
        return Err(Error::new(format!(
            "allow: no rule allows tcp port {} (ssh_port); the machine would be cut off from Orbiter; hint: add {{protocol: tcp, ports: [\"{}\"]}} or set ssh_port",
            f.ssh_port, f.ssh_port
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const FULL: &str = r#"kind: NodeDesired
version: v1
generation: 7
changesallowed: true
items:
  - aptsource: {name: local, content: "deb [trusted=yes] http://10.0.0.1/ ./\n"}
  - package: {name: etcd-server, version: 3.4.23-4}
  - package: {name: jq, version: "1.6-2.1", held: false}
  - directory: {path: /etc/etcd, mode: "0750", owner: root, group: root}
  - file:
      path: /etc/etcd/etcd.conf
      content: |
        ETCD_NAME=n1
      mode: "0640"
  - unit:
      name: etcd.service
      dropins: {10-limits.conf: "[Service]\nLimitNOFILE=65536\n"}
      enabled: true
      active: true
      restart_on: [/etc/etcd/etcd.conf]
  - sysctl: {key: net.ipv4.ip_forward, value: 1}
  - kernelmodule: {name: br_netfilter}
  - swap: {enabled: false}
  - hostname: {name: node-1}
  - sshd: {settings: {PasswordAuthentication: "no"}}
  - firewall:
      allow:
        - {protocol: tcp, ports: [22]}
        - {protocol: tcp, ports: ["2379-2380"], sources: [10.0.0.0/24, "fd00::/8"]}
  - reboot: {requested_at: "2026-01-31T12:00:00Z"}
"#;

    #[test]
    fn parses_every_item_kind() {
        let d = parse_desired(FULL, "desired.yml").unwrap();
        assert_eq!(
            (d.generation, d.changes_allowed, d.items.len()),
            (7, true, 13)
        );
        let ids: Vec<String> = d.items.iter().map(Item::id).collect();
        assert_eq!(ids[1], "package:etcd-server");
        assert_eq!(ids[4], "file:/etc/etcd/etcd.conf");
        assert!(matches!(&d.items[1], Item::Package(p) if p.held && p.version == "3.4.23-4"));
        assert!(matches!(&d.items[2], Item::Package(p) if !p.held));
        assert!(matches!(&d.items[6], Item::Sysctl(s) if s.value == "1"));
        assert!(
            matches!(&d.items[4], Item::File(f) if f.content.0 == "ETCD_NAME=n1\n" && f.owner == "root")
        );
    }

    fn err(yaml_items: &str) -> String {
        let doc = format!(
            "kind: NodeDesired\nversion: v1\ngeneration: 1\nchangesallowed: true\nitems:\n{yaml_items}"
        );
        parse_desired(&doc, "d.yml").unwrap_err().to_string()
    }

    #[test]
    fn unknown_fields_and_kinds_report_line_and_column() {
        let e = err("  - file: {path: /a, content: x, colour: red}\n");
        assert!(e.starts_with("d.yml:6:34: unknown field `colour`"), "{e}");
        assert!(e.contains("unknown field `colour`"), "{e}");
        let e = err("  - pkg: {name: a}\n");
        assert!(e.starts_with("d.yml:6:5: unknown variant `pkg`"), "{e}");
    }

    #[test]
    fn errors_never_quote_file_content() {
        let e = err("  - file:\n      path: /a\n      content: TOPSECRET\n      mode: [1]\n");
        assert!(!e.contains("TOPSECRET"), "{e}");
        let e = err("  - file: {path: relative, content: TOPSECRET}\n");
        assert!(
            e.contains("d.yml:6:") && e.contains("absolute path") && !e.contains("TOPSECRET"),
            "{e}"
        );
    }

    #[test]
    fn semantic_errors_name_item_and_field() {
        for (items, want) in [
            (
                "  - file: {path: /a, content: x, mode: \"0999\"}\n",
                "mode: `0999` is not an octal mode",
            ),
            ("  - unit: {name: foo}\n", "unit type suffix"),
            (
                "  - unit: {name: a.service, dropins: {x: y}}\n",
                "ending in .conf",
            ),
            ("  - swap: {enabled: true}\n", "only `false`"),
            ("  - hostname: {name: Bad_Name}\n", "not a valid host name"),
            (
                "  - firewall: {allow: [{protocol: tcp, ports: [80]}]}\n",
                "no rule allows tcp port 22",
            ),
            (
                "  - firewall: {allow: [{protocol: tcp, ports: [22, 70000]}]}\n",
                "`70000` is not a port",
            ),
            (
                "  - firewall: {allow: [{protocol: tcp, ports: [22], sources: [10.0.0.0/33]}]}\n",
                "not an IP address",
            ),
            (
                "  - firewall: {allow: [{protocol: icmp, ports: [22]}]}\n",
                "unknown variant `icmp`",
            ),
            ("  - reboot: {requested_at: tomorrow}\n", "RFC 3339"),
            (
                "  - sysctl: {key: ../../etc/x, value: 1}\n",
                "is not a sysctl key",
            ),
            ("  - sshd: {settings: {Match: all}}\n", "flat drop-in"),
            (
                "  - hostname: {name: a}\n  - hostname: {name: b}\n",
                "d.yml:7:5: items[1] (hostname): declared twice",
            ),
            (
                "  - file: {path: /etc/sysctl.d/90-node-agent.conf, content: x}\n",
                "`sysctl` items",
            ),
            (
                "  - unit: {name: a.service, content: x}\n  - file: {path: /etc/systemd/system/a.service, content: x}\n",
                "also written by a `unit`",
            ),
        ] {
            let e = err(items);
            assert!(e.contains(want), "for {items:?}: got {e}");
        }
    }

    #[test]
    fn wrong_kind_version_and_syntax() {
        assert!(
            parse_desired("kind: NodeCurrent\nversion: v1\n", "f")
                .unwrap_err()
                .message()
                .contains("expected `NodeDesired`")
        );
        assert!(
            parse_desired("kind: NodeDesired\nversion: v9\n", "f")
                .unwrap_err()
                .message()
                .contains("supported: v1")
        );
        assert!(
            parse_desired("kind: NodeDesired\nversion: v1\ngeneration: 1\n", "f")
                .unwrap_err()
                .message()
                .contains("changesallowed")
        );
        let e = parse_desired("kind: NodeDesired\nversion: v1\nitems: [\n", "f").unwrap_err();
        assert_eq!(e.message(), "f:3:8: unclosed bracket '['");
    }

    #[test]
    fn content_debug_hides_text() {
        assert_eq!(format!("{:?}", Content("secret".into())), "<6 bytes>");
    }

    #[test]
    fn modes_ports_sources() {
        assert_eq!(parse_mode("0644").unwrap(), 0o644);
        assert_eq!(parse_mode("0o2755").unwrap(), 0o2755);
        assert!(
            parse_mode("").is_err() && parse_mode("8").is_err() && parse_mode("17777").is_err()
        );
        assert_eq!(
            PortRange::parse("30000-32767").unwrap(),
            PortRange(30000, 32767)
        );
        assert!(PortRange::parse("0").is_err() && PortRange::parse("5-4").is_err());
        assert_eq!(
            SourceNet::parse("fd00::/8").unwrap().to_string(),
            "fd00::/8"
        );
        assert!(SourceNet::parse("10.0.0.1").unwrap().is_v4());
    }
}
