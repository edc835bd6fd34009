//! Swap off: nothing swapping now (`swapoff --all`) and no swap entries left active in
//! /etc/fstab (they are commented out, so a reboot does not bring swap back).

use super::{Action, Op};
use crate::error::Result;
use crate::exec::Cmd;
use crate::fsutil::{self, nofollow::Parents};
use crate::host::Host;
use std::fmt;

const FSTAB: &str = "/etc/fstab";

const MARK: &str = "#node-agent swap off# ";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    /// Active swap areas from /proc/swaps.
    pub active: Vec<String>,
    /// Uncommented swap lines in /etc/fstab.
    pub fstab: Vec<String>,
}

impl fmt::Display for Observed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.active.is_empty() {
            write!(f, "no active swap")?;
        } else {
            write!(f, "active: {}", self.active.join(", "))?;
        }
        if !self.fstab.is_empty() {
            write!(f, "; {} swap line(s) in /etc/fstab", self.fstab.len())?;
        }
        Ok(())
    }
}

fn is_swap_line(line: &str) -> bool {
    let t = line.trim_start();
    !t.starts_with('#') && t.split_whitespace().nth(2) == Some("swap")
}

pub fn observe(host: &Host) -> Result<Observed> {
    let swaps = fsutil::read_text_opt(&host.path("/proc/swaps"))?.unwrap_or_default();
    let active = swaps
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect();
    let fstab = host.read_text(FSTAB)?.unwrap_or_default();
    Ok(Observed {
        active,
        fstab: fstab
            .lines()
            .filter(|l| is_swap_line(l))
            .map(str::to_string)
            .collect(),
    })
}

pub fn plan(o: &Observed) -> Vec<Action> {
    let mut a = Vec::new();
    if !o.active.is_empty() {
        a.push(Action::new(
            Op::SwapOff,
            format!("swap active on {}", o.active.join(", ")),
        ));
    }
    if !o.fstab.is_empty() {
        a.push(Action::new(
            Op::FstabDisableSwap,
            "swap would come back at boot",
        ));
        // systemd generates .swap units from fstab; reload so they follow.
        a.push(Action::new(Op::DaemonReload, "fstab changed"));
    }
    a
}

pub fn swapoff(host: &Host) -> Result<()> {
    host.run_ok(
        &Cmd::new("swapoff")
            .arg("--all")
            .timeout(std::time::Duration::from_secs(600)),
    )
    .map(|_| ())
}

/// Comments out active swap lines, keeping everything else byte for byte.
pub fn fstab_without_swap(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 64);
    for line in text.split_inclusive('\n') {
        if is_swap_line(line) {
            out.push_str(MARK);
        }
        out.push_str(line);
    }
    out
}

pub fn disable_in_fstab(host: &Host) -> Result<()> {
    let text = host.read_text(FSTAB)?.unwrap_or_default();
    let meta = host.stat(FSTAB, Parents::RootOnly)?;
    let (mode, owner) = meta
        .map(|m| (m.mode, Some((m.uid, m.gid))))
        .unwrap_or((0o644, None));
    host.write(
        FSTAB,
        fstab_without_swap(&text).as_bytes(),
        mode,
        owner,
        Parents::RootOnly,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_only_swap_lines() {
        let fstab = "# /etc/fstab\nUUID=1 / ext4 defaults 0 1\n/swapfile none swap sw 0 0\n#/old none swap sw 0 0\nUUID=2 none  swap  sw 0 0";
        let out = fstab_without_swap(fstab);
        assert_eq!(
            out,
            "# /etc/fstab\nUUID=1 / ext4 defaults 0 1\n#node-agent swap off# /swapfile none swap sw 0 0\n#/old none swap sw 0 0\n#node-agent swap off# UUID=2 none  swap  sw 0 0"
        );
        assert_eq!(fstab_without_swap(&out), out, "idempotent");
    }

    #[test]
    fn observes_and_fixes_under_a_root() {
        let (_tmp, h) = crate::host::scratch_host(&[
            (
                "/proc/swaps",
                b"Filename\tType\tSize\tUsed\tPriority\n",
                0o444,
            ),
            ("/etc/fstab", b"/swapfile none swap sw 0 0\n", 0o644),
        ]);
        let o = observe(&h).unwrap();
        assert_eq!(
            o.to_string(),
            "no active swap; 1 swap line(s) in /etc/fstab"
        );
        let p = plan(&o);
        assert_eq!(p[0].op, Op::FstabDisableSwap);
        disable_in_fstab(&h).unwrap();
        assert!(plan(&observe(&h).unwrap()).is_empty());
        let active = Observed {
            active: vec!["/dev/sda2".into()],
            fstab: vec![],
        };
        assert_eq!(
            plan(&active)[0].to_string(),
            "swapoff --all: swap active on /dev/sda2"
        );
    }
}
