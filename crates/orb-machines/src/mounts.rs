//! Overlay mounts and safe removal of directory trees that may have had mounts inside.

use crate::Error;
use crate::cmd::{cmd, path_str, run};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Mount points from /proc/self/mountinfo (octal escapes such as \040 decoded).
pub(crate) fn mount_points() -> Vec<PathBuf> {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    info.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|m| PathBuf::from(unescape(m)))
        .collect()
}

fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 4 <= b.len()
            && let Ok(v) = u8::from_str_radix(&s[i + 1..i + 4], 8)
        {
            out.push(v);
            i += 4;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub(crate) fn is_mounted(path: &Path) -> bool {
    mount_points().iter().any(|m| m == path)
}

/// Mount points at or below `dir`, deepest first (the order to unmount them in).
pub(crate) fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = mount_points()
        .into_iter()
        .filter(|m| m.starts_with(dir))
        .collect();
    v.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    v.dedup();
    v
}

pub(crate) fn mount_overlay(
    lower: &Path,
    upper: &Path,
    work: &Path,
    target: &Path,
) -> Result<(), Error> {
    let opts = format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.display(),
        upper.display(),
        work.display()
    );
    run(&mut cmd(
        "mount",
        ["-t", "overlay", "overlay", "-o", &opts, &path_str(target)],
    ))?;
    Ok(())
}

/// Unmounts, retrying while the last processes of a machine release it, then detaches lazily.
pub(crate) fn unmount(target: &Path) -> Result<(), Error> {
    for _ in 0..20 {
        if !is_mounted(target) {
            return Ok(());
        }
        if run(&mut cmd("umount", [target])).is_ok() {
            continue;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    if is_mounted(target) {
        run(&mut cmd("umount", ["-l".as_ref(), target.as_os_str()]))?;
    }
    Ok(())
}

/// Removes a tree without ever crossing into a mount (a stale /proc inside a rootfs must never
/// be recursed into), after unmounting whatever is mounted below it.
pub(crate) fn remove_tree(dir: &Path) -> Result<(), Error> {
    if !dir.exists() {
        return Ok(());
    }
    for m in mounts_under(dir) {
        unmount(&m)?;
    }
    run(&mut cmd(
        "rm",
        [
            "-rf".as_ref(),
            "--one-file-system".as_ref(),
            dir.as_os_str(),
        ],
    ))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn unescapes_mountinfo() {
        assert_eq!(super::unescape("/a\\040b"), "/a b");
        assert_eq!(super::unescape("/plain"), "/plain");
        assert!(
            super::mount_points()
                .iter()
                .any(|m| m == std::path::Path::new("/"))
        );
    }
}
