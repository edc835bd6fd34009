//! The cached Debian base image every machine overlays: built once with debootstrap into a
//! temporary directory, customised, stamped and renamed into place.

use crate::Error;
use crate::cmd::{cmd, path_str, run, tail};
use crate::lock::FileLock;
use crate::mounts;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Bump when the image content changes: a different stamp makes every host rebuild.
pub const IMAGE_VERSION: u32 = 1;
const SUITE: &str = "bookworm";
const PACKAGES: &[&str] = &[
    "systemd",
    "systemd-sysv",
    "dbus",
    "openssh-server",
    "sudo",
    "iproute2",
    "ca-certificates",
    "nftables",
    "kmod",
    "procps",
];

/// A built base image (read-only lower layer for machines).
#[derive(Clone, Debug)]
pub struct BaseImage {
    dir: PathBuf,
}

impl BaseImage {
    /// The root filesystem (never write to it while machines use it).
    pub fn rootfs(&self) -> PathBuf {
        self.dir.join("rootfs")
    }
    /// The dpkg status of the image: what every fresh machine has installed.
    pub fn dpkg_status(&self) -> PathBuf {
        self.rootfs().join("var/lib/dpkg/status")
    }
    pub fn version(&self) -> u32 {
        IMAGE_VERSION
    }
}

fn stamp() -> String {
    format!(
        "orb-machines base image v{IMAGE_VERSION}\nsuite={SUITE}\npackages={}\n",
        PACKAGES.join(",")
    )
}

/// Returns the cached image, building it first when missing or stamped with another version.
pub(crate) fn ensure(cache: &Path) -> Result<BaseImage, Error> {
    let final_dir = cache.join(format!("base-v{IMAGE_VERSION}"));
    let _lock = FileLock::exclusive(&cache.join("base.lock"))?;
    let current = std::fs::read_to_string(final_dir.join("stamp")).ok();
    if current.as_deref() == Some(stamp().as_str()) && final_dir.join("rootfs/sbin/init").exists() {
        return Ok(BaseImage { dir: final_dir });
    }
    // Anything else named base-* is stale: an interrupted build or an outdated version.
    // Outdated images still under a machine's overlay stay until that group is down.
    let lower_in_use = lowerdirs_in_use();
    for entry in std::fs::read_dir(cache)
        .map_err(Error::io("read", cache))?
        .flatten()
    {
        let p = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if p.is_dir()
            && name.starts_with("base-")
            && !lower_in_use.iter().any(|l| l.starts_with(&p))
        {
            mounts::remove_tree(&p)?;
        }
    }
    let tmp = cache.join(format!("base-tmp.{}", std::process::id()));
    let result = build(&tmp, cache);
    if let Err(e) = result {
        let _ = mounts::remove_tree(&tmp);
        return Err(e);
    }
    std::fs::rename(&tmp, &final_dir)
        .map_err(Error::io("rename base image into place", &final_dir))?;
    Ok(BaseImage { dir: final_dir })
}

fn lowerdirs_in_use() -> Vec<PathBuf> {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    info.lines()
        .flat_map(|l| {
            l.split(',')
                .filter_map(|o| o.strip_prefix("lowerdir="))
                .map(PathBuf::from)
                .collect::<Vec<_>>()
        })
        .collect()
}

fn build(tmp: &Path, cache: &Path) -> Result<(), Error> {
    let rootfs = tmp.join("rootfs");
    std::fs::create_dir_all(&rootfs).map_err(Error::io("create", &rootfs))?;
    let log = cache.join("base-build.log");
    let log_file = std::fs::File::create(&log).map_err(Error::io("create", &log))?;
    let mut c = Command::new("debootstrap");
    c.arg("--variant=minbase")
        .arg(format!("--include={}", PACKAGES.join(",")))
        .arg(SUITE)
        .arg(&rootfs);
    c.stdout(log_file.try_clone().map_err(Error::io("open", &log))?)
        .stderr(log_file);
    let status = c.status().map_err(|source| Error::Spawn {
        command: crate::cmd::describe(&c),
        source,
    })?;
    if !status.success() {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        return Err(Error::Command {
            command: crate::cmd::describe(&c),
            status: status.to_string(),
            stderr: format!("{} (full log: {})", tail(&text, 1500), log.display()),
        });
    }
    customize(&rootfs)?;
    std::fs::write(tmp.join("stamp"), stamp()).map_err(Error::io("write", tmp.join("stamp")))
}

fn write(root: &Path, rel: &str, content: &str, mode: u32) -> Result<(), Error> {
    use std::os::unix::fs::PermissionsExt;
    let p = root.join(rel);
    if let Some(d) = p.parent() {
        std::fs::create_dir_all(d).map_err(Error::io("create", d))?;
    }
    std::fs::write(&p, content).map_err(Error::io("write", &p))?;
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode))
        .map_err(Error::io("chmod", &p))
}

/// What every machine shares: user orbiter with passwordless sudo, sshd with keys only, no
/// host keys / machine-id / hostname / apt sources (those are per machine or per group).
fn customize(rootfs: &Path) -> Result<(), Error> {
    run(&mut cmd(
        "chroot",
        [
            path_str(rootfs).as_str(),
            "useradd",
            "--create-home",
            "--shell",
            "/bin/bash",
            "--user-group",
            "orbiter",
        ],
    ))?;
    write(
        rootfs,
        "etc/sudoers.d/orbiter",
        "orbiter ALL=(ALL) NOPASSWD:ALL\n",
        0o440,
    )?;
    write(
        rootfs,
        "etc/ssh/sshd_config.d/orb.conf",
        "HostKey /etc/ssh/ssh_host_ed25519_key\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nPermitRootLogin no\nUseDNS no\n",
        0o644,
    )?;
    write(
        rootfs,
        "etc/apt/apt.conf.d/90orb",
        "APT::Install-Recommends \"false\";\nAcquire::Languages \"none\";\n",
        0o644,
    )?;
    write(rootfs, "etc/machine-id", "", 0o444)?;
    let etc_ssh = rootfs.join("etc/ssh");
    for e in std::fs::read_dir(&etc_ssh)
        .map_err(Error::io("read", &etc_ssh))?
        .flatten()
    {
        if e.file_name().to_string_lossy().starts_with("ssh_host_") {
            std::fs::remove_file(e.path()).map_err(Error::io("remove", e.path()))?;
        }
    }
    for rel in ["etc/apt/sources.list", "etc/hostname"] {
        let _ = std::fs::remove_file(rootfs.join(rel));
    }
    let archives = rootfs.join("var/cache/apt/archives");
    if let Ok(rd) = std::fs::read_dir(&archives) {
        for e in rd
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "deb"))
        {
            let _ = std::fs::remove_file(e.path());
        }
    }
    Ok(())
}
