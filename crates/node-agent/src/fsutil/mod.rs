//! Small filesystem primitives: crash-safe replacement of files (temp + fsync + rename),
//! and `lstat` reduced to what items compare (kind, mode, owner).
//!
//! The functions here take host paths and are for the agent's own files (its state
//! directory, the desired and current documents) and for read-only facts of the system
//! (`/etc/os-release`, `/etc/passwd`, `/proc/stat`), where following a root-owned link is
//! intended. Paths the agent *manages* go through [`nofollow`] (via `Host::read`,
//! `Host::write`, …), which never follows a link. Neither reads a FIFO, socket or device.

pub mod nofollow;

use crate::error::{Error, Result};
use sha2::{Digest, Sha256};
use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};

/// What kind of thing sits at a path (symlinks are not followed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
    Symlink,
    Other,
}

/// The parts of `lstat` that items manage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    pub kind: Kind,
    /// Permission bits including setuid/setgid/sticky (`& 0o7777`).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

/// `lstat(path)`, `None` when nothing is there.
pub fn stat(path: &Path) -> Result<Option<Meta>> {
    match fs::symlink_metadata(path) {
        Ok(m) => Ok(Some(Meta {
            kind: kind_of_mode(m.mode()),
            mode: m.mode() & 0o7777,
            uid: m.uid(),
            gid: m.gid(),
        })),
        Err(e) if e.kind() == ErrorKind::NotFound || e.raw_os_error() == Some(libc::ENOTDIR) => {
            Ok(None)
        }
        Err(e) => Err(Error::io(format!("cannot inspect {}", path.display()), &e)),
    }
}

/// Reads a regular file, `None` when it does not exist. Opened non-blocking and checked with
/// `fstat` before reading: a FIFO, socket or device is an error, never read (a FIFO would
/// hang the agent).
pub fn read_opt(path: &Path) -> Result<Option<Vec<u8>>> {
    let ctx = || format!("cannot read {}", path.display());
    let mut f = match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == ErrorKind::NotFound || e.raw_os_error() == Some(libc::ENOTDIR) => {
            return Ok(None);
        }
        Err(e) => return Err(Error::io(ctx(), &e)),
    };
    let m = f.metadata().map_err(|e| Error::io(ctx(), &e))?;
    if !m.file_type().is_file() {
        return Err(Error::new(format!(
            "{} is a {}, not a regular file; not read",
            path.display(),
            kind_name(kind_of_mode(m.mode()))
        )));
    }
    let mut buf = Vec::with_capacity(m.len() as usize);
    f.read_to_end(&mut buf).map_err(|e| Error::io(ctx(), &e))?;
    Ok(Some(buf))
}

/// The [`Kind`] of an `st_mode`.
pub fn kind_of_mode(mode: u32) -> Kind {
    match mode & libc::S_IFMT {
        libc::S_IFREG => Kind::File,
        libc::S_IFDIR => Kind::Dir,
        libc::S_IFLNK => Kind::Symlink,
        _ => Kind::Other,
    }
}

/// How a report or an error names a kind ("special file" for FIFOs, sockets and devices).
pub fn kind_name(k: Kind) -> &'static str {
    match k {
        Kind::File => "file",
        Kind::Dir => "directory",
        Kind::Symlink => "symlink",
        Kind::Other => "special file",
    }
}

/// Reads a text file, `None` when it does not exist (invalid UTF-8 is replaced, not an error:
/// the caller compares or greps, and a stray byte must not hide the rest of the file).
pub fn read_text_opt(path: &Path) -> Result<Option<String>> {
    Ok(read_opt(path)?.map(lossy))
}

/// Text from bytes, invalid UTF-8 replaced.
pub fn lossy(b: Vec<u8>) -> String {
    String::from_utf8(b).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// Creates `dir` and missing parents with `mode` (root-owned as created by the agent).
pub fn create_dirs(dir: &Path, mode: u32) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent() {
        create_dirs(parent, 0o755)?;
    }
    match fs::create_dir(dir) {
        Ok(()) => fs::set_permissions(dir, fs::Permissions::from_mode(mode))
            .map_err(|e| Error::io(format!("cannot set mode of {}", dir.display()), &e)),
        Err(e) if e.kind() == ErrorKind::AlreadyExists && dir.is_dir() => Ok(()),
        Err(e) => Err(Error::io(
            format!("cannot create directory {}", dir.display()),
            &e,
        )),
    }
}

/// Replaces `path` so that readers see either the old or the new content, never a mix, even
/// if the agent dies half-way: write a temp file next to it, set mode/owner, fsync, rename,
/// fsync the directory. Missing parent directories are created (0755).
pub fn write_atomic(
    path: &Path,
    content: &[u8],
    mode: u32,
    owner: Option<(u32, u32)>,
) -> Result<()> {
    static SEQ: AtomicU32 = AtomicU32::new(0);
    let dir = path
        .parent()
        .ok_or_else(|| Error::new(format!("{} has no parent directory", path.display())))?;
    create_dirs(dir, 0o755)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(
        ".{name}.node-agent-{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    let result = (|| -> Result<()> {
        let ctx = |what: &str| format!("cannot {what} {}", tmp.display());
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| Error::io(ctx("create"), &e))?;
        f.write_all(content)
            .map_err(|e| Error::io(ctx("write"), &e))?;
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::fchown(&f, Some(uid), Some(gid))
                .map_err(|e| Error::io(ctx("chown"), &e))?;
        }
        // After chown: chown clears setuid/setgid bits.
        f.set_permissions(fs::Permissions::from_mode(mode))
            .map_err(|e| Error::io(ctx("chmod"), &e))?;
        f.sync_all().map_err(|e| Error::io(ctx("fsync"), &e))?;
        fs::rename(&tmp, path).map_err(|e| {
            Error::io(
                format!("cannot rename {} to {}", tmp.display(), path.display()),
                &e,
            )
        })?;
        sync_dir(dir);
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Removes a file; `false` when it was not there.
pub fn remove_opt(path: &Path) -> Result<bool> {
    match fs::remove_file(path) {
        Ok(()) => {
            if let Some(dir) = path.parent() {
                sync_dir(dir);
            }
            Ok(true)
        }
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
        Err(e) => Err(Error::io(format!("cannot remove {}", path.display()), &e)),
    }
}

/// Best effort: a failed directory fsync only weakens durability of an already-renamed file.
fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Lower-case hex SHA-256, used to report file content without revealing it.
pub fn sha256_hex(data: &[u8]) -> String {
    let digest = Sha256::digest(data);
    let mut s = String::with_capacity(64);
    for b in digest.iter() {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_atomic_creates_parents_and_sets_mode() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("a/b/c.conf");
        write_atomic(&p, b"one", 0o640, None).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"one");
        let m = stat(&p).unwrap().unwrap();
        assert_eq!((m.kind, m.mode), (Kind::File, 0o640));
        write_atomic(&p, b"two", 0o600, None).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(stat(&p).unwrap().unwrap().mode, 0o600);
        let leftovers: Vec<_> = fs::read_dir(p.parent().unwrap()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "temp files left behind");
    }

    #[test]
    fn missing_paths_are_none() {
        let tmp = tempfile::tempdir().unwrap();
        assert!(stat(&tmp.path().join("nope")).unwrap().is_none());
        assert!(read_opt(&tmp.path().join("nope/deeper")).unwrap().is_none());
        assert!(!remove_opt(&tmp.path().join("nope")).unwrap());
    }

    #[test]
    fn special_files_are_not_read() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("fifo");
        let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid C string.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        // Would block forever if it were opened for reading without O_NONBLOCK.
        let e = read_opt(&p).unwrap_err();
        assert!(
            e.message()
                .ends_with("fifo is a special file, not a regular file; not read"),
            "{e}"
        );
        assert!(
            read_opt(tmp.path())
                .unwrap_err()
                .message()
                .contains("is a directory")
        );
    }

    #[test]
    fn sha256_is_hex() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
