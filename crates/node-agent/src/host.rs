//! The machine the agent acts on: a filesystem root (normally `/`; a temp dir in tests and
//! benchmarks), the agent's own state directory, and the door to external commands.

use crate::error::{Error, Result};
use crate::exec::{self, Cmd, Output};
use crate::fsutil::nofollow::{Entry, Parents, Walk};
use crate::fsutil::{self, Meta};
use crate::notify::Watchdog;
use std::cell::OnceCell;
use std::path::{Path, PathBuf};

/// The package manager family, from `/etc/os-release`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PkgManager {
    Apt,
    Dnf,
    Yum,
    /// Neither: the `ID`/`ID_LIKE` seen, for the error message.
    Unsupported(String),
}

pub struct Host {
    root: PathBuf,
    state_dir: PathBuf,
    commands_allowed: bool,
    watchdog: Option<Watchdog>,
    pkg: OnceCell<PkgManager>,
    /// Tests: commands are answered by this function instead of being run (any root).
    #[cfg(test)]
    fake: Option<FakeCommands>,
}

/// A stand-in for the command runner in tests: answers each command (see [`Host::fake_commands`]).
#[cfg(test)]
pub(crate) type FakeCommands = Box<dyn Fn(&Cmd) -> Result<Output> + Send>;

/// The command lines a [`scripted`] runner was asked to run.
#[cfg(test)]
pub(crate) type CommandLog = std::sync::Arc<std::sync::Mutex<Vec<String>>>;

impl Host {
    /// Acts on the real system; the agent's own files live in `state_dir`.
    pub fn system(state_dir: impl Into<PathBuf>) -> Host {
        Host::with_root("/", state_dir)
    }

    /// Resolves every managed path under `root`. With a root other than `/` external
    /// commands are refused: they would act on the real system, not on `root`.
    pub fn with_root(root: impl Into<PathBuf>, state_dir: impl Into<PathBuf>) -> Host {
        let root = root.into();
        let commands_allowed = root == Path::new("/");
        Host {
            root,
            state_dir: state_dir.into(),
            commands_allowed,
            watchdog: None,
            pkg: OnceCell::new(),
            #[cfg(test)]
            fake: None,
        }
    }

    /// Tests: answers commands with `f` instead of running them, whatever the root.
    #[cfg(test)]
    pub(crate) fn fake_commands(
        mut self,
        f: impl Fn(&Cmd) -> Result<Output> + Send + 'static,
    ) -> Host {
        self.fake = Some(Box::new(f));
        self
    }

    /// Whether [`Host::run`] runs commands (only on the real root, or faked in tests).
    pub fn runs_commands(&self) -> bool {
        #[cfg(test)]
        if self.fake.is_some() {
            return true;
        }
        self.commands_allowed
    }

    pub fn set_watchdog(&mut self, w: Option<Watchdog>) {
        self.watchdog = w;
    }

    pub fn watchdog(&self) -> Option<&Watchdog> {
        self.watchdog.as_ref()
    }

    /// Keeps systemd's watchdog fed; call from anything that may take long.
    pub fn tick(&self) {
        if let Some(w) = &self.watchdog {
            w.tick();
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn is_real_root(&self) -> bool {
        self.commands_allowed
    }

    /// The host path of an absolute path as seen on the managed system.
    pub fn path(&self, abs: impl AsRef<Path>) -> PathBuf {
        let abs = abs.as_ref();
        if self.commands_allowed {
            return abs.to_path_buf();
        }
        self.root.join(abs.strip_prefix("/").unwrap_or(abs))
    }

    /// A managed path (absolute, as the managed system sees it) resolved below the root
    /// without following links: `None` when a directory on the way does not exist, unless
    /// `create` gives the mode to create missing ones with. See [`crate::fsutil::nofollow`].
    pub fn entry(&self, abs: &str, parents: Parents, create: Option<u32>) -> Result<Option<Entry>> {
        let names = |uid: u32| self.id_name(uid, "/etc/passwd");
        Walk {
            root: &self.root,
            parents,
            names: &names,
        }
        .entry(abs, create)
    }

    /// `lstat` of a managed path; `None` when it (or a directory on the way) does not exist.
    pub fn stat(&self, abs: &str, parents: Parents) -> Result<Option<Meta>> {
        match self.entry(abs, parents, None)? {
            Some(e) => e.stat(),
            None => Ok(None),
        }
    }

    /// Reads a managed regular file; `None` when it does not exist. A link or a special file
    /// there is an error (never followed, never read).
    pub fn read(&self, abs: &str, parents: Parents) -> Result<Option<Vec<u8>>> {
        match self.entry(abs, parents, None)? {
            Some(e) => e.read(),
            None => Ok(None),
        }
    }

    /// [`Host::read`] as text (invalid UTF-8 replaced), with root-only parents.
    pub fn read_text(&self, abs: &str) -> Result<Option<String>> {
        Ok(self.read(abs, Parents::RootOnly)?.map(fsutil::lossy))
    }

    /// Replaces a managed file atomically (temp file + rename relative to its directory);
    /// missing directories are created (0755, root-owned).
    pub fn write(
        &self,
        abs: &str,
        content: &[u8],
        mode: u32,
        owner: Option<(u32, u32)>,
        parents: Parents,
    ) -> Result<()> {
        self.entry_creating(abs, parents)?
            .write_atomic(content, mode, owner)
    }

    /// Owner and mode of an existing managed file or directory.
    pub fn set_meta(
        &self,
        abs: &str,
        mode: u32,
        uid: u32,
        gid: u32,
        parents: Parents,
    ) -> Result<()> {
        self.entry(abs, parents, None)?
            .ok_or_else(|| Error::new(format!("cannot chown {abs}: it does not exist")))?
            .set_meta(mode, uid, gid)
    }

    /// Creates a managed directory (missing parents 0755) and sets its owner and mode.
    pub fn create_dir(
        &self,
        abs: &str,
        mode: u32,
        uid: u32,
        gid: u32,
        parents: Parents,
    ) -> Result<()> {
        let e = self.entry_creating(abs, parents)?;
        e.mkdir(mode)?;
        e.set_meta(mode, uid, gid)
    }

    /// Removes a managed file (a link itself, never its target); `false` when it was not there.
    pub fn remove(&self, abs: &str, parents: Parents) -> Result<bool> {
        match self.entry(abs, parents, None)? {
            Some(e) => e.remove(),
            None => Ok(false),
        }
    }

    fn entry_creating(&self, abs: &str, parents: Parents) -> Result<Entry> {
        self.entry(abs, parents, Some(0o755))?
            .ok_or_else(|| Error::new(format!("{abs}: its directory could not be created")))
    }

    /// A file in the agent's state directory (not under `root`: it is the agent's, not the system's).
    pub fn state_path(&self, name: &str) -> PathBuf {
        self.state_dir.join(name)
    }

    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    /// Runs a command; a non-zero exit is returned as `Ok` (the caller interprets it).
    pub fn run(&self, cmd: &Cmd) -> Result<Output> {
        #[cfg(test)]
        if let Some(f) = &self.fake {
            return f(cmd);
        }
        if !self.commands_allowed {
            return Err(Error::new(format!(
                "not running `{cmd}`: the agent manages the tree at {} and external commands would act on the real system; hint: this item cannot be managed with --root",
                self.root.display()
            )));
        }
        exec::run(cmd, &|| self.tick())
    }

    /// Runs a command that must succeed.
    pub fn run_ok(&self, cmd: &Cmd) -> Result<Output> {
        let out = self.run(cmd)?;
        if out.success() {
            Ok(out)
        } else {
            Err(out.failure(cmd))
        }
    }

    /// Apt, dnf or yum, from `/etc/os-release` (`ID` and `ID_LIKE`).
    pub fn pkg_manager(&self) -> &PkgManager {
        self.pkg.get_or_init(|| {
            let text = fsutil::read_text_opt(&self.path("/etc/os-release"))
                .ok()
                .flatten()
                .unwrap_or_default();
            let detected = detect_pkg_manager(&text);
            match detected {
                PkgManager::Dnf
                    if !self.path("/usr/bin/dnf").exists()
                        && self.path("/usr/bin/yum").exists() =>
                {
                    PkgManager::Yum
                }
                other => other,
            }
        })
    }

    /// uid of a user name (or a number), from the managed system's `/etc/passwd`.
    pub fn uid(&self, user: &str) -> Result<u32> {
        self.lookup_id(user, "/etc/passwd", "user")
    }

    /// gid of a group name (or a number), from the managed system's `/etc/group`.
    pub fn gid(&self, group: &str) -> Result<u32> {
        self.lookup_id(group, "/etc/group", "group")
    }

    fn lookup_id(&self, name: &str, db: &str, what: &str) -> Result<u32> {
        if let Ok(n) = name.parse::<u32>() {
            return Ok(n);
        }
        let text = fsutil::read_text_opt(&self.path(db))?.unwrap_or_default();
        for line in text.lines() {
            let mut f = line.split(':');
            if f.next() == Some(name)
                && let Some(id) = f.nth(1).and_then(|s| s.parse::<u32>().ok())
            {
                return Ok(id);
            }
        }
        Err(Error::new(format!(
            "{what} `{name}` does not exist in {db}; hint: create it first (a package usually does) or give a numeric id"
        )))
    }

    /// Name for a uid/gid (for reports), or the number.
    pub fn id_name(&self, id: u32, db: &str) -> String {
        let text = fsutil::read_text_opt(&self.path(db))
            .ok()
            .flatten()
            .unwrap_or_default();
        for line in text.lines() {
            let f: Vec<&str> = line.split(':').collect();
            if f.len() > 2 && f[2].parse::<u32>().ok() == Some(id) {
                return f[0].to_string();
            }
        }
        id.to_string()
    }
}

/// Maps os-release `ID`/`ID_LIKE` to a package manager family.
pub fn detect_pkg_manager(os_release: &str) -> PkgManager {
    let mut ids = Vec::new();
    for line in os_release.lines() {
        if let Some(v) = line
            .strip_prefix("ID=")
            .or_else(|| line.strip_prefix("ID_LIKE="))
        {
            ids.extend(v.trim_matches('"').split_whitespace().map(str::to_string));
        }
    }
    if ids
        .iter()
        .any(|i| matches!(i.as_str(), "debian" | "ubuntu"))
    {
        PkgManager::Apt
    } else if ids.iter().any(|i| {
        matches!(
            i.as_str(),
            "rhel" | "fedora" | "centos" | "rocky" | "almalinux" | "ol" | "amzn"
        )
    }) {
        PkgManager::Dnf
    } else {
        PkgManager::Unsupported(if ids.is_empty() {
            "no ID in /etc/os-release".into()
        } else {
            ids.join(" ")
        })
    }
}

/// A host rooted in a fresh temporary directory holding `files` (path, content, mode): for
/// tests of items, which observe and change files under a root.
#[cfg(test)]
pub(crate) fn scratch_host(files: &[(&str, &[u8], u32)]) -> (tempfile::TempDir, Host) {
    let tmp = tempfile::tempdir().unwrap();
    let h = Host::with_root(tmp.path(), tmp.path().join("state"));
    for (path, content, mode) in files {
        fsutil::write_atomic(&h.path(path), content, *mode, None).unwrap();
    }
    (tmp, h)
}

/// A scripted command runner for [`Host::fake_commands`]: the first answer whose pattern the
/// command line (as displayed) contains gives its exit code and stdout; every command line
/// is logged; a command no pattern matches fails the test's expectations with an error.
#[cfg(test)]
pub(crate) fn scripted(answers: &[(&str, i32, &str)]) -> (FakeCommands, CommandLog) {
    let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let answers: Vec<(String, i32, String)> = answers
        .iter()
        .map(|(p, c, o)| (p.to_string(), *c, o.to_string()))
        .collect();
    let calls = log.clone();
    let f = move |cmd: &Cmd| {
        let line = cmd.to_string();
        calls.lock().unwrap().push(line.clone());
        match answers.iter().find(|(p, _, _)| line.contains(p.as_str())) {
            Some((_, code, out)) => Ok(Output {
                code: Some(*code),
                stdout: out.clone(),
                stderr: String::new(),
            }),
            None => Err(Error::new(format!("unexpected command `{line}`"))),
        }
    };
    (Box::new(f), log)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_families() {
        assert_eq!(
            detect_pkg_manager("ID=debian\nVERSION_ID=\"12\"\n"),
            PkgManager::Apt
        );
        assert_eq!(
            detect_pkg_manager("ID=ubuntu\nID_LIKE=debian\n"),
            PkgManager::Apt
        );
        assert_eq!(
            detect_pkg_manager("ID=\"rocky\"\nID_LIKE=\"rhel centos fedora\"\n"),
            PkgManager::Dnf
        );
        assert!(
            matches!(detect_pkg_manager("ID=alpine\n"), PkgManager::Unsupported(s) if s == "alpine")
        );
    }

    #[test]
    fn resolves_paths_and_ids_under_a_root() {
        let (tmp, h) = scratch_host(&[
            (
                "/etc/passwd",
                b"root:x:0:0::/root:/bin/sh\netcd:x:107:112::/var/lib/etcd:/bin/false\n",
                0o644,
            ),
            ("/etc/group", b"root:x:0:\netcd:x:112:\n", 0o644),
        ]);
        assert_eq!(h.path("/etc/x"), tmp.path().join("etc/x"));
        assert_eq!(h.uid("etcd").unwrap(), 107);
        assert_eq!(h.gid("etcd").unwrap(), 112);
        assert_eq!(h.uid("1234").unwrap(), 1234);
        assert!(
            h.uid("nobody-here")
                .unwrap_err()
                .message()
                .contains("/etc/passwd")
        );
        assert_eq!(h.id_name(107, "/etc/passwd"), "etcd");
        assert!(
            h.run(&Cmd::new("true"))
                .unwrap_err()
                .message()
                .contains("--root")
        );
    }
}
