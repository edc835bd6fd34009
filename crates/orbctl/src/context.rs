//! What every repository command needs: the orb config, the repository handle, who commits, and
//! reading the two files secrets depend on (`orbiter.yml`, `keyring.yml`) from a snapshot.

use crate::args::Global;
use anyhow::{Context as _, Result, anyhow};
use orb_model::{ORBITER_YML, Orb};
use orb_repo::{Author, HostKeyPolicy, OrbConfig, OrbRepo, RepoOptions, Snapshot};
use orb_secrets::{Keyring, Masterkey, SecretKey};
use std::io::IsTerminal;
use std::path::PathBuf;

pub struct Ctx {
    pub config_path: PathBuf,
    pub config: OrbConfig,
    pub repo: OrbRepo,
}

impl Ctx {
    /// Loads the orb config and opens (clones or fetches) its repository.
    pub fn open(global: &Global) -> Result<Ctx> {
        Self::open_as(global, Committer::Person)
    }

    pub fn open_as(global: &Global, who: Committer) -> Result<Ctx> {
        let config_path = OrbConfig::resolve_path(global.orbconfig.as_deref());
        let config = OrbConfig::load(&config_path)?;
        let author = match who {
            Committer::Person => author(),
            Committer::Orbiter => Author {
                name: "Orbiter".to_owned(),
                email: format!("orbiter@{}", config.orb_id()),
            },
        };
        let repo = open_repo_as(global, &config_path, &config, author)?;
        Ok(Ctx {
            config_path,
            config,
            repo,
        })
    }

    /// The reconciler over this Orb's repository. It re-reads this config (and a masterkey
    /// staged beside it) if the masterkey is rotated while it runs.
    pub fn engine(self) -> Result<orbiter::engine::Engine> {
        let masterkey = self.masterkey()?;
        let keys = orbiter::engine::keys::Keys::new(masterkey, Some(self.config_path));
        orbiter::engine::Engine::new(
            self.repo,
            keys,
            orbiter::agent_binary::AgentBinary::locate()?,
        )
    }

    pub fn masterkey(&self) -> Result<Masterkey> {
        Masterkey::new(self.config.masterkey.expose().to_owned())
            .with_context(|| format!("masterkey in {}", self.config_path.display()))
    }
}

/// Who commits: people's commands commit as the person, the reconciler as `Orbiter`, so the
/// history tells them apart.
pub enum Committer {
    Person,
    Orbiter,
}

pub fn open_repo(
    global: &Global,
    config_path: &std::path::Path,
    config: &OrbConfig,
) -> Result<OrbRepo> {
    open_repo_as(global, config_path, config, author())
}

fn open_repo_as(
    global: &Global,
    config_path: &std::path::Path,
    config: &OrbConfig,
    author: Author,
) -> Result<OrbRepo> {
    Ok(OrbRepo::open(
        config,
        repo_options(global, config_path, author),
    )?)
}

/// Where the clone and known_hosts live (beside the config) and how a new host key is met.
pub fn repo_options(global: &Global, config_path: &std::path::Path, author: Author) -> RepoOptions {
    let mut opts = RepoOptions::beside_config(config_path, author);
    opts.host_key_policy = match &global.accept_host_key {
        Some(fp) => HostKeyPolicy::Accept(fp.clone()),
        None if std::io::stdin().is_terminal() => HostKeyPolicy::Prompt,
        None => HostKeyPolicy::KnownOnly,
    };
    opts
}

/// The person's git identity when they have one, else `user@host`: commits say who changed what.
pub fn author() -> Author {
    let from_git = |key: &str| {
        std::process::Command::new("git")
            .args(["config", "--get", key])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .filter(|s| !s.is_empty())
    };
    let user = std::env::var("USER").unwrap_or_else(|_| "orbctl".to_owned());
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "localhost".to_owned());
    Author {
        name: std::env::var("GIT_AUTHOR_NAME")
            .ok()
            .or_else(|| from_git("user.name"))
            .unwrap_or_else(|| format!("{user} via orbctl")),
        email: std::env::var("GIT_AUTHOR_EMAIL")
            .ok()
            .or_else(|| from_git("user.email"))
            .unwrap_or_else(|| format!("{user}@{host}")),
    }
}

/// `orbiter.yml` of the snapshot, parsed and validated.
pub fn read_orb(snap: &Snapshot<'_>) -> Result<Orb> {
    let text = read_text(snap, ORBITER_YML)?.ok_or_else(|| {
        anyhow!("the repository has no {ORBITER_YML} yet\n  hint: create one with `orbctl file edit {ORBITER_YML}` (examples/ has a start)")
    })?;
    Ok(Orb::parse(&text, ORBITER_YML)?)
}

pub fn read_text(snap: &Snapshot<'_>, path: &str) -> Result<Option<String>> {
    match snap.read(path)? {
        None => Ok(None),
        Some(bytes) => String::from_utf8(bytes)
            .map(Some)
            .map_err(|_| anyhow!("{path} in the repository is not UTF-8 text")),
    }
}

pub fn read_keyring(snap: &Snapshot<'_>) -> Result<Option<Keyring>> {
    read_text(snap, Keyring::FILE)?
        .map(|t| Keyring::from_yaml(&t, Keyring::FILE).map_err(Into::into))
        .transpose()
}

/// Unlocks the snapshot's keyring, remembering the derived key: argon2id is deliberately slow and
/// an update may re-derive its change several times after lost push races.
pub struct KeyCache {
    masterkey: Masterkey,
    last: Option<(Keyring, SecretKey)>,
}

impl KeyCache {
    pub fn new(masterkey: Masterkey) -> Self {
        KeyCache {
            masterkey,
            last: None,
        }
    }

    pub fn key_for(&mut self, snap: &Snapshot<'_>) -> Result<SecretKey> {
        let keyring = read_keyring(snap)?.ok_or_else(|| {
            anyhow!("the repository has no {} (the salt secrets are derived with)\n  hint: run `orbctl configure --repourl URL` once to set the Orb up", Keyring::FILE)
        })?;
        if let Some((k, key)) = &self.last
            && *k == keyring
        {
            return Ok(key.clone());
        }
        let key = keyring.unlock(&self.masterkey)?;
        self.last = Some((keyring, key.clone()));
        Ok(key)
    }
}

/// Whether standard input is a person at a terminal (then we may ask questions).
pub fn interactive() -> bool {
    std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
}
