//! A group's apt repository: .debs fetched on the host through its own Debian sources (with
//! dependencies resolved against the base image), indexed as flat repositories per suite and
//! served over HTTP on the bridge address.

use crate::Error;
use crate::apt_sources::{self, Suite};
use crate::cmd::{self, path_str, run};
use crate::lock::FileLock;
use crate::state::write_atomic;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

/// Package lists older than this are refreshed before resolving.
const LISTS_MAX_AGE: Duration = Duration::from_secs(6 * 3600);

/// A private apt configuration per suite under the cache (never touches the host's apt state).
struct AptEnv {
    dir: PathBuf,
    debs: PathBuf,
    status: PathBuf,
}

impl AptEnv {
    fn new(cache: &Path, suite: Suite, status: &Path) -> Result<AptEnv, Error> {
        let dir = cache.join("apt").join(suite.codename());
        let debs = cache.join("debs").join(suite.codename());
        for d in [
            dir.join("etc/sources.list.d"),
            dir.join("etc/preferences.d"),
            dir.join("etc/apt.conf.d"),
            dir.join("state/lists/partial"),
            dir.join("cache/archives/partial"),
            debs.join("partial"),
        ] {
            std::fs::create_dir_all(&d).map_err(Error::io("create", &d))?;
        }
        let host = apt_sources::host_sources(Path::new("/etc/apt"))?;
        let codename = apt_sources::host_codename(Path::new("/etc/os-release"))?;
        let sources = apt_sources::retarget(&host, &codename, suite.codename());
        if sources.is_empty() {
            return Err(Error::AptSources {
                message: format!(
                    "no Debian `deb` entry for {codename} in /etc/apt/sources.list or /etc/apt/sources.list.d; \
                     orb-machines fetches packages for machines through the host's own Debian sources"
                ),
            });
        }
        let file = dir.join("etc/sources.list.d/orb.sources");
        write_atomic(&file, apt_sources::render_deb822(&sources).as_bytes())?;
        Ok(AptEnv {
            dir,
            debs,
            status: status.to_path_buf(),
        })
    }

    fn apt_get(&self) -> Command {
        let mut c = Command::new("apt-get");
        let d = |rel: &str| path_str(&self.dir.join(rel));
        for (k, v) in [
            ("Dir::Etc", d("etc")),
            ("Dir::Etc::sourcelist", "sources.list".to_string()),
            ("Dir::Etc::sourceparts", "sources.list.d".to_string()),
            (
                "Dir::Etc::TrustedParts",
                "/etc/apt/trusted.gpg.d".to_string(),
            ),
            ("Dir::Etc::Trusted", "/etc/apt/trusted.gpg".to_string()),
            ("Dir::State", d("state")),
            ("Dir::State::status", path_str(&self.status)),
            ("Dir::Cache", d("cache")),
            ("Dir::Cache::archives", path_str(&self.debs)),
            ("APT::Install-Recommends", "false".to_string()),
            ("Acquire::Languages", "none".to_string()),
        ] {
            c.arg("-o").arg(format!("{k}={v}"));
        }
        c.args(["-q", "-y"]);
        c
    }

    fn update_if_stale(&self) -> Result<(), Error> {
        let stamp = self.dir.join("state/updated");
        let fresh = std::fs::metadata(&stamp)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| SystemTime::now().duration_since(t).ok())
            .is_some_and(|age| age < LISTS_MAX_AGE);
        if !fresh {
            let mut c = self.apt_get();
            c.arg("update");
            let out = cmd::output(&mut c)?;
            // apt-get update exits 0 even when a source failed; "W:"/"E:" lines say so.
            let err = String::from_utf8_lossy(&out.stderr);
            if !out.status.success()
                || err
                    .lines()
                    .any(|l| l.starts_with("E:") || l.starts_with("W: Failed"))
            {
                return Err(cmd::failed(&c, &out));
            }
            std::fs::write(&stamp, b"").map_err(Error::io("write", &stamp))?;
        }
        Ok(())
    }

    /// File names (in the archive cache) of `names` and every dependency missing from the image.
    fn resolve(&self, names: &[&str]) -> Result<Vec<String>, Error> {
        let mut c = self.apt_get();
        c.args(["-s", "install"]).args(names);
        let out = run(&mut c)?;
        Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(parse_inst)
            .collect())
    }

    fn download(&self, names: &[&str]) -> Result<(), Error> {
        let mut c = self.apt_get();
        c.args(["install", "--download-only"]).args(names);
        run(&mut c).map(|_| ())
    }
}

/// `Inst etcd-server (3.5.16-4 Debian:13.8/stable [amd64])` → `etcd-server_3.5.16-4_amd64.deb`
/// (apt's archive naming: an epoch colon is stored as %3a).
fn parse_inst(line: &str) -> Option<String> {
    let rest = line.strip_prefix("Inst ")?;
    let (name, rest) = rest.split_once(' ')?;
    let inner = rest.split_once('(')?.1;
    let version = inner.split_whitespace().next()?;
    let arch = inner.rsplit_once('[')?.1.split(']').next()?;
    Some(format!("{name}_{}_{arch}.deb", version.replace(':', "%3a")))
}

/// Fetches `names` (with dependencies not already in the base image) for `suite` into the cache
/// and links them into the group's repository, then re-indexes it.
pub(crate) fn add_packages(
    cache: &Path,
    repo: &Path,
    suite: Suite,
    status: &Path,
    names: &[&str],
) -> Result<(), Error> {
    if names.is_empty() {
        return Ok(());
    }
    cmd::require("apt-get", "apt")?;
    let _lock = FileLock::exclusive(&cache.join("apt").join(format!("{}.lock", suite.codename())))?;
    let env = AptEnv::new(cache, suite, status)?;
    env.update_if_stale()?;
    let files = env.resolve(names)?;
    if files.iter().any(|f| !env.debs.join(f).exists()) {
        env.download(names)?;
    }
    let dest = repo.join(suite.codename());
    for f in &files {
        let from = env.debs.join(f);
        let to = dest.join(f);
        if to.exists() {
            continue;
        }
        if !from.exists() {
            return Err(Error::AptSources {
                message: format!(
                    "apt-get did not produce {} (looked in {})",
                    f,
                    env.debs.display()
                ),
            });
        }
        if std::fs::hard_link(&from, &to).is_err() {
            std::fs::copy(&from, &to).map_err(Error::io("copy", &to))?;
        }
    }
    index(&dest, suite)
}

/// Puts package files built elsewhere (`dpkg-deb --build`) into the group's repository for
/// `suite` and re-indexes it, under the same lock as [`add_packages`]. A file of the same name
/// already there is replaced: the repository is a test fixture, not an archive.
pub(crate) fn add_deb_files(
    cache: &Path,
    repo: &Path,
    suite: Suite,
    files: &[&Path],
) -> Result<(), Error> {
    let _lock = FileLock::exclusive(&cache.join("apt").join(format!("{}.lock", suite.codename())))?;
    let dest = repo.join(suite.codename());
    for f in files {
        let name = f
            .file_name()
            .filter(|n| n.to_string_lossy().ends_with(".deb"))
            .ok_or_else(|| Error::AptSources {
                message: format!("{} is not a .deb file", f.display()),
            })?;
        let to = dest.join(name);
        std::fs::copy(f, &to).map_err(Error::io("copy", &to))?;
    }
    index(&dest, suite)
}

/// Creates the empty per-suite repositories, so machines' `apt-get update` works from the start.
pub(crate) fn init_repo(repo: &Path) -> Result<(), Error> {
    for s in Suite::ALL {
        let d = repo.join(s.codename());
        std::fs::create_dir_all(&d).map_err(Error::io("create", &d))?;
        index(&d, s)?;
    }
    Ok(())
}

/// Packages (dpkg-scanpackages) and a Release with hashes and the codename (used for pinning).
fn index(dir: &Path, suite: Suite) -> Result<(), Error> {
    cmd::require("dpkg-scanpackages", "dpkg-dev")?;
    let mut c = Command::new("dpkg-scanpackages");
    c.args(["--multiversion", "."]).current_dir(dir);
    let out = run(&mut c)?;
    write_atomic(&dir.join("Packages"), &out.stdout)?;
    let hash: String = Sha256::digest(&out.stdout)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let release = format!(
        "Origin: orb-machines\nLabel: orb-machines\nSuite: {0}\nCodename: {0}\nArchitectures: amd64 arm64 all\nComponents: main\nSHA256:\n {hash} {1} Packages\n",
        suite.codename(),
        out.stdout.len()
    );
    write_atomic(&dir.join("Release"), release.as_bytes())
}

/// Serves `repo` read-only on ip:port with Python's static HTTP server, detached.
pub(crate) fn start_http(
    repo: &Path,
    ip: std::net::Ipv4Addr,
    port: u16,
    pidfile: &Path,
    log: &Path,
    marker: &str,
) -> Result<i32, Error> {
    // Debian's own interpreter first: a user-level shim (pyenv) in root's PATH is slower and
    // may vanish with that user's setup.
    let system = Path::new("/usr/bin/python3");
    let python = if system.exists() {
        system.to_path_buf()
    } else {
        cmd::require("python3", "python3")?
    };
    let args: Vec<std::ffi::OsString> = vec![
        python.into(),
        "-m".into(),
        "http.server".into(),
        "--bind".into(),
        ip.to_string().into(),
        "--directory".into(),
        repo.into(),
        port.to_string().into(),
    ];
    let pid = crate::detach::spawn(
        crate::detach::EXEC,
        "orb-machines-apt-http",
        pidfile,
        &args,
        log,
        marker,
    )?;
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while std::net::TcpStream::connect_timeout(&(ip, port).into(), Duration::from_millis(200))
        .is_err()
    {
        if std::time::Instant::now() > deadline {
            return Err(Error::Timeout {
                what: format!("the apt HTTP server on {ip}:{port}"),
                secs: 15,
                hint: format!("see {}", log.display()),
            });
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(pid)
}

#[cfg(test)]
mod tests {
    #[test]
    fn inst_lines_become_archive_names() {
        assert_eq!(
            super::parse_inst("Inst etcd-server (3.5.16-4 Debian:13.8/stable [amd64])").as_deref(),
            Some("etcd-server_3.5.16-4_amd64.deb")
        );
        assert_eq!(
            super::parse_inst("Inst libfoo1 [1.0] (1:2.3-1 Debian:12.11/oldstable [all])")
                .as_deref(),
            Some("libfoo1_1%3a2.3-1_all.deb")
        );
        assert_eq!(
            super::parse_inst("Conf etcd-server (3.5.16-4 Debian [amd64])"),
            None
        );
    }
}
