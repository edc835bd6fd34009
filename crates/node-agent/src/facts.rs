//! Facts about the machine's packages for the report: whether it asks for a reboot and how
//! many packages an upgrade would change. Cheap on purpose: the pending count comes from the
//! package lists the machine already has (`apt-get -s upgrade`, `dnf -C check-update`; nothing
//! is downloaded) and is measured at most once per [`MEASURE_EVERY`] and after each OS
//! upgrade, like RHEL's `needs-restarting -r`; Debian's `/var/run/reboot-required` is a
//! `stat` on every pass.

use crate::exec::Cmd;
use crate::host::{Host, PkgManager};
use crate::items::osupdates::parse;
use crate::log;
use node_protocol::NodeCurrent;
use std::time::{Duration, Instant};

pub const MEASURE_EVERY: Duration = Duration::from_secs(3600);
const REBOOT_REQUIRED: &str = "/var/run/reboot-required";

#[derive(Debug, Default)]
pub struct Facts {
    pub pending_updates: Option<u32>,
    pub reboot_required: bool,
    measured_at: Option<Instant>,
}

impl Facts {
    /// Brings the facts up to date at `now`; `upgraded` says an OS upgrade just ran.
    pub fn refresh(&mut self, host: &Host, now: Instant, upgraded: bool) {
        let manager = host.pkg_manager().clone();
        if manager == PkgManager::Apt {
            self.reboot_required = host.path(REBOOT_REQUIRED).exists();
        }
        let due = upgraded
            || self
                .measured_at
                .is_none_or(|at| now.saturating_duration_since(at) >= MEASURE_EVERY);
        if !due {
            return;
        }
        self.measured_at = Some(now);
        if !host.runs_commands() {
            self.pending_updates = None;
            return;
        }
        let was = self.pending_updates;
        self.pending_updates = match &manager {
            PkgManager::Apt => apt_pending(host),
            PkgManager::Dnf => dnf_pending(host, "dnf"),
            PkgManager::Yum => dnf_pending(host, "yum"),
            PkgManager::Unsupported(_) => None,
        };
        if was.is_some() && self.pending_updates.is_none() {
            log::warn("cannot count the pending updates any more");
        }
        if matches!(manager, PkgManager::Dnf | PkgManager::Yum) {
            // Exit 1: a reboot is needed; 0: not; anything else (not installed): unknown.
            self.reboot_required = host
                .run(&Cmd::new("needs-restarting").arg("-r"))
                .is_ok_and(|o| o.code == Some(1));
        }
    }

    /// Puts the facts into the report.
    pub fn apply(&self, c: &mut NodeCurrent) {
        c.pending_updates = self.pending_updates;
        c.reboot_required = self.reboot_required;
    }
}

fn apt_pending(host: &Host) -> Option<u32> {
    let cmd = Cmd::new("apt-get").args(["-s", "-o", "Debug::NoLocking=1", "upgrade"]);
    match host.run_ok(&cmd) {
        Ok(out) => Some(parse::apt_simulation(&out.stdout).len() as u32),
        Err(e) => {
            log::warn(&format!("cannot count pending updates: {e}"));
            None
        }
    }
}

fn dnf_pending(host: &Host, bin: &str) -> Option<u32> {
    // -C: from the cache only; exit 100 means updates are available, 0 none.
    let cmd = Cmd::new(bin).args(["-q", "-C", "check-update"]);
    match host.run(&cmd) {
        Ok(out) if out.code == Some(100) => Some(parse::dnf_check_update(&out.stdout).len() as u32),
        Ok(out) if out.success() => Some(0),
        Ok(out) => {
            log::warn(&format!(
                "cannot count pending updates: {}",
                out.failure(&cmd)
            ));
            None
        }
        Err(e) => {
            log::warn(&format!("cannot count pending updates: {e}"));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::{scratch_host, scripted};

    const SIM: &str = "Inst libssl3 [1] (2 Debian-Security:12/stable-security [amd64])\nInst tzdata [1] (2 Debian:12.5/stable [all])\nConf libssl3 (2 Debian-Security:12/stable-security [amd64])\n";

    #[test]
    fn apt_facts_are_measured_hourly_and_after_an_upgrade() {
        let (_t, h) = scratch_host(&[("/etc/os-release", b"ID=debian\n", 0o644)]);
        let (fake, calls) = scripted(&[("apt-get -s -o Debug::NoLocking=1 upgrade", 0, SIM)]);
        let h = h.fake_commands(fake);
        let mut f = Facts::default();
        let t0 = Instant::now();
        f.refresh(&h, t0, false);
        assert_eq!((f.pending_updates, f.reboot_required), (Some(2), false));
        crate::fsutil::write_atomic(
            &h.path(REBOOT_REQUIRED),
            b"*** System restart required ***\n",
            0o644,
            None,
        )
        .unwrap();
        f.refresh(&h, t0 + Duration::from_secs(60), false);
        assert!(f.reboot_required, "a stat on every pass");
        assert_eq!(
            calls.lock().unwrap().len(),
            1,
            "no new count within the hour"
        );
        f.refresh(&h, t0 + Duration::from_secs(61), true);
        f.refresh(&h, t0 + Duration::from_secs(61) + MEASURE_EVERY, false);
        assert_eq!(calls.lock().unwrap().len(), 3);
        assert!(
            calls.lock().unwrap().iter().all(|c| !c.contains(" update")),
            "never apt-get update"
        );
        let mut c = node_protocol::NodeCurrent::new("0");
        f.apply(&mut c);
        assert_eq!((c.pending_updates, c.reboot_required), (Some(2), true));
    }

    #[test]
    fn rpm_facts_and_failures() {
        let (_t, h) = scratch_host(&[(
            "/etc/os-release",
            b"ID=\"rocky\"\nID_LIKE=\"rhel\"\n",
            0o644,
        )]);
        let (fake, _) = scripted(&[
            (
                "dnf -q -C check-update",
                100,
                "\nopenssl.x86_64  1:3.0.7-25.el9_3  baseos\n",
            ),
            ("needs-restarting -r", 1, "Reboot is required\n"),
        ]);
        let mut f = Facts::default();
        f.refresh(&h.fake_commands(fake), Instant::now(), false);
        assert_eq!((f.pending_updates, f.reboot_required), (Some(1), true));

        let (_t, h) = scratch_host(&[("/etc/os-release", b"ID=debian\n", 0o644)]);
        let (fake, _) = scripted(&[("apt-get", 100, "E: broken")]);
        let mut f = Facts::default();
        f.refresh(&h.fake_commands(fake), Instant::now(), false);
        assert_eq!(f.pending_updates, None);
        // Under another root nothing is run and nothing is known.
        let (_t, h) = scratch_host(&[("/etc/os-release", b"ID=debian\n", 0o644)]);
        let mut f = Facts::default();
        f.refresh(&h, Instant::now(), false);
        assert_eq!((f.pending_updates, f.reboot_required), (None, false));
    }
}
