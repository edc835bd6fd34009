//! inotify on the desired file's directory (not the file: editors and Orbiter replace it by
//! renaming a new file into place, which a watch on the old inode would miss).

use crate::error::{Error, Result};
use std::ffi::{CString, OsString};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;

/// Events that mean "the file now has new complete content, or is gone". IN_CREATE and
/// IN_MODIFY are left out on purpose: they fire while a writer is half-way.
const MASK: u32 = libc::IN_CLOSE_WRITE
    | libc::IN_MOVED_TO
    | libc::IN_DELETE
    | libc::IN_MOVED_FROM
    | libc::IN_DELETE_SELF
    | libc::IN_MOVE_SELF;

pub struct Inotify {
    fd: OwnedFd,
}

/// One event: its mask and the entry name (if about an entry of the directory).
pub struct Event {
    pub mask: u32,
    pub name: Option<OsString>,
}

impl Inotify {
    pub fn new() -> Result<Inotify> {
        // SAFETY: plain syscall; the returned fd is owned below.
        let fd = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
        if fd < 0 {
            return Err(Error::io("inotify_init1", &std::io::Error::last_os_error()));
        }
        // SAFETY: fd is a fresh descriptor we exclusively own.
        Ok(Inotify {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    pub fn watch_dir(&self, dir: &Path) -> Result<()> {
        let c = CString::new(dir.as_os_str().as_bytes())
            .map_err(|_| Error::new(format!("{} contains a NUL byte", dir.display())))?;
        // SAFETY: valid fd and NUL-terminated path.
        let wd = unsafe { libc::inotify_add_watch(self.fd.as_raw_fd(), c.as_ptr(), MASK) };
        if wd < 0 {
            return Err(Error::io(
                format!("cannot watch {}", dir.display()),
                &std::io::Error::last_os_error(),
            ));
        }
        Ok(())
    }

    pub fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Reads all queued events (non-blocking).
    pub fn read_events(&self) -> Result<Vec<Event>> {
        let mut events = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            // SAFETY: reading into a buffer of the given length.
            let n = unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if n < 0 {
                let e = std::io::Error::last_os_error();
                return match e.kind() {
                    std::io::ErrorKind::WouldBlock => Ok(events),
                    std::io::ErrorKind::Interrupted => continue,
                    _ => Err(Error::io("reading inotify events", &e)),
                };
            }
            let n = n as usize;
            let header = std::mem::size_of::<libc::inotify_event>();
            let mut off = 0;
            while off + header <= n {
                // SAFETY: the kernel wrote a complete inotify_event header at `off`;
                // read_unaligned copes with the byte buffer's alignment.
                let ev: libc::inotify_event =
                    unsafe { std::ptr::read_unaligned(buf.as_ptr().add(off).cast()) };
                let name_len = ev.len as usize;
                let name_bytes = &buf[off + header..(off + header + name_len).min(n)];
                let end = name_bytes
                    .iter()
                    .position(|b| *b == 0)
                    .unwrap_or(name_bytes.len());
                let name = if end > 0 {
                    Some(OsString::from_vec(name_bytes[..end].to_vec()))
                } else {
                    None
                };
                events.push(Event {
                    mask: ev.mask,
                    name,
                });
                off += header + name_len;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sees_rename_into_place_and_close_write() {
        let tmp = tempfile::tempdir().unwrap();
        let ino = Inotify::new().unwrap();
        ino.watch_dir(tmp.path()).unwrap();
        std::fs::write(tmp.path().join(".new"), "x").unwrap();
        std::fs::rename(tmp.path().join(".new"), tmp.path().join("desired.yml")).unwrap();
        let ev = ino.read_events().unwrap();
        assert!(ev.iter().any(|e| e.mask & libc::IN_MOVED_TO != 0
            && e.name.as_deref() == Some("desired.yml".as_ref())));
        assert!(
            ev.iter().any(|e| e.mask & libc::IN_CLOSE_WRITE != 0
                && e.name.as_deref() == Some(".new".as_ref()))
        );
        assert!(ino.read_events().unwrap().is_empty());
    }
}
