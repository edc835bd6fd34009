//! Client key pairs: generating the per-Orb maintenance key, and checking private keys before
//! they are handed to ssh (whose own complaint would look like a refused login).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use super::SshError;
use super::process::{Captured, capture, exit_code, tool};
use super::workdir::scrub;

/// Generates an ed25519 key pair with `ssh-keygen`: (private key in OpenSSH PEM form, public
/// `authorized_keys` line `ssh-ed25519 AAAA… COMMENT`). The private key touches disk only in a
/// fresh 0700 directory, and is zeroed there before the directory is removed.
pub fn generate_keypair(comment: &str) -> Result<(String, String), SshError> {
    if comment.chars().any(char::is_control) {
        return Err(SshError::Invalid {
            target: "ssh-keygen".to_owned(),
            reason: format!("key comment {comment:?} contains control characters"),
        });
    }
    let dir = tempfile::Builder::new()
        .prefix("orbiter-keygen-")
        .permissions(fs::Permissions::from_mode(0o700))
        .tempdir()
        .map_err(|e| SshError::Io(format!("cannot create a temp dir for ssh-keygen: {e}")))?;
    let key = dir.path().join("id_ed25519");
    let out = capture(
        tool("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
            .arg(&key),
        None,
        Duration::from_secs(30),
        64 * 1024,
    )?;
    let Captured::Done(out) = out else {
        return Err(SshError::Io(
            "ssh-keygen did not finish within 30 s".to_owned(),
        ));
    };
    let status = exit_code("ssh-keygen", out.status)?;
    let result = if status != 0 {
        Err(SshError::Io(format!(
            "ssh-keygen -t ed25519 failed with status {status}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    } else {
        let read = |p: &std::path::Path| {
            fs::read_to_string(p).map_err(|e| {
                SshError::Io(format!("cannot read {} from ssh-keygen: {e}", p.display()))
            })
        };
        read(&key).and_then(|private| {
            let public = read(&key.with_extension("pub"))?;
            Ok((private, public.trim_end().to_owned()))
        })
    };
    scrub(&key);
    result
}

/// The private key as ssh wants it in a file: LF line ends and a final newline (a key pasted
/// into YAML often loses it, and ssh then calls the key "invalid format").
pub(super) fn normalize_private_key(pem: &str) -> Result<String, String> {
    let text = pem.replace("\r\n", "\n");
    let text = text.trim();
    let first = text.lines().next().unwrap_or_default();
    if !(first.starts_with("-----BEGIN ") && first.ends_with("PRIVATE KEY-----")) {
        // Never echo the text: it may be a secret pasted into the wrong field.
        return Err("the private key is not in PEM form (it must start with \
             `-----BEGIN OPENSSH PRIVATE KEY-----`)"
            .to_owned());
    }
    Ok(format!("{text}\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_line_ends_and_final_newline() {
        let pem = "-----BEGIN OPENSSH PRIVATE KEY-----\r\nabc\r\n-----END OPENSSH PRIVATE KEY-----";
        assert_eq!(
            normalize_private_key(pem).unwrap(),
            "-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n-----END OPENSSH PRIVATE KEY-----\n"
        );
        let err = normalize_private_key("hunter2 is my password").unwrap_err();
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn generated_pair_is_ed25519_with_comment() {
        let (private, public) = generate_keypair("orb lab maintenance").unwrap();
        assert!(private.starts_with("-----BEGIN OPENSSH PRIVATE KEY-----"));
        assert!(normalize_private_key(&private).is_ok());
        assert!(public.starts_with("ssh-ed25519 AAAA"), "{public}");
        assert!(public.ends_with(" orb lab maintenance"), "{public}");
        let (other, _) = generate_keypair("x").unwrap();
        assert_ne!(private, other);
        assert!(generate_keypair("a\nb").is_err());
    }
}
