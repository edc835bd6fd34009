//! Starting processes that outlive the caller (machine supervisors, the apt HTTP server):
//! `setsid -f` puts them in their own session, re-parented away from us, and they write their
//! own pid so that later invocations (CLI, Orbiter restarts, `down`) can find them.

use crate::Error;
use crate::cmd::describe;
use crate::procs;
use std::ffi::OsString;
use std::fs::OpenOptions;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Relaunches systemd-nspawn when it exits with 133 (the machine rebooted itself) and stops on
/// any other status (poweroff, power cut, failure). Arguments: pidfile, then the nspawn argv.
pub(crate) const SUPERVISOR: &str = r#"pidfile=$1; shift; echo $$ > "$pidfile"
while :; do
  "$@"; rc=$?
  echo "orb-machines: systemd-nspawn exited with status $rc at $(date -u +%FT%TZ)"
  [ "$rc" -eq 133 ] || exit "$rc"
  echo "orb-machines: the machine rebooted itself; starting it again"
done"#;

/// Writes its pid, then becomes the given program. Arguments: pidfile, then argv.
pub(crate) const EXEC: &str = r#"pidfile=$1; shift; echo $$ > "$pidfile"; exec "$@""#;

/// Starts `sh -c script name pidfile args...` detached with output appended to `log`; returns
/// its pid once the pidfile names a live process whose command line contains `marker`.
pub(crate) fn spawn(
    script: &str,
    name: &str,
    pidfile: &Path,
    args: &[OsString],
    log: &Path,
    marker: &str,
) -> Result<i32, Error> {
    let _ = std::fs::remove_file(pidfile);
    let out = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(Error::io("open log", log))?;
    let err = out.try_clone().map_err(Error::io("open log", log))?;
    let mut c = Command::new("setsid");
    c.arg("-f")
        .arg("sh")
        .arg("-c")
        .arg(script)
        .arg(name)
        .arg(pidfile)
        .args(args);
    c.stdin(Stdio::null()).stdout(out).stderr(err);
    let status = c.status().map_err(|source| Error::Spawn {
        command: describe(&c),
        source,
    })?;
    if !status.success() {
        return Err(Error::Command {
            command: describe(&c),
            status: status.to_string(),
            stderr: format!("see {}", log.display()),
        });
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(pid) = procs::owned_pid(pidfile, marker) {
            return Ok(pid);
        }
        if Instant::now() > deadline {
            return Err(Error::Timeout {
                what: format!("{name} to write {}", pidfile.display()),
                secs: 10,
                hint: format!("see {}", log.display()),
            });
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
