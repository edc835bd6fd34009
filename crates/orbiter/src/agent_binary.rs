//! The node-agent binary Orbiter installs: found next to the running program (or at
//! `$ORBITER_NODE_AGENT`), identified by its version and SHA-256.

use anyhow::{Context as _, Result, bail};
use sha2::{Digest, Sha256};
use std::path::PathBuf;

/// The agent binary this Orbiter installs, by version and checksum.
#[derive(Clone, Debug)]
pub struct AgentRelease {
    pub version: String,
    pub sha256: String,
}

#[derive(Clone, Debug)]
pub struct AgentBinary {
    pub path: PathBuf,
    pub release: AgentRelease,
}

impl AgentBinary {
    /// For commands that only observe and log in on machines (staging a rotated masterkey):
    /// no agent is known, and installing one with it fails.
    pub fn none() -> AgentBinary {
        AgentBinary {
            path: PathBuf::new(),
            release: AgentRelease {
                version: String::new(),
                sha256: String::new(),
            },
        }
    }

    pub fn locate() -> Result<AgentBinary> {
        let path = match std::env::var_os("ORBITER_NODE_AGENT") {
            Some(p) => PathBuf::from(p),
            None => std::env::current_exe()
                .context("cannot find the running program")?
                .with_file_name("node-agent"),
        };
        if !path.is_file() {
            bail!(
                "node-agent binary not found at {}\n  hint: build it (cargo build -p node-agent) next to orbctl, or set ORBITER_NODE_AGENT",
                path.display()
            );
        }
        let bytes =
            std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
        let sha256 = Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let out = std::process::Command::new(&path)
            .arg("--version")
            .output()
            .with_context(|| format!("cannot run {} --version", path.display()))?;
        let text = String::from_utf8_lossy(&out.stdout);
        let version = text
            .trim()
            .strip_prefix("node-agent ")
            .with_context(|| {
                format!(
                    "{} --version printed {text:?}, not `node-agent VERSION`",
                    path.display()
                )
            })?
            .to_owned();
        Ok(AgentBinary {
            path,
            release: AgentRelease { version, sha256 },
        })
    }
}
