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

/// How long a process waits for the clone lock before it says who to look for.
pub(crate) const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(180);

impl FileLock {
    /// Waits (at most [`LOCK_WAIT`]) until this process holds the exclusive lock on `path`
    /// (created if missing).
    pub(crate) fn acquire(path: &Path) -> Result<FileLock, RepoError> {
        Self::acquire_within(path, LOCK_WAIT)
    }

    pub(crate) fn acquire_within(
        path: &Path,
        wait: std::time::Duration,
    ) -> Result<FileLock, RepoError> {
        let started = std::time::Instant::now();
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
            let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
            if rc == 0 {
                return Ok(FileLock { _file: file });
            }
            let err = std::io::Error::last_os_error();
            match err.raw_os_error() {
                Some(libc::EWOULDBLOCK) | Some(libc::EINTR) => {}
                _ => {
                    return Err(RepoError::io(
                        format!("cannot lock {}", path.display()),
                        err,
                    ));
                }
            }
            if started.elapsed() >= wait {
                return Err(RepoError::Locked {
                    path: path.to_owned(),
                    waited: wait,
                });
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waiting_for_a_held_lock_is_bounded_and_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("orb.lock");
        let held = FileLock::acquire(&path).unwrap();
        let started = std::time::Instant::now();
        let e = FileLock::acquire_within(&path, std::time::Duration::from_millis(300))
            .err()
            .expect("the lock is held");
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
        assert!(
            e.to_string().contains("orb.lock") && e.to_string().contains("held"),
            "{e}"
        );
        drop(held);
        assert!(FileLock::acquire_within(&path, std::time::Duration::from_millis(300)).is_ok());
    }
}
