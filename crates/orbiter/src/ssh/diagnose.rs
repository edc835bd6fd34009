//! Reading ssh's own error messages (exit status 255) to tell a changed host key, a refused
//! login and an unreachable machine apart. Pure text functions, tested with real messages.

/// What went wrong on ssh's side of a connection.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Problem {
    /// The server's key is not the pinned one; `offered` is the fingerprint ssh printed, if any
    /// (it prints none when the server offers only keys of another type).
    HostKey { offered: Option<String> },
    /// The server refused our key.
    Auth,
    /// ssh could not read the private key we gave it.
    BadPrivateKey,
    /// No (or a lost) connection; the line that says why.
    Unreachable(String),
}

/// Substrings of ssh messages that mean the machine cannot be reached (or the connection broke).
const UNREACHABLE: &[&str] = &[
    "Connection refused",
    "timed out",
    "No route to host",
    "Network is unreachable",
    "Host is down",
    "Connection reset",
    "Connection closed by",
    "closed by remote host",
    "kex_exchange_identification",
    "Could not resolve hostname",
    "Timeout, server",
    "not responding",
    "Broken pipe",
    "mux_client_",
    "Control socket connect",
];

/// Classifies ssh's stderr. `None` when nothing in it is recognisably ssh's own complaint (then a
/// 255 exit status is taken as the remote command's).
pub(super) fn diagnose(stderr: &str) -> Option<Problem> {
    if stderr.contains("REMOTE HOST IDENTIFICATION HAS CHANGED")
        || stderr.contains("Host key verification failed")
    {
        return Some(Problem::HostKey {
            offered: offered_fingerprint(stderr),
        });
    }
    if stderr.contains("Load key") {
        return Some(Problem::BadPrivateKey);
    }
    if stderr.contains("Permission denied (") || stderr.contains("Too many authentication failures")
    {
        return Some(Problem::Auth);
    }
    stderr
        .lines()
        .map(str::trim)
        .find(|l| UNREACHABLE.iter().any(|p| l.contains(p)))
        .map(|l| Problem::Unreachable(l.to_owned()))
}

/// The last non-empty line, for failures nothing above recognises.
pub(super) fn last_line(stderr: &str) -> Option<&str> {
    stderr.lines().map(str::trim).rfind(|l| !l.is_empty())
}

/// `The fingerprint for the ED25519 key sent by the remote host is\nSHA256:….`
fn offered_fingerprint(stderr: &str) -> Option<String> {
    let marker = "sent by the remote host is";
    let rest = &stderr[stderr.find(marker)? + marker.len()..];
    let fp = rest.split_whitespace().next()?.trim_end_matches('.');
    fp.starts_with("SHA256:").then(|| fp.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What OpenSSH 9.2 prints with LogLevel=ERROR when the pinned key differs.
    const CHANGED: &str = "\
@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@
@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @
@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@
IT IS POSSIBLE THAT SOMEONE IS DOING SOMETHING NASTY!
Someone could be eavesdropping on you right now (man-in-the-middle attack)!
It is also possible that a host key has just been changed.
The fingerprint for the ED25519 key sent by the remote host is
SHA256:Aj2ECQRrNz9gSr0sgCxb/MRUqs5l+9wxzwxNdJoD2RM.
Please contact your system administrator.
Add correct host key in /tmp/x/kh to get rid of this message.
Offending ED25519 key in /tmp/x/kh:1
  remove with:
  ssh-keygen -f \"/tmp/x/kh\" -R \"lab.m1\"
Host key for lab.m1 has changed and you have requested strict checking.
Host key verification failed.
";

    #[test]
    fn changed_host_key_with_offered_fingerprint() {
        assert_eq!(
            diagnose(CHANGED),
            Some(Problem::HostKey {
                offered: Some("SHA256:Aj2ECQRrNz9gSr0sgCxb/MRUqs5l+9wxzwxNdJoD2RM".to_owned())
            })
        );
        // Other key type only: ssh cannot show a comparable fingerprint.
        assert_eq!(
            diagnose(
                "No ED25519 host key is known for lab.m1 and you have requested strict checking.\nHost key verification failed.\n"
            ),
            Some(Problem::HostKey { offered: None })
        );
    }

    #[test]
    fn auth_bad_key_and_unreachable() {
        assert_eq!(
            diagnose("root@127.0.0.1: Permission denied (publickey).\n"),
            Some(Problem::Auth)
        );
        assert_eq!(
            diagnose(
                "Load key \"/tmp/k\": invalid format\nroot@127.0.0.1: Permission denied (publickey).\n"
            ),
            Some(Problem::BadPrivateKey)
        );
        assert_eq!(
            diagnose("ssh: connect to host 127.0.0.1 port 1: Connection refused\n"),
            Some(Problem::Unreachable(
                "ssh: connect to host 127.0.0.1 port 1: Connection refused".to_owned()
            ))
        );
        assert_eq!(
            diagnose(
                "Connection timed out during banner exchange\nConnection to 10.0.0.1 port 22 timed out\n"
            ),
            Some(Problem::Unreachable(
                "Connection timed out during banner exchange".to_owned()
            ))
        );
    }

    #[test]
    fn a_command_of_its_own_is_not_an_ssh_problem() {
        assert_eq!(diagnose(""), None);
        assert_eq!(diagnose("cat: /nope: No such file or directory\n"), None);
        assert_eq!(last_line("a\n b \n\n"), Some("b"));
        assert_eq!(last_line("\n"), None);
    }
}
