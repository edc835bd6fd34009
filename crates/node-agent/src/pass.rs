//! One reconcile pass: for every item in order, observe → plan → (apply → observe again).
//! Items are independent: an error is recorded on its item and the pass goes on (the caller
//! logs errors, once per change, so a persistent failure does not flood the journal). Restarts
//! requested by `restart_on` run at the end, once per unit, and survive an agent crash
//! (they are recorded before the file is written).

use crate::error::Result;
use crate::fsutil;
use crate::host::Host;
use crate::items::{self, Op, PassCtx, Work};
use crate::log;
use node_protocol::paths::SSHD_DROPIN;
use node_protocol::{Item, NodeDesired, Unit};
use std::collections::{BTreeMap, BTreeSet};

const PENDING_RESTARTS: &str = "pending-restarts";

/// The outcome for one item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemReport {
    pub id: String,
    pub observed: String,
    pub in_sync: bool,
    /// Actions still needed (when changes are not allowed, or after a failure).
    pub pending: Vec<String>,
    /// Actions carried out in this pass.
    pub applied: Vec<String>,
    pub error: Option<String>,
    /// Not in sync, and a pass soon could change that: a failing check, an effect still under
    /// way (a unit starting), an error that may be transient. Not set for actions that wait
    /// for changes to be allowed, nor for an item that gave up.
    pub retry: bool,
}

#[derive(Debug, Default)]
pub struct PassResult {
    pub items: Vec<ItemReport>,
    /// A reboot was decided (request time): the caller reboots after reporting.
    pub reboot: Option<i64>,
    /// Stopped early on a termination signal.
    pub interrupted: bool,
    /// An OS upgrade ran in this pass.
    pub upgraded: bool,
}

impl PassResult {
    pub fn actions(&self) -> Vec<String> {
        self.items
            .iter()
            .flat_map(|i| i.applied.iter().map(move |a| format!("{}: {a}", i.id)))
            .collect()
    }
    pub fn errors(&self) -> usize {
        self.items.iter().filter(|i| i.error.is_some()).count()
    }
    pub fn in_sync(&self) -> bool {
        !self.interrupted && self.items.iter().all(|i| i.in_sync)
    }
    /// Whether the next pass should come sooner than the drift interval (see
    /// [`ItemReport::retry`]). A pass that changed something is also followed soon by one that
    /// observes the result: items are observed before their actions, so a unit restarted with
    /// a broken configuration, or the health check behind it, shows only in the next pass.
    pub fn wants_retry(&self) -> bool {
        !self.interrupted
            && (self.items.iter().any(|i| i.retry && !i.in_sync)
                || self.items.iter().any(|i| !i.applied.is_empty()))
    }
}

/// The work list: the desired items in their order, then the agent-owned aggregates.
pub fn work_list(desired: &NodeDesired) -> Vec<Work<'_>> {
    let mut work: Vec<Work> = desired.items.iter().map(Work::Item).collect();
    let sysctls = desired
        .items
        .iter()
        .filter_map(|i| {
            if let Item::Sysctl(s) = i {
                Some(s)
            } else {
                None
            }
        })
        .collect();
    let modules = desired
        .items
        .iter()
        .filter_map(|i| {
            if let Item::Kernelmodule(k) = i {
                Some(k)
            } else {
                None
            }
        })
        .collect();
    work.push(Work::SysctlConf(sysctls));
    work.push(Work::ModulesConf(modules));
    if !desired.items.iter().any(|i| matches!(i, Item::Sshd(_))) {
        work.push(Work::NoSshd);
    }
    if !desired.items.iter().any(|i| matches!(i, Item::Firewall(_))) {
        work.push(Work::NoFirewall);
    }
    work
}

fn load_pending(host: &Host) -> BTreeSet<String> {
    fsutil::read_text_opt(&host.state_path(PENDING_RESTARTS))
        .ok()
        .flatten()
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .filter(|l| !l.is_empty())
        .collect()
}

fn save_pending(host: &Host, pending: &BTreeSet<String>) -> Result<()> {
    if pending.is_empty() {
        return fsutil::remove_opt(&host.state_path(PENDING_RESTARTS)).map(|_| ());
    }
    let text: String = pending.iter().map(|u| format!("{u}\n")).collect();
    fsutil::write_atomic(
        &host.state_path(PENDING_RESTARTS),
        text.as_bytes(),
        0o600,
        None,
    )
}

fn written_path(op: &Op) -> Option<&str> {
    match op {
        Op::WriteFile { path, .. } => Some(path),
        Op::SshdDropin { .. } => Some(SSHD_DROPIN),
        _ => None,
    }
}

/// Runs one pass. With `apply` false (or changes not allowed) nothing is changed and the
/// needed actions are reported as pending; that is `node-agent plan`.
pub fn run_pass(
    host: &Host,
    desired: &NodeDesired,
    apply: bool,
    stop: &dyn Fn() -> bool,
) -> PassResult {
    let apply = apply && desired.changes_allowed;
    let units: Vec<&Unit> = desired
        .items
        .iter()
        .filter_map(|i| if let Item::Unit(u) = i { Some(u) } else { None })
        .collect();
    let mut restart_on: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for u in &units {
        for p in u.restart_on.iter().chain(&u.reload_on) {
            restart_on
                .entry(p.as_str())
                .or_default()
                .push(u.name.as_str());
        }
    }
    let carried_over = load_pending(host);
    let mut pending_restarts = carried_over.clone();
    let mut planned_writes: BTreeSet<String> = BTreeSet::new();
    let mut ctx = PassCtx::default();
    let mut result = PassResult::default();

    for work in work_list(desired) {
        if stop() {
            result.interrupted = true;
            break;
        }
        host.tick();
        let id = work.id();
        let mut report = ItemReport {
            id: id.clone(),
            observed: "unknown".into(),
            in_sync: false,
            pending: vec![],
            applied: vec![],
            error: None,
            retry: true,
        };
        let step = match items::observe_and_plan(host, &work) {
            Ok(s) => s,
            Err(e) => {
                report.error = Some(e.to_string());
                result.items.push(report);
                continue;
            }
        };
        report.observed = step.observed.clone();
        if step.actions.is_empty() {
            report.in_sync = step.in_sync;
            report.retry = step.retry;
            report.error = step.error.clone();
            if !step.absent {
                result.items.push(report);
            }
            continue;
        }
        if !apply {
            for a in &step.actions {
                if let Some(p) = written_path(&a.op) {
                    planned_writes.insert(p.to_string());
                }
            }
            report.pending = step.actions.iter().map(ToString::to_string).collect();
            // Only more changes being allowed helps (a new desired file wakes the agent).
            report.retry = false;
            result.items.push(report);
            continue;
        }
        let mut failed = false;
        for action in &step.actions {
            if let Some(p) = written_path(&action.op)
                && let Some(us) = restart_on.get(p)
                && us.iter().any(|u| pending_restarts.insert(u.to_string()))
                && let Err(e) = save_pending(host, &pending_restarts)
            {
                log::warn(&format!("cannot record pending restarts: {e}"));
            }
            match items::execute(host, &action.op, &mut ctx) {
                Ok(()) => {
                    log::info(&format!("{id}: {action}"));
                    report.applied.push(action.to_string());
                }
                Err(e) => {
                    report.error = Some(format!("{} failed: {e}", action.op));
                    failed = true;
                    break;
                }
            }
        }
        if ctx.reboot.is_some() && matches!(work, Work::Item(Item::Reboot(_))) {
            report.observed = format!("{}; rebooting", step.observed);
            report.retry = false;
            result.items.push(report);
            continue;
        }
        match items::observe_and_plan(host, &work) {
            Ok(after) => {
                report.observed = after.observed;
                report.in_sync = after.in_sync && !failed;
                report.retry = after.retry;
                if report.error.is_none() {
                    report.error = after.error;
                }
                report.pending = after.actions.iter().map(ToString::to_string).collect();
            }
            Err(e) => {
                if report.error.is_none() {
                    report.error = Some(e.to_string());
                }
            }
        }
        result.items.push(report);
    }

    // Deferred restarts, in the order the units are listed.
    for u in &units {
        if result.interrupted {
            break;
        }
        let triggers = |p: &String| u.restart_on.contains(p) || u.reload_on.contains(p);
        if !pending_restarts.contains(&u.name) && !planned_writes.iter().any(triggers) {
            continue;
        }
        let Some(report) = result
            .items
            .iter_mut()
            .find(|r| r.id == format!("unit:{}", u.name))
        else {
            continue;
        };
        let last_change = ctx
            .changed
            .iter()
            .filter(|(p, _)| triggers(p))
            .map(|(_, n)| *n)
            .max();
        // A reload is enough when only `reload_on` files changed in this pass; a restart
        // carried over from a crashed pass is repeated as a restart, whatever changed.
        let changed = |list: &Vec<String>| {
            ctx.changed.iter().any(|(p, _)| list.contains(p))
                || planned_writes.iter().any(|p| list.contains(p))
        };
        let reload_only =
            changed(&u.reload_on) && !changed(&u.restart_on) && !carried_over.contains(&u.name);
        let last_restart = ctx
            .restarted
            .iter()
            .filter(|(n, _)| *n == u.name)
            .map(|(_, n)| *n)
            .max();
        let needed = match (last_change, last_restart) {
            (Some(c), Some(r)) => c > r,
            (Some(_), None) => true,
            (None, restarted) => carried_over.contains(&u.name) && restarted.is_none(),
        };
        let unit = u.name.clone();
        let (op, list) = if reload_only {
            (Op::UnitTryReload { unit }, "reload_on")
        } else {
            (Op::UnitTryRestart { unit }, "restart_on")
        };
        if !apply {
            report
                .pending
                .push(format!("{op}: a file in {list} changes"));
            report.in_sync = false;
            report.retry = false;
            continue;
        }
        if needed {
            match items::execute(host, &op, &mut ctx) {
                Ok(()) => {
                    let line = format!("{op}: a file in {list} changed");
                    log::info(&format!("{}: {line}", report.id));
                    report.applied.push(line);
                }
                Err(e) => {
                    report.error = Some(format!("{op} failed: {e}"));
                    report.in_sync = false;
                    report.retry = true;
                    continue;
                }
            }
        }
        pending_restarts.remove(&u.name);
    }
    if apply && !result.interrupted {
        // Units no longer in the desired state have nothing left to restart.
        pending_restarts.retain(|name| units.iter().any(|u| u.name == *name));
        if let Err(e) = save_pending(host, &pending_restarts) {
            log::warn(&format!("cannot record pending restarts: {e}"));
        }
    }
    result.reboot = ctx.reboot;
    result.upgraded = ctx.upgraded;
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use node_protocol::parse_desired;

    fn host() -> (tempfile::TempDir, Host) {
        let tmp = tempfile::tempdir().unwrap();
        let h = Host::with_root(tmp.path().join("root"), tmp.path().join("state"));
        fsutil::write_atomic(
            &h.path("/etc/passwd"),
            b"root:x:0:0::/root:/bin/sh\n",
            0o644,
            None,
        )
        .unwrap();
        fsutil::write_atomic(&h.path("/etc/group"), b"root:x:0:\n", 0o644, None).unwrap();
        fsutil::write_atomic(
            &h.path("/proc/sys/net/ipv4/ip_forward"),
            b"0\n",
            0o644,
            None,
        )
        .unwrap();
        (tmp, h)
    }

    fn desired(items: &str, allowed: bool) -> NodeDesired {
        parse_desired(&format!("kind: NodeDesired\nversion: v1\ngeneration: 3\nchangesallowed: {allowed}\nitems:\n{items}"), "d.yml").unwrap()
    }

    const ITEMS: &str = "  - directory: {path: /etc/app, mode: \"0750\"}\n  - file: {path: /etc/app/a.conf, content: \"a\\n\", mode: \"0640\"}\n  - sysctl: {key: net.ipv4.ip_forward, value: 1}\n  - file: {path: /nonexistent-owner, content: x, owner: ghost}\n  - file: {path: /etc/app/b.conf, content: \"b\\n\"}\n";

    #[test]
    fn converges_isolates_failures_and_is_idempotent() {
        let (_t, h) = host();
        let d = desired(ITEMS, true);
        let r = run_pass(&h, &d, true, &|| false);
        let ids: Vec<&str> = r.items.iter().map(|i| i.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "directory:/etc/app",
                "file:/etc/app/a.conf",
                "sysctl:net.ipv4.ip_forward",
                "file:/nonexistent-owner",
                "file:/etc/app/b.conf",
                "owned:/etc/sysctl.d/90-node-agent.conf"
            ]
        );
        let ghost = &r.items[3];
        assert!(
            ghost
                .error
                .as_deref()
                .unwrap()
                .contains("user `ghost` does not exist")
                && !ghost.in_sync
        );
        // The item after the failing one was still applied.
        assert!(r.items[4].in_sync && r.items[4].applied.len() == 1);
        assert_eq!(
            std::fs::read_to_string(h.path("/proc/sys/net/ipv4/ip_forward"))
                .unwrap()
                .trim(),
            "1"
        );
        assert!(
            std::fs::read_to_string(h.path("/etc/sysctl.d/90-node-agent.conf"))
                .unwrap()
                .contains("net.ipv4.ip_forward = 1")
        );
        assert_eq!(r.errors(), 1);
        assert!(!r.in_sync());

        let again = run_pass(&h, &d, true, &|| false);
        assert!(
            again.actions().is_empty(),
            "second pass acted: {:?}",
            again.actions()
        );
    }

    #[test]
    fn changes_not_allowed_only_reports() {
        let (_t, h) = host();
        let d = desired(ITEMS, false);
        let r = run_pass(&h, &d, true, &|| false);
        assert!(r.actions().is_empty());
        assert!(!h.path("/etc/app").exists(), "nothing may change");
        assert_eq!(
            r.items[1].pending,
            ["write /etc/app/a.conf (2 bytes, 0640 root:root): missing"]
        );
    }

    #[test]
    fn removed_sysctl_items_remove_the_owned_file() {
        let (_t, h) = host();
        run_pass(
            &h,
            &desired("  - sysctl: {key: net.ipv4.ip_forward, value: 1}\n", true),
            true,
            &|| false,
        );
        assert!(h.path("/etc/sysctl.d/90-node-agent.conf").exists());
        let r = run_pass(
            &h,
            &desired("  - file: {path: /x, content: x}\n", true),
            true,
            &|| false,
        );
        assert!(!h.path("/etc/sysctl.d/90-node-agent.conf").exists());
        assert!(
            r.actions()
                .iter()
                .any(|a| a.starts_with("owned:/etc/sysctl.d/90-node-agent.conf: remove")),
            "{:?}",
            r.actions()
        );
    }

    #[test]
    fn a_failing_health_check_is_not_in_sync_and_asks_for_a_retry() {
        let (_t, h) = host();
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let items = format!("  - health: {{name: db, tcp: \"127.0.0.1:{port}\"}}\n");
        let r = run_pass(&h, &desired(&items, true), true, &|| false);
        let item = &r.items[0];
        assert_eq!(
            (item.id.as_str(), item.observed.as_str()),
            ("health:db", "failing: connection refused")
        );
        assert!(!item.in_sync && item.error.is_none() && item.pending.is_empty());
        assert!(r.actions().is_empty() && !r.in_sync() && r.wants_retry());
        // Observe-only: also while changes are not allowed.
        assert!(run_pass(&h, &desired(&items, false), true, &|| false).wants_retry());
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let items = format!("  - health: {{name: db, tcp: \"127.0.0.1:{port}\"}}\n");
        let r = run_pass(&h, &desired(&items, true), true, &|| false);
        assert_eq!(r.items[0].observed, "healthy");
        assert!(r.in_sync() && !r.wants_retry());
    }

    #[test]
    fn a_pass_that_changed_something_is_followed_by_one_that_looks() {
        let (_t, h) = host();
        let items = "  - file: {path: /etc/app.conf, content: v2}\n";
        let r = run_pass(&h, &desired(items, true), true, &|| false);
        assert!(!r.actions().is_empty() && r.in_sync() && r.wants_retry());
        let r = run_pass(&h, &desired(items, true), true, &|| false);
        assert!(r.actions().is_empty() && r.in_sync() && !r.wants_retry());
    }

    #[test]
    fn only_waiting_for_changes_to_be_allowed_is_no_reason_to_retry() {
        let (_t, h) = host();
        let r = run_pass(&h, &desired(ITEMS, false), true, &|| false);
        assert!(!r.in_sync());
        // The ghost owner is an error, which may be transient; the rest only waits.
        assert_eq!(
            r.items.iter().filter(|i| i.retry && !i.in_sync).count(),
            1,
            "{:?}",
            r.items
        );
        let r = run_pass(
            &h,
            &desired("  - file: {path: /x, content: x}\n", false),
            true,
            &|| false,
        );
        assert!(!r.in_sync() && !r.wants_retry());
        let r = run_pass(&h, &desired(ITEMS, true), true, &|| false);
        assert!(r.wants_retry(), "the ghost owner still fails");
    }

    #[test]
    fn stops_between_items() {
        let (_t, h) = host();
        let r = run_pass(&h, &desired(ITEMS, true), true, &|| true);
        assert!(r.interrupted && r.items.is_empty());
    }
}
