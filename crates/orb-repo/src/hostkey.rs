//! Pinning the SSH host key of the repository server: first contact shows the fingerprints
//! and applies the [`HostKeyPolicy`]; the accepted key goes into our own known_hosts file,
//! which `ssh -o StrictHostKeyChecking=yes` then enforces on every connection.

use std::ffi::OsString;
use std::fs;
use std::io::{BufRead, IsTerminal, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;
use std::process::{Command, Output, Stdio};

use crate::HostKeyPolicy;
use crate::error::RepoError;

/// How long ssh-keyscan waits for the server.
const KEYSCAN_TIMEOUT_SECS: &str = "15";

/// `host` for port 22, else `[host]:port`: the name ssh looks up in known_hosts.
pub(crate) fn known_hosts_name(host: &str, port: Option<u16>) -> String {
    match port {
        Some(p) if p != 22 => format!("[{host}]:{p}"),
        _ => host.to_owned(),
    }
}

/// One key the server offered.
struct ScannedKey {
    line: String,
    fingerprint: String,
}

/// Makes sure `known_hosts` holds a key for the host, asking the policy on first contact.
/// A host already listed is left to ssh to verify (a changed key fails there loudly).
pub(crate) fn ensure_known(
    host: &str,
    port: Option<u16>,
    known_hosts: &Path,
    policy: &HostKeyPolicy,
    env: &[(OsString, OsString)],
    scratch: &Path,
) -> Result<(), RepoError> {
    let name = known_hosts_name(host, port);
    if is_known(&name, known_hosts, env)? {
        return Ok(());
    }
    let scanned = scan(host, port, &name, env, scratch)?;
    let fingerprints: Vec<String> = scanned.iter().map(|k| k.fingerprint.clone()).collect();
    let accepted: Vec<&ScannedKey> = match policy {
        HostKeyPolicy::KnownOnly => {
            return Err(RepoError::HostKeyUnknown {
                host: name,
                fingerprints,
            });
        }
        HostKeyPolicy::Accept(expected) => {
            let want = normalize_fingerprint(expected);
            let matching: Vec<&ScannedKey> = scanned
                .iter()
                .filter(|k| normalize_fingerprint(&k.fingerprint) == want)
                .collect();
            if matching.is_empty() {
                return Err(RepoError::HostKeyMismatch {
                    host: name,
                    expected: expected.clone(),
                    fingerprints,
                });
            }
            matching
        }
        HostKeyPolicy::Prompt => {
            if !ask(&name, &fingerprints, known_hosts) {
                return Err(RepoError::HostKeyUnknown {
                    host: name,
                    fingerprints,
                });
            }
            scanned.iter().collect()
        }
    };
    record(known_hosts, &accepted)
}

/// `SHA256:abc= (ED25519)` and `abc` compare equal: only the hash itself counts.
fn normalize_fingerprint(fp: &str) -> String {
    let fp = fp.split_whitespace().next().unwrap_or_default();
    let fp = fp.strip_prefix("SHA256:").unwrap_or(fp);
    fp.trim_end_matches('=').to_owned()
}

fn tool(program: &str, env: &[(OsString, OsString)]) -> Command {
    let mut cmd = Command::new(program);
    cmd.env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

fn output(cmd: &mut Command, program: &str) -> Result<Output, RepoError> {
    cmd.output().map_err(|e| RepoError::Tool {
        program: program.to_owned(),
        package: "openssh-client".to_owned(),
        source: e,
    })
}

fn is_known(
    name: &str,
    known_hosts: &Path,
    env: &[(OsString, OsString)],
) -> Result<bool, RepoError> {
    if !known_hosts.exists() {
        return Ok(false);
    }
    // -F finds plain and hashed entries alike.
    let out = output(
        tool("ssh-keygen", env)
            .arg("-F")
            .arg(name)
            .arg("-f")
            .arg(known_hosts),
        "ssh-keygen",
    )?;
    Ok(out.status.success() && !out.stdout.is_empty())
}

fn scan(
    host: &str,
    port: Option<u16>,
    name: &str,
    env: &[(OsString, OsString)],
    scratch: &Path,
) -> Result<Vec<ScannedKey>, RepoError> {
    let mut cmd = tool("ssh-keyscan", env);
    cmd.args(["-T", KEYSCAN_TIMEOUT_SECS]);
    if let Some(p) = port {
        cmd.arg("-p").arg(p.to_string());
    }
    cmd.arg(host);
    let out = output(&mut cmd, "ssh-keyscan")?;
    let lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect();
    if lines.is_empty() {
        return Err(RepoError::Git {
            op: "ssh-keyscan".to_owned(),
            stderr: format!(
                "could not read any host key from {name}: {}\nhint: check the host and port in the \
                 repository URL and that an SSH server answers there",
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        });
    }
    // ssh-keygen -l reads a file; one output line per key, in order.
    let file = scratch.join("scanned_keys");
    fs::write(&file, lines.join("\n") + "\n")
        .map_err(|e| RepoError::io(format!("cannot write {}", file.display()), e))?;
    let fp_out = output(
        tool("ssh-keygen", env).arg("-l").arg("-f").arg(&file),
        "ssh-keygen",
    );
    let _ = fs::remove_file(&file);
    let fp_out = fp_out?;
    let fps: Vec<String> = String::from_utf8_lossy(&fp_out.stdout)
        .lines()
        .filter_map(|l| {
            let mut parts = l.split_whitespace();
            let fp = parts.nth(1)?;
            let kind = l.rsplit_once('(').map(|(_, k)| k.trim_end_matches(')'));
            Some(match kind {
                Some(k) => format!("{fp} ({k})"),
                None => fp.to_owned(),
            })
        })
        .collect();
    if fps.len() != lines.len() {
        return Err(RepoError::Git {
            op: "ssh-keygen -l".to_owned(),
            stderr: format!(
                "could not compute the fingerprints of the host keys of {name}: {}",
                String::from_utf8_lossy(&fp_out.stderr).trim()
            ),
        });
    }
    Ok(lines
        .into_iter()
        .zip(fps)
        .map(|(line, fingerprint)| ScannedKey { line, fingerprint })
        .collect())
}

/// Asks on the terminal; false without one (scripts must use `Accept`).
fn ask(name: &str, fingerprints: &[String], known_hosts: &Path) -> bool {
    if !std::io::stdin().is_terminal() || !std::io::stderr().is_terminal() {
        return false;
    }
    let Ok(tty) = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
    else {
        return false;
    };
    let mut out = &tty;
    let _ = writeln!(out, "The authenticity of host {name} can't be established.");
    for fp in fingerprints {
        let _ = writeln!(out, "  key fingerprint: {fp}");
    }
    let _ = write!(
        out,
        "Compare with the server's operator. Trust it and record it in {}? [y/N] ",
        known_hosts.display()
    );
    let _ = out.flush();
    let mut answer = String::new();
    if std::io::BufReader::new(&tty)
        .read_line(&mut answer)
        .is_err()
    {
        return false;
    }
    matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes")
}

fn record(known_hosts: &Path, keys: &[&ScannedKey]) -> Result<(), RepoError> {
    if let Some(dir) = known_hosts.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| RepoError::io(format!("cannot create {}", dir.display()), e))?;
    }
    let mut text = String::new();
    for k in keys {
        text.push_str(&k.line);
        text.push('\n');
    }
    // One append of whole lines: concurrent first contacts do not interleave within a line.
    let mut f = fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(known_hosts)
        .map_err(|e| RepoError::io(format!("cannot open {}", known_hosts.display()), e))?;
    f.write_all(text.as_bytes())
        .map_err(|e| RepoError::io(format!("cannot write {}", known_hosts.display()), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_fingerprints() {
        assert_eq!(known_hosts_name("h", None), "h");
        assert_eq!(known_hosts_name("h", Some(22)), "h");
        assert_eq!(
            known_hosts_name("127.0.0.1", Some(2222)),
            "[127.0.0.1]:2222"
        );
        assert_eq!(normalize_fingerprint(" SHA256:abc= "), "abc");
        assert_eq!(normalize_fingerprint("abc"), "abc");
        assert_eq!(normalize_fingerprint("SHA256:abc (ED25519)"), "abc");
        assert_eq!(normalize_fingerprint("SHA256:abc (ED25519)"), "abc");
    }
}
