//! Helpers of the end-to-end tests on real machines.

use std::path::Path;
use std::time::{Duration, Instant};

/// `sh -c CMD` on the machine (as root, through nsenter); stdout, trimmed.
pub fn sh(m: &orb_machines::Machine, cmd: &str) -> String {
    let out = m.exec(&["sh", "-c", cmd]).unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Polls `f` every half second until it holds; fails the test after `timeout`.
pub fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// The node-agent binary next to the orbctl under test.
pub fn node_agent_binary() -> String {
    let p = Path::new(env!("CARGO_BIN_EXE_orbctl")).with_file_name("node-agent");
    assert!(
        p.is_file(),
        "{} is missing: build it first (cargo build -p node-agent); scripts/test.sh does",
        p.display()
    );
    p.display().to_string()
}

/// SIGKILLs the Orbiter daemons a person's takeoff left (their pid files under `~/.orb`);
/// `log_on_panic` prints the tail of each daemon's log first when the test is failing.
pub fn kill_daemons(home: &Path, log_on_panic: bool) {
    let Ok(entries) = std::fs::read_dir(home.join(".orb")) else {
        return;
    };
    for e in entries.flatten() {
        if e.file_name().to_string_lossy().ends_with(".pid")
            && let Ok(pid) = std::fs::read_to_string(e.path())
            && let Ok(pid) = pid.trim().parse::<i32>()
        {
            if log_on_panic
                && std::thread::panicking()
                && let Ok(log) = std::fs::read_to_string(e.path().with_extension("log"))
            {
                let tail: Vec<&str> = log.lines().rev().take(60).collect();
                eprintln!(
                    "--- Orbiter log (last lines, newest first):\n{}",
                    tail.join("\n")
                );
            }
            // SAFETY: plain signal delivery to a pid our test started.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}
