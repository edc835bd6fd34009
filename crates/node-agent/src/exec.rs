//! Runs external programs (apt-get, systemctl, nft, …) with a deadline, captured output and
//! a keep-alive callback, on the agent's single thread: a poll loop instead of threads, so a
//! 20-minute `apt-get install` still lets the agent ping the systemd watchdog.

use crate::error::{Error, Result};
use std::fmt;
use std::io::{ErrorKind, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Output kept per stream; older output is dropped (errors quote the tail).
const KEEP_BYTES: usize = 64 * 1024;

/// A command line to run.
#[derive(Clone)]
pub struct Cmd {
    program: String,
    args: Vec<String>,
    stdin: Option<Vec<u8>>,
    env: Vec<(String, String)>,
    timeout: Duration,
    minimal_env: bool,
    discard_output: bool,
}

/// The end of the error [`run`] returns when a program overran its timeout.
const KILLED_AFTER_TIMEOUT: &str = "and was killed";

/// Whether `e` is [`run`]'s error for a program that overran its timeout.
pub fn is_timeout(e: &Error) -> bool {
    e.message().ends_with(KILLED_AFTER_TIMEOUT)
}

/// `PATH` for programs the agent runs when it has none itself, or a minimal environment.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

impl Cmd {
    pub fn new(program: &str) -> Self {
        Cmd {
            program: program.to_string(),
            args: Vec::new(),
            stdin: None,
            env: Vec::new(),
            timeout: Duration::from_secs(120),
            minimal_env: false,
            discard_output: false,
        }
    }
    pub fn arg(mut self, a: impl Into<String>) -> Self {
        self.args.push(a.into());
        self
    }
    pub fn args<I: IntoIterator<Item = S>, S: Into<String>>(mut self, a: I) -> Self {
        self.args.extend(a.into_iter().map(Into::into));
        self
    }
    /// Data fed to the program's stdin (then closed).
    pub fn stdin(mut self, data: impl Into<Vec<u8>>) -> Self {
        self.stdin = Some(data.into());
        self
    }
    pub fn env(mut self, k: &str, v: &str) -> Self {
        self.env.push((k.to_string(), v.to_string()));
        self
    }
    pub fn timeout(mut self, t: Duration) -> Self {
        self.timeout = t;
        self
    }
    /// Starts the program with only `PATH`, `LC_ALL=C` and what [`Cmd::env`] adds, not
    /// the agent's environment.
    pub fn minimal_env(mut self) -> Self {
        self.minimal_env = true;
        self
    }
    /// Sends stdout and stderr to /dev/null: for programs whose output may hold secrets
    /// and is not needed (a health check's command); the [`Output`] then has none.
    pub fn discard_output(mut self) -> Self {
        self.discard_output = true;
        self
    }
    pub fn program(&self) -> &str {
        &self.program
    }
    pub fn arguments(&self) -> &[String] {
        &self.args
    }
    pub fn get_timeout(&self) -> Duration {
        self.timeout
    }
}

impl fmt::Display for Cmd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.program)?;
        for a in &self.args {
            if a.is_empty() || a.contains(|c: char| c.is_whitespace() || c == '\'' || c == '"') {
                write!(f, " '{}'", a.replace('\'', "'\\''"))?;
            } else {
                write!(f, " {a}")?;
            }
        }
        Ok(())
    }
}

/// What a finished command produced.
#[derive(Debug, Clone)]
pub struct Output {
    /// Exit code, `None` when killed by a signal.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// The last lines of stderr (or stdout when stderr is empty) for error messages.
    pub fn tail(&self) -> String {
        let src = if self.stderr.trim().is_empty() {
            &self.stdout
        } else {
            &self.stderr
        };
        let lines: Vec<&str> = src.lines().filter(|l| !l.trim().is_empty()).collect();
        let start = lines.len().saturating_sub(8);
        lines[start..].join(" | ")
    }

    /// The standard failure message: command, status and output tail.
    pub fn failure(&self, cmd: &Cmd) -> Error {
        let status = match self.code {
            Some(c) => format!("exited with status {c}"),
            None => "was killed".to_string(),
        };
        let tail = self.tail();
        if tail.is_empty() {
            Error::new(format!("`{cmd}` {status}"))
        } else {
            Error::new(format!("`{cmd}` {status}: {tail}"))
        }
    }
}

/// The Debian package that ships a program, for "not found" hints.
fn package_hint(program: &str) -> &'static str {
    match program {
        "nft" => "nftables",
        "modprobe" => "kmod",
        "sshd" => "openssh-server",
        "swapoff" => "mount",
        "systemctl" => "systemd",
        "apt-get" | "apt-mark" | "apt-cache" => "apt",
        "dpkg-query" | "dpkg" => "dpkg",
        "dnf" | "yum" | "rpm" => "dnf (RPM-based system)",
        _ => "",
    }
}

/// Runs `cmd`, calling `tick` about once a second while it runs. Fails only when the program
/// cannot be started or overruns its timeout (then its whole process group is killed);
/// a non-zero exit is reported in the returned [`Output`].
pub fn run(cmd: &Cmd, tick: &dyn Fn()) -> Result<Output> {
    let mut command = Command::new(&cmd.program);
    if cmd.minimal_env {
        command.env_clear().env("PATH", DEFAULT_PATH);
    }
    let out = || {
        if cmd.discard_output {
            Stdio::null()
        } else {
            Stdio::piped()
        }
    };
    command
        .args(&cmd.args)
        .env("LC_ALL", "C")
        .stdin(if cmd.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(out())
        .stderr(out())
        // Own process group: a timeout kills the whole tree (dpkg under apt-get), and a
        // Ctrl-C/SIGTERM aimed at the agent does not interrupt a package transaction.
        .process_group(0);
    if std::env::var_os("PATH").is_none() {
        command.env("PATH", DEFAULT_PATH);
    }
    for (k, v) in &cmd.env {
        command.env(k, v);
    }
    let mut child = command.spawn().map_err(|e| {
        if e.kind() == ErrorKind::NotFound {
            let hint = package_hint(&cmd.program);
            let hint = if hint.is_empty() {
                String::new()
            } else {
                format!("; hint: install package {hint}")
            };
            Error::new(format!(
                "cannot run `{}`: program not found{hint}",
                cmd.program
            ))
        } else {
            Error::io(format!("cannot run `{}`", cmd.program), &e)
        }
    })?;
    let deadline = Instant::now() + cmd.timeout;
    match pump(&mut child, cmd, deadline, tick) {
        Ok((stdout, stderr)) => {
            let status = wait_until(&mut child, deadline, tick).ok_or_else(|| {
                kill_group(&mut child);
                Error::new(format!(
                    "`{cmd}` did not exit within {} s {KILLED_AFTER_TIMEOUT}",
                    cmd.timeout.as_secs()
                ))
            })?;
            Ok(Output {
                code: status.code(),
                stdout: String::from_utf8_lossy(&stdout).into_owned(),
                stderr: String::from_utf8_lossy(&stderr).into_owned(),
            })
        }
        Err(e) => {
            kill_group(&mut child);
            Err(e)
        }
    }
}

/// Feeds stdin and drains stdout/stderr until both are closed.
fn pump(
    child: &mut Child,
    cmd: &Cmd,
    deadline: Instant,
    tick: &dyn Fn(),
) -> Result<(Vec<u8>, Vec<u8>)> {
    let mut stdin = child.stdin.take();
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let input = cmd.stdin.as_deref().unwrap_or_default();
    let mut written = 0;
    let (mut out, mut err) = (Vec::new(), Vec::new());
    for fd in [
        stdin.as_ref().map(|s| s.as_raw_fd()),
        stdout.as_ref().map(|s| s.as_raw_fd()),
        stderr.as_ref().map(|s| s.as_raw_fd()),
    ]
    .into_iter()
    .flatten()
    {
        set_nonblocking(fd);
    }
    if input.is_empty() {
        stdin = None;
    }
    let mut buf = vec![0u8; 16 * 1024];
    while stdin.is_some() || stdout.is_some() || stderr.is_some() {
        tick();
        let now = Instant::now();
        if now >= deadline {
            return Err(Error::new(format!(
                "`{cmd}` did not finish within {} s {KILLED_AFTER_TIMEOUT}",
                cmd.timeout.as_secs()
            )));
        }
        let mut fds = Vec::with_capacity(3);
        if let Some(s) = &stdin {
            fds.push(libc::pollfd {
                fd: s.as_raw_fd(),
                events: libc::POLLOUT,
                revents: 0,
            });
        }
        if let Some(s) = &stdout {
            fds.push(libc::pollfd {
                fd: s.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            });
        }
        if let Some(s) = &stderr {
            fds.push(libc::pollfd {
                fd: s.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            });
        }
        let wait_ms = (deadline - now).as_millis().min(1000) as i32;
        // SAFETY: `fds` is a valid, initialised array of pollfd for its whole length.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, wait_ms) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == ErrorKind::Interrupted {
                continue;
            }
            return Err(Error::io(format!("poll while running `{cmd}`"), &e));
        }
        for pfd in &fds {
            if pfd.revents == 0 {
                continue;
            }
            if stdin.as_ref().is_some_and(|s| s.as_raw_fd() == pfd.fd) {
                let s = stdin.as_mut().expect("checked above");
                match s.write(&input[written..]) {
                    Ok(n) => written += n,
                    Err(e)
                        if e.kind() == ErrorKind::WouldBlock
                            || e.kind() == ErrorKind::Interrupted => {}
                    // The program closed its stdin early (EPIPE): it decides what that means.
                    Err(_) => written = input.len(),
                }
                if written >= input.len() {
                    stdin = None;
                }
            } else if stdout.as_ref().is_some_and(|s| s.as_raw_fd() == pfd.fd) {
                if !drain(stdout.as_mut().expect("checked above"), &mut buf, &mut out) {
                    stdout = None;
                }
            } else if stderr.as_ref().is_some_and(|s| s.as_raw_fd() == pfd.fd)
                && !drain(stderr.as_mut().expect("checked above"), &mut buf, &mut err)
            {
                stderr = None;
            }
        }
    }
    Ok((out, err))
}

/// Reads what is available; `false` at end of stream.
fn drain(r: &mut impl Read, buf: &mut [u8], into: &mut Vec<u8>) -> bool {
    loop {
        match r.read(buf) {
            Ok(0) => return false,
            Ok(n) => {
                into.extend_from_slice(&buf[..n]);
                if into.len() > 2 * KEEP_BYTES {
                    into.drain(..into.len() - KEEP_BYTES);
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => return true,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
}

fn set_nonblocking(fd: i32) {
    // SAFETY: fcntl on a file descriptor we own; failure only leaves it blocking.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        if flags >= 0 {
            libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK);
        }
    }
}

/// Waits for exit without blocking past the deadline (a program may close its pipes and
/// keep running).
fn wait_until(
    child: &mut Child,
    deadline: Instant,
    tick: &dyn Fn(),
) -> Option<std::process::ExitStatus> {
    let mut pause = Duration::from_millis(1);
    loop {
        match child.try_wait() {
            Ok(Some(s)) => return Some(s),
            Ok(None) => {}
            Err(_) => return None,
        }
        if Instant::now() >= deadline {
            return None;
        }
        tick();
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}

fn kill_group(child: &mut Child) {
    // SAFETY: signalling the process group we created for this child.
    unsafe {
        libc::kill(-(child.id() as i32), libc::SIGKILL);
    }
    let _ = child.kill();
    let _ = child.wait();
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    #[test]
    fn captures_output_and_status() {
        let out = run(
            &Cmd::new("sh").args(["-c", "echo out; echo err >&2; exit 3"]),
            &|| {},
        )
        .unwrap();
        assert_eq!(out.code, Some(3));
        assert_eq!(out.stdout, "out\n");
        assert_eq!(out.stderr, "err\n");
        assert!(
            out.failure(&Cmd::new("sh"))
                .message()
                .contains("status 3: err")
        );
    }

    #[test]
    fn feeds_large_stdin() {
        let data = vec![b'x'; 300_000];
        let out = run(&Cmd::new("wc").arg("-c").stdin(data), &|| {}).unwrap();
        assert_eq!(out.stdout.trim(), "300000");
    }

    #[test]
    fn kills_on_timeout_and_ticks() {
        let ticks = Cell::new(0);
        let start = Instant::now();
        let err = run(
            &Cmd::new("sh")
                .args(["-c", "sleep 30"])
                .timeout(Duration::from_millis(1500)),
            &|| ticks.set(ticks.get() + 1),
        )
        .unwrap_err();
        assert!(err.message().contains("did not finish within"), "{err}");
        assert!(is_timeout(&err));
        assert!(start.elapsed() < Duration::from_secs(10));
        assert!(ticks.get() >= 2);
    }

    #[test]
    fn minimal_environment_and_discarded_output() {
        let out = run(&Cmd::new("env").minimal_env().env("X", "y"), &|| {}).unwrap();
        let mut keys: Vec<&str> = out
            .stdout
            .lines()
            .filter_map(|l| l.split_once('=').map(|(k, _)| k))
            .collect();
        keys.sort();
        assert_eq!(keys, ["LC_ALL", "PATH", "X"], "{}", out.stdout);
        let out = run(
            &Cmd::new("sh")
                .args(["-c", "echo hidden; echo hidden >&2; exit 4"])
                .discard_output(),
            &|| {},
        )
        .unwrap();
        assert_eq!(out.code, Some(4));
        assert!(out.stdout.is_empty() && out.stderr.is_empty());
        assert!(!is_timeout(&Error::new("cannot run `sh`")));
    }

    #[test]
    fn missing_program_names_package() {
        let err = run(&Cmd::new("definitely-not-a-program-na"), &|| {}).unwrap_err();
        assert!(err.message().contains("program not found"), "{err}");
        assert!(Cmd::new("nft").args(["-f", "-"]).to_string() == "nft -f -");
        assert_eq!(package_hint("nft"), "nftables");
    }
}
