//! Host name: the kernel's (live), /etc/hostname (boot) and a `127.0.1.1` line in /etc/hosts
//! (so the name resolves locally and `sudo` does not wait on DNS).

use super::{Action, Op};
use crate::error::{Error, Result};
use crate::fsutil::{self, nofollow::Parents};
use crate::host::Host;
use node_protocol::Hostname;
use std::fmt;

const PROC_HOSTNAME: &str = "/proc/sys/kernel/hostname";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    pub kernel: String,
    pub etc_hostname: Option<String>,
    pub hosts: String,
}

impl fmt::Display for Observed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.kernel)?;
        match &self.etc_hostname {
            Some(h) if *h != self.kernel => write!(f, " (/etc/hostname: {h})"),
            None => write!(f, " (no /etc/hostname)"),
            _ => Ok(()),
        }
    }
}

fn kernel_hostname(host: &Host) -> Result<String> {
    if host.is_real_root() {
        let mut buf = [0u8; 256];
        // SAFETY: gethostname writes at most buf.len() bytes into buf.
        let r = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
        if r != 0 {
            return Err(Error::io("gethostname", &std::io::Error::last_os_error()));
        }
        let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
        Ok(String::from_utf8_lossy(&buf[..end]).into_owned())
    } else {
        // The stand-in for the kernel's name under a test root (see sysctl for why its
        // directories' owners are not checked).
        let name = match host.entry(PROC_HOSTNAME, Parents::AnyOwner, None)? {
            Some(e) => e.read()?.map(fsutil::lossy),
            None => None,
        };
        Ok(name.unwrap_or_default().trim().to_string())
    }
}

pub fn observe(host: &Host) -> Result<Observed> {
    Ok(Observed {
        kernel: kernel_hostname(host)?,
        etc_hostname: host
            .read_text("/etc/hostname")?
            .map(|s| s.trim().to_string()),
        hosts: host.read_text("/etc/hosts")?.unwrap_or_default(),
    })
}

fn hosts_has(hosts: &str, name: &str) -> bool {
    hosts.lines().any(|l| {
        let mut w = l.split('#').next().unwrap_or_default().split_whitespace();
        w.next() == Some("127.0.1.1") && w.any(|n| n == name)
    })
}

pub fn plan(h: &Hostname, o: &Observed) -> Vec<Action> {
    let mut a = Vec::new();
    if o.kernel != h.name || o.etc_hostname.as_deref() != Some(h.name.as_str()) {
        a.push(Action::new(
            Op::SetHostname {
                name: h.name.clone(),
            },
            format!("host name is {o}"),
        ));
    }
    if !hosts_has(&o.hosts, &h.name) {
        a.push(Action::new(
            Op::HostsEntry {
                name: h.name.clone(),
            },
            "name does not resolve locally",
        ));
    }
    a
}

pub fn set(host: &Host, name: &str) -> Result<()> {
    host.write(
        "/etc/hostname",
        format!("{name}\n").as_bytes(),
        0o644,
        None,
        Parents::RootOnly,
    )?;
    if host.is_real_root() {
        // SAFETY: pointer and length describe `name`'s bytes.
        if unsafe { libc::sethostname(name.as_ptr().cast(), name.len()) } != 0 {
            return Err(Error::io("sethostname", &std::io::Error::last_os_error()));
        }
        Ok(())
    } else {
        host.entry(PROC_HOSTNAME, Parents::AnyOwner, None)?
            .ok_or_else(|| Error::new(format!("{PROC_HOSTNAME} does not exist")))?
            .write_in_place(name.as_bytes())
            .map_err(|e| Error::io("cannot set host name", &e))
    }
}

/// /etc/hosts with `127.0.1.1` mapped to `name` (the Debian convention): an existing
/// `127.0.1.1` line is replaced, otherwise one is added; other lines are kept.
pub fn hosts_with(text: &str, name: &str) -> String {
    let entry = format!("127.0.1.1\t{name}");
    let mut out = String::with_capacity(text.len() + entry.len() + 1);
    let mut replaced = false;
    for line in text.lines() {
        if line.split_whitespace().next() == Some("127.0.1.1") {
            if !replaced {
                out.push_str(&entry);
                out.push('\n');
                replaced = true;
            }
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    if !replaced {
        out.push_str(&entry);
        out.push('\n');
    }
    out
}

pub fn write_hosts(host: &Host, name: &str) -> Result<()> {
    let text = host.read_text("/etc/hosts")?.unwrap_or_default();
    host.write(
        "/etc/hosts",
        hosts_with(&text, name).as_bytes(),
        0o644,
        None,
        Parents::RootOnly,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::items::{PassCtx, execute};

    #[test]
    fn hosts_rewrite_keeps_other_lines() {
        let t = "127.0.0.1\tlocalhost\n127.0.1.1\told old.example\n::1 localhost ip6-localhost\n";
        assert_eq!(
            hosts_with(t, "node-1"),
            "127.0.0.1\tlocalhost\n127.0.1.1\tnode-1\n::1 localhost ip6-localhost\n"
        );
        assert_eq!(
            hosts_with("127.0.0.1 localhost", "n"),
            "127.0.0.1 localhost\n127.0.1.1\tn\n"
        );
        assert!(hosts_has("127.0.1.1 a n # x\n", "n") && !hosts_has("# 127.0.1.1 n\n", "n"));
    }

    #[test]
    fn converges_under_a_root() {
        let tmp = tempfile::tempdir().unwrap();
        let h = Host::with_root(tmp.path(), tmp.path().join("state"));
        fsutil::write_atomic(&h.path("/proc/sys/kernel/hostname"), b"old\n", 0o644, None).unwrap();
        fsutil::write_atomic(&h.path("/etc/hosts"), b"127.0.0.1 localhost\n", 0o644, None).unwrap();
        let want = Hostname {
            name: "node-1".into(),
        };
        let p = plan(&want, &observe(&h).unwrap());
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].reason, "host name is old (no /etc/hostname)");
        let mut ctx = PassCtx::default();
        for a in &p {
            execute(&h, &a.op, &mut ctx).unwrap();
        }
        let o = observe(&h).unwrap();
        assert!(plan(&want, &o).is_empty(), "{o}");
        assert_eq!(o.to_string(), "node-1");
    }
}
