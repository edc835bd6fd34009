//! Checks of single items and of a document as a whole, so that a bad document is rejected
//! entirely (and the last valid one stays in force) instead of half-applied.

use crate::desired::{Form, NodeDesired};
use crate::error::{ProtocolError as Error, Result};
use crate::items::*;
use crate::net::{PortRange, SourceNet};
use crate::paths::{MODULES_CONF, SSHD_DROPIN, SYSCTL_CONF};
use crate::secret::FileSecret;
use crate::timefmt;
use std::collections::HashSet;

impl Item {
    /// Checks one item on its own; `form` says which secret form the document may hold.
    pub fn validate(&self, form: Form) -> Result<()> {
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
                check_file_body(f, form)?;
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
            Item::Health(h) => validate_health(h),
            Item::Osupdates(u) => timefmt::parse_rfc3339(&u.requested_at)
                .map(|_| ())
                .map_err(|e| Error::new(format!("requested_at: {e}"))),
        }
    }
}

/// Exactly one of `content` and `secret`, and a secret in the form of its document.
fn check_file_body(f: &File, form: Form) -> Result<()> {
    match (&f.content, &f.secret) {
        (Some(_), Some(_)) => Err(Error::new(
            "content and secret: give one of them; hint: `secret` names a secret of the NodeSoftware, `content` is recorded in Git as it is",
        )),
        (None, None) => Err(Error::new("missing `content` or `secret`")),
        (Some(_), None) => Ok(()),
        (None, Some(s)) => match (form, s) {
            (Form::Spec, FileSecret::Name(n)) => check_name("secret", n, |c| {
                c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'
            }),
            (Form::Machine, FileSecret::Value(_)) | (Form::Record, FileSecret::Digest(_)) => Ok(()),
            (form, s) => Err(Error::new(format!(
                "secret: {} does not belong in {}{}",
                s.form_name(),
                form.describe(),
                match form {
                    Form::Spec =>
                        "; hint: name a secret of this NodeSoftware, e.g. `secret: apitoken`, and set it with `orbctl writesecret <software>.apitoken`",
                    Form::Machine =>
                        "; hint: Orbiter resolves secrets before it writes a machine's document",
                    Form::Record => "",
                }
            ))),
        },
    }
}

impl NodeDesired {
    /// Cross-item checks: identities declared once, agent-owned paths, unit files written twice.
    pub(crate) fn validate_items(&self, origin: &str, places: &[String]) -> Result<()> {
        let mut ids = HashSet::new();
        for (item, place) in self.items.iter().zip(places) {
            if !ids.insert(item.id()) {
                return Err(Error::new(format!(
                    "{place}: declared twice; hint: each item may appear once"
                )));
            }
        }
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

fn id_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "._-".contains(c)
}

/// Non-empty, only `ok` characters, and not starting with `-`: every name here ends up as an
/// argument of a command (apt, systemctl, modprobe, chown), where `-x` would be an option.
fn check_name(field: &str, v: &str, ok: impl Fn(char) -> bool) -> Result<()> {
    if v.is_empty() {
        return Err(Error::new(format!("{field}: is empty")));
    }
    if v.starts_with('-') {
        return Err(Error::new(format!(
            "{field}: `{v}` starts with `-`, which a command would take for an option"
        )));
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
    for p in &u.reload_on {
        check_abs_path("reload_on", p)?;
    }
    if u.active == Some(false) && !(u.restart_on.is_empty() && u.reload_on.is_empty()) {
        return Err(Error::new(
            "restart_on/reload_on: a unit with `active: false` is never restarted; remove one of them",
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

fn validate_firewall(f: &Firewall) -> Result<()> {
    for (i, r) in f.allow.iter().enumerate() {
        if r.ports.is_empty() && r.protocol.has_ports() {
            return Err(Error::new(format!("allow[{i}].ports: is empty")));
        }
        if !r.ports.is_empty() && !r.protocol.has_ports() {
            return Err(Error::new(format!(
                "allow[{i}].ports: {} has no ports; hint: remove `ports` (sources still apply)",
                r.protocol.as_str()
            )));
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

fn validate_health(h: &Health) -> Result<()> {
    if h.name.len() > 63 {
        return Err(Error::new(format!(
            "name: `{}` is longer than 63 characters",
            h.name
        )));
    }
    check_name("name", &h.name, |c| {
        c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'
    })
    .map_err(|e| {
        Error::new(format!(
            "{}; hint: lower-case letters, digits and `-`, e.g. web",
            e.message()
        ))
    })?;
    let check = h.check().map_err(Error::new)?;
    if let HealthCheck::Command(c) = check
        && (c.trim().is_empty() || c.contains('\0'))
    {
        return Err(Error::new(
            "command: must be a non-empty shell command; hint: e.g. `pg_isready -q`",
        ));
    }
    match (h.expect, &check) {
        (Some(_), HealthCheck::Tcp(_) | HealthCheck::Command(_)) => {
            return Err(Error::new(
                "expect: only with `http` (a command is healthy on exit 0, a tcp check when it connects)",
            ));
        }
        (Some(code), _) if !(100..=599).contains(&code) => {
            return Err(Error::new(format!(
                "expect: {code} is not an HTTP status (100-599)"
            )));
        }
        _ => {}
    }
    h.timeout().map(|_| ()).map_err(Error::new)
}
