//! The pool's private directory (0700): private keys (0600), per-target known_hosts files,
//! ControlMaster sockets and master logs.
//!
//! Its name carries our PID so that a later pool can remove what a killed process left behind
//! (private keys must not outlive the Orbiter on disk). Its path stays short because a unix
//! socket path is limited to 108 bytes and ssh adds a 17-byte suffix while creating one.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use tempfile::TempDir;

use super::SshError;

const PREFIX: &str = "orbiter-ssh-";
/// Longest parent directory we accept; longer (or odd) ones fall back to /tmp.
const MAX_BASE_LEN: usize = 40;

pub(super) struct Workdir {
    dir: TempDir,
}

impl Workdir {
    /// Creates the directory under `$XDG_RUNTIME_DIR` (a tmpfs) when usable, else the temp dir,
    /// after removing directories of ours whose process is gone.
    pub(super) fn create() -> Result<Workdir, SshError> {
        let base = base_dir();
        remove_stale(&base);
        let dir = tempfile::Builder::new()
            .prefix(&format!("{PREFIX}{}-", std::process::id()))
            .rand_bytes(6)
            .permissions(fs::Permissions::from_mode(0o700))
            .tempdir_in(&base)
            .map_err(|e| {
                SshError::Io(format!(
                    "cannot create a private SSH directory in {}: {e}",
                    base.display()
                ))
            })?;
        Ok(Workdir { dir })
    }

    pub(super) fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes `content` to `name` with mode 0600 unless it exists (names are content-addressed,
    /// so an existing file already holds the same bytes). Atomic: readers never see half a key.
    pub(super) fn write_private(&self, name: &str, content: &[u8]) -> Result<PathBuf, SshError> {
        let path = self.dir.path().join(name);
        if path.exists() {
            return Ok(path);
        }
        let tmp = self.dir.path().join(format!(
            ".{name}.{}.{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let io = |e: std::io::Error| SshError::Io(format!("cannot write {}: {e}", path.display()));
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io)?;
        f.write_all(content).map_err(io)?;
        drop(f);
        fs::rename(&tmp, &path).map_err(io)?;
        Ok(path)
    }
}

impl Drop for Workdir {
    /// Overwrites private keys before the directory goes, so their bytes do not linger in
    /// freed blocks of a disk-backed /tmp.
    fn drop(&mut self) {
        if let Ok(entries) = fs::read_dir(self.dir.path()) {
            for e in entries.flatten() {
                if e.file_name().to_string_lossy().starts_with("k-") {
                    scrub(&e.path());
                }
            }
        }
    }
}

/// Zeroes a file in place (best effort).
pub(super) fn scrub(path: &Path) {
    if let Ok(len) = fs::metadata(path).map(|m| m.len())
        && let Ok(mut f) = fs::OpenOptions::new().write(true).open(path)
    {
        let _ = f.write_all(&vec![0u8; len as usize]);
        let _ = f.sync_all();
    }
}

fn base_dir() -> PathBuf {
    let usable = |p: &Path| {
        let s = p.to_string_lossy();
        p.is_absolute() && p.is_dir() && s.len() <= MAX_BASE_LEN && !s.contains(char::is_whitespace)
    };
    let candidates = [
        std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from),
        Some(std::env::temp_dir()),
    ];
    candidates
        .into_iter()
        .flatten()
        .find(|p| usable(p))
        .unwrap_or_else(|| PathBuf::from("/tmp"))
}

/// Removes `orbiter-ssh-PID-*` directories we own whose PID no longer runs (a killed Orbiter).
fn remove_stale(base: &Path) {
    let Ok(entries) = fs::read_dir(base) else {
        return;
    };
    // SAFETY: geteuid has no preconditions.
    let uid = unsafe { libc::geteuid() };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.split('-').next())
            .and_then(|p| p.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(meta) = fs::symlink_metadata(e.path()) else {
            continue;
        };
        if meta.is_dir() && meta.uid() == uid && pid > 0 && !alive(pid) {
            let path = e.path();
            if let Ok(keys) = fs::read_dir(&path) {
                for k in keys.flatten() {
                    if k.file_name().to_string_lossy().starts_with("k-") {
                        scrub(&k.path());
                    }
                }
            }
            let _ = fs::remove_dir_all(&path);
        }
    }
}

fn alive(pid: i32) -> bool {
    // SAFETY: kill with signal 0 only checks whether the process exists.
    let r = unsafe { libc::kill(pid, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_dir_and_files_are_owner_only_and_scrubbed_on_drop() {
        let w = Workdir::create().unwrap();
        let mode = fs::metadata(w.path()).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        let p = w.write_private("k-test", b"secret").unwrap();
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        // Content-addressed: a second write keeps the first file.
        assert_eq!(w.write_private("k-test", b"other").unwrap(), p);
        assert_eq!(fs::read(&p).unwrap(), b"secret");
        let dir = w.path().to_owned();
        drop(w);
        assert!(!dir.exists());
    }

    #[test]
    fn stale_directories_of_dead_processes_are_removed() {
        let base = tempfile::tempdir().unwrap();
        // PID 0x7fff_fff0 does not exist (pid_max is at most 2^22).
        let dead = base.path().join(format!("{PREFIX}2147483632-abcdef"));
        let live = base
            .path()
            .join(format!("{PREFIX}{}-abcdef", std::process::id()));
        let other = base.path().join("unrelated");
        for d in [&dead, &live, &other] {
            fs::create_dir(d).unwrap();
            fs::write(d.join("k-x"), b"key").unwrap();
        }
        remove_stale(base.path());
        assert!(!dead.exists());
        assert!(live.exists() && other.exists());
    }
}
