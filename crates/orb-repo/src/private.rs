//! A private (0700) scratch directory for one repository handle: git's `HOME`, the deploy
//! key file, temporary index files. Removed, key wiped first, when the handle is dropped.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use tempfile::TempDir;

use crate::error::RepoError;

pub(crate) struct PrivateDir {
    dir: TempDir,
    key: Option<PathBuf>,
    counter: AtomicU64,
}

impl PrivateDir {
    pub(crate) fn new() -> Result<PrivateDir, RepoError> {
        let dir = tempfile::Builder::new()
            .prefix("orb-repo-")
            .tempdir()
            .map_err(|e| RepoError::io("cannot create a private temp directory", e))?;
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o700))
            .map_err(|e| RepoError::io("cannot chmod the private temp directory", e))?;
        let home = dir.path().join("home");
        fs::create_dir(&home).map_err(|e| RepoError::io("cannot create private HOME", e))?;
        Ok(PrivateDir {
            dir,
            key: None,
            counter: AtomicU64::new(0),
        })
    }

    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The `HOME` git and ssh see, so no user configuration leaks in.
    pub(crate) fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    /// Writes the deploy key to a new 0600 file (never readable by anyone else, not even briefly).
    pub(crate) fn write_key(&mut self, key: &str) -> Result<PathBuf, RepoError> {
        let path = self.dir.path().join("repokey");
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| RepoError::io("cannot create the repo key file", e))?;
        // ssh rejects a key without its final newline.
        let trailing = if key.ends_with('\n') { "" } else { "\n" };
        f.write_all(key.as_bytes())
            .and_then(|()| f.write_all(trailing.as_bytes()))
            .map_err(|e| RepoError::io("cannot write the repo key file", e))?;
        self.key = Some(path.clone());
        Ok(path)
    }

    /// A fresh, not yet existing path in the private directory.
    pub(crate) fn scratch_path(&self, stem: &str) -> PathBuf {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        self.dir.path().join(format!("{stem}-{n}"))
    }
}

impl Drop for PrivateDir {
    fn drop(&mut self) {
        // Overwrite the key before the directory is unlinked, so it does not linger on disk.
        if let Some(key) = &self.key
            && let Ok(len) = fs::metadata(key).map(|m| m.len())
            && let Ok(mut f) = fs::OpenOptions::new().write(true).open(key)
        {
            let _ = f.write_all(&vec![0u8; usize::try_from(len).unwrap_or(0)]);
            let _ = f.sync_all();
        }
    }
}
