//! Running the OpenSSH tools: stdin fed while both outputs drain (no pipe deadlock), a deadline
//! and a cap on what is kept of the output (a machine that answers forever cannot grow our
//! memory), and a clear error when the tool is not installed.

use std::io::{Read, Write};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use super::SshError;

/// A tool command with messages in the C locale, which is what we parse.
pub(super) fn tool(program: &str) -> Command {
    let mut cmd = Command::new(program);
    cmd.env("LC_ALL", "C");
    cmd
}

/// How a captured run ended.
pub(super) enum Captured {
    Done(Output),
    /// The deadline passed; the process was killed.
    TimedOut,
    /// It wrote more than the cap to stdout or stderr; the process was killed.
    TooMuch,
}

/// What is kept of stderr: messages, never bulk data.
const STDERR_CAP: usize = 1 << 20;

/// Runs `cmd` with `stdin` fed to it and stdout/stderr captured, killed after `timeout` or
/// once stdout exceeds `cap` bytes.
///
/// The pipes are drained by threads of their own, not joined when the process is killed: an
/// ssh multiplexing client hands its descriptors to the ControlMaster, which keeps them open
/// after the client is gone (the caller stops that master, which ends the threads).
pub(super) fn capture(
    cmd: &mut Command,
    stdin: Option<&[u8]>,
    timeout: Duration,
    cap: usize,
) -> Result<Captured, SshError> {
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = spawn(cmd)?;
    if let (Some(mut w), Some(data)) = (child.stdin.take(), stdin) {
        // A command that exits without reading all input makes this fail with EPIPE:
        // that is the command's business and shows in its status.
        let data = data.to_vec();
        thread::spawn(move || {
            let _ = w.write_all(&data);
        });
    }
    let overflow = Arc::new(AtomicBool::new(false));
    let reader = |pipe: Option<Box<dyn Read + Send>>, cap: usize| {
        let (tx, rx) = mpsc::channel();
        let overflow = overflow.clone();
        thread::spawn(move || {
            let mut pipe = pipe;
            let _ = tx.send(drain(pipe.as_mut(), cap, &overflow));
        });
        rx
    };
    let out = reader(child.stdout.take().map(|p| Box::new(p) as _), cap);
    let err = reader(child.stderr.take().map(|p| Box::new(p) as _), STDERR_CAP);
    let status = wait(&mut child, Some(timeout), &overflow)?;
    // After a normal exit the pipes close at once; after a kill they may stay open (see above).
    let grace = if status.is_some() && !overflow.load(Ordering::SeqCst) {
        timeout
    } else {
        Duration::from_millis(200)
    };
    let stdout = out.recv_timeout(grace).unwrap_or_default();
    let stderr = err.recv_timeout(grace).unwrap_or_default();
    Ok(match status {
        _ if overflow.load(Ordering::SeqCst) => Captured::TooMuch,
        None => Captured::TimedOut,
        Some(status) => Captured::Done(Output {
            status,
            stdout,
            stderr,
        }),
    })
}

/// Runs `cmd` with all standard streams on /dev/null (for processes that leave a daemon
/// behind, which would otherwise hold our pipes open). `Ok(None)`: killed at the deadline.
pub(super) fn run_quiet(
    cmd: &mut Command,
    timeout: Option<Duration>,
) -> Result<Option<ExitStatus>, SshError> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = spawn(cmd)?;
    wait(&mut child, timeout, &AtomicBool::new(false))
}

/// The exit code, or an error naming the signal that ended a local tool.
pub(super) fn exit_code(program: &str, status: ExitStatus) -> Result<i32, SshError> {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => Ok(code),
        (None, Some(sig)) => Err(SshError::Io(format!(
            "{program} was killed by signal {sig}"
        ))),
        (None, None) => Err(SshError::Io(format!("{program} ended without status"))),
    }
}

fn spawn(cmd: &mut Command) -> Result<Child, SshError> {
    let program = cmd.get_program().to_string_lossy().into_owned();
    cmd.spawn().map_err(|e| {
        let hint = if e.kind() == std::io::ErrorKind::NotFound {
            " (install the Debian package openssh-client)"
        } else {
            ""
        };
        SshError::Io(format!("cannot run {program}: {e}{hint}"))
    })
}

/// Reads the pipe to its end, keeping at most `cap` bytes; past the cap it raises `overflow`
/// (the waiter kills the process) and stops keeping what comes.
fn drain(pipe: Option<&mut Box<dyn Read + Send>>, cap: usize, overflow: &AtomicBool) -> Vec<u8> {
    let mut buf = Vec::new();
    let Some(p) = pipe else { return buf };
    let mut chunk = [0u8; 64 * 1024];
    loop {
        match p.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) if buf.len() + n > cap => {
                overflow.store(true, Ordering::SeqCst);
                break;
            }
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        }
    }
    buf
}

/// Waits for the child; kills it at the deadline (`Ok(None)`) or when `kill` is raised.
fn wait(
    child: &mut Child,
    timeout: Option<Duration>,
    kill: &AtomicBool,
) -> Result<Option<ExitStatus>, SshError> {
    let io = |e: std::io::Error| SshError::Io(format!("waiting for ssh: {e}"));
    let deadline = timeout.map(|t| Instant::now() + t);
    loop {
        if let Some(status) = child.try_wait().map_err(io)? {
            return Ok(Some(status));
        }
        let late = deadline.is_some_and(|d| Instant::now() >= d);
        if late || kill.load(Ordering::SeqCst) {
            let _ = child.kill();
            let status = child.wait().map_err(io)?;
            return Ok(if late { None } else { Some(status) });
        }
        thread::sleep(Duration::from_millis(10));
    }
}
