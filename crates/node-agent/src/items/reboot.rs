//! Reboot on request: once, if the machine booted before the requested time. "Booted at" is
//! the start of PID 1 (in a container sharing the host kernel, /proc/uptime is the host's).

use super::{Action, Op};
use crate::error::{Error, Result};
use crate::fsutil;
use crate::host::Host;
use node_protocol::Reboot;
use node_protocol::timefmt::{format_rfc3339, now_secs, parse_rfc3339};
use std::fmt;

const DONE: &str = "reboot.done";
/// Seconds a reboot waits past the request: "booted at" is whole seconds of boot time plus
/// clock ticks, both rounded down, so a boot in the request's own second can read as before
/// it (and be refused as a loop).
const BOOT_TIME_SLACK: i64 = 2;

/// Start time of PID 1 in Unix seconds: kernel boot time (`btime` in /proc/stat) plus PID 1's
/// start time in clock ticks after boot (field 22 of /proc/1/stat).
pub fn booted_at(host: &Host) -> Option<i64> {
    let stat = fsutil::read_text_opt(&host.path("/proc/stat")).ok()??;
    let btime: i64 = stat
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    let pid1 = fsutil::read_text_opt(&host.path("/proc/1/stat")).ok()??;
    // The command name (field 2) may contain spaces: count fields after its closing paren.
    let after = &pid1[pid1.rfind(')')? + 1..];
    let ticks: i64 = after.split_whitespace().nth(19)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let hz = if hz > 0 { hz as i64 } else { 100 };
    Some(btime + ticks / hz)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    pub booted_at: Option<i64>,
    pub now: i64,
    /// The request a reboot was already issued for (survives the reboot).
    pub done_for: Option<i64>,
}

impl fmt::Display for Observed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.booted_at {
            Some(b) => write!(f, "booted at {}", format_rfc3339(b)),
            None => write!(f, "boot time unknown"),
        }
    }
}

pub fn observe(host: &Host) -> Result<Observed> {
    let done_for =
        fsutil::read_text_opt(&host.state_path(DONE))?.and_then(|s| s.trim().parse().ok());
    Ok(Observed {
        booted_at: booted_at(host),
        now: now_secs(),
        done_for,
    })
}

pub fn plan(r: &Reboot, o: &Observed) -> Result<Vec<Action>> {
    let req = parse_rfc3339(&r.requested_at).map_err(Error::new)?;
    let booted = o
        .booted_at
        .ok_or_else(|| Error::new("cannot tell when PID 1 started (/proc/stat, /proc/1/stat)"))?;
    if booted >= req {
        return Ok(vec![]);
    }
    // A request in the future is a scheduled reboot; acting now would loop (the new boot
    // would still be "before" the request).
    if req + BOOT_TIME_SLACK > o.now {
        return Ok(vec![]);
    }
    if o.done_for == Some(req) {
        return Err(Error::new(format!(
            "a reboot for the request at {} was already issued, yet PID 1 started at {}; not rebooting again (check the clock)",
            format_rfc3339(req),
            format_rfc3339(booted)
        )));
    }
    Ok(vec![Action::new(
        Op::Reboot { requested_at: req },
        format!("booted at {}, before the request", format_rfc3339(booted)),
    )])
}

/// Records the request before rebooting, so a clock problem cannot cause a reboot loop.
pub fn mark(host: &Host, req: i64) -> Result<()> {
    fsutil::write_atomic(
        &host.state_path(DONE),
        format!("{req}\n").as_bytes(),
        0o600,
        None,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(t: &str) -> Reboot {
        Reboot {
            requested_at: t.into(),
        }
    }

    #[test]
    fn reboots_once_and_only_for_past_requests() {
        let req = parse_rfc3339("2026-01-01T12:00:00Z").unwrap();
        let o = Observed {
            booted_at: Some(req - 60),
            now: req + 5,
            done_for: None,
        };
        assert!(
            matches!(plan(&r("2026-01-01T12:00:00Z"), &o).unwrap()[0].op, Op::Reboot { requested_at } if requested_at == req)
        );
        let after = Observed {
            booted_at: Some(req + 30),
            ..o.clone()
        };
        assert!(plan(&r("2026-01-01T12:00:00Z"), &after).unwrap().is_empty());
        let future = Observed {
            now: req - 100,
            ..o.clone()
        };
        assert!(
            plan(&r("2026-01-01T12:00:00Z"), &future)
                .unwrap()
                .is_empty()
        );
        // Within the request's own second(s): a boot then could read as before the request.
        let same_second = Observed {
            now: req + 1,
            ..o.clone()
        };
        assert!(
            plan(&r("2026-01-01T12:00:00Z"), &same_second)
                .unwrap()
                .is_empty()
        );
        let looped = Observed {
            done_for: Some(req),
            ..o
        };
        assert!(
            plan(&r("2026-01-01T12:00:00Z"), &looped)
                .unwrap_err()
                .message()
                .contains("already issued")
        );
    }

    #[test]
    fn reads_pid1_start_from_a_fake_proc() {
        let tmp = tempfile::tempdir().unwrap();
        let h = Host::with_root(tmp.path(), tmp.path().join("state"));
        fsutil::write_atomic(
            &h.path("/proc/stat"),
            b"cpu 1 2 3\nbtime 1700000000\n",
            0o644,
            None,
        )
        .unwrap();
        // 22nd field = starttime; the comm contains a space and a paren.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as i64;
        let line = format!(
            "1 (sys temd) S 0 1 1 0 -1 4194560 1 2 3 4 5 6 7 8 20 0 1 0 {} 1 1\n",
            50 * hz
        );
        fsutil::write_atomic(&h.path("/proc/1/stat"), line.as_bytes(), 0o644, None).unwrap();
        assert_eq!(booted_at(&h), Some(1_700_000_050));
        assert!(
            booted_at(&Host::system("/nonexistent")).is_some(),
            "the real /proc must parse"
        );
    }
}
