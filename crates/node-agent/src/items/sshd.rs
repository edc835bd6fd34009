//! sshd settings as the agent's own drop-in. A new drop-in is validated with `sshd -t`
//! before sshd is reloaded; if validation fails the previous file is restored, so a bad
//! setting cannot lock Orbiter out.

use super::{Action, Op};
use crate::error::{Error, Result};
use crate::exec::Cmd;
use crate::fsutil::{self, nofollow::Parents};
use crate::host::Host;
use node_protocol::Sshd;
use node_protocol::paths::SSHD_DROPIN;
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    pub dropin: Option<String>,
    /// Whether /etc/ssh/sshd_config includes sshd_config.d (Debian 11+, RHEL 9+ do).
    pub included: bool,
}

impl fmt::Display for Observed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.dropin {
            None => write!(f, "no drop-in")?,
            Some(c) => write!(
                f,
                "drop-in sha256:{}",
                &fsutil::sha256_hex(c.as_bytes())[..16]
            )?,
        }
        if !self.included {
            write!(f, " (not included by sshd_config)")?;
        }
        Ok(())
    }
}

pub fn render(s: &Sshd) -> String {
    let mut out = String::from(
        "# Written by node-agent from the node-desired state; local edits are reverted.\n",
    );
    for (k, v) in &s.settings {
        out.push_str(&format!("{k} {}\n", v.trim()));
    }
    out
}

/// Whether the main config has an `Include` that covers the drop-in directory.
pub fn includes_dropins(sshd_config: &str) -> bool {
    sshd_config.lines().any(|l| {
        let mut w = l.split_whitespace();
        w.next().is_some_and(|k| k.eq_ignore_ascii_case("include"))
            && w.any(|p| p.contains("sshd_config.d/"))
    })
}

pub fn observe(host: &Host) -> Result<Observed> {
    let main = fsutil::read_text_opt(&host.path("/etc/ssh/sshd_config"))?.unwrap_or_default();
    Ok(Observed {
        dropin: host.read_text(SSHD_DROPIN)?,
        included: includes_dropins(&main),
    })
}

pub fn plan(want: Option<&Sshd>, o: &Observed) -> Result<Vec<Action>> {
    match want {
        None if o.dropin.is_some() => Ok(vec![Action::new(
            Op::SshdDropin { content: None },
            "no sshd item",
        )]),
        None => Ok(vec![]),
        Some(s) => {
            if !o.included {
                return Err(Error::new(
                    "/etc/ssh/sshd_config does not include /etc/ssh/sshd_config.d/*.conf, so a drop-in would have no effect; hint: add `Include /etc/ssh/sshd_config.d/*.conf` at its top",
                ));
            }
            let content = render(s);
            match &o.dropin {
                Some(have) if *have == content => Ok(vec![]),
                have => Ok(vec![Action::new(
                    Op::SshdDropin {
                        content: Some(content),
                    },
                    if have.is_some() {
                        "content differs"
                    } else {
                        "missing"
                    },
                )]),
            }
        }
    }
}

fn service_name(host: &Host) -> &'static str {
    // Debian/Ubuntu call it ssh.service, RHEL-likes sshd.service.
    for dir in [
        "/usr/lib/systemd/system",
        "/lib/systemd/system",
        "/etc/systemd/system",
    ] {
        if host.path(format!("{dir}/ssh.service")).exists() {
            return "ssh.service";
        }
    }
    "sshd.service"
}

pub fn apply(host: &Host, content: Option<&str>) -> Result<()> {
    let write = |c: &[u8]| host.write(SSHD_DROPIN, c, 0o600, None, Parents::RootOnly);
    let remove = || host.remove(SSHD_DROPIN, Parents::RootOnly).map(|_| ());
    let previous = host.read(SSHD_DROPIN, Parents::RootOnly)?;
    match content {
        Some(c) => write(c.as_bytes())?,
        None => remove()?,
    }
    let test = Cmd::new("/usr/sbin/sshd").arg("-t");
    let checked = host.run(&test).and_then(|out| {
        if out.success() {
            Ok(())
        } else {
            Err(out.failure(&test))
        }
    });
    if let Err(e) = checked {
        let restored = match &previous {
            Some(p) => write(p),
            None => remove(),
        };
        let note = match restored {
            Ok(()) => "previous drop-in restored, sshd not reloaded",
            Err(_) => "restoring the previous drop-in FAILED, sshd not reloaded",
        };
        return Err(e.context(format!("sshd rejected the new configuration ({note})")));
    }
    host.run_ok(&Cmd::new("systemctl").args(["try-reload-or-restart", service_name(host)]))
        .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn renders_and_plans() {
        let s = Sshd {
            settings: BTreeMap::from([
                ("PasswordAuthentication".into(), "no".into()),
                ("MaxAuthTries".into(), " 3 ".into()),
            ]),
        };
        let text = render(&s);
        assert!(
            text.ends_with("MaxAuthTries 3\nPasswordAuthentication no\n"),
            "{text}"
        );
        let o = Observed {
            dropin: None,
            included: true,
        };
        assert!(
            matches!(&plan(Some(&s), &o).unwrap()[0].op, Op::SshdDropin { content: Some(c) } if *c == text)
        );
        assert!(
            plan(
                Some(&s),
                &Observed {
                    dropin: Some(text.clone()),
                    included: true
                }
            )
            .unwrap()
            .is_empty()
        );
        assert!(
            plan(
                Some(&s),
                &Observed {
                    dropin: None,
                    included: false
                }
            )
            .unwrap_err()
            .message()
            .contains("Include")
        );
        assert_eq!(
            plan(
                None,
                &Observed {
                    dropin: Some(text),
                    included: true
                }
            )
            .unwrap()[0]
                .op,
            Op::SshdDropin { content: None }
        );
        assert!(plan(None, &o).unwrap().is_empty());
    }

    #[test]
    fn include_detection() {
        assert!(includes_dropins(
            "# x\nInclude /etc/ssh/sshd_config.d/*.conf\nPort 22\n"
        ));
        assert!(!includes_dropins(
            "#Include /etc/ssh/sshd_config.d/*.conf\n"
        ));
        assert!(!includes_dropins("Port 22\n"));
    }
}
