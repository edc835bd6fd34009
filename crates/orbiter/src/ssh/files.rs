//! Uploading and reading files over SSH as root: `sudo -n` unless the login user is root
//! already, decided on the machine (`id -u`), so no round trip and no guess from the user name.

use super::pool::summarize;
use super::{HostKey, SshError, SshPool, Target, quote};

/// Exit status of the read script for "no such file" (distinct from cat's and sudo's 1).
const MISSING: i32 = 44;

/// Writes stdin to a fresh temp file next to the destination (`mktemp`: an unpredictable name,
/// created exclusively, 0600, so nobody can plant a link there first), sets the mode, flushes it
/// to disk and renames it over the destination (`mv -T`: a directory or link at the
/// destination is replaced, never followed): readers see the old or the new file, never a part.
/// Creates missing parent directories; a parent that is a symlink is refused. Arguments: PATH MODE.
const WRITE_SCRIPT: &str = r#"set -e
p=$1
d=$(dirname -- "$p")
mkdir -p -- "$d"
if [ -L "$d" ]; then echo "$d is a symlink; refused" >&2; exit 45; fi
umask 077
t=$(mktemp -- "$d/.$(basename -- "$p").orbiter-XXXXXXXXXX")
trap 'rm -f -- "$t"' EXIT
cat > "$t"
chmod "$2" "$t"
sync -- "$t" 2>/dev/null || :
mv -fT -- "$t" "$p"
trap - EXIT"#;

/// Prints the file, or exits MISSING when it does not exist. Argument: PATH.
const READ_SCRIPT: &str = r#"[ -e "$1" ] || exit 44
exec cat -- "$1""#;

impl SshPool {
    /// Uploads `content` to `path` with `mode` (e.g. 0o644), atomically, as root.
    pub fn write_file(
        &self,
        t: &Target,
        pinned: &HostKey,
        key_pem: &str,
        path: &str,
        mode: u32,
        content: &[u8],
    ) -> Result<(), SshError> {
        check_path(t, path)?;
        if mode > 0o7777 {
            return Err(SshError::Invalid {
                target: t.id.clone(),
                reason: format!("file mode {mode:o} for {path} is not a permission mode"),
            });
        }
        let mode = format!("{mode:04o}");
        let cmd = as_root(WRITE_SCRIPT, &[path, &mode]);
        let out = self.exec(t, pinned, key_pem, &cmd, Some(content))?;
        if out.status != 0 {
            return Err(SshError::Command {
                target: t.id.clone(),
                cmd_summary: format!("write {path} (mode {mode})"),
                status: out.status,
                stderr: summarize(&String::from_utf8_lossy(&out.stderr)),
            });
        }
        Ok(())
    }

    /// Reads `path` as root; `None` when it does not exist.
    pub fn read_file(
        &self,
        t: &Target,
        pinned: &HostKey,
        key_pem: &str,
        path: &str,
    ) -> Result<Option<Vec<u8>>, SshError> {
        check_path(t, path)?;
        let cmd = as_root(READ_SCRIPT, &[path]);
        let out = self.exec(t, pinned, key_pem, &cmd, None)?;
        match out.status {
            0 => Ok(Some(out.stdout)),
            MISSING => Ok(None),
            status => Err(SshError::Command {
                target: t.id.clone(),
                cmd_summary: format!("read {path}"),
                status,
                stderr: summarize(&String::from_utf8_lossy(&out.stderr)),
            }),
        }
    }
}

/// One end of a copy between machines.
pub struct Endpoint<'a> {
    pub target: &'a Target,
    pub pinned: &'a HostKey,
    pub key_pem: &'a str,
}

impl SshPool {
    /// Copies `from_path` on one machine to `to_path` on another (as root, atomically, with
    /// `mode`), streamed from one SSH connection into the other: the bytes never pass whole
    /// through this process, whatever their size. Returns whether the source existed.
    pub fn copy_between(
        &self,
        from: &Endpoint<'_>,
        from_path: &str,
        to: &Endpoint<'_>,
        to_path: &str,
        mode: u32,
        deadline: std::time::Duration,
    ) -> Result<bool, SshError> {
        check_path(from.target, from_path)?;
        check_path(to.target, to_path)?;
        let src = self.conn(from.target, from.pinned, from.key_pem)?;
        self.ensure_master(from.target, from.pinned, &src)?;
        let dst = self.conn(to.target, to.pinned, to.key_pem)?;
        self.ensure_master(to.target, to.pinned, &dst)?;
        let mut reader = super::pool::multiplexed(&src, &as_root(READ_SCRIPT, &[from_path]));
        // Into `.part` first: a source that fails half way must not leave half a file.
        let part = format!("{to_path}.part");
        let mut writer = super::pool::multiplexed(
            &dst,
            &as_root(WRITE_SCRIPT, &[&part, &format!("{mode:04o}")]),
        );
        let spawn = |c: &mut std::process::Command| {
            c.spawn()
                .map_err(|e| SshError::Io(format!("cannot run ssh: {e}")))
        };
        let mut r = spawn(
            reader
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped()),
        )?;
        let pipe = r.stdout.take().expect("stdout was piped");
        let mut w = spawn(
            writer
                .stdin(std::process::Stdio::from(pipe))
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped()),
        )?;
        let started = std::time::Instant::now();
        let wait = |c: &mut std::process::Child| -> Result<Option<i32>, SshError> {
            loop {
                if let Some(s) = c
                    .try_wait()
                    .map_err(|e| SshError::Io(format!("waiting for ssh: {e}")))?
                {
                    return Ok(Some(s.code().unwrap_or(255)));
                }
                if started.elapsed() >= deadline {
                    return Ok(None);
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        };
        let (rs, ws) = (wait(&mut r)?, wait(&mut w)?);
        let stderr = |c: &mut std::process::Child| {
            let mut s = String::new();
            if let Some(mut e) = c.stderr.take() {
                let _ = std::io::Read::read_to_string(
                    &mut std::io::Read::take(&mut e, 64 * 1024),
                    &mut s,
                );
            }
            summarize(&s)
        };
        if rs.is_none() || ws.is_none() {
            let _ = r.kill();
            let _ = w.kill();
            let _ = (r.wait(), w.wait());
            super::pool::stop_master(&src);
            super::pool::stop_master(&dst);
            return Err(SshError::TimedOut {
                target: format!("{} → {}", from.target.id, to.target.id),
                cmd_summary: format!("copy {from_path}"),
                after: deadline,
            });
        }
        let finish = |script: &str, args: &[&str]| {
            self.exec(
                to.target,
                to.pinned,
                to.key_pem,
                &as_root(script, args),
                None,
            )
        };
        if rs != Some(0) || ws != Some(0) {
            let _ = finish("rm -f -- \"$1\"", &[&part]);
        }
        match (rs, ws) {
            (Some(0), Some(0)) => {
                let out = finish("mv -fT -- \"$1\" \"$2\"", &[&part, to_path])?;
                if !out.success() {
                    return Err(SshError::Command {
                        target: to.target.id.clone(),
                        cmd_summary: format!("move {part} to {to_path}"),
                        status: out.status,
                        stderr: summarize(&String::from_utf8_lossy(&out.stderr)),
                    });
                }
                Ok(true)
            }
            (Some(MISSING), _) => Ok(false),
            (Some(status), _) if status != 0 => Err(SshError::Command {
                target: from.target.id.clone(),
                cmd_summary: format!("read {from_path}"),
                status,
                stderr: stderr(&mut r),
            }),
            (_, Some(status)) => Err(SshError::Command {
                target: to.target.id.clone(),
                cmd_summary: format!("write {to_path}"),
                status,
                stderr: stderr(&mut w),
            }),
            _ => unreachable!("both ended"),
        }
    }
}

/// `sh -c SCRIPT sh ARGS…`, prefixed with `sudo -n` when the remote user is not root.
/// Arguments travel as positional parameters, so no path is ever parsed as shell code.
fn as_root(script: &str, args: &[&str]) -> String {
    let mut line = format!(
        "if [ \"$(id -u)\" -eq 0 ]; then set --; else set -- sudo -n; fi; \"$@\" sh -c {} sh",
        quote(script)
    );
    for a in args {
        line.push(' ');
        line.push_str(&quote(a));
    }
    line
}

fn check_path(t: &Target, path: &str) -> Result<(), SshError> {
    if !path.starts_with('/') || path.ends_with('/') || path.contains('\0') {
        return Err(SshError::Invalid {
            target: t.id.clone(),
            reason: format!("remote path {path:?} must be an absolute file path"),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn as_root_passes_arguments_quoted() {
        let line = as_root("echo \"$1\"", &["/etc/it's here"]);
        assert!(
            line.ends_with("sh -c 'echo \"$1\"' sh '/etc/it'\\''s here'"),
            "{line}"
        );
    }

    #[test]
    fn as_root_runs_under_a_local_shell() {
        // The same line the machine's login shell gets, run here (as whoever runs the tests).
        let line = as_root(READ_SCRIPT, &["/nonexistent/orbiter-test"]);
        let status = std::process::Command::new("sh")
            .args(["-c", &line])
            .status()
            .unwrap();
        // Root: the script runs and reports "missing". Not root: sudo may be absent (127) or
        // refuse (1); either way the outcome is not "missing" by accident.
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            assert_eq!(status.code(), Some(MISSING));
        }
    }
}
