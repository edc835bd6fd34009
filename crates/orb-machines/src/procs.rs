//! Looking at and signalling host processes through /proc: supervisors, nspawn, machine PID 1s.

use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

/// Fields of /proc/PID/stat after the command name (which may itself contain spaces or ')').
fn stat_fields(pid: i32) -> Option<Vec<String>> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 1..];
    Some(rest.split_whitespace().map(str::to_string).collect())
}

/// True when the process exists and is not a zombie.
pub(crate) fn alive(pid: i32) -> bool {
    pid > 0 && stat_fields(pid).is_some_and(|f| f.first().is_some_and(|st| st != "Z" && st != "X"))
}

fn ppid(pid: i32) -> Option<i32> {
    stat_fields(pid)?.get(1)?.parse().ok()
}

pub(crate) fn comm(pid: i32) -> Option<String> {
    Some(
        std::fs::read_to_string(format!("/proc/{pid}/comm"))
            .ok()?
            .trim()
            .to_string(),
    )
}

/// The command line with NULs turned into spaces.
pub(crate) fn cmdline(pid: i32) -> Option<String> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    Some(String::from_utf8_lossy(&raw).replace('\0', " "))
}

pub(crate) fn all_pids() -> Vec<i32> {
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    rd.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect()
}

pub(crate) fn children(parent: i32) -> Vec<i32> {
    all_pids()
        .into_iter()
        .filter(|&p| ppid(p) == Some(parent) && alive(p))
        .collect()
}

/// The innermost PID of `pid` (the "NSpid" line): 1 for a container's init.
pub(crate) fn inner_pid(pid: i32) -> Option<i32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("NSpid:"))?;
    line.split_whitespace().last()?.parse().ok()
}

/// When the process started (wall clock): boot time of the host plus its start tick.
pub(crate) fn start_time(pid: i32) -> Option<SystemTime> {
    let ticks: u64 = stat_fields(pid)?.get(19)?.parse().ok()?;
    let btime: u64 = std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime ")?.trim().parse().ok())?;
    // SAFETY: sysconf has no memory-safety preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let hz = if hz > 0 { hz as u64 } else { 100 };
    let since_boot = Duration::from_millis(ticks * 1000 / hz);
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs(btime) + since_boot)
}

pub(crate) fn signal(pid: i32, sig: i32) {
    if pid > 0 {
        // SAFETY: kill(2) with a positive pid; failure (already gone) is fine.
        unsafe {
            libc::kill(pid, sig);
        }
    }
}

/// Waits until the process is gone (or a zombie); false on timeout.
pub(crate) fn wait_gone(pid: i32, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while alive(pid) {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    true
}

/// TERM, then KILL after `grace`; returns whether it is gone.
pub(crate) fn terminate(pid: i32, grace: Duration) -> bool {
    signal(pid, libc::SIGTERM);
    if wait_gone(pid, grace) {
        return true;
    }
    signal(pid, libc::SIGKILL);
    wait_gone(pid, Duration::from_secs(5))
}

pub(crate) fn read_pidfile(path: &Path) -> Option<i32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// The pid from `path` if that process is alive and its command line mentions `marker`
/// (a path of ours), so a recycled pid is never signalled.
pub(crate) fn owned_pid(path: &Path, marker: &str) -> Option<i32> {
    let pid = read_pidfile(path)?;
    (alive(pid) && cmdline(pid)?.contains(marker)).then_some(pid)
}

/// Live processes whose command line mentions `marker`.
pub(crate) fn pids_mentioning(marker: &str) -> Vec<i32> {
    let me = std::process::id() as i32;
    all_pids()
        .into_iter()
        .filter(|&p| p != me && alive(p) && cmdline(p).is_some_and(|c| c.contains(marker)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_is_seen() {
        let me = std::process::id() as i32;
        assert!(alive(me));
        let started = start_time(me).unwrap();
        let age = SystemTime::now().duration_since(started).unwrap();
        assert!(age < Duration::from_secs(3600), "{age:?}");
        assert!(!alive(-1));
    }

    #[test]
    fn children_and_termination() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        assert!(children(std::process::id() as i32).contains(&pid));
        signal(pid, libc::SIGKILL);
        child.wait().unwrap();
        assert!(!alive(pid));
    }
}
