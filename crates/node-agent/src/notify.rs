//! systemd readiness and watchdog notifications (`sd_notify`), written directly to
//! `$NOTIFY_SOCKET`: a few lines instead of a dependency.

use std::cell::Cell;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::{Duration, Instant};

/// Sends `state` (e.g. `READY=1`) to systemd; silently does nothing when not run by systemd
/// with `Type=notify` (no `$NOTIFY_SOCKET`), so the agent also runs by hand.
pub fn notify(state: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let path = path.to_string_lossy().into_owned();
    let addr = if let Some(abstract_name) = path.strip_prefix('@') {
        SocketAddr::from_abstract_name(abstract_name.as_bytes())
    } else {
        SocketAddr::from_pathname(&path)
    };
    let (Ok(addr), Ok(sock)) = (addr, UnixDatagram::unbound()) else {
        return;
    };
    if let Err(e) = sock.send_to_addr(state.as_bytes(), &addr) {
        crate::log::warn(&format!("cannot notify systemd ({state}): {e}"));
    }
}

/// Pings the systemd watchdog often enough (every quarter of `WatchdogSec`) but not more, so
/// it can be called from any loop that may run long (package installs) at no cost.
pub struct Watchdog {
    every: Duration,
    last: Cell<Instant>,
}

impl Watchdog {
    /// From `$WATCHDOG_USEC` (and `$WATCHDOG_PID`, which must be us when set).
    pub fn from_env() -> Option<Watchdog> {
        let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
        if let Ok(pid) = std::env::var("WATCHDOG_PID")
            && pid.parse::<u32>().ok() != Some(std::process::id())
        {
            return None;
        }
        if usec == 0 {
            return None;
        }
        Some(Watchdog {
            every: Duration::from_micros(usec / 4).max(Duration::from_millis(100)),
            last: Cell::new(Instant::now()),
        })
    }

    /// How long the main loop may sleep before the next ping is due.
    pub fn due_in(&self) -> Duration {
        self.every.saturating_sub(self.last.get().elapsed())
    }

    pub fn tick(&self) {
        if self.last.get().elapsed() >= self.every {
            notify("WATCHDOG=1");
            self.last.set(Instant::now());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sends_to_a_pathname_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let server = UnixDatagram::bind(&path).unwrap();
        // The variable is process-wide; this is the only test in the crate that sets it.
        unsafe { std::env::set_var("NOTIFY_SOCKET", &path) };
        notify("READY=1");
        unsafe { std::env::remove_var("NOTIFY_SOCKET") };
        let mut buf = [0u8; 64];
        server
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        let n = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");
    }
}
