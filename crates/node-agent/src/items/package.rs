//! Packages at exact versions, held against distribution updates: apt (`name=version`,
//! `apt-mark hold`) on Debian/Ubuntu, dnf/yum (`name-version`, `versionlock`) on RHEL-likes.

use super::{Action, Op, PassCtx};
use crate::error::{Error, Result};
use crate::exec::{Cmd, Output};
use crate::host::{Host, PkgManager};
use node_protocol::Package;
use std::fmt;
use std::time::Duration;

/// Long enough for a large package over a slow mirror; the watchdog is fed meanwhile.
pub const INSTALL_TIMEOUT: Duration = Duration::from_secs(30 * 60);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    pub manager: PkgManager,
    /// Installed version (apt: `Version`; rpm: `EPOCH:VERSION-RELEASE`).
    pub installed: Option<String>,
    /// A half-installed/half-configured package (dpkg status), which must be repaired.
    pub broken: Option<String>,
    pub held: bool,
}

impl fmt::Display for Observed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.installed, &self.broken) {
            (_, Some(state)) => write!(f, "{state}")?,
            (Some(v), None) => write!(f, "{v}")?,
            (None, None) => write!(f, "not installed")?,
        }
        if self.held {
            write!(f, " (held)")?;
        }
        Ok(())
    }
}

pub fn observe(host: &Host, p: &Package) -> Result<Observed> {
    let manager = host.pkg_manager().clone();
    match &manager {
        PkgManager::Apt => {
            let cmd = Cmd::new("dpkg-query").args([
                "-W",
                "-f",
                "${Status}\\t${Version}\\n",
                "--",
                &p.name,
            ]);
            let out = host.run(&cmd)?;
            if !out.success() {
                if out.stderr.contains("no packages found") {
                    return Ok(Observed {
                        manager,
                        installed: None,
                        broken: None,
                        held: false,
                    });
                }
                return Err(out.failure(&cmd));
            }
            let (mut o, _) = parse_dpkg_status(out.stdout.lines().next().unwrap_or_default());
            o.manager = manager;
            Ok(o)
        }
        PkgManager::Dnf | PkgManager::Yum => {
            let cmd = Cmd::new("rpm").args([
                "-q",
                "--qf",
                "%{EPOCHNUM}:%{VERSION}-%{RELEASE}\\n",
                "--",
                &p.name,
            ]);
            let out = host.run(&cmd)?;
            let installed = if out.success() {
                out.stdout.lines().last().map(str::to_string)
            } else {
                None
            };
            let bin = if manager == PkgManager::Dnf {
                "dnf"
            } else {
                "yum"
            };
            let locks = host.run(&Cmd::new(bin).args(["-q", "versionlock", "list"]))?;
            if !locks.success() {
                return Err(Error::new(format!(
                    "`{bin} versionlock list` failed: {}; hint: install the versionlock plugin (python3-dnf-plugin-versionlock or yum-plugin-versionlock)",
                    locks.tail()
                )));
            }
            Ok(Observed {
                held: rpm_locked(&locks.stdout, &p.name),
                manager,
                installed,
                broken: None,
            })
        }
        PkgManager::Unsupported(ids) => Err(Error::new(format!(
            "no supported package manager (os-release says {ids}); supported: apt, dnf, yum"
        ))),
    }
}

/// Parses `${Status}\t${Version}` from dpkg-query; the bool says whether it parsed.
pub fn parse_dpkg_status(line: &str) -> (Observed, bool) {
    let (status, version) = line.split_once('\t').unwrap_or((line, ""));
    let words: Vec<&str> = status.split_whitespace().collect();
    let mut o = Observed {
        manager: PkgManager::Apt,
        installed: None,
        broken: None,
        held: false,
    };
    if words.len() != 3 {
        return (o, false);
    }
    o.held = words[0] == "hold";
    match words[2] {
        "installed" => o.installed = Some(version.to_string()),
        "not-installed" | "config-files" => {}
        other => o.broken = Some(format!("{other} {version}")),
    }
    (o, true)
}

/// Whether `dnf versionlock list` output locks `name` (lines like `name-0:1.2-3.el9.*`).
pub fn rpm_locked(list: &str, name: &str) -> bool {
    list.lines().any(|l| {
        let l = l.trim().trim_start_matches('!');
        l.strip_prefix(name)
            .and_then(|r| r.strip_prefix('-'))
            .is_some_and(|r| r.starts_with(|c: char| c.is_ascii_digit()))
    })
}

/// Whether the installed version is the desired one (rpm: epoch only compared when given).
pub fn version_matches(manager: &PkgManager, installed: &str, want: &str) -> bool {
    match manager {
        PkgManager::Dnf | PkgManager::Yum if !want.contains(':') => {
            installed
                .split_once(':')
                .map(|(_, v)| v)
                .unwrap_or(installed)
                == want
        }
        _ => installed == want,
    }
}

pub fn plan(p: &Package, o: &Observed) -> Result<Vec<Action>> {
    if let PkgManager::Unsupported(ids) = &o.manager {
        return Err(Error::new(format!("no supported package manager ({ids})")));
    }
    let version_ok = o.broken.is_none()
        && o.installed
            .as_deref()
            .is_some_and(|v| version_matches(&o.manager, v, &p.version));
    let mut actions = Vec::new();
    let hold = |hold: bool, why: &str| {
        Action::new(
            Op::PkgHold {
                name: p.name.clone(),
                version: p.version.clone(),
                hold,
            },
            why,
        )
    };
    if !version_ok {
        let why = match (&o.installed, &o.broken) {
            (_, Some(state)) => format!("package is {state}"),
            (Some(v), None) => format!("installed version is {v}"),
            (None, None) => "not installed".to_string(),
        };
        // A dnf versionlock blocks any other version; apt overrides holds with a flag.
        if o.held && o.manager != PkgManager::Apt {
            actions.push(hold(false, "the lock would block the version change"));
        }
        actions.push(Action::new(
            Op::PkgInstall {
                name: p.name.clone(),
                version: p.version.clone(),
            },
            why,
        ));
        // Always (re)hold after a version change: the lock names the version on dnf, and
        // on apt it makes the result independent of how apt treated the old hold.
        if p.held {
            actions.push(hold(true, "pinned to the desired version"));
        }
        if !p.held && o.held && o.manager == PkgManager::Apt {
            actions.push(hold(false, "desired unheld"));
        }
    } else if p.held && !o.held {
        actions.push(hold(true, "not held"));
    } else if !p.held && o.held {
        actions.push(hold(false, "held, desired unheld"));
    }
    Ok(actions)
}

/// `apt-get` noninteractive, keeping changed conffiles, waiting for the dpkg lock, with the
/// install timeout.
pub fn apt_cmd(args: &[&str]) -> Cmd {
    Cmd::new("apt-get")
        .args([
            "-q",
            "-y",
            "-o",
            "DPkg::Lock::Timeout=300",
            "-o",
            "Dpkg::Options::=--force-confold",
        ])
        .args(args.iter().copied())
        .env("DEBIAN_FRONTEND", "noninteractive")
        .env("APT_LISTCHANGES_FRONTEND", "none")
        .env("NEEDRESTART_MODE", "a")
        .timeout(INSTALL_TIMEOUT)
}

pub fn apt_update(host: &Host) -> Result<()> {
    apt_update_with(host, &[])
}

/// `apt-get update` with extra options before the command (another source list).
pub fn apt_update_with(host: &Host, options: &[&str]) -> Result<()> {
    let cmd = apt_cmd(&[options, &["update"]].concat());
    let out = host.run(&cmd)?;
    // apt-get update exits 0 on some fetch failures; `W:`/`E:` lines tell.
    if !out.success() || out.stderr.lines().any(|l| l.starts_with("E:")) {
        return Err(out.failure(&cmd));
    }
    Ok(())
}

fn apt_install(host: &Host, name: &str, version: &str) -> Result<Output> {
    let spec = format!("{name}={version}");
    host.run(&apt_cmd(&[
        "install",
        "--allow-downgrades",
        "--allow-change-held-packages",
        "--",
        &spec,
    ]))
}

/// apt failed because an earlier dpkg run was interrupted (e.g. the agent was killed).
pub fn dpkg_interrupted(out: &Output) -> bool {
    let text = format!("{}{}", out.stderr, out.stdout);
    !out.success()
        && (text.contains("dpkg was interrupted") || text.contains("dpkg --configure -a"))
}

/// Finishes what an interrupted dpkg run left half-configured.
pub fn repair_dpkg(host: &Host) -> Result<()> {
    let fix = Cmd::new("dpkg")
        .args(["--configure", "-a", "--force-confold"])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .timeout(INSTALL_TIMEOUT);
    host.run_ok(&fix)
        .map(|_| ())
        .map_err(|e| e.context("repairing an interrupted dpkg run"))
}

/// apt fails this way when a version is not in its (possibly stale) lists.
fn looks_not_found(out: &Output) -> bool {
    let t = format!("{}{}", out.stderr, out.stdout);
    t.contains("was not found")
        || t.contains("Unable to locate package")
        || t.contains("has no installation candidate")
}

pub fn install(host: &Host, ctx: &mut PassCtx, name: &str, version: &str) -> Result<()> {
    match host.pkg_manager().clone() {
        PkgManager::Apt => {
            let mut out = apt_install(host, name, version)?;
            if dpkg_interrupted(&out) {
                repair_dpkg(host)?;
                out = apt_install(host, name, version)?;
            }
            if !out.success() && looks_not_found(&out) && !ctx.apt_updated {
                apt_update(host)?;
                ctx.apt_updated = true;
                out = apt_install(host, name, version)?;
            }
            if out.success() {
                Ok(())
            } else {
                let hint = if looks_not_found(&out) {
                    "; hint: is the version in a configured source (`apt-cache policy` lists them)?"
                } else {
                    ""
                };
                Err(Error::new(format!(
                    "{}{hint}",
                    out.failure(&apt_cmd(&["install", "--", &format!("{name}={version}")]))
                )))
            }
        }
        PkgManager::Dnf | PkgManager::Yum => {
            let bin = if *host.pkg_manager() == PkgManager::Dnf {
                "dnf"
            } else {
                "yum"
            };
            let spec = format!("{name}-{version}");
            let install = Cmd::new(bin)
                .args(["-y", "install", "--", &spec])
                .timeout(INSTALL_TIMEOUT);
            let out = host.run(&install)?;
            if !out.success() {
                return Err(out.failure(&install));
            }
            // `install` of an older version than the installed one is a no-op: downgrade.
            let now = observe(
                host,
                &Package {
                    name: name.into(),
                    version: version.into(),
                    held: false,
                },
            )?;
            if now
                .installed
                .as_deref()
                .is_some_and(|v| version_matches(host.pkg_manager(), v, version))
            {
                return Ok(());
            }
            host.run_ok(
                &Cmd::new(bin)
                    .args(["-y", "downgrade", "--", &spec])
                    .timeout(INSTALL_TIMEOUT),
            )
            .map(|_| ())
        }
        PkgManager::Unsupported(ids) => {
            Err(Error::new(format!("no supported package manager ({ids})")))
        }
    }
}

pub fn set_hold(host: &Host, name: &str, version: &str, hold: bool) -> Result<()> {
    let cmd = match host.pkg_manager() {
        PkgManager::Apt => {
            Cmd::new("apt-mark").args([if hold { "hold" } else { "unhold" }, "--", name])
        }
        m @ (PkgManager::Dnf | PkgManager::Yum) => {
            let bin = if *m == PkgManager::Dnf { "dnf" } else { "yum" };
            if hold {
                Cmd::new(bin).args([
                    "-q",
                    "versionlock",
                    "add",
                    "--",
                    &format!("{name}-{version}"),
                ])
            } else {
                Cmd::new(bin).args(["-q", "versionlock", "delete", "--", name])
            }
        }
        PkgManager::Unsupported(ids) => {
            return Err(Error::new(format!("no supported package manager ({ids})")));
        }
    };
    host.run_ok(&cmd).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkg(v: &str, held: bool) -> Package {
        Package {
            name: "etcd-server".into(),
            version: v.into(),
            held,
        }
    }

    fn apt(installed: Option<&str>, held: bool) -> Observed {
        Observed {
            manager: PkgManager::Apt,
            installed: installed.map(str::to_string),
            broken: None,
            held,
        }
    }

    fn ops(actions: &[Action]) -> Vec<String> {
        actions.iter().map(|a| a.op.to_string()).collect()
    }

    #[test]
    fn dpkg_status_lines() {
        let (o, ok) = parse_dpkg_status("hold ok installed\t3.4.23-4");
        assert!(ok && o.held && o.installed.as_deref() == Some("3.4.23-4"));
        let (o, _) = parse_dpkg_status("install ok half-configured\t3.5.16-4");
        assert_eq!(o.broken.as_deref(), Some("half-configured 3.5.16-4"));
        let (o, _) = parse_dpkg_status("deinstall ok config-files\t3.4.23-4");
        assert!(o.installed.is_none() && o.broken.is_none());
        assert!(!parse_dpkg_status("garbage").1);
    }

    #[test]
    fn apt_plans() {
        assert_eq!(
            ops(&plan(&pkg("3.4.23-4", true), &apt(None, false)).unwrap()),
            ["install etcd-server 3.4.23-4", "hold etcd-server"]
        );
        // Upgrade of a held package: apt overrides the hold, which stays.
        let p = plan(&pkg("3.5.16-4", true), &apt(Some("3.4.23-4"), true)).unwrap();
        assert_eq!(
            ops(&p),
            ["install etcd-server 3.5.16-4", "hold etcd-server"]
        );
        assert_eq!(p[0].reason, "installed version is 3.4.23-4");
        assert!(
            plan(&pkg("3.4.23-4", true), &apt(Some("3.4.23-4"), true))
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            ops(&plan(&pkg("3.4.23-4", true), &apt(Some("3.4.23-4"), false)).unwrap()),
            ["hold etcd-server"]
        );
        assert_eq!(
            ops(&plan(&pkg("3.4.23-4", false), &apt(Some("3.4.23-4"), true)).unwrap()),
            ["unhold etcd-server"]
        );
        let broken = Observed {
            broken: Some("half-configured 3.4.23-4".into()),
            ..apt(None, true)
        };
        assert_eq!(
            plan(&pkg("3.4.23-4", true), &broken).unwrap()[0].reason,
            "package is half-configured 3.4.23-4"
        );
    }

    #[test]
    fn dnf_plans_unlock_around_a_version_change() {
        let o = Observed {
            manager: PkgManager::Dnf,
            installed: Some("0:3.4.23-1.el9".into()),
            broken: None,
            held: true,
        };
        assert_eq!(
            ops(&plan(&pkg("3.5.16-1.el9", true), &o).unwrap()),
            [
                "unhold etcd-server",
                "install etcd-server 3.5.16-1.el9",
                "hold etcd-server"
            ]
        );
        assert!(plan(&pkg("3.4.23-1.el9", true), &o).unwrap().is_empty());
        assert!(!version_matches(
            &PkgManager::Dnf,
            "1:3.4.23-1.el9",
            "0:3.4.23-1.el9"
        ));
    }

    #[test]
    fn versionlock_lines() {
        let list = "etcd-server-0:3.4.23-1.el9.*\n!jq-1.6-1.el9.*\n";
        assert!(rpm_locked(list, "etcd-server"));
        assert!(!rpm_locked(list, "etcd"));
        assert!(rpm_locked(list, "jq"));
    }

    #[test]
    fn unsupported_systems_are_errors() {
        let o = Observed {
            manager: PkgManager::Unsupported("alpine".into()),
            installed: None,
            broken: None,
            held: false,
        };
        assert!(
            plan(&pkg("1", true), &o)
                .unwrap_err()
                .message()
                .contains("alpine")
        );
    }
}
