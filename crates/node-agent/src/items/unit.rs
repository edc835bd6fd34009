//! systemd units: unit file and drop-ins under /etc/systemd/system, enablement and
//! running state. A changed definition is reloaded and a running unit restarted.

use super::{Action, Op};
use crate::error::{Error, Result};
use crate::exec::Cmd;
use crate::fsutil;
use crate::fsutil::nofollow::Parents;
use crate::host::Host;
use node_protocol::Unit;
use std::collections::BTreeMap;
use std::fmt;

pub fn unit_path(name: &str) -> String {
    format!("/etc/systemd/system/{name}")
}

pub fn dropin_path(name: &str, dropin: &str) -> String {
    format!("/etc/systemd/system/{name}.d/{dropin}")
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observed {
    /// SHA-256 of the unit file, when the unit's content is managed (`None` = absent).
    pub file: Option<String>,
    /// SHA-256 per managed drop-in (`None` = absent).
    pub dropins: BTreeMap<String, Option<String>>,
    /// From `systemctl show`: LoadState, ActiveState, SubState, UnitFileState, NeedDaemonReload.
    pub props: BTreeMap<String, String>,
}

impl Observed {
    fn prop(&self, k: &str) -> &str {
        self.props.get(k).map(String::as_str).unwrap_or("")
    }
}

impl fmt::Display for Observed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} ({})",
            self.prop("LoadState"),
            self.prop("ActiveState"),
            self.prop("SubState")
        )?;
        let ufs = self.prop("UnitFileState");
        if !ufs.is_empty() {
            write!(f, ", {ufs}")?;
        }
        Ok(())
    }
}

/// Parses `systemctl show` `Key=Value` lines.
pub fn parse_show(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

pub fn observe(host: &Host, u: &Unit) -> Result<Observed> {
    let sha = |p: String| -> Result<Option<String>> {
        Ok(host
            .read(&p, Parents::RootOnly)?
            .map(|b| fsutil::sha256_hex(&b)))
    };
    let file = if u.content.is_some() {
        sha(unit_path(&u.name))?
    } else {
        None
    };
    let mut dropins = BTreeMap::new();
    for d in u.dropins.keys() {
        dropins.insert(d.clone(), sha(dropin_path(&u.name, d))?);
    }
    let cmd = Cmd::new("systemctl").args([
        "show",
        "-p",
        "LoadState,ActiveState,SubState,UnitFileState,NeedDaemonReload",
        "--",
        &u.name,
    ]);
    let props = parse_show(&host.run_ok(&cmd)?.stdout);
    Ok(Observed {
        file,
        dropins,
        props,
    })
}

const RUNNING: [&str; 3] = ["active", "activating", "reloading"];

pub fn plan(u: &Unit, o: &Observed) -> Result<Vec<Action>> {
    let mut actions = Vec::new();
    let write = |path: String, content: &node_protocol::Content, reason: &str| {
        Action::new(
            Op::WriteFile {
                path,
                content: content.into(),
                mode: 0o644,
                uid: 0,
                gid: 0,
                owner: "root:root".into(),
                parents: Parents::RootOnly,
            },
            reason,
        )
    };
    let why = |have: &Option<String>| {
        if have.is_some() {
            "content differs"
        } else {
            "missing"
        }
    };
    if let Some(content) = &u.content
        && o.file.as_deref() != Some(fsutil::sha256_hex(content.0.as_bytes()).as_str())
    {
        actions.push(write(unit_path(&u.name), content, why(&o.file)));
    }
    for (d, content) in &u.dropins {
        let have = o.dropins.get(d).cloned().flatten();
        if have.as_deref() != Some(fsutil::sha256_hex(content.0.as_bytes()).as_str()) {
            actions.push(write(dropin_path(&u.name, d), content, why(&have)));
        }
    }
    let definition_changed = !actions.is_empty();
    if definition_changed {
        actions.push(Action::new(Op::DaemonReload, "unit definition changed"));
    } else if o.prop("NeedDaemonReload") == "yes" {
        actions.push(Action::new(Op::DaemonReload, "unit file changed on disk"));
    }
    let load = o.prop("LoadState");
    if load == "masked" {
        return Err(Error::new(format!(
            "{} is masked; hint: `systemctl unmask {}` if the agent should manage it",
            u.name, u.name
        )));
    }
    if load != "loaded" && u.content.is_none() {
        return Err(Error::new(format!(
            "{} is {} (no unit file); hint: install the package that ships it (list the package item first) or give `content`",
            u.name,
            if load.is_empty() { "unknown" } else { load }
        )));
    }
    let ufs = o.prop("UnitFileState");
    match u.enabled {
        Some(true)
            if matches!(ufs, "static" | "generated" | "transient") && !definition_changed =>
        {
            return Err(Error::new(format!(
                "{} cannot be enabled: its unit file state is {ufs} (no [Install] section)",
                u.name
            )));
        }
        Some(true) if !matches!(ufs, "enabled" | "enabled-runtime" | "alias" | "indirect") => {
            actions.push(Action::new(
                Op::UnitEnable {
                    unit: u.name.clone(),
                    enable: true,
                },
                format!("unit file state is {}", or_unknown(ufs)),
            ));
        }
        Some(false) if matches!(ufs, "enabled" | "enabled-runtime") => {
            actions.push(Action::new(
                Op::UnitEnable {
                    unit: u.name.clone(),
                    enable: false,
                },
                format!("unit file state is {ufs}"),
            ));
        }
        _ => {}
    }
    let active = o.prop("ActiveState");
    let running = RUNNING.contains(&active);
    match u.active {
        Some(true) if !running => actions.push(Action::new(
            Op::UnitStart {
                unit: u.name.clone(),
            },
            format!("unit is {}", or_unknown(active)),
        )),
        Some(true) | None if running && definition_changed => {
            actions.push(Action::new(
                Op::UnitRestart {
                    unit: u.name.clone(),
                },
                "running with an old definition",
            ));
        }
        Some(false) if running => actions.push(Action::new(
            Op::UnitStop {
                unit: u.name.clone(),
            },
            format!("unit is {active}"),
        )),
        _ => {}
    }
    Ok(actions)
}

fn or_unknown(s: &str) -> &str {
    if s.is_empty() { "unknown" } else { s }
}

pub fn systemctl(host: &Host, args: &[&str]) -> Result<()> {
    host.run_ok(
        &Cmd::new("systemctl")
            .args(args.iter().copied())
            .timeout(std::time::Duration::from_secs(300)),
    )
    .map(|_| ())
}

/// Adds why a unit failed (result and exit status, not its log: logs may hold secrets).
pub fn explain_failure(host: &Host, unit: &str, e: Error) -> Error {
    let cmd = Cmd::new("systemctl").args(["show", "-p", "Result,ExecMainStatus", "--", unit]);
    match host.run_ok(&cmd) {
        Ok(out) => {
            let p = parse_show(&out.stdout);
            Error::new(format!(
                "{e} (Result={}, ExecMainStatus={}; see `journalctl -u {unit}`)",
                p.get("Result").map(String::as_str).unwrap_or("?"),
                p.get("ExecMainStatus").map(String::as_str).unwrap_or("?")
            ))
        }
        Err(_) => e,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use node_protocol::Content;

    fn unit() -> Unit {
        Unit {
            name: "app.service".into(),
            content: Some(Content(
                "[Service]\nExecStart=/bin/true\n[Install]\nWantedBy=multi-user.target\n".into(),
            )),
            dropins: BTreeMap::from([(
                "10-env.conf".into(),
                Content("[Service]\nEnvironment=A=1\n".into()),
            )]),
            enabled: Some(true),
            active: Some(true),
            restart_on: vec![],
            reload_on: vec![],
        }
    }

    fn synced(u: &Unit, active: &str, ufs: &str) -> Observed {
        Observed {
            file: u
                .content
                .as_ref()
                .map(|c| fsutil::sha256_hex(c.0.as_bytes())),
            dropins: u
                .dropins
                .iter()
                .map(|(k, c)| (k.clone(), Some(fsutil::sha256_hex(c.0.as_bytes()))))
                .collect(),
            props: parse_show(&format!(
                "LoadState=loaded\nActiveState={active}\nSubState=x\nUnitFileState={ufs}\nNeedDaemonReload=no\n"
            )),
        }
    }

    fn ops(a: Vec<Action>) -> Vec<String> {
        a.into_iter().map(|a| a.op.to_string()).collect()
    }

    #[test]
    fn new_unit_is_written_reloaded_enabled_started() {
        let u = unit();
        let o = Observed {
            props: parse_show("LoadState=not-found\nActiveState=inactive\nUnitFileState=\n"),
            ..Default::default()
        };
        assert_eq!(
            ops(plan(&u, &o).unwrap()),
            [
                "write /etc/systemd/system/app.service (67 bytes, 0644 root:root)",
                "write /etc/systemd/system/app.service.d/10-env.conf (26 bytes, 0644 root:root)",
                "systemctl daemon-reload",
                "enable app.service",
                "start app.service"
            ]
        );
    }

    #[test]
    fn in_sync_unit_has_no_actions_and_drift_is_corrected() {
        let u = unit();
        assert!(
            plan(&u, &synced(&u, "active", "enabled"))
                .unwrap()
                .is_empty()
        );
        assert!(
            plan(&u, &synced(&u, "activating", "enabled"))
                .unwrap()
                .is_empty()
        );
        let p = plan(&u, &synced(&u, "inactive", "enabled")).unwrap();
        assert_eq!(p[0].to_string(), "start app.service: unit is inactive");
        assert_eq!(
            ops(plan(&u, &synced(&u, "failed", "disabled")).unwrap()),
            ["enable app.service", "start app.service"]
        );
    }

    #[test]
    fn changed_dropin_restarts_a_running_unit() {
        let u = unit();
        let mut o = synced(&u, "active", "enabled");
        o.dropins.insert("10-env.conf".into(), Some("0".repeat(64)));
        assert_eq!(
            ops(plan(&u, &o).unwrap()),
            [
                "write /etc/systemd/system/app.service.d/10-env.conf (26 bytes, 0644 root:root)",
                "systemctl daemon-reload",
                "restart app.service"
            ]
        );
        o = synced(&u, "active", "enabled");
        o.props.insert("NeedDaemonReload".into(), "yes".into());
        assert_eq!(ops(plan(&u, &o).unwrap()), ["systemctl daemon-reload"]);
    }

    #[test]
    fn unmanaged_state_is_left_alone_and_errors_are_explained() {
        let u = Unit {
            content: None,
            dropins: BTreeMap::new(),
            enabled: None,
            active: None,
            ..unit()
        };
        assert!(
            plan(&u, &synced(&u, "inactive", "disabled"))
                .unwrap()
                .is_empty()
        );
        let stop = Unit {
            active: Some(false),
            enabled: Some(false),
            ..u.clone()
        };
        assert_eq!(
            ops(plan(&stop, &synced(&stop, "active", "enabled")).unwrap()),
            ["disable app.service", "stop app.service"]
        );
        let mut o = synced(&u, "inactive", "");
        o.props.insert("LoadState".into(), "not-found".into());
        assert!(
            plan(&u, &o)
                .unwrap_err()
                .message()
                .contains("install the package")
        );
        o.props.insert("LoadState".into(), "masked".into());
        assert!(plan(&u, &o).unwrap_err().message().contains("unmask"));
        let en = Unit {
            enabled: Some(true),
            ..u
        };
        assert!(
            plan(&en, &synced(&en, "active", "static"))
                .unwrap_err()
                .message()
                .contains("no [Install]")
        );
    }
}
