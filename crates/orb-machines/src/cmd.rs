//! Running host tools (ip, mount, debootstrap, ...) with errors that show the command and its stderr.

use crate::Error;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// Shell-like rendering of a command for error messages (our arguments never carry secrets).
pub(crate) fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// Runs to completion and returns the output whatever the exit status.
pub(crate) fn output(cmd: &mut Command) -> Result<Output, Error> {
    cmd.stdin(Stdio::null());
    cmd.output().map_err(|source| Error::Spawn {
        command: describe(cmd),
        source,
    })
}

/// Runs to completion; a non-zero exit is an error carrying the tail of stderr.
pub(crate) fn run(cmd: &mut Command) -> Result<Output, Error> {
    let out = output(cmd)?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(failed(cmd, &out))
    }
}

pub(crate) fn failed(cmd: &Command, out: &Output) -> Error {
    let mut stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
    if stderr.is_empty() {
        stderr = String::from_utf8_lossy(&out.stdout).trim().to_string();
    }
    Error::Command {
        command: describe(cmd),
        status: out.status.to_string(),
        stderr: tail(&stderr, 2000),
    }
}

/// The last `max` bytes of `s` (on a char boundary), where the actual error usually is.
pub(crate) fn tail(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut start = s.len() - max;
    while !s.is_char_boundary(start) {
        start += 1;
    }
    format!("...{}", &s[start..])
}

/// `cmd` with the given program and arguments, for one-liners.
pub(crate) fn cmd<I, S>(program: &str, args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut c = Command::new(program);
    c.args(args);
    c
}

/// Looks `tool` up in a PATH-style list of directories.
pub(crate) fn find_in(path_var: &OsStr, tool: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    std::env::split_paths(path_var)
        .map(|d| d.join(tool))
        .find(|p| {
            p.metadata()
                .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
                .unwrap_or(false)
        })
}

/// The tool's path, or an error naming the Debian package that provides it.
pub(crate) fn require(tool: &'static str, package: &'static str) -> Result<PathBuf, Error> {
    // sshd and friends live in sbin, which a non-login root shell may not have in PATH.
    let mut dirs = std::env::var_os("PATH").unwrap_or_default();
    dirs.push(":/usr/local/sbin:/usr/sbin:/sbin:/usr/local/bin:/usr/bin:/bin");
    find_in(&dirs, tool).ok_or(Error::MissingTool { tool, package })
}

pub(crate) fn path_str(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}
