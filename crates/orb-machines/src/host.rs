//! The host: privilege and tool checks, and where state and caches live.

use crate::Error;
use crate::cmd::find_in;
use crate::image::{self, BaseImage};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};

/// Default runtime state (pids, namespaces, overlays, per-group files).
pub const STATE_ROOT: &str = "/run/orb-machines";
/// Default cache (base image, downloaded packages, apt lists), kept across runs.
pub const CACHE_ROOT: &str = "/var/cache/orb-machines";

/// Tools every operation needs, with the Debian package that ships each.
pub(crate) const REQUIRED_TOOLS: &[(&str, &str)] = &[
    ("debootstrap", "debootstrap"),
    ("systemd-nspawn", "systemd-container"),
    ("ip", "iproute2"),
    ("nsenter", "util-linux"),
    ("setsid", "util-linux"),
    ("mount", "mount"),
    ("umount", "mount"),
    ("chroot", "coreutils"),
    ("ssh", "openssh-client"),
    ("ssh-keygen", "openssh-client"),
];

/// A host that can run machines: root, with the tools in place.
#[derive(Clone, Debug)]
pub struct Host {
    state_root: PathBuf,
    cache_root: PathBuf,
}

impl Host {
    /// Checks root and the required tools; uses [`STATE_ROOT`] and [`CACHE_ROOT`].
    pub fn new() -> Result<Host, Error> {
        Host::with_dirs(STATE_ROOT, CACHE_ROOT)
    }

    /// Like [`Host::new`] with other directories (e.g. a throwaway cache for benchmarks).
    pub fn with_dirs(
        state_root: impl Into<PathBuf>,
        cache_root: impl Into<PathBuf>,
    ) -> Result<Host, Error> {
        // SAFETY: geteuid cannot fail and has no preconditions.
        let euid = unsafe { libc::geteuid() };
        if euid != 0 {
            return Err(Error::NotRoot { euid });
        }
        let mut path = std::env::var_os("PATH").unwrap_or_default();
        path.push(":/usr/local/sbin:/usr/sbin:/sbin");
        check_tools(&path)?;
        let host = Host {
            state_root: state_root.into(),
            cache_root: cache_root.into(),
        };
        for p in [&host.state_root, &host.cache_root] {
            let s = p.to_string_lossy();
            // Both end up in overlay mount options and shell-free argv; these characters break mount options.
            if !p.is_absolute() || s.contains([',', ':', '\n', ' ']) {
                return Err(Error::InvalidName {
                    what: "directory",
                    value: s.into_owned(),
                    hint: "use an absolute path without ',', ':' or spaces",
                });
            }
        }
        for d in [host.groups_dir(), host.cache_root.clone()] {
            std::fs::create_dir_all(&d).map_err(Error::io("create directory", &d))?;
        }
        Ok(host)
    }

    /// The cached base image, built (a few minutes) when missing or outdated.
    pub fn base_image(&self) -> Result<BaseImage, Error> {
        image::ensure(&self.cache_root)
    }

    pub fn state_root(&self) -> &Path {
        &self.state_root
    }

    pub fn cache_root(&self) -> &Path {
        &self.cache_root
    }

    pub(crate) fn groups_dir(&self) -> PathBuf {
        self.state_root.join("groups")
    }

    pub(crate) fn global_lock(&self) -> PathBuf {
        self.state_root.join("groups.lock")
    }

    /// Names of all groups with state on this host.
    pub fn group_names(&self) -> Result<Vec<String>, Error> {
        let dir = self.groups_dir();
        let mut v: Vec<String> = std::fs::read_dir(&dir)
            .map_err(Error::io("read", &dir))?
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .collect();
        v.sort();
        Ok(v)
    }
}

/// The first required tool missing from `path_var`, as an error naming its package.
pub(crate) fn check_tools(path_var: &OsStr) -> Result<(), Error> {
    for &(tool, package) in REQUIRED_TOOLS {
        if find_in(path_var, tool).is_none() {
            return Err(Error::MissingTool { tool, package });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn missing_tools_name_their_package() {
        let dir = tempfile::tempdir().unwrap();
        let e = check_tools(dir.path().as_os_str()).unwrap_err().to_string();
        assert!(
            e.contains("`debootstrap` not found") && e.contains("apt-get install debootstrap"),
            "{e}"
        );

        let fake = dir.path().join("debootstrap");
        std::fs::write(&fake, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
        let e = check_tools(dir.path().as_os_str()).unwrap_err().to_string();
        assert!(
            e.contains("`systemd-nspawn` not found") && e.contains("systemd-container"),
            "{e}"
        );
    }
}
