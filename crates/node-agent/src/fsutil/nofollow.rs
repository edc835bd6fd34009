//! Managed paths without following links. A managed path (`/etc/app/app.conf`) is resolved
//! below the agent's root one component at a time: every directory is opened relative to the
//! one before with `O_PATH|O_DIRECTORY|O_NOFOLLOW` (through `openat2` with
//! `RESOLVE_NO_SYMLINKS|RESOLVE_BENEATH|RESOLVE_NO_MAGICLINKS` where the kernel has it), and
//! checked with `fstat` on the descriptor that was opened:
//!
//! - a symlink anywhere among the directories is refused, naming the path and the component;
//! - a directory owned by someone other than root (or than the agent itself, which is root on
//!   a machine and the test user in unit tests), or writable by its group or others without
//!   the sticky bit, is refused unless the caller allows it ([`Parents::AnyOwner`], a `file`
//!   or `directory` item with `allow_unsafe_parents: true`): its owner could swap a link in.
//!
//! The last component is then only ever used relative to its directory's descriptor: it is
//! inspected with `fstatat(AT_SYMLINK_NOFOLLOW)`, read with `O_NOFOLLOW|O_NONBLOCK` after
//! `fstat` says it is a regular file (a FIFO, socket or device is never read, nor opened for
//! writing), replaced by a fresh temp file (`O_CREAT|O_EXCL|O_NOFOLLOW`, random name,
//! `fchown`/`fchmod` on its descriptor, fsync) renamed over it with `renameat` — a symlink
//! there is replaced, never written through — and chmod/chown go to a descriptor opened with
//! `O_NOFOLLOW`.

use super::{Kind, Meta, kind_name, kind_of_mode};
use crate::error::{Error, Result};
use std::ffi::{CStr, CString};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

/// The words every refusal to follow a link ends with.
pub const NEVER_FOLLOWS: &str = "refused (node-agent never follows links)";

/// Which owners the directories on a managed path may have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Parents {
    /// Root's (or the agent's own), and not writable by group or others unless sticky.
    #[default]
    RootOnly,
    /// Anyone's: the item says so (`allow_unsafe_parents: true`). Links are still refused.
    AnyOwner,
}

/// A managed path's last component and the directory that holds it, opened without
/// following links. Every operation is relative to that directory's descriptor.
pub struct Entry {
    dir: OwnedFd,
    name: CString,
    /// The path as the managed system sees it, for messages.
    path: String,
}

/// Where and how to resolve managed paths: the agent's root (opened as given, links and all:
/// the operator chose it, `/` on a machine; its own owner and mode are checked like every
/// directory below it) and a way to name an owner in errors.
pub struct Walk<'a> {
    pub root: &'a Path,
    pub parents: Parents,
    pub names: &'a dyn Fn(u32) -> String,
}

impl Walk<'_> {
    /// Resolves the directories of `abs` (absolute, no `.`/`..`). `None` when one of them does
    /// not exist, unless `create` gives the mode for creating missing ones (root-owned).
    pub fn entry(&self, abs: &str, create: Option<u32>) -> Result<Option<Entry>> {
        let (parents, last) = split(abs)?;
        let root_c = CString::new(self.root.as_os_str().as_bytes())
            .map_err(|_| Error::new(format!("{}: NUL in the root path", self.root.display())))?;
        // SAFETY: a valid C string; the result is checked.
        let root = sys_fd(unsafe {
            libc::open(
                root_c.as_ptr(),
                libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
            )
        })
        .map_err(|e| {
            Error::io(
                format!("{abs}: cannot open the root {}", self.root.display()),
                &e,
            )
        })?;
        self.check_dir(abs, "/", &root)?;
        let mut dir = root;
        let mut shown = String::new();
        for c in parents {
            shown.push('/');
            shown.push_str(c);
            let name = cstring(abs, c)?;
            let next = match open_dir_at(dir.as_raw_fd(), &name) {
                Ok(fd) => fd,
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => match create {
                    None => return Ok(None),
                    Some(mode) => {
                        mkdir_at(dir.as_raw_fd(), &name, mode).map_err(|e| {
                            Error::io(format!("cannot create directory {shown}"), &e)
                        })?;
                        open_dir_at(dir.as_raw_fd(), &name)
                            .map_err(|e| diagnose(dir.as_raw_fd(), &name, abs, &shown, e))?
                    }
                },
                Err(e) => return Err(diagnose(dir.as_raw_fd(), &name, abs, &shown, e)),
            };
            self.check_dir(abs, &shown, &next)?;
            dir = next;
        }
        Ok(Some(Entry {
            dir,
            name: cstring(abs, last)?,
            path: abs.to_owned(),
        }))
    }

    /// A directory on the way: refused when someone other than root could change what it holds.
    fn check_dir(&self, abs: &str, shown: &str, fd: &OwnedFd) -> Result<()> {
        let st = fstat(fd.as_raw_fd())
            .map_err(|e| Error::io(format!("{abs}: cannot inspect {shown}"), &e))?;
        if self.parents == Parents::AnyOwner {
            return Ok(());
        }
        let hint = "hint: make it root's and not writable by others, or set `allow_unsafe_parents: true` on the item if that is intended";
        if !trusted_uid(st.st_uid) {
            return Err(Error::new(format!(
                "{abs}: {shown} is owned by {} (uid {}), not root; refused: its owner could swap a link in; {hint}",
                (self.names)(st.st_uid),
                st.st_uid
            )));
        }
        let mode = st.st_mode & 0o7777;
        if mode & 0o022 != 0 && mode & 0o1000 == 0 {
            return Err(Error::new(format!(
                "{abs}: {shown} is writable by its group or others (mode {mode:04o}) without the sticky bit; refused; {hint}"
            )));
        }
        Ok(())
    }
}

impl Entry {
    pub fn path(&self) -> &str {
        &self.path
    }

    /// `lstat` of the last component; `None` when it does not exist.
    pub fn stat(&self) -> Result<Option<Meta>> {
        match fstatat_nofollow(self.dir.as_raw_fd(), &self.name) {
            Ok(st) => Ok(Some(meta(&st))),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
            Err(e) => Err(Error::io(format!("cannot inspect {}", self.path), &e)),
        }
    }

    /// Reads a regular file; `None` when nothing is there. A symlink, directory or special
    /// file is an error and is not opened.
    pub fn read(&self) -> Result<Option<Vec<u8>>> {
        let Some(m) = self.stat()? else {
            return Ok(None);
        };
        self.expect_kind(m.kind, &[Kind::File], "not read")?;
        let mut f = File::from(self.open_checked(libc::O_RDONLY, &[Kind::File], "not read")?);
        let mut buf = Vec::new();
        f.read_to_end(&mut buf)
            .map_err(|e| Error::io(format!("cannot read {}", self.path), &e))?;
        Ok(Some(buf))
    }

    /// Replaces the last component so that readers see the old or the new content, never a
    /// mix: a temp file with an unpredictable name in the same directory, owner and mode set
    /// on its descriptor, fsync, `renameat` over the name (a symlink there is replaced, not
    /// followed), fsync of the directory.
    pub fn write_atomic(&self, content: &[u8], mode: u32, owner: Option<(u32, u32)>) -> Result<()> {
        let (tmp, fd) = self.create_temp()?;
        let result = (|| -> Result<()> {
            let ctx = |what: &str| format!("cannot {what} the temp file for {}", self.path);
            let mut f = File::from(fd);
            f.write_all(content)
                .map_err(|e| Error::io(ctx("write"), &e))?;
            if let Some((uid, gid)) = owner {
                std::os::unix::fs::fchown(&f, Some(uid), Some(gid))
                    .map_err(|e| Error::io(ctx("chown"), &e))?;
            }
            // After chown: chown clears setuid/setgid bits.
            fchmod(&f, mode).map_err(|e| Error::io(ctx("chmod"), &e))?;
            f.sync_all().map_err(|e| Error::io(ctx("fsync"), &e))?;
            // SAFETY: valid descriptors and C strings; the result is checked.
            sys(unsafe {
                libc::renameat(
                    self.dir.as_raw_fd(),
                    tmp.as_ptr(),
                    self.dir.as_raw_fd(),
                    self.name.as_ptr(),
                )
            })
            .map_err(|e| Error::io(format!("cannot rename a temp file to {}", self.path), &e))?;
            self.sync_dir();
            Ok(())
        })();
        if result.is_err() {
            // SAFETY: valid descriptor and C string.
            unsafe { libc::unlinkat(self.dir.as_raw_fd(), tmp.as_ptr(), 0) };
        }
        result
    }

    /// Writes into an existing regular file in place (`/proc/sys` entries, which cannot be
    /// replaced); no link followed, nothing created, nothing but a regular file opened. The
    /// error is the system's (`EROFS`, `EACCES`, `ENOENT`, `ELOOP` for a link) so the caller
    /// can explain it.
    pub fn write_in_place(&self, content: &[u8]) -> io::Result<()> {
        let st = fstatat_nofollow(self.dir.as_raw_fd(), &self.name)?;
        let not_a_file = |mode: u32| {
            io::Error::other(match kind_of_mode(mode) {
                Kind::Symlink => format!("{} is a symlink; {NEVER_FOLLOWS}", self.path),
                k => format!("{} is a {}; not written", self.path, kind_name(k)),
            })
        };
        if kind_of_mode(st.st_mode) != Kind::File {
            return Err(not_a_file(st.st_mode));
        }
        let fd = self.open_nofollow(libc::O_WRONLY | libc::O_TRUNC)?;
        let st = fstat(fd.as_raw_fd())?;
        if kind_of_mode(st.st_mode) != Kind::File {
            return Err(not_a_file(st.st_mode));
        }
        File::from(fd).write_all(content)
    }

    /// chown then chmod of an existing file or directory, on a descriptor opened without
    /// following a link.
    pub fn set_meta(&self, mode: u32, uid: u32, gid: u32) -> Result<()> {
        let m = self
            .stat()?
            .ok_or_else(|| Error::new(format!("cannot chown {}: it does not exist", self.path)))?;
        let kinds = [Kind::File, Kind::Dir];
        self.expect_kind(m.kind, &kinds, "not changed")?;
        let f = File::from(self.open_checked(libc::O_RDONLY, &kinds, "not changed")?);
        let st = fstat(f.as_raw_fd())
            .map_err(|e| Error::io(format!("cannot inspect {}", self.path), &e))?;
        // A hard link shares its inode (and so mode and owner) with another path, maybe one
        // outside the managed tree that someone linked here; a rewrite would separate them.
        if kind_of_mode(st.st_mode) == Kind::File && st.st_nlink > 1 {
            return Err(Error::new(format!(
                "{} has {} hard links; not changing the mode or owner they share; hint: remove the other links, or the file so the agent writes a new one",
                self.path, st.st_nlink
            )));
        }
        std::os::unix::fs::fchown(&f, Some(uid), Some(gid))
            .map_err(|e| Error::io(format!("cannot chown {}", self.path), &e))?;
        fchmod(&f, mode).map_err(|e| Error::io(format!("cannot chmod {}", self.path), &e))
    }

    /// Creates the last component as a directory (`mode`, then exactly `mode` whatever the
    /// umask); `false` when a directory is there already. A link there is refused.
    pub fn mkdir(&self, mode: u32) -> Result<bool> {
        match mkdir_at(self.dir.as_raw_fd(), &self.name, mode) {
            Ok(true) => Ok(true),
            Ok(false) => {
                let kind = self.stat()?.map(|m| m.kind);
                self.expect_kind(kind.unwrap_or(Kind::Other), &[Kind::Dir], "not used")?;
                Ok(false)
            }
            Err(e) => Err(Error::io(
                format!("cannot create directory {}", self.path),
                &e,
            )),
        }
    }

    /// Removes the last component (a link itself, never its target); `false` when it was not there.
    pub fn remove(&self) -> Result<bool> {
        // SAFETY: valid descriptor and C string.
        match sys(unsafe { libc::unlinkat(self.dir.as_raw_fd(), self.name.as_ptr(), 0) }) {
            Ok(_) => {
                self.sync_dir();
                Ok(true)
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(false),
            Err(e) => Err(Error::io(format!("cannot remove {}", self.path), &e)),
        }
    }

    fn expect_kind(&self, kind: Kind, ok: &[Kind], what: &str) -> Result<()> {
        if ok.contains(&kind) {
            return Ok(());
        }
        Err(Error::new(match kind {
            Kind::Symlink => format!("{} is a symlink; {NEVER_FOLLOWS}", self.path),
            k => format!("{} is a {}; {what}", self.path, kind_name(k)),
        }))
    }

    /// Opens the last component with `O_NOFOLLOW|O_NONBLOCK|O_NOCTTY` (then clears
    /// `O_NONBLOCK`, which regular files ignore anyway).
    fn open_nofollow(&self, flags: libc::c_int) -> io::Result<OwnedFd> {
        let flags = flags | libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC;
        // SAFETY: valid descriptor and C string; the result is checked.
        let fd = sys_fd(unsafe { libc::openat(self.dir.as_raw_fd(), self.name.as_ptr(), flags) })?;
        // SAFETY: a valid descriptor.
        unsafe {
            let fl = libc::fcntl(fd.as_raw_fd(), libc::F_GETFL);
            if fl >= 0 {
                libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, fl & !libc::O_NONBLOCK);
            }
        }
        Ok(fd)
    }

    /// [`Entry::open_nofollow`], then `fstat` on the descriptor: it must (still) be of a kind in `ok`.
    fn open_checked(&self, flags: libc::c_int, ok: &[Kind], what: &str) -> Result<OwnedFd> {
        let fd = match self.open_nofollow(flags) {
            Ok(fd) => fd,
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
                return Err(Error::new(format!(
                    "{} is a symlink; {NEVER_FOLLOWS}",
                    self.path
                )));
            }
            Err(e) => return Err(Error::io(format!("cannot open {}", self.path), &e)),
        };
        let st = fstat(fd.as_raw_fd())
            .map_err(|e| Error::io(format!("cannot inspect {}", self.path), &e))?;
        self.expect_kind(kind_of_mode(st.st_mode), ok, what)?;
        Ok(fd)
    }

    /// A new 0600 file next to the last component, with an unpredictable name.
    fn create_temp(&self) -> Result<(CString, OwnedFd)> {
        let base = self.name.to_string_lossy();
        // Keep the name within NAME_MAX (255) whatever the length of the target's name.
        let base: String = base.chars().take(200).collect();
        let mut last = None;
        for _ in 0..8 {
            let tmp = CString::new(format!(".{base}.node-agent-{}", random_hex()))
                .map_err(|_| Error::new(format!("{}: NUL in the name", self.path)))?;
            let flags =
                libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC;
            // SAFETY: valid descriptor and C string; the result is checked.
            match sys_fd(unsafe {
                libc::openat(
                    self.dir.as_raw_fd(),
                    tmp.as_ptr(),
                    flags,
                    0o600 as libc::c_uint,
                )
            }) {
                Ok(fd) => return Ok((tmp, fd)),
                Err(e) if e.raw_os_error() == Some(libc::EEXIST) => last = Some(e),
                Err(e) => {
                    return Err(Error::io(
                        format!("cannot create a temp file next to {}", self.path),
                        &e,
                    ));
                }
            }
        }
        let e = last.unwrap_or_else(|| io::Error::from_raw_os_error(libc::EEXIST));
        Err(Error::io(
            format!("cannot create a temp file next to {}", self.path),
            &e,
        ))
    }

    /// Best effort: a failed directory fsync only weakens durability of an already-renamed file.
    fn sync_dir(&self) {
        let dot = c".";
        // SAFETY: valid descriptor and C string.
        if let Ok(fd) = sys_fd(unsafe {
            libc::openat(
                self.dir.as_raw_fd(),
                dot.as_ptr(),
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
            )
        }) {
            let _ = File::from(fd).sync_all();
        }
    }
}

/// Root, and the agent's own uid (root on a machine; the user running unit tests).
fn trusted_uid(uid: u32) -> bool {
    // SAFETY: geteuid has no preconditions.
    uid == 0 || uid == unsafe { libc::geteuid() }
}

/// The directories and the last component of an absolute managed path.
fn split(abs: &str) -> Result<(Vec<&str>, &str)> {
    if !abs.starts_with('/') {
        return Err(Error::new(format!("{abs}: not an absolute path")));
    }
    let comps: Vec<&str> = abs.split('/').filter(|c| !c.is_empty()).collect();
    if comps.iter().any(|c| *c == "." || *c == "..") {
        return Err(Error::new(format!(
            "{abs}: `.` and `..` are not allowed in a managed path"
        )));
    }
    let (last, parents) = comps
        .split_last()
        .ok_or_else(|| Error::new(format!("{abs}: names no file")))?;
    Ok((parents.to_vec(), last))
}

fn cstring(abs: &str, c: &str) -> Result<CString> {
    CString::new(c).map_err(|_| Error::new(format!("{abs}: NUL in the path")))
}

/// Why a directory component could not be opened: a link, not a directory, or the I/O error.
fn diagnose(dir: RawFd, name: &CStr, abs: &str, shown: &str, e: io::Error) -> Error {
    match fstatat_nofollow(dir, name).map(|st| kind_of_mode(st.st_mode)) {
        Ok(Kind::Symlink) => Error::new(format!("{abs}: {shown} is a symlink; {NEVER_FOLLOWS}")),
        Ok(Kind::Dir) | Err(_) => Error::io(format!("{abs}: cannot open {shown}"), &e),
        Ok(k) => Error::new(format!(
            "{abs}: {shown} is a {}, not a directory",
            kind_name(k)
        )),
    }
}

/// Whether the kernel refused `openat2` (older than 5.6, or a seccomp filter): then plain
/// `openat` with `O_NOFOLLOW` on each single component does the same job.
static NO_OPENAT2: AtomicBool = AtomicBool::new(false);

/// Opens the directory `name` in `dir` as an `O_PATH` descriptor, never through a link.
fn open_dir_at(dir: RawFd, name: &CStr) -> io::Result<OwnedFd> {
    if !NO_OPENAT2.load(Ordering::Relaxed) {
        match open_dir_openat2(dir, name) {
            Some(r) => return r,
            None => NO_OPENAT2.store(true, Ordering::Relaxed),
        }
    }
    open_dir_openat(dir, name)
}

const DIR_FLAGS: libc::c_int =
    libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC;

/// `openat2` with `RESOLVE_NO_SYMLINKS|RESOLVE_BENEATH|RESOLVE_NO_MAGICLINKS`; `None` when
/// the kernel (or a seccomp filter) does not offer it.
fn open_dir_openat2(dir: RawFd, name: &CStr) -> Option<io::Result<OwnedFd>> {
    // SAFETY: open_how is plain data; all-zero is its documented default.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = DIR_FLAGS as u64;
    how.resolve = libc::RESOLVE_NO_SYMLINKS | libc::RESOLVE_BENEATH | libc::RESOLVE_NO_MAGICLINKS;
    // SAFETY: valid descriptor, C string and open_how of the size passed.
    let r = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dir,
            name.as_ptr(),
            &how as *const libc::open_how,
            std::mem::size_of::<libc::open_how>(),
        )
    };
    if r >= 0 {
        // SAFETY: a new descriptor owned by nobody else.
        return Some(Ok(unsafe { OwnedFd::from_raw_fd(r as RawFd) }));
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::ENOSYS) | Some(libc::EPERM) => None,
        _ => Some(Err(e)),
    }
}

/// The same with plain `openat`: one component, `O_NOFOLLOW`, `O_DIRECTORY` (a link is
/// refused with `ENOTDIR` or `ELOOP`).
fn open_dir_openat(dir: RawFd, name: &CStr) -> io::Result<OwnedFd> {
    // SAFETY: valid descriptor and C string; the result is checked.
    sys_fd(unsafe { libc::openat(dir, name.as_ptr(), DIR_FLAGS) })
}

/// `mkdirat` with exactly `mode` (the umask would otherwise narrow it); `false` if something
/// is already there. The mode is fixed on a descriptor opened without following a link.
fn mkdir_at(dir: RawFd, name: &CStr, mode: u32) -> io::Result<bool> {
    // SAFETY: valid descriptor and C string.
    match sys(unsafe { libc::mkdirat(dir, name.as_ptr(), mode as libc::mode_t) }) {
        Ok(_) => {}
        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => return Ok(false),
        Err(e) => return Err(e),
    }
    let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC;
    // SAFETY: valid descriptor and C string; the result is checked.
    let fd = sys_fd(unsafe { libc::openat(dir, name.as_ptr(), flags) })?;
    fchmod(&File::from(fd), mode)?;
    Ok(true)
}

fn fchmod(f: &File, mode: u32) -> io::Result<()> {
    // SAFETY: a valid descriptor.
    sys(unsafe { libc::fchmod(f.as_raw_fd(), mode as libc::mode_t) }).map(|_| ())
}

fn fstat(fd: RawFd) -> io::Result<libc::stat> {
    // SAFETY: stat is plain data filled in by the kernel.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: a valid descriptor and buffer.
    sys(unsafe { libc::fstat(fd, &mut st) })?;
    Ok(st)
}

fn fstatat_nofollow(dir: RawFd, name: &CStr) -> io::Result<libc::stat> {
    // SAFETY: stat is plain data filled in by the kernel.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: a valid descriptor, C string and buffer.
    sys(unsafe { libc::fstatat(dir, name.as_ptr(), &mut st, libc::AT_SYMLINK_NOFOLLOW) })?;
    Ok(st)
}

fn meta(st: &libc::stat) -> Meta {
    Meta {
        kind: kind_of_mode(st.st_mode),
        mode: st.st_mode & 0o7777,
        uid: st.st_uid,
        gid: st.st_gid,
    }
}

fn sys(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn sys_fd(r: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: a new descriptor owned by nobody else.
    sys(r).map(|fd| unsafe { OwnedFd::from_raw_fd(fd) })
}

/// 16 hex digits from the kernel's random pool (a counter and the clock if it is unavailable:
/// `O_EXCL` keeps even a guessed name safe, the randomness only keeps others from camping on it).
fn random_hex() -> String {
    static SEQ: AtomicU32 = AtomicU32::new(0);
    let mut b = [0u8; 8];
    // SAFETY: a valid buffer of the length passed.
    let n = unsafe { libc::getrandom(b.as_mut_ptr().cast(), b.len(), libc::GRND_NONBLOCK) };
    if n != b.len() as isize {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        let x = t
            ^ (u64::from(std::process::id()) << 32)
            ^ u64::from(SEQ.fetch_add(1, Ordering::Relaxed));
        b = x.to_le_bytes();
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[cfg(test)]
#[path = "nofollow_tests.rs"]
mod tests;
