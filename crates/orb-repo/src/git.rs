//! Running the git CLI with a clean, fixed environment, and turning its failures into
//! [`RepoError`]s that carry no credentials.

use std::ffi::{OsStr, OsString};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use zeroize::Zeroizing;

use crate::error::RepoError;
use crate::redact::{redact_url_credentials, scrub};

/// Options passed with `-c` to every git call: no hooks from anywhere, no credential helpers,
/// no background gc left running after we return.
const GIT_OPTIONS: &[&str] = &[
    "core.hooksPath=/dev/null",
    "credential.helper=",
    "gc.autoDetach=false",
    "maintenance.autoDetach=false",
    "protocol.version=2",
    // https: a transfer slower than 1 KiB/s for 30 s is abandoned (ssh has ServerAlive*).
    "http.lowSpeedLimit=1024",
    "http.lowSpeedTime=30",
];

/// Upper bound of one git call: a fetch or push of an Orb repository takes seconds; a hung
/// server or network must not hang Orbiter.
pub(crate) const CALL_DEADLINE: std::time::Duration = std::time::Duration::from_secs(300);

/// Where the host key of an ssh remote is pinned; used to explain verification failures.
pub(crate) struct SshHost {
    pub(crate) display: String,
    pub(crate) known_hosts: PathBuf,
}

/// A git runner bound to one local (bare) repository and one environment.
pub(crate) struct Git {
    git_dir: PathBuf,
    env: Vec<(OsString, OsString)>,
    secrets: Vec<Zeroizing<String>>,
    ssh: Option<SshHost>,
}

/// The environment every git/ssh child gets instead of ours: no user or system git config,
/// no prompts, a private HOME, the C locale (messages we parse), literal pathspecs.
pub(crate) fn clean_env(home: &Path) -> Vec<(OsString, OsString)> {
    let path = std::env::var_os("PATH")
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
    let mut env: Vec<(OsString, OsString)> = vec![
        ("PATH".into(), path),
        ("HOME".into(), home.as_os_str().to_owned()),
        ("GIT_CONFIG_NOSYSTEM".into(), "1".into()),
        ("GIT_CONFIG_GLOBAL".into(), "/dev/null".into()),
        ("GIT_TERMINAL_PROMPT".into(), "0".into()),
        ("GIT_LITERAL_PATHSPECS".into(), "1".into()),
        ("LC_ALL".into(), "C".into()),
    ];
    if let Some(tmp) = std::env::var_os("TMPDIR") {
        env.push(("TMPDIR".into(), tmp));
    }
    env
}

/// `GIT_SSH_COMMAND` for a deploy key and a pinned known_hosts file.
pub(crate) fn ssh_command(key: &Path, known_hosts: &Path) -> Result<String, RepoError> {
    for p in [key, known_hosts] {
        if p.to_string_lossy().contains('"') {
            return Err(RepoError::io(
                format!("path {} cannot be passed to ssh", p.display()),
                std::io::Error::new(std::io::ErrorKind::InvalidInput, "it contains '\"'"),
            ));
        }
    }
    Ok(format!(
        "ssh -F /dev/null -i {key} -o IdentitiesOnly=yes -o {kh} -o GlobalKnownHostsFile=/dev/null \
         -o StrictHostKeyChecking=yes -o UpdateHostKeys=no -o BatchMode=yes -o ConnectTimeout=30 \
         -o ServerAliveInterval=15 -o ServerAliveCountMax=4",
        key = shell_quote(&key.to_string_lossy()),
        kh = shell_quote(&format!(
            "UserKnownHostsFile=\"{}\"",
            known_hosts.to_string_lossy()
        )),
    ))
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

impl Git {
    pub(crate) fn new(
        git_dir: PathBuf,
        env: Vec<(OsString, OsString)>,
        secrets: Vec<Zeroizing<String>>,
        ssh: Option<SshHost>,
    ) -> Git {
        Git {
            git_dir,
            env,
            secrets,
            ssh,
        }
    }

    pub(crate) fn git_dir(&self) -> &Path {
        &self.git_dir
    }

    /// Starts building `git <op> …` against our repository.
    pub(crate) fn call(&self, op: &'static str) -> Call<'_> {
        let mut cmd = Command::new("git");
        cmd.env_clear().envs(self.env.iter().map(|(k, v)| (k, v)));
        cmd.env("GIT_DIR", &self.git_dir);
        for opt in GIT_OPTIONS {
            cmd.arg("-c").arg(opt);
        }
        cmd.arg(op);
        Call {
            git: self,
            op,
            cmd,
            stdin: None,
        }
    }

    /// Turns a failed call's stderr into an error: host key failures become their own
    /// variants, URLs lose their credentials, known secrets are scrubbed, a hint is added.
    pub(crate) fn failure(&self, op: &str, stderr: &[u8]) -> RepoError {
        let raw = String::from_utf8_lossy(stderr);
        if let Some(ssh) = &self.ssh
            && (raw.contains("Host key verification failed")
                || raw.contains("REMOTE HOST IDENTIFICATION HAS CHANGED"))
        {
            // open() pins the key before any git call, so a failure now means it changed.
            return RepoError::HostKeyChanged {
                host: ssh.display.clone(),
                known_hosts: ssh.known_hosts.clone(),
            };
        }
        let secrets: Vec<&str> = self.secrets.iter().map(|s| s.as_str()).collect();
        let mut text = scrub(&redact_url_credentials(raw.trim()), &secrets);
        if let Some(hint) = hint_for(&text) {
            text.push_str("\nhint: ");
            text.push_str(hint);
        }
        if text.is_empty() {
            text = "(no message)".to_owned();
        }
        RepoError::Git {
            op: op.to_owned(),
            stderr: text,
        }
    }
}

fn hint_for(stderr: &str) -> Option<&'static str> {
    let s = stderr.to_ascii_lowercase();
    if s.contains("permission denied (publickey") {
        Some(
            "the server refused the repo key: add its public key to the repository as a deploy key with write access",
        )
    } else if s.contains("does not appear to be a git repository")
        || s.contains("repository not found")
        || s.contains("not found")
    {
        Some(
            "check the repository URL in the orb config; the repository must exist (an empty one is fine)",
        )
    } else if s.contains("could not resolve hostname") || s.contains("connection refused") {
        Some("check the host and port in the repository URL and that the server is reachable")
    } else if s.contains("timed out") {
        Some("the server did not answer in time; check the network")
    } else if s.contains("authentication failed")
        || s.contains("returned error: 401")
        || s.contains("returned error: 403")
    {
        Some("the token in the orb config was refused or lacks write access")
    } else {
        None
    }
}

/// One git invocation being built.
pub(crate) struct Call<'g> {
    git: &'g Git,
    op: &'static str,
    cmd: Command,
    stdin: Option<Vec<u8>>,
}

impl Call<'_> {
    pub(crate) fn arg(mut self, a: impl AsRef<OsStr>) -> Self {
        self.cmd.arg(a);
        self
    }

    pub(crate) fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.cmd.args(args);
        self
    }

    pub(crate) fn env(mut self, k: &str, v: impl AsRef<OsStr>) -> Self {
        self.cmd.env(k, v);
        self
    }

    pub(crate) fn stdin(mut self, data: Vec<u8>) -> Self {
        self.stdin = Some(data);
        self
    }

    /// Runs to completion and returns the output whatever the exit status.
    pub(crate) fn output(mut self) -> Result<Output, RepoError> {
        self.cmd
            .stdin(if self.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // Its own process group, so a deadline stops git and the ssh it started, which holds
        // git's stderr (our pipe) too.
        std::os::unix::process::CommandExt::process_group(&mut self.cmd, 0);
        let mut child = self.cmd.spawn().map_err(|e| RepoError::Tool {
            program: "git".to_owned(),
            package: "git".to_owned(),
            source: e,
        })?;
        let op = self.op;
        let input = self.stdin.take();
        let pipe = child.stdin.take();
        let mut out_pipe = child.stdout.take();
        let mut err_pipe = child.stderr.take();
        let io = |e: std::io::Error| RepoError::io(format!("waiting for git {op}"), e);
        // Feed stdin and drain both outputs from threads of their own, so a chatty child cannot
        // deadlock us, and wait with a deadline.
        std::thread::scope(|s| {
            if let (Some(data), Some(mut pipe)) = (input, pipe) {
                s.spawn(move || {
                    let _ = pipe.write_all(&data);
                });
            }
            let drain = |p: &mut Option<_>| {
                let mut buf = Vec::new();
                if let Some(p) = p.as_mut() {
                    let _ = std::io::Read::read_to_end(p, &mut buf);
                }
                buf
            };
            let out = s.spawn(move || drain(&mut out_pipe));
            let err = s.spawn(move || {
                let mut buf = Vec::new();
                if let Some(p) = err_pipe.as_mut() {
                    let _ = std::io::Read::read_to_end(p, &mut buf);
                }
                buf
            });
            let deadline = std::time::Instant::now() + CALL_DEADLINE;
            let status = loop {
                if let Some(status) = child.try_wait().map_err(io)? {
                    break status;
                }
                if std::time::Instant::now() >= deadline {
                    // SAFETY: signalling the process group we created for this child.
                    unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
                    let _ = child.wait();
                    return Err(RepoError::Timeout {
                        op: op.to_owned(),
                        after: CALL_DEADLINE,
                    });
                }
                std::thread::sleep(std::time::Duration::from_millis(5));
            };
            Ok(Output {
                status,
                stdout: out.join().unwrap_or_default(),
                stderr: err.join().unwrap_or_default(),
            })
        })
    }

    /// Runs to completion; a non-zero exit becomes an error.
    pub(crate) fn run(self) -> Result<Output, RepoError> {
        let git = self.git;
        let op = self.op;
        let out = self.output()?;
        if out.status.success() {
            Ok(out)
        } else {
            Err(git.failure(op, &out.stderr))
        }
    }

    /// Runs to completion and returns stdout as text without the final newline.
    pub(crate) fn text(self) -> Result<String, RepoError> {
        let out = self.run()?;
        let mut s = String::from_utf8_lossy(&out.stdout).into_owned();
        while s.ends_with('\n') {
            s.pop();
        }
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssh_command_quotes_paths() {
        let cmd = ssh_command(Path::new("/tmp/a b/key"), Path::new("/h/it's/known_hosts")).unwrap();
        assert!(cmd.contains("-i '/tmp/a b/key'"), "{cmd}");
        assert!(
            cmd.contains(r#"-o 'UserKnownHostsFile="/h/it'\''s/known_hosts"'"#),
            "{cmd}"
        );
        assert!(cmd.contains("StrictHostKeyChecking=yes") && cmd.contains("BatchMode=yes"));
        assert!(ssh_command(Path::new("/k"), Path::new("/a\"b")).is_err());
    }

    #[test]
    fn failure_redacts_and_hints() {
        let git = Git::new(
            PathBuf::from("/nonexistent"),
            Vec::new(),
            vec![Zeroizing::new("sekrit-token".to_owned())],
            None,
        );
        let err = git
            .failure(
                "fetch",
                b"fatal: repository 'https://u:sekrit-token@h/r/' not found; sekrit-token",
            )
            .to_string();
        assert!(!err.contains("sekrit-token"), "{err}");
        assert!(err.contains("https://***@h/r/"), "{err}");
        assert!(err.contains("hint: check the repository URL"), "{err}");
    }
}
