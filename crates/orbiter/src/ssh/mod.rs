//! SSH to Orb machines through the OpenSSH `ssh` binary.
//!
//! Why the binary and not a Rust SSH library: OpenSSH is what every machine and admin already
//! trusts, it multiplexes commands over one persistent connection per machine (ControlMaster),
//! and its host key checking is battle-tested. We only feed it a config of our own: never the
//! user's `~/.ssh/config`, agent or known_hosts. Host keys are pinned by the caller (they live in
//! the Orb repository) and a changed key stops work on that machine with [`SshError::HostKeyMismatch`].

mod diagnose;
mod files;
mod hostkey;
mod keys;
mod pool;
mod process;
mod workdir;

use std::fmt;
use std::net::IpAddr;

pub use files::Endpoint;
pub use hostkey::{HostKey, scan_host_key};
pub use keys::generate_keypair;
pub use pool::{COMMAND_DEADLINE, Limits, OUTPUT_CAP, SshPool};

/// Where and how to reach one machine.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Target {
    /// Name for messages, e.g. `lab.m1` (pool.machine).
    pub id: String,
    pub host: IpAddr,
    pub port: u16,
    /// Login name on the machine; commands run as this user (uploads use `sudo -n` unless root).
    pub user: String,
}

/// What a remote command did. Debug shows sizes only: output may hold secrets (a file read back).
#[derive(Clone, PartialEq, Eq)]
pub struct ExecOutput {
    /// Exit status of the remote command (signals are reported by the remote shell as 128+N).
    pub status: i32,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl ExecOutput {
    /// Whether the remote command exited 0.
    pub fn success(&self) -> bool {
        self.status == 0
    }
}

impl fmt::Debug for ExecOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExecOutput")
            .field("status", &self.status)
            .field("stdout_bytes", &self.stdout.len())
            .field("stderr_bytes", &self.stderr.len())
            .finish()
    }
}

/// Why talking to a machine failed. Messages name the machine and say what to do; they never
/// contain key material.
#[derive(thiserror::Error, Debug)]
pub enum SshError {
    #[error(
        "{target}: its SSH host key changed (pinned {expected}, offered now {found}): refusing to \
         work on this machine; if it was reinstalled, remove its entry from orbiter/hostkeys.yml"
    )]
    HostKeyMismatch {
        target: String,
        expected: String,
        found: String,
    },
    #[error("{target}: unreachable over SSH: {reason}")]
    Unreachable { target: String, reason: String },
    #[error(
        "{target}: SSH login refused (Permission denied, publickey): the key is not in the \
         user's authorized_keys on that machine, or the user name is wrong"
    )]
    AuthFailed { target: String },
    #[error("{target}: `{cmd_summary}` failed with exit status {status}: {stderr}")]
    Command {
        target: String,
        cmd_summary: String,
        status: i32,
        stderr: String,
    },
    /// The command did not finish within its deadline; it was killed (the machine may still be
    /// doing it).
    #[error("{target}: timed out after {} s: `{cmd_summary}`", after.as_secs())]
    TimedOut {
        target: String,
        cmd_summary: String,
        after: std::time::Duration,
    },
    /// The command wrote more than the cap; it was killed and its output dropped.
    #[error("{target}: `{cmd_summary}` wrote more than {limit} bytes; killed")]
    TooMuchOutput {
        target: String,
        cmd_summary: String,
        limit: usize,
    },
    /// Input that cannot be used as given (a malformed pinned host key or private key, a bad path).
    #[error("{target}: {reason}")]
    Invalid { target: String, reason: String },
    /// A local failure: cannot run ssh, cannot write the private directory, ….
    #[error("{0}")]
    Io(String),
}

/// POSIX shell single-quoting: `it's` → `'it'\''s'`. Safe for any byte string as one word.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        if c == '\'' {
            out.push_str("'\\''");
        } else {
            out.push(c);
        }
    }
    out.push('\'');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quote_escapes_single_quotes_and_keeps_everything_else() {
        assert_eq!(quote(""), "''");
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's"), "'it'\\''s'");
        assert_eq!(
            quote("$(rm -rf /) `x` \"y\" \\"),
            "'$(rm -rf /) `x` \"y\" \\'"
        );
    }

    #[test]
    fn exec_output_debug_hides_content() {
        let out = ExecOutput {
            status: 0,
            stdout: b"secret".to_vec(),
            stderr: b"also".to_vec(),
        };
        let dbg = format!("{out:?}");
        assert!(!dbg.contains("secret") && !dbg.contains("also"), "{dbg}");
        assert!(dbg.contains("stdout_bytes: 6"), "{dbg}");
    }
}
