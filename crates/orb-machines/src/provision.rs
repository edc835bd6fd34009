//! Per-machine files written into a fresh overlay before its first boot: identity (hostname,
//! machine-id, SSH host key), access (orbiter's authorized key) and the group's apt repository.

use crate::Error;
use crate::cmd::{cmd, path_str, run};
use std::io::Read;
use std::net::Ipv4Addr;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

pub(crate) struct Provision<'a> {
    pub hostname: &'a str,
    pub pubkey: &'a str,
    pub bridge_ip: Ipv4Addr,
    pub apt_url: &'a str,
}

fn write(root: &Path, rel: &str, content: &str, mode: u32) -> Result<(), Error> {
    let p = root.join(rel);
    if let Some(d) = p.parent() {
        std::fs::create_dir_all(d).map_err(Error::io("create", d))?;
    }
    // An absolute symlink in the image would point into the host: replace it, never follow it.
    if p.symlink_metadata()
        .is_ok_and(|m| m.file_type().is_symlink())
    {
        std::fs::remove_file(&p).map_err(Error::io("remove symlink", &p))?;
    }
    std::fs::write(&p, content).map_err(Error::io("write", &p))?;
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode))
        .map_err(Error::io("chmod", &p))
}

/// uid and gid of `user` from the machine's own /etc/passwd (not the host's).
fn ids(root: &Path, user: &str) -> Result<(u32, u32), Error> {
    let passwd = root.join("etc/passwd");
    let text = std::fs::read_to_string(&passwd).map_err(Error::io("read", &passwd))?;
    text.lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() > 3 && f[0] == user)
        .and_then(|f| Some((f[2].parse().ok()?, f[3].parse().ok()?)))
        .ok_or_else(|| Error::State {
            path: passwd,
            message: format!("no user {user} in the base image"),
        })
}

/// Apt sources of every machine: only the group's repository. Trixie packages sit next to
/// bookworm's at a low pin, so they are installed only when asked for by version.
pub(crate) fn apt_sources(apt_url: &str) -> String {
    format!("deb [trusted=yes] {apt_url}bookworm ./\ndeb [trusted=yes] {apt_url}trixie ./\n")
}

pub(crate) const TRIXIE_PIN: &str = "Package: *\nPin: release n=trixie\nPin-Priority: 100\n";

/// Writes the files and returns the machine's SSH host public key line.
pub(crate) fn provision(root: &Path, p: &Provision) -> Result<String, Error> {
    let h = p.hostname;
    write(root, "etc/hostname", &format!("{h}\n"), 0o644)?;
    write(
        root,
        "etc/hosts",
        &format!(
            "127.0.0.1\tlocalhost\n127.0.1.1\t{h}\n{}\torb-host\n::1\tlocalhost ip6-localhost ip6-loopback\n",
            p.bridge_ip
        ),
        0o644,
    )?;
    // No resolver is reachable from the private bridge: with no nameserver line, lookups of
    // unknown names fail at once (127.0.0.1:53 refuses) instead of timing out for seconds.
    write(
        root,
        "etc/resolv.conf",
        "# orb-machines: no DNS on the group's private bridge; names are in /etc/hosts\n",
        0o644,
    )?;
    let mut id = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut id))
        .map_err(Error::io("read", "/dev/urandom"))?;
    let id: String = id.iter().map(|b| format!("{b:02x}")).collect();
    write(root, "etc/machine-id", &format!("{id}\n"), 0o444)?;

    let key = root.join("etc/ssh/ssh_host_ed25519_key");
    run(&mut cmd(
        "ssh-keygen",
        [
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            &format!("root@{h}"),
            "-f",
            &path_str(&key),
        ],
    ))?;
    let host_pub = std::fs::read_to_string(key.with_extension("pub"))
        .map_err(Error::io("read", key.with_extension("pub")))?;

    let (uid, gid) = ids(root, "orbiter")?;
    write(
        root,
        "home/orbiter/.ssh/authorized_keys",
        &format!("{}\n", p.pubkey.trim()),
        0o600,
    )?;
    let ssh_dir = root.join("home/orbiter/.ssh");
    std::fs::set_permissions(&ssh_dir, std::fs::Permissions::from_mode(0o700))
        .map_err(Error::io("chmod", &ssh_dir))?;
    for path in [ssh_dir.clone(), ssh_dir.join("authorized_keys")] {
        std::os::unix::fs::chown(&path, Some(uid), Some(gid)).map_err(Error::io("chown", &path))?;
    }

    write(
        root,
        "etc/apt/sources.list.d/orb.list",
        &apt_sources(p.apt_url),
        0o644,
    )?;
    write(root, "etc/apt/preferences.d/orb-trixie", TRIXIE_PIN, 0o644)?;
    Ok(host_pub.trim().to_string())
}

/// Accepts one OpenSSH public key line (what goes into authorized_keys).
pub(crate) fn check_pubkey(key: &str) -> Result<(), Error> {
    let key = key.trim();
    if key.contains('\n') {
        return Err(Error::InvalidKey {
            hint: "expected exactly one line (one OpenSSH public key)",
        });
    }
    if key.contains("PRIVATE KEY") {
        return Err(Error::InvalidKey {
            hint: "this is a private key; pass the .pub file",
        });
    }
    let mut parts = key.split_whitespace();
    let kind = parts.next().unwrap_or("");
    let ok_kind = kind.starts_with("ssh-") || kind.starts_with("ecdsa-") || kind.starts_with("sk-");
    if !ok_kind || parts.next().is_none_or(|b| b.len() < 16) {
        return Err(Error::InvalidKey {
            hint: "expected an OpenSSH public key line such as `ssh-ed25519 AAAA... comment`",
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pubkeys_are_checked() {
        assert!(check_pubkey("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeFakeFake you@host").is_ok());
        assert!(check_pubkey("").is_err());
        assert!(
            check_pubkey("-----BEGIN OPENSSH PRIVATE KEY-----")
                .unwrap_err()
                .to_string()
                .contains(".pub")
        );
        assert!(
            check_pubkey("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeFakeFake\nssh-rsa AAAA")
                .is_err()
        );
    }

    #[test]
    fn machines_only_see_the_group_repo() {
        let s = apt_sources("http://10.213.0.1:8080/");
        assert_eq!(s.lines().count(), 2);
        assert!(
            s.lines()
                .all(|l| l.starts_with("deb [trusted=yes] http://10.213.0.1:8080/"))
        );
    }
}
