//! On-disk state of groups and machines (JSON under the state root), so that the CLI, Orbiter
//! restarts and `down` find everything a group owns.

use crate::Error;
use crate::subnet::Net4;
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

pub(crate) const STATE_VERSION: u32 = 1;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct GroupRecord {
    pub version: u32,
    pub name: String,
    pub subnet: Net4,
    pub bridge: String,
    pub bridge_ip: Ipv4Addr,
    pub net_admin: bool,
    /// authorized_keys line for user orbiter on every machine (a public key, not a secret).
    pub pubkey: String,
    /// Root filesystem every machine overlays (pinned at `up`, so a rebuilt image never
    /// changes the lower layer under running machines).
    pub base_rootfs: PathBuf,
    pub apt_port: u16,
    pub git_port: Option<u16>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct MachineRecord {
    pub id: String,
    pub hostname: String,
    pub ip: Ipv4Addr,
    pub netns: String,
    pub veth: String,
    pub nspawn_name: String,
}

/// Paths of one group's state directory.
#[derive(Clone, Debug)]
pub(crate) struct GroupPaths {
    pub root: PathBuf,
}

impl GroupPaths {
    pub fn state_file(&self) -> PathBuf {
        self.root.join("group.json")
    }
    pub fn lock(&self) -> PathBuf {
        self.root.join("lock")
    }
    pub fn machines(&self) -> PathBuf {
        self.root.join("machines")
    }
    pub fn machine(&self, id: &str) -> MachinePaths {
        MachinePaths {
            root: self.machines().join(id),
        }
    }
    pub fn repo(&self) -> PathBuf {
        self.root.join("apt-repo")
    }
    pub fn http_pid(&self) -> PathBuf {
        self.root.join("http.pid")
    }
    pub fn http_log(&self) -> PathBuf {
        self.root.join("http.log")
    }
    pub fn git(&self) -> PathBuf {
        self.root.join("git")
    }
}

#[derive(Clone, Debug)]
pub(crate) struct MachinePaths {
    pub root: PathBuf,
}

impl MachinePaths {
    pub fn state_file(&self) -> PathBuf {
        self.root.join("machine.json")
    }
    pub fn upper(&self) -> PathBuf {
        self.root.join("upper")
    }
    pub fn work(&self) -> PathBuf {
        self.root.join("work")
    }
    pub fn rootfs(&self) -> PathBuf {
        self.root.join("root")
    }
    pub fn supervisor_pid(&self) -> PathBuf {
        self.root.join("supervisor.pid")
    }
    pub fn console_log(&self) -> PathBuf {
        self.root.join("console.log")
    }
    pub fn known_hosts(&self) -> PathBuf {
        self.root.join("known_hosts")
    }
}

pub(crate) fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T, Error> {
    let data = std::fs::read(path).map_err(Error::io("read", path))?;
    serde_json::from_slice(&data).map_err(|e| Error::State {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// Writes via a temporary file and rename, so readers never see half a file.
pub(crate) fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), Error> {
    let data = serde_json::to_vec_pretty(value).expect("state types serialize");
    write_atomic(path, &data)
}

pub(crate) fn write_atomic(path: &Path, data: &[u8]) -> Result<(), Error> {
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    std::fs::write(&tmp, data).map_err(Error::io("write", &tmp))?;
    std::fs::rename(&tmp, path).map_err(Error::io("rename into place", path))
}
