//! Host keys as the Orb repository records them, their fingerprints, and first-contact scanning.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::process::{Captured, capture, tool};
use super::{SshError, Target};

/// `ssh-keyscan -T`: seconds to wait for the server.
const KEYSCAN_TIMEOUT_SECS: u64 = 5;
/// Key types in order of preference: ed25519 is small, fast and has no parameter pitfalls.
const PREFERENCE: [&str; 3] = ["ssh-ed25519", "ecdsa-sha2-", "ssh-rsa"];

/// A host key as recorded in the Orb repository: `ssh-ed25519 AAAA…` (algorithm and base64,
/// no comment). Public keys are not secret, so Debug shows the key.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct HostKey(pub String);

impl HostKey {
    /// Accepts `ALGORITHM BASE64 [COMMENT]` (a `.pub` file line) and keeps algorithm and key only,
    /// after checking that the base64 decodes to a key blob of that algorithm.
    pub fn parse(line: &str) -> Result<HostKey, String> {
        let mut fields = line.split_whitespace();
        let (Some(algorithm), Some(data)) = (fields.next(), fields.next()) else {
            return Err(format!(
                "host key {:?} is not `ALGORITHM BASE64` (e.g. `ssh-ed25519 AAAAC3…`)",
                clip(line)
            ));
        };
        let key = HostKey(format!("{algorithm} {data}"));
        key.blob()?;
        Ok(key)
    }

    /// The algorithm name, e.g. `ssh-ed25519`.
    pub fn algorithm(&self) -> &str {
        self.0.split_whitespace().next().unwrap_or_default()
    }

    /// `SHA256:…` as `ssh-keygen -l` and ssh's own warnings print it, so people can compare.
    /// A malformed key gives `(invalid host key: …)` rather than a plausible-looking hash.
    pub fn fingerprint(&self) -> String {
        match self.blob() {
            Ok(blob) => format!("SHA256:{}", STANDARD_NO_PAD.encode(Sha256::digest(&blob))),
            Err(e) => format!("(invalid host key: {e})"),
        }
    }

    /// The decoded key blob; it starts with the algorithm name, which must match the text.
    fn blob(&self) -> Result<Vec<u8>, String> {
        let mut fields = self.0.split_whitespace();
        let algorithm = fields.next().unwrap_or_default();
        let data = fields.next().unwrap_or_default();
        if fields.next().is_some() {
            return Err("host key has more than `ALGORITHM BASE64` (drop the comment)".to_owned());
        }
        let blob = STANDARD
            .decode(data)
            .map_err(|e| format!("host key for {algorithm:?} is not valid base64: {e}"))?;
        let name = blob
            .get(..4)
            .map(|n| u32::from_be_bytes([n[0], n[1], n[2], n[3]]) as usize)
            .and_then(|n| blob.get(4..4 + n));
        if name != Some(algorithm.as_bytes()) {
            return Err(format!(
                "host key data does not belong to algorithm {algorithm:?}"
            ));
        }
        Ok(blob)
    }
}

/// Asks the machine for its host keys (`ssh-keyscan`) and returns the preferred one
/// (ed25519, then ECDSA, then RSA). This is first contact: the caller pins the result.
pub fn scan_host_key(t: &Target) -> Result<HostKey, SshError> {
    let out = capture(
        tool("ssh-keyscan")
            .args(["-p", &t.port.to_string()])
            .args(["-T", &KEYSCAN_TIMEOUT_SECS.to_string()])
            .args(["-t", "ed25519,ecdsa,rsa"])
            .arg(t.host.to_string()),
        None,
        // One timeout per key type, plus slack; ssh-keyscan enforces its own -T.
        Duration::from_secs(KEYSCAN_TIMEOUT_SECS * 3 + 5),
        64 * 1024,
    )?;
    let Captured::Done(out) = out else {
        return Err(SshError::Unreachable {
            target: t.id.clone(),
            reason: format!(
                "ssh-keyscan {}:{} did not finish in time or answered too much",
                t.host, t.port
            ),
        });
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    let keys: Vec<HostKey> = stdout
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| {
            // `HOST ALGORITHM BASE64`
            let mut f = l.split_whitespace();
            f.next()?;
            HostKey::parse(&f.collect::<Vec<_>>().join(" ")).ok()
        })
        .collect();
    for prefix in PREFERENCE {
        if let Some(k) = keys.iter().find(|k| k.algorithm().starts_with(prefix)) {
            return Ok(k.clone());
        }
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let said: Vec<&str> = stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    Err(SshError::Unreachable {
        target: t.id.clone(),
        reason: if said.is_empty() {
            format!(
                "no SSH host key offered by {}:{} within {KEYSCAN_TIMEOUT_SECS} s \
                 (is sshd running and the port open?)",
                t.host, t.port
            )
        } else {
            format!("ssh-keyscan {}:{}: {}", t.host, t.port, said.join("; "))
        },
    })
}

/// At most 60 characters of untrusted input for an error message.
fn clip(s: &str) -> String {
    let mut out: String = s.chars().take(60).collect();
    if s.chars().count() > 60 {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    // Generated by ssh-keygen; `ssh-keygen -lf` says SHA256:Aj2ECQRrNz9gSr0sgCxb/MRUqs5l+9wxzwxNdJoD2RM.
    const LINE: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOK3wq9k2Hf+EhUtwmVUvOLT93cf+O6Yx6dKQLyBvgC/ h";

    #[test]
    fn parse_drops_comment_and_fingerprint_matches_ssh_keygen() {
        let k = HostKey::parse(LINE).unwrap();
        assert_eq!(
            k.0,
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOK3wq9k2Hf+EhUtwmVUvOLT93cf+O6Yx6dKQLyBvgC/"
        );
        assert_eq!(k.algorithm(), "ssh-ed25519");
        assert_eq!(
            k.fingerprint(),
            "SHA256:Aj2ECQRrNz9gSr0sgCxb/MRUqs5l+9wxzwxNdJoD2RM"
        );
    }

    #[test]
    fn malformed_keys_are_rejected_with_reason() {
        assert!(
            HostKey::parse("ssh-ed25519")
                .unwrap_err()
                .contains("ALGORITHM BASE64")
        );
        assert!(
            HostKey::parse("ssh-ed25519 !!!")
                .unwrap_err()
                .contains("base64")
        );
        // Valid base64 of an ed25519 blob, but labelled as RSA.
        let relabelled = LINE.replacen("ssh-ed25519", "ssh-rsa", 1);
        assert!(
            HostKey::parse(&relabelled)
                .unwrap_err()
                .contains("does not belong")
        );
        let bad = HostKey("ssh-ed25519 AAAA".to_owned());
        assert!(
            bad.fingerprint().starts_with("(invalid host key"),
            "{}",
            bad.fingerprint()
        );
    }

    #[test]
    fn serializes_as_plain_string() {
        let k = HostKey::parse(LINE).unwrap();
        let json = serde_json::to_string(&k).unwrap();
        assert!(json.starts_with("\"ssh-ed25519 AAAA"), "{json}");
        assert_eq!(serde_json::from_str::<HostKey>(&json).unwrap(), k);
    }
}
