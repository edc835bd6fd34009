//! A git server for a group: a host-side sshd bound to the bridge address, user `git`
//! (git-shell), deploy keys in a per-group authorized_keys, bare repositories in the group's
//! state directory. Reachable from the host and from every machine, over SSH as in production.

use crate::Error;
use crate::cmd::{self, cmd, path_str, run};
use crate::procs;
use std::net::Ipv4Addr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Handle on a group's git server.
#[derive(Clone, Debug)]
pub struct GitHost {
    ip: Ipv4Addr,
    port: u16,
    dir: PathBuf,
    fingerprint: String,
    host_key: String,
}

impl GitHost {
    /// `ssh://git@IP:PORT/<abs path>/<name>.git`
    pub fn ssh_url_for(&self, repo_name: &str) -> String {
        format!(
            "ssh://git@{}:{}{}",
            self.ip,
            self.port,
            self.repo_path(repo_name).display()
        )
    }

    /// Allows `pubkey` (one OpenSSH public key line) to read and push every repository of the
    /// group; the key gets no shell, PTY or forwarding (`restrict`).
    pub fn add_deploy_key(&self, pubkey: &str) -> Result<(), Error> {
        crate::provision::check_pubkey(pubkey)?;
        let file = self.dir.join("authorized_keys");
        let mut text = std::fs::read_to_string(&file).unwrap_or_default();
        let line = format!("restrict {}\n", pubkey.trim());
        if !text.contains(&line) {
            text.push_str(&line);
            crate::state::write_atomic(&file, text.as_bytes())?;
            set_mode(&file, 0o644)?;
        }
        Ok(())
    }

    /// Creates an empty bare repository (branch main) and returns its SSH URL; an existing one
    /// is left as is.
    pub fn create_bare_repo(&self, name: &str) -> Result<String, Error> {
        if name.is_empty()
            || name.starts_with('.')
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        {
            return Err(Error::InvalidName {
                what: "repository name",
                value: name.to_string(),
                hint: "use letters, digits, '-', '_' and '.', not starting with '.'",
            });
        }
        let path = self.repo_path(name);
        if !path.exists() {
            cmd::require("git", "git")?;
            run(&mut cmd(
                "git",
                [
                    "init",
                    "--quiet",
                    "--bare",
                    "--initial-branch=main",
                    &path_str(&path),
                ],
            ))?;
            run(&mut cmd("chown", ["-R", "git:git", &path_str(&path)]))?;
        }
        Ok(self.ssh_url_for(name))
    }

    /// SHA256 fingerprint of the server's host key, e.g. `SHA256:abc…`.
    pub fn host_key_fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// A known_hosts line pinning the server (`[ip]:port ssh-ed25519 AAAA…`).
    pub fn known_hosts_line(&self) -> String {
        format!("[{}]:{} {}", self.ip, self.port, self.host_key)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    fn repo_path(&self, name: &str) -> PathBuf {
        let name = name.strip_suffix(".git").unwrap_or(name);
        self.dir.join("repos").join(format!("{name}.git"))
    }
}

fn set_mode(p: &Path, mode: u32) -> Result<(), Error> {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode))
        .map_err(Error::io("chmod", p))
}

/// Makes sure user `git` exists with a shell that can serve git (git-shell).
fn ensure_git_user() -> Result<(), Error> {
    let passwd =
        std::fs::read_to_string("/etc/passwd").map_err(Error::io("read", "/etc/passwd"))?;
    if let Some(line) = passwd.lines().find(|l| l.starts_with("git:")) {
        let shell = line.rsplit(':').next().unwrap_or("").to_string();
        if shell.ends_with("nologin") || shell.ends_with("/false") || shell.is_empty() {
            return Err(Error::GitUserShell { shell });
        }
        return unlock_git_user();
    }
    let shell = cmd::require("git-shell", "git")?;
    cmd::require("useradd", "passwd")?;
    let out = cmd::output(&mut cmd(
        "useradd",
        [
            "--system",
            "--user-group",
            "--no-create-home",
            // "*": no password login, yet not locked ("!"), which sshd without PAM refuses.
            "--password",
            "*",
            "--home-dir",
            "/nonexistent",
            "--shell",
            &path_str(&shell),
            "git",
        ],
    ))?;
    // 9 = the user appeared meanwhile (another group created it).
    if !out.status.success() && out.status.code() != Some(9) {
        return Err(cmd::failed(&cmd("useradd", ["git"]), &out));
    }
    Ok(())
}

/// sshd without PAM refuses keys for a locked account ("!" in /etc/shadow). A bare "!" means no
/// password was ever set, so "*" (no password login either) changes nothing else.
fn unlock_git_user() -> Result<(), Error> {
    let shadow =
        std::fs::read_to_string("/etc/shadow").map_err(Error::io("read", "/etc/shadow"))?;
    let field = shadow
        .lines()
        .find_map(|l| l.strip_prefix("git:"))
        .and_then(|r| r.split(':').next())
        .unwrap_or("");
    if field == "!" || field == "!*" {
        run(&mut cmd("usermod", ["--password", "*", "git"]))?;
    }
    Ok(())
}

/// Starts (or finds running) the group's sshd on ip:port with its files under `dir`.
pub(crate) fn ensure(dir: &Path, ip: Ipv4Addr, port: u16, marker: &str) -> Result<GitHost, Error> {
    let sshd = cmd::require("sshd", "openssh-server")?;
    ensure_git_user()?;
    let repos = dir.join("repos");
    std::fs::create_dir_all(&repos).map_err(Error::io("create", &repos))?;
    // sshd's StrictModes and the git user both need a root-owned, traversable path.
    let group_root = dir.parent().unwrap_or(dir);
    let mut p = Some(repos.as_path());
    while let Some(d) = p {
        if !d.starts_with(group_root) {
            break;
        }
        if let Ok(m) = d.metadata()
            && m.permissions().mode() & 0o005 != 0o005
        {
            set_mode(d, m.permissions().mode() | 0o755)?;
        }
        p = d.parent();
    }
    run(&mut cmd("chown", ["git:git", &path_str(&repos)]))?;
    let key = dir.join("ssh_host_ed25519_key");
    if !key.exists() {
        run(&mut cmd(
            "ssh-keygen",
            [
                "-q",
                "-t",
                "ed25519",
                "-N",
                "",
                "-C",
                "orb-machines-git",
                "-f",
                &path_str(&key),
            ],
        ))?;
    }
    let keys = dir.join("authorized_keys");
    if !keys.exists() {
        std::fs::write(&keys, b"").map_err(Error::io("write", &keys))?;
        set_mode(&keys, 0o644)?;
    }
    let config = dir.join("sshd_config");
    let pidfile = dir.join("sshd.pid");
    let text = format!(
        "ListenAddress {ip}:{port}\nHostKey {}\nPidFile {}\nAuthorizedKeysFile {}\nAllowUsers git\n\
         PasswordAuthentication no\nKbdInteractiveAuthentication no\nPermitRootLogin no\nUsePAM no\n\
         PrintMotd no\nAllowTcpForwarding no\nX11Forwarding no\nPermitTTY no\nStrictModes yes\n",
        key.display(),
        pidfile.display(),
        keys.display()
    );
    std::fs::write(&config, text).map_err(Error::io("write", &config))?;
    if procs::owned_pid(&pidfile, marker).is_none() {
        std::fs::create_dir_all("/run/sshd").map_err(Error::io("create", "/run/sshd"))?;
        // sshd daemonizes itself and writes PidFile; -f and -E paths carry the group marker.
        run(&mut cmd(
            &path_str(&sshd),
            [
                "-f",
                &path_str(&config),
                "-E",
                &path_str(&dir.join("sshd.log")),
            ],
        ))?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect_timeout(&(ip, port).into(), Duration::from_millis(200))
            .is_err()
        {
            if Instant::now() > deadline {
                return Err(Error::Timeout {
                    what: format!("the git sshd on {ip}:{port}"),
                    secs: 10,
                    hint: format!("see {}", dir.join("sshd.log").display()),
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let host_key = std::fs::read_to_string(key.with_extension("pub"))
        .map_err(Error::io("read", key.with_extension("pub")))?;
    let host_key = host_key
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ");
    let fp = run(&mut cmd(
        "ssh-keygen",
        ["-l", "-f", &path_str(&key.with_extension("pub"))],
    ))?;
    let fingerprint = String::from_utf8_lossy(&fp.stdout)
        .split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .to_string();
    Ok(GitHost {
        ip,
        port,
        dir: dir.to_path_buf(),
        fingerprint,
        host_key,
    })
}
