//! The one error type of this crate. Every message names the place (file, URL, host, path)
//! and, where the person can do something about it, says what. None carries a secret.

use std::path::PathBuf;

/// Why an orb config or repository operation failed.
#[derive(thiserror::Error, Debug)]
pub enum RepoError {
    /// The orb config file is missing, unreadable or invalid.
    #[error("orb config {}: {reason}", path.display())]
    Config { path: PathBuf, reason: String },

    /// The orb config is not valid YAML for its fields.
    #[error("{}:{line}:{column}: {message} (in the orb config; fields are url, repokey, masterkey)", path.display())]
    ConfigSyntax {
        path: PathBuf,
        line: u64,
        column: u64,
        message: String,
    },

    /// A repository URL that is not one of the accepted forms (credentials already removed).
    #[error(
        "repository URL {url:?}: {reason}; accepted forms: ssh://[user@]host[:port]/path, \
         [user@]host:path, file:///path, /abs/path, ./rel/path, https://host/path"
    )]
    Url { url: String, reason: String },

    /// First contact with an SSH host whose key nobody confirmed.
    #[error(
        "the SSH host key of {host} is not known yet; the server offers {}. Verify the fingerprint \
         with the server's operator, then accept it (orbctl: --accept-host-key FINGERPRINT)",
        fmt_list(fingerprints)
    )]
    HostKeyUnknown {
        host: String,
        fingerprints: Vec<String>,
    },

    /// A fingerprint was accepted in advance, but the server offers none with it.
    #[error(
        "the SSH host key fingerprint {expected} you accepted does not match any key {host} offers \
         ({}); refusing to connect. Check the fingerprint, or whether something sits between you and {host}",
        fmt_list(fingerprints)
    )]
    HostKeyMismatch {
        host: String,
        expected: String,
        fingerprints: Vec<String>,
    },

    /// The host presented a key other than the pinned one.
    #[error(
        "the host key of {host} changed since it was recorded in {}: refusing to connect, nothing was \
         fetched or pushed (this can be an attack). If the change is expected, remove its line from {} \
         and connect again to record the new key",
        known_hosts.display(),
        known_hosts.display()
    )]
    HostKeyChanged { host: String, known_hosts: PathBuf },

    /// Other writers won every push race until the attempts ran out.
    #[error(
        "gave up after {attempts} push attempts: other writers changed the repository every time; \
         nothing was overwritten, run the command again"
    )]
    PushRace { attempts: u32 },

    /// A git (or ssh) invocation failed; `stderr` is redacted and may end with a hint.
    #[error("git {op} failed: {stderr}")]
    Git { op: String, stderr: String },

    /// A git call did not finish in time (a hung server, a stalled network); it was killed.
    #[error("git {op} did not finish within {} s and was stopped; hint: check the network and the server", after.as_secs())]
    Timeout {
        op: String,
        after: std::time::Duration,
    },

    /// Another process held the persistent clone's lock for too long.
    #[error("another orbctl or Orbiter has held {} for more than {} s; hint: if none runs, a hung git under it may: find it with `fuser {}`", path.display(), waited.as_secs(), path.display())]
    Locked {
        path: PathBuf,
        waited: std::time::Duration,
    },

    /// The fetched head does not descend from the one seen before: someone rewrote the history.
    #[error(
        "the repository's {branch} was rewritten: {new} does not descend from {seen}, the head this clone saw last; nothing is read from it until a person accepts it\n  hint: check what happened (`git log {seen}..{new}` in a clone); if it was meant, run `orbctl repo accept-history` (on the machine of an Orbiter inside the Orb: `orbctl -f /var/lib/orbiter/config repo accept-history`)"
    )]
    HistoryRewritten {
        branch: String,
        seen: String,
        new: String,
    },

    /// A helper program could not be started at all.
    #[error("cannot run {program}: {source}; install it (apt-get install {package})")]
    Tool {
        program: String,
        package: String,
        #[source]
        source: std::io::Error,
    },

    /// Local file system trouble (cache dir, lock file, known_hosts, key file).
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },

    /// A path inside the repository that cannot be read or written as a file.
    #[error("repository path {path:?}: {reason}")]
    InvalidPath { path: String, reason: String },

    /// A caller-supplied value (commit message, author) that git cannot take.
    #[error("invalid {what}: {reason}")]
    InvalidInput { what: String, reason: String },

    /// The caller's derive function failed; nothing was committed.
    #[error("preparing the change failed: {0}")]
    Derive(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl RepoError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> RepoError {
        RepoError::Io {
            context: context.into(),
            source,
        }
    }
}

fn fmt_list(items: &[String]) -> String {
    if items.is_empty() {
        "no key we could read".to_owned()
    } else {
        items.join(", ")
    }
}
