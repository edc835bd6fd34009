//! Shared helpers for the orb-repo integration tests.
#![allow(dead_code)]

use std::path::PathBuf;

use orb_repo::{Author, FileChange, HostKeyPolicy, OrbConfig, Redacted, RepoOptions};
use tempfile::TempDir;

/// A client-side workspace: cache dir and known_hosts in one temp dir.
pub struct Client {
    pub dir: TempDir,
}

impl Client {
    pub fn new() -> Client {
        Client {
            dir: tempfile::Builder::new()
                .prefix("orb-client-")
                .tempdir()
                .unwrap(),
        }
    }

    pub fn known_hosts(&self) -> PathBuf {
        self.dir.path().join("known_hosts")
    }

    pub fn options(&self, policy: HostKeyPolicy) -> RepoOptions {
        RepoOptions {
            cache_dir: self.dir.path().join("repos"),
            known_hosts: self.known_hosts(),
            host_key_policy: policy,
            author: author(),
            max_push_attempts: orb_repo::DEFAULT_MAX_PUSH_ATTEMPTS,
        }
    }
}

pub fn author() -> Author {
    Author {
        name: "Orbiter Test".to_owned(),
        email: "orbiter-test@example.org".to_owned(),
    }
}

pub fn config(url: String, repokey: Option<&str>) -> OrbConfig {
    OrbConfig {
        url,
        repokey: repokey.map(|k| Redacted::from(k.to_owned())),
        masterkey: Redacted::from("test-masterkey".to_owned()),
    }
}

pub type DeriveResult = Result<Vec<FileChange>, Box<dyn std::error::Error + Send + Sync>>;

pub fn write(path: &str, content: &str) -> DeriveResult {
    Ok(vec![FileChange::write(path, content)])
}
