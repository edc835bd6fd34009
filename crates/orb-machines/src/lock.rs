//! Advisory file locks (flock) so that concurrent processes neither build the base image twice
//! nor hand out the same subnet or address. The lock is released when the value is dropped.

use crate::Error;
use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::path::Path;

pub(crate) struct FileLock {
    _file: File,
}

impl FileLock {
    /// Blocks until the exclusive lock on `path` (created if missing) is held.
    pub(crate) fn exclusive(path: &Path) -> Result<FileLock, Error> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(Error::io("create directory", dir))?;
        }
        // Rust opens files with O_CLOEXEC, so detached children never inherit the lock.
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(Error::io("open lock file", path))?;
        loop {
            // SAFETY: flock on a file descriptor we own for the lifetime of `file`.
            let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
            if rc == 0 {
                return Ok(FileLock { _file: file });
            }
            let err = std::io::Error::last_os_error();
            if err.kind() != std::io::ErrorKind::Interrupted {
                return Err(Error::Io {
                    action: "lock",
                    path: path.to_path_buf(),
                    source: err,
                });
            }
        }
    }
}
