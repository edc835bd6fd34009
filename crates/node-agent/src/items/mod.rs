//! Items: for each kind, `observe` (read-only), a pure `plan` from (desired, observed) to
//! ordered actions with reasons, and the effects those actions have when applied.

pub mod file;
pub mod firewall;
pub mod health;
pub mod hostname;
pub mod kmod;
pub mod osupdates;
pub mod package;
pub mod reboot;
pub mod source;
pub mod sshd;
pub mod swap;
pub mod sysctl;
pub mod unit;

#[cfg(test)]
mod link_attacks;

use crate::error::Result;
use crate::fsutil::nofollow::Parents;
use crate::host::Host;
use node_protocol::{Content, Item, KernelModule, Sysctl, UpdateSet};
use std::fmt;

/// Bytes a file gets; Debug shows only the size (they may be secret).
#[derive(Clone, PartialEq, Eq)]
pub struct Bytes(pub Vec<u8>);

impl fmt::Debug for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{} bytes>", self.0.len())
    }
}

impl From<&Content> for Bytes {
    fn from(c: &Content) -> Self {
        Bytes(c.0.as_bytes().to_vec())
    }
}

/// One effect, with everything needed to carry it out (no further lookups at apply time).
/// Paths are managed paths: never resolved through a link (see [`crate::fsutil::nofollow`]),
/// their directories checked as `parents` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Replace a file's content atomically, with mode and owner.
    WriteFile {
        path: String,
        content: Bytes,
        mode: u32,
        uid: u32,
        gid: u32,
        owner: String,
        parents: Parents,
    },
    /// Fix mode/owner of an existing file or directory.
    SetMeta {
        path: String,
        mode: u32,
        uid: u32,
        gid: u32,
        owner: String,
        parents: Parents,
    },
    CreateDir {
        path: String,
        mode: u32,
        uid: u32,
        gid: u32,
        owner: String,
        parents: Parents,
    },
    RemoveFile {
        path: String,
    },
    AptUpdate,
    PkgInstall {
        name: String,
        version: String,
    },
    PkgHold {
        name: String,
        version: String,
        hold: bool,
    },
    DaemonReload,
    UnitEnable {
        unit: String,
        enable: bool,
    },
    UnitStart {
        unit: String,
    },
    UnitStop {
        unit: String,
    },
    UnitRestart {
        unit: String,
    },
    /// Restart if running (after a file in `restart_on` changed).
    UnitTryRestart {
        unit: String,
    },
    /// Reload if running, restart where the unit cannot reload (after a file in `reload_on`).
    UnitTryReload {
        unit: String,
    },
    SysctlSet {
        key: String,
        value: String,
    },
    Modprobe {
        name: String,
    },
    SwapOff,
    FstabDisableSwap,
    SetHostname {
        name: String,
    },
    HostsEntry {
        name: String,
    },
    /// Write (or with `None` remove) the agent's sshd drop-in, validated by `sshd -t`.
    SshdDropin {
        content: Option<String>,
    },
    NftApply {
        ruleset: String,
    },
    NftDelete,
    Reboot {
        requested_at: i64,
    },
    /// Upgrade the OS packages for one request (recorded, so it is done once).
    OsUpgrade {
        updates: UpdateSet,
        requested_at: i64,
    },
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::WriteFile {
                path,
                content,
                mode,
                owner,
                ..
            } => {
                write!(
                    f,
                    "write {path} ({} bytes, {mode:04o} {owner})",
                    content.0.len()
                )
            }
            Op::SetMeta {
                path, mode, owner, ..
            } => write!(f, "set {path} to {mode:04o} {owner}"),
            Op::CreateDir {
                path, mode, owner, ..
            } => write!(f, "create directory {path} ({mode:04o} {owner})"),
            Op::RemoveFile { path } => write!(f, "remove {path}"),
            Op::AptUpdate => write!(f, "apt-get update"),
            Op::PkgInstall { name, version } => write!(f, "install {name} {version}"),
            Op::PkgHold {
                name, hold: true, ..
            } => write!(f, "hold {name}"),
            Op::PkgHold {
                name, hold: false, ..
            } => write!(f, "unhold {name}"),
            Op::DaemonReload => write!(f, "systemctl daemon-reload"),
            Op::UnitEnable { unit, enable: true } => write!(f, "enable {unit}"),
            Op::UnitEnable {
                unit,
                enable: false,
            } => write!(f, "disable {unit}"),
            Op::UnitStart { unit } => write!(f, "start {unit}"),
            Op::UnitStop { unit } => write!(f, "stop {unit}"),
            Op::UnitRestart { unit } => write!(f, "restart {unit}"),
            Op::UnitTryRestart { unit } => write!(f, "restart {unit} if running"),
            Op::UnitTryReload { unit } => write!(f, "reload {unit} if running"),
            Op::SysctlSet { key, value } => write!(f, "set {key} = {value}"),
            Op::Modprobe { name } => write!(f, "modprobe {name}"),
            Op::SwapOff => write!(f, "swapoff --all"),
            Op::FstabDisableSwap => write!(f, "comment out swap entries in /etc/fstab"),
            Op::SetHostname { name } => write!(f, "set host name to {name}"),
            Op::HostsEntry { name } => write!(f, "map {name} to 127.0.1.1 in /etc/hosts"),
            Op::SshdDropin { content: Some(_) } => {
                write!(
                    f,
                    "write {} and reload sshd",
                    node_protocol::paths::SSHD_DROPIN
                )
            }
            Op::SshdDropin { content: None } => {
                write!(
                    f,
                    "remove {} and reload sshd",
                    node_protocol::paths::SSHD_DROPIN
                )
            }
            Op::NftApply { .. } => write!(f, "load nftables table inet {}", firewall::TABLE),
            Op::NftDelete => write!(f, "delete nftables table inet {}", firewall::TABLE),
            Op::Reboot { requested_at } => write!(
                f,
                "reboot (requested at {})",
                node_protocol::timefmt::format_rfc3339(*requested_at)
            ),
            Op::OsUpgrade {
                updates,
                requested_at,
            } => write!(
                f,
                "upgrade {} packages (request of {})",
                updates.as_str(),
                node_protocol::timefmt::format_rfc3339(*requested_at)
            ),
        }
    }
}

/// An effect and why it is needed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Action {
    pub op: Op,
    pub reason: String,
}

impl Action {
    pub fn new(op: Op, reason: impl Into<String>) -> Self {
        Action {
            op,
            reason: reason.into(),
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.op, self.reason)
    }
}

/// A unit of work in a pass: a desired item, or one of the agent-owned aggregates whose
/// content follows from all items of a kind (and which is cleaned up when they go away).
pub enum Work<'a> {
    Item(&'a Item),
    SysctlConf(Vec<&'a Sysctl>),
    ModulesConf(Vec<&'a KernelModule>),
    /// No `sshd` item: the agent's drop-in must not linger.
    NoSshd,
    /// No `firewall` item: the agent's table must not linger.
    NoFirewall,
}

impl Work<'_> {
    pub fn id(&self) -> String {
        match self {
            Work::Item(i) => i.id(),
            Work::SysctlConf(_) => format!("owned:{}", node_protocol::paths::SYSCTL_CONF),
            Work::ModulesConf(_) => format!("owned:{}", node_protocol::paths::MODULES_CONF),
            Work::NoSshd => "sshd".into(),
            Work::NoFirewall => "firewall".into(),
        }
    }
}

/// What an item looks like now and what it takes to match the desired state.
pub struct Step {
    /// A one-line summary of the observed state (never secret content).
    pub observed: String,
    pub actions: Vec<Action>,
    /// Synthetic work with nothing on the system and nothing to do is not reported.
    pub absent: bool,
    /// Nothing to do and the item as desired. Usually "no actions"; an observe-only item
    /// (a failing health check) or one waiting (a scheduled upgrade) is not in sync without
    /// any action.
    pub in_sync: bool,
    /// Whether a pass soon could bring an item that is not in sync into sync (false when it
    /// waits for a time or gave up, e.g. an upgrade request whose attempts are used up).
    pub retry: bool,
    /// An error that stands although there is nothing to do now (a failed upgrade waiting
    /// for its retry), reported as the item's `last_error`.
    pub error: Option<String>,
}

fn step<O: fmt::Display>(obs: O, actions: Vec<Action>) -> Step {
    Step {
        observed: obs.to_string(),
        in_sync: actions.is_empty(),
        actions,
        absent: false,
        retry: true,
        error: None,
    }
}

/// Observes one piece of work and plans it. Read-only.
pub fn observe_and_plan(host: &Host, work: &Work) -> Result<Step> {
    match work {
        Work::Item(Item::File(f)) => {
            let o = file::observe_file(host, f)?;
            Ok(step(&o, file::plan_file(f, &o)?))
        }
        Work::Item(Item::Directory(d)) => {
            let o = file::observe_dir(host, d)?;
            Ok(step(&o, file::plan_dir(d, &o)?))
        }
        Work::Item(Item::Aptsource(s)) => {
            let o = source::observe(host, source::Flavor::Apt, s)?;
            Ok(step(&o, source::plan(source::Flavor::Apt, s, &o)))
        }
        Work::Item(Item::Dnfrepo(s)) => {
            let o = source::observe(host, source::Flavor::Dnf, s)?;
            Ok(step(&o, source::plan(source::Flavor::Dnf, s, &o)))
        }
        Work::Item(Item::Package(p)) => {
            let o = package::observe(host, p)?;
            Ok(step(&o, package::plan(p, &o)?))
        }
        Work::Item(Item::Unit(u)) => {
            let o = unit::observe(host, u)?;
            Ok(step(&o, unit::plan(u, &o)?))
        }
        Work::Item(Item::Sysctl(s)) => {
            let o = sysctl::observe(host, s)?;
            Ok(step(&o, sysctl::plan(s, &o)))
        }
        Work::SysctlConf(items) => {
            let o = file::observe_owned(host, node_protocol::paths::SYSCTL_CONF)?;
            let want = sysctl::render_conf(items);
            Ok(Step {
                absent: o.is_absent() && want.is_none(),
                ..step(
                    &o,
                    file::plan_owned(node_protocol::paths::SYSCTL_CONF, want, &o),
                )
            })
        }
        Work::Item(Item::Kernelmodule(k)) => {
            let o = kmod::observe(host, k)?;
            Ok(step(&o, kmod::plan(k, &o)))
        }
        Work::ModulesConf(items) => {
            let o = file::observe_owned(host, node_protocol::paths::MODULES_CONF)?;
            let want = kmod::render_conf(items);
            Ok(Step {
                absent: o.is_absent() && want.is_none(),
                ..step(
                    &o,
                    file::plan_owned(node_protocol::paths::MODULES_CONF, want, &o),
                )
            })
        }
        Work::Item(Item::Swap(_)) => {
            let o = swap::observe(host)?;
            Ok(step(&o, swap::plan(&o)))
        }
        Work::Item(Item::Hostname(h)) => {
            let o = hostname::observe(host)?;
            Ok(step(&o, hostname::plan(h, &o)))
        }
        Work::Item(Item::Sshd(s)) => {
            let o = sshd::observe(host)?;
            Ok(step(&o, sshd::plan(Some(s), &o)?))
        }
        Work::NoSshd => {
            let o = sshd::observe(host)?;
            let actions = sshd::plan(None, &o)?;
            Ok(Step {
                absent: o.dropin.is_none(),
                ..step(&o, actions)
            })
        }
        Work::Item(Item::Firewall(fw)) => {
            let o = firewall::observe(host)?;
            Ok(step(&o, firewall::plan(Some(fw), &o)))
        }
        Work::NoFirewall => {
            let o = firewall::observe_if_installed(host)?;
            let actions = firewall::plan(None, &o);
            Ok(Step {
                absent: o.listing.is_none(),
                ..step(&o, actions)
            })
        }
        Work::Item(Item::Reboot(r)) => {
            let o = reboot::observe(host)?;
            Ok(step(&o, reboot::plan(r, &o)?))
        }
        Work::Item(Item::Health(h)) => {
            let o = health::observe(host, h)?;
            Ok(Step {
                in_sync: o.is_healthy(),
                ..step(&o, vec![])
            })
        }
        Work::Item(Item::Osupdates(u)) => {
            let o = osupdates::observe(host, u)?;
            let p = osupdates::plan(&o);
            Ok(Step {
                in_sync: p.in_sync,
                retry: p.retry,
                error: p.error,
                ..step(&o, p.actions)
            })
        }
    }
}

/// State shared by the actions of one pass.
#[derive(Default)]
pub struct PassCtx {
    /// Whether `apt-get update` already ran in this pass (a package version not found triggers one).
    pub apt_updated: bool,
    /// Set when a reboot action ran: the caller reboots after reporting.
    pub reboot: Option<i64>,
    /// An OS upgrade ran (whatever its outcome): the pending-update count is out of date.
    pub upgraded: bool,
    /// Paths written in this pass, with a sequence number.
    pub changed: Vec<(String, u64)>,
    /// Units (re)started in this pass, with a sequence number.
    pub restarted: Vec<(String, u64)>,
    seq: u64,
}

impl PassCtx {
    fn next(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }
}

/// Carries out one action.
pub fn execute(host: &Host, op: &Op, ctx: &mut PassCtx) -> Result<()> {
    host.tick();
    match op {
        Op::WriteFile {
            path,
            content,
            mode,
            uid,
            gid,
            parents,
            ..
        } => {
            host.write(path, &content.0, *mode, Some((*uid, *gid)), *parents)?;
            let n = ctx.next();
            ctx.changed.push((path.clone(), n));
            Ok(())
        }
        Op::SetMeta {
            path,
            mode,
            uid,
            gid,
            parents,
            ..
        } => host.set_meta(path, *mode, *uid, *gid, *parents),
        Op::CreateDir {
            path,
            mode,
            uid,
            gid,
            parents,
            ..
        } => host.create_dir(path, *mode, *uid, *gid, *parents),
        Op::RemoveFile { path } => host.remove(path, Parents::RootOnly).map(|_| ()),
        Op::AptUpdate => {
            package::apt_update(host)?;
            ctx.apt_updated = true;
            Ok(())
        }
        Op::PkgInstall { name, version } => package::install(host, ctx, name, version),
        Op::PkgHold {
            name,
            version,
            hold,
        } => package::set_hold(host, name, version, *hold),
        Op::DaemonReload => unit::systemctl(host, &["daemon-reload"]),
        Op::UnitEnable { unit, enable } => unit::systemctl(
            host,
            &[if *enable { "enable" } else { "disable" }, "--", unit],
        ),
        Op::UnitStart { unit: u }
        | Op::UnitRestart { unit: u }
        | Op::UnitTryRestart { unit: u }
        | Op::UnitTryReload { unit: u } => {
            let verb = match op {
                Op::UnitStart { .. } => "start",
                Op::UnitRestart { .. } => "restart",
                Op::UnitTryReload { .. } => "try-reload-or-restart",
                _ => "try-restart",
            };
            let r = unit::systemctl(host, &[verb, "--", u]);
            let n = ctx.next();
            ctx.restarted.push((u.clone(), n));
            r.map_err(|e| unit::explain_failure(host, u, e))
        }
        Op::UnitStop { unit } => unit::systemctl(host, &["stop", "--", unit]),
        Op::SysctlSet { key, value } => sysctl::set(host, key, value),
        Op::Modprobe { name } => kmod::load(host, name),
        Op::SwapOff => swap::swapoff(host),
        Op::FstabDisableSwap => swap::disable_in_fstab(host),
        Op::SetHostname { name } => hostname::set(host, name),
        Op::HostsEntry { name } => hostname::write_hosts(host, name),
        Op::SshdDropin { content } => {
            sshd::apply(host, content.as_deref())?;
            let n = ctx.next();
            ctx.changed
                .push((node_protocol::paths::SSHD_DROPIN.to_string(), n));
            Ok(())
        }
        Op::NftApply { ruleset } => firewall::apply(host, ruleset),
        Op::NftDelete => firewall::delete(host),
        Op::Reboot { requested_at } => {
            reboot::mark(host, *requested_at)?;
            ctx.reboot = Some(*requested_at);
            Ok(())
        }
        Op::OsUpgrade {
            updates,
            requested_at,
        } => {
            ctx.upgraded = true;
            osupdates::upgrade(host, *updates, *requested_at)
        }
    }
}
