//! The daemon: a single-threaded loop that runs a pass at start, whenever the desired file
//! changes (inotify), on a drift interval, sooner while something is not in sync (see
//! [`crate::schedule`]) and on SIGHUP; writes the current state after every pass; tells
//! systemd when it is ready and that it is alive.

use crate::current;
use crate::error::{Error, Result};
use crate::exec::Cmd;
use crate::facts::Facts;
use crate::fsutil;
use crate::host::Host;
use crate::inotify::Inotify;
use crate::items::reboot;
use crate::loader::Loader;
use crate::log;
use crate::notify::{self, Watchdog};
use crate::pass::{self, PassResult};
use crate::schedule::Schedule;
use crate::signals::Signals;
use node_protocol::PassInfo;
use node_protocol::timefmt::{format_rfc3339, now_secs};
use std::cell::Cell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub const DEFAULT_DESIRED: &str = node_protocol::paths::DESIRED;
pub const DEFAULT_CURRENT: &str = node_protocol::paths::CURRENT;

/// Settings of `node-agent run`.
#[derive(Debug, Clone)]
pub struct Options {
    pub desired: PathBuf,
    pub current: PathBuf,
    pub drift_interval: Duration,
    /// `/` in production; a directory to manage a tree instead of the system (tests, benchmarks).
    pub root: PathBuf,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            desired: DEFAULT_DESIRED.into(),
            current: DEFAULT_CURRENT.into(),
            drift_interval: Duration::from_secs(60),
            root: "/".into(),
        }
    }
}

/// The state directory is where the current file lives.
pub fn state_dir(current: &Path) -> PathBuf {
    current
        .parent()
        .map(Path::to_path_buf)
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Runs until SIGTERM/SIGINT.
pub fn run(opts: &Options) -> Result<()> {
    let state = state_dir(&opts.current);
    fsutil::create_dirs(&state, 0o700)?;
    let desired_dir = state_dir(&opts.desired);
    fsutil::create_dirs(&desired_dir, 0o700)?;
    let desired_name = opts
        .desired
        .file_name()
        .ok_or_else(|| {
            Error::new(format!(
                "--desired {} is not a file path",
                opts.desired.display()
            ))
        })?
        .to_os_string();

    let signals = Signals::new()?;
    let inotify = Inotify::new()?;
    inotify.watch_dir(&desired_dir)?;
    let mut host = Host::with_root(&opts.root, &state);
    host.set_watchdog(Watchdog::from_env());
    let mut loader = Loader::new(&opts.desired, &state);
    let mut current = current::fresh();
    let mut trigger = "startup";
    let mut first = true;
    let mut logged_errors: HashMap<String, String> = HashMap::new();
    let mut logged_checks: HashMap<String, String> = HashMap::new();
    let mut schedule = Schedule::new(opts.drift_interval);
    let mut facts = Facts::default();
    let stop_requested = Cell::new(false);
    let rerun = Cell::new(false);
    let check_signals = || {
        for s in signals.take() {
            if s == libc::SIGHUP {
                rerun.set(true);
            } else {
                stop_requested.set(true);
            }
        }
        stop_requested.get()
    };
    log::info(&format!(
        "node-agent {} starting: desired {}, current {}, drift interval {} s",
        crate::VERSION,
        opts.desired.display(),
        opts.current.display(),
        opts.drift_interval.as_secs()
    ));

    loop {
        if let Err(e) = loader.reload(true) {
            // Only keeping the last-valid copy failed; the state in memory is still right.
            log::error(&format!("cannot keep a copy of the desired state: {e}"));
        }
        if let Some(e) = &loader.error {
            log::error(&format!("desired state not in force: {e}"));
        }
        let started = Instant::now();
        let started_at = now_secs();
        let result = match &loader.enforced {
            Some(d) => pass::run_pass(&host, d, true, &check_signals),
            None => PassResult::default(),
        };
        log_errors(&result, &mut logged_errors);
        log_checks(&result, &mut logged_checks);
        let generation = loader.enforced.as_ref().map(|d| d.generation);
        let info = PassInfo {
            trigger: trigger.to_string(),
            generation,
            started_at: format_rfc3339(started_at),
            duration_ms: started.elapsed().as_millis() as u64,
            actions: result.actions(),
            errors: result.errors() as u32,
        };
        current.booted_at = reboot::booted_at(&host).map(format_rfc3339);
        current.desired_error = loader.error.clone();
        facts.refresh(&host, Instant::now(), result.upgraded);
        facts.apply(&mut current);
        current::record(
            &mut current,
            &result,
            info,
            generation,
            loader.enforced.as_ref().is_some_and(|d| d.changes_allowed),
        );
        if let Err(e) = current::write(&current, &opts.current) {
            log::error(&format!("cannot write the current state: {e}"));
        }
        if first {
            notify::notify("READY=1");
            first = false;
        }
        if result.reboot.is_some() {
            log::info("rebooting as requested");
            match host.run_ok(&Cmd::new("systemctl").arg("reboot")) {
                Ok(_) => {
                    notify::notify("STOPPING=1");
                    return Ok(());
                }
                Err(e) => log::error(&format!("reboot failed: {e}")),
            }
        }
        if stop_requested.get() {
            break;
        }
        let next = schedule.after_pass(result.wants_retry());
        match wait(
            &host,
            &inotify,
            &signals,
            &desired_dir,
            &desired_name,
            next.after,
            &rerun,
        )? {
            Wake::Stop => break,
            Wake::Desired => {
                schedule.reset();
                trigger = "desired-changed"
            }
            Wake::Drift if next.retry => trigger = "retry",
            Wake::Drift => trigger = "drift",
            Wake::Signal => trigger = "signal",
        }
    }
    notify::notify("STOPPING=1");
    log::info("stopping");
    Ok(())
}

/// Logs item errors when they appear or change, and when they clear.
fn log_errors(result: &PassResult, logged: &mut HashMap<String, String>) {
    for item in &result.items {
        match &item.error {
            Some(e) if logged.get(&item.id) != Some(e) => {
                log::error(&format!("{}: {e}", item.id));
                logged.insert(item.id.clone(), e.clone());
            }
            None if logged.remove(&item.id).is_some() => {
                log::info(&format!("{}: error cleared", item.id))
            }
            _ => {}
        }
    }
    if !result.interrupted {
        logged.retain(|id, _| result.items.iter().any(|i| i.id == *id));
    }
}

/// Logs health checks that start failing, change their reason, or recover.
fn log_checks(result: &PassResult, logged: &mut HashMap<String, String>) {
    for item in result.items.iter().filter(|i| i.id.starts_with("health:")) {
        let before = logged.insert(item.id.clone(), item.observed.clone());
        if before.as_deref() == Some(item.observed.as_str()) {
            continue;
        }
        match (item.in_sync, before) {
            (false, _) => log::warn(&format!("{}: {}", item.id, item.observed)),
            (true, Some(_)) => log::info(&format!("{}: {}", item.id, item.observed)),
            (true, None) => {}
        }
    }
    if !result.interrupted {
        logged.retain(|id, _| result.items.iter().any(|i| i.id == *id));
    }
}

enum Wake {
    Stop,
    Desired,
    Drift,
    Signal,
}

/// Sleeps in `poll` until the desired file changes, a signal arrives or the next pass is due
/// (`after`: the drift or retry interval), waking only to feed the watchdog.
fn wait(
    host: &Host,
    inotify: &Inotify,
    signals: &Signals,
    dir: &Path,
    name: &std::ffi::OsStr,
    after: Duration,
    rerun: &Cell<bool>,
) -> Result<Wake> {
    if rerun.replace(false) {
        return Ok(Wake::Signal);
    }
    let drift_at = Instant::now() + after;
    loop {
        let now = Instant::now();
        if now >= drift_at {
            return Ok(Wake::Drift);
        }
        let mut timeout = drift_at - now;
        if let Some(w) = host.watchdog() {
            timeout = timeout.min(w.due_in());
        }
        let mut fds = [
            libc::pollfd {
                fd: inotify.raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: signals.raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        let ms = timeout.as_millis().clamp(1, i32::MAX as u128) as i32;
        // SAFETY: fds is a valid array of two pollfd.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, ms) };
        host.tick();
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(Error::io("poll", &e));
        }
        if fds[1].revents != 0 {
            let sigs = signals.take();
            if sigs.iter().any(|s| *s != libc::SIGHUP) {
                return Ok(Wake::Stop);
            }
            if !sigs.is_empty() {
                return Ok(Wake::Signal);
            }
        }
        if fds[0].revents != 0 {
            let events = inotify.read_events()?;
            if events.iter().any(|e| {
                e.mask & (libc::IN_IGNORED | libc::IN_DELETE_SELF | libc::IN_MOVE_SELF) != 0
            }) {
                // The directory itself went away: recreate and watch it again.
                fsutil::create_dirs(dir, 0o700)?;
                inotify.watch_dir(dir)?;
                return Ok(Wake::Desired);
            }
            // A queue overflow may have dropped the event we wait for: re-read to be sure.
            if events
                .iter()
                .any(|e| e.name.as_deref() == Some(name) || e.mask & libc::IN_Q_OVERFLOW != 0)
            {
                return Ok(Wake::Desired);
            }
        }
    }
}
