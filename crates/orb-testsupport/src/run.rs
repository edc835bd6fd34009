//! Running helper programs with a clean, deterministic environment.

use std::process::{Command, Output, Stdio};

/// A command with the caller's user/system git configuration switched off, so a developer's
/// `~/.gitconfig` cannot change what the tests observe.
pub(crate) fn clean(program: &str) -> Command {
    let mut cmd = Command::new(program);
    cmd.env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("LC_ALL", "C")
        .stdin(Stdio::null());
    cmd
}

/// Runs `cmd` to completion; panics with its stderr when it fails.
pub(crate) fn checked(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e} (is it installed?)"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}
