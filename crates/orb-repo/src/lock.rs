//! An exclusive `flock` that serializes processes working on the same persistent clone.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crate::error::RepoError;

/// Held while alive; the kernel releases it when the file is closed (also on crash).
pub(crate) struct FileLock {
    _file: File,
}

impl FileLock {
    /// Blocks until this process holds the exclusive lock on `path` (created if missing).
    pub(crate) fn acquire(path: &Path) -> Result<FileLock, RepoError> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)
            .map_err(|e| RepoError::io(format!("cannot open lock file {}", path.display()), e))?;
        loop {
            // SAFETY: flock(2) on a descriptor we own.
            let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
            if rc == 0 {
                return Ok(FileLock { _file: file });
            }
            let err = std::io::Error::last_os_error();
            if err.kind() != std::io::ErrorKind::Interrupted {
                return Err(RepoError::io(
                    format!("cannot lock {}", path.display()),
                    err,
                ));
            }
        }
    }
}
