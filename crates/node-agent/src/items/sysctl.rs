//! Kernel parameters: set live through /proc/sys and persisted (all keys together) in
//! /etc/sysctl.d/90-node-agent.conf so they survive a reboot.

use super::{Action, Op};
use crate::error::{Error, Result};
use crate::fsutil::{
    self,
    nofollow::{Entry, Parents},
};
use crate::host::Host;
use node_protocol::Sysctl;
use std::fmt;

/// `/proc/sys/...` for a key; dotted keys map dots to slashes, slashed keys (needed when
/// a component contains a dot, e.g. an interface `eth0.1`) are taken as they are.
pub fn proc_path(key: &str) -> String {
    if key.contains('/') {
        format!("/proc/sys/{key}")
    } else {
        format!("/proc/sys/{}", key.replace('.', "/"))
    }
}

/// Whitespace-normalised, so `4096 87380 6291456` equals the kernel's tab-separated form.
pub fn normalize(v: &str) -> String {
    v.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed(pub String);

impl fmt::Display for Observed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A `/proc/sys` entry, resolved without following links. Its directories' owners are not
/// checked: procfs entries cannot be created, renamed or replaced by anyone, and inside a
/// user or network namespace they may show an owner other than root.
fn proc_entry(host: &Host, key: &str) -> Result<Option<Entry>> {
    host.entry(&proc_path(key), Parents::AnyOwner, None)
}

fn missing(key: &str) -> Error {
    Error::new(format!(
        "sysctl {key} does not exist on this kernel ({} is missing); hint: a kernel module may need loading first",
        proc_path(key)
    ))
}

pub fn observe(host: &Host, s: &Sysctl) -> Result<Observed> {
    let value = match proc_entry(host, &s.key)? {
        Some(e) => e
            .read()
            .map_err(|e| e.context(format!("cannot read sysctl {}", s.key)))?,
        None => None,
    };
    match value {
        Some(v) => Ok(Observed(normalize(&fsutil::lossy(v)))),
        None => Err(missing(&s.key)),
    }
}

pub fn plan(s: &Sysctl, o: &Observed) -> Vec<Action> {
    if o.0 == normalize(&s.value) {
        vec![]
    } else {
        vec![Action::new(
            Op::SysctlSet {
                key: s.key.clone(),
                value: normalize(&s.value),
            },
            format!("value is {}", o.0),
        )]
    }
}

pub fn set(host: &Host, key: &str, value: &str) -> Result<()> {
    let entry = proc_entry(host, key)?.ok_or_else(|| missing(key))?;
    entry.write_in_place(format!("{value}\n").as_bytes()).map_err(|e| {
        let hint = if e.raw_os_error() == Some(libc::EROFS) || e.kind() == std::io::ErrorKind::PermissionDenied {
            " (read-only in this container or namespace; net.* keys need CAP_NET_ADMIN in the machine's own network namespace)"
        } else {
            ""
        };
        Error::io(format!("cannot set sysctl {key}{hint}"), &e)
    })
}

/// The persisted file for all sysctl items (`None` when there are none).
pub fn render_conf(items: &[&Sysctl]) -> Option<String> {
    if items.is_empty() {
        return None;
    }
    let mut s = String::from(
        "# Written by node-agent from the node-desired state; local edits are reverted.\n",
    );
    for i in items {
        s.push_str(&format!("{} = {}\n", i.key, normalize(&i.value)));
    }
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::items::{PassCtx, execute};

    #[test]
    fn paths_and_rendering() {
        assert_eq!(
            proc_path("net.ipv4.ip_forward"),
            "/proc/sys/net/ipv4/ip_forward"
        );
        assert_eq!(
            proc_path("net/ipv4/conf/eth0.1/forwarding"),
            "/proc/sys/net/ipv4/conf/eth0.1/forwarding"
        );
        let a = Sysctl {
            key: "net.ipv4.ip_forward".into(),
            value: "1".into(),
        };
        let b = Sysctl {
            key: "net.ipv4.tcp_rmem".into(),
            value: "4096\t87380   6291456".into(),
        };
        assert_eq!(
            render_conf(&[&a, &b]).unwrap(),
            "# Written by node-agent from the node-desired state; local edits are reverted.\nnet.ipv4.ip_forward = 1\nnet.ipv4.tcp_rmem = 4096 87380 6291456\n"
        );
        assert!(render_conf(&[]).is_none());
    }

    #[test]
    fn sets_values_under_a_root() {
        let tmp = tempfile::tempdir().unwrap();
        let h = Host::with_root(tmp.path(), tmp.path().join("state"));
        std::fs::create_dir_all(h.path("/proc/sys/net/ipv4")).unwrap();
        std::fs::write(
            h.path("/proc/sys/net/ipv4/tcp_rmem"),
            "4096\t131072\t6291456\n",
        )
        .unwrap();
        let s = Sysctl {
            key: "net.ipv4.tcp_rmem".into(),
            value: "4096 87380 6291456".into(),
        };
        let p = plan(&s, &observe(&h, &s).unwrap());
        assert_eq!(
            p[0].to_string(),
            "set net.ipv4.tcp_rmem = 4096 87380 6291456: value is 4096 131072 6291456"
        );
        execute(&h, &p[0].op, &mut PassCtx::default()).unwrap();
        assert!(plan(&s, &observe(&h, &s).unwrap()).is_empty());
        let missing = Sysctl {
            key: "net.nope".into(),
            value: "1".into(),
        };
        assert!(
            observe(&h, &missing)
                .unwrap_err()
                .message()
                .contains("does not exist on this kernel")
        );
    }
}
