//! Persistent connections: one OpenSSH ControlMaster per (machine, pinned host key, private key),
//! started explicitly so that connection problems (changed host key, refused key, no route) come
//! from a process that prints nothing else, and every later command rides the open connection.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::diagnose::{Problem, diagnose, last_line};
use super::keys::normalize_private_key;
use super::process::{Captured, capture, exit_code, run_quiet, tool};
use super::workdir::Workdir;
use super::{ExecOutput, HostKey, SshError, Target, scan_host_key};

/// How long an idle master stays up after its last command.
const CONTROL_PERSIST: &str = "60s";
/// Upper bound for connecting and authenticating (ConnectTimeout covers only TCP and banner).
const LOGIN_DEADLINE: Duration = Duration::from_secs(45);
/// How long a command may run unless the caller says otherwise: long enough for a package
/// transaction behind an agent's first pass, short enough that a hung machine is reported.
pub const COMMAND_DEADLINE: Duration = Duration::from_secs(30 * 60);
/// How much of a command's stdout is kept unless the caller says otherwise; more is an error
/// and the command is killed (bulk data is streamed, see `copy_file`, never captured).
pub const OUTPUT_CAP: usize = 16 << 20;

/// How long a command may run and how much output is kept of it.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub deadline: Duration,
    pub max_output: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            deadline: COMMAND_DEADLINE,
            max_output: OUTPUT_CAP,
        }
    }
}

/// SSH connections to many machines, safe to share between threads. Each machine gets a
/// ControlMaster whose socket lives in the pool's private directory; dropping the pool closes them.
pub struct SshPool {
    dir: Workdir,
    conns: Mutex<HashMap<String, Arc<Conn>>>,
}

/// The files behind one connection.
pub(super) struct Conn {
    host: std::net::IpAddr,
    port: u16,
    user: String,
    alias: String,
    key_file: PathBuf,
    known_hosts: PathBuf,
    control: PathBuf,
    log: PathBuf,
    /// Serialises starting the master, so parallel first commands make one connection.
    start: Mutex<()>,
}

impl std::fmt::Debug for SshPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SshPool")
            .field("dir", &self.dir.path())
            .finish_non_exhaustive()
    }
}

impl SshPool {
    /// Creates the pool's private directory; no connection is made yet.
    pub fn new() -> Result<SshPool, SshError> {
        Ok(SshPool {
            dir: Workdir::create()?,
            conns: Mutex::new(HashMap::new()),
        })
    }

    /// Runs `cmd` (a shell command line; quote arguments with [`super::quote`]) as the target
    /// user, with `stdin` fed to it, within the default [`Limits`]. A non-zero exit is `Ok`
    /// with that status; `Err` means ssh itself failed (host key changed, login refused,
    /// machine unreachable) or the command ran out of time or wrote too much.
    pub fn exec(
        &self,
        t: &Target,
        pinned: &HostKey,
        key_pem: &str,
        cmd: &str,
        stdin: Option<&[u8]>,
    ) -> Result<ExecOutput, SshError> {
        self.exec_within(t, pinned, key_pem, cmd, stdin, Limits::default())
    }

    /// [`SshPool::exec`] with its own deadline and output cap.
    pub fn exec_within(
        &self,
        t: &Target,
        pinned: &HostKey,
        key_pem: &str,
        cmd: &str,
        stdin: Option<&[u8]>,
        limits: Limits,
    ) -> Result<ExecOutput, SshError> {
        let conn = self.conn(t, pinned, key_pem)?;
        self.ensure_master(t, pinned, &conn)?;
        let mut ssh = multiplexed(&conn, cmd);
        let out = match capture(&mut ssh, stdin, limits.deadline, limits.max_output)? {
            Captured::Done(out) => out,
            Captured::TimedOut => {
                // The master still holds the killed command's session (and our pipes).
                stop_master(&conn);
                return Err(SshError::TimedOut {
                    target: t.id.clone(),
                    cmd_summary: summarize_cmd(cmd),
                    after: limits.deadline,
                });
            }
            Captured::TooMuch => {
                stop_master(&conn);
                return Err(SshError::TooMuchOutput {
                    target: t.id.clone(),
                    cmd_summary: summarize_cmd(cmd),
                    limit: limits.max_output,
                });
            }
        };
        let status = exit_code("ssh", out.status)?;
        if status == 255 {
            if let Some(problem) = diagnose(&String::from_utf8_lossy(&out.stderr)) {
                return Err(to_error(t, pinned, problem));
            }
            // A multiplexed command whose connection dies ends with 255 and no message; the
            // master's exit tells that apart from a command that chose 255 itself.
            if master_lost(&conn) {
                return Err(SshError::Unreachable {
                    target: t.id.clone(),
                    reason: "the connection was lost while the command ran (machine down, \
                             rebooted or network cut); the command may or may not have finished"
                        .to_owned(),
                });
            }
        }
        Ok(ExecOutput {
            status,
            stdout: out.stdout,
            stderr: out.stderr,
        })
    }

    /// Whether `key_pem` can log in, on a fresh connection (never an open master, which may have
    /// authenticated with another key). Used to prove a new key before removing the old one.
    /// A changed host key or an unreachable machine is an error, not `false`.
    pub fn can_login(&self, t: &Target, pinned: &HostKey, key_pem: &str) -> Result<bool, SshError> {
        let conn = self.conn(t, pinned, key_pem)?;
        let mut ssh = ssh(&conn);
        ssh.args(["-o", "ControlMaster=no", "-o", "ControlPath=none", "--"])
            .arg(conn.host.to_string())
            .arg("true");
        let Captured::Done(out) = capture(&mut ssh, None, LOGIN_DEADLINE, 64 * 1024)? else {
            return Err(timed_out(t));
        };
        let status = exit_code("ssh", out.status)?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        match (status, diagnose(&stderr)) {
            (0, _) => Ok(true),
            (255, Some(Problem::Auth)) => Ok(false),
            (255, Some(problem)) => Err(to_error(t, pinned, problem)),
            (status, _) => Err(SshError::Command {
                target: t.id.clone(),
                cmd_summary: "true (login check)".to_owned(),
                status,
                stderr: summarize(&stderr),
            }),
        }
    }

    /// Closes the open connections to this machine (all keys). The next command reconnects.
    pub fn close(&self, t: &Target) {
        let conns: Vec<Arc<Conn>> = self
            .lock()
            .values()
            .filter(|c| c.host == t.host && c.port == t.port && c.user == t.user)
            .cloned()
            .collect();
        for c in conns {
            stop_master(&c);
        }
    }

    /// Whether a live ControlMaster serves this machine with this key (for diagnostics and tests).
    pub fn is_connected(&self, t: &Target, pinned: &HostKey, key_pem: &str) -> bool {
        self.conn(t, pinned, key_pem)
            .map(|c| master_alive(&c))
            .unwrap_or(false)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Conn>>> {
        self.conns.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The connection record for these inputs, writing its key and known_hosts files once.
    /// A different pinned key or private key is a different connection, so a master opened under
    /// old assumptions is never reused for new ones.
    pub(super) fn conn(
        &self,
        t: &Target,
        pinned: &HostKey,
        key_pem: &str,
    ) -> Result<Arc<Conn>, SshError> {
        let invalid = |reason: String| SshError::Invalid {
            target: t.id.clone(),
            reason,
        };
        if t.user.is_empty() || t.user.starts_with('-') || t.user.contains(char::is_whitespace) {
            return Err(invalid(format!("SSH user name {:?} is not usable", t.user)));
        }
        let pinned = HostKey::parse(&pinned.0).map_err(|e| invalid(format!("pinned {e}")))?;
        let key = normalize_private_key(key_pem).map_err(invalid)?;
        let key_id = hex(&Sha256::digest(key.as_bytes()))[..32].to_owned();
        let id = hex(&Sha256::digest(
            [
                t.id.as_str(),
                &t.user,
                &t.host.to_string(),
                &t.port.to_string(),
                &pinned.0,
                &key_id,
            ]
            .join("\0")
            .as_bytes(),
        ))[..16]
            .to_owned();
        if let Some(c) = self.lock().get(&id) {
            return Ok(c.clone());
        }
        let alias = alias(&t.id);
        let key_file = self
            .dir
            .write_private(&format!("k-{key_id}"), key.as_bytes())?;
        let known_hosts = self.dir.write_private(
            &format!("h-{id}"),
            format!("{alias} {}\n", pinned.0).as_bytes(),
        )?;
        let conn = Arc::new(Conn {
            host: t.host,
            port: t.port,
            user: t.user.clone(),
            alias,
            key_file,
            known_hosts,
            control: self.dir.path().join(format!("c-{id}")),
            log: self.dir.path().join(format!("l-{id}")),
            start: Mutex::new(()),
        });
        Ok(self.lock().entry(id).or_insert(conn).clone())
    }

    /// Starts the ControlMaster unless one is alive. The master forks into the background once
    /// logged in (ControlPersist) and logs to a file, so nothing holds our pipes.
    pub(super) fn ensure_master(
        &self,
        t: &Target,
        pinned: &HostKey,
        conn: &Conn,
    ) -> Result<(), SshError> {
        let _guard = conn.start.lock().unwrap_or_else(PoisonError::into_inner);
        if master_alive(conn) {
            return Ok(());
        }
        // A socket left by a master that died (killed, or its server vanished).
        let _ = fs::remove_file(&conn.control);
        let _ = fs::remove_file(&conn.log);
        let mut ssh = ssh(conn);
        ssh.args(["-o", "ControlMaster=yes", "-o"])
            .arg(format!("ControlPersist={CONTROL_PERSIST}"))
            .arg("-o")
            .arg(opt("ControlPath", &conn.control))
            .arg("-N")
            .arg("-E")
            .arg(&conn.log)
            .arg("--")
            .arg(conn.host.to_string());
        let status = run_quiet(&mut ssh, Some(LOGIN_DEADLINE))?;
        let log = fs::read_to_string(&conn.log).unwrap_or_default();
        match status {
            None => Err(timed_out(t)),
            Some(s) if s.success() && master_alive(conn) => Ok(()),
            Some(s) => Err(match diagnose(&log) {
                Some(problem) => to_error(t, pinned, problem),
                None => SshError::Unreachable {
                    target: t.id.clone(),
                    reason: match last_line(&log) {
                        Some(line) => format!("ssh: {line}"),
                        None => format!("ssh exited with {s} and said nothing"),
                    },
                },
            }),
        }
    }
}

impl Drop for SshPool {
    fn drop(&mut self) {
        let conns: Vec<Arc<Conn>> = self.lock().values().cloned().collect();
        for c in conns {
            stop_master(&c);
        }
    }
}

/// `ssh -- HOST CMD` over the connection's open master.
pub(super) fn multiplexed(conn: &Conn, cmd: &str) -> Command {
    let mut c = ssh(conn);
    c.args(["-o", "ControlMaster=no", "-o"])
        .arg(opt("ControlPath", &conn.control))
        .arg("--")
        .arg(conn.host.to_string())
        .arg(cmd);
    c
}

/// `ssh` with our whole configuration: nothing from ~/.ssh, /etc/ssh or an agent.
fn ssh(conn: &Conn) -> Command {
    let mut cmd = tool("ssh");
    let mut args: Vec<OsString> = vec!["-F".into(), "/dev/null".into()];
    for o in [
        "BatchMode=yes",
        "IdentitiesOnly=yes",
        "IdentityAgent=none",
        "PreferredAuthentications=publickey",
        "PasswordAuthentication=no",
        "KbdInteractiveAuthentication=no",
        "GlobalKnownHostsFile=/dev/null",
        "StrictHostKeyChecking=yes",
        "UpdateHostKeys=no",
        "CheckHostIP=no",
        "ConnectTimeout=10",
        "ServerAliveInterval=5",
        "ServerAliveCountMax=3",
        "ForwardAgent=no",
        "ForwardX11=no",
        "ClearAllForwardings=yes",
        "RequestTTY=no",
        "LogLevel=ERROR",
    ] {
        args.push("-o".into());
        args.push(o.into());
    }
    for (name, value) in [
        ("IdentityFile", &conn.key_file),
        ("UserKnownHostsFile", &conn.known_hosts),
    ] {
        args.push("-o".into());
        args.push(opt(name, value));
    }
    args.push("-o".into());
    args.push(format!("HostKeyAlias={}", conn.alias).into());
    args.extend(["-l".into(), conn.user.clone().into()]);
    args.extend(["-p".into(), conn.port.to_string().into()]);
    cmd.args(args);
    cmd
}

/// `-o NAME=PATH` (our paths never contain whitespace, see workdir).
fn opt(name: &str, path: &std::path::Path) -> OsString {
    let mut s = OsString::from(format!("{name}="));
    s.push(path);
    s
}

/// A master answers on its socket; a dead one leaves a socket that refuses connections.
fn master_alive(conn: &Conn) -> bool {
    UnixStream::connect(&conn.control).is_ok()
}

/// Whether the master goes away within a moment (it unlinks its socket shortly after it
/// dropped its clients, and a socket still listening accepts connections until then).
fn master_lost(conn: &Conn) -> bool {
    for _ in 0..10 {
        if !master_alive(conn) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// `ssh -O exit`: the master closes the connection and removes its socket.
pub(super) fn stop_master(conn: &Conn) {
    if !conn.control.exists() {
        return;
    }
    let mut cmd = tool("ssh");
    cmd.args(["-F", "/dev/null", "-o"])
        .arg(opt("ControlPath", &conn.control))
        .args(["-O", "exit", "-l", &conn.user, "-p", &conn.port.to_string()])
        .arg("--")
        .arg(conn.host.to_string());
    let _ = run_quiet(&mut cmd, Some(Duration::from_secs(10)));
    let _ = fs::remove_file(&conn.control);
}

fn to_error(t: &Target, pinned: &HostKey, problem: Problem) -> SshError {
    match problem {
        Problem::HostKey { offered } => SshError::HostKeyMismatch {
            target: t.id.clone(),
            expected: pinned.fingerprint(),
            found: offered.unwrap_or_else(|| match scan_host_key(t) {
                Ok(k) => k.fingerprint(),
                Err(e) => format!("unknown ({e})"),
            }),
        },
        Problem::Auth => SshError::AuthFailed {
            target: t.id.clone(),
        },
        Problem::BadPrivateKey => SshError::Invalid {
            target: t.id.clone(),
            reason: "ssh cannot load the private key (corrupt, or protected by a passphrase)"
                .to_owned(),
        },
        Problem::Unreachable(reason) => SshError::Unreachable {
            target: t.id.clone(),
            reason,
        },
    }
}

/// The first words of a command line, for messages (never its stdin, which may be secret).
fn summarize_cmd(cmd: &str) -> String {
    let first: String = cmd.split_whitespace().take(6).collect::<Vec<_>>().join(" ");
    let mut s: String = first.chars().take(80).collect();
    if s.len() < cmd.trim().len() {
        s.push('…');
    }
    s
}

fn timed_out(t: &Target) -> SshError {
    SshError::Unreachable {
        target: t.id.clone(),
        reason: format!(
            "no SSH login to {}:{} within {} s",
            t.host,
            t.port,
            LOGIN_DEADLINE.as_secs()
        ),
    }
}

/// The name ssh checks in our known_hosts file and prints in its messages: the target id,
/// restricted to characters that need no quoting.
fn alias(id: &str) -> String {
    let a: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if a.is_empty() {
        "orb-machine".to_owned()
    } else {
        a
    }
}

/// Remote stderr for an error message: trimmed, at most the last 2000 characters.
pub(super) fn summarize(stderr: &str) -> String {
    let s = stderr.trim();
    let n = s.chars().count();
    if n <= 2000 {
        s.to_owned()
    } else {
        format!("…{}", s.chars().skip(n - 2000).collect::<String>())
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alias_keeps_safe_characters_only() {
        assert_eq!(alias("lab.m1"), "lab.m1");
        assert_eq!(alias("a b/c"), "a_b_c");
        assert_eq!(alias(""), "orb-machine");
    }

    #[test]
    fn summarize_keeps_the_end() {
        assert_eq!(summarize("  x \n"), "x");
        let long = "a".repeat(3000) + "END";
        let s = summarize(&long);
        assert!(s.ends_with("END") && s.chars().count() == 2001);
    }
}
