//! Access to an Orb's Git repository through the git CLI, and the orb config that says
//! where that repository is.
//!
//! The repository is the only source of truth, so writes follow one rule: read the newest
//! state, derive the change from it, commit, push without force; when someone else pushed
//! first, derive again on their state (never merge text). SSH host keys are pinned in a
//! known_hosts file next to the config. See [`OrbRepo`].

pub mod config;
mod error;
mod git;
mod hostkey;
mod jitter;
mod lock;
mod private;
mod redact;
mod repo;
mod snapshot;
mod tree;
mod update;
pub mod url;

use std::path::{Path, PathBuf};

pub use config::{OrbConfig, Redacted};
pub use error::RepoError;
pub use redact::redact_url_credentials;
pub use repo::OrbRepo;
pub use snapshot::Snapshot;
pub use url::RepoUrl;

/// Who commits: used as both author and committer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Author {
    pub name: String,
    pub email: String,
}

/// What to do on first contact with an SSH host whose key is not in known_hosts yet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostKeyPolicy {
    /// On a terminal, show the fingerprints and ask y/N; without one, refuse.
    Prompt,
    /// Accept only a key with this fingerprint (`SHA256:…`), e.g. from `--accept-host-key`.
    Accept(String),
    /// Refuse unknown hosts (daemons, whose hosts were recorded by a person before).
    KnownOnly,
}

/// How an [`OrbRepo`] works locally.
#[derive(Clone, Debug)]
pub struct RepoOptions {
    /// Persistent clones live in `cache_dir/<orb_id>`, serialized by `cache_dir/<orb_id>.lock`.
    pub cache_dir: PathBuf,
    /// The known_hosts file that pins SSH host keys (next to the orb config).
    pub known_hosts: PathBuf,
    pub host_key_policy: HostKeyPolicy,
    pub author: Author,
    /// Upper bound on push attempts per [`OrbRepo::update`] before [`RepoError::PushRace`].
    pub max_push_attempts: u32,
}

impl RepoOptions {
    /// Defaults beside the orb config at `config_path`: `known_hosts` and `repos/` in its
    /// directory, unknown hosts refused, 8 push attempts.
    pub fn beside_config(config_path: &Path, author: Author) -> RepoOptions {
        let dir = match config_path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
            _ => PathBuf::from("."),
        };
        RepoOptions {
            cache_dir: dir.join("repos"),
            known_hosts: dir.join("known_hosts"),
            host_key_policy: HostKeyPolicy::KnownOnly,
            author,
            max_push_attempts: DEFAULT_MAX_PUSH_ATTEMPTS,
        }
    }
}

/// Push attempts per update unless configured otherwise.
pub const DEFAULT_MAX_PUSH_ATTEMPTS: u32 = 8;

/// One file to write (`content: Some`) or delete (`content: None`) in an update.
#[derive(Clone, PartialEq, Eq)]
pub struct FileChange {
    /// Slash-separated path relative to the repository root, e.g. `orbiter.yml`.
    pub path: String,
    pub content: Option<Vec<u8>>,
}

impl FileChange {
    pub fn write(path: impl Into<String>, content: impl Into<Vec<u8>>) -> FileChange {
        FileChange {
            path: path.into(),
            content: Some(content.into()),
        }
    }

    pub fn delete(path: impl Into<String>) -> FileChange {
        FileChange {
            path: path.into(),
            content: None,
        }
    }
}

/// Content may be secret (even encrypted); Debug shows only its size.
impl std::fmt::Debug for FileChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.content {
            Some(c) => write!(f, "FileChange::write({:?}, {} bytes)", self.path, c.len()),
            None => write!(f, "FileChange::delete({:?})", self.path),
        }
    }
}

/// What [`OrbRepo::update`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UpdateOutcome {
    /// The derived change matched the repository already: no commit was made.
    Unchanged,
    /// A commit was pushed; `attempts` counts pushes including the successful one.
    Committed { commit: String, attempts: u32 },
}

/// One entry of the repository history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommitInfo {
    pub id: String,
    /// `Name <email>`.
    pub author: String,
    /// Author date, seconds since the Unix epoch.
    pub date: i64,
    pub message: String,
}
