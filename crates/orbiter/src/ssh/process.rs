//! Running the OpenSSH tools: stdin fed while both outputs drain (no pipe deadlock), an
//! optional deadline, and a clear error when the tool is not installed.

use std::io::{Read, Write};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use super::SshError;

/// A tool command with messages in the C locale, which is what we parse.
pub(super) fn tool(program: &str) -> Command {
    let mut cmd = Command::new(program);
    cmd.env("LC_ALL", "C");
    cmd
}

/// Runs `cmd` with `stdin` fed to it and stdout/stderr captured. `Ok(None)`: the deadline passed
/// and the process was killed.
pub(super) fn capture(
    cmd: &mut Command,
    stdin: Option<&[u8]>,
    timeout: Option<Duration>,
) -> Result<Option<Output>, SshError> {
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = spawn(cmd)?;
    let input = child.stdin.take();
    let mut out_pipe = child.stdout.take();
    let mut err_pipe = child.stderr.take();
    thread::scope(|s| {
        if let (Some(mut w), Some(data)) = (input, stdin) {
            // A command that exits without reading all input makes this fail with EPIPE:
            // that is the command's business and shows in its status.
            s.spawn(move || {
                let _ = w.write_all(data);
            });
        }
        let out = s.spawn(move || drain(out_pipe.as_mut()));
        let err = s.spawn(move || drain(err_pipe.as_mut()));
        let status = wait(&mut child, timeout);
        let stdout = out.join().unwrap_or_default();
        let stderr = err.join().unwrap_or_default();
        Ok(status?.map(|status| Output {
            status,
            stdout,
            stderr,
        }))
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
    wait(&mut child, timeout)
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

fn drain(pipe: Option<&mut impl Read>) -> Vec<u8> {
    let mut buf = Vec::new();
    if let Some(p) = pipe {
        let _ = p.read_to_end(&mut buf);
    }
    buf
}

fn wait(child: &mut Child, timeout: Option<Duration>) -> Result<Option<ExitStatus>, SshError> {
    let io = |e: std::io::Error| SshError::Io(format!("waiting for ssh: {e}"));
    let Some(timeout) = timeout else {
        return child.wait().map(Some).map_err(io);
    };
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().map_err(io)? {
            return Ok(Some(status));
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Ok(None);
        }
        thread::sleep(Duration::from_millis(10));
    }
}
